//! Building blocks of the data-integrity exerciser (tests/integrity.rs), also used by
//! tests/posix_odirect.rs:
//! - [`Rng`]: a small xorshift64* generator, so a run is fully determined by its seed;
//! - [`AlignedBuf`]: a buffer whose usable part starts at an aligned address (for O_DIRECT),
//!   carved out of a plain `Vec` without `unsafe`;
//! - [`FileModel`]: the expected content of a file, updated with the POSIX meaning of each
//!   operation (pwrite, ftruncate, the fallocate modes).
//!
//! Include it with
//! ```ignore
//! #[path = "common/integrity_model.rs"]
//! mod integrity_model;
//! ```
#![allow(dead_code)]

#[allow(unused_imports)] // not every test file draws random numbers
pub use crate::rng::Rng;

/// `len` bytes starting at an address aligned to `align` (a power of two), inside a `Vec`.
pub struct AlignedBuf {
    vec: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize, align: usize) -> AlignedBuf {
        assert!(align.is_power_of_two());
        let vec = vec![0u8; len + align];
        let start = vec.as_ptr().align_offset(align);
        assert!(start < align, "cannot align a Vec<u8> to {align}");
        AlignedBuf { vec, start, len }
    }

    /// A view starting `skew` bytes after the aligned start (to make misaligned buffers).
    pub fn skewed_mut(&mut self, skew: usize, len: usize) -> &mut [u8] {
        &mut self.vec[self.start + skew..self.start + skew + len]
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.vec[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.start + self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

/// fallocate(2) modes the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Falloc {
    /// Mode 0: allocate, extending the size if the range ends past EOF.
    Allocate,
    /// FALLOC_FL_KEEP_SIZE: allocate, size unchanged.
    KeepSize,
    /// FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE: the range (up to EOF) reads as zeros.
    PunchHole,
    /// FALLOC_FL_ZERO_RANGE: the range reads as zeros; the size grows to its end.
    ZeroRange,
    /// FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE.
    ZeroRangeKeepSize,
}

impl Falloc {
    pub fn flags(self) -> rustix::fs::FallocateFlags {
        use rustix::fs::FallocateFlags as F;
        match self {
            Falloc::Allocate => F::empty(),
            Falloc::KeepSize => F::KEEP_SIZE,
            Falloc::PunchHole => F::PUNCH_HOLE | F::KEEP_SIZE,
            Falloc::ZeroRange => F::ZERO_RANGE,
            Falloc::ZeroRangeKeepSize => F::ZERO_RANGE | F::KEEP_SIZE,
        }
    }
}

/// The expected content of one file.
#[derive(Debug, Clone, Default)]
pub struct FileModel {
    data: Vec<u8>,
}

impl FileModel {
    pub fn new() -> FileModel {
        FileModel::default()
    }

    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn content(&self) -> &[u8] {
        &self.data
    }

    fn grow_to(&mut self, end: u64) {
        let end = usize::try_from(end).expect("model size fits in memory");
        if end > self.data.len() {
            self.data.resize(end, 0);
        }
    }

    /// pwrite(2): bytes at `off`; a gap before it reads as zeros.
    pub fn write(&mut self, off: u64, bytes: &[u8]) {
        let end = off + bytes.len() as u64;
        self.grow_to(end);
        self.data[off as usize..end as usize].copy_from_slice(bytes);
    }

    /// ftruncate(2).
    pub fn truncate(&mut self, len: u64) {
        let len = usize::try_from(len).expect("model size fits in memory");
        self.data.resize(len, 0);
    }

    /// What pread(2) of `len` bytes at `off` returns (short at EOF, empty past it).
    pub fn read(&self, off: u64, len: usize) -> &[u8] {
        let size = self.data.len() as u64;
        if off >= size {
            return &[];
        }
        let end = (off + len as u64).min(size);
        &self.data[off as usize..end as usize]
    }

    /// fallocate(2) with `mode` over `off..off + len`.
    pub fn fallocate(&mut self, mode: Falloc, off: u64, len: u64) {
        let end = off + len;
        let size = self.len();
        match mode {
            Falloc::Allocate => self.grow_to(end),
            Falloc::KeepSize => {}
            Falloc::PunchHole | Falloc::ZeroRangeKeepSize => {
                if off < size {
                    self.data[off as usize..end.min(size) as usize].fill(0);
                }
            }
            Falloc::ZeroRange => {
                self.grow_to(end);
                self.data[off as usize..end as usize].fill(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_semantics() {
        let mut m = FileModel::new();
        m.write(4, b"abcd");
        assert_eq!(m.content(), b"\0\0\0\0abcd");
        assert_eq!(m.read(6, 10), b"cd");
        assert_eq!(m.read(8, 1), b"");
        m.fallocate(Falloc::PunchHole, 5, 100);
        assert_eq!(m.content(), b"\0\0\0\0a\0\0\0");
        m.fallocate(Falloc::ZeroRange, 6, 4);
        assert_eq!(m.len(), 10);
        m.fallocate(Falloc::KeepSize, 0, 100);
        m.fallocate(Falloc::ZeroRangeKeepSize, 0, 100);
        assert_eq!(m.len(), 10);
        m.fallocate(Falloc::Allocate, 0, 12);
        assert_eq!(m.len(), 12);
        m.truncate(2);
        assert_eq!(m.content(), b"\0\0");
    }

    #[test]
    fn aligned() {
        let mut b = AlignedBuf::new(8192, 4096);
        assert_eq!(b.as_slice().as_ptr() as usize % 4096, 0);
        assert_eq!(b.as_mut_slice().len(), 8192);
        assert_eq!(b.skewed_mut(1, 4096).as_ptr() as usize % 4096, 1);
    }
}
