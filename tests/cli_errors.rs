//! Bad input: each case gives exactly one line `arsyncfs: error: ...` on stderr, its own exit code,
//! no panic, and no mount.

#[path = "common/mount.rs"]
mod mount;

use std::ffi::OsStr;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mount::{Mounted, Signal, arsyncfs_bin, is_mounted};

const USAGE: i32 = 2;
const BACKING: i32 = 3;
const MOUNTPOINT: i32 = 4;
const OVERLAP: i32 = 5;
const FUSE: i32 = 6;
const IO_URING: i32 = 7;

/// uid/gid of an unprivileged user, for the permission cases.
const NOBODY: u32 = 65534;

#[derive(Default)]
struct Opts<'a> {
    env: Vec<(&'a str, &'a OsStr)>,
    as_nobody: bool,
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn run_with<S: AsRef<OsStr>>(args: &[S], opts: Opts) -> Outcome {
    let mut cmd = Command::new(arsyncfs_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in opts.env {
        cmd.env(k, v);
    }
    if opts.as_nobody {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let out = cmd.output().expect("run arsyncfs");
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run<S: AsRef<OsStr>>(args: &[S]) -> Outcome {
    run_with(args, Opts::default())
}

#[track_caller]
fn assert_error(out: &Outcome, code: i32, needle: &str) {
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr, got:\n{}",
        out.stderr
    );
    assert!(
        lines[0].starts_with("arsyncfs: error: "),
        "unexpected stderr: {}",
        out.stderr
    );
    assert!(
        lines[0].contains(needle),
        "stderr does not mention {needle:?}: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, Some(code), "exit code; stderr: {}", out.stderr);
}

/// A temp dir with `backing/` and `mnt/`, readable by everyone (for the unprivileged cases).
struct Dirs {
    _dir: tempfile::TempDir,
    root: PathBuf,
    backing: PathBuf,
    mnt: PathBuf,
}

fn dirs() -> Dirs {
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-cli-")
        .tempdir()
        .unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let backing = root.join("backing");
    let mnt = root.join("mnt");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    Dirs {
        _dir: dir,
        root,
        backing,
        mnt,
    }
}

fn paths(a: &Path, b: &Path) -> Vec<PathBuf> {
    vec![a.to_path_buf(), b.to_path_buf()]
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---- usage ----

#[test]
fn missing_arguments() {
    let out = run(&[] as &[&str]);
    assert_error(&out, USAGE, "<BACKING> <MOUNTPOINT>");
}

#[test]
fn unknown_flag() {
    let d = dirs();
    let out = run(&[
        OsStr::new("--bogus"),
        d.backing.as_os_str(),
        d.mnt.as_os_str(),
    ]);
    assert_error(&out, USAGE, "--bogus");
}

/// Builds without the cargo feature fault-injection (release builds) have no fault injection: the
/// hidden option does not exist, and a plan in the environment is ignored.
#[cfg(not(feature = "fault-injection"))]
#[test]
fn no_fault_injection_without_the_feature() {
    let d = dirs();
    let out = run(&[
        OsStr::new("--faults"),
        OsStr::new("read=eio:1"),
        d.backing.as_os_str(),
        d.mnt.as_os_str(),
    ]);
    assert_error(&out, USAGE, "--faults");
    let out = run_with(
        &[
            OsStr::new("--fake"),
            d.backing.as_os_str(),
            d.mnt.as_os_str(),
        ],
        Opts {
            env: vec![("ARSYNCFS_FAULTS", OsStr::new("not a plan"))],
            ..Opts::default()
        },
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn unknown_mount_option() {
    let d = dirs();
    let out = run(&[
        OsStr::new("-o"),
        OsStr::new("ro,bogus_option"),
        d.backing.as_os_str(),
        d.mnt.as_os_str(),
    ]);
    assert_error(&out, USAGE, "unknown mount option 'bogus_option'");
    assert!(!is_mounted(&d.mnt));
}

#[test]
fn bad_option_values() {
    let d = dirs();
    for (args, needle) in [
        (["--buffers", "0"], "at least 1"),
        (
            ["--buffer-size", "3K"],
            "buffer size 3072 is not a multiple of 4K",
        ),
        (
            ["--threads", "many"],
            "'many' is not a positive whole number",
        ),
        (
            ["--attr-timeout=-1", "--read-only"],
            "is not a number of seconds",
        ),
        (["-o", "buffer_size=100G"], "buffer size"),
        (["-o", "entry_timeout=soon"], "'entry_timeout=soon'"),
        (["-o", "fsname="], "'fsname' needs a value"),
        (["-o", "ro=yes"], "takes no value"),
        (["--max-background", "65536"], "'65536' is too large"),
        (["-o", "max_background=0"], "'max_background=0'"),
        (
            ["--cache", "sometimes"],
            "'sometimes' is not auto, always or never",
        ),
        (["-o", "cache=Never"], "'cache=Never'"),
    ] {
        let mut argv: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        argv.push(d.backing.as_os_str());
        argv.push(d.mnt.as_os_str());
        let out = run(&argv);
        assert_error(&out, USAGE, needle);
    }
}

/// Kernel passthrough and the writeback cache exclude each other, whichever way they are asked for.
#[test]
fn passthrough_with_writeback() {
    let d = dirs();
    for args in [
        &["--passthrough", "--writeback"][..],
        &["-o", "writeback,passthrough"],
        &["-o", "passthrough", "--writeback"],
        &["--cache", "always", "--passthrough"],
        &["-o", "passthrough,cache=always"],
    ] {
        let mut argv: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        argv.push(d.backing.as_os_str());
        argv.push(d.mnt.as_os_str());
        let out = run(&argv);
        assert_error(
            &out,
            USAGE,
            "--passthrough cannot be combined with the writeback cache",
        );
        assert!(!is_mounted(&d.mnt));
    }
}

/// Registering backing files needs CAP_SYS_ADMIN: without it (dropped from the bounding set, so a
/// root process does not get it at exec) --passthrough fails before mounting.
#[test]
fn passthrough_without_cap_sys_admin() {
    if !is_root() {
        eprintln!("skipped: needs root (setpriv drops one capability of root's)");
        return;
    }
    let d = dirs();
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-sys_admin", "--"])
        .arg(arsyncfs_bin())
        .arg("--passthrough")
        .args(paths(&d.backing, &d.mnt))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .expect("run setpriv (util-linux)");
    let out = Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_error(&out, FUSE, "--passthrough needs CAP_SYS_ADMIN");
    assert!(!is_mounted(&d.mnt));
}

// ---- backing ----

#[test]
fn backing_missing() {
    let d = dirs();
    let out = run(&paths(&d.root.join("nope"), &d.mnt));
    assert_error(&out, BACKING, "does not exist");
}

#[test]
fn backing_not_a_directory() {
    let d = dirs();
    let file = d.root.join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = run(&paths(&file, &d.mnt));
    assert_error(&out, BACKING, "is not a directory");
}

#[test]
fn backing_not_readable() {
    if !is_root() {
        eprintln!("skipped: needs root to run the binary as another user");
        return;
    }
    let d = dirs();
    std::fs::set_permissions(&d.backing, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = run_with(
        &paths(&d.backing, &d.mnt),
        Opts {
            as_nobody: true,
            ..Opts::default()
        },
    );
    assert_error(&out, BACKING, "not readable");
}

// ---- mountpoint ----

#[test]
fn mountpoint_missing() {
    let d = dirs();
    let out = run(&paths(&d.backing, &d.root.join("nope")));
    assert_error(&out, MOUNTPOINT, "does not exist");
}

#[test]
fn mountpoint_not_a_directory() {
    let d = dirs();
    let file = d.root.join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = run(&paths(&d.backing, &file));
    assert_error(&out, MOUNTPOINT, "is not a directory");
}

#[test]
fn mountpoint_already_mounted() {
    let m = Mounted::new();
    let other = tempfile::tempdir().unwrap();
    let out = run(&paths(other.path(), m.mountpoint()));
    assert_error(&out, MOUNTPOINT, "is already a mount point (fuse.arsyncfs");
    // The first mount is untouched.
    assert!(is_mounted(m.mountpoint()));
    m.unmount();
}

#[test]
fn mountpoint_stale_fuse_mount() {
    let mut m = Mounted::with_args(&["--no-auto-unmount"]);
    // A killed filesystem process without its auto_unmount watcher leaves a dead mount behind
    // (the guard removes it).
    m.signal(Signal::KILL);
    m.wait_exit();
    assert!(is_mounted(m.mountpoint()));
    let err = std::fs::metadata(m.mountpoint()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    let other = tempfile::tempdir().unwrap();
    let out = run(&paths(other.path(), m.mountpoint()));
    assert_error(&out, MOUNTPOINT, "stale FUSE mount");
}

// ---- overlap ----

#[test]
fn mountpoint_inside_backing() {
    let d = dirs();
    let inner = d.backing.join("a/b");
    std::fs::create_dir_all(&inner).unwrap();
    let out = run(&paths(&d.backing, &inner));
    assert_error(&out, OVERLAP, "is inside the backing directory");
    assert!(!is_mounted(&inner));
}

#[test]
fn mountpoint_inside_backing_through_a_symlink() {
    let d = dirs();
    let inner = d.backing.join("inner");
    std::fs::create_dir(&inner).unwrap();
    let link = d.root.join("link");
    symlink(&inner, &link).unwrap();
    let out = run(&paths(&d.backing, &link));
    assert_error(&out, OVERLAP, "is inside the backing directory");
}

#[test]
fn mountpoint_is_backing() {
    let d = dirs();
    let out = run(&paths(&d.backing, &d.backing.join(".")));
    assert_error(&out, OVERLAP, "are the same directory");
}

#[test]
fn backing_inside_mountpoint() {
    let d = dirs();
    let out = run(&paths(&d.backing, &d.root));
    assert_error(&out, OVERLAP, "is inside the mountpoint");
    assert!(!is_mounted(&d.root));
}

// ---- /dev/fuse ----

const DEV_FUSE_ENV: &str = "ARSYNCFS_TEST_DEV_FUSE";

#[test]
fn dev_fuse_missing() {
    let d = dirs();
    let fake = d.root.join("no-fuse-device");
    let out = run_with(
        &paths(&d.backing, &d.mnt),
        Opts {
            env: vec![(DEV_FUSE_ENV, fake.as_os_str())],
            ..Opts::default()
        },
    );
    assert_error(&out, FUSE, "does not exist: load the FUSE kernel module");
    assert!(!is_mounted(&d.mnt));
}

#[test]
fn dev_fuse_not_permitted() {
    if !is_root() {
        eprintln!("skipped: needs root to run the binary as another user");
        return;
    }
    let d = dirs();
    let fake = d.root.join("fuse");
    std::fs::write(&fake, b"").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_with(
        &paths(&d.backing, &d.mnt),
        Opts {
            env: vec![(DEV_FUSE_ENV, fake.as_os_str())],
            as_nobody: true,
        },
    );
    assert_error(&out, FUSE, "permission denied");
}

#[test]
fn dev_fuse_not_a_device() {
    let d = dirs();
    let fake = d.root.join("fuse");
    std::fs::write(&fake, b"").unwrap();
    let out = run_with(
        &paths(&d.backing, &d.mnt),
        Opts {
            env: vec![(DEV_FUSE_ENV, fake.as_os_str())],
            ..Opts::default()
        },
    );
    assert_error(&out, FUSE, "not a character device");
}

// ---- io_uring ----

/// Runs argv[1..] under a seccomp filter that makes io_uring_setup fail with EPERM, as Docker's
/// default profile does.
const NO_IO_URING: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
prog = [
    (0x20, 0, 0, 0),                # ld [0]: the syscall number
    (0x15, 0, 1, 425),              # jeq io_uring_setup
    (0x06, 0, 0, 0x00050000 | 1),   # ret ERRNO(EPERM)
    (0x06, 0, 0, 0x7fff0000),       # ret ALLOW
]
buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog), ctypes.addressof(buf))
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
    sys.exit(99)
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn io_uring_unavailable() {
    if !cfg!(target_arch = "x86_64") && !cfg!(target_arch = "aarch64") {
        eprintln!("skipped: the seccomp filter assumes io_uring_setup is syscall 425");
        return;
    }
    let d = dirs();
    let out = Command::new("python3")
        .arg("-c")
        .arg(NO_IO_URING)
        .arg(arsyncfs_bin())
        .arg(&d.backing)
        .arg(&d.mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("python3 is needed for this test");
    let out = Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_ne!(out.code, Some(99), "could not install the seccomp filter");
    assert_error(&out, IO_URING, "io_uring is unavailable");
    assert!(!is_mounted(&d.mnt));
}
