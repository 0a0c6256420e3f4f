//! Directories: opendir, readdir, readdirplus, releasedir, fsyncdir.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuser::{Errno, FileAttr, FileType, Generation, INodeNo, ReplyDirectory, ReplyDirectoryPlus};
use rustix::fs::{Mode, OFlags};

use super::dirstream::{DirStream, Entry};
use super::fuse_attr::file_attr;
use super::handles::Handle;
use super::injected::fault;
use super::timed::Timed;
use super::{OpResult, PassthroughFs, errno};
use crate::faults::FaultKind;

/// Attributes for `.` and `..` in a readdirplus reply: the kernel does not instantiate those, so only
/// the number and type matter.
fn dot_attr(ino: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: std::time::UNIX_EPOCH,
        mtime: std::time::UNIX_EPOCH,
        ctime: std::time::UNIX_EPOCH,
        crtime: std::time::UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

/// What became of an entry offered to a reply.
enum Fill {
    Added,
    /// Not listed (it vanished meanwhile); the listing goes on after it.
    Skipped,
    /// The reply is full; the entry is offered again next time.
    Full,
}

impl PassthroughFs {
    pub(super) fn op_opendir(&self, ino: u64) -> OpResult<u64> {
        let fd = self.node_fd(ino)?;
        let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if self.atime.noatime_dirs {
            // Listing it then leaves its access time alone (noatime, nodiratime).
            flags |= OFlags::NOATIME;
        }
        let dir = Self::open_backing(flags, |f| rustix::fs::openat(&*fd, ".", f, Mode::empty()))
            .map_err(errno)?;
        let stream = DirStream::new(dir).map_err(errno)?;
        Ok(self
            .handles
            .insert(Handle::Dir(Arc::new(Mutex::new(stream)))))
    }

    fn dir(&self, fh: u64) -> OpResult<Arc<Mutex<DirStream>>> {
        self.handles.dir(fh).ok_or(Errno::EBADF)
    }

    /// Positions `fh`'s stream at `offset` and offers its entries to `add` until the reply is full
    /// or the directory ends. An entry that did not fit is handed out first next time.
    fn fill_reply(
        &self,
        fh: u64,
        offset: u64,
        mut add: impl FnMut(&Entry) -> Fill,
    ) -> OpResult<()> {
        let stream = self.dir(fh)?;
        fault(FaultKind::Readdir)?;
        let mut s = stream.lock().unwrap_or_else(|e| e.into_inner());
        s.seek(offset).map_err(errno)?;
        while let Some(entry) = s.next_entry() {
            let entry = entry.map_err(errno)?;
            match add(&entry) {
                Fill::Added | Fill::Skipped => s.consumed(&entry),
                Fill::Full => {
                    s.unread(entry);
                    break;
                }
            }
        }
        Ok(())
    }

    pub(super) fn op_readdir(&self, fh: u64, offset: u64, mut reply: Timed<ReplyDirectory>) {
        let filled = self.fill_reply(fh, offset, |e| {
            if reply.add(INodeNo(e.ino), e.next_offset, e.kind, &e.name) {
                Fill::Full
            } else {
                Fill::Added
            }
        });
        match filled {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    pub(super) fn op_readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        mut reply: Timed<ReplyDirectoryPlus>,
    ) {
        let ttl: Duration = self.config.entry_timeout;
        let filled = self.fill_reply(fh, offset, |e| {
            let (id, generation, attr, looked_up) = if e.is_dot_or_dotdot() {
                (e.ino, 0, dot_attr(e.ino), false)
            } else {
                // Each entry handed out with attributes counts as a lookup, exactly like lookup().
                let Ok((entry, st)) = self.lookup_child_hinted(ino, &e.name, Some(e.ino)) else {
                    // Removed since it was listed: skip it, as a fresh listing would.
                    return Fill::Skipped;
                };
                (entry.id, entry.generation, file_attr(entry.id, &st), true)
            };
            let full = reply.add(
                INodeNo(id),
                e.next_offset,
                &e.name,
                &ttl,
                &attr,
                Generation(generation.into()),
            );
            if !full {
                Fill::Added
            } else {
                if looked_up {
                    // Not sent, so the kernel will never forget it: undo the lookup.
                    self.inodes.forget(id, 1);
                }
                Fill::Full
            }
        });
        match filled {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    pub(super) fn op_releasedir(&self, fh: u64) -> OpResult<()> {
        match self.handles.remove(fh) {
            Some(Handle::Dir(_)) => Ok(()),
            _ => Err(Errno::EBADF),
        }
    }

    pub(super) fn op_fsyncdir(&self, fh: u64, datasync: bool) -> OpResult<()> {
        let stream = self.dir(fh)?;
        let s = stream.lock().unwrap_or_else(|e| e.into_inner());
        let fd = s.fd().map_err(errno)?;
        if datasync {
            rustix::fs::fdatasync(fd).map_err(errno)
        } else {
            rustix::fs::fsync(fd).map_err(errno)
        }
    }
}
