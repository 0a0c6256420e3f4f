//! Shared helpers for the filesystem conformance tests (tests/fs_*.rs).
//!
//! Every check is a function `fn(&Env)`: it does its operations on `env.view` and checks the results
//! through `env.view` and in `env.backing`. [`fs_tests!`] runs each check twice: once on a plain
//! temporary directory (view == backing, so the check is a statement about POSIX on the backing
//! filesystem), once through an arsyncfs mount (view = mountpoint, backing = its backing dir), and
//! once through a mount with kernel passthrough (`--passthrough`).
//!
//! A test file includes this module together with the mount guard:
//! ```ignore
//! #[path = "common/mount.rs"]
//! mod mount;
//! #[macro_use]
//! #[path = "common/fs_util.rs"]
//! mod fs_util;
//! ```
#![allow(dead_code)]

use crate::rng;

use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where a check runs.
pub struct Env {
    /// Where the operations happen: the mountpoint, or the plain directory.
    pub view: PathBuf,
    /// The backing directory of the view (the same directory as `view` on the plain run).
    pub backing: PathBuf,
    /// True when `view` is an arsyncfs mount.
    pub mounted: bool,
    /// True when that mount has kernel passthrough (`--passthrough`).
    pub passthrough: bool,
    /// The mount has the FUSE writeback cache (`--writeback`, `--cache always`): the kernel keeps
    /// a regular file's size and times itself and writes its data to the backing file later (at
    /// fsync, close or in the background), so a check must fsync before it looks in the backing
    /// directory, and the mtime and ctime the view shows are the kernel's own.
    pub writeback: bool,
    _keep: Keep,
}

enum Keep {
    Plain(#[allow(dead_code)] tempfile::TempDir),
    Mounted(#[allow(dead_code)] crate::mount::Mounted),
}

impl Env {
    /// A path under the view.
    pub fn v(&self, rel: &str) -> PathBuf {
        self.view.join(rel)
    }

    /// The same path under the backing directory.
    pub fn b(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }
}

/// Make mode checks independent of the environment the tests were started from. Every test sets
/// the same value, so the race on this process-wide setting is harmless; the mount daemon is
/// spawned after it and inherits it.
fn fixed_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
}

/// Runs `check` on a plain temporary directory.
pub fn run_plain(check: fn(&Env)) {
    fixed_umask();
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-plain-")
        .tempdir()
        .expect("create temp dir");
    let path = dir.path().to_path_buf();
    let env = Env {
        view: path.clone(),
        backing: path,
        mounted: false,
        passthrough: false,
        writeback: false,
        _keep: Keep::Plain(dir),
    };
    check(&env);
}

/// Runs `check` through a fresh arsyncfs mount over a fresh backing directory. The mount guard
/// unmounts when the check returns or panics.
pub fn run_mounted(check: fn(&Env)) {
    run_mounted_with(&[], check)
}

/// Like [`run_mounted`], with extra arsyncfs arguments (e.g. `["--cache", "never"]`).
pub fn run_mounted_with(args: &[&str], check: fn(&Env)) {
    fixed_umask();
    let m = crate::mount::Mounted::with_args(args);
    let env = Env {
        view: m.mountpoint().to_path_buf(),
        backing: m.backing().to_path_buf(),
        mounted: true,
        passthrough: args.contains(&"--passthrough"),
        writeback: has_writeback(args),
        _keep: Keep::Mounted(m),
    };
    check(&env);
}

/// Whether arsyncfs run with `args` has the writeback cache (the last of --writeback,
/// --no-writeback and --cache decides; `--cache always` turns it on).
fn has_writeback(args: &[&str]) -> bool {
    let mut on = false;
    for (i, a) in args.iter().enumerate() {
        match *a {
            "--writeback" => on = true,
            "--no-writeback" => on = false,
            "--cache" => on = args.get(i + 1) == Some(&"always"),
            _ => {}
        }
    }
    on
}

/// Defines, for each named check `fn name(&Env)`, a module `name` with three tests: `plain` (on a
/// plain directory), `mount` (through arsyncfs with its defaults, `--cache auto`) and
/// `mount_passthrough` (with `--passthrough`). Written
/// `fs_tests!(cache_modes: ...)`, it also has `mount_cache_always` and `mount_cache_never`: the same
/// check through a mount of each of the other cache modes.
#[allow(unused_macros)] // tests/posix_coherence.rs defines its own
macro_rules! fs_tests {
    (cache_modes: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn plain() {
                crate::fs_util::run_plain(super::$name)
            }
            #[test]
            fn mount() {
                crate::fs_util::run_mounted(super::$name)
            }
            #[test]
            fn mount_cache_always() {
                crate::fs_util::run_mounted_with(&["--cache", "always"], super::$name)
            }
            #[test]
            fn mount_cache_never() {
                crate::fs_util::run_mounted_with(&["--cache", "never"], super::$name)
            }
            #[test]
            fn mount_passthrough() {
                crate::fs_util::run_mounted_with(&["--passthrough"], super::$name)
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn plain() {
                crate::fs_util::run_plain(super::$name)
            }
            #[test]
            fn mount() {
                crate::fs_util::run_mounted(super::$name)
            }
            #[test]
            fn mount_passthrough() {
                crate::fs_util::run_mounted_with(&["--passthrough"], super::$name)
            }
        }
    )*};
}

