//! Faults injected into the daemon (cargo feature `fault-injection`, see src/faults): programs on a
//! mount whose backing fails on purpose get each error in the system call that caused it, never
//! wrong bytes, and every short or interrupted operation is completed by the daemon; the daemon
//! answers every request once, gives every buffer back, stays up, and drains cleanly at shutdown
//! while faults go on.
//!
//! After each run the daemon's exit log (`-v`) must show: requests `sent == answered`, the pools'
//! `taken == returned` with nothing in use, no reply fuser had to make for us ("Reply not sent")
//! and no reply that found no request ("Failed to send FUSE reply").
//!
//! `TMPDIR=/var/tmp cargo test --release --features fault-injection --test fault_injection` runs
//! the CI form; ARSYNCFS_LONG=1 (or `-- --ignored` for the long tests) runs more operations.
#![cfg(feature = "fault-injection")]

#[path = "common/exerciser.rs"]
mod exerciser;
#[path = "common/fs_util.rs"]
mod fs_util;
#[path = "common/integrity_model.rs"]
mod integrity_model;
#[path = "common/mount.rs"]
mod mount;
#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use exerciser::{ErrorsSeen, Exerciser};
use fs_util::close_checked;
use mount::{Mounted, Signal, logged_value};
use rng::Rng;

const EIO: i32 = libc::EIO;
const ENOSPC: i32 = libc::ENOSPC;

fn long() -> bool {
    std::env::var("ARSYNCFS_LONG").is_ok_and(|v| v == "1")
}

/// `ci` in the CI form, `long` with ARSYNCFS_LONG=1.
fn ops(ci: u64, long_form: u64) -> u64 {
    if long() { long_form } else { ci }
}

/// Mounts with `-v`, the fault plan `spec` and `args`.
fn mount_with_faults(spec: &str, args: &[&str]) -> Mounted {
    let mut argv = vec!["-v", "--faults", spec];
    argv.extend_from_slice(args);
    Mounted::with_args(&argv)
}

/// Unmounts (SIGTERM: the daemon must exit 0 with the mount gone) and returns the daemon's log.
fn finish(mut m: Mounted) -> String {
    m.signal(Signal::TERM);
    let status = m.wait_exit();
    let log = m.stderr();
    assert!(
        status.success(),
        "arsyncfs exited with {status}; log:\n{log}"
    );
    assert!(!mount::is_mounted(m.mountpoint()), "mount left behind");
    log
}

/// What every run must leave: every request answered once, every buffer back, no reply lost.
fn check_daemon(log: &str) {
    check_daemon_until(log, log.len());
}

/// [`check_daemon`] for a daemon that detached a busy mount at a signal: from then on the kernel
/// ends the connection whenever the mount's last user lets go, and the answers of requests still in
/// flight may find it gone ("Failed to send FUSE reply"): the programs got ENOTCONN for them.
fn check_daemon_detached(log: &str) {
    let detached = log.find("was busy: detached it").unwrap_or(log.len());
    check_daemon_until(log, detached);
}

/// [`check_daemon`], where no reply may fail before `end` in the log.
fn check_daemon_until(log: &str, end: usize) {
    let (sent, answered) = (logged_value(log, "sent"), logged_value(log, "answered"));
    assert_eq!(sent, answered, "requests sent and answered differ:\n{log}");
    let (taken, returned) = (logged_value(log, "taken"), logged_value(log, "returned"));
    assert_eq!(
        taken, returned,
        "pool buffers taken and returned differ:\n{log}"
    );
    assert_eq!(logged_value(log, "in_use"), 0, "{log}");
    for bad in ["Reply not sent", "panicked"] {
        assert!(!log.contains(bad), "the log says '{bad}':\n{log}");
    }
    let failed = "Failed to send FUSE reply";
    assert!(
        !log[..end].contains(failed),
        "the log says '{failed}':\n{log}"
    );
}

