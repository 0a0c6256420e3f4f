//! Clearing set-user-ID/set-group-ID bits and file capabilities when an unprivileged caller
//! modifies a file, as the kernel does on a local disk.
//!
//! arsyncfs negotiates FUSE_HANDLE_KILLPRIV_V2: otherwise the kernel asks for `security.capability`
//! with a GETXATTR round trip before every single write. In exchange the filesystem clears the bits
//! itself: the kernel flags writes that must do it, and truncation (setattr or O_TRUNC) by a caller
//! other than root does it too. The daemon writes as root, whose writes never clear them, so it has
//! to.

use std::os::fd::AsFd;

use rustix::fs::Mode;

use super::{OpResult, errno};

/// The bits a write or truncate by an unprivileged caller clears from `mode` (Linux's
/// setattr_should_drop_suidgid): set-user-ID always; set-group-ID with group execute, or without it
/// when the caller is not in the file's group. Group membership is judged by the caller's primary
/// group, the only one a FUSE request carries.
pub fn bits_to_kill(mode: u32, in_group: bool) -> u32 {
    let mut kill = mode & libc::S_ISUID;
    if mode & libc::S_ISGID != 0 && (mode & libc::S_IXGRP != 0 || !in_group) {
        kill |= libc::S_ISGID;
    }
    kill
}

/// Clears what a modification of `file` by an unprivileged caller of group `caller_gid` clears.
/// Returns whether the mode changed (then the kernel's cached attributes are stale).
pub fn kill_suid_sgid(file: impl AsFd, caller_gid: u32) -> OpResult<bool> {
    let st = rustix::fs::fstat(&file).map_err(errno)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(false);
    }
    let kill = bits_to_kill(st.st_mode, st.st_gid == caller_gid);
    if kill != 0 {
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777 & !kill);
        rustix::fs::fchmod(&file, mode).map_err(errno)?;
    }
    match rustix::fs::fremovexattr(&file, "security.capability") {
        Ok(()) => Ok(kill != 0),
        Err(e) if e == rustix::io::Errno::NODATA || e == rustix::io::Errno::OPNOTSUPP => {
            Ok(kill != 0)
        }
        Err(e) => Err(errno(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_bits_go() {
        assert_eq!(bits_to_kill(0o4755, true), libc::S_ISUID);
        assert_eq!(bits_to_kill(0o6755, true), libc::S_ISUID | libc::S_ISGID);
        assert_eq!(bits_to_kill(0o2715, true), libc::S_ISGID);
        assert_eq!(
            bits_to_kill(0o2705, true),
            0,
            "member, no group execute: stays"
        );
        assert_eq!(
            bits_to_kill(0o2705, false),
            libc::S_ISGID,
            "non-member: goes"
        );
        assert_eq!(bits_to_kill(0o1777, false), 0);
    }

    #[test]
    fn clears_the_bits_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        rustix::fs::chmod(&p, Mode::from_raw_mode(0o6755)).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        assert!(kill_suid_sgid(&f, 0).unwrap(), "the mode changed");
        assert!(!kill_suid_sgid(&f, 0).unwrap(), "nothing left to clear");
        let st = rustix::fs::fstat(&f).unwrap();
        assert_eq!(st.st_mode & 0o7777, 0o755);
    }
}
