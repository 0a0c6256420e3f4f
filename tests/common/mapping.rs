//! A writable mapping of a file, for tests that write through mmap.

use std::fs::File;

/// A writable mapping of a file (shared unless asked otherwise), unmapped on drop.
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    pub fn new(f: &File, len: usize) -> std::io::Result<Mapping> {
        Self::with_flags(f, len, libc::MAP_SHARED)
    }

    /// A writable mapping with mmap `flags` (`MAP_SHARED` or `MAP_PRIVATE`).
    pub fn with_flags(f: &File, len: usize, flags: libc::c_int) -> std::io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of `len` bytes of an open file, at an address the kernel
        // picks; nothing else refers to that memory.
        #[allow(unsafe_code)]
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` readable and writable bytes that live as long as `self`, and
        // the only slice of it is this one, borrowed from `&mut self`. Only bytes below the file
        // size are touched (the caller maps exactly the file's size), so no SIGBUS.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len)
        }
    }

    pub fn msync(&self) -> std::io::Result<()> {
        // SAFETY: syncs exactly the mapping this value owns.
        #[allow(unsafe_code)]
        let r = unsafe { libc::msync(self.ptr, self.len, libc::MS_SYNC) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns; no slice of it outlives `self`.
        #[allow(unsafe_code)]
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}
