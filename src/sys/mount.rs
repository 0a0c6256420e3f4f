//! Per-mount flags (mount_setattr(2)) and private copies of a mount (open_tree(2)).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::mount::OpenTreeFlags;

/// `MOUNT_ATTR_*` bits of mount_setattr(2) (linux/mount.h).
pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

/// The kernel's `struct mount_attr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached copy of the mount tree at directory `dir` (the mount holding it, rooted there, and
/// every mount below it), reachable only through the returned `O_PATH`-like descriptor; it goes
/// away with the last descriptor into it. Needs CAP_SYS_ADMIN.
pub fn clone_tree(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::AT_EMPTY_PATH;
    Ok(rustix::mount::open_tree(dir, "", flags)?)
}

/// Clears the `clear` and sets the `set` `MOUNT_ATTR_*` bits of every mount of the detached tree
/// `tree` (see [`clone_tree`]).
pub fn set_tree_attrs(tree: BorrowedFd<'_>, set: u64, clear: u64) -> io::Result<()> {
    mount_setattr(
        tree,
        c"",
        libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
        set,
        clear,
    )
}

/// Clears the `clear` and sets the `set` `MOUNT_ATTR_*` bits of the mount at `path` (not of the
/// mounts below it).
pub fn set_mount_attrs(path: &Path, set: u64, clear: u64) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    mount_setattr(
        rustix::fs::CWD.as_fd(),
        &path,
        libc::AT_SYMLINK_NOFOLLOW,
        set,
        clear,
    )
}

fn mount_setattr(
    dir: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    flags: libc::c_int,
    set: u64,
    clear: u64,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated and `attr` a valid `struct mount_attr` whose size is passed
    // along; both outlive the call, which only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir.as_raw_fd(),
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
