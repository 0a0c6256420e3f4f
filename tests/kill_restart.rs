//! The daemon dies or is stopped under load, and nothing a program was told is safe is lost.
//!
//! - SIGKILL (a crash) while fio, the integrity exerciser or `cp -a` write, and a writer writes,
//!   fsyncs and closes files one after another: the stale mount is unmounted, arsyncfs mounted
//!   again on the same backing, and every file fsync'ed before the kill is intact, through the new
//!   mount and in the backing; `cp -a`'s files are prefixes of their sources (writes reach the
//!   backing before they are answered: a copy cut short is short, never wrong).
//! - SIGTERM and SIGINT under the same load: the daemon answers what is in flight and exits 0, and
//!   every file a program wrote and closed (no fsync) is in the backing.
//! - After each: the backing tree holds only what the programs created. arsyncfs itself creates
//!   nothing there (no temporary names: an O_DIRECT handle's buffered twin is a second descriptor
//!   of the same file, not a file), so any other name is debris.
//!
//! Run with TMPDIR on a disk-backed filesystem (O_DIRECT): `TMPDIR=/var/tmp cargo test --release
//! --test kill_restart`.

#[path = "common/exerciser.rs"]
mod exerciser;
#[path = "common/fs_util.rs"]
mod fs_util;
#[path = "common/integrity_model.rs"]
mod integrity_model;
#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fs_util::close_checked;
use mount::{Mounted, Signal, wait_until};
use rng::Rng;

/// What may load the mount besides the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Fio,
    Exerciser,
    CpTree,
}

/// How the daemon goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// SIGKILL: files fsync'ed before it must be intact.
    Crash,
    /// SIGTERM or SIGINT: files written and closed before it must be intact.
    Stop(Signal),
}

/// Files the writer finished (fsync'ed and closed, or only closed), with their contents.
type Finished = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

const WAIT: Duration = Duration::from_secs(60);

