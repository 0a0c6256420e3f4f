//! Extended attributes, passed through with the exact size/ERANGE protocol.
//!
//! An `O_PATH` descriptor cannot carry xattr calls, so they go through its procfs name, which
//! resolves to the object itself. Symlinks cannot be reached that way without following them; for
//! them we answer as a filesystem without symlink xattrs would.

use std::ffi::OsStr;

use fuser::Errno;
use rustix::fs::XattrFlags;

use super::{OpResult, PassthroughFs, errno, proc_path};

/// The answer to a get/list: the size when asked for it (size 0), else the bytes.
pub(super) enum XattrReply {
    Size(u32),
    Data(Vec<u8>),
}

impl PassthroughFs {
    fn xattr_path(
        &self,
        ino: u64,
    ) -> OpResult<(String, std::sync::Arc<std::os::fd::OwnedFd>, bool)> {
        let fd = self.node_fd(ino)?;
        let st = rustix::fs::fstat(&*fd).map_err(errno)?;
        let is_symlink = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
        Ok((proc_path(&*fd), fd, is_symlink))
    }

    pub(super) fn op_getxattr(&self, ino: u64, name: &OsStr, size: u32) -> OpResult<XattrReply> {
        let (path, _fd, is_symlink) = self.xattr_path(ino)?;
        if is_symlink {
            return Err(Errno::NO_XATTR);
        }
        if size == 0 {
            let n = rustix::fs::getxattr_query(path.as_str(), name).map_err(errno)?;
            return Ok(XattrReply::Size(n as u32));
        }
        let mut buf = vec![0u8; size as usize];
        let n = rustix::fs::getxattr(path.as_str(), name, &mut buf[..]).map_err(errno)?;
        buf.truncate(n);
        Ok(XattrReply::Data(buf))
    }

    pub(super) fn op_listxattr(&self, ino: u64, size: u32) -> OpResult<XattrReply> {
        let (path, _fd, is_symlink) = self.xattr_path(ino)?;
        if is_symlink {
            return Ok(if size == 0 {
                XattrReply::Size(0)
            } else {
                XattrReply::Data(Vec::new())
            });
        }
        if size == 0 {
            let n = rustix::fs::listxattr_query(path.as_str()).map_err(errno)?;
            return Ok(XattrReply::Size(n as u32));
        }
        let mut buf = vec![0u8; size as usize];
        let n = rustix::fs::listxattr(path.as_str(), &mut buf[..]).map_err(errno)?;
        buf.truncate(n);
        Ok(XattrReply::Data(buf))
    }

    pub(super) fn op_setxattr(
        &self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
    ) -> OpResult<()> {
        self.check_writable()?;
        let (path, _fd, is_symlink) = self.xattr_path(ino)?;
        if is_symlink {
            return Err(Errno::EPERM);
        }
        let flags = XattrFlags::from_bits(flags as u32).ok_or(Errno::EINVAL)?;
        rustix::fs::setxattr(path.as_str(), name, value, flags).map_err(errno)
    }

    pub(super) fn op_removexattr(&self, ino: u64, name: &OsStr) -> OpResult<()> {
        self.check_writable()?;
        let (path, _fd, is_symlink) = self.xattr_path(ino)?;
        if is_symlink {
            return Err(Errno::NO_XATTR);
        }
        rustix::fs::removexattr(path.as_str(), name).map_err(errno)
    }
}
