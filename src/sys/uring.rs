//! io_uring operations compio 0.18 does not provide.

use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;

use compio::driver::{OpCode, OpEntry};
use io_uring::{opcode, types::Fd};

/// fallocate(2) through io_uring (`IORING_OP_FALLOCATE`), with any mode the backing file accepts.
pub struct Fallocate<S> {
    fd: S,
    mode: i32,
    offset: u64,
    len: u64,
}

impl<S> Fallocate<S> {
    pub fn new(fd: S, mode: i32, offset: u64, len: u64) -> Self {
        Fallocate {
            fd,
            mode,
            offset,
            len,
        }
    }
}

// SAFETY: the entry references only the file descriptor, which `self.fd` keeps open until the driver
// hands the operation back after its completion; no memory is shared with the kernel.
unsafe impl<S: AsFd> OpCode for Fallocate<S> {
    fn create_entry(self: Pin<&mut Self>) -> OpEntry {
        opcode::Fallocate::new(Fd(self.fd.as_fd().as_raw_fd()), self.len)
            .offset(self.offset)
            .mode(self.mode)
            .build()
            .into()
    }
}
