//! File locks between processes using the mount: flock (exclusive/shared, LOCK_NB conflicts, a
//! blocked LOCK_EX that proceeds on release), POSIX record locks (F_SETLK conflicts, F_GETLK
//! reporting the holder's pid and range, F_SETLKW waiting, EDEADLK, release on close and on exit)
//! and open file description locks (F_OFD_SETLK between two opens in one process). Each check runs
//! on a plain directory and through arsyncfs (see tests/common/fs_util.rs).
//!
//! Locks are held by "lock agents": /usr/bin/python3 processes that read one command a line on
//! stdin (`open NAME PATH`, `flock NAME ex|sh|un [nb]`, `setlk|setlkw|getlk|ofd_setlk|ofd_setlkw|
//! ofd_getlk NAME r|w|u START LEN`, `close NAME`, `pid`) and answer `ok [result]` or `err ERRNO`.
//! A blocking request is known to be waiting when /proc/locks lists it (a `->` line with the
//! agent's pid), so no check depends on timing.
//!
//! Whether locks reach the backing file: arsyncfs implements neither FUSE getlk/setlk nor flock,
//! so the kernel keeps all locks of the mount itself, on the FUSE inode (its local-lock fallback).
//! Processes using the mount see each other's locks, exactly as on a local disk; a process using
//! the backing path directly does not see them, and the mount's users do not see its locks.
//! `locks_vs_backing` pins this down (on the plain run the "two paths" are one file, so there the
//! locks conflict).

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use fs_util::*;

fs_tests!(
    flock_between_processes,
    flock_blocking_waits,
    posix_setlk_getlk,
    posix_setlkw_waits,
    posix_deadlock_detected,
    ofd_locks,
    locks_vs_backing,
);

const AGENT: &str = r#"
import errno, fcntl, os, struct, sys
FMT = 'hhxxxxqqixxxx'  # struct flock on x86_64/aarch64 Linux: 32 bytes
T = {'r': fcntl.F_RDLCK, 'w': fcntl.F_WRLCK, 'u': fcntl.F_UNLCK}
N = {v: k for k, v in T.items()}
CMD = {'setlk': fcntl.F_SETLK, 'setlkw': fcntl.F_SETLKW, 'getlk': fcntl.F_GETLK,
       'ofd_getlk': 36, 'ofd_setlk': 37, 'ofd_setlkw': 38}
FL = {'ex': fcntl.LOCK_EX, 'sh': fcntl.LOCK_SH, 'un': fcntl.LOCK_UN}
fds = {}
for line in sys.stdin:
    w = line.split()
    r = ''
    try:
        if w[0] == 'open':
            fds[w[1]] = os.open(w[2], os.O_RDWR)
        elif w[0] == 'close':
            os.close(fds.pop(w[1]))
        elif w[0] == 'pid':
            r = str(os.getpid())
        elif w[0] == 'flock':
            fcntl.flock(fds[w[1]], FL[w[2]] | (fcntl.LOCK_NB if 'nb' in w[3:] else 0))
        elif w[0] in CMD:
            arg = struct.pack(FMT, T[w[2]], os.SEEK_SET, int(w[3]), int(w[4]), 0)
            res = fcntl.fcntl(fds[w[1]], CMD[w[0]], arg)
            if w[0].endswith('getlk'):
                t, _, start, length, pid = struct.unpack(FMT, res)
                r = N[t] if t == fcntl.F_UNLCK else '%s %d %d %d' % (N[t], start, length, pid)
        else:
            raise SystemExit('unknown command ' + w[0])
        print(('ok ' + r).strip())
    except OSError as e:
        name = 'EDEADLK' if e.errno == errno.EDEADLK else errno.errorcode.get(e.errno, str(e.errno))
        print('err ' + name)
    sys.stdout.flush()
"#;

/// A python process that takes and tests locks on command.
struct Agent {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
}

