//! Where stats sockets live: `/run/arsyncfs` for root, `$XDG_RUNTIME_DIR/arsyncfs` for other users
//! (`/run/user/UID/arsyncfs` when it is unset). One socket per mount, named after the mount's device
//! number (`0-52.sock` for 0:52, as /proc/self/mountinfo shows it): unique among the mounts alive,
//! the same for bind mounts of one mount (one daemon serves them all), and a new one at each mount.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Root's socket directory.
pub const ROOT_DIR: &str = "/run/arsyncfs";

/// The socket file name of the mount of device `major:minor`; `None` for anything else.
pub fn socket_name(device: &str) -> Option<String> {
    let (major, minor) = device.split_once(':')?;
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (number(major) && number(minor)).then(|| format!("{major}-{minor}.sock"))
}

fn user_runtime_dir(uid: u32) -> PathBuf {
    PathBuf::from(format!("/run/user/{uid}"))
}

/// The directory a daemon running as `uid` puts its socket in; `None` for a user without a
/// runtime directory.
pub fn own_dir(uid: u32) -> Option<PathBuf> {
    if uid == 0 {
        return Some(PathBuf::from(ROOT_DIR));
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| Some(user_runtime_dir(uid)).filter(|d| d.is_dir()))?;
    Some(runtime.join("arsyncfs"))
}

/// The directories the socket of a mount made by `owner` (the mount's `user_id`) may be in, most
/// likely first, for a client running as `me`.
pub fn dirs_for(owner: Option<u32>, me: u32) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut add = |d: Option<PathBuf>| {
        if let Some(d) = d
            && !dirs.contains(&d)
        {
            dirs.push(d);
        }
    };
    match owner {
        Some(0) => add(Some(PathBuf::from(ROOT_DIR))),
        Some(uid) => {
            if uid == me {
                add(own_dir(uid));
            }
            add(Some(user_runtime_dir(uid).join("arsyncfs")));
        }
        None => {
            add(Some(PathBuf::from(ROOT_DIR)));
            add(own_dir(me));
        }
    }
    dirs
}

/// Makes sure `dir` exists as a directory only its owner, the effective user, can enter: created
/// with mode 0700, or refused if it is a symlink, another user's, or open to others.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} {why}", dir.display()),
        ))
    };
    if !meta.is_dir() {
        return refuse("is not a directory");
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        return refuse("belongs to another user");
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return refuse("is open to other users (it must be mode 0700)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_come_from_device_numbers_only() {
        assert_eq!(socket_name("0:52").as_deref(), Some("0-52.sock"));
        assert_eq!(socket_name("259:3").as_deref(), Some("259-3.sock"));
        for bad in ["", "0", "0:", ":1", "0:5/../x", "a:b", "0:1:2"] {
            assert_eq!(socket_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn where_to_look() {
        assert_eq!(dirs_for(Some(0), 1000), vec![PathBuf::from(ROOT_DIR)]);
        let other = dirs_for(Some(1000), 0);
        assert_eq!(other, vec![PathBuf::from("/run/user/1000/arsyncfs")]);
        assert_eq!(dirs_for(None, 0), vec![PathBuf::from(ROOT_DIR)]);
        assert_eq!(own_dir(0), Some(PathBuf::from(ROOT_DIR)));
    }

    #[test]
    fn a_socket_directory_must_be_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("arsyncfs");
        prepare_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        prepare_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(prepare_dir(&dir).is_err(), "open to others");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(prepare_dir(&link).is_err(), "a symlink");
    }
}
