//! Extended attributes, passed through with the exact size/ERANGE protocol.
//!
//! An `O_PATH` descriptor cannot carry xattr calls, so they go through its procfs name, which
//! resolves to the object itself. A symlink cannot be reached that way without following it, so it
//! is reached through its parent's descriptor and its name (checked to still be the same symlink).

use std::ffi::OsStr;

use fuser::Errno;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{AtFlags, XattrFlags};

use super::creds::{Caller, has_cap_sys_admin, in_group};
use super::injected::fault;
use super::{OpResult, PassthroughFs, errno, key_of, proc_path};
use crate::faults::FaultKind;

/// The xattr that holds a directory's default ACL.
pub(super) const DEFAULT_ACL: &str = "system.posix_acl_default";

/// The answer to a get/list: the size when asked for it (size 0), else the bytes.
pub(super) enum XattrReply {
    Size(u32),
    Data(Vec<u8>),
}

/// How to reach a node's xattrs by name: the procfs name of its descriptor (files, directories), or
/// for a symlink `/proc/self/fd/<parent>/<name>` used with the `l*xattr` calls, which do not follow
/// the final symlink. The descriptors the path names are held open while the path is used.
struct XattrTarget {
    path: PathBuf,
    symlink: bool,
    _held: Arc<OwnedFd>,
}

impl PassthroughFs {
    fn xattr_target(&self, ino: u64) -> OpResult<XattrTarget> {
        // Only symlink nodes have a remembered name (every lookup of a symlink records it).
        let Some((parent, name, key)) = self.inodes.link_name(ino) else {
            let fd = self.node_fd(ino)?;
            return Ok(XattrTarget {
                path: PathBuf::from(proc_path(&*fd)),
                symlink: false,
                _held: fd,
            });
        };
        // A symlink: only reachable through its parent and name; check that the name still
        // refers to this very symlink.
        let pfd = self.node_fd(parent)?;
        let found = rustix::fs::statat(&*pfd, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        if key_of(&found) != key {
            return Err(Errno::EPERM);
        }
        // Any name the backing filesystem allows, UTF-8 or not.
        let path = PathBuf::from(proc_path(&*pfd)).join(&name);
        Ok(XattrTarget {
            path,
            symlink: true,
            _held: pfd,
        })
    }

    pub(super) fn op_getxattr(&self, ino: u64, name: &OsStr, size: u32) -> OpResult<XattrReply> {
        let t = self.xattr_target(ino)?;
        fault(FaultKind::Xattr)?;
        let p = t.path.as_path();
        if size == 0 {
            let n = if t.symlink {
                rustix::fs::lgetxattr_query(p, name)
            } else {
                rustix::fs::getxattr_query(p, name)
            };
            return Ok(XattrReply::Size(n.map_err(errno)? as u32));
        }
        let mut buf = vec![0u8; size as usize];
        let n = if t.symlink {
            rustix::fs::lgetxattr(p, name, &mut buf[..])
        } else {
            rustix::fs::getxattr(p, name, &mut buf[..])
        }
        .map_err(errno)?;
        buf.truncate(n);
        Ok(XattrReply::Data(buf))
    }

    /// listxattr(2) for `caller`. The daemon lists as root; a local filesystem lists trusted.*
    /// names only to a caller with CAP_SYS_ADMIN (the kernel hides their values from others, not
    /// their names: that is the filesystem's list handler's part), so for anyone else they are
    /// left out here.
    pub(super) fn op_listxattr(
        &self,
        ino: u64,
        size: u32,
        caller: &Caller,
    ) -> OpResult<XattrReply> {
        let t = self.xattr_target(ino)?;
        fault(FaultKind::Xattr)?;
        if !has_cap_sys_admin(caller.pid, caller.uid) {
            let list = without_trusted(&Self::whole_list(&t)?);
            return match size {
                0 => Ok(XattrReply::Size(list.len() as u32)),
                n if (n as usize) < list.len() => Err(Errno::ERANGE),
                _ => Ok(XattrReply::Data(list)),
            };
        }
        let p = t.path.as_path();
        if size == 0 {
            let n = if t.symlink {
                rustix::fs::llistxattr_query(p)
            } else {
                rustix::fs::listxattr_query(p)
            };
            return Ok(XattrReply::Size(n.map_err(errno)? as u32));
        }
        let mut buf = vec![0u8; size as usize];
        let n = if t.symlink {
            rustix::fs::llistxattr(p, &mut buf[..])
        } else {
            rustix::fs::listxattr(p, &mut buf[..])
        }
        .map_err(errno)?;
        buf.truncate(n);
        Ok(XattrReply::Data(buf))
    }

    /// The whole list of `t`'s attribute names, however long (it may grow between the size query
    /// and the read: asked again then).
    fn whole_list(t: &XattrTarget) -> OpResult<Vec<u8>> {
        let p = t.path.as_path();
        loop {
            let n = if t.symlink {
                rustix::fs::llistxattr_query(p)
            } else {
                rustix::fs::listxattr_query(p)
            }
            .map_err(errno)?;
            let mut buf = vec![0u8; n];
            let read = if t.symlink {
                rustix::fs::llistxattr(p, &mut buf[..])
            } else {
                rustix::fs::listxattr(p, &mut buf[..])
            };
            match read {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(rustix::io::Errno::RANGE) => continue,
                Err(e) => return Err(errno(e)),
            }
        }
    }

    /// setxattr(2) for `caller`; the daemon sets it as root, so what the kernel does to the mode
    /// for an unprivileged caller it does itself (see `kill_sgid_after_acl`).
    pub(super) fn op_setxattr(
        &self,
        ino: u64,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        caller: &Caller,
    ) -> OpResult<()> {
        self.check_writable()?;
        let flags = XattrFlags::from_bits(flags as u32).ok_or(Errno::EINVAL)?;
        let t = self.xattr_target(ino)?;
        fault(FaultKind::Xattr)?;
        let set = if t.symlink {
            rustix::fs::lsetxattr(t.path.as_path(), name, value, flags)
        } else {
            rustix::fs::setxattr(t.path.as_path(), name, value, flags)
        };
        self.forget_default_acl_if(ino, name);
        set.map_err(errno)?;
        if name == "system.posix_acl_access" && !t.symlink && caller.uid != 0 {
            self.kill_sgid_after_acl(ino, &t, caller)?;
        }
        Ok(())
    }

    /// Setting an access ACL clears the set-group-ID bit when the caller is neither in the file's
    /// group nor privileged (Linux's posix_acl_update_mode). The kernel would tell us with
    /// FUSE_SETXATTR_ACL_KILL_SGID, but fuser 0.18 cannot parse the extended setxattr request.
    fn kill_sgid_after_acl(&self, ino: u64, t: &XattrTarget, caller: &Caller) -> OpResult<()> {
        let st = rustix::fs::stat(t.path.as_path()).map_err(errno)?;
        if st.st_mode & libc::S_ISGID == 0 || in_group(caller.pid, caller.gid, st.st_gid) {
            return Ok(());
        }
        let mode = rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777 & !libc::S_ISGID);
        rustix::fs::chmod(t.path.as_path(), mode).map_err(errno)?;
        self.cache.attributes(ino);
        Ok(())
    }