/// Faults of kind `name` (`read_eio`, ...) the daemon injected, from its exit log.
fn injected(log: &str, name: &str) -> u64 {
    logged_value(log, name)
}

/// Errors the program saw from system call `call` with `errno`.
fn seen(errors: &ErrorsSeen, call: &str, errno: i32) -> u64 {
    errors
        .iter()
        .filter(|((c, e), _)| *c == call && *e == errno)
        .map(|(_, n)| n)
        .sum()
}

/// The mount still answers: a new file written, read back, and found in the backing (done again
/// while the faults, which go on, fail it).
fn still_serves(m: &Mounted) {
    let data = b"the mount still serves after the faults";
    let path = m.mountpoint().join("still-serves");
    retry_until_ok(|| fs::write(&path, data));
    assert_eq!(retry_until_ok(|| fs::read(&path)), data);
    assert_eq!(fs::read(m.backing().join("still-serves")).unwrap(), data);
}

/// Runs the exerciser on `m` with `setup`, printing the daemon's log on failure.
fn exercise(
    m: &Mounted,
    seed: u64,
    n: u64,
    setup: impl FnOnce(Exerciser) -> Exerciser,
) -> Exerciser {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut ex = setup(Exerciser::new(
            &m.mountpoint().join("data"),
            &m.backing().join("data"),
            seed,
        ));
        ex.run(n);
        ex
    }));
    match run {
        Ok(ex) => ex,
        Err(panic) => {
            eprintln!("arsyncfs stderr:\n{}", m.stderr());
            std::panic::resume_unwind(panic)
        }
    }
}

