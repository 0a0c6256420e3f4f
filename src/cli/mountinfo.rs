//! Reading /proc/self/mountinfo: which paths are mount points, and of what.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount, from one line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u64,
    /// `major:minor` of the mounted filesystem.
    pub device: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    /// The filesystem's own options (for FUSE: `user_id=`, the user who mounted it, ...).
    pub super_options: String,
}

impl MountEntry {
    /// The user who made a FUSE mount (its `user_id` option), if shown.
    pub fn fuse_owner(&self) -> Option<u32> {
        self.super_options
            .split(',')
            .find_map(|o| o.strip_prefix("user_id="))
            .and_then(|v| v.parse().ok())
    }

    /// Whether this is a FUSE mount (of any FUSE filesystem).
    pub fn is_fuse(&self) -> bool {
        self.fs_type == "fuse" || self.fs_type.starts_with("fuse.")
    }
}

/// Undoes the octal escapes (`\040` for a space and so on) of mountinfo fields.
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Parses the text of a mountinfo file; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            Some(MountEntry {
                id: pre.first()?.parse().ok()?,
                device: pre.get(2)?.to_string(),
                mount_point: PathBuf::from(OsString::from_vec(unescape(pre.get(4)?))),
                fs_type: post.next()?.to_string(),
                source: String::from_utf8_lossy(&unescape(post.next()?)).into_owned(),
                super_options: post.next().unwrap_or("").to_owned(),
            })
        })
        .collect()
}

/// How a FUSE mount answered a look at its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It answered (whatever the answer).
    Answers,
    /// Its filesystem process is gone: ENOTCONN.
    Stale,
    /// It did not answer within the time given.
    Hung,
}

/// Stats `path` on a thread of its own, so that a hung FUSE mount cannot hang the caller.
pub fn probe(path: &Path, timeout: std::time::Duration) -> Liveness {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new().spawn(move || {
        let _ = tx.send(
            std::fs::metadata(&path)
                .err()
                .and_then(|e| e.raw_os_error()),
        );
    });
    if spawned.is_err() {
        return Liveness::Answers;
    }
    match rx.recv_timeout(timeout) {
        Ok(Some(libc::ENOTCONN)) => Liveness::Stale,
        Ok(_) => Liveness::Answers,
        Err(_) => Liveness::Hung,
    }
}

/// Every mount of this process's mount namespace, in mount order.
pub fn read() -> io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The topmost mount at exactly `path` (which should be absolute and canonical), if any.
pub fn find(path: &Path) -> io::Result<Option<MountEntry>> {
    Ok(read()?.into_iter().rev().find(|m| m.mount_point == path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
95 22 0:52 / /tmp/a\\040b rw,nosuid,nodev,relatime shared:50 - fuse.arsyncfs /srv/with\\040space rw,user_id=0,group_id=0
garbage line
";

    #[test]
    fn parses_and_unescapes() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].id, 95);
        assert_eq!(m[1].device, "0:52");
        assert_eq!(m[1].mount_point, Path::new("/tmp/a b"));
        assert_eq!(m[1].fs_type, "fuse.arsyncfs");
        assert_eq!(m[1].source, "/srv/with space");
        assert_eq!(m[1].super_options, "rw,user_id=0,group_id=0");
        assert_eq!(m[1].fuse_owner(), Some(0));
        assert!(m[1].is_fuse() && !m[0].is_fuse());
        assert_eq!(m[0].fuse_owner(), None);
        assert_eq!(m[0].mount_point, Path::new("/"));
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(find(Path::new("/")).unwrap().is_some());
    }
}
