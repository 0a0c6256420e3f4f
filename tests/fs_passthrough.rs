//! Kernel passthrough (`--passthrough`): what reaches the daemon and what does not, as counted by
//! the daemon and logged when the session ends (`-v`); O_DIRECT applied to the backing file; one
//! backing file serving opens of every access mode; the fallback to the daemon where the kernel
//! refuses a backing file. The conformance tests (tests/fs_*.rs, tests/posix_*.rs) and the
//! integrity exerciser also run on `--passthrough` mounts.
//!
//! Needs TMPDIR on a disk-backed filesystem (O_DIRECT), fincore(1) and, for the fallback, overlayfs.

#[path = "common/integrity_model.rs"]
mod integrity_model;
#[path = "common/mapping.rs"]
mod mapping;
#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use integrity_model::AlignedBuf;
use mapping::Mapping;
use mount::{Mounted, Signal, logged_value};

const MIB: usize = 1 << 20;

/// Stops the daemon and returns its log (with the request counters).
fn stop(mut m: Mounted) -> String {
    m.signal(Signal::TERM);
    let status = m.wait_exit();
    let log = m.stderr();
    assert!(status.success(), "arsyncfs exited with {status}:\n{log}");
    log
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + seed) % 251) as u8).collect()
}

/// Reads and writes of every kind: buffered (with readahead), O_DIRECT, through a shared mapping.
fn data_workload(view: &Path, backing: &Path, data: &[u8]) {
    let path = view.join("f");
    let mut got = Vec::new();
    File::open(&path).unwrap().read_to_end(&mut got).unwrap();
    assert!(got == data, "buffered read");
    let direct = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .unwrap();
    let mut buf = AlignedBuf::new(MIB, 4096);
    direct
        .read_exact_at(buf.as_mut_slice(), MIB as u64)
        .unwrap();
    assert!(buf.as_slice() == &data[MIB..2 * MIB], "O_DIRECT read");
    buf.as_mut_slice().copy_from_slice(&pattern(MIB, 5));
    direct.write_all_at(buf.as_slice(), 0).unwrap();
    drop(direct);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    for i in 0..16 {
        f.write_all_at(&[i as u8; 4096], (2 * MIB + i * 4096) as u64)
            .unwrap();
    }
    // Through a shared mapping: loads, and a store written back by msync.
    map_shared(&f, data.len(), |bytes| {
        assert!(bytes[3 * MIB..] == data[3 * MIB..], "mapped read");
        bytes[3 * MIB..3 * MIB + 4].copy_from_slice(b"map!");
    });
    f.sync_all().unwrap();
    drop(f);
    let back = std::fs::read(backing.join("f")).unwrap();
    assert!(back[..MIB] == pattern(MIB, 5)[..], "O_DIRECT write");
    for i in 0..16 {
        let at = 2 * MIB + i * 4096;
        assert!(back[at..at + 4096] == [i as u8; 4096], "buffered write {i}");
    }
    assert_eq!(
        &back[3 * MIB..3 * MIB + 4],
        b"map!",
        "store through the mapping"
    );
    assert!(back[3 * MIB + 4..] == data[3 * MIB + 4..], "untouched");
}

/// Maps `len` bytes of `f` shared, hands them to `use_it`, then msyncs and unmaps.
fn map_shared(f: &File, len: usize, use_it: impl FnOnce(&mut [u8])) {
    let mut mapping = Mapping::new(f, len).expect("mmap");
    use_it(mapping.bytes());
    mapping.msync().expect("msync");
}

/// With --passthrough no read or write reaches the daemon (it only sees the opens); without it
/// every one does (the same workload, so the counters can tell).
#[test]
fn reads_and_writes_bypass_the_daemon() {
    let data = pattern(4 * MIB, 0);
    for passthrough in [false, true] {
        let args: &[&str] = if passthrough {
            &["-v", "--passthrough"]
        } else {
            &["-v"]
        };
        let m = Mounted::spawn(args, |b| std::fs::write(b.join("f"), &data).unwrap());
        data_workload(m.mountpoint(), m.backing(), &data);
        let log = stop(m);
        let (reads, writes) = (logged_value(&log, "reads"), logged_value(&log, "writes"));
        let opens = logged_value(&log, "passthrough_opens");
        if passthrough {
            assert_eq!((reads, writes), (0, 0), "{log}");
            assert!(opens >= 3, "{log}");
            assert_eq!(logged_value(&log, "passthrough_fallbacks"), 0, "{log}");
            assert_eq!(logged_value(&log, "passthrough_reads"), 0, "{log}");
            assert_eq!(logged_value(&log, "passthrough_writes"), 0, "{log}");
        } else {
            assert!(reads > 0 && writes > 0, "{log}");
            assert_eq!(opens, 0, "{log}");
        }
    }
}

