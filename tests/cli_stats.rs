//! `arsyncfs stats MOUNTPOINT` against real mounts: the counters move with the I/O the test makes,
//! `--json` is JSON (read by python3), `--prometheus` lines are well formed (checked by a python3
//! regex independent of the Rust code), `--watch` keeps printing, the socket is private and goes at
//! unmount, the same report is logged at unmount with -v, and each bad input gets its one line and
//! exit code.

#[path = "common/mount.rs"]
mod mount;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mount::{Mounted, Signal, arsyncfs_bin, logged_value};

const NOT_A_MOUNTPOINT: i32 = 4;
const NOT_ARSYNCFS: i32 = 8;
const DAEMON_GONE: i32 = 9;
const NO_PERMISSION: i32 = 10;

/// uid/gid of an unprivileged user, for the permission case.
const NOBODY: u32 = 65534;

fn stats<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(arsyncfs_bin())
        .arg("stats")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run arsyncfs stats")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 report")
}

/// The report in `args`' format; panics with stderr if the command failed.
fn report(m: &Mounted, args: &[&str]) -> String {
    let mut argv: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    argv.push(m.mountpoint().as_os_str());
    let out = stats(&argv);
    assert!(
        out.status.success(),
        "arsyncfs stats {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// Runs `python3 -c script` with `input` on stdin; its stdout, or a panic with its stderr.
fn python(script: &str, input: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3 (scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}\non:\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The numbers `exprs` (python expressions over the parsed JSON object `d`) take in `json`.
fn json_numbers(json: &str, exprs: &[&str]) -> Vec<u64> {
    let script = format!(
        "import json, sys\nd = json.loads(sys.stdin.read())\nfor v in [{}]: print(int(v))",
        exprs.join(", ")
    );
    python(&script, json)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// `major-minor.sock` of the mount at `path`, from /proc/self/mountinfo.
fn socket_of(path: &Path) -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
        .expect("the mount in mountinfo");
    let device = line.split(' ').nth(2).unwrap().replace(':', "-");
    PathBuf::from(format!("/run/arsyncfs/{device}.sock"))
}

#[track_caller]
fn assert_error(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{stderr}");
    assert!(lines[0].starts_with("arsyncfs: error: "), "{stderr}");
    assert!(lines[0].contains(needle), "'{needle}' not in: {stderr}");
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

/// Reads, writes (with their byte counts) and an open that fails in the daemon show up.
#[test]
fn counters_move_with_the_io_made() {
    let m = Mounted::spawn(&[] as &[&str], |backing| {
        std::fs::copy("/bin/sleep", backing.join("prog")).unwrap();
        std::fs::write(backing.join("data"), vec![1u8; 8192]).unwrap();
    });
    let counters = [
        "d['data']['writes']",
        "d['data']['bytes_written']",
        "d['data']['reads']",
        "d['data']['bytes_read']",
        "d['operations'].get('open', {}).get('errnos', {}).get('ETXTBSY', 0)",
        "d['operations'].get('open', {}).get('errors', 0)",
    ];
    let before = json_numbers(&report(&m, &["--json"]), &counters);

    // Three 64 KiB writes: without the writeback cache, one request each.
    let f = std::fs::File::create(m.mountpoint().join("new")).unwrap();
    for i in 0..3u64 {
        f.write_all_at(&[7u8; 64 << 10], i * (64 << 10)).unwrap();
    }
    drop(f);
    // Two direct 4 KiB reads: exactly what was asked, no readahead, no page cache.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(m.mountpoint().join("data"))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_exact_at(&mut buf, 0).unwrap();
    f.read_exact_at(&mut buf, 4096).unwrap();
    drop(f);
    // Opening for writing a program that runs (started from the backing directory) fails in the
    // daemon's open of the backing file: ETXTBSY, counted under open.
    let mut prog = Command::new(m.backing().join("prog"))
        .arg("30")
        .spawn()
        .unwrap();
    let busy = std::fs::OpenOptions::new()
        .write(true)
        .open(m.mountpoint().join("prog"));
    let _ = prog.kill();
    let _ = prog.wait();
    assert_eq!(
        busy.err().and_then(|e| e.raw_os_error()),
        Some(libc::ETXTBSY)
    );

    let json = report(&m, &["--json"]);
    let after = json_numbers(&json, &counters);
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(delta[0] >= 3, "writes: {delta:?}\n{json}");
    assert_eq!(delta[1], 3 << 16, "bytes written: {json}");
    assert_eq!(delta[2], 2, "reads: {json}");
    assert_eq!(delta[3], 8192, "bytes read: {json}");
    assert_eq!((delta[4], delta[5]), (1, 1), "the failed open: {json}");
    let [answered, max] = json_numbers(
        &json,
        &[
            "d['operations']['read']['latency_ns']['count']",
            "d['operations']['read']['latency_ns']['max']",
        ],
    )[..] else {
        unreachable!()
    };
    assert!(answered >= 2 && max > 0, "{json}");

    let table = report(&m, &[]);
    let open = table
        .lines()
        .find(|l| l.starts_with("open "))
        .unwrap_or_else(|| panic!("no open row:\n{table}"));
    assert!(open.ends_with("ETXTBSY 1"), "{table}");
    assert!(logged_value(&table, "bytes_written") >= 3 << 16, "{table}");
    m.unmount();
}

/// `--json` is one JSON object with the parts the help promises.
#[test]
fn json_parses_with_every_part() {
    let m = Mounted::new();
    std::fs::write(m.mountpoint().join("f"), b"hello").unwrap();
    let json = report(&m, &["--json"]);
    assert_eq!(json.lines().count(), 1, "{json}");
    let keys = python(
        "import json, sys\nd = json.loads(sys.stdin.read())\n\
         print(sorted(d)); print(sorted(d['reactors'][0]['buffers'])); print(d['options']['cache'])",
        &json,
    );
    let lines: Vec<&str> = keys.lines().collect();
    assert_eq!(
        lines[0],
        "['answered', 'backing', 'data', 'files', 'in_flight', 'mountpoint', 'operations', \
         'options', 'pid', 'reactors', 'uptime_seconds', 'version']"
    );
    assert_eq!(
        lines[1],
        "['high_water', 'in_use', 'limit', 'total', 'waits']"
    );
    assert_eq!(lines[2], "auto");
    let [pid, writes] = json_numbers(&json, &["d['pid']", "d['data']['writes']"])[..] else {
        unreachable!()
    };
    assert_eq!(pid, u64::from(m.pid()));
    assert!(writes >= 1);
    m.unmount();
}

/// Every line of `--prometheus` is a comment or a sample in the text format.
#[test]
fn prometheus_lines_are_well_formed() {
    let m = Mounted::new();
    std::fs::write(m.mountpoint().join("f"), b"hello").unwrap();
    let _ = std::fs::metadata(m.mountpoint().join("missing"));
    let text = report(&m, &["--prometheus"]);
    let bad = python(
        r#"
import re, sys
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^%s(\{%s(,%s)*\})? [-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$' % (name, label, label))
comment = re.compile(r'^# (HELP %s .+|TYPE %s (counter|gauge|summary|histogram|untyped))$' % (name, name))
for line in sys.stdin.read().splitlines():
    if not (sample.match(line) or comment.match(line)):
        print(line)
"#,
        &text,
    );
    assert!(bad.is_empty(), "malformed lines:\n{bad}");
    let mp = m.mountpoint().display().to_string();
    assert!(
        text.contains(&format!(
            "arsyncfs_errors_total{{mountpoint=\"{mp}\",op=\"lookup\",errno=\"ENOENT\"}} "
        )),
        "{text}"
    );
    assert!(text.contains("# TYPE arsyncfs_request_duration_seconds summary"));
    m.unmount();
}

/// `--watch` prints report after report, with rates from the second on, until stopped.
#[test]
fn watch_prints_until_stopped() {
    let m = Mounted::new();
    let mut child = Command::new(arsyncfs_bin())
        .args(["stats", "--watch", "0.2"])
        .arg(m.mountpoint())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let (mut headers, mut rate_columns) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    // Until the third report's operation table: three headers, the last two with rates.
    while rate_columns < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        headers += usize::from(line.starts_with("arsyncfs "));
        rate_columns += usize::from(line.starts_with("operation") && line.contains("req/s"));
    }
    let still_running = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    assert!(still_running, "--watch stopped by itself");
    assert_eq!(
        (headers, rate_columns),
        (3, 2),
        "rates from the second report on"
    );
    m.unmount();
}

/// The socket is the mounting user's alone, and goes with the mount.
#[test]
fn the_socket_is_private_and_removed_at_unmount() {
    let m = Mounted::new();
    let socket = socket_of(m.mountpoint());
    let meta = std::fs::symlink_metadata(&socket).expect("the socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), 0);
    let dir = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    m.unmount();
    // Our daemon has exited. Device numbers (the socket's name) and inode numbers are reused at
    // once, so a test running beside this one may already have its own socket there; but a file
    // that nobody listens on is ours, left behind.
    let left_behind = socket.exists()
        && std::os::unix::net::UnixStream::connect(&socket)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
    assert!(!left_behind, "{} left behind", socket.display());
}

/// With -v the report is logged once, at unmount, with the final counters.
#[test]
fn summary_logged_once_at_unmount() {
    let mut m = Mounted::with_args(&["-v"]);
    std::fs::write(m.mountpoint().join("f"), vec![3u8; 10_000]).unwrap();
    assert_eq!(
        std::fs::read(m.mountpoint().join("f")).unwrap().len(),
        10_000
    );
    m.signal(Signal::TERM);
    assert!(m.wait_exit().success(), "{}", m.stderr());
    let log = m.stderr();
    assert_eq!(log.matches("summary at unmount").count(), 1, "{log}");
    assert_eq!(logged_value(&log, "bytes_written"), 10_000, "{log}");
    assert!(logged_value(&log, "writes") >= 1, "{log}");
    assert!(log.contains("\nwrite "), "an operation row: {log}");
}

#[test]
fn a_directory_that_is_not_a_mount_point() {
    let dir = tempfile::tempdir().unwrap();
    assert_error(
        &stats(&[dir.path()]),
        NOT_A_MOUNTPOINT,
        "is not a mount point",
    );
    let missing = dir.path().join("missing");
    assert_error(&stats(&[&missing]), NOT_A_MOUNTPOINT, "does not exist");
}

/// Unmounts (lazily) on drop.
struct TmpfsMount(PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        mount::force_unmount(&self.0);
    }
}

#[test]
fn a_mount_of_another_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "arsyncfs-stats-test"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount a tmpfs (needs root)");
    let _tmpfs = TmpfsMount(dir.path().to_owned());
    assert_error(
        &stats(&[dir.path()]),
        NOT_ARSYNCFS,
        "is not an arsyncfs mount (it is a tmpfs mount of arsyncfs-stats-test)",
    );
}

/// A daemon killed with SIGKILL leaves its mount (ENOTCONN) and its socket behind: both are told.
/// `Mounted` detaches the stale mount on drop; the left-over socket is removed here.
#[test]
fn a_stale_mount_of_a_killed_daemon() {
    // Without the auto_unmount watcher, which would detach the dead mount.
    let mut m = Mounted::with_args(&["--no-auto-unmount"]);
    let socket = socket_of(m.mountpoint());
    struct RemoveSocket(PathBuf);
    impl Drop for RemoveSocket {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _cleanup = RemoveSocket(socket.clone());
    m.signal(Signal::KILL);
    let _ = m.wait_exit();
    assert!(socket.exists(), "SIGKILL leaves the socket");
    let out = stats(&[m.mountpoint()]);
    assert_error(&out, DAEMON_GONE, "is gone (stale mount");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(socket.to_str().unwrap()),
        "names the socket left over"
    );
    // The mount goes with `m`'s drop (umount -l).
}

#[test]
fn another_users_mount() {
    let m = Mounted::new();
    let out = Command::new(arsyncfs_bin())
        .arg("stats")
        .arg(m.mountpoint())
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_error(&out, NO_PERMISSION, "no permission");
    m.unmount();
}

#[test]
fn bad_command_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = stats(&[
        OsStr::new("--watch"),
        OsStr::new("0"),
        dir.path().as_os_str(),
    ]);
    assert_error(&out, 2, "--watch");
    let out = stats(&[
        OsStr::new("--json"),
        OsStr::new("--prometheus"),
        dir.path().as_os_str(),
    ]);
    assert_error(&out, 2, "arsyncfs stats --help");
    assert_error(&stats(&[] as &[&str]), 2, "MOUNTPOINT");
}
