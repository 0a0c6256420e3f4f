//! `auto_unmount` (on by default): a daemon that dies, whatever killed it (SIGKILL, the OOM killer,
//! a crash), leaves no dead mount behind that answers ENOTCONN to every program.
//!
//! It works as libfuse's does: a second process watches the daemon and unmounts for it. Once
//! mounted, the daemon starts this same binary as the watcher (`--auto-unmount-watcher ID
//! MOUNTPOINT`, not a user option) with a pipe as its stdin, and keeps the pipe's write end. The
//! kernel closes that end when the daemon exits, however it exits; the watcher then reads
//! end-of-file, waits until it is re-parented (the daemon's files are all released by then) and, if the daemon's mount (by mount id) is still the topmost at the mountpoint and
//! nobody serves it any more (statfs fails with ENOTCONN), detaches it like `umount -l` (as a user,
//! through `fusermount3 -u -z`). After a clean unmount there is nothing left to do and it just
//! exits. Stop signals are blocked in the watcher, so a SIGTERM to the whole process group or unit
//! (Ctrl-C, `systemctl stop`) does not end it before the daemon.
//!
//! fuser's `MountOption::AutoUnmount` is not used: it always mounts through fusermount3, whose
//! watcher (libfuse 3.14) needs `allow_other` on the mount: fuser refuses it for a mount only its
//! owner may use, and as a user it needs `user_allow_other` in /etc/fuse.conf.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::mountinfo;
use super::signals;
use super::systemd::NOTIFY_SOCKET;
use crate::sys::process::unmount;

/// The hidden first argument that makes a process the watcher.
pub const WATCHER_FLAG: &str = "--auto-unmount-watcher";

/// The daemon's side of a running watcher: the pipe's write end, closed at exit, which wakes it.
pub struct Watcher {
    _pipe: ChildStdin,
}

/// Starts the watcher of the mount `mount_id` at `mountpoint` (canonical); its messages go to
/// `stderr`.
pub fn start(mountpoint: &Path, mount_id: u64, stderr: Stdio) -> io::Result<Watcher> {
    // /proc/self/exe: still this binary when install.sh has replaced the file meanwhile.
    let mut child = Command::new("/proc/self/exe")
        .arg(WATCHER_FLAG)
        .arg(mount_id.to_string())
        .arg(std::process::id().to_string())
        .arg(mountpoint)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr)
        // Keep no directory busy, stay out of the terminal's signals, send systemd nothing.
        .current_dir("/")
        .process_group(0)
        .env_remove(NOTIFY_SOCKET)
        .spawn()?;
    // Not waited for: it outlives this process by design.
    let pipe = child.stdin.take().expect("stdin is piped");
    Ok(Watcher { _pipe: pipe })
}

/// Runs the watcher (`args`: what follows [`WATCHER_FLAG`]); returns the exit code.
pub fn run_watcher(args: &[OsString]) -> i32 {
    let number = |i: usize| args.get(i).and_then(|a| a.to_str()?.parse::<u64>().ok());
    let (Some(id), Some(daemon), Some(mountpoint), None) = (
        number(0),
        number(1),
        args.get(2).map(PathBuf::from),
        args.get(3),
    ) else {
        say(format_args!(
            "arsyncfs: error: {WATCHER_FLAG} takes a mount id, the daemon's pid and a mountpoint"
        ));
        return 2;
    };
    // Pending for ever: only the end of the daemon ends the watcher (SIGKILL aside).
    if let Err(e) = signals::block() {
        say(format_args!(
            "arsyncfs: auto_unmount watcher: cannot block signals: {e}"
        ));
    }
    // The daemon's pid comes from the daemon: read here, it would be the reaper's if the daemon
    // died before the watcher got this far.
    let daemon = rustix::process::Pid::from_raw(daemon as i32);
    let mut stdin = io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    // The pipe may close before the daemon's /dev/fuse descriptors do; a process is re-parented
    // only once all its files are released, and the connection is then aborted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rustix::process::getppid() == daemon && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !is_dead_mount(&mountpoint, id) {
        return 0;
    }
    let shown = mountpoint.display();
    let detached = match unmount(&mountpoint, true) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            super::run::fusermount_unmount(&mountpoint, true)
        }
        Err(_) => false,
    };
    if detached {
        say(format_args!(
            "arsyncfs: the daemon serving {shown} is gone: detached its dead mount"
        ));
        0
    } else {
        say(format_args!(
            "arsyncfs: error: the daemon serving {shown} is gone and its mount could not be detached"
        ));
        1
    }
}

/// One line to stderr, ignoring a failed write: the watcher may outlive the terminal it inherited
/// (with `stty tostop` a write from its own process group fails), and must not panic for that.
fn say(line: std::fmt::Arguments) {
    let _ = writeln!(io::stderr(), "{line}");
}

/// Whether the mount `id` is still the topmost at `mountpoint`, with nobody serving it.
fn is_dead_mount(mountpoint: &Path, id: u64) -> bool {
    match mountinfo::find(mountpoint) {
        Ok(Some(entry)) if entry.id == id => {}
        _ => return false,
    }
    // ECONNABORTED: the request was queued before the connection was aborted.
    matches!(
        rustix::fs::statfs(mountpoint),
        Err(rustix::io::Errno::NOTCONN | rustix::io::Errno::CONNABORTED)
    )
}
