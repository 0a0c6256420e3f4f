//! A mounted arsyncfs for integration tests, unmounted on every path (also when the test panics).
//!
//! Include it from a test file with
//! ```ignore
//! #[path = "common/mount.rs"]
//! mod mount;
//! use mount::Mounted;
//! ```
//!
//! API:
//! - `Mounted::new()`: runs the built `arsyncfs` binary in the foreground on fresh temp dirs
//!   (`<tmp>/backing` and `<tmp>/mnt`, siblings) with default options, and returns once the mount
//!   shows up in /proc/self/mountinfo (panics, with the binary's stderr, after 10 s or if it exits).
//! - `Mounted::with_args(&["-o", "ro"])`: the same with extra arguments (placed before the paths).
//! - `Mounted::spawn(args, |backing| { ... })`: fills the backing dir before mounting.
//! - `Mounted::try_spawn(args, setup)`: like `spawn` but returns `Err(stderr)` instead of panicking
//!   when the mount does not come up.
//! - `.backing()`, `.mountpoint()`: the two directories. `.pid()`: the arsyncfs process.
//!   `.stderr()`: what the binary wrote to stderr so far (it goes to `<tmp>/stderr.log`).
//! - `.signal(Signal::INT)`: sends a signal; `.wait_exit()`: waits (up to 30 s) for the process to
//!   exit and returns its status (panics on timeout).
//! - `.unmount()`: SIGTERM, wait, and assert that it exited 0 and the mount is gone.
//! - `.kill()`: SIGKILL, as a crash: the daemon dies at once and leaves its mount stale (ENOTCONN);
//!   `.unmount_stale()` removes it as a user would (`fusermount3 -u`, else `umount -l`);
//!   `.restart(args)` mounts again on the same backing and mountpoint (its stderr appended to the
//!   same log).
//! - `Drop`: if the process still runs, SIGTERM and wait up to 10 s; if the mount is still there,
//!   `umount -l`; if the process still runs, SIGKILL. Only then are the temp dirs removed.
//!
//! Helpers: `mount_entry(path)` finds a mount point in /proc/self/mountinfo, `is_mounted(path)`,
//! `wait_until(timeout, what, cond)` polls a condition and panics with `what` on timeout,
//! `arsyncfs_bin()` is the path of the built binary, `logged_value(log, field)` reads a counter
//! from the summary the daemon logs at exit with -v.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub use rustix::process::Signal;
use rustix::process::{Pid, kill_process};

/// Path of the binary under test.
pub fn arsyncfs_bin() -> &'static str {
    env!("CARGO_BIN_EXE_arsyncfs")
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub mount_options: String,
    pub super_options: String,
}

