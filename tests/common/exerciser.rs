//! The data-integrity exerciser: one file, a long random sequence of operations with a fixed seed,
//! and an in-memory model of what the file must contain (integrity_model.rs). Used by
//! tests/integrity.rs and, tolerating injected faults, by tests/fault_injection.rs.
//!
//! Operations: buffered pwrite and pread (every read checked against the model), reads through a
//! fresh descriptor, ftruncate (shrink and grow), fallocate (allocate, KEEP_SIZE, PUNCH_HOLE,
//! ZERO_RANGE with and without KEEP_SIZE), writes through a shared mapping (mmap, store, msync,
//! munmap; mapped from the buffered descriptor and from the O_DIRECT one), O_DIRECT aligned reads
//! and writes on a second descriptor opened with O_DIRECT, and fdatasync. Every CHECK_EVERY
//! operations and at the end, the whole file is compared with the model through the view and in
//! the backing file (after fdatasync, so the comparison holds with the writeback cache too), sizes
//! included. A failure names the seed, the operation number and the last operations.
//!
//! [`Exerciser::tolerating`] makes it a program that meets I/O errors: an operation that fails
//! with one of the given errnos is counted ([`Exerciser::errors_seen`]) and done again until it
//! succeeds, as a careful program would, so the model stays exact; any other error still fails.
//! A short O_DIRECT write is counted too, and the rest written. [`Exerciser::without_mmap`] leaves
//! out the shared-mapping writes (a read error while a store faults a page in is SIGBUS).
//!
//! Include it with
//! ```ignore
//! #[path = "common/exerciser.rs"]
//! mod exerciser;
//! #[path = "common/integrity_model.rs"]
//! mod integrity_model;
//! #[path = "common/rng.rs"]
//! mod rng;
//! ```
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::integrity_model::{AlignedBuf, Falloc, FileModel, Rng};

/// The whole file is compared with the model this often.
pub const CHECK_EVERY: u64 = 1_000;
/// Largest size the file reaches.
pub const MAX_SIZE: u64 = 8 << 20;
/// O_DIRECT alignment used for offsets, lengths and buffers.
pub const ALIGN: u64 = 4096;
/// Most times one operation is tried while it keeps failing with a tolerated error.
const MAX_TRIES: u32 = 1000;

// A shared writable mapping (common/mapping.rs)
#[path = "mapping.rs"]
mod mapping;
use mapping::Mapping;

// ---------------------------------------------------------------------------------------------
// The exerciser

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Read,
    ReadFresh,
    Truncate,
    Fallocate(Falloc),
    MmapWrite,
    MmapWriteDirect,
    DirectRead,
    DirectWrite,
    Fdatasync,
}

/// Relative weights of the operations.
const MIX: &[(Op, u64)] = &[
    (Op::Write, 20),
    (Op::Read, 18),
    (Op::ReadFresh, 3),
    (Op::Truncate, 4),
    (Op::Fallocate(Falloc::Allocate), 2),
    (Op::Fallocate(Falloc::KeepSize), 2),
    (Op::Fallocate(Falloc::PunchHole), 4),
    (Op::Fallocate(Falloc::ZeroRange), 2),
    (Op::Fallocate(Falloc::ZeroRangeKeepSize), 2),
    (Op::MmapWrite, 6),
    (Op::MmapWriteDirect, 4),
    (Op::DirectRead, 14),
    (Op::DirectWrite, 14),
    (Op::Fdatasync, 1),
];