/// Mounts with `args`, starts the writer and `loads`, ends the daemon as `end` once they all made
/// progress, mounts again and checks everything (module docs).
fn scenario(args: &[&str], loads: &[Load], end: End) {
    let source = tempfile::Builder::new()
        .prefix("arsyncfs-source-")
        .tempdir()
        .unwrap();
    if loads.contains(&Load::CpTree) {
        make_tree(source.path());
    }
    // After a crash the mount is left stale for this test to see and remove (the auto_unmount
    // watcher, which would detach it at some moment of its own, has tests/cli_auto_unmount.rs).
    let no_watcher = (end == End::Crash).then_some("--no-auto-unmount");
    let args: Vec<&str> = std::iter::once("-v")
        .chain(no_watcher)
        .chain(args.iter().copied())
        .collect();
    let args = &args[..];
    let mut m = Mounted::with_args(args);
    let mnt = m.mountpoint().to_path_buf();
    let backing = m.backing().to_path_buf();

    let stop = Arc::new(AtomicBool::new(false));
    let finished: Finished = Arc::default();
    let writer = {
        let (dir, stop, finished) = (mnt.join("files"), stop.clone(), finished.clone());
        let sync = end == End::Crash;
        std::thread::spawn(move || writer(&dir, sync, &stop, &finished))
    };
    let mut children: Vec<Child> = Vec::new();
    let mut threads = Vec::new();
    for &load in loads {
        match load {
            Load::Fio => children.push(start_fio(&mnt.join("fio"))),
            Load::CpTree => children.push(
                Command::new("cp")
                    .arg("-a")
                    .arg(source.path())
                    .arg(mnt.join("copy"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("run cp"),
            ),
            Load::Exerciser => {
                let (view, file) = (mnt.join("data"), backing.join("data"));
                threads.push(std::thread::spawn(move || {
                    // Fails (panics) once the daemon is gone; that is the end of this load. No
                    // mappings: touching one of a dead mount is SIGBUS.
                    let _ = std::panic::catch_unwind(|| {
                        exerciser::Exerciser::new(&view, &file, 0x5eed_4111)
                            .without_mmap()
                            .run(u64::MAX / 2)
                    });
                }));
            }
        }
    }

    // Everything under way: the writer finished some files, each load wrote something.
    wait_until(WAIT, "the writer and the loads under way", || {
        finished.lock().unwrap().len() >= 10
            && loads.iter().all(|&l| match l {
                Load::Fio => dir_bytes(&backing.join("fio")) > 0,
                Load::CpTree => count_entries(&backing.join("copy")) >= 100,
                Load::Exerciser => fs::metadata(backing.join("data")).is_ok_and(|m| m.len() > 0),
            })
    });

    match end {
        End::Crash => {
            let status = m.kill();
            assert!(!status.success(), "killed, yet {status}");
        }
        End::Stop(sig) => {
            m.signal(sig);
            let status = m.wait_exit();
            // It answered every request it was sent and got every buffer back (-v's exit log).
            let log = m.stderr();
            let value = |field| mount::logged_value(&log, field);
            assert_eq!(value("sent"), value("answered"), "{log}");
            assert_eq!(value("taken"), value("returned"), "{log}");
            assert!(!log.contains("Reply not sent"), "{log}");
            assert!(
                status.success(),
                "arsyncfs exited with {status} after {sig:?}:\n{}",
                m.stderr()
            );
        }
    }
    // What was finished when the daemon went (the writer may finish one more in that instant, so
    // the list is taken after the programs stopped, and everything in it must hold).
    stop.store(true, Ordering::Relaxed);
    for mut child in children {
        if mount::wait_child(&mut child, WAIT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    let written = writer.join().expect("the writer panicked");
    assert!(written >= 10);
    if mount::is_mounted(&mnt) {
        // A crash leaves the mount stale.
        assert_eq!(
            fs::metadata(&mnt).err().and_then(|e| e.raw_os_error()),
            Some(libc::ENOTCONN),
            "the dead daemon's mount should answer ENOTCONN"
        );
        m.unmount_stale();
    }

    m.restart(args);
    let finished = finished.lock().unwrap().clone();
    for (rel, data) in &finished {
        let what = match end {
            End::Crash => "fsync'ed before the kill",
            End::Stop(_) => "closed before the signal",
        };
        let backed = fs::read(backing.join(rel)).unwrap_or_default();
        assert!(
            backed == *data,
            "{rel}, {what}, differs in the backing ({} bytes of {})",
            backed.len(),
            data.len()
        );
        let viewed = fs::read(mnt.join(rel)).unwrap();
        assert!(
            viewed == *data,
            "{rel}, {what}, differs through the new mount"
        );
    }
    if loads.contains(&Load::CpTree) && !args.contains(&"--writeback") {
        check_prefixes(source.path(), &backing.join("copy"));
    }
    check_no_debris(&backing, source.path());
    // The new mount works: a file written, read back, in the backing.
    fs::write(mnt.join("after-restart"), b"served again").unwrap();
    assert_eq!(
        fs::read(backing.join("after-restart")).unwrap(),
        b"served again"
    );
    eprintln!(
        "{args:?} {loads:?} {end:?}: {} files finished before the end, all intact",
        finished.len()
    );
    m.unmount();
}

/// Writes files `dir/f<i>` of 1 to 512 KiB one after another (write, fsync if `sync`, close) until
/// `stop` or the first error, recording each in `finished` once its close returned; returns how
/// many it finished.
fn writer(dir: &Path, sync: bool, stop: &AtomicBool, finished: &Finished) -> usize {
    if fs::create_dir(dir).is_err() {
        return 0;
    }
    let mut rng = Rng::new(0x5eed_f11e);
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            return i;
        }
        let len = rng.range(1, 512 << 10) as usize;
        let data = rng.bytes(len);
        let path = dir.join(format!("f{i}"));
        let done = File::create(&path)
            .and_then(|mut f| {
                f.write_all(&data)?;
                if sync {
                    f.sync_all()?;
                }
                Ok(f)
            })
            .and_then(close_checked);
        if done.is_err() {
            return i;
        }
        finished
            .lock()
            .unwrap()
            .push((format!("{name}/f{i}"), data));
    }
    unreachable!()
}

/// fio writing in `dir` until it fails: buffered psync and O_DIRECT libaio jobs, with fsyncs.
fn start_fio(dir: &Path) -> Child {
    fs::create_dir(dir).unwrap();
    Command::new("fio")
        .args([
            "--name=buffered",
            "--ioengine=psync",
            "--rw=randwrite",
            "--bsrange=4k-256k",
            "--fsync=8",
            "--name=direct",
            "--ioengine=libaio",
            "--direct=1",
            "--iodepth=16",
            "--rw=randrw",
            "--bs=64k",
            "--size=32M",
            "--time_based",
            "--runtime=120",
        ])
        .arg(format!("--directory={}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run fio (scripts/setup.sh installs it)")
}

/// A source tree for `cp -a`: 40 directories of 25 files of up to 64 KiB, with a symlink each.
fn make_tree(root: &Path) {
    let mut rng = Rng::new(0x5eed_c0de);
    for d in 0..40 {
        let dir = root.join(format!("d{d:02}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..25 {
            let len = rng.below(64 << 10) as usize;
            fs::write(dir.join(format!("file{f:02}.bin")), rng.bytes(len)).unwrap();
        }
        std::os::unix::fs::symlink("file00.bin", dir.join("link")).unwrap();
    }
}

fn count_entries(dir: &Path) -> usize {
    walk(dir).len()
}

fn dir_bytes(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .filter_map(|p| fs::symlink_metadata(dir.join(p)).ok())
        .map(|m| m.len())
        .sum()
}

/// Every path under `root`, relative to it (empty if `root` is missing).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let rel = rel.join(e.file_name());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(rel.clone());
            }
            out.push(rel);
        }
    }
    out
}

