//! Bounded resources: walking a big tree through the mount (a Rust walk with lstat of every entry,
//! `find -exec stat {} +`, `du -s`) never fails (no EMFILE), the daemon's open descriptors stay
//! below a bound while the kernel remembers every inode, and they drop again once the kernel
//! forgets them (`echo 2 > /proc/sys/vm/drop_caches` frees dentries and inodes, and the kernel
//! sends FORGET for each). The daemon's VmHWM/VmRSS are printed for the notes (run with
//! `--nocapture`).
//!
//! CI form (`walk_50k`): 50,000 files in 100 directories, created once directly on the backing
//! filesystem, walked on the plain directory, then through a mount with the limits the tests
//! inherit, then through a mount whose daemon started under a soft RLIMIT_NOFILE of 1024 (a
//! common default for services). Long form (`walk_300k`, run with `cargo test --release --test
//! posix_resources -- --ignored --nocapture`): 300,000 files in 300 directories.
//!
//! The tests of this file run one at a time (they change the process's RLIMIT_NOFILE around the
//! daemon's start, and drop_caches is machine-wide).

#[path = "common/mount.rs"]
mod mount;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mount::Mounted;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Most descriptors the daemon may hold at any time during the walk: its cache of 16384 inode
/// descriptors (docs/semantics.md) plus a little for open files, the ring and the session.
const FD_BOUND: usize = 16_384 + 512;
/// After the kernel forgot the inodes, the daemon should be back near its idle count.
const FD_AFTER_FORGET: usize = 1_000;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn fixed_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
}

/// `dirs` directories of `per_dir` empty files each, under `root`. Returns the entry count
/// (directories + files).
fn populate(root: &Path, dirs: usize, per_dir: usize) -> usize {
    let start = Instant::now();
    for d in 0..dirs {
        let dir = root.join(format!("d{d:04}"));
        fs::create_dir(&dir).unwrap();
        let dirfd =
            rustix::fs::open(&dir, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        for f in 0..per_dir {
            // mknod makes an empty regular file in one system call (no descriptor to close).
            rustix::fs::mknodat(
                &dirfd,
                format!("file-{f:06}"),
                FileType::RegularFile,
                Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap();
        }
    }
    eprintln!(
        "created {} files in {dirs} dirs in {:?}",
        dirs * per_dir,
        start.elapsed()
    );
    dirs * (per_dir + 1)
}

/// Open descriptors of process `pid`.
fn fds_of(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the daemon's /proc/<pid>/fd")
        .count()
}

/// "VmHWM ... VmRSS ..." of process `pid`.
fn memory_of(pid: u32) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Walks `root` with lstat of every entry; every `sample_every` entries calls `sample`. Returns
/// the entry count (the root not included). Any error fails the test with its path.
fn walk(root: &Path, sample_every: usize, mut sample: impl FnMut()) -> usize {
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut count = 0;
    while let Some(dir) = stack.pop() {
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()));
            let path = entry.path();
            let m = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
            if m.is_dir() {
                stack.push(path);
            }
            count += 1;
            if count % sample_every == 0 {
                sample();
            }
        }
    }
    count
}

/// `find ROOT -exec stat --format=%i {} +`: must succeed, say nothing on stderr, and print one
/// line per entry (the root included).
fn find_exec_stat(root: &Path) -> usize {
    let out = Command::new("find")
        .arg(root)
        .args(["-exec", "stat", "--format=%i", "{}", "+"])
        .stdin(Stdio::null())
        .output()
        .expect("run find");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "find -exec stat over {}: {}\n{stderr}",
        root.display(),
        out.status
    );
    out.stdout.iter().filter(|&&b| b == b'\n').count()
}