/// Errors the program met and did again, by (system call, errno).
pub type ErrorsSeen = BTreeMap<(&'static str, i32), u64>;

pub struct Exerciser {
    view: PathBuf,
    backing: PathBuf,
    file: File,
    direct: File,
    model: FileModel,
    rng: Rng,
    seed: u64,
    index: u64,
    recent: VecDeque<String>,
    counts: Vec<(Op, u64)>,
    dbuf: AlignedBuf,
    /// The errnos an operation may fail with and be done again (empty: none).
    tolerated: Vec<i32>,
    seen: RefCell<ErrorsSeen>,
    /// Failures in a row of the operation being tried.
    tries: Cell<u32>,
    short_direct_writes: u64,
    mmap: bool,
}

/// Does `$e` (an `io::Result`) until it succeeds or fails with an error the exerciser does not
/// tolerate; `$what` names the system call.
macro_rules! retry {
    ($ex:expr, $what:expr, $e:expr) => {
        loop {
            if let Some(v) = $ex.attempt($what, $e) {
                break v;
            }
        }
    };
}

impl Exerciser {
    pub fn new(view: &Path, backing: &Path, seed: u64) -> Exerciser {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(view)
            .unwrap_or_else(|e| panic!("create {}: {e}", view.display()));
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(view)
            .unwrap_or_else(|e| {
                panic!(
                    "open O_DIRECT {}: {e} (the temp dir must be on a disk-backed filesystem, \
                     e.g. TMPDIR=/var/tmp)",
                    view.display()
                )
            });
        Exerciser {
            view: view.to_path_buf(),
            backing: backing.to_path_buf(),
            file,
            direct,
            model: FileModel::new(),
            rng: Rng::new(seed),
            seed,
            index: 0,
            recent: VecDeque::new(),
            counts: MIX.iter().map(|&(op, _)| (op, 0)).collect(),
            dbuf: AlignedBuf::new(1 << 20, ALIGN as usize),
            tolerated: Vec::new(),
            seen: RefCell::default(),
            tries: Cell::new(0),
            short_direct_writes: 0,
            mmap: true,
        }
    }

    /// Operations failing with one of `errnos` are counted and done again (module docs).
    pub fn tolerating(mut self, errnos: &[i32]) -> Exerciser {
        self.tolerated = errnos.to_vec();
        self
    }

    /// No writes through shared mappings.
    pub fn without_mmap(mut self) -> Exerciser {
        self.mmap = false;
        self
    }

    /// The errors met and done again so far.
    pub fn errors_seen(&self) -> ErrorsSeen {
        self.seen.borrow().clone()
    }

    /// O_DIRECT writes that wrote less than asked (the rest was written after).
    pub fn short_direct_writes(&self) -> u64 {
        self.short_direct_writes
    }

    /// Fails with the seed, the operation number and the last operations.
    #[track_caller]
    fn fail(&self, msg: String) -> ! {
        let recent: Vec<&str> = self.recent.iter().map(String::as_str).collect();
        panic!(
            "{}: op #{} (seed {:#x}): {msg}\nlast operations, oldest first:\n  {}",
            self.view.display(),
            self.index,
            self.seed,
            recent.join("\n  ")
        );
    }

    fn note(&mut self, what: String) {
        if self.recent.len() == 24 {
            self.recent.pop_front();
        }
        self.recent.push_back(format!("#{} {what}", self.index));
    }

    #[track_caller]
    fn io<T>(&self, what: &str, r: std::io::Result<T>) -> T {
        r.unwrap_or_else(|e| self.fail(format!("{what}: {e}")))
    }

    /// The value of `r`, or `None` after a tolerated error (counted; the caller tries again).
    #[track_caller]
    fn attempt<T>(&self, what: &'static str, r: std::io::Result<T>) -> Option<T> {
        match r {
            Ok(v) => {
                self.tries.set(0);
                Some(v)
            }
            Err(e)
                if e.raw_os_error()
                    .is_some_and(|n| self.tolerated.contains(&n)) =>
            {
                let errno = e.raw_os_error().unwrap();
                *self.seen.borrow_mut().entry((what, errno)).or_default() += 1;
                self.tries.set(self.tries.get() + 1);
                if self.tries.get() >= MAX_TRIES {
                    self.fail(format!(
                        "{what}: still failing after {MAX_TRIES} tries: {e}"
                    ));
                }
                None
            }
            Err(e) => self.fail(format!("{what}: {e}")),
        }
    }

    #[track_caller]
    fn same_bytes(&self, got: &[u8], want: &[u8], what: &str) {
        if got != want {
            let first = got.iter().zip(want).position(|(a, b)| a != b);
            self.fail(format!(
                "{what}: got {} bytes, want {}; first difference at {:?}",
                got.len(),
                want.len(),
                first.or(Some(got.len().min(want.len())))
            ));
        }
    }

    fn pick(&mut self) -> Op {
        loop {
            let total: u64 = MIX.iter().map(|&(_, w)| w).sum();
            let mut x = self.rng.below(total);
            for &(op, w) in MIX {
                if x < w {
                    if !self.mmap && matches!(op, Op::MmapWrite | Op::MmapWriteDirect) {
                        break;
                    }
                    return op;
                }
                x -= w;
            }
        }
    }

    /// An offset: mostly in or just past the file, sometimes anywhere below MAX_SIZE.
    fn offset(&mut self) -> u64 {
        let size = self.model.len();
        if self.rng.chance(85) {
            self.rng.below(size + (64 << 10)).min(MAX_SIZE - 1)
        } else {
            self.rng.below(MAX_SIZE)
        }
    }

    /// A length: mostly small, sometimes up to 1 MiB; never past MAX_SIZE from `off`.
    fn length(&mut self, off: u64) -> u64 {
        let len = match self.rng.below(100) {
            0..70 => self.rng.range(1, 4096),
            70..95 => self.rng.range(4097, 128 << 10),
            _ => self.rng.range((128 << 10) + 1, 1 << 20),
        };
        len.min(MAX_SIZE - off).max(1)
    }

    /// An aligned offset and length for O_DIRECT.
    fn aligned_range(&mut self) -> (u64, u64) {
        let blocks = MAX_SIZE / ALIGN;
        let size_blocks = self.model.len().div_ceil(ALIGN);
        let off = if self.rng.chance(85) {
            self.rng.below(size_blocks + 16).min(blocks - 1)
        } else {
            self.rng.below(blocks)
        };
        let n = if self.rng.chance(90) {
            self.rng.range(1, 64)
        } else {
            self.rng.range(65, 256)
        };
        let n = n.min(blocks - off);
        (off * ALIGN, n * ALIGN)
    }

    /// pread until `len` bytes or EOF.
    fn pread_full(&self, f: &File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let n = f.read_at(&mut out[got..], off + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        out.truncate(got);
        Ok(out)
    }

    fn step(&mut self) {
        let op = self.pick();
        if let Some(c) = self.counts.iter_mut().find(|(o, _)| *o == op) {
            c.1 += 1;
        }
        match op {
            Op::Write => {
                let off = self.offset();
                let len = self.length(off);
                let data = self.rng.bytes(len as usize);
                self.note(format!("pwrite off {off} len {len}"));
                retry!(self, "pwrite", self.file.write_all_at(&data, off));
                self.model.write(off, &data);
            }
            Op::Read | Op::ReadFresh => {
                let off = self.offset();
                let len = self.length(off) as usize;
                let fresh = op == Op::ReadFresh;
                self.note(format!("pread off {off} len {len} fresh {fresh}"));
                let got = if fresh {
                    let f = retry!(self, "open", File::open(&self.view));
                    retry!(self, "pread", self.pread_full(&f, off, len))
                } else {
                    retry!(self, "pread", self.pread_full(&self.file, off, len))
                };
                let want = self.model.read(off, len);
                self.same_bytes(&got, want, &format!("pread off {off} len {len}"));
            }
            Op::Truncate => {
                let size = self.model.len();
                let len = if self.rng.chance(60) && size > 0 {
                    self.rng.below(size)
                } else {
                    self.rng.below(MAX_SIZE + 1)
                };
                self.note(format!("ftruncate {len} (from {size})"));
                retry!(self, "ftruncate", self.file.set_len(len));
                self.model.truncate(len);
            }
            Op::Fallocate(mode) => {
                let off = self.offset();
                let len = self.length(off);
                self.note(format!("fallocate {mode:?} off {off} len {len}"));
                retry!(
                    self,
                    "fallocate",
                    rustix::fs::fallocate(&self.file, mode.flags(), off, len).map_err(Into::into)
                );
                self.model.fallocate(mode, off, len);
            }
            Op::MmapWrite => self.mmap_write(false),
            Op::MmapWriteDirect => self.mmap_write(true),
            Op::DirectRead => {
                let (off, len) = self.aligned_range();
                self.note(format!("O_DIRECT pread off {off} len {len}"));
                let n = loop {
                    let buf = &mut self.dbuf.as_mut_slice()[..len as usize];
                    let r = rustix::io::pread(&self.direct, &mut *buf, off).map_err(Into::into);
                    if let Some(n) = self.attempt("O_DIRECT pread", r) {
                        break n;
                    }
                };
                let got = self.dbuf.as_slice()[..n].to_vec();
                let want = self.model.read(off, len as usize);
                self.same_bytes(&got, want, &format!("O_DIRECT pread off {off} len {len}"));
            }
            Op::DirectWrite => {
                let (off, len) = self.aligned_range();
                let mut data = vec![0u8; len as usize];
                self.rng.fill(&mut data);
                self.note(format!("O_DIRECT pwrite off {off} len {len}"));
                self.dbuf.as_mut_slice()[..len as usize].copy_from_slice(&data);
                let mut done = 0;
                while done < len {
                    let window = &self.dbuf.as_slice()[done as usize..len as usize];
                    let r = rustix::io::pwrite(&self.direct, window, off + done);
                    match self.attempt("O_DIRECT pwrite", r.map_err(Into::into)) {
                        None => continue,
                        Some(0) => self.fail(format!("O_DIRECT pwrite off {off} len {len}: 0")),
                        Some(n) if n as u64 == len - done => done = len,
                        Some(n) if self.tolerated.is_empty() => {
                            self.fail(format!("O_DIRECT pwrite off {off} len {len}: wrote {n}"))
                        }
                        Some(n) => {
                            // POSIX allows a short count; a program writes the rest.
                            if !(n as u64).is_multiple_of(ALIGN) {
                                self.fail(format!("O_DIRECT pwrite: short count {n} unaligned"));
                            }
                            self.short_direct_writes += 1;
                            done += n as u64;
                        }
                    }
                }
                self.model.write(off, &data);
            }
            Op::Fdatasync => {
                self.note("fdatasync".into());
                retry!(self, "fdatasync", self.file.sync_data());
            }
        }
    }

    /// Stores random bytes through a shared mapping of the file, made from the buffered descriptor
    /// or (`direct`) the O_DIRECT one: the kernel then writes the pages back through that handle,
    /// the last partial page included, neither aligned nor meant to bypass the cache. Done again
    /// from the mapping on (msync reports a failed write-back, and the pages are clean after it).
    fn mmap_write(&mut self, direct: bool) {
        let size = self.model.len();
        if size == 0 {
            self.note("mmap write skipped: empty file".into());
            return;
        }
        let off = self.rng.below(size);
        let len = self.rng.range(1, (size - off).min(64 << 10));
        let data = self.rng.bytes(len as usize);
        self.note(format!(
            "mmap write off {off} len {len} (map {size}, direct {direct})"
        ));
        let f = if direct { &self.direct } else { &self.file };
        loop {
            let mut map = self.io("mmap", Mapping::new(f, size as usize));
            map.bytes()[off as usize..(off + len) as usize].copy_from_slice(&data);
            if self.attempt("msync", map.msync()).is_some() {
                break;
            }
        }
        self.model.write(off, &data);
    }

    /// The whole file, through the view and in the backing file, against the model.
    fn check_all(&mut self, what: &str) {
        self.note(format!("full check ({what})"));
        retry!(self, "fdatasync", self.file.sync_data());
        let want_len = self.model.len();
        let size = retry!(self, "fstat", self.file.metadata()).size();
        if size != want_len {
            self.fail(format!(
                "{what}: size through the view {size}, model {want_len}"
            ));
        }
        let view = retry!(
            self,
            "pread",
            self.pread_full(&self.file, 0, MAX_SIZE as usize + 1)
        );
        self.same_bytes(
            &view,
            self.model.content(),
            &format!("{what}: whole file via the view"),
        );
        let bsize = self
            .io("stat backing", std::fs::metadata(&self.backing))
            .size();
        if bsize != want_len {
            self.fail(format!(
                "{what}: size in the backing {bsize}, model {want_len}"
            ));
        }
        let backing = self.io("read the backing file", std::fs::read(&self.backing));
        self.same_bytes(
            &backing,
            self.model.content(),
            &format!("{what}: whole file in the backing"),
        );
    }

    /// Runs `ops` operations, checking the whole file every CHECK_EVERY and at the end.
    pub fn run(&mut self, ops: u64) {
        let start = Instant::now();
        for i in 0..ops {
            self.index = i;
            self.step();
            if (i + 1) % CHECK_EVERY == 0 {
                self.check_all(&format!("after {} ops", i + 1));
            }
        }
        self.index = ops;
        self.check_all("at the end");
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(op, n)| format!("{op:?}: {n}"))
            .collect();
        eprintln!(
            "{}: {ops} ops (seed {:#x}) in {:?}, final size {}; {}; errors met and done again: \
             {:?}",
            self.view.display(),
            self.seed,
            start.elapsed(),
            self.model.len(),
            counts.join(", "),
            self.seen.borrow()
        );
    }

    /// The model's content now (what the file must hold).
    pub fn expected(&self) -> &[u8] {
        self.model.content()
    }
}
