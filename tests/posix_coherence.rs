//! Cache coherence: a change made directly in the backing directory (content rewrite, size change,
//! mtime and mode change, rename, delete, new file, a file replaced by rename as editors save)
//! becomes visible through the mount, also to a descriptor that stays open with its pages cached.
//! Each check runs on a plain directory (where it holds at once) and through arsyncfs in the cache
//! modes that promise it:
//! - `mount`: the default, `--cache auto`. Its attribute and entry timeouts are 1 s, so the kernel
//!   asks the daemon again at most 1 s after it last did, and the daemon answers from the backing
//!   file. Each check polls until the change shows and fails if it still does not show on a poll
//!   that starts after DEADLINE (3 s: the 1 s timeout plus a wide margin). Because that last poll
//!   starts after the timeout has certainly expired, a slow machine cannot make a correct
//!   filesystem fail; only a cache that never expires can.
//! - `mount_cache_never`: `--cache never` caches nothing, so the change must show at the first
//!   look, with no wait, as on the plain directory. It also sees a rewrite that leaves the file's
//!   mtime and size as they were (`rewrite_keeping_mtime_and_size`), which `auto` cannot notice in
//!   pages it keeps.
//!
//! `--cache always` promises none of this: the backing directory is meant to change only through
//! the mount, and the kernel may show what it cached for a day. Its tests assert that the mount
//! works (tests/integrity.rs, fs_data.rs, posix_odirect.rs run under it), not that it is stale.

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;

use std::cell::Cell;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fs_util::*;

/// Defines, for each check, a module with the tests `plain` and `mount_cache_never` (the change
/// shows at once) and `mount` (`--cache auto`: it shows within DEADLINE).
macro_rules! coherence_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn plain() {
                super::at_once(|| crate::fs_util::run_plain(super::$name))
            }
            #[test]
            fn mount() {
                crate::fs_util::run_mounted(super::$name)
            }
            #[test]
            fn mount_cache_never() {
                super::at_once(|| {
                    crate::fs_util::run_mounted_with(&["--cache", "never"], super::$name)
                })
            }
        }
    )*};
}

coherence_tests!(
    content_rewrite,
    size_change,
    mtime_and_mode_change,
    rename_in_backing,
    delete_in_backing,
    new_file_in_backing,
    replaced_by_rename,
);

/// Only where nothing is cached: `auto` keeps pages while mtime and size are unchanged.
mod rewrite_keeping_mtime_and_size {
    #[test]
    fn plain() {
        super::at_once(|| crate::fs_util::run_plain(super::rewrite_keeping_mtime_and_size))
    }
    #[test]
    fn mount_cache_never() {
        super::at_once(|| {
            crate::fs_util::run_mounted_with(
                &["--cache", "never"],
                super::rewrite_keeping_mtime_and_size,
            )
        })
    }
}

/// The longest a change may take to show through an `auto` mount (see the module docs).
const DEADLINE: Duration = Duration::from_secs(3);

thread_local! {
    /// The deadline of the check running on this thread: DEADLINE, or zero under `at_once`.
    static THIS_DEADLINE: Cell<Duration> = const { Cell::new(DEADLINE) };
}

/// Runs `test` with every change required to show at the first look.
fn at_once(test: impl FnOnce()) {
    THIS_DEADLINE.set(Duration::ZERO);
    test();
}

