//! The kernel gives arsyncfs the big requests it asks for: 1 MiB writes and 1 MiB direct reads
//! (max_write and max_pages), as counted by the daemon and logged when the session ends.

#[path = "common/integrity_model.rs"]
mod integrity_model;
#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use integrity_model::AlignedBuf;
use mount::{Mounted, Signal, logged_value};

#[test]
fn kernel_sends_one_mib_requests() {
    let mut m = Mounted::with_args(&["-v"]);
    let path = m.mountpoint().join("big");
    let data: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();

    // An O_DIRECT read of 4 MiB into aligned memory: the kernel splits it by max_pages only.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .unwrap();
    let mut buf = AlignedBuf::new(4 << 20, 4096);
    f.read_exact_at(buf.as_mut_slice(), 0).unwrap();
    assert!(
        buf.as_slice() == &data[..],
        "O_DIRECT read returned other bytes"
    );
    drop(f);

    m.signal(Signal::TERM);
    assert!(m.wait_exit().success());
    let log = m.stderr();
    assert_eq!(logged_value(&log, "largest_write"), 1 << 20, "{log}");
    assert_eq!(logged_value(&log, "largest_read"), 1 << 20, "{log}");
}

/// Unchanged files are served from the kernel's page cache across opens (auto_cache): a second
/// open and read of the same file sends no read to the daemon; after the backing file changed, the
/// next open reads afresh.
#[test]
fn unchanged_files_stay_cached_across_opens() {
    const SIZE: usize = 1 << 20;
    let old: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    let new: Vec<u8> = (0..SIZE).map(|i| (i % 241) as u8).collect();
    let mut m = Mounted::spawn(&["-v"], |backing| {
        std::fs::write(backing.join("f"), &old).unwrap();
    });
    let view = m.mountpoint().join("f");
    assert!(std::fs::read(&view).unwrap() == old, "first read");
    assert!(std::fs::read(&view).unwrap() == old, "second open");
    std::fs::write(m.backing().join("f"), &new).unwrap();
    assert!(
        std::fs::read(&view).unwrap() == new,
        "open after the backing changed"
    );

    m.signal(Signal::TERM);
    assert!(m.wait_exit().success());
    let log = m.stderr();
    let asked = logged_value(&log, "bytes_read") as usize;
    // The first open and the one after the change read the whole file from the daemon; the second
    // open read nothing.
    assert!(
        (2 * SIZE..3 * SIZE).contains(&asked),
        "bytes the kernel asked the daemon for: {asked}\n{log}"
    );
}

/// What each cache mode keeps of a file read twice, through two opens and through one descriptor
/// held open: `auto` and `always` serve the second reads from the page cache, `never` sends every
/// read to the daemon.
#[test]
fn page_cache_by_cache_mode() {
    const SIZE: usize = 1 << 20;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 239) as u8).collect();
    for (mode, cached) in [("auto", true), ("always", true), ("never", false)] {
        let mut m = Mounted::spawn(&["-v", "--cache", mode], |backing| {
            std::fs::write(backing.join("f"), &data).unwrap();
        });
        let view = m.mountpoint().join("f");
        assert!(std::fs::read(&view).unwrap() == data, "{mode}: first open");
        assert!(std::fs::read(&view).unwrap() == data, "{mode}: second open");
        let held = std::fs::File::open(&view).unwrap();
        let mut buf = vec![0u8; SIZE];
        for _ in 0..2 {
            held.read_exact_at(&mut buf, 0).unwrap();
            assert!(buf == data, "{mode}: held descriptor");
        }
        drop(held);
        m.signal(Signal::TERM);
        assert!(m.wait_exit().success());
        let log = m.stderr();
        let asked = logged_value(&log, "bytes_read") as usize;
        if cached {
            // The first open read the file (and perhaps a little readahead past it); nothing after.
            assert!(
                (SIZE..2 * SIZE).contains(&asked),
                "{mode}: bytes the kernel asked the daemon for: {asked}\n{log}"
            );
        } else {
            assert!(
                asked >= 4 * SIZE,
                "{mode}: bytes the kernel asked the daemon for: {asked}\n{log}"
            );
        }
    }
}

