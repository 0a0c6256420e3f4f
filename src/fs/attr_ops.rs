//! The attribute operations: getattr, setattr, statfs. (What their replies carry is built by
//! `fuse_attr`.)

use std::os::fd::AsFd;
use std::time::UNIX_EPOCH;

use fuser::TimeOrNow;
use rustix::fs::{
    AtFlags, Mode, OFlags, Stat, StatVfs, Timespec, Timestamps, UTIME_NOW, UTIME_OMIT,
};

use super::injected::fault;
use super::{OpResult, PassthroughFs, errno, proc_path};
use crate::faults::FaultKind;

/// What a setattr asks to change.
pub(super) struct AttrChanges {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    pub fh: Option<u64>,
    /// Who asks (uid, gid): a truncation by anyone but root clears set-id bits (see killpriv.rs).
    pub caller: (u32, u32),
}

fn timespec(t: Option<TimeOrNow>) -> Timespec {
    match t {
        None => Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as _,
            },
            Err(e) => {
                // Before the epoch. fuser 0.18 builds this SystemTime from the kernel's (sec, nsec)
                // as EPOCH - (|sec| + nsec) instead of EPOCH - |sec| + nsec (time.rs,
                // system_time_from_time), so undo exactly that to recover what the caller asked for.
                let d = e.duration();
                Timespec {
                    tv_sec: -(d.as_secs() as i64),
                    tv_nsec: d.subsec_nanos() as _,
                }
            }
        },
    }
}

impl PassthroughFs {
    pub(super) fn op_getattr(&self, ino: u64, fh: Option<u64>) -> OpResult<Stat> {
        if let Some(file) = fh.and_then(|fh| self.handles.file(fh)) {
            return rustix::fs::fstat(&*file).map_err(errno);
        }
        let fd = self.node_fd(ino)?;
        rustix::fs::fstat(&*fd).map_err(errno)
    }

    pub(super) fn op_setattr(&self, ino: u64, ch: AttrChanges) -> OpResult<Stat> {
        self.check_writable()?;
        let fd = self.node_fd(ino)?;
        let file = ch.fh.and_then(|fh| self.handles.file(fh));
        let st = rustix::fs::fstat(&*fd).map_err(errno)?;
        let is_symlink = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
        fault(FaultKind::Setattr)?;

        if let Some(mode) = ch.mode {
            let mode = Mode::from_raw_mode(mode & 0o7777);
            match &file {
                Some(f) => rustix::fs::fchmod(f.as_fd(), mode),
                None if is_symlink => Err(rustix::io::Errno::OPNOTSUPP),
                None => rustix::fs::chmodat(
                    rustix::fs::CWD,
                    proc_path(&*fd).as_str(),
                    mode,
                    AtFlags::empty(),
                ),
            }
            .map_err(errno)?;
        }
        if ch.uid.is_some() || ch.gid.is_some() {
            let uid = ch.uid.map(rustix::fs::Uid::from_raw);
            let gid = ch.gid.map(rustix::fs::Gid::from_raw);
            rustix::fs::chownat(
                &*fd,
                "",
                uid,
                gid,
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(errno)?;
        }
        if let Some(size) = ch.size {
            let opened;
            let f = match &file {
                Some(f) => f.as_fd(),
                None => {
                    opened = rustix::fs::open(
                        proc_path(&*fd).as_str(),
                        OFlags::WRONLY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(errno)?;
                    opened.as_fd()
                }
            };
            rustix::fs::ftruncate(f, size).map_err(errno)?;
            // Also after a mode set in the same request: only the kernel's own clearing sends
            // one with a size (without KILLPRIV_V2, i.e. under --passthrough), and it keeps
            // set-group-ID without group execute, which Linux clears for a caller outside the group.
            if ch.caller.0 != 0 {
                super::killpriv::kill_suid_sgid(f, ch.caller.1)?;
            }
        }
        if ch.atime.is_some() || ch.mtime.is_some() {
            let times = Timestamps {
                last_access: timespec(ch.atime),
                last_modification: timespec(ch.mtime),
            };
            let res = match &file {
                Some(f) => rustix::fs::futimens(f.as_fd(), &times),
                None if is_symlink => rustix::fs::utimensat(&*fd, "", &times, AtFlags::EMPTY_PATH),
                None => rustix::fs::utimensat(
                    rustix::fs::CWD,
                    proc_path(&*fd).as_str(),
                    &times,
                    AtFlags::empty(),
                ),
            };
            res.map_err(errno)?;
        }
        rustix::fs::fstat(&*fd).map_err(errno)
    }

    pub(super) fn op_statfs(&self, ino: u64) -> OpResult<StatVfs> {
        let fd = self.node_fd(ino)?;
        rustix::fs::fstatvfs(&*fd).map_err(errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timespecs() {
        assert_eq!(timespec(None).tv_nsec, UTIME_OMIT);
        assert_eq!(timespec(Some(TimeOrNow::Now)).tv_nsec, UTIME_NOW);
        let t = UNIX_EPOCH + Duration::new(10, 5);
        let ts = timespec(Some(TimeOrNow::SpecificTime(t)));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (10, 5));
        // The kernel's (-2 s, +500 ms) arrives from fuser 0.18 as EPOCH - 2.5 s.
        let t = UNIX_EPOCH - Duration::from_millis(2500);
        let ts = timespec(Some(TimeOrNow::SpecificTime(t)));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (-2, 500_000_000));
    }
}