fn unescape(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every mount of this process's mount namespace.
pub fn mounts() -> Vec<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                mount_options: pre.get(5)?.to_string(),
                fs_type: post.first()?.to_string(),
                source: unescape(post.get(1)?),
                super_options: post.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// The (topmost) mount at `path`, if any.
pub fn mount_entry(path: &Path) -> Option<MountEntry> {
    mounts().into_iter().rev().find(|m| m.mount_point == path)
}

pub fn is_mounted(path: &Path) -> bool {
    mount_entry(path).is_some()
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `child` until it exits or `timeout` passes.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Sends `sig` to process `pid`, ignoring errors (it may have exited already).
pub fn send_signal(pid: u32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid as i32) {
        let _ = kill_process(pid, sig);
    }
}

/// Lazily unmounts `path` if it is a mount point (best effort, for cleanup paths).
pub fn force_unmount(path: &Path) {
    if is_mounted(path) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A running arsyncfs mounted over a temp backing dir. See the module docs.
pub struct Mounted {
    child: Option<Child>,
    backing: PathBuf,
    mountpoint: PathBuf,
    stderr_path: PathBuf,
    // Dropped last, after the mount is gone.
    _dir: tempfile::TempDir,
}

const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);

impl Mounted {
    /// Mounts with default options.
    pub fn new() -> Mounted {
        Self::spawn(&[] as &[&str], |_| {})
    }

    /// Mounts with extra arguments.
    pub fn with_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Mounted {
        Self::spawn(args, |_| {})
    }

    /// Fills the backing dir with `setup`, then mounts with extra arguments.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S], setup: impl FnOnce(&Path)) -> Mounted {
        match Self::try_spawn(args, setup) {
            Ok(m) => m,
            Err(msg) => panic!("{msg}"),
        }
    }

    /// Like [`Mounted::spawn`], but a mount that does not come up is an `Err` with the reason and
    /// the binary's stderr.
    pub fn try_spawn<S: AsRef<std::ffi::OsStr>>(
        args: &[S],
        setup: impl FnOnce(&Path),
    ) -> Result<Mounted, String> {
        let dir = tempfile::Builder::new()
            .prefix("arsyncfs-test-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().canonicalize().expect("canonicalize temp dir");
        let backing = root.join("backing");
        let mountpoint = root.join("mnt");
        std::fs::create_dir(&backing).expect("create backing dir");
        std::fs::create_dir(&mountpoint).expect("create mountpoint");
        setup(&backing);
        let stderr_path = root.join("stderr.log");
        let stderr = File::create(&stderr_path).expect("create stderr log");
        let mut argv: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        argv.push(backing.clone().into());
        argv.push(mountpoint.clone().into());
        let child = Command::new(arsyncfs_bin())
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn arsyncfs");
        let mut mounted = Mounted {
            child: Some(child),
            backing,
            mountpoint,
            stderr_path,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if is_mounted(&mounted.mountpoint) {
                return Ok(mounted);
            }
            let child = mounted.child.as_mut().expect("child present");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "arsyncfs {argv:?} exited with {status} before mounting; stderr:\n{}",
                    mounted.stderr()
                ));
            }
            if start.elapsed() > MOUNT_TIMEOUT {
                return Err(format!(
                    "arsyncfs {argv:?} did not mount within {MOUNT_TIMEOUT:?}; stderr:\n{}",
                    mounted.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn backing(&self) -> &Path {
        &self.backing
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The arsyncfs process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(|c| c.id())
            .expect("process already reaped")
    }

    /// Everything arsyncfs wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        if let Some(child) = &self.child {
            send_signal(child.id(), sig);
        }
    }

    /// Waits up to 30 s for arsyncfs to exit; panics on timeout. Returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("process already reaped");
        match wait_child(child, Duration::from_secs(30)) {
            Some(status) => {
                self.child = None;
                status
            }
            None => panic!(
                "arsyncfs did not exit within 30 s; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// SIGKILL, and wait for the process to be gone. Its mount stays, stale, until
    /// [`Mounted::unmount_stale`].
    pub fn kill(&mut self) -> ExitStatus {
        self.signal(Signal::KILL);
        self.wait_exit()
    }

    /// Removes the mount a dead daemon left: `fusermount3 -u`, else (still busy) `umount -l`.
    pub fn unmount_stale(&self) {
        let quiet = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !quiet(Command::new("fusermount3").arg("-u").arg(&self.mountpoint)) {
            quiet(Command::new("umount").arg("-l").arg(&self.mountpoint));
        }
        assert!(
            !is_mounted(&self.mountpoint),
            "the stale mount is still there"
        );
    }

    /// Mounts again on the same backing and mountpoint with `args`, after the last daemon exited
    /// and its mount is gone; returns once the mount shows up (panics, with the log, if not).
    pub fn restart<S: AsRef<std::ffi::OsStr>>(&mut self, args: &[S]) {
        assert!(self.child.is_none(), "the daemon still runs");
        assert!(!is_mounted(&self.mountpoint), "still mounted");
        let stderr = File::options()
            .append(true)
            .open(&self.stderr_path)
            .expect("open the stderr log");
        let child = Command::new(arsyncfs_bin())
            .args(args)
            .arg(&self.backing)
            .arg(&self.mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn arsyncfs");
        self.child = Some(child);
        let start = Instant::now();
        while !is_mounted(&self.mountpoint) {
            let child = self.child.as_mut().expect("child present");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                panic!(
                    "arsyncfs exited with {status} before mounting again:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < MOUNT_TIMEOUT,
                "arsyncfs did not mount again within {MOUNT_TIMEOUT:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait for exit, and check it exited 0 with the mount gone.
    pub fn unmount(mut self) {
        self.signal(Signal::TERM);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "arsyncfs exited with {status}; stderr:\n{}",
            self.stderr()
        );
        assert!(
            !is_mounted(&self.mountpoint),
            "mount still present after arsyncfs exited"
        );
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && matches!(child.try_wait(), Ok(None))
        {
            send_signal(child.id(), Signal::TERM);
            if wait_child(&mut child, MOUNT_TIMEOUT).is_none() {
                force_unmount(&self.mountpoint);
                let _ = child.kill();
                let _ = wait_child(&mut child, MOUNT_TIMEOUT);
            }
        }
        force_unmount(&self.mountpoint);
    }
}

/// The value of `field` (a whole field name) in the counters the daemon logs at exit with -v, e.g.
/// `logged_value(&m.stderr(), "writes")`. Panics, with the log, if the field is missing.
pub fn logged_value(log: &str, field: &str) -> u64 {
    // A whole field name: " writes: " is not the end of " inline_writes: ".
    let key = format!(" {field}: ");
    let start = log
        .find(&key)
        .unwrap_or_else(|| panic!("{field} not in the log:\n{log}"));
    log[start + key.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}