/// Buffered writes are written by the reactor (`--buffered-writes reactor`, the default) or by the
/// session threads (`inline`); O_DIRECT writes, and under `--writeback` the kernel's flushes, always go
/// to the reactor. Every path writes the same bytes.
#[test]
fn buffered_writes_go_where_configured() {
    // (arguments, buffered writes inline?, fewest write requests: 16 x 4 KiB + 1 MiB direct, or
    // under writeback the 16 merged into as few as one flush)
    for (args, inline, min_writes) in [
        (&["-v"][..], false, 17),
        (&["-v", "--buffered-writes", "inline"][..], true, 17),
        (&["-v", "--writeback"][..], false, 2),
        (&["-v", "--cache", "always"][..], false, 2),
        // FOPEN_DIRECT_IO: each write(2) is its own request, as without the writeback cache.
        (&["-v", "--cache", "never"][..], false, 17),
    ] {
        let mut m = Mounted::with_args(args);
        let path = m.mountpoint().join("w");
        let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 253) as u8).collect();
        let mut f = std::fs::File::create(&path).unwrap();
        // 16 buffered writes of 4 KiB, each its own request (no writeback cache).
        for chunk in data[..16 << 12].chunks(4096) {
            f.write_all(chunk).unwrap();
        }
        drop(f);
        // 1 MiB more through O_DIRECT, from aligned memory, at offset 1 MiB.
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .unwrap();
        let mut buf = AlignedBuf::new(1 << 20, 4096);
        buf.as_mut_slice().copy_from_slice(&data);
        f.write_all_at(buf.as_slice(), 1 << 20).unwrap();
        drop(f);

        let backing = std::fs::read(m.backing().join("w")).unwrap();
        assert_eq!(backing.len(), 2 << 20, "{args:?}");
        assert!(
            backing[..16 << 12] == data[..16 << 12],
            "{args:?}: buffered part"
        );
        assert!(
            backing[16 << 12..1 << 20].iter().all(|&b| b == 0),
            "{args:?}: hole"
        );
        assert!(backing[1 << 20..] == data[..], "{args:?}: O_DIRECT part");

        m.signal(Signal::TERM);
        assert!(m.wait_exit().success());
        let log = m.stderr();
        let writes = logged_value(&log, "writes");
        let inline_writes = logged_value(&log, "inline_writes");
        assert!(writes >= min_writes, "{args:?}: {log}");
        if inline {
            // Every write but the direct one (the kernel may split nothing here: 4 KiB each).
            assert_eq!(inline_writes, writes - 1, "{args:?}: {log}");
        } else {
            assert_eq!(inline_writes, 0, "{args:?}: {log}");
        }
    }
}

/// A tmpfs mounted over a directory for the length of a test, unmounted (lazily, after the FUSE
/// mount on top is gone) on drop.
struct Tmpfs(Option<std::path::PathBuf>);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let ok = std::process::Command::new("umount")
                .arg("-l")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("WARNING: could not detach the tmpfs on {}", dir.display());
            }
        }
    }
}

/// arsyncfs with `args` over a backing directory that is a 64 KiB tmpfs. Drop the tmpfs first: it is
/// detached (lazily: the daemon still has it open) before the temp dir holding it goes with the mount.
fn mounted_over_full_tmpfs(args: &[&str]) -> (Tmpfs, Mounted) {
    let mut tmpfs = Tmpfs(None);
    let m = Mounted::spawn(args, |backing| {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "arsyncfs-test"])
            .arg(backing)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount a 64 KiB tmpfs on the backing dir (needs root)");
        tmpfs.0 = Some(backing.to_owned());
    });
    (tmpfs, m)
}

/// Under the writeback cache writes succeed into the kernel's cache; when its flush does not fit
/// on the backing, fsync reports ENOSPC (the flush fails whole, nothing is silently dropped).
#[test]
fn writeback_flush_on_a_full_backing_fails_fsync() {
    let (tmpfs, mut m) = mounted_over_full_tmpfs(&["--writeback"]);
    let _tmpfs = tmpfs; // declared after `m`, so dropped before it
    let path = m.mountpoint().join("full");
    let data = vec![0x5au8; 256 << 10];
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&data).unwrap();
    let e = f.sync_all().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    drop(f);
    m.signal(Signal::TERM);
    assert!(m.wait_exit().success());
}

