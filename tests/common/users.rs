//! Test users for the tests that run operations as other users (tests/posix_creds.rs,
//! tests/boundary.rs): `arsyncfs-test` and `arsyncfs-test2`, created with useradd if missing, and
//! [`run_as`], which runs a list of operations as one of them through
//! `setpriv --reuid --regid --init-groups /usr/bin/python3`: a small script performs each
//! `op|arg|arg` and prints `ok [value]` or `err ERRNO-NAME` for it.
//!
//! Include it with
//! ```ignore
//! #[path = "common/users.rs"]
//! mod users;
//! ```
#![allow(dead_code)]

use std::process::Command;
use std::sync::OnceLock;

#[derive(Debug, Clone)]
pub struct User {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

pub fn id_of(name: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg(name).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The user `name`, created (system account, own group, no home, no login) if missing. Other test
/// programs may create it at the same time: a failed useradd is retried until `id` finds the user.
pub fn ensure_user(name: &'static str) -> User {
    for _ in 0..100 {
        if let (Some(uid), Some(gid)) = (id_of(name, "-u"), id_of(name, "-g")) {
            return User { name, uid, gid };
        }
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output();
        if id_of(name, "-u").is_none() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    panic!("cannot create test user {name} with useradd");
}

pub fn user_a() -> &'static User {
    static U: OnceLock<User> = OnceLock::new();
    U.get_or_init(|| ensure_user("arsyncfs-test"))
}

pub fn user_b() -> &'static User {
    static U: OnceLock<User> = OnceLock::new();
    U.get_or_init(|| ensure_user("arsyncfs-test2"))
}

/// A group neither test user belongs to.
pub const OTHER_GID: u32 = 4242;

// ---------------------------------------------------------------------------------------------
// Running operations as a user

/// Performs each `op|arg|arg` of argv in order and prints one line per op.
pub const USER_SCRIPT: &str = r#"
import errno, os, sys
def run(op, a):
    if op == 'umask':
        os.umask(int(a[0], 8)); return ''
    if op == 'create':
        os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, int(a[1], 8))); return ''
    if op == 'mkdir':
        os.mkdir(a[0], int(a[1], 8)); return ''
    if op == 'symlink':
        os.symlink(a[0], a[1]); return ''
    if op == 'mkfifo':
        os.mkfifo(a[0], int(a[1], 8)); return ''
    if op in ('write', 'append'):
        flags = os.O_WRONLY | (os.O_APPEND if op == 'append' else 0)
        fd = os.open(a[0], flags)
        try:
            os.write(fd, a[1].encode())
        finally:
            os.close(fd)
        return ''
    if op == 'pwrite':
        fd = os.open(a[0], os.O_WRONLY)
        try:
            os.pwrite(fd, a[1].encode(), 0)
        finally:
            os.close(fd)
        return ''
    if op == 'pwrite_direct':
        import mmap
        buf = mmap.mmap(-1, 4096)
        buf.write(a[1].encode() * (4096 // len(a[1])))
        fd = os.open(a[0], os.O_WRONLY | os.O_DIRECT)
        try:
            os.pwrite(fd, buf, 0)
        finally:
            os.close(fd)
        return ''
    if op == 'fallocate':
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(a[0], os.O_WRONLY)
        try:
            if libc.fallocate(fd, int(a[1]), ctypes.c_long(int(a[2])), ctypes.c_long(int(a[3]))) != 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
        finally:
            os.close(fd)
        return ''
    if op == 'setfacl':
        import subprocess
        r = subprocess.run(['setfacl', '-m', a[1], a[0]], capture_output=True)
        if r.returncode != 0:
            raise OSError(errno.EPERM, r.stderr.decode())
        return ''
    if op == 'open_trunc':
        os.close(os.open(a[0], os.O_WRONLY | os.O_TRUNC)); return ''
    if op == 'read':
        with open(a[0], 'rb') as f:
            return f.read().decode()
    if op == 'truncate':
        os.truncate(a[0], int(a[1])); return ''
    if op == 'unlink':
        os.unlink(a[0]); return ''
    if op == 'rmdir':
        os.rmdir(a[0]); return ''
    if op == 'rename':
        os.rename(a[0], a[1]); return ''
    if op == 'chmod':
        os.chmod(a[0], int(a[1], 8)); return ''
    if op == 'chown':
        os.chown(a[0], int(a[1]), int(a[2]), follow_symlinks=False); return ''
    if op == 'stat':
        st = os.lstat(a[0]); return '%d %d %o' % (st.st_uid, st.st_gid, st.st_mode)
    if op == 'access':
        return 'yes' if os.access(a[0], int(a[1])) else 'no'
    if op == 'bind':
        import socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(a[0]); s.close(); return ''
    if op == 'many':
        d, n = a[0], int(a[1])
        for i in range(n):
            os.close(os.open('%s/f%d' % (d, i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            os.mkdir('%s/d%d' % (d, i), 0o755)
            os.symlink('f%d' % i, '%s/l%d' % (d, i))
            os.mkfifo('%s/p%d' % (d, i), 0o644)
        return ''
    if op == 'listdir':
        return ','.join(sorted(os.listdir(a[0])))
    if op == 'churn':
        # a[1] rounds of creating, changing and removing names f0..f7, g0..g7, d0..d7, l0..l7 in
        # a[0], every failure counted and ignored: `ok DONE FAILED`.
        d, rounds = a[0], int(a[1])
        done = failed = 0
        for i in range(rounds):
            k = i % 8
            f, g = '%s/f%d' % (d, k), '%s/g%d' % (d, k)
            sub, link = '%s/d%d' % (d, k), '%s/l%d' % (d, k)
            def write():
                fd = os.open(f, os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, b'churn')
                finally:
                    os.close(fd)
            steps = [
                lambda: os.close(os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)),
                lambda: os.chmod(f, 0o600 if i % 2 else 0o644),
                lambda: os.chown(f, os.getuid(), os.getgid()),
                lambda: os.truncate(f, i % 100),
                write,
                lambda: os.setxattr(f, 'user.churn', str(i).encode()),
                lambda: os.removexattr(f, 'user.churn'),
                lambda: os.utime(f, (i, i)),
                lambda: os.rename(f, g),
                lambda: os.link(g, f),
                lambda: os.unlink(g),
                lambda: os.mkdir(sub, 0o755),
                lambda: os.rmdir(sub),
                lambda: os.symlink('f%d' % k, link),
                lambda: os.unlink(link),
            ]
            for step in steps:
                try:
                    step()
                    done += 1
                except OSError:
                    failed += 1
        return '%d %d' % (done, failed)
    # Extended attributes; values are text. The l* forms do not follow a final symlink.
    if op in ('getxattr', 'lgetxattr'):
        return os.getxattr(a[0], a[1], follow_symlinks=op == 'getxattr').decode()
    if op in ('setxattr', 'lsetxattr'):
        os.setxattr(a[0], a[1], a[2].encode(), follow_symlinks=op == 'setxattr'); return ''
    if op == 'removexattr':
        os.removexattr(a[0], a[1]); return ''
    if op in ('listxattr', 'llistxattr'):
        return ','.join(sorted(os.listxattr(a[0], follow_symlinks=op == 'listxattr')))
    raise SystemExit('unknown op ' + op)
for arg in sys.argv[1:]:
    op, *a = arg.split('|')
    try:
        r = run(op, a)
        print('ok' + (' ' + r if r else ''))
    except OSError as e:
        print('err ' + errno.errorcode.get(e.errno, str(e.errno)))
    sys.stdout.flush()
"#;

/// Runs `ops` as `user` (real and effective ids, its groups) and returns one result line per op.
pub fn run_as(user: &User, ops: &[String]) -> Vec<String> {
    let out = Command::new("setpriv")
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .arg("--")
        .arg("/usr/bin/python3")
        .arg("-c")
        .arg(USER_SCRIPT)
        .args(ops)
        .current_dir("/")
        .output()
        .expect("run setpriv");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert!(
        out.status.success() && lines.len() == ops.len(),
        "as {}: {ops:?} -> {} (status {}), stdout:\n{stdout}\nstderr:\n{}",
        user.name,
        lines.len(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

/// Runs one op as `user` and returns its result line.
pub fn one(user: &User, op: String) -> String {
    run_as(user, &[op]).remove(0)
}

#[track_caller]
pub fn assert_ok(r: &str, what: &str) {
    assert!(
        r == "ok" || r.starts_with("ok "),
        "{what}: expected ok, got {r}"
    );
}

#[track_caller]
pub fn assert_errno(r: &str, want: &str, what: &str) {
    assert_eq!(r, format!("err {want}"), "{what}");
}

/// `setfacl ARGS PATH`, as root; panics with its stderr if it fails.
pub fn setfacl(args: &[&str], path: &std::path::Path) {
    let out = std::process::Command::new("setfacl")
        .args(args)
        .arg(path)
        .output()
        .expect("run setfacl");
    assert!(
        out.status.success(),
        "setfacl {args:?} {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