/// Each file of `cp -a`'s copy is a prefix of its source (the copy was cut short, never wrong).
fn check_prefixes(source: &Path, copy: &Path) {
    let mut files = 0;
    for rel in walk(copy) {
        let c = copy.join(&rel);
        let meta = fs::symlink_metadata(&c).unwrap();
        if !meta.is_file() {
            continue;
        }
        let want = fs::read(source.join(&rel)).unwrap();
        let got = fs::read(&c).unwrap();
        assert!(
            got.len() <= want.len() && want[..got.len()] == got[..],
            "{}: {} bytes, not a prefix of its source's {}",
            rel.display(),
            got.len(),
            want.len()
        );
        files += 1;
    }
    assert!(files > 0, "nothing was copied");
}

/// The backing tree holds only what the programs made: the writer's `files/f<i>`, fio's
/// `<job>.<n>.<m>`, the exerciser's `data`, the copy of the source tree, `after-restart`.
fn check_no_debris(backing: &Path, source: &Path) {
    let source_names: BTreeSet<PathBuf> = walk(source).into_iter().collect();
    for rel in walk(backing) {
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let ok = match parts
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["files"] | ["fio"] | ["data"] | ["copy"] | ["after-restart"] => true,
            ["files", f] => f
                .strip_prefix('f')
                .is_some_and(|n| n.parse::<u64>().is_ok()),
            ["fio", f] => {
                let p: Vec<&str> = f.split('.').collect();
                p.len() == 3
                    && ["buffered", "direct"].contains(&p[0])
                    && p[1..].iter().all(|n| n.parse::<u32>().is_ok())
            }
            ["copy", ..] => source_names.contains(&rel.strip_prefix("copy").unwrap().to_path_buf()),
            _ => false,
        };
        assert!(ok, "debris in the backing tree: {}", rel.display());
    }
}

#[test]
fn sigkill_during_fio() {
    scenario(&[], &[Load::Fio], End::Crash);
}

#[test]
fn sigkill_during_the_exerciser_with_writeback() {
    scenario(&["--writeback"], &[Load::Exerciser], End::Crash);
}

#[test]
fn sigkill_during_cp_a() {
    scenario(&[], &[Load::CpTree], End::Crash);
}

#[test]
fn sigterm_mid_load_keeps_closed_files() {
    scenario(&[], &[Load::Fio, Load::CpTree], End::Stop(Signal::TERM));
}

#[test]
fn sigint_mid_load_keeps_closed_files_with_writeback() {
    scenario(
        &["--writeback"],
        &[Load::Fio, Load::Exerciser],
        End::Stop(Signal::INT),
    );
}

/// The one thing arsyncfs opens beside a program's file, the buffered twin of an O_DIRECT handle
/// (for the kernel's write-back of a shared mapping), is a descriptor, not a name: only the
/// program's file is in the backing.
#[test]
fn an_o_direct_files_buffered_twin_leaves_no_name() {
    use std::os::unix::fs::OpenOptionsExt;
    let m = Mounted::new();
    let path = m.mountpoint().join("direct");
    fs::write(&path, vec![0u8; 8192]).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .unwrap();
    // A shared mapping of the O_DIRECT descriptor: its write-back goes through the twin.
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of the file's 8192 bytes, used only in this block and
        // unmapped before it ends; only bytes below the file size are touched.
        #[allow(unsafe_code)]
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            std::ptr::write_bytes(p.cast::<u8>(), 0x5a, 8192);
            assert_eq!(libc::msync(p, 8192, libc::MS_SYNC), 0);
            libc::munmap(p, 8192);
        }
    }
    drop(f);
    assert_eq!(
        fs::read(m.backing().join("direct")).unwrap(),
        vec![0x5a; 8192]
    );
    let names: Vec<PathBuf> = walk(m.backing());
    assert_eq!(names, vec![PathBuf::from("direct")], "{names:?}");
    m.unmount();
}
