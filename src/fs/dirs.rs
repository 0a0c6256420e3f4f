//! Directories: opendir, readdir, readdirplus, releasedir, fsyncdir.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuser::{Errno, FileAttr, FileType, Generation, INodeNo, ReplyDirectory, ReplyDirectoryPlus};
use rustix::fs::{Mode, OFlags};

use super::attr::file_attr;
use super::dirstream::DirStream;
use super::handles::Handle;
use super::{OpResult, PassthroughFs, errno};

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

impl PassthroughFs {
    pub(super) fn op_opendir(&self, ino: u64) -> OpResult<u64> {
        let fd = self.node_fd(ino)?;
        let dir = rustix::fs::openat(
            &*fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let stream = DirStream::new(dir).map_err(errno)?;
        Ok(self
            .handles
            .insert(Handle::Dir(Arc::new(Mutex::new(stream)))))
    }

    fn dir(&self, fh: u64) -> OpResult<Arc<Mutex<DirStream>>> {
        self.handles.dir(fh).ok_or(Errno::EBADF)
    }

    pub(super) fn op_readdir(&self, fh: u64, offset: u64, mut reply: ReplyDirectory) {
        let stream = match self.dir(fh) {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        let mut s = stream.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = s.seek(offset) {
            return reply.error(errno(e));
        }
        while let Some(entry) = s.next_entry() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return reply.error(errno(e)),
            };
            if reply.add(
                INodeNo(entry.ino),
                entry.next_offset,
                entry.kind,
                &entry.name,
            ) {
                s.unread(entry);
                break;
            }
            s.consumed(&entry);
        }
        reply.ok()
    }

    pub(super) fn op_readdirplus(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let stream = match self.dir(fh) {
            Ok(s) => s,
            Err(e) => return reply.error(e),
        };
        let mut s = stream.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = s.seek(offset) {
            return reply.error(errno(e));
        }
        let ttl: Duration = self.config.entry_timeout;
        while let Some(entry) = s.next_entry() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return reply.error(errno(e)),
            };
            if entry.is_dot_or_dotdot() {
                let full = reply.add(
                    INodeNo(entry.ino),
                    entry.next_offset,
                    &entry.name,
                    &ttl,
                    &dot_attr(entry.ino),
                    Generation(0),
                );
                if full {
                    s.unread(entry);
                    break;
                }
                s.consumed(&entry);
                continue;
            }
            // Each entry handed out with attributes counts as a lookup, exactly like lookup().
            let (id, st) = match self.lookup_child(ino, &entry.name) {
                Ok(found) => found,
                Err(_) => {
                    // Removed since it was listed: skip it, as a fresh listing would.
                    s.consumed(&entry);
                    continue;
                }
            };
            let full = reply.add(
                INodeNo(id),
                entry.next_offset,
                &entry.name,
                &ttl,
                &file_attr(id, &st),
                Generation(0),
            );
            if full {
                // Not sent, so the kernel will never forget it: undo the lookup.
                self.inodes.forget(id, 1);
                s.unread(entry);
                break;
            }
            s.consumed(&entry);
        }
        reply.ok()
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