impl Agent {
    fn new() -> Agent {
        let mut child = Command::new("/usr/bin/python3")
            .args(["-u", "-c", AGENT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python3 lock agent");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let pid = child.id();
        Agent {
            child,
            stdin,
            stdout,
            pid,
        }
    }

    /// Sends a command without waiting for its answer.
    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("write to lock agent");
        self.stdin.flush().unwrap();
    }

    /// The next answer.
    fn answer(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read lock agent");
        assert!(n > 0, "lock agent {} exited", self.pid);
        line.trim_end().to_owned()
    }

    fn cmd(&mut self, cmd: &str) -> String {
        self.send(cmd);
        self.answer()
    }

    #[track_caller]
    fn ok(&mut self, cmd: &str) {
        let r = self.cmd(cmd);
        assert_eq!(r, "ok", "agent {}: {cmd}", self.pid);
    }

    fn open(&mut self, name: &str, path: &Path) {
        self.ok(&format!("open {name} {}", path.display()));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until /proc/locks shows a request of `pid` blocked on a lock (a `->` line).
fn wait_blocked(pid: u32, what: &str) {
    let pid = pid.to_string();
    // "N: -> POSIX ADVISORY WRITE <pid> <maj:min:ino> <start> <end>"
    wait_proc_locks(what, |fields| fields.get(5) == Some(&pid.as_str()));
}

/// Waits until /proc/locks shows a blocked OFD request on the inode of `path` (OFD locks have no
/// owning pid: /proc/locks shows -1).
fn wait_blocked_ofd(path: &Path, what: &str) {
    let ino = format!(":{}", std::fs::metadata(path).unwrap().ino());
    wait_proc_locks(what, |fields| {
        fields.contains(&"OFDLCK") && fields.iter().any(|w| w.ends_with(&ino))
    });
}

fn wait_proc_locks(what: &str, matches: impl Fn(&[&str]) -> bool) {
    mount::wait_until(Duration::from_secs(20), what, || {
        std::fs::read_to_string("/proc/locks")
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .any(|f| f.contains(&"->") && matches(&f))
    });
}

fn make_file(env: &Env, rel: &str) {
    write_file(env, rel, &vec![b'x'; 4096]);
}

// ---------------------------------------------------------------------------------------------
// flock

fn flock_between_processes(env: &Env) {
    make_file(env, "f");
    let (mut a, mut b) = (Agent::new(), Agent::new());
    a.open("f", &env.v("f"));
    b.open("f", &env.v("f"));
    a.ok("flock f ex nb");
    assert_eq!(
        b.cmd("flock f ex nb"),
        "err EAGAIN",
        "LOCK_EX|LOCK_NB vs EX"
    );
    assert_eq!(
        b.cmd("flock f sh nb"),
        "err EAGAIN",
        "LOCK_SH|LOCK_NB vs EX"
    );
    a.ok("flock f un");
    b.ok("flock f sh nb");
    a.ok("flock f sh nb");
    assert_eq!(
        a.cmd("flock f ex nb"),
        "err EAGAIN",
        "upgrade to EX while another holds SH"
    );
    b.ok("flock f un");
    a.ok("flock f ex nb");
    // flock belongs to the open file description: a second open in the same process conflicts.
    a.open("g", &env.v("f"));
    assert_eq!(
        a.cmd("flock g ex nb"),
        "err EAGAIN",
        "second open, same process"
    );
    // Closing the descriptor releases the lock.
    a.ok("close f");
    b.ok("flock f ex nb");
    assert_eq!(a.cmd("flock g sh nb"), "err EAGAIN");
    // So does the holder's death.
    drop(b);
    a.ok("flock g ex nb");
}

fn flock_blocking_waits(env: &Env) {
    make_file(env, "f");
    let (mut a, mut b) = (Agent::new(), Agent::new());
    a.open("f", &env.v("f"));
    b.open("f", &env.v("f"));
    a.ok("flock f ex");
    b.send("flock f ex");
    wait_blocked(b.pid, "B's LOCK_EX to wait behind A's");
    a.ok("flock f un");
    assert_eq!(b.answer(), "ok", "B's LOCK_EX proceeds once A unlocks");
    assert_eq!(a.cmd("flock f sh nb"), "err EAGAIN", "B now holds EX");
}

// ---------------------------------------------------------------------------------------------
// POSIX record locks

fn posix_setlk_getlk(env: &Env) {
    make_file(env, "f");
    let (mut a, mut b) = (Agent::new(), Agent::new());
    a.open("f", &env.v("f"));
    b.open("f", &env.v("f"));
    a.ok("setlk f w 100 100");
    assert_eq!(
        b.cmd("getlk f w 0 1000"),
        format!("ok w 100 100 {}", a.pid),
        "F_GETLK reports A's write lock"
    );
    assert_eq!(b.cmd("getlk f r 150 1"), format!("ok w 100 100 {}", a.pid));
    assert_eq!(b.cmd("getlk f w 0 100"), "ok u", "range before A's lock");
    assert_eq!(b.cmd("getlk f w 200 0"), "ok u", "range after A's lock");
    assert_eq!(
        b.cmd("setlk f w 150 10"),
        "err EAGAIN",
        "overlapping write lock"
    );
    assert_eq!(
        b.cmd("setlk f r 199 1"),
        "err EAGAIN",
        "overlapping read lock"
    );
    b.ok("setlk f w 300 10");
    b.ok("setlk f w 0 100");
    assert_eq!(a.cmd("getlk f w 300 10"), format!("ok w 300 10 {}", b.pid));
    // A process does not conflict with itself.
    assert_eq!(a.cmd("getlk f w 100 100"), "ok u");
    // Read locks are shared; a writer is refused while any reader holds the range.
    a.ok("setlk f r 1000 10");
    b.ok("setlk f r 1000 10");
    assert_eq!(
        a.cmd("setlk f w 1000 10"),
        "err EAGAIN",
        "upgrade vs B's read lock"
    );
    assert_eq!(
        a.cmd("getlk f w 1000 10"),
        format!("ok r 1000 10 {}", b.pid)
    );
    // Unlocking part of a range splits it.
    a.ok("setlk f u 120 10");
    assert_eq!(b.cmd("getlk f w 120 10"), "ok u");
    assert_eq!(b.cmd("getlk f w 100 30"), format!("ok w 100 20 {}", a.pid));
    // Closing any descriptor of the file drops all of the process's locks on it.
    b.open("g", &env.v("f"));
    b.ok("close g");
    assert_eq!(
        a.cmd("getlk f w 0 0"),
        "ok u",
        "B's locks gone after closing g"
    );
    // The holder's exit releases its locks.
    drop(a);
    let mut c = Agent::new();
    c.open("f", &env.v("f"));
    assert_eq!(c.cmd("getlk f w 0 0"), "ok u", "A's locks gone after exit");
    c.ok("setlk f w 0 0");
}

fn posix_setlkw_waits(env: &Env) {
    make_file(env, "f");
    let (mut a, mut b) = (Agent::new(), Agent::new());
    a.open("f", &env.v("f"));
    b.open("f", &env.v("f"));
    a.ok("setlk f w 0 0");
    b.send("setlkw f w 10 10");
    wait_blocked(b.pid, "B's F_SETLKW to wait behind A's lock");
    // Unlocking a range that does not cover B's request keeps B waiting.
    a.ok("setlk f u 100 0");
    wait_blocked(b.pid, "B still waiting");
    a.ok("setlk f u 0 100");
    assert_eq!(b.answer(), "ok", "F_SETLKW proceeds once the range is free");
    assert_eq!(a.cmd("getlk f r 0 0"), format!("ok w 10 10 {}", b.pid));
}

fn posix_deadlock_detected(env: &Env) {
    make_file(env, "f");
    let (mut a, mut b) = (Agent::new(), Agent::new());
    a.open("f", &env.v("f"));
    b.open("f", &env.v("f"));
    a.ok("setlk f w 0 10");
    b.ok("setlk f w 20 10");
    b.send("setlkw f w 0 10");
    wait_blocked(b.pid, "B waiting for A's range");
    assert_eq!(
        a.cmd("setlkw f w 20 10"),
        "err EDEADLK",
        "A waiting for B while B waits for A"
    );
    a.ok("setlk f u 0 10");
    assert_eq!(b.answer(), "ok");
}

// ---------------------------------------------------------------------------------------------
// Open file description locks

fn ofd_locks(env: &Env) {
    make_file(env, "f");
    let (mut a, mut b) = (Agent::new(), Agent::new());
    a.open("f1", &env.v("f"));
    a.open("f2", &env.v("f"));
    b.open("f", &env.v("f"));
    a.ok("ofd_setlk f1 w 0 100");
    assert_eq!(
        a.cmd("ofd_setlk f2 w 50 10"),
        "err EAGAIN",
        "OFD locks of two opens in one process conflict"
    );
    assert_eq!(
        a.cmd("ofd_getlk f2 w 0 0"),
        "ok w 0 100 -1",
        "F_OFD_GETLK reports pid -1"
    );
    // A classic POSIX lock of the same process conflicts with the OFD lock too.
    assert_eq!(a.cmd("setlk f2 w 50 10"), "err EAGAIN");
    assert_eq!(
        b.cmd("setlk f r 0 1"),
        "err EAGAIN",
        "other process vs OFD lock"
    );
    assert_eq!(b.cmd("getlk f r 0 0"), "ok w 0 100 -1");
    a.ok("ofd_setlk f1 u 0 100");
    a.ok("ofd_setlk f2 w 50 10");
    assert_eq!(a.cmd("ofd_getlk f1 w 0 0"), "ok w 50 10 -1");
    // OFD locks stay with their open file description: closing another descriptor of the same
    // file in the same process (which drops POSIX locks) keeps it.
    a.ok("close f1");
    assert_eq!(b.cmd("ofd_getlk f w 0 0"), "ok w 50 10 -1");
    // Blocking OFD request proceeds when the description is closed.
    b.send("ofd_setlkw f w 0 0");
    wait_blocked_ofd(&env.v("f"), "B's F_OFD_SETLKW waiting");
    a.ok("close f2");
    assert_eq!(b.answer(), "ok");
    let mut c = Agent::new();
    c.open("f", &env.v("f"));
    assert_eq!(c.cmd("ofd_getlk f w 0 0"), "ok w 0 0 -1");
}

// ---------------------------------------------------------------------------------------------
// The mount and the backing file

/// Locks taken through the mount are not seen on the backing file, and the other way round: the
/// kernel keeps the mount's locks on the FUSE inode (arsyncfs implements no lock operations). On
/// the plain run both paths are the same file, so the locks conflict there.
fn locks_vs_backing(env: &Env) {
    make_file(env, "f");
    let (mut v, mut b) = (Agent::new(), Agent::new());
    v.open("f", &env.v("f"));
    b.open("f", &env.b("f"));
    v.ok("setlk f w 0 0");
    v.ok("flock f ex nb");
    let (getlk, setlk, flock) = (
        b.cmd("getlk f w 0 0"),
        b.cmd("setlk f w 0 0"),
        b.cmd("flock f ex nb"),
    );
    if env.mounted {
        assert_eq!(
            getlk, "ok u",
            "a POSIX lock through the mount is seen on the backing"
        );
        assert_eq!(setlk, "ok", "backing F_SETLK vs the mount's lock");
        assert_eq!(flock, "ok", "backing flock vs the mount's flock");
        // And the mount does not see the backing's locks.
        let mut v2 = Agent::new();
        v2.open("f", &env.v("f"));
        assert_eq!(v2.cmd("getlk f w 0 0"), format!("ok w 0 0 {}", v.pid));
        v.ok("setlk f u 0 0");
        v.ok("flock f un");
        assert_eq!(v2.cmd("getlk f w 0 0"), "ok u");
        v2.ok("flock f ex nb");
    } else {
        assert_eq!(getlk, format!("ok w 0 0 {}", v.pid));
        assert_eq!(setlk, "err EAGAIN");
        assert_eq!(flock, "err EAGAIN");
    }
}
