//! Credentials and permissions with real users: ownership of what a user creates (also in setgid
//! directories), EACCES/EPERM as the kernel decides them, chmod/chown by a user, set-user-ID and
//! set-group-ID bits cleared when an unprivileged user writes, sticky directories, and POSIX ACLs
//! that deny a user or (as a default ACL) decide the mode of new files regardless of the umask;
//! also that new objects are the user's from their first moment (never root's for a while) and
//! that setting or removing a default ACL through the view counts at the next creation.
//!
//! Each check runs three times: on a plain temporary directory (so it states POSIX on the backing
//! filesystem, not arsyncfs' choices), through an arsyncfs mount made by root with
//! `-o allow_other` (the default `Mounted` guard passes no options, and without allow_other the
//! kernel refuses every other user; default_permissions is always on in arsyncfs), and through one
//! with `--passthrough` too.
//!
//! The unprivileged side runs as two test users, `arsyncfs-test` and `arsyncfs-test2` (created with
//! useradd if missing), through `setpriv --reuid --regid --init-groups /usr/bin/python3`: a small
//! script performs a list of operations and prints `ok [value]` or `err ERRNO-NAME` for each.

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[allow(unused_macros)]
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;
#[path = "common/users.rs"]
mod users;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;

use fs_util::{assert_same_attrs, lstat};
use users::{OTHER_GID, assert_errno, assert_ok, one, run_as, setfacl, user_a, user_b};

// ---------------------------------------------------------------------------------------------
// Where a check runs

struct Env {
    view: PathBuf,
    backing: PathBuf,
    /// The view is a `--passthrough` mount: the kernel writes the backing files itself.
    passthrough: bool,
    _keep: Keep,
}

enum Keep {
    Plain(#[allow(dead_code)] tempfile::TempDir),
    Mounted(#[allow(dead_code)] mount::Mounted),
}

impl Env {
    fn v(&self, rel: &str) -> PathBuf {
        self.view.join(rel)
    }
    fn b(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }
    /// `rel` under the view, as a string for the user's script.
    fn vs(&self, rel: &str) -> String {
        self.v(rel).to_str().expect("utf-8 temp path").to_owned()
    }
}

fn fixed_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, p.display()));
}

fn run_plain(check: fn(&Env)) {
    fixed_umask();
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-plain-")
        .tempdir()
        .expect("create temp dir");
    // tempfile makes the directory 0700; the test users must be able to traverse it.
    chmod(dir.path(), 0o755);
    let path = dir.path().canonicalize().unwrap();
    let env = Env {
        view: path.clone(),
        backing: path,
        passthrough: false,
        _keep: Keep::Plain(dir),
    };
    check(&env);
}

fn run_mounted(check: fn(&Env)) {
    run_mounted_with(&[], check)
}

/// Through a mount with `-o allow_other` and the extra arguments `args`.
fn run_mounted_with(args: &[&str], check: fn(&Env)) {
    fixed_umask();
    let m = mount::Mounted::with_args(&[&["-o", "allow_other"][..], args].concat());
    // The guard's temp dir (parent of backing/ and mnt/) is 0700: open it for the test users.
    chmod(m.backing().parent().unwrap(), 0o755);
    chmod(m.backing(), 0o755);
    let env = Env {
        view: m.mountpoint().to_path_buf(),
        backing: m.backing().to_path_buf(),
        passthrough: args.contains(&"--passthrough"),
        _keep: Keep::Mounted(m),
    };
    check(&env);
}

macro_rules! creds_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn plain() {
                crate::run_plain(super::$name)
            }
            #[test]
            fn mount() {
                crate::run_mounted(super::$name)
            }
            #[test]
            fn mount_passthrough() {
                crate::run_mounted_with(&["--passthrough"], super::$name)
            }
        }
    )*};
}

