//! File handles (name_to_handle_at(2) / open_by_handle_at(2)): a persistent name for an inode that
//! costs no open descriptor, so the inode table can remember any number of files with a bounded
//! number of descriptors.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const MAX_HANDLE_SZ: usize = libc::MAX_HANDLE_SZ as usize;

/// The kernel's `struct file_handle` followed by room for the largest handle.
#[repr(C)]
struct RawHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_HANDLE_SZ],
}

/// An opaque handle of one inode of the backing filesystem (the kernel's `struct file_handle`;
/// not to be confused with fuser's `FileHandle`, the number of an open file of the mount).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackingHandle {
    handle_type: i32,
    bytes: Box<[u8]>,
}

impl BackingHandle {
    /// A handle made of its parts (as name_to_handle_at(2) returns them); tests make up handles.
    #[cfg(test)]
    pub fn from_parts(handle_type: i32, bytes: &[u8]) -> Self {
        BackingHandle {
            handle_type,
            bytes: bytes.into(),
        }
    }

    /// The filesystem's handle type (`FILEID_*`).
    pub fn handle_type(&self) -> i32 {
        self.handle_type
    }

    /// The opaque handle bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The handle of the object `fd` refers to (any descriptor, `O_PATH` included).
pub fn handle_of(fd: BorrowedFd<'_>) -> io::Result<BackingHandle> {
    handle_at(fd, c"", libc::AT_EMPTY_PATH)
}

/// The handle of `name` in directory `dir`, without following a final symlink.
pub fn handle_of_child(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<BackingHandle> {
    let name = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    handle_at(dir, &name, 0)
}

fn handle_at(
    dir: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    flags: libc::c_int,
) -> io::Result<BackingHandle> {
    let mut raw = RawHandle {
        handle_bytes: MAX_HANDLE_SZ as libc::c_uint,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `raw` is a valid, writable `file_handle` whose `handle_bytes` says how much room
    // follows it; `name` is NUL-terminated; `mount_id` is a valid out-pointer. All pointers outlive
    // the call.
    let rc = unsafe {
        libc::name_to_handle_at(
            dir.as_raw_fd(),
            name.as_ptr(),
            (&mut raw as *mut RawHandle).cast::<libc::file_handle>(),
            &mut mount_id,
            flags,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (raw.handle_bytes as usize).min(MAX_HANDLE_SZ);
    Ok(BackingHandle {
        handle_type: raw.handle_type,
        bytes: raw.f_handle[..len].into(),
    })
}

/// Opens the object named by `handle` on the filesystem `mount_fd` lives on. Needs
/// CAP_DAC_READ_SEARCH.
pub fn open_by_handle(
    mount_fd: BorrowedFd<'_>,
    handle: &BackingHandle,
    flags: i32,
) -> io::Result<OwnedFd> {
    let mut raw = RawHandle {
        handle_bytes: handle.bytes.len() as libc::c_uint,
        handle_type: handle.handle_type,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    raw.f_handle[..handle.bytes.len()].copy_from_slice(&handle.bytes);
    // SAFETY: `raw` is a valid `file_handle` holding `handle_bytes` bytes of handle; the kernel only
    // reads it. The call returns a new descriptor or -1.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            (&mut raw as *mut RawHandle).cast::<libc::file_handle>(),
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn round_trip_through_a_handle() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let h = match handle_of(f.as_fd()) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("file handles unsupported here ({e}); skipping");
                return;
            }
        };
        let root = std::fs::File::open(dir.path()).unwrap();
        let fd = open_by_handle(root.as_fd(), &h, libc::O_PATH).unwrap();
        let a = rustix::fs::fstat(&fd).unwrap();
        let b = rustix::fs::fstat(&f).unwrap();
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
        assert_eq!(handle_of(fd.as_fd()).unwrap(), h);
        let by_name = handle_of_child(root.as_fd(), std::ffi::OsStr::new("f")).unwrap();
        assert_eq!(by_name, h);
    }
}
