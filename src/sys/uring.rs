//! io_uring operations compio 0.18 does not provide.
//!
//! - [`Fallocate`]: `IORING_OP_FALLOCATE`, which compio lacks.
//! - [`OwnedIo`]: read or write on a window of an owned `Vec<u8>`, handing
//!   back both the buffer *and the file handle* when the operation completes. compio's `ReadAt` /
//!   `WriteAt` drop their file handle inside, so a caller that needs the file again (to continue a
//!   short read or write) must clone its `Arc` for every operation; these move it through instead.
//!
//! Every operation owns everything the kernel touches (the descriptor's owner and the buffer) until
//! compio hands it back after the completion, also when the future awaiting it is dropped early: the
//! driver keeps an operation alive until its completion arrives.

use std::ops::Range;
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

/// Which way an [`OwnedIo`] moves data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

/// pread(2) into, or pwrite(2) from, `buf[range]` through io_uring (`IORING_OP_READ` /
/// `IORING_OP_WRITE`); the kernel touches nothing outside that window.
pub struct OwnedIo<F> {
    direction: Direction,
    file: F,
    offset: u64,
    buf: Vec<u8>,
    range: Range<usize>,
}

impl<F> OwnedIo<F> {
    /// A read into `buf[range]`. Panics if `range` is not inside `buf`'s initialised length.
    pub fn read(file: F, offset: u64, buf: Vec<u8>, range: Range<usize>) -> Self {
        Self::new(Direction::Read, file, offset, buf, range)
    }

    /// A write of `buf[range]`. Panics if `range` is not inside `buf`'s initialised length.
    pub fn write(file: F, offset: u64, buf: Vec<u8>, range: Range<usize>) -> Self {
        Self::new(Direction::Write, file, offset, buf, range)
    }

    fn new(direction: Direction, file: F, offset: u64, buf: Vec<u8>, range: Range<usize>) -> Self {
        assert!(
            range.start <= range.end && range.end <= buf.len(),
            "I/O window outside the buffer"
        );
        OwnedIo {
            direction,
            file,
            offset,
            buf,
            range,
        }
    }

    /// The file handle and the buffer, after the completion.
    pub fn into_parts(self) -> (F, Vec<u8>) {
        (self.file, self.buf)
    }
}

// SAFETY: the SQE points into `self.buf`'s heap allocation, at `range`, which `new` checked lies
// within the vector's initialised length; the vector is owned by the operation, is not touched
// (read, resized or freed) by anyone until the driver hands the operation back after the kernel
// posted the completion, and moving the operation does not move the heap allocation. A read lets
// the kernel write only that window; a write lets it read only that window. The descriptor is kept
// open by `self.file` for as long.
unsafe impl<F: AsFd + Unpin> OpCode for OwnedIo<F> {
    fn create_entry(self: Pin<&mut Self>) -> OpEntry {
        let this = self.get_mut();
        let fd = Fd(this.file.as_fd().as_raw_fd());
        let len = u32::try_from(this.range.len()).unwrap_or(u32::MAX);
        let window = &mut this.buf[this.range.clone()];
        match this.direction {
            Direction::Read => opcode::Read::new(fd, window.as_mut_ptr(), len)
                .offset(this.offset)
                .build()
                .into(),
            Direction::Write => opcode::Write::new(fd, window.as_ptr(), len)
                .offset(this.offset)
                .build()
                .into(),
        }
    }
}
