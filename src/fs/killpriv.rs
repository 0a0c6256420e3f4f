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

/// The bits a write or truncate by an unprivileged caller clears from `mode`: set-user-ID always,
/// set-group-ID only together with group execute (without it, it marks mandatory locking).
pub fn bits_to_kill(mode: u32) -> u32 {
    let mut kill = mode & libc::S_ISUID;
    if mode & libc::S_ISGID != 0 && mode & libc::S_IXGRP != 0 {
        kill |= libc::S_ISGID;
    }
    kill
}

/// Clears what an unprivileged modification of `file` clears.
pub fn kill_suid_sgid(file: impl AsFd) -> OpResult<()> {
    let st = rustix::fs::fstat(&file).map_err(errno)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(());
    }
    let kill = bits_to_kill(st.st_mode);
    if kill != 0 {
        let mode = Mode::from_raw_mode(st.st_mode & 0o7777 & !kill);
        rustix::fs::fchmod(&file, mode).map_err(errno)?;
    }
    match rustix::fs::fremovexattr(&file, "security.capability") {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::NODATA || e == rustix::io::Errno::OPNOTSUPP => Ok(()),
        Err(e) => Err(errno(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_bits_go() {
        assert_eq!(bits_to_kill(0o4755), libc::S_ISUID);
        assert_eq!(bits_to_kill(0o6755), libc::S_ISUID | libc::S_ISGID);
        assert_eq!(bits_to_kill(0o2715), libc::S_ISGID);
        assert_eq!(
            bits_to_kill(0o2705),
            0,
            "setgid without group execute stays"
        );
        assert_eq!(bits_to_kill(0o1777), 0);
    }

    #[test]
    fn clears_the_bits_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        rustix::fs::chmod(&p, Mode::from_raw_mode(0o6755)).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        kill_suid_sgid(&f).unwrap();
        let st = rustix::fs::fstat(&f).unwrap();
        assert_eq!(st.st_mode & 0o7777, 0o755);
    }
}