/// Polls `check` until it returns Ok; panics with its last error once a poll that started at or
/// after this thread's deadline still fails (with a zero deadline: the first poll must succeed).
/// Returns how long it took.
#[track_caller]
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) -> Duration {
    let deadline = THIS_DEADLINE.get();
    let start = Instant::now();
    loop {
        let late = start.elapsed() >= deadline;
        match check() {
            Ok(()) => {
                let took = start.elapsed();
                eprintln!("{what}: visible after {took:?}");
                return took;
            }
            Err(e) if late => panic!("{what}: not visible after {deadline:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The whole content through `f` (pread from 0 until EOF).
fn pread_all(f: &File) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read_at(&mut buf, out.len() as u64).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn content_is(got: Vec<u8>, want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{} bytes (fnv {:016x}), want {} bytes (fnv {:016x})",
            got.len(),
            fnv64(&got),
            want.len(),
            fnv64(want)
        ))
    }
}

/// Sets the mtime of a backing path to a fixed past time, so that any later change moves it (a
/// rewrite within the same timestamp tick as the creation would otherwise leave size and mtime
/// as they were, and no cache could notice).
fn age(path: &Path) {
    let out = Command::new("touch")
        .args(["-d", "2000-01-01 00:00:00 UTC"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
}

fn lstat_result(p: &Path) -> Result<fs::Metadata, String> {
    fs::symlink_metadata(p).map_err(|e| e.to_string())
}

fn gone(p: &Path) -> Result<(), String> {
    match fs::symlink_metadata(p) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(format!("lstat: {e}")),
        Ok(m) => Err(format!("still there ({:?})", m.file_type())),
    }
}

// ---------------------------------------------------------------------------------------------

/// Same size, new bytes: seen by a descriptor that keeps its cached pages and by a new open.
fn content_rewrite(env: &Env) {
    let old = pseudo_random(1, 256 * 1024);
    let new = pseudo_random(2, 256 * 1024);
    fs::write(env.b("f"), &old).unwrap();
    age(&env.b("f"));
    let held = File::open(env.v("f")).unwrap();
    assert_bytes_eq(&pread_all(&held), &old, "first read through the view");
    assert_bytes_eq(&fs::read(env.v("f")).unwrap(), &old, "second open");
    fs::write(env.b("f"), &new).unwrap();
    eventually("rewrite, held descriptor", || {
        content_is(pread_all(&held), &new)
    });
    eventually("rewrite, fresh open", || {
        content_is(fs::read(env.v("f")).unwrap(), &new)
    });
}

/// Appended and truncated in the backing: size through stat and fstat, and the bytes a held
/// descriptor reads, follow.
fn size_change(env: &Env) {
    let mut data = pseudo_random(3, 10_000);
    fs::write(env.b("f"), &data).unwrap();
    age(&env.b("f"));
    let held = File::open(env.v("f")).unwrap();
    assert_eq!(fs::metadata(env.v("f")).unwrap().size(), 10_000);
    assert_bytes_eq(&pread_all(&held), &data, "first read");
    let more = pseudo_random(4, 5_000);
    fs::OpenOptions::new()
        .append(true)
        .open(env.b("f"))
        .and_then(|f| f.write_all_at(&more, 10_000))
        .unwrap();
    data.extend_from_slice(&more);
    eventually("append: stat size", || {
        let s = lstat_result(&env.v("f"))?.size();
        (s == 15_000).then_some(()).ok_or(format!("size {s}"))
    });
    eventually("append: fstat size", || {
        let s = held.metadata().map_err(|e| e.to_string())?.size();
        (s == 15_000).then_some(()).ok_or(format!("size {s}"))
    });
    eventually("append: held descriptor reads the tail", || {
        content_is(pread_all(&held), &data)
    });
    File::options()
        .write(true)
        .open(env.b("f"))
        .and_then(|f| f.set_len(100))
        .unwrap();
    eventually("truncate: size and content", || {
        let s = lstat_result(&env.v("f"))?.size();
        if s != 100 {
            return Err(format!("size {s}"));
        }
        content_is(pread_all(&held), &data[..100])
    });
}

/// `touch -d` and chmod in the backing show in stat through the view.
fn mtime_and_mode_change(env: &Env) {
    fs::write(env.b("f"), b"x").unwrap();
    let before = lstat(&env.v("f"));
    let out = Command::new("touch")
        .args(["-m", "-d", "2001-02-03 04:05:06.789 UTC"])
        .arg(env.b("f"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_ne!(before.mtime(), 981_173_106);
    eventually("mtime set by touch -d", || {
        let m = lstat_result(&env.v("f"))?;
        let t = (m.mtime(), m.mtime_nsec());
        (t == (981_173_106, 789_000_000))
            .then_some(())
            .ok_or(format!("mtime {t:?}"))
    });
    fs::set_permissions(env.b("f"), fs::Permissions::from_mode(0o600)).unwrap();
    eventually("chmod 600", || {
        let m = lstat_result(&env.v("f"))?.mode();
        (m == libc::S_IFREG | 0o600)
            .then_some(())
            .ok_or(format!("mode {m:o}"))
    });
    same_attrs(env, "f");
}

/// A file and a directory renamed in the backing: the old names vanish, the new ones appear with
/// the same content, and a descriptor opened before keeps reading the file.
fn rename_in_backing(env: &Env) {
    fs::write(env.b("a"), b"content of a").unwrap();
    fs::create_dir(env.b("d")).unwrap();
    fs::write(env.b("d/inner"), b"inner").unwrap();
    let held = File::open(env.v("a")).unwrap();
    lstat(&env.v("a"));
    lstat(&env.v("d/inner"));
    gone(&env.v("b")).unwrap();
    fs::rename(env.b("a"), env.b("b")).unwrap();
    fs::rename(env.b("d"), env.b("e")).unwrap();
    eventually("renamed file: old name gone", || gone(&env.v("a")));
    eventually("renamed file: new name", || {
        content_is(
            fs::read(env.v("b")).map_err(|e| e.to_string())?,
            b"content of a",
        )
    });
    eventually("renamed dir: old path gone", || gone(&env.v("d/inner")));
    eventually("renamed dir: new path", || {
        content_is(
            fs::read(env.v("e/inner")).map_err(|e| e.to_string())?,
            b"inner",
        )
    });
    assert_eq!(pread_all(&held), b"content of a", "held descriptor");
    same_attrs(env, "b");
    same_attrs(env, "e/inner");
}

/// New bytes written in the backing file, then its mtime set back to what it was (same size): a
/// descriptor that read the old bytes reads the new ones. Nothing in the file's attributes tells a
/// cache that it changed, so only a mount that caches no pages (or the plain directory) sees it.
fn rewrite_keeping_mtime_and_size(env: &Env) {
    let old = pseudo_random(5, 64 * 1024);
    let new = pseudo_random(6, 64 * 1024);
    fs::write(env.b("f"), &old).unwrap();
    age(&env.b("f"));
    let stamp = lstat(&env.b("f"));
    let held = File::open(env.v("f")).unwrap();
    assert_bytes_eq(&pread_all(&held), &old, "first read through the view");
    File::options()
        .write(true)
        .open(env.b("f"))
        .and_then(|f| f.write_all_at(&new, 0))
        .unwrap();
    age(&env.b("f"));
    let again = lstat(&env.b("f"));
    assert_eq!(
        (again.mtime(), again.mtime_nsec(), again.size()),
        (stamp.mtime(), stamp.mtime_nsec(), stamp.size()),
        "the backing file's mtime and size are as before"
    );
    eventually(
        "rewrite with the same mtime and size, held descriptor",
        || content_is(pread_all(&held), &new),
    );
    eventually("rewrite with the same mtime and size, fresh open", || {
        content_is(fs::read(env.v("f")).unwrap(), &new)
    });
}

/// Removed in the backing: a file, and a directory tree, vanish from the view.
fn delete_in_backing(env: &Env) {
    fs::write(env.b("f"), b"x").unwrap();
    fs::create_dir_all(env.b("tree/sub")).unwrap();
    fs::write(env.b("tree/sub/g"), b"y").unwrap();
    lstat(&env.v("f"));
    lstat(&env.v("tree/sub/g"));
    assert_eq!(fs::read(env.v("tree/sub/g")).unwrap(), b"y");
    fs::remove_file(env.b("f")).unwrap();
    fs::remove_dir_all(env.b("tree")).unwrap();
    eventually("deleted file", || gone(&env.v("f")));
    eventually("deleted tree: leaf", || gone(&env.v("tree/sub/g")));
    eventually("deleted tree: top", || gone(&env.v("tree")));
    let names: Vec<_> = fs::read_dir(&env.view).unwrap().collect();
    assert!(names.is_empty(), "view still lists {names:?}");
}

/// Created in the backing after the view looked the name up and found nothing.
fn new_file_in_backing(env: &Env) {
    gone(&env.v("n")).unwrap();
    fs::create_dir(env.b("dir")).unwrap();
    assert_eq!(fs::read_dir(env.v("dir")).unwrap().count(), 0);
    fs::write(env.b("n"), b"new").unwrap();
    fs::write(env.b("dir/m"), b"new too").unwrap();
    eventually("new file", || {
        content_is(fs::read(env.v("n")).map_err(|e| e.to_string())?, b"new")
    });
    eventually("new file in a listed dir", || {
        let names: Vec<String> = fs::read_dir(env.v("dir"))
            .map_err(|e| e.to_string())?
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        (names == ["m"])
            .then_some(())
            .ok_or(format!("listing {names:?}"))
    });
    same_attrs(env, "n");
    same_attrs(env, "dir/m");
}

/// An editor's atomic save in the backing (write a temp file, rename it over the name): the view
/// shows the new file under the old name, in stat and content, to new opens; a descriptor opened
/// before keeps the old file.
fn replaced_by_rename(env: &Env) {
    let old = b"version 1\n".repeat(100);
    let new = b"version two\n".repeat(50);
    fs::write(env.b("cfg"), &old).unwrap();
    age(&env.b("cfg"));
    let held = File::open(env.v("cfg")).unwrap();
    assert_eq!(pread_all(&held), old);
    let ino_before = lstat(&env.v("cfg")).ino();
    fs::write(env.b(".cfg.tmp"), &new).unwrap();
    fs::rename(env.b(".cfg.tmp"), env.b("cfg")).unwrap();
    eventually("replaced file: content of a fresh open", || {
        content_is(fs::read(env.v("cfg")).map_err(|e| e.to_string())?, &new)
    });
    eventually("replaced file: stat", || {
        let m = lstat_result(&env.v("cfg"))?;
        (m.size() == new.len() as u64 && m.ino() != ino_before)
            .then_some(())
            .ok_or(format!(
                "size {} ino {} (was {ino_before})",
                m.size(),
                m.ino()
            ))
    });
    assert_eq!(pread_all(&held), old, "descriptor opened before the save");
    same_attrs(env, "cfg");
    gone(&env.v(".cfg.tmp")).unwrap();
}
