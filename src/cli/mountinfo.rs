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
            })
        })
        .collect()
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
        assert_eq!(m[0].mount_point, Path::new("/"));
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(find(Path::new("/")).unwrap().is_some());
    }
}
