//! The backing tree is the boundary: nothing a program does through the mount makes the daemon
//! (which runs as root) read, write, chmod, chown, link or remove anything outside BACKING, and with
//! allow_other a user can do through the mount exactly what the backing's permissions let them.
//!
//! Each test has an `outside` directory next to the backing directory, on the same filesystem
//! (so hard links and renames between the two work), root's and mode 0700, with files, extended
//! attributes and a subdirectory; a snapshot of it (every entry's type, mode, owner, link count,
//! size, contents or link text, mtime, ctime and extended attributes) taken before must equal one
//! taken after. ctime moves with every change to an inode (chmod, chown, xattrs, links, writes),
//! so "nothing outside changed" is exact.
//!
//! - Names: the daemon takes only single components (`fs::check_name` unit test); names made of
//!   dots are ordinary names inside the backing tree; the one ".." it answers (LOOKUP "..", when
//!   the kernel reconnects a directory opened by file handle) never leads out of the tree: a
//!   directory moved out of BACKING behind the mount's back is ESTALE through the mount.
//! - Symlinks in the backing tree that point outside: the client sees the link text and follows it
//!   itself, in its own view (the result is not on the mount); every operation on the link itself
//!   (l*xattr, lchown, utimensat and fchmodat with AT_SYMLINK_NOFOLLOW, link, rename, unlink,
//!   O_NOFOLLOW) touches the link, never its target.
//! - A symlink swapped in during operations: while a user (allow_other) creates, chmods, chowns,
//!   truncates, writes, sets xattrs, renames, links and removes names in a directory, a thread
//!   swaps that directory, in the backing tree, with a symlink to a directory outside
//!   (renameat2 RENAME_EXCHANGE, over and over). Outside nothing changes; in the default cache
//!   mode and with `--cache never` (a LOOKUP at every path walk). The user cannot reach `outside`
//!   through its own path walks (0700, root's), so only the daemon could change it.
//! - A hard link in the backing tree to a file outside is that file (one inode): writes and chmod
//!   through the mount change it, as they would through any of its names; unlinking or renaming
//!   over the name in the backing tree leaves the file outside intact, and new links are made in
//!   the backing tree.
//! - allow_other: as a test user, reading, writing, truncating, chmod, chown, creating, removing
//!   and renaming what the backing's mode bits and ACLs deny fail as on the backing filesystem
//!   itself, extended attributes included (user.* by the file's permissions, trusted.* hidden and
//!   refused, security.* refused, ACLs set only by the owner); each check runs on a plain
//!   directory, through a mount and through a `--passthrough` mount, with the same results.

#[path = "common/file_handles.rs"]
mod file_handles;
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

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fs_util::{expect_err, expect_errno, lstat};
use rustix::fs::{AtFlags, RenameFlags, Timespec, Timestamps};
use users::{assert_errno, one, run_as, setfacl, user_a, user_b};

// ---------------------------------------------------------------------------------------------
// The outside directory and its snapshot

/// One entry of a snapshot: everything a change to it would change, and its access time, which
/// a read of it changes (see [`before`]).
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    atime: (i64, i64),
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// A file's contents; empty for a directory (its entries are keys) and a symlink (readlink(2)
    /// would update its access time: its size stands for its text).
    data: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

type Snapshot = BTreeMap<PathBuf, Entry>;

/// The extended attributes of `path` itself (a symlink's own, not its target's).
fn lxattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 64 << 10];
    let n = rustix::fs::llistxattr(path, &mut names[..])
        .unwrap_or_else(|e| panic!("llistxattr {}: {e}", path.display()));
    names[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|name| {
            let name = String::from_utf8_lossy(name).into_owned();
            let mut value = vec![0u8; 64 << 10];
            let n = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..])
                .unwrap_or_else(|e| panic!("lgetxattr {} {name}: {e}", path.display()));
            value.truncate(n);
            (name, value)
        })
        .collect()
}