/// Pages of `path` in the page cache (fincore from util-linux).
fn cached_pages(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "PAGES"])
        .arg(path)
        .output()
        .expect("run fincore (util-linux)");
    assert!(out.status.success(), "fincore: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Writes back and drops the cached pages of `path`.
fn drop_cache(path: &Path) {
    let f = File::open(path).unwrap();
    f.sync_all().unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    assert_eq!(cached_pages(path), 0, "pages of {} left", path.display());
}

/// The kernel opens its backing file with the opener's flags: an O_DIRECT open reads and writes
/// the backing file without its page cache (and a buffered one through it, for contrast).
#[test]
fn o_direct_opens_bypass_the_backing_page_cache() {
    let data = pattern(MIB, 1);
    let m = Mounted::spawn(&["--passthrough"], |b| {
        std::fs::write(b.join("f"), &data).unwrap()
    });
    let (view, back) = (m.mountpoint().join("f"), m.backing().join("f"));
    drop_cache(&back);
    let direct = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&view)
        .unwrap();
    let mut buf = AlignedBuf::new(MIB, 4096);
    direct.read_exact_at(buf.as_mut_slice(), 0).unwrap();
    assert!(buf.as_slice() == &data[..]);
    assert_eq!(cached_pages(&back), 0, "after an O_DIRECT read");
    direct.write_all_at(buf.as_slice(), 0).unwrap();
    assert_eq!(cached_pages(&back), 0, "after an O_DIRECT write");
    drop(direct);
    let mut got = Vec::new();
    File::open(&view).unwrap().read_to_end(&mut got).unwrap();
    assert!(got == data);
    assert!(cached_pages(&back) > 0, "a buffered read fills the cache");
    m.unmount();
}

/// One backing file serves the opens of a node whatever their access mode, and each open keeps
/// its own: registered by a read-only open, it serves write-only, read-write and append opens
/// opened meanwhile; a write-only open cannot read, a read-only one cannot write. A file whose mode
/// lets nobody read is served too (the kernel opens it with the daemon's credentials, root).
#[test]
fn opens_of_every_access_mode_share_one_backing_file() {
    let m = Mounted::spawn(&["-v", "--passthrough"], |b| {
        std::fs::write(b.join("f"), b"0123456789").unwrap();
        std::fs::write(b.join("locked"), b"secret").unwrap();
        std::fs::set_permissions(b.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    });
    let path = m.mountpoint().join("f");
    let r = File::open(&path).unwrap();
    let w = OpenOptions::new().write(true).open(&path).unwrap();
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut a = OpenOptions::new().append(true).open(&path).unwrap();
    w.write_all_at(b"ab", 0).unwrap();
    rw.write_all_at(b"CD", 2).unwrap();
    a.write_all(b"!").unwrap();
    let mut got = [0u8; 11];
    r.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(&got, b"abCD456789!");
    let mut one = [0u8; 1];
    assert_eq!(
        w.read_at(&mut one, 0).unwrap_err().raw_os_error(),
        Some(libc::EBADF),
        "read through a write-only open"
    );
    assert_eq!(
        r.write_at(b"x", 0).unwrap_err().raw_os_error(),
        Some(libc::EBADF),
        "write through a read-only open"
    );
    drop((r, w, rw, a));
    assert_eq!(
        std::fs::read(m.backing().join("f")).unwrap(),
        b"abCD456789!"
    );
    assert_eq!(
        std::fs::read(m.mountpoint().join("locked")).unwrap(),
        b"secret"
    );
    let log = stop(m);
    assert_eq!(logged_value(&log, "passthrough_opens"), 5, "{log}");
    assert_eq!(logged_value(&log, "passthrough_fallbacks"), 0, "{log}");
    assert_eq!(logged_value(&log, "reads"), 0, "{log}");
    assert_eq!(logged_value(&log, "writes"), 0, "{log}");
}

/// An overlayfs mounted over a directory for the length of a test, detached on drop (lazily: the
/// FUSE mount on top may still hold it).
struct Overlay(PathBuf);

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Where the kernel refuses the backing file (here: it is on an overlayfs, a stacked filesystem,
/// and arsyncfs keeps its own stacking depth at 1 so that it can be an overlayfs layer itself), the
/// daemon serves the open through the reactor, with the same bytes, and counts the fallback.
#[test]
fn refused_backing_files_fall_back_to_the_daemon() {
    let data = pattern(4 * MIB, 3);
    let mut overlay = None;
    let m = Mounted::spawn(&["-v", "--passthrough"], |backing| {
        let root = backing.parent().unwrap();
        let (lower, upper, work) = (root.join("lower"), root.join("upper"), root.join("work"));
        for d in [&lower, &upper, &work] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(lower.join("f"), &data).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            ))
            .arg(backing)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount -t overlay failed");
        overlay = Some(Overlay(backing.to_path_buf()));
    });
    data_workload(m.mountpoint(), m.backing(), &data);
    let root = m.backing().parent().unwrap().to_path_buf();
    let log = stop(m);
    drop(overlay);
    // The guard could not remove its temp dir while the overlay was mounted in it.
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(logged_value(&log, "passthrough_opens"), 0, "{log}");
    assert!(logged_value(&log, "passthrough_fallbacks") >= 3, "{log}");
    assert!(logged_value(&log, "reads") > 0, "{log}");
    assert!(
        log.contains("kernel passthrough refused this file"),
        "the first refusal is a warning:\n{log}"
    );
}
