//! O_DIRECT through the mount: fio with `direct=1` and `verify=crc32c` on the psync, libaio and
//! io_uring engines (4 KiB random and 1 MiB sequential blocks, queue depth 1 and 16); unaligned
//! O_DIRECT requests get exactly what the backing file gives (EINVAL for an unaligned offset or
//! length; a buffer misaligned in memory is invisible to a FUSE daemon, so the view may serve it);
//! O_DIRECT reads see earlier buffered writes and buffered reads see O_DIRECT writes.
//! Each check runs on a plain directory and through arsyncfs in each cache mode (see
//! tests/common/fs_util.rs).
//!
//! O_DIRECT needs a backing directory on a real disk: the temp dirs are made under TMPDIR (or
//! /tmp), and every check first makes sure the backing filesystem accepts O_DIRECT, failing with
//! a clear message otherwise (tmpfs refuses it: run with TMPDIR=/var/tmp there).

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;
#[path = "common/integrity_model.rs"]
mod integrity_model;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::Command;

use fs_util::*;
use integrity_model::{AlignedBuf, Rng};

fs_tests!(
    cache_modes:
    fio_psync,
    fio_libaio,
    fio_io_uring,
    unaligned_same_as_backing,
    direct_and_buffered_agree,
    no_stale_pages_after_async_direct_writes,
    no_stale_pages_after_direct_writes_switched_on_with_fcntl,
);

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

fn open_direct(path: &Path, write: bool) -> File {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap_or_else(|e| panic!("open O_DIRECT {}: {e}", path.display()))
}