/// Opens `path` for reading without updating its access time (root may).
fn open_noatime(path: &Path, dir: bool) -> fs::File {
    use rustix::fs::OFlags;
    let kind = if dir {
        OFlags::DIRECTORY
    } else {
        OFlags::empty()
    };
    let flags = OFlags::RDONLY | OFlags::NOATIME | OFlags::NOFOLLOW | OFlags::CLOEXEC | kind;
    rustix::fs::open(path, flags, rustix::fs::Mode::empty())
        .unwrap_or_else(|e| panic!("open {} O_NOATIME: {e}", path.display()))
        .into()
}

/// Every entry under `root` (itself included, as ""), without following symlinks, read without
/// touching access times.
fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let m = lstat(&path);
        let mut data = Vec::new();
        if m.is_file() {
            std::io::Read::read_to_end(&mut open_noatime(&path, false), &mut data).unwrap();
        } else if m.is_dir() {
            let dir = rustix::fs::Dir::read_from(open_noatime(&path, true)).unwrap();
            for e in dir {
                let name = e.unwrap().file_name().to_bytes().to_vec();
                if name != b"." && name != b".." {
                    todo.push(path.join(std::ffi::OsString::from_vec(name)));
                }
            }
        }
        let entry = Entry {
            atime: (m.atime(), m.atime_nsec()),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            nlink: m.nlink(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            data,
            xattrs: lxattrs(&path),
        };
        out.insert(path.strip_prefix(root).unwrap().to_path_buf(), entry);
    }
    out
}

/// Sets the access time of every entry under `root` far back (before its mtime), then takes a
/// snapshot: from then on a read of any entry (a file's data, a directory's listing, a link's
/// text) updates its access time (relatime), so a snapshot taken after shows it.
fn before(root: &Path) -> Snapshot {
    let old = Timespec {
        tv_sec: 978_307_200,
        tv_nsec: 0,
    };
    let omit = Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_OMIT,
    };
    let times = Timestamps {
        last_access: old,
        last_modification: omit,
    };
    for path in snapshot(root).keys() {
        let p = root.join(path);
        rustix::fs::utimensat(rustix::fs::CWD, &p, &times, AtFlags::SYMLINK_NOFOLLOW)
            .unwrap_or_else(|e| panic!("set the atime of {}: {e}", p.display()));
    }
    snapshot(root)
}

#[track_caller]
fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    if before == after {
        return;
    }
    let mut diffs = Vec::new();
    for (p, e) in before {
        match after.get(p) {
            None => diffs.push(format!("{} removed", p.display())),
            Some(a) if a != e => diffs.push(format!(
                "{} changed:\n  was {e:?}\n  now {a:?}",
                p.display()
            )),
            _ => {}
        }
    }
    for p in after.keys().filter(|p| !before.contains_key(*p)) {
        diffs.push(format!("{} appeared", p.display()));
    }
    panic!("{what}: changed:\n{}", diffs.join("\n"));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, p.display()));
}

fn setxattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {} {name}: {e}", p.display()));
}

/// Fills `outside`: root's, 0700, with `secret` (and xattrs), `shared` (for hard links), and
/// `dir` holding the names the churn below uses.
fn fill_outside(outside: &Path) {
    fs::create_dir(outside).unwrap();
    fs::write(outside.join("secret"), b"outside secret").unwrap();
    setxattr(&outside.join("secret"), "user.o", b"outside");
    setxattr(&outside.join("secret"), "trusted.o", b"outside");
    fs::write(outside.join("shared"), b"shared file").unwrap();
    fs::create_dir(outside.join("dir")).unwrap();
    for i in 0..8 {
        for name in ["f", "g"] {
            let p = outside.join(format!("dir/{name}{i}"));
            fs::write(&p, format!("outside {name}{i}")).unwrap();
            setxattr(&p, "user.churn", b"outside");
        }
    }
    fs::create_dir(outside.join("dir/sub")).unwrap();
    chmod(&outside.join("dir"), 0o755);
    chmod(outside, 0o700);
}