fn du(root: &Path) {
    let out = Command::new("du")
        .arg("-s")
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .expect("run du");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "du -s {}: {}\n{}",
        root.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn drop_dentries_and_inodes() {
    fs::write("/proc/sys/vm/drop_caches", "2").expect("echo 2 > /proc/sys/vm/drop_caches");
}

/// The walk on a plain directory (the tree in place): proves the walk itself, find and du succeed
/// on the backing filesystem.
fn check_plain(tree: &Path, entries: usize) {
    assert_eq!(walk(tree, usize::MAX, || {}), entries);
    assert_eq!(find_exec_stat(tree), entries + 1);
    du(tree);
    eprintln!("plain: {entries} entries walked, find -exec stat and du fine");
}

/// The walk through a mount whose daemon starts with a soft RLIMIT_NOFILE of `nofile` (None:
/// inherited), like a service started with the common default of 1024 (arsyncfs raises its own
/// limit, so the walk must still succeed; the hard limit is left alone: this process could not
/// raise it back). The tree at `tree` is moved into the backing dir before mounting (a rename:
/// the same files, created directly on the backing filesystem) and moved back before unmounting.
fn check_mounted(tree: &Path, entries: usize, nofile: Option<u64>) {
    let what = match nofile {
        Some(n) => format!("mount, daemon started with soft RLIMIT_NOFILE {n}"),
        None => "mount".to_string(),
    };
    let m = {
        let saved = getrlimit(Resource::Nofile);
        if let Some(n) = nofile {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(n),
                    maximum: saved.maximum,
                },
            )
            .expect("lower RLIMIT_NOFILE");
        }
        let m = Mounted::try_spawn(&[] as &[&str], |backing| {
            fs::rename(tree, backing.join("tree")).expect("move the tree into the backing dir")
        });
        setrlimit(Resource::Nofile, saved).expect("restore RLIMIT_NOFILE");
        m.unwrap_or_else(|e| panic!("{e}"))
    };
    // Move the tree back whatever happens, so the next run (and the temp dir's removal) has it.
    struct MoveBack<'a>(PathBuf, &'a Path);
    impl Drop for MoveBack<'_> {
        fn drop(&mut self) {
            let _ = fs::rename(&self.0, self.1);
        }
    }
    let _back = MoveBack(m.backing().join("tree"), tree);
    let view = m.mountpoint().join("tree");
    let pid = m.pid();
    let idle = fds_of(pid);
    eprintln!(
        "{what}: daemon {pid}: {idle} fds at start; {}",
        memory_of(pid)
    );

    let start = Instant::now();
    let mut max_fds = idle;
    let walked = walk(&view, 2_000, || max_fds = max_fds.max(fds_of(pid)));
    assert_eq!(walked, entries, "entries seen through the mount");
    max_fds = max_fds.max(fds_of(pid));
    eprintln!(
        "{what}: walk of {walked} entries in {:?}: daemon fds max {max_fds}; {}",
        start.elapsed(),
        memory_of(pid)
    );
    let start = Instant::now();
    assert_eq!(find_exec_stat(&view), entries + 1, "find -exec stat lines");
    du(&view);
    max_fds = max_fds.max(fds_of(pid));
    eprintln!(
        "{what}: find -exec stat + du in {:?}: daemon fds now {}, max {max_fds}; {}",
        start.elapsed(),
        fds_of(pid),
        memory_of(pid)
    );
    assert!(
        max_fds < FD_BOUND,
        "{what}: daemon held {max_fds} descriptors (bound {FD_BOUND})"
    );

    // The kernel forgets the inodes; the daemon closes what it kept for them. drop_caches is
    // repeated now and then while waiting (FORGETs arrive asynchronously).
    let start = Instant::now();
    let mut last_drop = None::<Instant>;
    mount::wait_until(
        Duration::from_secs(60),
        "the daemon's descriptors to drop after drop_caches",
        || {
            if last_drop.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                drop_dentries_and_inodes();
                last_drop = Some(Instant::now());
            }
            fds_of(pid) < FD_AFTER_FORGET
        },
    );
    eprintln!(
        "{what}: after drop_caches: daemon fds {} (after {:?}); {}",
        fds_of(pid),
        start.elapsed(),
        memory_of(pid)
    );
    // The tree is still all there.
    assert_eq!(walk(&view, usize::MAX, || {}), entries);
    drop(_back);
    m.unmount();
}

/// One tree of `dirs` x `per_dir` files, walked on the plain dir, then through a mount, then
/// through a mount whose daemon started with a soft fd limit of 1024.
fn check_all(dirs: usize, per_dir: usize) {
    let _serial = serial();
    fixed_umask();
    let pool = tempfile::Builder::new()
        .prefix("arsyncfs-plain-")
        .tempdir()
        .unwrap();
    let tree = pool.path().join("tree");
    fs::create_dir(&tree).unwrap();
    let entries = populate(&tree, dirs, per_dir);
    check_plain(&tree, entries);
    check_mounted(&tree, entries, None);
    check_mounted(&tree, entries, Some(1024));
}

#[test]
fn walk_50k() {
    check_all(100, 500);
}

#[test]
#[ignore = "long form: 300,000 files (run with --ignored)"]
fn walk_300k() {
    check_all(300, 1000);
}
