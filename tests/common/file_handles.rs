//! File handles for tests: name_to_handle_at(2) and open_by_handle_at(2) (they need
//! CAP_DAC_READ_SEARCH), and dropping the kernel's dentry and inode caches (root), so that the
//! kernel must find a node again through the filesystem (through a FUSE mount: LOOKUP "." and "..").
//! Used by tests/posix_handles.rs and tests/boundary.rs.
//!
//! Include it with
//! ```ignore
//! #[path = "common/file_handles.rs"]
//! mod file_handles;
//! ```
#![allow(dead_code)]

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A file handle as name_to_handle_at(2) fills it: the kernel's `struct file_handle` with room
/// for the largest handle.
#[repr(C)]
#[derive(Clone)]
pub struct Handle {
    pub handle_bytes: u32,
    pub handle_type: i32,
    pub f_handle: [u8; 128],
}

impl Handle {
    pub fn bytes(&self) -> &[u8] {
        &self.f_handle[..self.handle_bytes as usize]
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Self) -> bool {
        self.handle_type == other.handle_type && self.bytes() == other.bytes()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Handle(type {}, {:02x?})",
            self.handle_type,
            self.bytes()
        )
    }
}

/// name_to_handle_at(2) of `path`, not following a final symlink.
pub fn handle_of(path: &Path) -> Handle {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut h = Handle {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let mut mount_id = 0;
    // SAFETY: `h` is a `file_handle` whose `handle_bytes` says how much room follows it; `c` is
    // NUL-terminated; every pointer outlives the call.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            (&mut h as *mut Handle).cast(),
            &mut mount_id,
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "name_to_handle_at {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
    h
}

/// open_by_handle_at(2) on the filesystem of `dir`.
pub fn open_by_handle(dir: &Path, h: &Handle, flags: i32) -> io::Result<OwnedFd> {
    let mount_fd = File::open(dir).expect("open the directory");
    let mut h = h.clone();
    // SAFETY: `h` is a valid `file_handle` the kernel only reads; the call returns a new
    // descriptor or -1.
    #[allow(unsafe_code)]
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            (&mut h as *mut Handle).cast(),
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the kernel forget every unused dentry and inode, everywhere (dirty ones stay: the
/// filesystems of `dirs` are synced first).
pub fn drop_caches(dirs: &[&Path]) {
    for dir in dirs {
        rustix::fs::syncfs(File::open(dir).unwrap()).unwrap();
    }
    fs::write("/proc/sys/vm/drop_caches", "2").expect("drop caches (needs root)");
}
