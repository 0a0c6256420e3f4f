//! `kill -INT` while fio hammers the mount: arsyncfs exits 0, no mount is left behind, and fio is not
//! left hung in D state (its open files fail with ENOTCONN instead).

#[path = "common/mount.rs"]
mod mount;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mount::{Mounted, Signal, is_mounted, wait_child, wait_until};

const JOBS: usize = 2;
const FILE_SIZE: u64 = 16 << 20;

/// Processes whose command line mentions `needle`, with their state letter (R, S, D, ...).
fn processes_mentioning(needle: &str) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(needle) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(state) = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next()) {
            found.push((pid, state));
        }
    }
    found
}

/// Whether some process mentioning `needle` has a file open under `dir`.
fn has_open_file_under(needle: &str, dir: &Path) -> bool {
    processes_mentioning(needle).iter().any(|(pid, _)| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(dir))
                })
            })
            .unwrap_or(false)
    })
}

/// Kills fio on every path.
struct Fio(Child);

impl Drop for Fio {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = wait_child(&mut self.0, Duration::from_secs(10));
        }
    }
}

#[test]
fn sigint_during_fio_leaves_no_mount_and_no_hung_process() {
    if Command::new("fio").arg("--version").output().is_err() {
        eprintln!("skipped: fio is not installed");
        return;
    }
    let mut m = Mounted::new();
    let mp = m.mountpoint().to_path_buf();
    let log_dir = tempfile::tempdir().unwrap();
    let log = File::create(log_dir.path().join("fio.log")).unwrap();
    let mut fio = Fio(Command::new("fio")
        .arg("--name=interrupt")
        .arg(format!("--directory={}", mp.display()))
        .args([
            "--rw=randrw",
            "--ioengine=psync",
            "--bs=4k",
            &format!("--size={FILE_SIZE}"),
            &format!("--numjobs={JOBS}"),
            "--runtime=30",
            "--time_based",
            "--group_reporting",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn fio"));

    // Wait until fio is in its random I/O phase: every job file is laid out in full and fio holds
    // files open on the mount.
    let backing = m.backing().to_path_buf();
    wait_until(Duration::from_secs(120), "fio to start its I/O", || {
        let laid_out = (0..JOBS).all(|j| {
            std::fs::metadata(backing.join(format!("interrupt.{j}.0")))
                .is_ok_and(|md| md.len() == FILE_SIZE)
        });
        laid_out && has_open_file_under("--name=interrupt", &mp)
    });
    assert!(
        matches!(fio.0.try_wait(), Ok(None)),
        "fio ended before the interrupt"
    );

    m.signal(Signal::INT);
    let status = m.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", m.stderr());
    assert!(!is_mounted(&mp), "mount left behind");
    // fio was busy on the mount: either the daemon caught a moment between fio's passes over its
    // files (it retries a busy unmount for half a second) or it detached the mount and cut the
    // connection. Either way fio must not hang.

    // fio notices (ENOTCONN) and exits: nothing is stuck in D state.
    let exited = wait_child(&mut fio.0, Duration::from_secs(60));
    let stuck = processes_mentioning(&format!("--directory={}", mp.display()));
    assert!(
        exited.is_some(),
        "fio did not exit after the interrupt; its processes: {stuck:?}"
    );
    wait_until(
        Duration::from_secs(30),
        "fio's job processes to exit",
        || processes_mentioning(&format!("--directory={}", mp.display())).is_empty(),
    );
}
