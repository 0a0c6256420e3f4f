//! `--daemon`: the command returns only once the mount is live (or with the child's error), and the
//! detached daemon unmounts and exits 0 on SIGTERM.
//!
//! This test binary makes itself a child subreaper, so the daemon (orphaned when the `--daemon`
//! parent exits) is re-parented to it and its exit status can be checked.

#[path = "common/mount.rs"]
mod mount;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mount::{Signal, arsyncfs_bin, force_unmount, is_mounted, send_signal};
use rustix::process::{Pid, WaitOptions, waitpid};

/// The running daemon whose command line names `mountpoint`.
fn find_daemon(mountpoint: &Path) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.contains(&&b"--daemon-child"[..])
            && args.contains(&mountpoint.as_os_str().as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// Waits (up to `timeout`) for our re-parented child `pid` to exit; returns its exit code.
fn reap(pid: u32, timeout: Duration) -> Option<Option<i32>> {
    let pid = Pid::from_raw(pid as i32)?;
    let start = Instant::now();
    loop {
        match waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => return Some(status.exit_status()),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Stops the daemon and removes the mount on every path.
struct DaemonGuard {
    pid: Option<u32>,
    mountpoint: PathBuf,
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            send_signal(pid, Signal::TERM);
            if reap(pid, Duration::from_secs(10)).is_none() {
                force_unmount(&self.mountpoint);
                send_signal(pid, Signal::KILL);
                let _ = reap(pid, Duration::from_secs(10));
            }
        }
        force_unmount(&self.mountpoint);
        if let Some(pid) = find_daemon(&self.mountpoint) {
            send_signal(pid, Signal::KILL);
        }
    }
}

fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-daemon-")
        .tempdir()
        .unwrap();
    let root = dir.path().canonicalize().unwrap();
    let backing = root.join("backing");
    let mnt = root.join("mnt");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    (dir, backing, mnt)
}

#[test]
fn daemon_returns_once_mounted_and_unmounts_on_sigterm() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let (dir, backing, mnt) = dirs();
    std::fs::write(backing.join("f"), b"daemon").unwrap();
    let log = dir.path().join("daemon.log");
    let mut guard = DaemonGuard {
        pid: None,
        mountpoint: mnt.clone(),
    };
    let out = Command::new(arsyncfs_bin())
        .arg("--daemon")
        .arg("-v")
        .arg("--log-file")
        .arg(&log)
        .arg(&backing)
        .arg(&mnt)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // Whatever happens next, the guard cleans up.
    guard.pid = find_daemon(&mnt);
    assert!(
        out.status.success(),
        "{}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // Live the moment the command returned: no waiting.
    assert!(
        is_mounted(&mnt),
        "--daemon returned before the mount was live"
    );
    assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"daemon");

    let pid = guard.pid.expect("daemon process");
    let proc = PathBuf::from(format!("/proc/{pid}"));
    // Detached: its own session, cwd /, standard streams on /dev/null.
    let stat = std::fs::read_to_string(proc.join("stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let sid: u32 = after_comm.split(' ').nth(3).unwrap().parse().unwrap();
    assert_eq!(sid, pid, "the daemon is not a session leader");
    assert_eq!(
        std::fs::read_link(proc.join("cwd")).unwrap(),
        Path::new("/")
    );
    for fd in 0..=2 {
        assert_eq!(
            std::fs::read_link(proc.join(format!("fd/{fd}"))).unwrap(),
            Path::new("/dev/null")
        );
    }

    send_signal(pid, Signal::TERM);
    let code = reap(pid, Duration::from_secs(30)).expect("the daemon did not exit");
    guard.pid = None;
    assert_eq!(code, Some(0));
    assert!(!is_mounted(&mnt));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("mounted"), "{log}");
    assert!(log.contains("SIGTERM: unmounting"), "{log}");
}

#[test]
fn daemon_failure_is_reported_by_the_command() {
    let (_dir, backing, mnt) = dirs();
    let _guard = DaemonGuard {
        pid: None,
        mountpoint: mnt.clone(),
    };
    let out = Command::new(arsyncfs_bin())
        .arg("--daemon")
        .arg(backing.join("missing"))
        .arg(&mnt)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("arsyncfs: error: backing directory")
            && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(!is_mounted(&mnt));
    assert!(find_daemon(&mnt).is_none());
}

#[test]
fn works_as_a_mount_helper_for_fstab() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    let (dir, backing, mnt) = dirs();
    std::fs::write(backing.join("f"), b"fstab").unwrap();
    // mount(8) runs /sbin/mount.fuse.arsyncfs SPEC DIR [-s] [-f] [-n] [-v] -o OPTIONS.
    let helper = dir.path().join("mount.fuse.arsyncfs");
    std::os::unix::fs::symlink(arsyncfs_bin(), &helper).unwrap();
    let mut guard = DaemonGuard {
        pid: None,
        mountpoint: mnt.clone(),
    };

    // -f (fake): checks, does not mount, leaves no process.
    let out = Command::new(&helper)
        .arg(&backing)
        .arg(&mnt)
        .args(["-f", "-n", "-o", "rw,nofail"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!is_mounted(&mnt));
    assert!(find_daemon(&mnt).is_none());

    // Without -s, an unknown option is an error; with -s it is skipped.
    let out = Command::new(&helper)
        .arg(&backing)
        .arg(&mnt)
        .args(["-n", "-o", "rw,frobnicate"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'frobnicate'"));

    // The real thing: goes to the background once mounted, like a libfuse filesystem.
    let out = Command::new(&helper)
        .arg(&backing)
        .arg(&mnt)
        .args([
            "-s",
            "-n",
            "-o",
            "rw,nofail,_netdev,frobnicate",
            "-t",
            "fuse.arsyncfs",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    guard.pid = find_daemon(&mnt);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_mounted(&mnt));
    assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"fstab");
    let pid = guard.pid.expect("daemon process");
    send_signal(pid, Signal::TERM);
    let code = reap(pid, Duration::from_secs(30)).expect("the daemon did not exit");
    guard.pid = None;
    assert_eq!(code, Some(0));
    assert!(!is_mounted(&mnt));
}