// ---------------------------------------------------------------------------------------------
// Attributes

/// lstat(2) that panics with the path on failure.
pub fn lstat(path: &Path) -> Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
}

/// Asserts that two stats describe the same object: type and mode, owner, size, link count,
/// device number, and mtime/ctime to the nanosecond. (Inode and device numbers of the view are
/// the filesystem's own, so they are not compared here.)
pub fn assert_same_attrs(view: &Metadata, backing: &Metadata, what: &str) {
    assert_same_attrs_but_times(view, backing, what);
    assert_eq!(
        (view.mtime(), view.mtime_nsec()),
        (backing.mtime(), backing.mtime_nsec()),
        "{what}: st_mtime (s, ns)"
    );
    assert_eq!(
        (view.ctime(), view.ctime_nsec()),
        (backing.ctime(), backing.ctime_nsec()),
        "{what}: st_ctime (s, ns)"
    );
}

/// [`assert_same_attrs`] without mtime and ctime.
fn assert_same_attrs_but_times(view: &Metadata, backing: &Metadata, what: &str) {
    assert_eq!(
        view.mode(),
        backing.mode(),
        "{what}: st_mode view {:o} backing {:o}",
        view.mode(),
        backing.mode()
    );
    assert_eq!(view.uid(), backing.uid(), "{what}: st_uid");
    assert_eq!(view.gid(), backing.gid(), "{what}: st_gid");
    assert_eq!(view.size(), backing.size(), "{what}: st_size");
    assert_eq!(view.nlink(), backing.nlink(), "{what}: st_nlink");
    assert_eq!(view.rdev(), backing.rdev(), "{what}: st_rdev");
}

/// lstat of `rel` through the view and in the backing dir; asserts they agree; returns the view's.
/// Under the writeback cache a regular file is fsynced first (so that the backing file holds what
/// the kernel holds), and its mtime and ctime are not compared: the kernel sets its own when a
/// write enters its cache (and none for fallocate with KEEP_SIZE), and the backing file's are the
/// times the data reached it.
pub fn same_attrs(env: &Env, rel: &str) -> Metadata {
    let written_back = env.writeback && lstat(&env.v(rel)).is_file();
    if written_back {
        File::open(env.v(rel))
            .and_then(|f| f.sync_all())
            .unwrap_or_else(|e| panic!("fsync {rel}: {e}"));
    }
    let v = lstat(&env.v(rel));
    let b = lstat(&env.b(rel));
    if written_back {
        assert_same_attrs_but_times(&v, &b, rel);
    } else {
        assert_same_attrs(&v, &b, rel);
    }
    v
}