creds_tests!(
    user_owns_what_it_creates,
    setgid_directory,
    eacces_for_root_owned,
    chmod_chown_by_user,
    setid_cleared_on_write,
    setgid_nogx_cleared_for_non_member,
    setid_cleared_on_open_trunc,
    setid_cleared_by_every_change,
    setgid_cleared_by_acl_of_non_member,
    sticky_directory,
    acl_denies_user,
    default_acl_overrides_umask,
    owned_by_the_user_from_the_first_moment,
    default_acl_changes_are_followed,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// lstat through the view and in the backing dir; asserts they agree; returns the view's.
fn same(env: &Env, rel: &str) -> fs::Metadata {
    let v = lstat(&env.v(rel));
    let b = lstat(&env.b(rel));
    assert_same_attrs(&v, &b, rel);
    v
}

#[track_caller]
fn assert_owner_mode(env: &Env, rel: &str, uid: u32, gid: u32, mode: u32) {
    let m = same(env, rel);
    assert_eq!(
        (m.uid(), m.gid(), m.mode()),
        (uid, gid, mode),
        "{rel}: (uid, gid, mode {:o}) want mode {:o}",
        m.mode(),
        mode
    );
}

/// A directory `rel` made by root with exactly `mode`.
fn root_dir(env: &Env, rel: &str, mode: u32) {
    fs::create_dir(env.v(rel)).unwrap();
    chmod(&env.v(rel), mode);
}

/// A file `rel` made by root with `data` and exactly `mode`.
fn root_file(env: &Env, rel: &str, data: &[u8], mode: u32) {
    fs::write(env.v(rel), data).unwrap();
    chmod(&env.v(rel), mode);
}

/// `getfacl -n` of a path without the header comments (so view and backing compare).
fn getfacl(path: &Path) -> String {
    let out = Command::new("getfacl")
        .args(["-n", "-p", "--omit-header"])
        .arg(path)
        .output()
        .expect("run getfacl");
    assert!(
        out.status.success(),
        "getfacl {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Files, directories, symlinks and FIFOs made by a user belong to that user and its group, with
/// the user's umask applied (022, 0 and 077).
fn user_owns_what_it_creates(env: &Env) {
    let a = user_a();
    root_dir(env, "work", 0o777);
    let r = run_as(
        a,
        &[
            "umask|022".into(),
            format!("create|{}|666", env.vs("work/f")),
            format!("mkdir|{}|777", env.vs("work/d")),
            format!("symlink|f|{}", env.vs("work/l")),
            format!("mkfifo|{}|666", env.vs("work/p")),
            format!("create|{}|666", env.vs("work/d/nested")),
            format!("bind|{}", env.vs("work/s")),
            "umask|0".into(),
            format!("create|{}|666", env.vs("work/f0")),
            format!("mkdir|{}|777", env.vs("work/d0")),
            "umask|077".into(),
            format!("create|{}|666", env.vs("work/f7")),
            format!("mkdir|{}|777", env.vs("work/d7")),
            format!("stat|{}", env.vs("work/f")),
        ],
    );
    for (i, line) in r.iter().enumerate() {
        assert_ok(line, &format!("op {i}"));
    }
    let (u, g) = (a.uid, a.gid);
    assert_eq!(r[13], format!("ok {u} {g} 100644"), "stat as the user");
    assert_owner_mode(env, "work/f", u, g, libc::S_IFREG | 0o644);
    assert_owner_mode(env, "work/d", u, g, libc::S_IFDIR | 0o755);
    assert_owner_mode(env, "work/l", u, g, libc::S_IFLNK | 0o777);
    assert_owner_mode(env, "work/p", u, g, libc::S_IFIFO | 0o644);
    assert_owner_mode(env, "work/d/nested", u, g, libc::S_IFREG | 0o644);
    assert_owner_mode(env, "work/s", u, g, libc::S_IFSOCK | 0o755);
    assert_owner_mode(env, "work/f0", u, g, libc::S_IFREG | 0o666);
    assert_owner_mode(env, "work/d0", u, g, libc::S_IFDIR | 0o777);
    assert_owner_mode(env, "work/f7", u, g, libc::S_IFREG | 0o600);
    assert_owner_mode(env, "work/d7", u, g, libc::S_IFDIR | 0o700);
    assert_eq!(fs::read_link(env.v("work/l")).unwrap(), Path::new("f"));
    // Root's own creations stay root's.
    fs::write(env.v("work/byroot"), b"").unwrap();
    assert_owner_mode(env, "work/byroot", 0, 0, libc::S_IFREG | 0o644);
}

/// In a setgid directory new objects get the directory's group, subdirectories inherit the setgid
/// bit (at every level), and a user outside that group cannot create a setgid file there.
fn setgid_directory(env: &Env) {
    let a = user_a();
    root_dir(env, "sg", 0o777);
    chown(env.v("sg"), Some(0), Some(OTHER_GID)).unwrap();
    chmod(&env.v("sg"), 0o2777);
    assert_owner_mode(env, "sg", 0, OTHER_GID, libc::S_IFDIR | 0o2777);
    let r = run_as(
        a,
        &[
            "umask|022".into(),
            format!("create|{}|644", env.vs("sg/f")),
            format!("mkdir|{}|755", env.vs("sg/sub")),
            format!("mkdir|{}|755", env.vs("sg/sub/deeper")),
            format!("create|{}|644", env.vs("sg/sub/deeper/g")),
            format!("symlink|f|{}", env.vs("sg/l")),
            format!("mkfifo|{}|644", env.vs("sg/p")),
            // Asks for setgid + group-exec on a file of a group the user is not in.
            format!("create|{}|2755", env.vs("sg/x")),
        ],
    );
    for (i, line) in r.iter().enumerate() {
        assert_ok(line, &format!("op {i}"));
    }
    let (u, og) = (a.uid, OTHER_GID);
    assert_owner_mode(env, "sg/f", u, og, libc::S_IFREG | 0o644);
    assert_owner_mode(env, "sg/sub", u, og, libc::S_IFDIR | 0o2755);
    assert_owner_mode(env, "sg/sub/deeper", u, og, libc::S_IFDIR | 0o2755);
    assert_owner_mode(env, "sg/sub/deeper/g", u, og, libc::S_IFREG | 0o644);
    assert_owner_mode(env, "sg/l", u, og, libc::S_IFLNK | 0o777);
    assert_owner_mode(env, "sg/p", u, og, libc::S_IFIFO | 0o644);
    assert_owner_mode(env, "sg/x", u, og, libc::S_IFREG | 0o755);
    // Root gets the directory's group too.
    fs::write(env.v("sg/byroot"), b"").unwrap();
    assert_owner_mode(env, "sg/byroot", 0, og, libc::S_IFREG | 0o644);
    // In a directory of its own group the user may create a setgid file.
    root_dir(env, "own", 0o777);
    chown(env.v("own"), Some(0), Some(a.gid)).unwrap();
    chmod(&env.v("own"), 0o2777);
    let r = run_as(
        a,
        &[
            "umask|022".into(),
            format!("create|{}|2755", env.vs("own/x")),
        ],
    );
    assert_ok(&r[1], "create setgid file in own-group dir");
    assert_owner_mode(env, "own/x", u, a.gid, libc::S_IFREG | 0o2755);
}

/// A user cannot write a root-owned 0644 file, create or remove entries in a root-owned 0755
/// directory, or enter a 0700 one; reading what others may read works.
fn eacces_for_root_owned(env: &Env) {
    let a = user_a();
    root_dir(env, "locked", 0o755);
    root_file(env, "locked/file", b"secret", 0o644);
    root_dir(env, "private", 0o700);
    root_file(env, "private/inner", b"x", 0o644);
    let r = run_as(
        a,
        &[
            format!("read|{}", env.vs("locked/file")),
            format!("write|{}|changed", env.vs("locked/file")),
            format!("append|{}|more", env.vs("locked/file")),
            format!("truncate|{}|0", env.vs("locked/file")),
            format!("create|{}|644", env.vs("locked/new")),
            format!("mkdir|{}|755", env.vs("locked/newdir")),
            format!("symlink|file|{}", env.vs("locked/newlink")),
            format!("unlink|{}", env.vs("locked/file")),
            format!(
                "rename|{}|{}",
                env.vs("locked/file"),
                env.vs("locked/moved")
            ),
            format!("listdir|{}", env.vs("locked")),
            format!("read|{}", env.vs("private/inner")),
            format!("stat|{}", env.vs("private/inner")),
            format!("listdir|{}", env.vs("private")),
            format!("access|{}|{}", env.vs("locked/file"), libc::R_OK),
            format!("access|{}|{}", env.vs("locked/file"), libc::W_OK),
            format!("access|{}|{}", env.vs("locked"), libc::W_OK),
            format!("access|{}|{}", env.vs("locked"), libc::X_OK),
            format!("access|{}|{}", env.vs("private/inner"), libc::F_OK),
        ],
    );
    assert_eq!(r[0], "ok secret", "read of a 0644 file");
    for (i, what) in [
        (1, "write"),
        (2, "append"),
        (3, "truncate"),
        (4, "create in 0755 root dir"),
        (5, "mkdir in 0755 root dir"),
        (6, "symlink in 0755 root dir"),
        (7, "unlink in 0755 root dir"),
        (8, "rename in 0755 root dir"),
    ] {
        assert_errno(&r[i], "EACCES", what);
    }
    assert_eq!(r[9], "ok file", "list a 0755 dir");
    assert_errno(&r[10], "EACCES", "read under a 0700 dir");
    assert_errno(&r[11], "EACCES", "stat under a 0700 dir");
    assert_errno(&r[12], "EACCES", "list a 0700 dir");
    assert_eq!(
        r[13..],
        ["ok yes", "ok no", "ok no", "ok yes", "ok no"],
        "access(2): R/W of a 0644 root file, W/X of a 0755 root dir, F under a 0700 dir"
    );
    // Nothing changed.
    assert_eq!(fs::read(env.b("locked/file")).unwrap(), b"secret");
    assert_owner_mode(env, "locked/file", 0, 0, libc::S_IFREG | 0o644);
    let names: Vec<_> = fs::read_dir(env.b("locked")).unwrap().collect();
    assert_eq!(names.len(), 1, "backing dir gained entries: {names:?}");
}

/// chmod and chown by the owner: allowed changes happen, giving a file away or to a group the user
/// is not in is EPERM, and touching another user's file is EPERM.
fn chmod_chown_by_user(env: &Env) {
    let (a, b) = (user_a(), user_b());
    root_dir(env, "work", 0o777);
    root_file(env, "work/rootf", b"r", 0o644);
    let f = env.vs("work/f");
    let r = run_as(
        a,
        &[
            "umask|022".into(),
            format!("create|{f}|644"),
            format!("chmod|{f}|600"),
            format!("stat|{f}"),
            format!("chown|{f}|0|-1"),
            format!("chown|{f}|{}|-1", b.uid),
            format!("chown|{f}|-1|{OTHER_GID}"),
            format!("chown|{f}|-1|0"),
            format!("chown|{f}|{}|{}", a.uid, a.gid),
            format!("chown|{f}|-1|-1"),
            format!("chmod|{}|666", env.vs("work/rootf")),
            format!("chown|{}|{}|-1", env.vs("work/rootf"), a.uid),
            format!("chmod|{f}|4750"),
        ],
    );
    for i in [0, 1, 2, 8, 9, 12] {
        assert_ok(&r[i], &format!("op {i}"));
    }
    assert_eq!(r[3], format!("ok {} {} 100600", a.uid, a.gid));
    for (i, what) in [
        (4, "chown to root"),
        (5, "chown to another user"),
        (6, "chgrp to a group the user is not in"),
        (7, "chgrp to root's group"),
        (10, "chmod of root's file"),
        (11, "chown of root's file"),
    ] {
        assert_errno(&r[i], "EPERM", what);
    }
    assert_owner_mode(env, "work/f", a.uid, a.gid, libc::S_IFREG | 0o4750);
    assert_owner_mode(env, "work/rootf", 0, 0, libc::S_IFREG | 0o644);
    // The owner sets setgid on a file whose group it is not in: the bit is dropped silently.
    chown(env.v("work/f"), None, Some(OTHER_GID)).unwrap();
    let r = one(a, format!("chmod|{f}|2755"));
    assert_ok(&r, "chmod g+s by the owner outside the group");
    assert_owner_mode(env, "work/f", a.uid, OTHER_GID, libc::S_IFREG | 0o755);
    // Root gives the file to the other user, who then owns it.
    chown(env.v("work/f"), Some(b.uid), Some(b.gid)).unwrap();
    assert_owner_mode(env, "work/f", b.uid, b.gid, libc::S_IFREG | 0o755);
    assert_errno(
        &one(a, format!("chmod|{f}|777")),
        "EPERM",
        "chmod after giving away",
    );
    assert_ok(&one(b, format!("chmod|{f}|700")), "new owner's chmod");
    assert_owner_mode(env, "work/f", b.uid, b.gid, libc::S_IFREG | 0o700);
}

/// A write or truncate by an unprivileged user clears set-user-ID, and set-group-ID when group
/// execute is set; a setgid file without group execute keeps the bit when the writer is in the
/// file's group. Root's writes (CAP_FSETID) keep both.
fn setid_cleared_on_write(env: &Env) {
    let a = user_a();
    root_dir(env, "work", 0o777);
    // Owned by the user, 06755.
    root_file(env, "work/mine", b"#!/bin/sh\n", 0o644);
    chown(env.v("work/mine"), Some(a.uid), Some(a.gid)).unwrap();
    chmod(&env.v("work/mine"), 0o6755);
    // Root-owned, writable by all.
    for name in ["rootw", "roott", "roota"] {
        root_file(env, &format!("work/{name}"), b"#!/bin/sh\n", 0o6777);
    }
    // Setgid without group execute, group = the writer's group.
    root_file(env, "work/nogx", b"data", 0o644);
    chown(env.v("work/nogx"), None, Some(a.gid)).unwrap();
    chmod(&env.v("work/nogx"), 0o2666);
    root_file(env, "work/byroot", b"data", 0o6777);
    assert_owner_mode(env, "work/rootw", 0, 0, libc::S_IFREG | 0o6777);
    let r = run_as(
        a,
        &[
            format!("write|{}|echo", env.vs("work/mine")),
            format!("write|{}|echo", env.vs("work/rootw")),
            format!("truncate|{}|3", env.vs("work/roott")),
            format!("append|{}|more", env.vs("work/roota")),
            format!("write|{}|DATA", env.vs("work/nogx")),
        ],
    );
    for (i, line) in r.iter().enumerate() {
        assert_ok(line, &format!("op {i}"));
    }
    assert_owner_mode(env, "work/mine", a.uid, a.gid, libc::S_IFREG | 0o755);
    assert_owner_mode(env, "work/rootw", 0, 0, libc::S_IFREG | 0o777);
    assert_owner_mode(env, "work/roott", 0, 0, libc::S_IFREG | 0o777);
    assert_owner_mode(env, "work/roota", 0, 0, libc::S_IFREG | 0o777);
    assert_owner_mode(env, "work/nogx", 0, a.gid, libc::S_IFREG | 0o2666);
    assert_eq!(fs::read(env.b("work/mine")).unwrap(), b"echoin/sh\n");
    assert_eq!(fs::read(env.b("work/rootw")).unwrap(), b"echoin/sh\n");
    assert_eq!(fs::read(env.b("work/roott")).unwrap(), b"#!/");
    assert_eq!(fs::read(env.b("work/roota")).unwrap(), b"#!/bin/sh\nmore");
    assert_eq!(fs::read(env.b("work/nogx")).unwrap(), b"DATA");
    // Root (CAP_FSETID) writes without losing the bits.
    fs::OpenOptions::new()
        .append(true)
        .open(env.v("work/byroot"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
        .unwrap();
    assert_owner_mode(env, "work/byroot", 0, 0, libc::S_IFREG | 0o6777);
}

/// open(O_TRUNC) by an unprivileged user clears set-user-ID and set-group-ID (with group execute)
/// like any other truncation. (A FUSE filesystem that truncates in open, FUSE_ATOMIC_O_TRUNC,
/// must clear them itself: the kernel then sends no setattr.)
fn setid_cleared_on_open_trunc(env: &Env) {
    let a = user_a();
    root_dir(env, "work", 0o777);
    root_file(env, "work/t", b"#!/bin/sh\n", 0o6777);
    root_file(env, "work/mine", b"#!/bin/sh\n", 0o644);
    chown(env.v("work/mine"), Some(a.uid), Some(a.gid)).unwrap();
    chmod(&env.v("work/mine"), 0o6755);
    let r = run_as(
        a,
        &[
            format!("open_trunc|{}", env.vs("work/t")),
            format!("open_trunc|{}", env.vs("work/mine")),
        ],
    );
    assert_ok(&r[0], "open O_TRUNC of a root 06777 file");
    assert_ok(&r[1], "open O_TRUNC of the user's 06755 file");
    assert_eq!(fs::read(env.b("work/t")).unwrap(), b"");
    assert_eq!(fs::read(env.b("work/mine")).unwrap(), b"");
    assert_owner_mode(env, "work/t", 0, 0, libc::S_IFREG | 0o777);
    assert_owner_mode(env, "work/mine", a.uid, a.gid, libc::S_IFREG | 0o755);
}

/// Every way an unprivileged user changes a root-owned 06666 file clears both bits (the user is not
/// in the file's group), and the mode seen through the view says so at once, also when the kernel
/// had the old mode cached: buffered and O_DIRECT writes, fallocate in each mode, truncate.
fn setid_cleared_by_every_change(env: &Env) {
    let a = user_a();
    root_dir(env, "work", 0o777);
    let page = vec![b'x'; 8192];
    let ops = [
        ("pwrite", "pwrite|{}|buffered".to_owned()),
        ("direct", "pwrite_direct|{}|dio!".to_owned()),
        ("alloc", format!("fallocate|{{}}|0|0|{}", 16384)),
        (
            "keep",
            format!("fallocate|{{}}|{}|0|16384", libc::FALLOC_FL_KEEP_SIZE),
        ),
        (
            "punch",
            format!(
                "fallocate|{{}}|{}|0|4096",
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
            ),
        ),
        (
            "zero",
            format!("fallocate|{{}}|{}|0|4096", libc::FALLOC_FL_ZERO_RANGE),
        ),
        ("trunc", "truncate|{}|3".to_owned()),
    ];
    for (name, _) in &ops {
        let rel = format!("work/{name}");
        root_file(env, &rel, &page, 0o6666);
        // Through the view, so the kernel caches the mode with both bits.
        assert_owner_mode(env, &rel, 0, 0, libc::S_IFREG | 0o6666);
    }
    for (name, op) in &ops {
        let rel = format!("work/{name}");
        let path = env.vs(&rel);
        let r = run_as(a, &[op.replace("{}", &path), format!("stat|{path}")]);
        assert_ok(&r[0], name);
        let want = if env.passthrough && ["pwrite", "direct"].contains(name) {
            0o2666 // see passthrough_write_keeps_setgid_without_group_execute
        } else {
            0o666
        };
        assert_eq!(
            r[1],
            format!("ok 0 0 {:o}", libc::S_IFREG | want),
            "{name}: the mode the user sees after its change"
        );
        assert_owner_mode(env, &rel, 0, 0, libc::S_IFREG | want);
    }
    assert_eq!(&fs::read(env.b("work/pwrite")).unwrap()[..8], b"buffered");
    assert_eq!(&fs::read(env.b("work/direct")).unwrap()[..4], b"dio!");
    assert_eq!(fs::metadata(env.b("work/alloc")).unwrap().len(), 16384);
    assert_eq!(&fs::read(env.b("work/punch")).unwrap()[..4], &[0; 4]);
    assert_eq!(&fs::read(env.b("work/zero")).unwrap()[..4], &[0; 4]);
}

/// Setting an access ACL clears set-group-ID when the caller (here the file's owner) is not in the
/// file's group (Linux's posix_acl_update_mode), and keeps it when the caller is.
fn setgid_cleared_by_acl_of_non_member(env: &Env) {
    let a = user_a();
    root_dir(env, "work", 0o777);
    for (name, gid) in [("other", OTHER_GID), ("member", a.gid)] {
        let rel = format!("work/{name}");
        root_file(env, &rel, b"data", 0o644);
        chown(env.v(&rel), Some(a.uid), Some(gid)).unwrap();
        chmod(&env.v(&rel), 0o2775);
        assert_owner_mode(env, &rel, a.uid, gid, libc::S_IFREG | 0o2775);
        let r = one(a, format!("setfacl|{}|u:root:r", env.vs(&rel)));
        assert_ok(&r, &format!("setfacl on {name}"));
    }
    assert_owner_mode(env, "work/other", a.uid, OTHER_GID, libc::S_IFREG | 0o775);
    assert_owner_mode(env, "work/member", a.uid, a.gid, libc::S_IFREG | 0o2775);
    assert_eq!(getfacl(&env.v("work/other")), getfacl(&env.b("work/other")));
}

/// The rule of Linux >= 6.2 (setattr_should_drop_sgid): a write or truncate by a user who is not in
/// the file's group clears set-group-ID even without group execute (a local filesystem does; the
/// kernel's FUSE fallback, used unless the daemon handles killpriv itself, only clears it with
/// group execute).
fn setgid_nogx_cleared_for_non_member(env: &Env) {
    let a = user_a();
    root_dir(env, "work", 0o777);
    root_file(env, "work/w", b"data", 0o2666);
    root_file(env, "work/t", b"data", 0o2666);
    let r = run_as(
        a,
        &[
            format!("write|{}|DATA", env.vs("work/w")),
            format!("truncate|{}|2", env.vs("work/t")),
        ],
    );
    assert_ok(&r[0], "write");
    assert_ok(&r[1], "truncate");
    assert_eq!(fs::read(env.b("work/w")).unwrap(), b"DATA");
    assert_eq!(fs::read(env.b("work/t")).unwrap(), b"da");
    let written = if env.passthrough {
        0o2666 // see passthrough_write_keeps_setgid_without_group_execute
    } else {
        0o666
    };
    assert_owner_mode(env, "work/w", 0, 0, libc::S_IFREG | written);
    assert_owner_mode(env, "work/t", 0, 0, libc::S_IFREG | 0o666);
}

/// Under `--passthrough` the kernel writes the backing file itself and clears set-id bits by the
/// generic FUSE rule (a SETATTR before the write): set-user-ID always, set-group-ID only with group
/// execute, so a write by a user outside the file's group keeps set-group-ID on a file without
/// group execute (harmless: exec honours set-group-ID only with group execute). With group execute
/// both go, as on a local filesystem.
#[test]
fn passthrough_write_keeps_setgid_without_group_execute() {
    run_mounted_with(&["--passthrough"], |env| {
        let a = user_a();
        root_dir(env, "work", 0o777);
        root_file(env, "work/nogx", b"data", 0o6666);
        root_file(env, "work/gx", b"data", 0o6777);
        let r = run_as(
            a,
            &[
                format!("write|{}|DATA", env.vs("work/nogx")),
                format!("write|{}|DATA", env.vs("work/gx")),
            ],
        );
        assert_ok(&r[0], "write nogx");
        assert_ok(&r[1], "write gx");
        assert_owner_mode(env, "work/nogx", 0, 0, libc::S_IFREG | 0o2666);
        assert_owner_mode(env, "work/gx", 0, 0, libc::S_IFREG | 0o777);
    });
}

/// In a sticky world-writable directory a user cannot remove or rename another user's entries,
/// but may write into another user's world-writable file and remove its own; root may remove all.
fn sticky_directory(env: &Env) {
    let (a, b) = (user_a(), user_b());
    root_dir(env, "shared", 0o1777);
    let r = run_as(
        a,
        &[
            "umask|0".into(),
            format!("create|{}|666", env.vs("shared/a")),
            format!("mkdir|{}|777", env.vs("shared/adir")),
            format!("create|{}|666", env.vs("shared/a2")),
        ],
    );
    for (i, line) in r.iter().enumerate() {
        assert_ok(line, &format!("A op {i}"));
    }
    let r = run_as(
        b,
        &[
            "umask|022".into(),
            format!("unlink|{}", env.vs("shared/a")),
            format!("rename|{}|{}", env.vs("shared/a"), env.vs("shared/b-took")),
            format!("rmdir|{}", env.vs("shared/adir")),
            format!("create|{}|644", env.vs("shared/b")),
            format!("rename|{}|{}", env.vs("shared/b"), env.vs("shared/a")),
            format!("write|{}|from b", env.vs("shared/a")),
            // Inside A's own (non-sticky, 0777) directory B may remove freely.
            format!("create|{}|644", env.vs("shared/adir/bfile")),
            format!("unlink|{}", env.vs("shared/adir/bfile")),
        ],
    );
    assert_ok(&r[0], "umask");
    assert_errno(&r[1], "EPERM", "B unlinks A's file");
    assert_errno(&r[2], "EPERM", "B renames A's file away");
    assert_errno(&r[3], "EPERM", "B removes A's directory");
    assert_ok(&r[4], "B creates its own file");
    assert_errno(&r[5], "EPERM", "B renames its file over A's");
    assert_ok(&r[6], "B writes A's world-writable file");
    assert_ok(&r[7], "B creates in A's 0777 dir");
    assert_ok(&r[8], "B unlinks in A's non-sticky dir");
    assert_eq!(fs::read(env.b("shared/a")).unwrap(), b"from b");
    assert_owner_mode(env, "shared/a", a.uid, a.gid, libc::S_IFREG | 0o666);
    assert_owner_mode(env, "shared/b", b.uid, b.gid, libc::S_IFREG | 0o644);
    let r = run_as(
        a,
        &[
            format!("unlink|{}", env.vs("shared/b")),
            format!("unlink|{}", env.vs("shared/a")),
            format!("rename|{}|{}", env.vs("shared/a2"), env.vs("shared/a3")),
        ],
    );
    assert_errno(&r[0], "EPERM", "A unlinks B's file");
    assert_ok(&r[1], "A unlinks its own file");
    assert_ok(&r[2], "A renames its own file");
    fs::remove_file(env.v("shared/b")).expect("root removes B's file in a sticky dir");
    fs::remove_dir(env.v("shared/adir")).expect("root removes A's dir in a sticky dir");
    let mut left: Vec<String> = fs::read_dir(env.b("shared"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["a3"]);
}

/// An access ACL entry `u:A:---` on a 0644 root file denies A (EACCES) while others still read;
/// removing the entry gives access back. The ACL is the same through the view and in the backing.
fn acl_denies_user(env: &Env) {
    let (a, b) = (user_a(), user_b());
    root_file(env, "f", b"data", 0o644);
    assert_eq!(one(a, format!("read|{}", env.vs("f"))), "ok data");
    setfacl(&["-m", &format!("u:{}:---", a.uid)], &env.v("f"));
    let acl = getfacl(&env.v("f"));
    assert!(
        acl.contains(&format!("user:{}:---", a.uid)),
        "ACL through the view:\n{acl}"
    );
    assert_eq!(acl, getfacl(&env.b("f")), "ACL view vs backing");
    assert_owner_mode(env, "f", 0, 0, libc::S_IFREG | 0o644);
    assert_errno(
        &one(a, format!("read|{}", env.vs("f"))),
        "EACCES",
        "A reads with u:A:---",
    );
    assert_eq!(
        one(b, format!("read|{}", env.vs("f"))),
        "ok data",
        "B still reads"
    );
    // A directory ACL denies listing and lookups below it.
    root_dir(env, "d", 0o755);
    root_file(env, "d/inner", b"in", 0o644);
    setfacl(&["-m", &format!("u:{}:---", a.uid)], &env.v("d"));
    let r = run_as(
        a,
        &[
            format!("listdir|{}", env.vs("d")),
            format!("read|{}", env.vs("d/inner")),
        ],
    );
    assert_errno(&r[0], "EACCES", "A lists a dir with u:A:---");
    assert_errno(&r[1], "EACCES", "A reads below a dir with u:A:---");
    assert_eq!(one(b, format!("read|{}", env.vs("d/inner"))), "ok in");
    // Removing the entry restores access at once.
    setfacl(&["-x", &format!("u:{}", a.uid)], &env.v("f"));
    assert_eq!(
        one(a, format!("read|{}", env.vs("f"))),
        "ok data",
        "A reads after the entry is removed"
    );
    // A write-granting entry lets A write a 0644 root file.
    setfacl(&["-m", &format!("u:{}:rw-", a.uid)], &env.v("f"));
    assert_ok(
        &one(a, format!("write|{}|DATA", env.vs("f"))),
        "A writes with u:A:rw-",
    );
    assert_eq!(fs::read(env.b("f")).unwrap(), b"DATA");
}

/// A default ACL on a directory decides the mode of what is created inside, whatever the creator's
/// umask; next to it a plain directory applies the umask. Subdirectories inherit the default ACL,
/// and its named entry grants access to the new file.
fn default_acl_overrides_umask(env: &Env) {
    let (a, b) = (user_a(), user_b());
    root_dir(env, "dacl", 0o777);
    root_dir(env, "plain", 0o777);
    setfacl(
        &[
            "-d",
            "-m",
            &format!("u::rwx,g::r-x,o::r-x,u:{}:rwx,m::rwx", b.uid),
        ],
        &env.v("dacl"),
    );
    let r = run_as(
        a,
        &[
            "umask|077".into(),
            format!("create|{}|666", env.vs("dacl/f")),
            format!("mkdir|{}|777", env.vs("dacl/d")),
            format!("create|{}|666", env.vs("plain/f")),
            format!("mkdir|{}|777", env.vs("plain/d")),
        ],
    );
    for (i, line) in r.iter().enumerate() {
        assert_ok(line, &format!("op {i}"));
    }
    // umask 077 ignored: u::rw-, mask rw- (shown as group bits), o::r--.
    assert_owner_mode(env, "dacl/f", a.uid, a.gid, libc::S_IFREG | 0o664);
    assert_owner_mode(env, "dacl/d", a.uid, a.gid, libc::S_IFDIR | 0o775);
    assert_owner_mode(env, "plain/f", a.uid, a.gid, libc::S_IFREG | 0o600);
    assert_owner_mode(env, "plain/d", a.uid, a.gid, libc::S_IFDIR | 0o700);
    let facl = getfacl(&env.v("dacl/f"));
    let entry = format!("user:{}:rwx", b.uid);
    assert!(
        facl.lines()
            .any(|l| l.starts_with(&entry) && l.ends_with("#effective:rw-")),
        "ACL of the new file:\n{facl}"
    );
    assert_eq!(facl, getfacl(&env.b("dacl/f")), "file ACL view vs backing");
    let dacl = getfacl(&env.v("dacl/d"));
    assert!(
        dacl.contains(&format!("default:user:{}:rwx", b.uid)),
        "subdir inherits the default ACL:\n{dacl}"
    );
    assert_eq!(dacl, getfacl(&env.b("dacl/d")), "dir ACL view vs backing");
    assert_eq!(getfacl(&env.v("plain/f")), getfacl(&env.b("plain/f")));
    // The named entry lets B write A's new file; the plain one stays closed to B.
    let r = run_as(
        b,
        &[
            format!("write|{}|by b", env.vs("dacl/f")),
            format!("write|{}|by b", env.vs("plain/f")),
            format!("create|{}|666", env.vs("dacl/d/fromb")),
        ],
    );
    assert_ok(&r[0], "B writes via the inherited named entry");
    assert_errno(&r[1], "EACCES", "B writes a 0600 file");
    assert_ok(&r[2], "B creates in the subdir via the inherited entry");
    assert_eq!(fs::read(env.b("dacl/f")).unwrap(), b"by b");
    // Umask 022 is ignored too: 0666 request gives 0664 again (mask rw-).
    assert_owner_mode(env, "dacl/d/fromb", b.uid, b.gid, libc::S_IFREG | 0o664);
}

/// What a user creates is the user's from the moment it exists, never root's for a while: a
/// watcher spins on inotify events of the backing directory and stats every new entry at once,
/// while the user creates files, directories, symlinks and FIFOs (create-then-chown shows root
/// as the owner of some of them).
fn owned_by_the_user_from_the_first_moment(env: &Env) {
    use rustix::fs::inotify;
    use std::sync::atomic::{AtomicBool, Ordering};
    let a = user_a();
    root_dir(env, "new", 0o777);
    let dir = rustix::fs::open(
        env.b("new"),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let watch = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
        .expect("inotify_init");
    inotify::add_watch(&watch, env.b("new"), inotify::WatchFlags::CREATE).expect("add_watch");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 1 << 16];
            let mut reader = inotify::Reader::new(&watch, &mut buf);
            let mut seen = Vec::new();
            loop {
                match reader.next() {
                    Ok(ev) => {
                        let Some(name) = ev.file_name().map(|n| n.to_owned()) else {
                            continue;
                        };
                        let st = rustix::fs::statat(
                            &dir,
                            name.as_c_str(),
                            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                        );
                        if let Ok(st) = st {
                            seen.push((name, st.st_uid, st.st_gid));
                        }
                    }
                    Err(rustix::io::Errno::AGAIN) if stop.load(Ordering::Acquire) => break,
                    Err(rustix::io::Errno::AGAIN) => std::hint::spin_loop(),
                    Err(e) => panic!("inotify read: {e}"),
                }
            }
            seen
        })
    };
    let n = 100;
    let r = one(a, format!("many|{}|{n}", env.vs("new")));
    stop.store(true, Ordering::Release);
    let seen = watcher.join().unwrap();
    assert_ok(&r, "create files, directories, symlinks and FIFOs");
    assert!(
        seen.len() > n,
        "the watcher saw only {} of {} creations",
        seen.len(),
        4 * n
    );
    let foreign: Vec<_> = seen
        .iter()
        .filter(|(_, uid, gid)| (*uid, *gid) != (a.uid, a.gid))
        .collect();
    assert!(
        foreign.is_empty(),
        "{} of {} new entries were seen with another owner than {}:{} at first, e.g. {:?}",
        foreign.len(),
        seen.len(),
        a.uid,
        a.gid,
        &foreign[..foreign.len().min(5)]
    );
    for name in ["f7", "d7", "l7", "p7"] {
        let m = same(env, &format!("new/{name}"));
        assert_eq!((m.uid(), m.gid()), (a.uid, a.gid), "{name}");
    }
}

/// Whether a directory has a default ACL decides whether the creator's umask applies; a change of
/// it through the view counts at the next creation: none (umask applies), then one set (the ACL
/// decides, also in a subdirectory made meanwhile), then removed again (umask applies again).
fn default_acl_changes_are_followed(env: &Env) {
    let a = user_a();
    root_dir(env, "d", 0o777);
    let create = |names: &[&str]| {
        let mut ops = vec!["umask|077".to_string()];
        ops.extend(names.iter().map(|n| format!("create|{}|666", env.vs(n))));
        for (i, line) in run_as(a, &ops).iter().enumerate() {
            assert_ok(line, &format!("op {i} of {names:?}"));
        }
    };
    let mode = |rel: &str| same(env, rel).mode();
    create(&["d/before"]);
    assert_eq!(
        mode("d/before"),
        libc::S_IFREG | 0o600,
        "no default ACL: umask"
    );
    setfacl(&["-d", "-m", "u::rwx,g::rwx,o::r-x"], &env.v("d"));
    let r = one(a, format!("mkdir|{}|777", env.vs("d/sub")));
    assert_ok(&r, "mkdir d/sub");
    create(&["d/with", "d/sub/with"]);
    assert_eq!(
        mode("d/with"),
        libc::S_IFREG | 0o664,
        "default ACL: umask ignored"
    );
    assert_eq!(
        mode("d/sub/with"),
        libc::S_IFREG | 0o664,
        "inherited default ACL: umask ignored"
    );
    setfacl(&["-k"], &env.v("d"));
    setfacl(&["-k"], &env.v("d/sub"));
    create(&["d/after", "d/sub/after"]);
    assert_eq!(mode("d/after"), libc::S_IFREG | 0o600, "ACL removed: umask");
    assert_eq!(
        mode("d/sub/after"),
        libc::S_IFREG | 0o600,
        "ACL removed: umask"
    );
}
