//! Data-integrity exerciser: one file, a long random sequence of operations with a fixed seed, and
//! an in-memory model of what the file must contain (tests/common/integrity_model.rs).
//!
//! Operations: buffered pwrite and pread (every read checked against the model), reads through a
//! fresh descriptor, ftruncate (shrink and grow), fallocate (allocate, KEEP_SIZE, PUNCH_HOLE,
//! ZERO_RANGE with and without KEEP_SIZE), writes through a shared mapping (mmap, store, msync,
//! munmap; mapped from the buffered descriptor and from the O_DIRECT one), O_DIRECT aligned reads and writes on a second descriptor opened with O_DIRECT, and
//! fdatasync. Every CHECK_EVERY operations and at the end, the whole file is compared with the
//! model through the view and in the backing file (after fdatasync, so the comparison holds with
//! the writeback cache too), sizes included.
//!
//! It runs on a plain directory (the model and the operations state POSIX) and through arsyncfs,
//! with the default settings (`--cache auto`), with the writeback cache (`--writeback`), in the
//! other cache modes (`--cache always`, `--cache never`), with kernel passthrough (`--passthrough`)
//! and with one reactor per CPU (`--reactors 0`).
//! The temp dirs must be on a disk-backed filesystem (O_DIRECT): TMPDIR, or /tmp.
//!
//! Lengths: `cargo test --release --test integrity` runs the CI form (CI_OPS operations per
//! target). ARSYNCFS_LONG=1 runs LONG_OPS (100,000) instead, as does the ignored test `long_mount`
//! (`-- --ignored`); ARSYNCFS_INTEGRITY_OPS=N sets any count, ARSYNCFS_INTEGRITY_SEED=S another
//! seed. A failure names the seed, the operation number and the last operations.

#[path = "common/integrity_model.rs"]
mod integrity_model;
#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use integrity_model::{AlignedBuf, Falloc, FileModel, Rng};

/// Operations per target in the CI form.
const CI_OPS: u64 = 10_000;
/// Operations per target in the long form.
const LONG_OPS: u64 = 100_000;
/// The whole file is compared with the model this often.
const CHECK_EVERY: u64 = 1_000;
const SEED: u64 = 0x5eed_a5f5;
/// Largest size the file reaches.
const MAX_SIZE: u64 = 8 << 20;
/// O_DIRECT alignment used for offsets, lengths and buffers.
const ALIGN: u64 = 4096;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = if let Some(hex) = v.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        v.parse()
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

fn ops_count(default: u64) -> u64 {
    if let Some(n) = env_u64("ARSYNCFS_INTEGRITY_OPS") {
        return n;
    }
    if std::env::var("ARSYNCFS_LONG").is_ok_and(|v| v == "1") {
        return LONG_OPS;
    }
    default
}

fn seed() -> u64 {
    env_u64("ARSYNCFS_INTEGRITY_SEED").unwrap_or(SEED)
}

// ---------------------------------------------------------------------------------------------
// A shared writable mapping

struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn new(f: &File, len: usize) -> std::io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of `len` bytes of an open file, at an address the kernel
        // picks; nothing else refers to that memory.
        #[allow(unsafe_code)]
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` readable and writable bytes that live as long as `self`, and
        // the only slice of it is this one, borrowed from `&mut self`. Only bytes below the file
        // size are touched (the caller maps exactly the file's size), so no SIGBUS.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.len)
        }
    }

    fn msync(&self) -> std::io::Result<()> {
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

struct Exerciser {
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
}

impl Exerciser {
    fn new(view: &Path, backing: &Path, seed: u64) -> Exerciser {
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
        }
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
        let total: u64 = MIX.iter().map(|&(_, w)| w).sum();
        let mut x = self.rng.below(total);
        for &(op, w) in MIX {
            if x < w {
                return op;
            }
            x -= w;
        }
        unreachable!()
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
                self.io("pwrite", self.file.write_all_at(&data, off));
                self.model.write(off, &data);
            }
            Op::Read | Op::ReadFresh => {
                let off = self.offset();
                let len = self.length(off) as usize;
                let fresh = op == Op::ReadFresh;
                self.note(format!("pread off {off} len {len} fresh {fresh}"));
                let got = if fresh {
                    let f = self.io("open", File::open(&self.view));
                    self.io("pread (fresh open)", self.pread_full(&f, off, len))
                } else {
                    self.io("pread", self.pread_full(&self.file, off, len))
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
                self.io("ftruncate", self.file.set_len(len));
                self.model.truncate(len);
            }
            Op::Fallocate(mode) => {
                let off = self.offset();
                let len = self.length(off);
                self.note(format!("fallocate {mode:?} off {off} len {len}"));
                let r = rustix::fs::fallocate(&self.file, mode.flags(), off, len);
                self.io(&format!("fallocate {mode:?}"), r.map_err(Into::into));
                self.model.fallocate(mode, off, len);
            }
            Op::MmapWrite => self.mmap_write(false),
            Op::MmapWriteDirect => self.mmap_write(true),
            Op::DirectRead => {
                let (off, len) = self.aligned_range();
                self.note(format!("O_DIRECT pread off {off} len {len}"));
                let buf = &mut self.dbuf.as_mut_slice()[..len as usize];
                let r = rustix::io::pread(&self.direct, &mut *buf, off);
                let n = match r {
                    Ok(n) => n,
                    Err(e) => self.fail(format!("O_DIRECT pread off {off} len {len}: {e}")),
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
                let r =
                    rustix::io::pwrite(&self.direct, &self.dbuf.as_slice()[..len as usize], off);
                match r {
                    Ok(n) if n as u64 == len => {}
                    Ok(n) => self.fail(format!("O_DIRECT pwrite off {off} len {len}: wrote {n}")),
                    Err(e) => self.fail(format!("O_DIRECT pwrite off {off} len {len}: {e}")),
                }
                self.model.write(off, &data);
            }
            Op::Fdatasync => {
                self.note("fdatasync".into());
                self.io("fdatasync", self.file.sync_data());
            }
        }
    }

    /// Stores random bytes through a shared mapping of the file, made from the buffered descriptor
    /// or (`direct`) the O_DIRECT one: the kernel then writes the pages back through that handle,
    /// the last partial page included, neither aligned nor meant to bypass the cache.
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
        let mut map = self.io("mmap", Mapping::new(f, size as usize));
        map.bytes()[off as usize..(off + len) as usize].copy_from_slice(&data);
        self.io("msync", map.msync());
        drop(map);
        self.model.write(off, &data);
    }

    /// The whole file, through the view and in the backing file, against the model.
    fn check_all(&mut self, what: &str) {
        self.note(format!("full check ({what})"));
        self.io("fdatasync before the check", self.file.sync_data());
        let want_len = self.model.len();
        let size = self.io("fstat", self.file.metadata()).size();
        if size != want_len {
            self.fail(format!(
                "{what}: size through the view {size}, model {want_len}"
            ));
        }
        let view = self.io(
            "read the view",
            self.pread_full(&self.file, 0, MAX_SIZE as usize + 1),
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

    fn run(&mut self, ops: u64) {
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
            "{}: {ops} ops (seed {:#x}) in {:?}, final size {}; {}",
            self.view.display(),
            self.seed,
            start.elapsed(),
            self.model.len(),
            counts.join(", ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Targets

fn run_plain(ops: u64) {
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-plain-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("data");
    Exerciser::new(&path, &path, seed()).run(ops);
}

fn run_mounted(args: &[&str], ops: u64) {
    let m = mount::Mounted::with_args(args);
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Exerciser::new(
            &m.mountpoint().join("data"),
            &m.backing().join("data"),
            seed(),
        )
        .run(ops)
    }));
    if let Err(panic) = run {
        eprintln!("arsyncfs {args:?} stderr:\n{}", m.stderr());
        std::panic::resume_unwind(panic);
    }
    m.unmount();
}

#[test]
fn plain() {
    run_plain(ops_count(CI_OPS));
}

#[test]
fn mount() {
    run_mounted(&[], ops_count(CI_OPS));
}

/// With the FUSE writeback cache the kernel holds written pages and sends them later: the model
/// must still hold through the view, and in the backing file after fdatasync.
#[test]
fn mount_writeback() {
    run_mounted(&["--writeback"], ops_count(CI_OPS));
}

/// One reactor per CPU: requests of one file go to whichever reactor the session thread's CPU has.
#[test]
fn mount_reactors_per_cpu() {
    run_mounted(&["--reactors", "0"], ops_count(CI_OPS));
}

/// With kernel passthrough the kernel reads and writes the backing file itself.
#[test]
fn mount_passthrough() {
    run_mounted(&["--passthrough"], ops_count(CI_OPS));
}

/// `--cache always`: a day's timeouts, the writeback cache and kept pages; the backing changes only
/// through the mount here, so the model must hold as in the default mode.
#[test]
fn mount_cache_always() {
    run_mounted(&["--cache", "always"], ops_count(CI_OPS));
}

/// `--cache never`: every read and write reaches the daemon (FOPEN_DIRECT_IO), shared mappings
/// included through the kernel's direct-I/O mmap support.
#[test]
fn mount_cache_never() {
    run_mounted(&["--cache", "never"], ops_count(CI_OPS));
}

#[test]
#[ignore = "long form: 100,000 operations (run with --ignored, or ARSYNCFS_LONG=1)"]
fn long_mount() {
    run_mounted(&[], ops_count(LONG_OPS).max(LONG_OPS));
}

#[test]
#[ignore = "long form: 100,000 operations (run with --ignored, or ARSYNCFS_LONG=1)"]
fn long_mount_writeback() {
    run_mounted(&["--writeback"], ops_count(LONG_OPS).max(LONG_OPS));
}

#[test]
#[ignore = "long form: 100,000 operations (run with --ignored, or ARSYNCFS_LONG=1)"]
fn long_mount_passthrough() {
    run_mounted(&["--passthrough"], ops_count(LONG_OPS).max(LONG_OPS));
}

#[test]
#[ignore = "long form: 100,000 operations (run with --ignored, or ARSYNCFS_LONG=1)"]
fn long_plain() {
    run_plain(ops_count(LONG_OPS).max(LONG_OPS));
}