/// Fails clearly when the backing directory cannot do O_DIRECT at all (tmpfs).
fn require_odirect(env: &Env) {
    let probe = env.b(".odirect-probe");
    fs::write(&probe, vec![0u8; 4096]).unwrap();
    let r = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe);
    fs::remove_file(&probe).unwrap();
    if let Err(e) = r {
        let fs_type = rustix::fs::statfs(&env.backing)
            .map(|s| format!("{:#x}", s.f_type))
            .unwrap_or_default();
        panic!(
            "the backing dir {} (fs type {fs_type}) refuses O_DIRECT ({e}); \
             run the tests with TMPDIR on a disk-backed filesystem, e.g. TMPDIR=/var/tmp",
            env.backing.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// fio

/// One fio job with direct=1 and crc32c verification: writes `size` with `rw`, then reads it all
/// back through the same engine and queue depth and checks every block.
fn fio(env: &Env, engine: &str, rw: &str, bs: &str, iodepth: u32, size: &str) {
    let name = format!("{engine}-{rw}-{bs}-qd{iodepth}");
    let file = format!("{name}.dat");
    let out = Command::new("fio")
        .arg(format!("--name={name}"))
        .arg(format!("--directory={}", env.view.display()))
        .arg(format!("--filename={file}"))
        .arg(format!("--size={size}"))
        .arg(format!("--rw={rw}"))
        .arg(format!("--bs={bs}"))
        .arg(format!("--ioengine={engine}"))
        .arg(format!("--iodepth={iodepth}"))
        .args([
            "--direct=1",
            // No verify state files in the current directory (the repository, under cargo test).
            "--verify_state_save=0",
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_fatal=1",
            "--exitall_on_error=1",
            "--randrepeat=1",
            "--norandommap=0",
        ])
        .output()
        .expect("run fio (is it installed? scripts/setup.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("err= 0"),
        "fio {name} on {} failed ({}):\n{stdout}\n{stderr}",
        env.view.display(),
        out.status
    );
    // fio read back what it wrote; the backing file holds the same bytes as the view.
    let v = fs::read(env.v(&file)).unwrap();
    let b = fs::read(env.b(&file)).unwrap();
    assert_bytes_eq(&v, &b, &format!("{file}: view vs backing after fio"));
    fs::remove_file(env.v(&file)).unwrap();
}

/// The block-size / queue-depth matrix for one engine.
fn fio_matrix(env: &Env, engine: &str, depths: &[u32]) {
    require_odirect(env);
    for &qd in depths {
        fio(env, engine, "randwrite", "4k", qd, "16m");
        fio(env, engine, "write", "1m", qd, "64m");
    }
}

fn fio_psync(env: &Env) {
    // psync is synchronous: one request in flight whatever the iodepth.
    fio_matrix(env, "psync", &[1]);
}

fn fio_libaio(env: &Env) {
    fio_matrix(env, "libaio", &[1, 16]);
}

fn fio_io_uring(env: &Env) {
    fio_matrix(env, "io_uring", &[1, 16]);
}

// ---------------------------------------------------------------------------------------------
// Unaligned requests

/// What one pread/pwrite gave: bytes, or an errno.
fn outcome(r: rustix::io::Result<usize>, data: &[u8]) -> Result<Vec<u8>, i32> {
    match r {
        Ok(n) => Ok(data[..n].to_vec()),
        Err(e) => Err(e.raw_os_error()),
    }
}

fn describe(o: &Result<Vec<u8>, i32>) -> String {
    match o {
        Ok(d) => format!("Ok({} bytes, fnv {:016x})", d.len(), fnv64(d)),
        Err(e) => errname(*e),
    }
}

/// Every O_DIRECT read and write, aligned or not, gives through the view exactly what the same
/// request gives on the backing file: the same errno (EINVAL for an unaligned offset or length on
/// a block device filesystem) or the same bytes.
fn unaligned_same_as_backing(env: &Env) {
    require_odirect(env);
    let size = 64 * KIB;
    let data = pseudo_random(7, size);
    write_file(env, "f", &data);
    let view = open_direct(&env.v("f"), true);
    let back = open_direct(&env.b("f"), true);
    let mut buf = AlignedBuf::new(16 * KIB, 4096);
    // (offset, length, buffer misalignment)
    let reads: &[(u64, usize, usize)] = &[
        (0, 4096, 0),
        (1, 4096, 0),
        (511, 512, 0),
        (0, 100, 0),
        (4096, 4000, 0),
        (4096, 4097, 0),
        (512, 512, 0),
        (8192, 8192, 0),
        ((size - 512) as u64, 4096, 0),
        (size as u64, 4096, 0),
        ((size + 4096) as u64, 4096, 0),
        (0, 4096, 512),
    ];
    for &(off, len, skew) in reads {
        let what = format!("O_DIRECT pread off {off} len {len} buffer skew {skew}");
        let slice = buf.skewed_mut(skew, len);
        let rv = outcome(rustix::io::pread(&view, &mut *slice, off), slice);
        let slice = buf.skewed_mut(skew, len);
        let rb = outcome(rustix::io::pread(&back, &mut *slice, off), slice);
        assert!(
            rv == rb,
            "{what}: view {} vs backing {}",
            describe(&rv),
            describe(&rb)
        );
        if let Ok(d) = &rv {
            let o = off as usize;
            assert_bytes_eq(d, &data[o.min(size)..(o + d.len()).min(size)], &what);
        }
    }
    // A user buffer misaligned in memory: the daemon never sees the caller's buffer (the kernel
    // copies between it and the FUSE request), so it cannot tell; the mount serves the read (with
    // the right bytes) where the backing file says EINVAL. Documented in docs/semantics.md. With
    // passthrough the kernel reads the backing file with the caller's buffer: EINVAL as there.
    let slice = buf.skewed_mut(1, 4096);
    let rb = outcome(rustix::io::pread(&back, &mut *slice, 0), slice);
    assert_eq!(rb, Err(libc::EINVAL), "backing: misaligned buffer");
    let slice = buf.skewed_mut(1, 4096);
    let rv = outcome(rustix::io::pread(&view, &mut *slice, 0), slice);
    if env.mounted && !env.passthrough {
        let d = rv.unwrap_or_else(|e| panic!("view: misaligned buffer: errno {e}"));
        assert_bytes_eq(&d, &data[..4096], "view: misaligned buffer");
    } else {
        assert_eq!(rv, Err(libc::EINVAL), "view: misaligned buffer");
    }
    // The cases the kernel documents as EINVAL for O_DIRECT on a block filesystem.
    for (off, len) in [(1u64, 4096usize), (0, 100)] {
        let slice = buf.skewed_mut(0, len);
        expect_errno(
            rustix::io::pread(&view, slice, off),
            libc::EINVAL,
            &format!("unaligned O_DIRECT pread off {off} len {len} through the view"),
        );
    }
    // Writes: an unaligned one fails the same way and changes nothing.
    let writes: &[(u64, usize, usize)] = &[(1, 4096, 0), (0, 100, 0), (4096, 4000, 0)];
    for &(off, len, skew) in writes {
        let what = format!("O_DIRECT pwrite off {off} len {len} buffer skew {skew}");
        let slice = buf.skewed_mut(skew, len);
        slice.fill(0xee);
        let rv = rustix::io::pwrite(&view, slice, off).map_err(|e| e.raw_os_error());
        let rb = rustix::io::pwrite(&back, slice, off).map_err(|e| e.raw_os_error());
        assert_eq!(rv, rb, "{what}: view vs backing");
        assert_eq!(rv, Err(libc::EINVAL), "{what}");
    }
    drop((view, back));
    assert_content(env, "f", &data);
}

// ---------------------------------------------------------------------------------------------
// O_DIRECT and the page cache

/// O_DIRECT reads see buffered writes not yet synced; buffered reads (also through a descriptor
/// whose pages are cached) see O_DIRECT writes; an O_DIRECT write past EOF grows the file for
/// everyone.
fn direct_and_buffered_agree(env: &Env) {
    require_odirect(env);
    let mut rng = Rng::new(99);
    let mut want = rng.bytes(MIB);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(env.v("f"))
        .unwrap();
    f.write_all_at(&want, 0).unwrap();
    // O_DIRECT read of data that is only in the page cache (no fsync).
    let d = open_direct(&env.v("f"), true);
    let mut buf = AlignedBuf::new(MIB, 4096);
    let n = rustix::io::pread(&d, buf.as_mut_slice(), 0).unwrap();
    assert_eq!(n, MIB);
    assert_bytes_eq(buf.as_slice(), &want, "O_DIRECT read after buffered write");
    // Fill the cache through the buffered descriptor, then change a range with O_DIRECT.
    let mut cached = vec![0u8; MIB];
    f.read_exact_at(&mut cached, 0).unwrap();
    let mut patch = AlignedBuf::new(64 * KIB, 4096);
    rng.fill(patch.as_mut_slice());
    let n = rustix::io::pwrite(&d, patch.as_slice(), 64 * KIB as u64).unwrap();
    assert_eq!(n, 64 * KIB);
    want[64 * KIB..128 * KIB].copy_from_slice(patch.as_slice());
    let mut again = vec![0u8; MIB];
    f.read_exact_at(&mut again, 0).unwrap();
    assert_bytes_eq(
        &again,
        &want,
        "buffered read (cached descriptor) after O_DIRECT write",
    );
    assert_bytes_eq(
        &fs::read(env.v("f")).unwrap(),
        &want,
        "fresh buffered read after O_DIRECT write",
    );
    // O_DIRECT write past EOF leaves a hole and grows the size seen by the other descriptor.
    rng.fill(patch.as_mut_slice());
    let at = MIB + 8 * KIB;
    let n = rustix::io::pwrite(&d, &patch.as_slice()[..4096], at as u64).unwrap();
    assert_eq!(n, 4096);
    want.resize(at, 0);
    want.extend_from_slice(&patch.as_slice()[..4096]);
    assert_eq!(
        f.metadata().unwrap().size(),
        want.len() as u64,
        "fstat size"
    );
    let mut tail = vec![0u8; 16 * KIB];
    let n = f.read_at(&mut tail, MIB as u64).unwrap();
    assert_eq!(n, 12 * KIB, "buffered read up to the new EOF");
    assert_bytes_eq(&tail[..n], &want[MIB..], "hole and O_DIRECT tail");
    // Buffered write, then an O_DIRECT read of a range straddling cached and uncached blocks.
    f.write_all_at(b"buffered!", (MIB - 4) as u64).unwrap();
    want[MIB - 4..MIB + 5].copy_from_slice(b"buffered!");
    let n = rustix::io::pread(&d, &mut buf.as_mut_slice()[..8192], (MIB - 4096) as u64).unwrap();
    assert_eq!(n, 8192);
    assert_bytes_eq(
        &buf.as_slice()[..8192],
        &want[MIB - 4096..MIB + 4096],
        "O_DIRECT read across a buffered write",
    );
    close_checked(f).unwrap();
    drop(d);
    assert_content(env, "f", &want);
}

// ---------------------------------------------------------------------------------------------
// Cached writes flushed while an O_DIRECT descriptor is open

/// A buffered write of a partial block, then an O_DIRECT open of the same file, then fsync and
/// close of the buffered descriptor: the fsync succeeds and every byte reaches the backing file.
/// (With the FUSE writeback cache the kernel may flush cached pages through any writable open
/// file, here the O_DIRECT one; the daemon must not send those unaligned cache writes through an
/// O_DIRECT backing descriptor.)
fn flush_with_direct_open(view: &Path, backing: &Path) {
    let data = pseudo_random(11, 5000);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(view.join("f"))
        .unwrap();
    f.write_all_at(&data, 0).unwrap();
    let d = open_direct(&view.join("f"), true);
    f.sync_all()
        .expect("fsync of the buffered descriptor while an O_DIRECT one is open");
    let more = pseudo_random(12, 3000);
    f.write_all_at(&more, 5000).unwrap();
    close_checked(f).expect("close of the buffered descriptor");
    close_checked(d).expect("close of the O_DIRECT descriptor");
    let mut want = data;
    want.extend_from_slice(&more);
    assert_bytes_eq(
        &fs::read(view.join("f")).unwrap(),
        &want,
        "through the view",
    );
    assert_bytes_eq(
        &fs::read(backing.join("f")).unwrap(),
        &want,
        "in the backing file",
    );
}

mod flush_with_direct_open {
    use super::*;

    #[test]
    fn plain() {
        let dir = tempfile::Builder::new()
            .prefix("arsyncfs-plain-")
            .tempdir()
            .unwrap();
        flush_with_direct_open(dir.path(), dir.path());
    }

    #[test]
    fn mount() {
        let m = mount::Mounted::new();
        flush_with_direct_open(m.mountpoint(), m.backing());
        m.unmount();
    }

    #[test]
    fn mount_writeback() {
        let m = mount::Mounted::with_args(&["--writeback"]);
        flush_with_direct_open(m.mountpoint(), m.backing());
        m.unmount();
    }

    #[test]
    fn mount_cache_always() {
        let m = mount::Mounted::with_args(&["--cache", "always"]);
        flush_with_direct_open(m.mountpoint(), m.backing());
        m.unmount();
    }

    #[test]
    fn mount_cache_never() {
        let m = mount::Mounted::with_args(&["--cache", "never"]);
        flush_with_direct_open(m.mountpoint(), m.backing());
        m.unmount();
    }

    #[test]
    fn mount_passthrough() {
        let m = mount::Mounted::with_args(&["--passthrough"]);
        flush_with_direct_open(m.mountpoint(), m.backing());
        m.unmount();
    }
}

/// How long the reader/writer race runs: 20 s, or ARSYNCFS_RACE_SECS.
fn race_secs() -> u64 {
    std::env::var("ARSYNCFS_RACE_SECS")
        .ok()
        .map(|v| v.parse().expect("ARSYNCFS_RACE_SECS: a number of seconds"))
        .unwrap_or(20)
}

/// Writes all of `buf` at offset 0 of `direct` with one asynchronous io_uring write and waits for
/// it: the kernel's asynchronous O_DIRECT path, where it drops no cached pages after the write.
fn async_direct_write(ring: &mut io_uring::IoUring, direct: &File, buf: &AlignedBuf) -> i32 {
    use std::os::fd::AsRawFd;
    let sqe = io_uring::opcode::Write::new(
        io_uring::types::Fd(direct.as_raw_fd()),
        buf.as_slice().as_ptr(),
        buf.len() as u32,
    )
    .offset(0)
    .build();
    // SAFETY: the buffer and the descriptor outlive the operation: we wait for its completion
    // before returning.
    unsafe { ring.submission().push(&sqe).expect("submission queue full") };
    ring.submit_and_wait(1).expect("io_uring_enter");
    ring.completion().next().expect("a completion").result()
}

/// Two readers loop buffered reads of a 640 KiB file through fresh descriptors while a writer
/// cycles byte patterns through it with asynchronous O_DIRECT writes and reads each one back
/// buffered: the read-back must always see the pattern just written, never the one before it
/// (the FUSE page cache keeps the old bytes unless the daemon invalidates them).
fn no_stale_pages_after_async_direct_writes(env: &Env) {
    stale_page_race(env, false, race_secs());
}

/// The same race with a writer that opened the file without O_DIRECT and then set it with
/// fcntl(F_SETFL): its writes are direct all the same (for half the time of the first).
fn no_stale_pages_after_direct_writes_switched_on_with_fcntl(env: &Env) {
    stale_page_race(env, true, race_secs().div_ceil(2));
}

fn stale_page_race(env: &Env, via_fcntl: bool, secs: u64) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    require_odirect(env);
    const LEN: usize = 640 * KIB;
    let path = env.v("race");
    fs::write(&path, vec![0u8; LEN]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (path, stop, reads) = (path.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; LEN];
                while !stop.load(Ordering::Relaxed) {
                    let f = File::open(&path).unwrap();
                    f.read_exact_at(&mut buf, 0).unwrap();
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let direct = if via_fcntl {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let flags = rustix::fs::fcntl_getfl(&f).unwrap();
        rustix::fs::fcntl_setfl(&f, flags | rustix::fs::OFlags::DIRECT).unwrap();
        f
    } else {
        open_direct(&path, true)
    };
    let mut ring = io_uring::IoUring::new(4).expect("io_uring");
    let mut buf = AlignedBuf::new(LEN, 4096);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut cycles = 0u64;
    let mut stale = None;
    while Instant::now() < deadline && stale.is_none() {
        let pattern = (cycles % 251) as u8 + 1;
        buf.as_mut_slice().fill(pattern);
        let n = async_direct_write(&mut ring, &direct, &buf);
        assert_eq!(n, LEN as i32, "O_DIRECT write of pattern {pattern}");
        let back = fs::read(&path).unwrap();
        if let Some(i) = back.iter().position(|&b| b != pattern) {
            stale = Some((pattern, i, back[i]));
        }
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    if let Some((pattern, i, got)) = stale {
        panic!(
            "stale data from a buffered read after cycle {cycles}: byte {i} is {got}, the \
             pattern just written is {pattern}"
        );
    }
    let reads = reads.load(Ordering::Relaxed);
    eprintln!("{cycles} write/read-back cycles against {reads} concurrent whole-file reads");
    assert!(
        cycles > 10 && reads > 10,
        "the race barely ran: {cycles} cycles, {reads} reads"
    );
}