/// A plan that cannot work is one line of error and the usage exit code, before anything mounts.
#[test]
fn a_bad_fault_plan_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for (how, spec) in [("flag", "read=crash:0.1"), ("env", "close=eintr:0.5")] {
        let mut cmd = Command::new(mount::arsyncfs_bin());
        match how {
            "flag" => cmd.args(["--faults", spec]),
            _ => cmd.env("ARSYNCFS_FAULTS", spec),
        };
        let out = cmd
            .arg(dir.path())
            .arg(dir.path().join("mnt"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("arsyncfs: error: fault plan: "),
            "{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The data path

/// Short reads and writes, EINTR and EAGAIN on every data operation: the daemon completes and
/// retries them all, so the program (mappings included) sees no error and exactly the model's bytes.
#[test]
fn short_and_interrupted_io_never_reach_the_program() {
    short_and_interrupted_io(&[]);
}

/// The same with one reactor per CPU.
#[test]
fn short_and_interrupted_io_with_reactors_per_cpu() {
    short_and_interrupted_io(&["--reactors", "0"]);
}

/// The same with buffered writes written by the session threads (pwrite(2)), which retry too.
#[test]
fn short_and_interrupted_io_with_inline_buffered_writes() {
    short_and_interrupted_io(&["--buffered-writes", "inline"]);
}

fn short_and_interrupted_io(args: &[&str]) {
    let spec = "seed=21,read=short:0.25+eintr:0.05+eagain:0.05,\
                write=short:0.25+eintr:0.05+eagain:0.05,fsync=eintr:0.2+eagain:0.1,\
                fallocate=eintr:0.2+eagain:0.1";
    let m = mount_with_faults(spec, args);
    exercise(&m, 0x5eed_0021, ops(10_000, 100_000), |ex| ex);
    still_serves(&m);
    let log = finish(m);
    check_daemon(&log);
    for kind in [
        "read_short",
        "write_short",
        "read_eintr",
        "write_eagain",
        "fsync_eintr",
    ] {
        assert!(injected(&log, kind) > 0, "no {kind} injected:\n{log}");
    }
    eprintln!("{}", log.lines().last().unwrap_or(""));
}

/// EIO and ENOSPC (with short operations before them) on reads, writes, fsync, fallocate,
/// truncation and opens: each error reaches the system call that caused it, the program does it
/// again, and the file always holds exactly the model's bytes, through the view and in the backing.
#[test]
fn io_errors_reach_the_program_and_lose_nothing() {
    io_errors(&[]);
}

/// The same with buffered writes written by the session threads (pwrite(2)) instead of the reactor.
#[test]
fn io_errors_with_inline_buffered_writes() {
    io_errors(&["--buffered-writes", "inline"]);
}

fn io_errors(args: &[&str]) {
    let spec = "seed=5,read=eio:0.03+short:0.2,write=eio:0.03+enospc:0.01+short:0.2,\
                fsync=eio:0.2,fallocate=eio:0.05+enospc:0.02,setattr=eio:0.03,open=eio:0.05";
    let m = mount_with_faults(spec, args);
    let ex = exercise(&m, 0x5eed_0005, ops(10_000, 100_000), |ex| {
        // A read error while a store faults a page in is SIGBUS: no mappings here.
        ex.tolerating(&[EIO, ENOSPC]).without_mmap()
    });
    still_serves(&m);
    let log = finish(m);
    check_daemon(&log);
    let errors = ex.errors_seen();
    eprintln!(
        "errors seen: {errors:?}\n{}",
        log.lines().last().unwrap_or("")
    );
    let writes = seen(&errors, "pwrite", EIO) + seen(&errors, "O_DIRECT pwrite", EIO);
    let reads = seen(&errors, "pread", EIO) + seen(&errors, "O_DIRECT pread", EIO);
    let pairs = [
        ("write_eio", writes),
        (
            "write_enospc",
            seen(&errors, "pwrite", ENOSPC) + seen(&errors, "O_DIRECT pwrite", ENOSPC),
        ),
        ("read_eio", reads),
        ("fsync_eio", seen(&errors, "fdatasync", EIO)),
        ("fallocate_eio", seen(&errors, "fallocate", EIO)),
        ("setattr_eio", seen(&errors, "ftruncate", EIO)),
        ("open_eio", seen(&errors, "open", EIO)),
    ];
    for (kind, got) in pairs {
        let n = injected(&log, kind);
        // Every error comes from one injected fault; readahead may swallow a read's.
        assert!(
            got >= 1 && got <= n,
            "{kind}: {n} injected, the program saw {got}\n{log}"
        );
    }
}

/// A failed write-back of a shared mapping's pages reaches msync; the program stores again and
/// the data lands.
#[test]
fn write_back_errors_reach_msync() {
    let m = mount_with_faults("seed=9,write=eio:0.05+short:0.1", &[]);
    let ex = exercise(&m, 0x5eed_0009, ops(5000, 50_000), |ex| {
        ex.tolerating(&[EIO])
    });
    let log = finish(m);
    check_daemon(&log);
    let errors = ex.errors_seen();
    let msync = seen(&errors, "msync", EIO);
    let writes = msync + seen(&errors, "pwrite", EIO) + seen(&errors, "O_DIRECT pwrite", EIO);
    // (A failed write-back is reported once to each open file of the inode, at its next msync or
    // fsync: fdatasync may see it again.)
    assert!(msync >= 1, "{errors:?}");
    assert!(writes <= injected(&log, "write_eio"), "{errors:?}\n{log}");
}

/// fio writes and verifies (buffered psync, O_DIRECT libaio and io_uring, several jobs) while reads
/// and writes run short and are interrupted: no error, no verify failure.
#[test]
fn fio_verifies_under_short_and_interrupted_io() {
    let spec = "seed=33,read=short:0.2+eagain:0.05,write=short:0.2+eintr:0.05,fsync=eintr:0.2";
    let m = mount_with_faults(spec, &[]);
    let out = run_fio(m.mountpoint(), "8M");
    assert!(
        out.status,
        "fio failed:\n{}\narsyncfs:\n{}",
        out.text,
        m.stderr()
    );
    still_serves(&m);
    let log = finish(m);
    check_daemon(&log);
    assert!(
        injected(&log, "read_short") > 0 && injected(&log, "write_short") > 0,
        "{log}"
    );
}

/// fio's writes fail now and then with EIO: fio reports the error, and the mount stays up.
#[test]
fn fio_reports_write_errors() {
    let m = mount_with_faults("seed=34,write=eio:0.02", &[]);
    let out = run_fio(m.mountpoint(), "4M");
    assert!(
        !out.status,
        "fio passed although writes failed:\n{}",
        out.text
    );
    assert!(
        out.text.contains("Input/output error"),
        "fio does not report EIO:\n{}",
        out.text
    );
    still_serves(&m);
    let log = finish(m);
    check_daemon(&log);
    assert!(injected(&log, "write_eio") > 0, "{log}");
}

struct FioOutput {
    status: bool,
    text: String,
}

/// Three write-then-verify fio jobs of `size` each in `dir`.
fn run_fio(dir: &Path, size: &str) -> FioOutput {
    let job = format!(
        "[global]\ndirectory={}\nsize={size}\nverify=crc32c\nverify_fatal=1\ndo_verify=1\n\
         verify_state_save=0\nfsync_on_close=1\n\
         [psync]\nioengine=psync\nrw=randwrite\nbsrange=4k-256k\n\
         [libaio]\nioengine=libaio\ndirect=1\niodepth=16\nrw=randwrite\nbs=64k\n\
         [uring]\nioengine=io_uring\ndirect=1\niodepth=8\nrw=write\nbs=1M\n",
        dir.display()
    );
    let out = Command::new("fio")
        .args(["--output-format=normal", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(job.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run fio (scripts/setup.sh installs it)");
    FioOutput {
        status: out.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// FLUSH errors (a close(2) of a file opened for writing) reach close; the data written before is
/// in the backing file all the same.
#[test]
fn flush_errors_reach_close() {
    let m = mount_with_faults("seed=4,flush=eio:0.2", &[]);
    let path = m.mountpoint().join("closed");
    fs::write(&path, b"").unwrap();
    let mut failed = 0;
    for i in 0..200u32 {
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(&i.to_le_bytes()).unwrap();
        if let Err(e) = close_checked(f) {
            assert_eq!(e.raw_os_error(), Some(EIO), "{e}");
            failed += 1;
        }
        assert_eq!(
            fs::read(m.backing().join("closed")).unwrap(),
            i.to_le_bytes()
        );
    }
    let log = finish(m);
    check_daemon(&log);
    let n = injected(&log, "flush_eio");
    assert!(
        failed >= 1 && failed == n,
        "{n} flush faults, {failed} failed closes\n{log}"
    );
}

/// Data fsync'ed before faults begin stays intact whatever fails after it.
#[test]
fn data_synced_before_the_faults_is_intact() {
    // Every write after the first 64 fails: the first file is written and synced before.
    let m = mount_with_faults("seed=2,write=eio:0.5,fsync=eio:0.5", &[]);
    let synced: Vec<u8> = (0..256 << 10).map(|i: u32| (i % 251) as u8).collect();
    let first = m.mountpoint().join("synced");
    let write_synced = || -> io::Result<()> {
        let mut f = File::create(&first)?;
        f.write_all(&synced)?;
        f.sync_all()
    };
    while write_synced().is_err() {}
    // Now writes and fsyncs fail half the time on other files, and on this one.
    let mut errors = 0;
    for i in 0..50u64 {
        let r = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(m.mountpoint().join(format!("other{i}")))
            .and_then(|mut f| {
                f.write_all(&vec![i as u8; 200 << 10])
                    .and_then(|()| f.sync_all())
            });
        errors += r.is_err() as u64;
        let r = OpenOptions::new()
            .write(true)
            .open(&first)
            .and_then(|f| f.sync_all());
        errors += r.is_err() as u64;
    }
    assert!(errors > 0);
    assert_eq!(fs::read(&first).unwrap(), synced, "through the view");
    assert_eq!(
        fs::read(m.backing().join("synced")).unwrap(),
        synced,
        "in the backing"
    );
    check_daemon(&finish(m));
}

// ---------------------------------------------------------------------------------------------
// Metadata

/// What the churn's tree must hold: every name (relative path) and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File {
        data: Vec<u8>,
        mode: u32,
        xattr: Option<Vec<u8>>,
    },
    Symlink(String),
}

/// Creates, writes, renames, links, unlinks, makes and removes directories and symlinks, changes
/// modes and xattrs, while the metadata operations fail with EIO or ENOSPC: each failed system call
/// changed nothing, so the tree, through the view and in the backing, is exactly the model's.
#[test]
fn metadata_churn_under_faults() {
    let spec = "seed=17,meta=eio:0.04,create=enospc:0.02,mkdir=enospc:0.02";
    let m = mount_with_faults(spec, &[]);
    let root = m.mountpoint().to_path_buf();
    let mut model: BTreeMap<String, Node> = BTreeMap::new();
    let mut rng = Rng::new(0x5eed_0017);
    let mut errors: BTreeMap<(&str, i32), u64> = BTreeMap::new();
    let n = ops(5000, 50_000);
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..n {
            churn_step(&root, &mut model, &mut rng, &mut errors, i);
        }
        let view = tree_of(&root);
        assert_eq!(
            view, model,
            "the tree through the view differs from the model"
        );
        let backing = tree_of(m.backing());
        assert_eq!(backing, model, "the backing tree differs from the model");
    }));
    if let Err(p) = run {
        eprintln!("arsyncfs stderr:\n{}", m.stderr());
        std::panic::resume_unwind(p);
    }
    still_serves(&m);
    let log = finish(m);
    check_daemon(&log);
    let total_seen: u64 = errors.values().sum();
    let faults = logged_value(&log, "faults_injected");
    eprintln!("{n} operations; errors seen: {errors:?}; faults injected: {faults}");
    assert!(total_seen >= 1 && total_seen <= faults, "{errors:?}\n{log}");
    for call in [
        "create", "mkdir", "rename", "unlink", "link", "chmod", "setxattr",
    ] {
        let got: u64 = errors
            .iter()
            .filter(|((c, _), _)| *c == call)
            .map(|(_, n)| n)
            .sum();
        assert!(got >= 1, "no {call} failed: {errors:?}");
    }
}

/// `f()` until it succeeds; EIO and ENOSPC (injected) are done again, other errors fail.
fn retry_until_ok<T>(mut f: impl FnMut() -> io::Result<T>) -> T {
    for _ in 0..1000 {
        match f() {
            Ok(v) => return v,
            Err(e) if matches!(e.raw_os_error(), Some(EIO | ENOSPC)) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("still failing after 1000 tries");
}

/// One churn operation on a random name under `root`; a failure must be EIO or ENOSPC and leave
/// the model as it was.
fn churn_step(
    root: &Path,
    model: &mut BTreeMap<String, Node>,
    rng: &mut Rng,
    errors: &mut BTreeMap<(&'static str, i32), u64>,
    i: u64,
) {
    let dirs: Vec<String> = std::iter::once(String::new())
        .chain(
            model
                .iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(k, _)| k.clone()),
        )
        .collect();
    let names: Vec<String> = model.keys().cloned().collect();
    let files: Vec<String> = model
        .iter()
        .filter(|(_, n)| matches!(n, Node::File { .. }))
        .map(|(k, _)| k.clone())
        .collect();
    let pick = |rng: &mut Rng, v: &[String]| -> Option<String> {
        (!v.is_empty()).then(|| v[rng.below(v.len() as u64) as usize].clone())
    };
    let new_name = |rng: &mut Rng| {
        let dir = pick(rng, &dirs).unwrap();
        let leaf = format!("n{}", rng.below(40));
        if dir.is_empty() {
            leaf
        } else {
            format!("{dir}/{leaf}")
        }
    };
    let p = |rel: &str| root.join(rel);
    let (call, result): (&'static str, io::Result<()>) = match rng.below(10) {
        0 | 1 => {
            let name = new_name(rng);
            if model.contains_key(&name) {
                return;
            }
            let len = rng.below(3000) as usize;
            let data = rng.bytes(len);
            let r = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(p(&name))
                .and_then(|mut f| f.write_all(&data));
            if r.is_ok() {
                model.insert(
                    name,
                    Node::File {
                        data,
                        mode: 0o644,
                        xattr: None,
                    },
                );
            }
            ("create", r)
        }
        2 => {
            let name = new_name(rng);
            if model.contains_key(&name) || name.matches('/').count() > 2 {
                return;
            }
            let r = fs::create_dir(p(&name));
            if r.is_ok() {
                model.insert(name, Node::Dir);
            }
            ("mkdir", r)
        }
        3 => {
            let Some(from) = pick(rng, &names) else {
                return;
            };
            let to = new_name(rng);
            let movable = model.get(&from) != Some(&Node::Dir);
            if !movable || to == from || model.contains_key(&to) {
                return;
            }
            let r = fs::rename(p(&from), p(&to));
            if r.is_ok() {
                let node = model.remove(&from).unwrap();
                model.insert(to, node);
            }
            ("rename", r)
        }
        4 => {
            let Some(name) = pick(rng, &names) else {
                return;
            };
            let r = match model.get(&name) {
                Some(Node::Dir) => {
                    let prefix = format!("{name}/");
                    if model.keys().any(|k| k.starts_with(&prefix)) {
                        return;
                    }
                    fs::remove_dir(p(&name))
                }
                _ => fs::remove_file(p(&name)),
            };
            if r.is_ok() {
                model.remove(&name);
            }
            ("unlink", r)
        }
        5 => {
            // A hard link: a second name with the same content (the model keeps both in step
            // only while neither changes, so links are made of files that then only go).
            let Some(from) = pick(rng, &files) else {
                return;
            };
            let to = new_name(rng);
            if model.contains_key(&to) || has_links(root, &from) {
                return;
            }
            let r = fs::hard_link(p(&from), p(&to));
            if r.is_ok() {
                let node = model[&from].clone();
                model.insert(to, node);
            }
            ("link", r)
        }
        6 => {
            let name = new_name(rng);
            if model.contains_key(&name) {
                return;
            }
            let target = format!("target-{i}");
            let r = std::os::unix::fs::symlink(&target, p(&name));
            if r.is_ok() {
                model.insert(name, Node::Symlink(target));
            }
            ("symlink", r)
        }
        7 => {
            let Some(name) = pick(rng, &files) else {
                return;
            };
            if has_links(root, &name) {
                return;
            }
            let mode = [0o600, 0o640, 0o644, 0o755][rng.below(4) as usize];
            let r = fs::set_permissions(p(&name), fs::Permissions::from_mode(mode));
            if r.is_ok()
                && let Some(Node::File { mode: m, .. }) = model.get_mut(&name)
            {
                *m = mode;
            }
            ("chmod", r)
        }
        _ => {
            let Some(name) = pick(rng, &files) else {
                return;
            };
            if has_links(root, &name) {
                return;
            }
            let len = 1 + rng.below(64) as usize;
            let value = rng.bytes(len);
            let remove = rng.chance(30);
            let r = if remove {
                match rustix::fs::removexattr(p(&name), "user.churn") {
                    Err(rustix::io::Errno::NODATA) => Ok(()),
                    r => r.map_err(io::Error::from),
                }
            } else {
                rustix::fs::setxattr(
                    p(&name),
                    "user.churn",
                    &value,
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(io::Error::from)
            };
            if r.is_ok()
                && let Some(Node::File { xattr, .. }) = model.get_mut(&name)
            {
                *xattr = (!remove).then_some(value);
            }
            ("setxattr", r)
        }
    };
    if let Err(e) = result {
        let errno = e.raw_os_error().unwrap_or(0);
        assert!(
            errno == EIO || errno == ENOSPC,
            "op {i} {call}: unexpected error {e}"
        );
        *errors.entry((call, errno)).or_default() += 1;
    }
}

/// Whether the file at `rel` has other names (its content and mode are then shared).
fn has_links(root: &Path, rel: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    retry_until_ok(|| fs::symlink_metadata(root.join(rel))).nlink() > 1
}

/// Everything under `root`, as the churn's model shows it; each system call is done again while
/// injected faults fail it.
fn tree_of(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let names: Vec<std::ffi::OsString> = retry_until_ok(|| {
            fs::read_dir(root.join(&rel))?
                .map(|e| e.map(|e| e.file_name()))
                .collect()
        });
        for name in names {
            let rel = rel.join(name);
            let key = rel.to_string_lossy().into_owned();
            if key == "still-serves" {
                continue;
            }
            let path = root.join(&rel);
            let meta = retry_until_ok(|| fs::symlink_metadata(&path));
            let node = if meta.is_dir() {
                stack.push(rel);
                Node::Dir
            } else if meta.file_type().is_symlink() {
                let target = retry_until_ok(|| fs::read_link(&path));
                Node::Symlink(target.to_string_lossy().into_owned())
            } else {
                let data = retry_until_ok(|| fs::read(&path));
                let xattr = retry_until_ok(|| {
                    let mut buf = vec![0u8; 256];
                    match rustix::fs::getxattr(&path, "user.churn", &mut buf[..]) {
                        Ok(n) => Ok(Some(buf[..n].to_vec())),
                        Err(rustix::io::Errno::NODATA) => Ok(None),
                        Err(e) => Err(io::Error::from(e)),
                    }
                });
                Node::File {
                    data,
                    mode: meta.permissions().mode() & 0o7777,
                    xattr,
                }
            };
            out.insert(key, node);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shutdown

/// SIGTERM while programs write and sync through the mount, and every operation the reactors
/// start while draining fails: the daemon still exits 0, answers everything once, gives every
/// buffer back, and files written, synced and closed before the signal are intact. Whether a
/// drain fault was injected at all is not asserted here (it depends on timing; the count is only
/// printed): `reactor_drain_faults_answer_every_request_and_return_every_buffer` below asserts
/// it, at reactor level.
#[test]
fn faults_while_draining_at_sigterm() {
    // Two buffers for eight programs, and operations cut short so that they take several: work
    // is usually waiting in the reactor when it starts to drain.
    let spec = "seed=8,write=short:0.5,read=short:0.5,drain=eio:1";
    let m = mount_with_faults(spec, &["--buffers", "2"]);
    let kept: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    fs::write(m.mountpoint().join("kept"), &kept).unwrap();
    File::open(m.mountpoint().join("kept"))
        .unwrap()
        .sync_all()
        .unwrap();
    // A load that keeps requests in the reactors: O_DIRECT writes, reads and fsyncs from 8 threads.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let path = m.mountpoint().join(format!("load{t}"));
            let stop = stop.clone();
            std::thread::spawn(move || load(&path, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    m.signal(Signal::TERM);
    let mut m = m;
    let status = m.wait_exit();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().expect("a load thread panicked");
    }
    let log = m.stderr();
    assert!(status.success(), "arsyncfs exited with {status}:\n{log}");
    check_daemon_detached(&log);
    assert_eq!(fs::read(m.backing().join("kept")).unwrap(), kept);
    eprintln!(
        "faults while draining: {}; {}",
        injected(&log, "drain_eio"),
        log.lines().last().unwrap_or("")
    );
}

/// Writes, reads and syncs `path` through O_DIRECT until `stop` or the mount goes (errors are
/// expected once it does).
fn load(path: &Path, stop: &std::sync::atomic::AtomicBool) {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    else {
        return;
    };
    let mut buf = integrity_model::AlignedBuf::new(256 << 10, 4096);
    buf.as_mut_slice().fill(7);
    let mut off = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        use std::os::unix::fs::FileExt;
        if f.write_at(buf.as_slice(), off).is_err()
            || f.read_at(buf.as_mut_slice(), off).is_err()
            || f.sync_data().is_err()
        {
            return;
        }
        off = (off + (256 << 10)) % (8 << 20);
    }
}

/// In the reactor itself, deterministically: reads that wait for the only buffer when the
/// reactor starts draining are served while it drains, get the `drain` fault, and every buffer
/// comes back.
#[test]
fn reactor_drain_faults_answer_every_request_and_return_every_buffer() {
    use arsyncfs::faults;
    use arsyncfs::reactor::ReactorConfig;
    use reactor_util::{Answer, Harness, Tagged, collect};

    faults::install(&faults::Plan::parse("drain=eio:1").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = reactor_util::new_file(dir.path(), "data");
    fs::write(&path, vec![1u8; 8192]).unwrap();
    let (fifo, mut fifo_w) = reactor_util::fifo(dir.path());
    let r = Harness::with(ReactorConfig {
        buffers: 1,
        ..ReactorConfig::default()
    });
    let h = r.h.clone();
    let (tx, rx) = crossbeam_channel::unbounded();
    // The FIFO's read holds the only buffer until the FIFO is written to; the others wait.
    h.read(fifo.clone(), 0, 4096, Tagged(0, tx.clone()));
    for tag in 1..=8 {
        h.read(file.clone(), 0, 4096, Tagged(tag, tx.clone()));
    }
    let before = faults::drains_started();
    let shutdown = std::thread::spawn(move || r.finish());
    mount::wait_until(Duration::from_secs(10), "the reactor draining", || {
        faults::drains_started() > before
    });
    // The whole read at once: it needs no second operation, which would get the drain fault.
    fifo_w.write_all(&[9u8; 4096]).unwrap();
    let answers = collect(&rx, 9);
    let stats = shutdown.join().unwrap();
    for (tag, a) in answers {
        match (tag, &a) {
            (0, Answer::Read(_, Ok(data))) => assert_eq!(data, &[9u8; 4096]),
            (_, a) if tag > 0 => assert_eq!(a.errno(), Some(EIO), "{a:?}"),
            _ => panic!("{a:?}"),
        }
    }
    reactor_util::assert_pool_clean(&stats);
    assert_eq!(
        faults::injected().unwrap().0,
        vec![("drain_eio".to_owned(), 8)]
    );
}

/// The long form: the whole data path under every fault at once, 10x the operations.
#[test]
#[ignore = "long form (run with --ignored, or ARSYNCFS_LONG=1 for the others)"]
fn long_everything_at_once() {
    let spec = "seed=99,read=eio:0.02+short:0.2+eintr:0.05,write=eio:0.02+enospc:0.01+short:0.2+eagain:0.05,\
                fsync=eio:0.05+eintr:0.05,fallocate=eio:0.05+eintr:0.05,close=eio:0.05,meta=eio:0.01";
    let m = mount_with_faults(spec, &["--reactors", "0"]);
    let ex = exercise(&m, 0x5eed_0099, 100_000, |ex| {
        ex.tolerating(&[EIO, ENOSPC]).without_mmap()
    });
    still_serves(&m);
    let log = finish(m);
    check_daemon(&log);
    eprintln!(
        "errors seen: {:?}\n{}",
        ex.errors_seen(),
        log.lines().last().unwrap_or("")
    );
}
