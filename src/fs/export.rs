//! The lookups the kernel's file-handle code sends (name_to_handle_at / open_by_handle_at on the
//! mount, NFS export): LOOKUP "." to find a node it forgot by its id, and LOOKUP ".." to find a
//! directory's parent when it reconnects a directory to the tree. Path walks never send them.
//!
//! The kernel checks the answer: the node id must be the one asked for (else EIO) and the
//! generation the one in its handle (else ESTALE); ENOENT becomes ESTALE.

use std::os::fd::OwnedFd;

use fuser::Errno;
use rustix::fs::{Mode, OFlags, Stat};

use super::inodes::{EntryId, ROOT_ID};
use super::{OpResult, PassthroughFs, errno, key_of, replies};

/// How many levels a directory may sit below the backing root for its ".." to be answered; deeper
/// ones are refused rather than walked without end.
const MAX_DEPTH: usize = 4096;

impl PassthroughFs {
    /// LOOKUP "." of node `id`: the node itself, counting one lookup. A node the kernel forgot is
    /// found again by the file handle kept for it, under the same id. An object without links left
    /// is `ESTALE`, as on a local filesystem.
    pub(super) fn lookup_self(&self, id: u64) -> OpResult<(EntryId, Stat)> {
        let entry = match self.inodes.lookup_id(id) {
            Some(entry) => entry,
            None => match self.inodes.refind(id) {
                Ok(found) => return Ok(found),
                // Registered again meanwhile (by name, or by another request for the id), which
                // dropped its kept handle: it is live now.
                Err(e) => self
                    .inodes
                    .lookup_id(id)
                    .ok_or_else(|| replies::errno_of(&e))?,
            },
        };
        let st = self
            .node_fd(id)
            .and_then(|fd| rustix::fs::fstat(&*fd).map_err(errno))
            .and_then(|st| {
                if st.st_nlink == 0 {
                    Err(Errno::ESTALE)
                } else {
                    Ok(st)
                }
            });
        match st {
            Ok(st) => Ok((entry, st)),
            Err(e) => {
                self.inodes.forget(id, 1);
                Err(e)
            }
        }
    }

    /// LOOKUP ".." of directory node `id`: its parent, counting one lookup. The root's parent is
    /// the root; a parent outside the backing tree (the directory was moved out of it behind the
    /// mount's back) is `ESTALE`.
    pub(super) fn lookup_parent(&self, id: u64) -> OpResult<(EntryId, Stat)> {
        if id == ROOT_ID {
            return self.lookup_self(ROOT_ID);
        }
        let fd = self.node_fd(id)?;
        let parent = open_parent(&fd)?;
        let st = rustix::fs::fstat(&parent).map_err(errno)?;
        if !self.is_in_backing_tree(&parent, &st)? {
            return Err(Errno::ESTALE);
        }
        Ok((self.register(parent, &st), st))
    }

    /// Whether directory `dir` (with metadata `st`) is the backing root or below it: walks up
    /// until the root, or the top of the filesystem tree (whose ".." is itself).
    fn is_in_backing_tree(&self, dir: &OwnedFd, st: &Stat) -> OpResult<bool> {
        let root = self.inodes.root_key();
        let mut key = key_of(st);
        let mut up: Option<OwnedFd> = None;
        for _ in 0..MAX_DEPTH {
            if key == root {
                return Ok(true);
            }
            let next = open_parent(up.as_ref().unwrap_or(dir))?;
            let next_key = key_of(&rustix::fs::fstat(&next).map_err(errno)?);
            if next_key == key {
                return Ok(false);
            }
            key = next_key;
            up = Some(next);
        }
        Ok(false)
    }
}

/// An `O_PATH` descriptor of the parent of directory `dir` (`ENOTDIR` for anything else).
fn open_parent(dir: &OwnedFd) -> OpResult<OwnedFd> {
    rustix::fs::openat(
        dir,
        "..",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}