    pub(super) fn op_removexattr(&self, ino: u64, name: &OsStr) -> OpResult<()> {
        self.check_writable()?;
        let t = self.xattr_target(ino)?;
        fault(FaultKind::Xattr)?;
        let removed = if t.symlink {
            rustix::fs::lremovexattr(t.path.as_path(), name)
        } else {
            rustix::fs::removexattr(t.path.as_path(), name)
        };
        self.forget_default_acl_if(ino, name);
        removed.map_err(errno)
    }

    /// Makes node `ino` forget whether it has a default ACL when `name` is that ACL (what was
    /// known decides the mode of what is created in it; see `creds`). Also after a failed call,
    /// which may have changed it partly.
    fn forget_default_acl_if(&self, ino: u64, name: &OsStr) {
        if name == DEFAULT_ACL {
            self.inodes.default_acl_changed(ino);
        }
    }
}

/// A listxattr(2) list (names, each ending in NUL) without the trusted.* names.
fn without_trusted(list: &[u8]) -> Vec<u8> {
    list.split_inclusive(|&b| b == 0)
        .filter(|name| !name.starts_with(b"trusted."))
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn trusted_names_are_left_out() {
        let list = b"user.a\0trusted.t\0security.s\0trusted.\0user.trusted.x\0";
        assert_eq!(
            super::without_trusted(list),
            b"user.a\0security.s\0user.trusted.x\0"
        );
        assert_eq!(super::without_trusted(b""), b"");
        assert_eq!(super::without_trusted(b"trusted.only\0"), b"");
    }
}