/// Asserts that `rel` does not exist, neither through the view nor in the backing dir.
pub fn assert_absent(env: &Env, rel: &str) {
    for p in [env.v(rel), env.b(rel)] {
        match fs::symlink_metadata(&p) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => panic!("lstat {}: expected ENOENT, got {e}", p.display()),
            Ok(m) => panic!("{} still exists ({:?})", p.display(), m.file_type()),
        }
    }
}

/// Permission bits and file type, as in st_mode.
pub fn mode_of(m: &Metadata) -> u32 {
    m.mode()
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The errno of an io::Error (panics if it has none).
pub fn errno(e: &io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("not an OS error: {e}"))
}

/// Asserts that `r` failed with `want` (a libc errno constant).
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(r: io::Result<T>, want: i32, what: &str) {
    match r {
        Ok(v) => panic!(
            "{what}: expected errno {} ({want}), got Ok({v:?})",
            errname(want)
        ),
        Err(e) => assert_eq!(
            errno(&e),
            want,
            "{what}: expected {} got {e}",
            errname(want)
        ),
    }
}

/// Asserts that a rustix call failed with `want` (a libc errno constant).
#[track_caller]
pub fn expect_errno<T: std::fmt::Debug>(r: rustix::io::Result<T>, want: i32, what: &str) {
    expect_err(r.map_err(io::Error::from), want, what)
}

/// A readable name for the errnos these tests expect.
pub fn errname(e: i32) -> String {
    let name = match e {
        libc::ENOENT => "ENOENT",
        libc::EEXIST => "EEXIST",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENODATA => "ENODATA",
        libc::ERANGE => "ERANGE",
        libc::ENXIO => "ENXIO",
        libc::EINVAL => "EINVAL",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ELOOP => "ELOOP",
        libc::EBADF => "EBADF",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

// ---------------------------------------------------------------------------------------------
// Content

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    rng::Rng::new(seed).bytes(len)
}

/// FNV-1a 64 of `data`, for short messages about big buffers.
pub fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Asserts two byte strings are equal, reporting lengths, hashes and the first differing offset
/// instead of dumping megabytes.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{what}: content differs: got {} bytes (fnv {:016x}), want {} bytes (fnv {:016x}); \
         first difference at {:?}",
        got.len(),
        fnv64(got),
        want.len(),
        fnv64(want),
        first.or(Some(got.len().min(want.len())))
    );
}

/// Reads `rel` through the view and in the backing dir and asserts both equal `want`.
#[track_caller]
pub fn assert_content(env: &Env, rel: &str, want: &[u8]) {
    if env.writeback {
        File::open(env.v(rel))
            .and_then(|f| f.sync_all())
            .unwrap_or_else(|e| panic!("fsync {rel}: {e}"));
    }
    let v = fs::read(env.v(rel)).unwrap_or_else(|e| panic!("read view {rel}: {e}"));
    assert_bytes_eq(&v, want, &format!("{rel} through the view"));
    let b = fs::read(env.b(rel)).unwrap_or_else(|e| panic!("read backing {rel}: {e}"));
    assert_bytes_eq(&b, want, &format!("{rel} in the backing dir"));
}

/// Creates a file with `data` through the view.
pub fn write_file(env: &Env, rel: &str, data: &[u8]) {
    fs::write(env.v(rel), data).unwrap_or_else(|e| panic!("write {rel}: {e}"));
}

/// Opens a file read-write through the view.
pub fn open_rw(path: &Path) -> File {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Closes `f` with close(2) and returns its result (std's drop ignores it).
pub fn close_checked(f: File) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = f.into_raw_fd();
    // SAFETY: `fd` was just taken out of its owner, so it is open and closed exactly once here.
    #[allow(unsafe_code)]
    let r = unsafe { libc::close(fd) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
