//! Who owns what a caller creates, and with which mode.
//!
//! The daemon runs as root and creates everything itself; the kernel has already checked the
//! caller's permissions (default_permissions, with POSIX ACLs). Then, as a local filesystem would,
//! the new object is handed to the caller: owner = caller, group = caller's group unless the parent
//! directory is setgid (then the backing filesystem already gave it the directory's group). The
//! caller's umask arrives separately (FUSE_DONT_MASK) and is applied here unless the parent has a
//! default ACL, which takes precedence over the umask on a local disk too.

use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Gid, Mode, Uid};

use super::{OpResult, PassthroughFs, errno, proc_path};

/// The identity of the process a request comes from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub umask: u32,
}

impl Caller {
    pub fn of(req: &fuser::Request, umask: u32) -> Self {
        Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
            umask,
        }
    }
}

/// Whether the process `pid`, of primary group `gid`, is a member of group `group`: its primary
/// group, or one of its supplementary groups (read from procfs; a process that is gone counts with
/// its primary group only).
pub(super) fn in_group(pid: u32, gid: u32, group: u32) -> bool {
    gid == group
        || std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|status| supplementary_groups(&status).any(|g| g == group))
}

/// The `Groups:` line of a /proc/PID/status text.
fn supplementary_groups(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
}

fn has_default_acl(dir: &OwnedFd) -> bool {
    matches!(
        rustix::fs::getxattr_query(proc_path(dir).as_str(), "system.posix_acl_default"),
        Ok(n) if n > 0
    )
}

impl PassthroughFs {
    /// The permission bits to create with in directory `parent`.
    pub(super) fn creation_mode(&self, parent: &OwnedFd, mode: u32, caller: Caller) -> Mode {
        let mode = mode & 0o7777;
        if caller.umask == 0 || has_default_acl(parent) {
            Mode::from_raw_mode(mode)
        } else {
            Mode::from_raw_mode(mode & !caller.umask)
        }
    }

    /// Gives node `id`, just created by `caller` in `parent`, to the caller. Returns whether its
    /// owner changed (and so its attributes).
    pub(super) fn give_to_caller(
        &self,
        parent: &OwnedFd,
        id: u64,
        caller: Caller,
    ) -> OpResult<bool> {
        if !self.is_root || (caller.uid == 0 && caller.gid == 0) {
            return Ok(false);
        }
        let pst = rustix::fs::fstat(parent).map_err(errno)?;
        let gid = if pst.st_mode & libc::S_ISGID != 0 {
            None
        } else {
            Some(Gid::from_raw(caller.gid))
        };
        let fd = self.node_fd(id)?;
        let before = rustix::fs::fstat(&*fd).map_err(errno)?;
        rustix::fs::chownat(
            &*fd,
            "",
            Some(Uid::from_raw(caller.uid)),
            gid,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
        // chown clears set-id bits of non-directories; the creator asked for them, so restore them.
        let is_dir = before.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let is_link = before.st_mode & libc::S_IFMT == libc::S_IFLNK;
        if !is_dir && !is_link && before.st_mode & 0o6000 != 0 {
            rustix::fs::chmodat(
                rustix::fs::CWD,
                proc_path(&*fd).as_str(),
                Mode::from_raw_mode(before.st_mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(errno)?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::OFlags;

    #[test]
    fn groups_from_status() {
        let status = "Name:\tx\nGid:\t5\t5\t5\t5\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(
            supplementary_groups(status).collect::<Vec<_>>(),
            [4, 24, 27]
        );
        assert_eq!(supplementary_groups("Groups:\n").count(), 0);
        assert_eq!(supplementary_groups("").count(), 0);
        assert!(in_group(0, 5, 5), "primary group");
        let me = std::process::id();
        let mine = std::fs::read_to_string(format!("/proc/{me}/status")).unwrap();
        for g in supplementary_groups(&mine) {
            assert!(in_group(me, u32::MAX, g));
        }
        assert!(
            !in_group(u32::MAX, 5, 6),
            "no such process: primary group only"
        );
    }

    #[test]
    fn default_acl_is_detected() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let open = |p: &std::path::Path| {
            rustix::fs::open(p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap()
        };
        assert!(!has_default_acl(&open(dir.path())));
        let ok = std::process::Command::new("setfacl")
            .args(["-d", "-m", "u::rwx,g::rwx,o::rwx"])
            .arg(dir.path())
            .status();
        if !matches!(ok, Ok(s) if s.success()) {
            eprintln!("setfacl unavailable or unsupported here; skipping");
            return;
        }
        assert!(has_default_acl(&open(dir.path())));
    }
}
