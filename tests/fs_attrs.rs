//! Attributes through the mount: lookup/getattr, setattr (chmod, chown, truncate, utimensat with
//! nanoseconds, UTIME_NOW and UTIME_OMIT), access, statfs. Each check runs on a plain directory and
//! through arsyncfs (see tests/common/fs_util.rs).

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;

use std::ffi::CString;
use std::fs::{self, File, Permissions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use fs_util::*;
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};

fs_tests!(
    lookup_getattr,
    chmod,
    chown,
    chown_clears_setid,
    truncate,
    utimens_explicit_ns,
    utimens_pre_epoch,
    utimens_now_omit,
    access,
    statfs,
);

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    }
}

fn set_times(path: &Path, atime: Timespec, mtime: Timespec, flags: AtFlags) {
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: atime,
            last_modification: mtime,
        },
        flags,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

fn chmod_path(path: &Path, mode: u32) {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

fn lookup_getattr(env: &Env) {
    fs::create_dir(env.v("d")).unwrap();
    fs::write(env.v("d/f"), b"12345").unwrap();
    chmod_path(&env.v("d/f"), 0o640);
    symlink("f", env.v("d/l")).unwrap();
    set_times(
        &env.v("d/f"),
        ts(1_234_567_890, 111_222_333),
        ts(1_500_000_000, 987_654_321),
        AtFlags::empty(),
    );

    let f = same_attrs(env, "d/f");
    assert!(f.file_type().is_file());
    assert_eq!(
        f.mode(),
        libc::S_IFREG | 0o640,
        "mode of d/f: {:o}",
        f.mode()
    );
    assert_eq!(f.size(), 5);
    assert_eq!(f.nlink(), 1);
    assert_eq!((f.uid(), f.gid()), (0, 0), "owner of a file root created");
    assert_eq!((f.mtime(), f.mtime_nsec()), (1_500_000_000, 987_654_321));
    assert_eq!((f.atime(), f.atime_nsec()), (1_234_567_890, 111_222_333));

    let d = same_attrs(env, "d");
    assert!(d.file_type().is_dir());
    assert_eq!(d.nlink(), 2, "an empty directory has two links");
    let l = same_attrs(env, "d/l");
    assert!(l.file_type().is_symlink());
    assert_eq!(l.size(), 1, "a symlink's size is its target's length");
    same_attrs(env, "");

    // stat follows the symlink to the same inode; fstat of an open file agrees with lstat.
    let followed = fs::metadata(env.v("d/l")).unwrap();
    assert_eq!(
        followed.ino(),
        f.ino(),
        "stat through the symlink reaches d/f"
    );
    let fst = File::open(env.v("d/f")).unwrap().metadata().unwrap();
    assert_same_attrs(&fst, &f, "fstat vs lstat of d/f");
    assert_eq!(fst.ino(), f.ino());

    // Distinct files have distinct inode numbers; one file keeps its number across lookups.
    fs::write(env.v("d/g"), b"").unwrap();
    let g = lstat(&env.v("d/g"));
    assert_ne!(g.ino(), f.ino(), "two files share an inode number");
    assert_eq!(lstat(&env.v("d/f")).ino(), f.ino());

    expect_err(
        fs::symlink_metadata(env.v("d/missing")),
        libc::ENOENT,
        "lookup missing",
    );
    expect_err(
        fs::symlink_metadata(env.v("d/f/x")),
        libc::ENOTDIR,
        "lookup below a file",
    );
}

fn chmod(env: &Env) {
    fs::write(env.v("f"), b"x").unwrap();
    for mode in [0o604, 0o4755, 0o2750, 0o1700, 0o000, 0o777] {
        chmod_path(&env.v("f"), mode);
        let m = same_attrs(env, "f");
        assert_eq!(
            m.mode(),
            libc::S_IFREG | mode,
            "after chmod {mode:o}: {:o}",
            m.mode()
        );
    }
    fs::create_dir(env.v("d")).unwrap();
    chmod_path(&env.v("d"), 0o1777);
    assert_eq!(same_attrs(env, "d").mode(), libc::S_IFDIR | 0o1777);
    chmod_path(&env.v("d"), 0o2711);
    assert_eq!(same_attrs(env, "d").mode(), libc::S_IFDIR | 0o2711);

    // fchmod on an open descriptor.
    let f = File::open(env.v("f")).unwrap();
    f.set_permissions(Permissions::from_mode(0o640)).unwrap();
    assert_eq!(same_attrs(env, "f").mode(), libc::S_IFREG | 0o640);

    // chmod through a symlink changes the target, not the link.
    symlink("f", env.v("l")).unwrap();
    let link_mode = lstat(&env.v("l")).mode();
    chmod_path(&env.v("l"), 0o600);
    assert_eq!(same_attrs(env, "f").mode(), libc::S_IFREG | 0o600);
    assert_eq!(same_attrs(env, "l").mode(), link_mode);
}

fn chown(env: &Env) {
    use std::os::unix::fs::{chown, fchown, lchown};
    fs::write(env.v("f"), b"x").unwrap();
    chown(env.v("f"), Some(1234), Some(5678)).unwrap();
    let m = same_attrs(env, "f");
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    chown(env.v("f"), None, Some(4321)).unwrap();
    let m = same_attrs(env, "f");
    assert_eq!(
        (m.uid(), m.gid()),
        (1234, 4321),
        "chown(-1, gid) keeps the owner"
    );
    chown(env.v("f"), Some(99), None).unwrap();
    let m = same_attrs(env, "f");
    assert_eq!(
        (m.uid(), m.gid()),
        (99, 4321),
        "chown(uid, -1) keeps the group"
    );

    let f = File::open(env.v("f")).unwrap();
    fchown(&f, Some(0), Some(0)).unwrap();
    let m = same_attrs(env, "f");
    assert_eq!((m.uid(), m.gid()), (0, 0), "fchown");

    // lchown changes the link itself; chown through the link changes the target.
    symlink("f", env.v("l")).unwrap();
    lchown(env.v("l"), Some(7), Some(8)).unwrap();
    let l = same_attrs(env, "l");
    assert_eq!((l.uid(), l.gid()), (7, 8), "lchown of the link");
    let m = same_attrs(env, "f");
    assert_eq!(
        (m.uid(), m.gid()),
        (0, 0),
        "lchown must not touch the target"
    );
    chown(env.v("l"), Some(11), Some(12)).unwrap();
    let m = same_attrs(env, "f");
    assert_eq!((m.uid(), m.gid()), (11, 12), "chown follows the link");

    fs::create_dir(env.v("d")).unwrap();
    chown(env.v("d"), Some(1000), Some(1000)).unwrap();
    let d = same_attrs(env, "d");
    assert_eq!((d.uid(), d.gid()), (1000, 1000));
}

/// Changing the owner of a regular file clears set-user-ID and set-group-ID (Linux does this for
/// root as well, chown(2)); a directory keeps them.
fn chown_clears_setid(env: &Env) {
    use std::os::unix::fs::chown;
    fs::write(env.v("f"), b"#!/bin/sh\n").unwrap();
    chmod_path(&env.v("f"), 0o6755);
    chown(env.v("f"), Some(1234), Some(1234)).unwrap();
    let m = same_attrs(env, "f");
    assert_eq!(
        m.mode(),
        libc::S_IFREG | 0o755,
        "setuid/setgid after chown: {:o}",
        m.mode()
    );
    fs::create_dir(env.v("d")).unwrap();
    chmod_path(&env.v("d"), 0o2775);
    chown(env.v("d"), Some(1234), Some(1234)).unwrap();
    assert_eq!(same_attrs(env, "d").mode(), libc::S_IFDIR | 0o2775);
}

/// truncate(2) on a path.
fn truncate_path(path: &Path, len: i64) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    #[allow(unsafe_code)]
    let r = unsafe { libc::truncate(c.as_ptr(), len) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn truncate(env: &Env) {
    let data = pseudo_random(1, 10_000);
    write_file(env, "f", &data);
    // ftruncate down and up.
    let f = open_rw(&env.v("f"));
    f.set_len(100).unwrap();
    assert_eq!(same_attrs(env, "f").size(), 100);
    assert_content(env, "f", &data[..100]);
    f.set_len(20_000).unwrap();
    assert_eq!(same_attrs(env, "f").size(), 20_000);
    let mut want = data[..100].to_vec();
    want.resize(20_000, 0);
    assert_content(env, "f", &want);
    drop(f);

    // truncate(2) by path, down and up, without an open file.
    truncate_path(&env.v("f"), 50).unwrap();
    assert_eq!(same_attrs(env, "f").size(), 50);
    assert_content(env, "f", &data[..50]);
    truncate_path(&env.v("f"), 5 << 20).unwrap();
    assert_eq!(same_attrs(env, "f").size(), 5 << 20);
    let mut want = data[..50].to_vec();
    want.resize(5 << 20, 0);
    assert_content(env, "f", &want);
    truncate_path(&env.v("f"), 0).unwrap();
    assert_eq!(same_attrs(env, "f").size(), 0);
    assert_content(env, "f", b"");

    // truncate changes mtime.
    set_times(&env.v("f"), ts(1000, 0), ts(1000, 0), AtFlags::empty());
    truncate_path(&env.v("f"), 10).unwrap();
    assert!(
        same_attrs(env, "f").mtime() > 1000,
        "truncate must update mtime"
    );

    expect_err(
        truncate_path(&env.v("missing"), 0),
        libc::ENOENT,
        "truncate missing",
    );
    fs::create_dir(env.v("d")).unwrap();
    expect_err(
        truncate_path(&env.v("d"), 0),
        libc::EISDIR,
        "truncate a directory",
    );
}

fn utimens_explicit_ns(env: &Env) {
    fs::write(env.v("f"), b"x").unwrap();
    fs::create_dir(env.v("d")).unwrap();
    symlink("f", env.v("l")).unwrap();
    let cases = [
        (
            ts(1_000_000_000, 123_456_789),
            ts(1_100_000_000, 999_999_999),
        ),
        (ts(1, 1), ts(0, 0)),
        (ts(4_000_000_000, 500_000_000), ts(2_000_000_000, 7)),
    ];
    for (rel, flags) in [
        ("f", AtFlags::empty()),
        ("d", AtFlags::empty()),
        ("l", AtFlags::SYMLINK_NOFOLLOW),
    ] {
        for (a, m) in &cases {
            set_times(&env.v(rel), *a, *m, flags);
            let st = same_attrs(env, rel);
            assert_eq!(
                (st.atime(), st.atime_nsec()),
                (a.tv_sec, a.tv_nsec),
                "{rel}: atime"
            );
            assert_eq!(
                (st.mtime(), st.mtime_nsec()),
                (m.tv_sec, m.tv_nsec),
                "{rel}: mtime"
            );
            let b = lstat(&env.b(rel));
            assert_eq!(
                (b.atime(), b.atime_nsec()),
                (a.tv_sec, a.tv_nsec),
                "{rel}: backing atime"
            );
        }
    }
    // futimens on an open descriptor.
    let f = File::open(env.v("f")).unwrap();
    rustix::fs::futimens(
        &f,
        &Timestamps {
            last_access: ts(1_600_000_000, 1),
            last_modification: ts(1_600_000_001, 2),
        },
    )
    .unwrap();
    let st = same_attrs(env, "f");
    assert_eq!((st.mtime(), st.mtime_nsec()), (1_600_000_001, 2));
    assert_eq!((st.atime(), st.atime_nsec()), (1_600_000_000, 1));
}

/// Times before 1970 (tar archives have them) survive the round trip.
fn utimens_pre_epoch(env: &Env) {
    fs::write(env.v("f"), b"x").unwrap();
    set_times(
        &env.v("f"),
        ts(-1_000_000, 250_000_000),
        ts(-86_400 * 365, 999),
        AtFlags::empty(),
    );
    let st = same_attrs(env, "f");
    assert_eq!((st.mtime(), st.mtime_nsec()), (-86_400 * 365, 999));
    assert_eq!((st.atime(), st.atime_nsec()), (-1_000_000, 250_000_000));
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn utimens_now_omit(env: &Env) {
    fs::write(env.v("f"), b"x").unwrap();
    let t0a = ts(1_000_000_000, 111);
    let t0m = ts(1_000_000_100, 222);
    set_times(&env.v("f"), t0a, t0m, AtFlags::empty());

    // mtime = now, atime omitted. File timestamps come from a coarse clock, hence the 2 s slack
    // (which is about the clock, not about how fast anything runs).
    let before = now_secs();
    set_times(
        &env.v("f"),
        ts(0, UTIME_OMIT),
        ts(0, UTIME_NOW),
        AtFlags::empty(),
    );
    let after = now_secs();
    let st = same_attrs(env, "f");
    assert_eq!(
        (st.atime(), st.atime_nsec()),
        (1_000_000_000, 111),
        "UTIME_OMIT kept atime"
    );
    assert!(
        st.mtime() >= before - 2 && st.mtime() <= after + 2,
        "UTIME_NOW mtime {} not in [{before}, {after}]",
        st.mtime()
    );
    let m1 = (st.mtime(), st.mtime_nsec());

    // atime = now, mtime omitted.
    set_times(
        &env.v("f"),
        ts(0, UTIME_NOW),
        ts(0, UTIME_OMIT),
        AtFlags::empty(),
    );
    let after = now_secs();
    let st = same_attrs(env, "f");
    assert_eq!((st.mtime(), st.mtime_nsec()), m1, "UTIME_OMIT kept mtime");
    assert!(
        st.atime() >= before - 2 && st.atime() <= after + 2,
        "UTIME_NOW atime {}",
        st.atime()
    );

    // Both omitted: nothing changes.
    set_times(&env.v("f"), t0a, t0m, AtFlags::empty());
    set_times(
        &env.v("f"),
        ts(0, UTIME_OMIT),
        ts(0, UTIME_OMIT),
        AtFlags::empty(),
    );
    let st = same_attrs(env, "f");
    assert_eq!((st.atime(), st.atime_nsec()), (1_000_000_000, 111));
    assert_eq!((st.mtime(), st.mtime_nsec()), (1_000_000_100, 222));

    // Both now (utimensat with NULL times, as touch(1) does).
    set_times(
        &env.v("f"),
        ts(0, UTIME_NOW),
        ts(0, UTIME_NOW),
        AtFlags::empty(),
    );
    let after = now_secs();
    let st = same_attrs(env, "f");
    assert!(st.mtime() >= before - 2 && st.mtime() <= after + 2);
    assert!(st.atime() >= before - 2 && st.atime() <= after + 2);
}

fn access(env: &Env) {
    use rustix::fs::Access;
    let acc =
        |rel: &str, a: Access| rustix::fs::access(env.v(rel), a).map_err(std::io::Error::from);

    fs::write(env.v("rw"), b"x").unwrap();
    chmod_path(&env.v("rw"), 0o644);
    acc("rw", Access::EXISTS).unwrap();
    acc("rw", Access::READ_OK).unwrap();
    acc("rw", Access::WRITE_OK).unwrap();
    acc("rw", Access::READ_OK | Access::WRITE_OK).unwrap();
    expect_err(
        acc("rw", Access::EXEC_OK),
        libc::EACCES,
        "X_OK on 0644 as root",
    );

    // Root reads and writes a mode-000 file, but may not execute it.
    fs::write(env.v("none"), b"x").unwrap();
    chmod_path(&env.v("none"), 0o000);
    acc("none", Access::READ_OK).unwrap();
    acc("none", Access::WRITE_OK).unwrap();
    expect_err(
        acc("none", Access::EXEC_OK),
        libc::EACCES,
        "X_OK on 0000 as root",
    );
    // ...and really can read it.
    assert_eq!(fs::read(env.v("none")).unwrap(), b"x");

    fs::write(env.v("x"), b"x").unwrap();
    chmod_path(&env.v("x"), 0o100);
    acc("x", Access::EXEC_OK).unwrap();
    acc("x", Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK).unwrap();

    // Root may search a mode-000 directory.
    fs::create_dir(env.v("d")).unwrap();
    chmod_path(&env.v("d"), 0o000);
    acc("d", Access::READ_OK | Access::WRITE_OK | Access::EXEC_OK).unwrap();

    expect_err(
        acc("missing", Access::EXISTS),
        libc::ENOENT,
        "F_OK on a missing name",
    );
}

fn statfs(env: &Env) {
    fs::create_dir(env.v("sub")).unwrap();
    for rel in ["", "sub"] {
        let v = rustix::fs::statvfs(env.v(rel)).unwrap();
        let b = rustix::fs::statvfs(&env.backing).unwrap();
        assert_eq!(v.f_bsize, b.f_bsize, "f_bsize");
        assert_eq!(v.f_frsize, b.f_frsize, "f_frsize");
        assert_eq!(v.f_blocks, b.f_blocks, "f_blocks");
        assert_eq!(v.f_files, b.f_files, "f_files");
        assert_eq!(v.f_namemax, b.f_namemax, "f_namemax");
        // Free counts move while other programs use the disk: allow 2% of the total.
        let tol = (b.f_blocks / 50).max(16);
        assert!(
            v.f_bfree.abs_diff(b.f_bfree) <= tol,
            "f_bfree {} vs {}",
            v.f_bfree,
            b.f_bfree
        );
        assert!(
            v.f_bavail.abs_diff(b.f_bavail) <= tol,
            "f_bavail {} vs {}",
            v.f_bavail,
            b.f_bavail
        );
        let ftol = (b.f_files / 50).max(16);
        assert!(
            v.f_ffree.abs_diff(b.f_ffree) <= ftol,
            "f_ffree {} vs {}",
            v.f_ffree,
            b.f_ffree
        );
        assert!(v.f_bavail <= v.f_bfree && v.f_bfree <= v.f_blocks);
    }
}
