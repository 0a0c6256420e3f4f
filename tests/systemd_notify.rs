//! `Type=notify`: arsyncfs started with $NOTIFY_SOCKET sends `READY=1` only once the mount is usable
//! (mounted, and a file of the backing directory visible through it when the message arrives), and
//! `STOPPING=1` when it unmounts, at SIGTERM or after an unmount from outside. Both kinds of socket
//! systemd uses are covered: a path and an abstract `@name`. Run with `--nocapture` to see the
//! messages and when each arrived.

#[path = "common/mount.rs"]
mod mount;

use std::fs::File;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mount::{Signal, arsyncfs_bin, force_unmount, is_mounted, send_signal, wait_child};

/// The arsyncfs process of one test; stopped and its mount removed on every path.
struct Daemon {
    child: Option<Child>,
    mountpoint: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the process to exit (30 s at most) and returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let status = wait_child(&mut child, Duration::from_secs(30));
        let status = status.unwrap_or_else(|| panic!("arsyncfs did not exit:\n{}", self.stderr()));
        status.code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), Signal::TERM);
            if wait_child(&mut child, Duration::from_secs(10)).is_none() {
                force_unmount(&self.mountpoint);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        force_unmount(&self.mountpoint);
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    backing: PathBuf,
    mountpoint: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-notify-")
        .tempdir()
        .unwrap();
    let root = dir.path().canonicalize().unwrap();
    let backing = root.join("backing");
    let mountpoint = root.join("mnt");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mountpoint).unwrap();
    std::fs::write(backing.join("marker"), b"visible").unwrap();
    Setup {
        _dir: dir,
        root,
        backing,
        mountpoint,
    }
}

/// Starts arsyncfs in the foreground with `NOTIFY_SOCKET=notify_socket`.
fn start(s: &Setup, notify_socket: &str) -> Daemon {
    let stderr = s.root.join("stderr.log");
    let child = Command::new(arsyncfs_bin())
        .arg(&s.backing)
        .arg(&s.mountpoint)
        .env("NOTIFY_SOCKET", notify_socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    Daemon {
        child: Some(child),
        mountpoint: s.mountpoint.clone(),
        stderr,
    }
}

/// The next message on `socket`, printed with the time since `t0`.
fn next_message(socket: &UnixDatagram, t0: Instant, d: &Daemon) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification within 10 s ({e}); stderr:\n{}", d.stderr()));
    let msg = String::from_utf8(buf[..n].to_vec()).unwrap();
    println!(
        "{:>7.1} ms  {}",
        t0.elapsed().as_secs_f64() * 1000.0,
        msg.replace('\n', " | ")
    );
    msg
}

fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// What must hold when READY=1 arrives: the mount is there and serves the backing directory.
fn assert_usable(s: &Setup) {
    assert!(is_mounted(&s.mountpoint), "READY=1 before the mount exists");
    let outer = std::fs::metadata(&s.root).unwrap().dev();
    let inner = std::fs::metadata(&s.mountpoint).unwrap().dev();
    assert_ne!(
        outer, inner,
        "READY=1 while the mountpoint is still a plain directory"
    );
    assert_eq!(
        std::fs::read(s.mountpoint.join("marker")).unwrap(),
        b"visible",
        "READY=1 before the backing directory shows through the mount"
    );
    println!(
        "           at READY=1: {} is mounted, marker reads 'visible'",
        s.mountpoint.display()
    );
}

#[test]
fn ready_after_mount_and_stopping_at_sigterm_path_socket() {
    let s = setup();
    let socket_path = s.root.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let t0 = Instant::now();
    let mut d = start(&s, socket_path.to_str().unwrap());
    println!("NOTIFY_SOCKET={}", socket_path.display());

    let ready = next_message(&socket, t0, &d);
    assert_usable(&s);
    assert!(has_line(&ready, "READY=1"), "{ready}");
    let status = format!(
        "STATUS=Serving {} on {}",
        s.backing.display(),
        s.mountpoint.display()
    );
    assert!(has_line(&ready, &status), "{ready}");
    assert!(!ready.contains("STOPPING"), "{ready}");

    send_signal(d.child.as_ref().unwrap().id(), Signal::TERM);
    println!(
        "{:>7.1} ms  (SIGTERM sent)",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let stopping = next_message(&socket, t0, &d);
    assert!(has_line(&stopping, "STOPPING=1"), "{stopping}");
    assert!(has_line(
        &stopping,
        &format!("STATUS=SIGTERM: unmounting {}", s.mountpoint.display())
    ));
    assert_eq!(d.wait_exit(), Some(0), "stderr:\n{}", d.stderr());
    println!(
        "{:>7.1} ms  (exited 0)",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    assert!(!is_mounted(&s.mountpoint));
    assert_eq!(d.stderr(), "", "a warning about the notifications?");
}

#[test]
fn ready_after_mount_and_stopping_at_external_unmount_abstract_socket() {
    let s = setup();
    let name = format!("arsyncfs-test-notify-{}", std::process::id());
    let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    let t0 = Instant::now();
    let mut d = start(&s, &format!("@{name}"));
    println!("NOTIFY_SOCKET=@{name}");

    let ready = next_message(&socket, t0, &d);
    assert_usable(&s);
    assert!(has_line(&ready, "READY=1"), "{ready}");

    let umount = Command::new("umount").arg(&s.mountpoint).status().unwrap();
    assert!(umount.success());
    let stopping = next_message(&socket, t0, &d);
    assert!(has_line(&stopping, "STOPPING=1"), "{stopping}");
    assert_eq!(d.wait_exit(), Some(0), "stderr:\n{}", d.stderr());
    assert!(!is_mounted(&s.mountpoint));
}

#[test]
fn a_bad_notify_socket_is_a_warning_not_a_failure() {
    let s = setup();
    let mut d = start(&s, "not-a-socket-address");
    mount::wait_until(Duration::from_secs(10), "the mount", || {
        is_mounted(&s.mountpoint)
    });
    assert_eq!(
        std::fs::read(s.mountpoint.join("marker")).unwrap(),
        b"visible"
    );
    send_signal(d.child.as_ref().unwrap().id(), Signal::TERM);
    assert_eq!(d.wait_exit(), Some(0), "stderr:\n{}", d.stderr());
    assert!(
        d.stderr().contains("cannot notify systemd"),
        "stderr:\n{}",
        d.stderr()
    );
}