/// On a full backing filesystem a buffered write behaves as pwrite(2) there: what fits is written
/// and counted (a short write), then ENOSPC; the view and the backing agree on the bytes.
#[test]
fn buffered_write_on_a_full_backing_is_short_then_enospc() {
    // Through the reactor (the default) and written by the session thread.
    for args in [&[][..], &["--buffered-writes", "inline"][..]] {
        short_then_enospc(args);
    }
}

fn short_then_enospc(args: &[&str]) {
    let (tmpfs, mut m) = mounted_over_full_tmpfs(args);
    let _tmpfs = tmpfs; // declared after `m`, so dropped before it
    let path = m.mountpoint().join("full");
    let data: Vec<u8> = (0..256 << 10).map(|i| (i % 249) as u8).collect();
    let mut f = std::fs::File::create(&path).unwrap();
    // The tmpfs is empty, so the first 64 KiB fit.
    let n = f.write(&data).unwrap();
    assert!(
        n > 0 && n < data.len(),
        "{args:?}: short write expected, wrote {n}"
    );
    let e = f.write(&data[n..]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{args:?}: {e}");
    drop(f);
    let view = std::fs::read(&path).unwrap();
    let backing = std::fs::read(m.backing().join("full")).unwrap();
    assert_eq!(view.len(), n);
    assert!(
        view == backing && view[..] == data[..n],
        "{args:?}: view and backing differ"
    );
    m.signal(Signal::TERM);
    assert!(m.wait_exit().success());
}

/// A file created through the mount on a local backing filesystem (ext4, xfs, btrfs, tmpfs: close
/// reports nothing there) gets no FLUSH request at its close(2); a file opened for writing still does,
/// so the count is not blind.
#[test]
fn created_files_need_no_flush_on_a_local_backing() {
    let mut m = Mounted::with_args(&["-v"]);
    let f_type = rustix::fs::statfs(m.backing()).unwrap().f_type as i64;
    if ![0xef53, 0x5846_5342, 0x9123_683e, 0x0102_1994].contains(&f_type) {
        eprintln!("backing filesystem type {f_type:#x} may report errors at close; skipping");
        return;
    }
    for i in 0..10 {
        std::fs::write(m.mountpoint().join(format!("c{i}")), b"x").unwrap();
    }
    drop(
        OpenOptions::new()
            .write(true)
            .open(m.mountpoint().join("c0"))
            .unwrap(),
    );
    m.signal(Signal::TERM);
    assert!(m.wait_exit().success());
    let log = m.stderr();
    assert_eq!(logged_value(&log, "flushes"), 1, "{log}");
}

/// A program's O_NONBLOCK reaches the backing open (a file under a lease answers EWOULDBLOCK then)
/// but not the backing descriptor, whose reads and writes go through io_uring: there it would mean
/// "answer EAGAIN rather than wait". Checked in the daemon's /proc/PID/fdinfo.
#[test]
fn backing_descriptors_are_never_non_blocking() {
    let m = Mounted::new();
    std::fs::write(m.mountpoint().join("old"), b"x").unwrap();
    let opened: Vec<std::fs::File> = [("old", false), ("new", true)]
        .iter()
        .map(|&(name, create)| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .custom_flags(libc::O_NONBLOCK)
                .open(m.mountpoint().join(name))
                .unwrap()
        })
        .collect();
    let backing = std::fs::canonicalize(m.backing()).unwrap();
    let mut seen = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{}/fd", m.pid())).unwrap() {
        let fd = fd.unwrap();
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        if !(target == backing.join("old") || target == backing.join("new")) {
            continue;
        }
        let info = format!("/proc/{}/fdinfo/{}", m.pid(), fd.file_name().display());
        let Ok(info) = std::fs::read_to_string(&info) else {
            continue; // an O_PATH descriptor closed meanwhile
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| i32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        if flags & libc::O_PATH != 0 {
            continue;
        }
        assert_eq!(flags & libc::O_NONBLOCK, 0, "{}: {info}", target.display());
        seen.push(target);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        2,
        "the backing descriptors of both files: {seen:?}"
    );
    drop(opened);
}
