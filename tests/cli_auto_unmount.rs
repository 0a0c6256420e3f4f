//! auto_unmount (the default): a daemon killed under load leaves no dead mount behind, its watcher
//! detaches it; without it (`--no-auto-unmount`) the dead mount stays and a new mount on it fails
//! with the "stale FUSE mount" error. After a clean exit the watcher touches nothing, not even a new
//! mount made at once on the same mountpoint.

#[path = "common/mount.rs"]
mod mount;

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mount::{
    Mounted, Signal, arsyncfs_bin, force_unmount, is_mounted, send_signal, wait_child, wait_until,
};

/// The auto_unmount watcher started by the daemon `daemon_pid`.
fn watcher_of(daemon_pid: u32) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: the fields after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(daemon_pid)
            && cmdline
                .split(|&b| b == 0)
                .any(|a| a == b"--auto-unmount-watcher")
        {
            return Some(pid);
        }
    }
    None
}

/// Whether process `pid` is gone (or a zombie waiting for its new parent).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// A writer that keeps requests in flight through the mount until it is killed.
struct Load(Child);

impl Load {
    fn start(path: &Path) -> Load {
        let child = Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", path.display()))
            .args(["bs=1M", "count=100000", "conv=fsync", "status=none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dd");
        Load(child)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A second arsyncfs at a given mountpoint, stopped and unmounted on every path.
struct Second {
    child: Child,
    mountpoint: PathBuf,
}

impl Drop for Second {
    fn drop(&mut self) {
        send_signal(self.child.id(), Signal::TERM);
        if wait_child(&mut self.child, Duration::from_secs(10)).is_none() {
            force_unmount(&self.mountpoint);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        force_unmount(&self.mountpoint);
    }
}

#[test]
fn sigkill_under_load_leaves_no_mount() {
    let mut m = Mounted::new();
    let watcher = watcher_of(m.pid()).expect("a watcher process");
    // It holds nothing of the mount: no /dev/fuse, no io_uring, no file of either tree.
    for fd in std::fs::read_dir(format!("/proc/{watcher}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        let t = target.as_os_str().as_bytes();
        assert!(
            !t.starts_with(b"/dev/fuse")
                && !t.starts_with(b"anon_inode:[io_uring]")
                && !target.starts_with(m.backing())
                && !target.starts_with(m.mountpoint()),
            "the watcher holds {}",
            target.display()
        );
    }
    let data = m.mountpoint().join("data");
    let _load = Load::start(&data);
    wait_until(Duration::from_secs(10), "dd to write", || {
        std::fs::metadata(m.backing().join("data")).is_ok_and(|md| md.len() > (4 << 20))
    });
    // What `systemctl stop` or Ctrl-C sends to everyone: the watcher lets it pass.
    send_signal(watcher, Signal::TERM);
    m.signal(Signal::KILL);
    m.wait_exit();
    wait_until(Duration::from_secs(5), "the dead mount to go", || {
        !is_mounted(m.mountpoint())
    });
    wait_until(Duration::from_secs(5), "the watcher to exit", || {
        is_gone(watcher)
    });
    assert!(
        m.stderr().contains("is gone: detached its dead mount"),
        "stderr:\n{}",
        m.stderr()
    );
    // The mountpoint is a plain directory again: a new mount is accepted.
    let fake = Command::new(arsyncfs_bin())
        .arg("--fake")
        .arg(m.backing())
        .arg(m.mountpoint())
        .output()
        .unwrap();
    assert!(fake.status.success(), "{fake:?}");
}

#[test]
fn without_auto_unmount_the_dead_mount_stays_and_a_new_mount_says_stale() {
    let mut m = Mounted::with_args(&["--no-auto-unmount"]);
    assert_eq!(watcher_of(m.pid()), None);
    let _load = Load::start(&m.mountpoint().join("data"));
    wait_until(Duration::from_secs(10), "dd to write", || {
        std::fs::metadata(m.backing().join("data")).is_ok_and(|md| md.len() > 0)
    });
    m.signal(Signal::KILL);
    m.wait_exit();
    std::thread::sleep(Duration::from_millis(500));
    assert!(is_mounted(m.mountpoint()), "the mount went away by itself");
    let err = std::fs::metadata(m.mountpoint()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    let again = Command::new(arsyncfs_bin())
        .arg(m.backing())
        .arg(m.mountpoint())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(4), "{again:?}");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("is a stale FUSE mount"), "{stderr}");
    // The guard removes the dead mount.
}

#[test]
fn after_a_clean_exit_the_watcher_leaves_a_new_mount_alone() {
    let mut m = Mounted::spawn(&[] as &[&str], |b| {
        std::fs::write(b.join("f"), b"x").unwrap()
    });
    let watcher = watcher_of(m.pid()).expect("a watcher process");
    m.signal(Signal::TERM);
    assert!(m.wait_exit().success(), "stderr:\n{}", m.stderr());
    // A new mount on the same mountpoint at once, while the old watcher wakes up.
    let log = m.backing().parent().unwrap().join("second.log");
    let child = Command::new(arsyncfs_bin())
        .arg(m.backing())
        .arg(m.mountpoint())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let second = Second {
        child,
        mountpoint: m.mountpoint().to_path_buf(),
    };
    wait_until(Duration::from_secs(10), "the second mount", || {
        is_mounted(m.mountpoint())
    });
    wait_until(Duration::from_secs(5), "the old watcher to exit", || {
        is_gone(watcher)
    });
    assert!(is_mounted(m.mountpoint()));
    assert_eq!(std::fs::read(m.mountpoint().join("f")).unwrap(), b"x");
    assert_eq!(m.stderr(), "", "the old watcher said something");
    drop(second);
    assert!(!is_mounted(m.mountpoint()));
}