/// A mount (with `args`) whose backing directory `setup` fills, and the `outside` directory next
/// to it. The temp dir above both is opened for the test users (0755).
struct World {
    m: mount::Mounted,
    outside: PathBuf,
}

impl World {
    fn new(args: &[&str], setup: impl FnOnce(&Path, &Path)) -> World {
        let mut outside = PathBuf::new();
        let m = mount::Mounted::spawn(args, |backing| {
            let parent = backing.parent().unwrap();
            chmod(parent, 0o755);
            chmod(backing, 0o755);
            outside = parent.join("outside");
            fill_outside(&outside);
            setup(backing, &outside);
        });
        World { m, outside }
    }

    fn v(&self, rel: &str) -> PathBuf {
        self.m.mountpoint().join(rel)
    }

    fn b(&self, rel: &str) -> PathBuf {
        self.m.backing().join(rel)
    }

    fn o(&self, rel: &str) -> PathBuf {
        self.outside.join(rel)
    }

    fn vs(&self, rel: &str) -> String {
        self.v(rel).to_str().unwrap().to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// Names made of dots are ordinary names: created, renamed, linked and removed through the mount,
/// they land in the backing directory and nowhere else.
#[test]
fn dotted_names_stay_in_the_backing() {
    let w = World::new(&[], |_, _| {});
    let before = before(&w.outside);
    for name in ["...", "..x", "x..", ". .", ".. ", "...."] {
        fs::write(w.v(name), name).unwrap();
        assert_eq!(
            fs::read(w.b(name)).unwrap(),
            name.as_bytes(),
            "{name:?} in the backing"
        );
        fs::create_dir(w.v(&format!("{name}d"))).unwrap();
        fs::write(w.v(&format!("{name}d/{name}")), "inner").unwrap();
        assert!(
            w.b(&format!("{name}d/{name}")).is_file(),
            "{name:?} in {name:?}d"
        );
        fs::rename(w.v(name), w.v(&format!("{name}d/{name}"))).unwrap();
        fs::hard_link(w.v(&format!("{name}d/{name}")), w.v(name)).unwrap();
        assert_eq!(lstat(&w.b(name)).nlink(), 2, "{name:?} linked back");
        fs::remove_file(w.v(name)).unwrap();
        fs::remove_dir_all(w.v(&format!("{name}d"))).unwrap();
    }
    assert_unchanged(&before, &snapshot(&w.outside), "dotted names");
    assert!(
        fs::read_dir(w.b("")).unwrap().next().is_none(),
        "the backing is empty again"
    );
}

/// A directory moved out of the backing tree behind the mount's back (on the backing filesystem,
/// by someone who can write both places) cannot be reached again through a file handle the
/// mount gave: reconnecting it asks the daemon for its parent (LOOKUP ".."), which is outside, so
/// the answer is ESTALE; the directory stays reachable while it is inside. No directory outside
/// is listed (were the daemon to answer with the parent outside, the kernel would list that
/// parent through the daemon to find the directory's name in it, and so on upwards).
#[test]
fn directory_moved_out_of_the_backing_is_stale() {
    let w = World::new(&[], |b, _| {
        fs::create_dir_all(b.join("d/inner")).unwrap();
        fs::write(b.join("d/inner/f"), b"in d").unwrap();
        fs::create_dir_all(b.join("stay/inner")).unwrap();
    });
    let h_d = file_handles::handle_of(&w.v("d"));
    let h_inner = file_handles::handle_of(&w.v("d/inner"));
    let h_stay = file_handles::handle_of(&w.v("stay/inner"));
    fs::rename(w.b("d"), w.o("moved")).unwrap();
    // The backing filesystem's own dentries of these directories stay cached (held open): when
    // the daemon opens one by its handle, the kernel need not list its parents to connect it.
    // Only the mount's are dropped.
    let top = w.outside.parent().unwrap().to_path_buf();
    let pins: Vec<_> = [
        top.clone(),
        w.outside.clone(),
        w.o("moved"),
        w.o("moved/inner"),
        w.b(""),
        w.b("stay"),
        w.b("stay/inner"),
    ]
    .iter()
    .map(|p| open_noatime(p, true))
    .collect();
    // The directory holding `outside` and the backing directory: listed only if something walked
    // up from `outside`.
    let top_before = before(&top)[Path::new("")].atime;
    let before = before(&w.outside);
    file_handles::drop_caches(&[w.m.mountpoint(), w.m.backing()]);
    let flags = libc::O_RDONLY | libc::O_DIRECTORY;
    for (h, what) in [(&h_d, "d"), (&h_inner, "d/inner")] {
        let r = file_handles::open_by_handle(w.m.mountpoint(), h, flags);
        if let Ok(fd) = &r {
            let listed: Vec<_> = fs::read_dir(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            ))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
            panic!(
                "{what}, moved outside, opened by handle through the mount; it lists {listed:?}"
            );
        }
        expect_err(r, libc::ESTALE, what);
    }
    assert_unchanged(&before, &snapshot(&w.outside), "open_by_handle_at");
    assert_eq!(
        (lstat(&top).atime(), lstat(&top).atime_nsec()),
        top_before,
        "the directory above `outside` was listed"
    );
    let stay = file_handles::open_by_handle(w.m.mountpoint(), &h_stay, flags);
    assert!(
        stay.is_ok(),
        "a directory still inside opens by handle: {stay:?}"
    );
    drop(pins);
}

// ---------------------------------------------------------------------------------------------
// Symlinks pointing outside

/// The errno (0 for success) of `op` on a symlink made for it in a plain scratch directory: what
/// the backing filesystem does, to compare the mount with.
fn native_errno(op: impl Fn(&Path) -> rustix::io::Result<()>) -> i32 {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("l");
    fs::write(dir.path().join("t"), b"t").unwrap();
    symlink(dir.path().join("t"), &link).unwrap();
    match op(&link) {
        Ok(()) => 0,
        Err(e) => e.raw_os_error(),
    }
}

fn errno_of(r: rustix::io::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.raw_os_error(),
    }
}

