//! Names: lookup, creation and removal of directory entries, rename, link, readlink.

use std::ffi::OsStr;
use std::path::Path;

use fuser::Errno;
use rustix::fs::{AtFlags, FileType as RxFileType, RenameFlags, Stat};

use super::creds::Caller;
use super::injected::fault;
use super::inodes::{DefaultAcl, EntryId};
use super::{OpResult, PassthroughFs, check_name, errno};
use crate::faults::FaultKind;

impl PassthroughFs {
    pub(super) fn op_lookup(&self, parent: u64, name: &OsStr) -> OpResult<(EntryId, Stat)> {
        // Only the kernel's file-handle code looks up "." and ".." (see export.rs); path walks
        // resolve them itself.
        match name.as_encoded_bytes() {
            b"." => self.lookup_self(parent),
            b".." => self.lookup_parent(parent),
            _ => fault(FaultKind::Lookup).and_then(|()| self.lookup_child(parent, name)),
        }
    }

    pub(super) fn op_mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        caller: Caller,
    ) -> OpResult<(EntryId, Stat)> {
        self.check_writable()?;
        check_name(name)?;
        let pfd = self.node_fd(parent)?;
        let mode = self.creation_mode(parent, &pfd, mode, &caller);
        // A new directory inherits its parent's default ACL, or has none when the parent has none.
        let ticket = self.inodes.acl_ticket();
        let parent_acl = self.inodes.default_acl(parent);
        {
            let _as_caller = self.become_caller(&caller)?;
            fault(FaultKind::Mkdir)?;
            rustix::fs::mkdirat(&*pfd, name, mode).map_err(errno)?;
        }
        let (entry, st) = self.created(parent, &pfd, name)?;
        if let DefaultAcl::Known(has) = parent_acl
            && st.st_mode & libc::S_IFMT == libc::S_IFDIR
        {
            self.inodes.learn_default_acl(entry.id, ticket, has);
        }
        Ok((entry, st))
    }

    pub(super) fn op_mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
        caller: Caller,
    ) -> OpResult<(EntryId, Stat)> {
        self.check_writable()?;
        check_name(name)?;
        let pfd = self.node_fd(parent)?;
        let kind = RxFileType::from_raw_mode(mode);
        let perm = self.creation_mode(parent, &pfd, mode, &caller);
        {
            let _as_caller = self.become_caller(&caller)?;
            fault(FaultKind::Mkdir)?;
            rustix::fs::mknodat(&*pfd, name, kind, perm, rdev as u64).map_err(errno)?;
        }
        self.created(parent, &pfd, name)
    }

    pub(super) fn op_symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        caller: Caller,
    ) -> OpResult<(EntryId, Stat)> {
        self.check_writable()?;
        check_name(name)?;
        let pfd = self.node_fd(parent)?;
        {
            let _as_caller = self.become_caller(&caller)?;
            fault(FaultKind::Mkdir)?;
            rustix::fs::symlinkat(target, &*pfd, name).map_err(errno)?;
        }
        self.created(parent, &pfd, name)
    }

    pub(super) fn op_link(
        &self,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
    ) -> OpResult<(EntryId, Stat)> {
        self.check_writable()?;
        check_name(newname)?;
        let fd = self.node_fd(ino)?;
        let npfd = self.node_fd(newparent)?;
        fault(FaultKind::Link)?;
        // AT_EMPTY_PATH links the very object the node holds (needs CAP_DAC_READ_SEARCH, which a
        // root daemon has); the procfs name is the fallback that works without it.
        let linked = rustix::fs::linkat(&*fd, "", &*npfd, newname, AtFlags::EMPTY_PATH);
        match linked {
            Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::PERM => {
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    super::proc_path(&*fd).as_str(),
                    &*npfd,
                    newname,
                    AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(errno)?;
            }
            other => other.map_err(errno)?,
        }
        self.lookup_child(newparent, newname)
    }

    pub(super) fn op_unlink(&self, parent: u64, name: &OsStr, dir: bool) -> OpResult<()> {
        self.check_writable()?;
        check_name(name)?;
        let pfd = self.node_fd(parent)?;
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        fault(FaultKind::Unlink)?;
        rustix::fs::unlinkat(&*pfd, name, flags).map_err(errno)
    }

    pub(super) fn op_rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> OpResult<()> {
        self.check_writable()?;
        check_name(name)?;
        check_name(newname)?;
        let pfd = self.node_fd(parent)?;
        let npfd = self.node_fd(newparent)?;
        let flags = RenameFlags::from_bits(flags).ok_or(Errno::EINVAL)?;
        fault(FaultKind::Rename)?;
        rustix::fs::renameat_with(&*pfd, name, &*npfd, newname, flags).map_err(errno)?;
        // A symlink keeps its node across a rename: remember its new name (for xattrs). Only an
        // exchange leaves something under the old name.
        let moved = [(newparent, &npfd, newname), (parent, &pfd, name)];
        let count = if flags.contains(RenameFlags::EXCHANGE) {
            2
        } else {
            1
        };
        for &(dir, dir_fd, entry) in &moved[..count] {
            if let Ok(st) = rustix::fs::statat(&**dir_fd, entry, AtFlags::SYMLINK_NOFOLLOW)
                && st.st_mode & libc::S_IFMT == libc::S_IFLNK
                && let Some(id) = self.inodes.id_of(super::key_of(&st))
            {
                self.inodes.set_link_name(id, dir, entry);
            }
        }
        Ok(())
    }

    pub(super) fn op_readlink(&self, ino: u64) -> OpResult<Vec<u8>> {
        let fd = self.node_fd(ino)?;
        let target = rustix::fs::readlinkat(&*fd, "", Vec::new()).map_err(errno)?;
        Ok(target.into_bytes())
    }
}