/// Symlinks in the backing tree that point outside (absolute and relative text, to a file and
/// to a directory): the client reads the text and follows it itself; every operation on the link
/// itself acts on the link.
#[test]
fn symlinks_to_outside_are_not_followed_by_the_daemon() {
    let w = World::new(&[], |b, o| {
        symlink(o.join("secret"), b.join("abs")).unwrap();
        symlink("../outside/secret", b.join("rel")).unwrap();
        symlink(o.join("dir"), b.join("dirlink")).unwrap();
    });
    let before = before(&w.outside);
    let mnt_dev = lstat(w.m.mountpoint()).dev();
    for name in ["abs", "rel", "dirlink"] {
        let v = w.v(name);
        assert_eq!(
            fs::read_link(&v).unwrap(),
            fs::read_link(w.b(name)).unwrap(),
            "{name}: text"
        );
        assert!(
            lstat(&v).file_type().is_symlink(),
            "{name} is a symlink through the mount"
        );
        // Followed by the client's own path walk: the result is not on the mount.
        let target = fs::metadata(&v).unwrap();
        assert_ne!(target.dev(), mnt_dev, "{name} followed leads off the mount");
        // O_NOFOLLOW refuses it; O_PATH | O_NOFOLLOW is the link itself.
        let r = rustix::fs::open(
            &v,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW,
            rustix::fs::Mode::empty(),
        );
        expect_errno(r, libc::ELOOP, &format!("{name} with O_NOFOLLOW"));
        let fd = rustix::fs::open(
            &v,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        assert_eq!(
            rustix::fs::fstat(&fd).unwrap().st_mode & libc::S_IFMT,
            libc::S_IFLNK
        );
        // The link's own xattrs: none of the target's.
        assert!(
            lxattrs(&v).is_empty(),
            "{name}: llistxattr shows {:?}",
            lxattrs(&v)
        );
        let mut buf = [0u8; 64];
        expect_errno(
            rustix::fs::lgetxattr(&v, "trusted.o", &mut buf[..]).map(|_| ()),
            libc::ENODATA,
            "lgetxattr trusted.o",
        );
        rustix::fs::lsetxattr(&v, "trusted.link", b"mine", rustix::fs::XattrFlags::empty())
            .unwrap();
        assert_eq!(
            lxattrs(&w.b(name)).get("trusted.link").map(Vec::as_slice),
            Some(&b"mine"[..]),
            "{name}: set on the link"
        );
        rustix::fs::lremovexattr(&v, "trusted.link").unwrap();
        assert!(
            lxattrs(&w.b(name)).is_empty(),
            "{name}: removed from the link"
        );
        // user.* on a symlink: refused, as on a local filesystem.
        let r = rustix::fs::lsetxattr(&v, "user.x", b"x", rustix::fs::XattrFlags::empty());
        expect_errno(r, libc::EPERM, "user.* on a symlink");
        // lchown: the link's owner.
        rustix::fs::chownat(
            rustix::fs::CWD,
            &v,
            Some(rustix::fs::Uid::from_raw(4321)),
            Some(rustix::fs::Gid::from_raw(4322)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let bl = lstat(&w.b(name));
        assert_eq!(
            (bl.uid(), bl.gid()),
            (4321, 4322),
            "{name}: the link's owner changed"
        );
        // utimensat(AT_SYMLINK_NOFOLLOW): the link's times.
        let t = Timespec {
            tv_sec: 1_000_000,
            tv_nsec: 7,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(rustix::fs::CWD, &v, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(
            (lstat(&w.b(name)).mtime(), lstat(&w.b(name)).mtime_nsec()),
            (1_000_000, 7),
            "{name}: the link's mtime"
        );
        // fchmodat(AT_SYMLINK_NOFOLLOW): what the local filesystem says (Linux: EOPNOTSUPP).
        let chmod_link = |p: &Path| {
            rustix::fs::chmodat(
                rustix::fs::CWD,
                p,
                rustix::fs::Mode::from_raw_mode(0o600),
                AtFlags::SYMLINK_NOFOLLOW,
            )
        };
        assert_eq!(
            errno_of(chmod_link(&v)),
            native_errno(chmod_link),
            "{name}: fchmodat NOFOLLOW"
        );
        // link(2) without AT_SYMLINK_FOLLOW links the symlink; rename and unlink move and remove it.
        let hard = w.v(&format!("{name}.hard"));
        rustix::fs::linkat(
            rustix::fs::CWD,
            &v,
            rustix::fs::CWD,
            &hard,
            AtFlags::empty(),
        )
        .unwrap();
        assert!(
            lstat(&w.b(&format!("{name}.hard")))
                .file_type()
                .is_symlink(),
            "{name}: linked the link"
        );
        fs::rename(&hard, w.v(&format!("{name}.moved"))).unwrap();
        fs::remove_file(w.v(&format!("{name}.moved"))).unwrap();
        assert_eq!(lstat(&w.b(name)).nlink(), 1);
    }
    for name in ["abs", "rel", "dirlink"] {
        fs::remove_file(w.v(name)).unwrap();
    }
    assert_unchanged(&before, &snapshot(&w.outside), "operations on symlinks");
}

// ---------------------------------------------------------------------------------------------
// A symlink swapped in during operations

/// While `user` churns through the mount in `d` (its own directory), a thread swaps `d`, in the
/// backing tree, with a symlink to `outside/dir`, over and over. Outside nothing may change.
fn swap_race(args: &[&str]) {
    let a = user_a();
    let w = World::new(args, |b, _| {
        fs::create_dir(b.join("d")).unwrap();
        std::os::unix::fs::chown(b.join("d"), Some(a.uid), Some(a.gid)).unwrap();
    });
    // A name the kernel looked up, replaced in the backing by a symlink to outside: operations
    // through the cached name go to the original file (the daemon holds that very object), or,
    // once the kernel looks the name up again, follow the link in the user's view (EACCES).
    let r = run_as(
        a,
        &[
            format!("create|{}|644", w.vs("d/victim")),
            format!("write|{}|mine", w.vs("d/victim")),
        ],
    );
    assert_eq!(r, ["ok", "ok"], "user creates d/victim");
    let before = before(&w.outside);
    fs::rename(w.b("d/victim"), w.b("d/victim.orig")).unwrap();
    symlink(w.o("secret"), w.b("d/victim")).unwrap();
    let ops: Vec<String> = [
        "chmod|{}|600",
        "truncate|{}|2",
        "setxattr|{}|user.z|v",
        "write|{}|changed",
        "read|{}",
    ]
    .iter()
    .map(|op| op.replace("{}", &w.vs("d/victim")))
    .collect();
    let r = run_as(a, &ops);
    eprintln!("operations on a name swapped for a symlink: {r:?}");
    assert_unchanged(
        &before,
        &snapshot(&w.outside),
        "operations on a swapped name",
    );
    fs::remove_file(w.b("d/victim")).unwrap();

    // The race.
    let stop = AtomicBool::new(false);
    let swaps = AtomicU64::new(0);
    let churn = std::thread::scope(|s| {
        s.spawn(|| {
            let (d, link) = (w.b("d"), w.b("d.link"));
            while !stop.load(Ordering::Relaxed) {
                symlink(w.o("dir"), &link).unwrap();
                let swap = || {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &link,
                        rustix::fs::CWD,
                        &d,
                        RenameFlags::EXCHANGE,
                    )
                    .expect("renameat2 RENAME_EXCHANGE")
                };
                swap(); // d is the symlink now
                std::thread::yield_now();
                swap(); // d is the directory again
                fs::remove_file(&link).unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        });
        // The churn starts once the swapper has swapped (so that they overlap however the two
        // are scheduled).
        while swaps.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        let r = one(a, format!("churn|{}|300", w.vs("d")));
        stop.store(true, Ordering::Relaxed);
        r
    });
    eprintln!(
        "{args:?}: churn {churn}; {} swaps",
        swaps.load(Ordering::Relaxed)
    );
    assert!(churn.starts_with("ok "), "churn: {churn}");
    assert!(swaps.load(Ordering::Relaxed) > 0, "the swapper ran");
    assert!(lstat(&w.b("d")).is_dir(), "d is the directory again");
    assert_unchanged(&before, &snapshot(&w.outside), "the swap race");
    // The mount still answers.
    fs::write(w.v("after"), b"still here").unwrap();
    assert_eq!(fs::read(w.b("after")).unwrap(), b"still here");
}

#[test]
fn symlink_swapped_in_during_operations() {
    swap_race(&["-o", "allow_other"]);
}

/// With `--cache never` the kernel looks every name up again at each path walk, so the daemon
/// meets the symlink as often as possible.
#[test]
fn symlink_swapped_in_during_operations_cache_never() {
    swap_race(&["-o", "allow_other", "--cache", "never"]);
}

// ---------------------------------------------------------------------------------------------
// Hard links

/// A hard link in the backing tree to a file outside is that file: one inode, two names. Writes
/// and chmod through the mount change it (as through any of its names); removing or replacing the
/// name inside leaves the file outside with its contents; links made through the mount are made
/// inside.
#[test]
fn hard_link_to_outside_is_the_same_file() {
    let w = World::new(&[], |b, o| {
        fs::hard_link(o.join("shared"), b.join("hl")).unwrap();
        fs::write(b.join("other"), b"other").unwrap();
    });
    assert_eq!(fs::read(w.v("hl")).unwrap(), b"shared file");
    assert_eq!(lstat(&w.v("hl")).nlink(), 2);
    assert_eq!(
        lstat(&w.v("hl")).ino(),
        lstat(&w.o("shared")).ino(),
        "one inode"
    );
    let mut f = fs::OpenOptions::new().append(true).open(w.v("hl")).unwrap();
    f.write_all(b", written through the mount").unwrap();
    drop(f);
    chmod(&w.v("hl"), 0o640);
    let o = lstat(&w.o("shared"));
    assert_eq!(
        fs::read(w.o("shared")).unwrap(),
        b"shared file, written through the mount"
    );
    assert_eq!(o.mode() & 0o7777, 0o640, "the same inode");
    let before = before(&w.outside);
    // New links are made in the backing tree.
    fs::hard_link(w.v("hl"), w.v("hl2")).unwrap();
    assert_eq!(lstat(&w.b("hl2")).ino(), o.ino());
    fs::remove_file(w.v("hl2")).unwrap();
    // Renaming over the name inside, and removing it, leave the file outside as it is.
    fs::rename(w.v("other"), w.v("hl")).unwrap();
    fs::remove_file(w.v("hl")).unwrap();
    let after = snapshot(&w.outside);
    // Only the link count (and with it the ctime) of `shared` may differ: it lost its names inside.
    let mut expected = before;
    let shared = expected.get_mut(Path::new("shared")).unwrap();
    shared.nlink = 1;
    shared.ctime = after[Path::new("shared")].ctime;
    assert_unchanged(&expected, &after, "links in the backing to a file outside");
    assert_eq!(
        fs::read(w.o("shared")).unwrap(),
        b"shared file, written through the mount"
    );
}

// ---------------------------------------------------------------------------------------------
// allow_other: what the backing's permissions deny

/// Where a permission check runs: a plain directory, or a mount with allow_other.
struct Place {
    view: PathBuf,
    backing: PathBuf,
    _keep: Result<mount::Mounted, tempfile::TempDir>,
}

impl Place {
    fn v(&self, rel: &str) -> PathBuf {
        self.view.join(rel)
    }
    fn vs(&self, rel: &str) -> String {
        self.v(rel).to_str().unwrap().to_owned()
    }
}

fn plain() -> Place {
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-plain-")
        .tempdir()
        .unwrap();
    chmod(dir.path(), 0o755);
    let path = dir.path().canonicalize().unwrap();
    Place {
        view: path.clone(),
        backing: path,
        _keep: Err(dir),
    }
}

fn mounted(args: &[&str]) -> Place {
    let m = mount::Mounted::with_args(&[&["-o", "allow_other"][..], args].concat());
    chmod(m.backing().parent().unwrap(), 0o755);
    chmod(m.backing(), 0o755);
    Place {
        view: m.mountpoint().to_path_buf(),
        backing: m.backing().to_path_buf(),
        _keep: Ok(m),
    }
}

/// Root's objects, and what user A may not do to them.
fn user_denied(p: &Place) {
    let a = user_a();
    fs::write(p.v("secret"), b"s3cret").unwrap();
    chmod(&p.v("secret"), 0o600);
    setxattr(&p.v("secret"), "user.k", b"sv");
    fs::write(p.v("public"), b"pub").unwrap();
    chmod(&p.v("public"), 0o644);
    setxattr(&p.v("public"), "user.k", b"pv");
    setxattr(&p.v("public"), "trusted.t", b"tv");
    fs::create_dir(p.v("rootdir")).unwrap();
    fs::write(p.v("rootdir/f"), b"f").unwrap();
    fs::create_dir(p.v("private")).unwrap();
    fs::write(p.v("private/f"), b"private").unwrap();
    chmod(&p.v("private"), 0o700);
    let backing_before = before(&p.backing);
    let cases: &[(&str, &str)] = &[
        ("read|secret", "err EACCES"),
        ("write|public|x", "err EACCES"),
        ("open_trunc|public", "err EACCES"),
        ("truncate|public|0", "err EACCES"),
        ("chmod|public|777", "err EPERM"),
        ("chown|public|UID|GID", "err EPERM"),
        ("unlink|rootdir/f", "err EACCES"),
        ("create|rootdir/new|644", "err EACCES"),
        ("mkdir|rootdir/new|755", "err EACCES"),
        ("rename|rootdir/f|rootdir/g", "err EACCES"),
        ("listdir|private", "err EACCES"),
        ("read|private/f", "err EACCES"),
        ("stat|private/f", "err EACCES"),
        ("getxattr|secret|user.k", "err EACCES"),
        ("getxattr|public|user.k", "ok pv"),
        ("setxattr|public|user.k|x", "err EACCES"),
        ("removexattr|public|user.k", "err EACCES"),
        ("getxattr|public|trusted.t", "err ENODATA"),
        ("setxattr|public|trusted.t|x", "err EPERM"),
        ("setxattr|public|trusted.new|x", "err EPERM"),
        ("setxattr|public|security.arsyncfs|x", "err EPERM"),
        // trusted.* names are listed only to a caller with CAP_SYS_ADMIN.
        ("listxattr|public", "ok user.k"),
        ("setfacl|public|u:UID:rw", "err EPERM"),
        ("removexattr|public|system.posix_acl_access", "err EPERM"),
    ];
    let expand = |s: &str| {
        let s = s
            .replace("UID", &a.uid.to_string())
            .replace("GID", &a.gid.to_string());
        let mut parts: Vec<String> = s.split('|').map(str::to_owned).collect();
        // Arguments that name objects are paths under the place (the first, and a rename's second).
        parts[1] = p.vs(&parts[1]);
        if parts[0] == "rename" {
            parts[2] = p.vs(&parts[2]);
        }
        parts.join("|")
    };
    let ops: Vec<String> = cases.iter().map(|(op, _)| expand(op)).collect();
    let got = run_as(a, &ops);
    let wrong: Vec<String> = cases
        .iter()
        .zip(&got)
        .filter(|((_, want), got)| got != want)
        .map(|((op, want), got)| format!("{op}: got {got}, want {want}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "as {} in {}:\n{}",
        a.name,
        p.view.display(),
        wrong.join("\n")
    );
    assert_unchanged(
        &backing_before,
        &snapshot(&p.backing),
        "what the user was denied",
    );

    // ACLs set by the owner decide: read granted on `secret`, everything denied on `public`.
    setfacl(&["-m", &format!("u:{}:r", a.uid)], &p.v("secret"));
    setfacl(&["-m", &format!("u:{}:---", a.uid)], &p.v("public"));
    let got = run_as(
        a,
        &[
            format!("read|{}", p.vs("secret")),
            format!("getxattr|{}|user.k", p.vs("secret")),
            format!("write|{}|x", p.vs("secret")),
            format!("read|{}", p.vs("public")),
            format!("getxattr|{}|user.k", p.vs("public")),
        ],
    );
    assert_eq!(
        got,
        [
            "ok s3cret",
            "ok sv",
            "err EACCES",
            "err EACCES",
            "err EACCES"
        ],
        "ACLs as {}",
        a.name
    );
    // The other user is not named in the ACLs: the mode bits decide.
    let b = user_b();
    assert_errno(
        &one(b, format!("read|{}", p.vs("secret"))),
        "EACCES",
        "B reads secret",
    );
    assert_eq!(
        one(b, format!("read|{}", p.vs("public"))),
        "ok pub",
        "B reads public"
    );
}

#[test]
fn user_denied_plain() {
    user_denied(&plain());
}

#[test]
fn user_denied_mount() {
    user_denied(&mounted(&[]));
}

#[test]
fn user_denied_mount_passthrough() {
    user_denied(&mounted(&["--passthrough"]));
}
