//! Directories through the mount: readdir of 100,000 entries (every name once, `.` and `..`,
//! stable offsets for seekdir), readdir with a tiny getdents buffer, d_type and d_ino, readdirplus
//! (`ls -l`: every entry's metadata matches the backing), listings that follow changes, and a
//! directory removed while open. Each check runs on a plain directory and through arsyncfs (see
//! tests/common/fs_util.rs).

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::mem::MaybeUninit;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirEntryExt, MetadataExt, symlink};
use std::path::Path;

use fs_util::*;
use rustix::fs::{CWD, Dir, FileType, Mode, OFlags};

fs_tests!(
    readdir_100k,
    readdir_tiny_buffer,
    readdir_types_dots,
    readdirplus_metadata,
    readdir_follows_changes,
    readdir_removed_dir,
);

fn open_dir(path: &Path) -> rustix::fd::OwnedFd {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap_or_else(|e| panic!("open dir {}: {e}", path.display()))
}

/// Empty regular files `prefix{i}` for i in 0..n, made in `dir` (the backing dir) with mknod,
/// which is much cheaper than open+close.
fn make_files(dir: &Path, prefix: &str, n: usize) -> BTreeSet<Vec<u8>> {
    let d = open_dir(dir);
    (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}");
            rustix::fs::mknodat(
                &d,
                &name,
                FileType::RegularFile,
                Mode::from_raw_mode(0o644),
                0,
            )
            .unwrap_or_else(|e| panic!("mknod {name}: {e}"));
            name.into_bytes()
        })
        .collect()
}

struct RawEntry {
    name: Vec<u8>,
    ino: u64,
    ty: FileType,
    /// telldir() after this entry: the offset to seekdir() to for the entries after it.
    next_off: i64,
}

/// Reads a whole directory stream with readdir(3) semantics (getdents64 underneath).
fn read_stream(dir: &mut Dir) -> Vec<RawEntry> {
    let mut out = Vec::new();
    while let Some(e) = dir.read() {
        let e = e.unwrap_or_else(|e| panic!("readdir: {e}"));
        out.push(RawEntry {
            name: e.file_name().to_bytes().to_vec(),
            ino: e.ino(),
            ty: e.file_type(),
            next_off: e.offset(),
        });
    }
    out
}

/// Asserts that `listed` is exactly `want` plus `.` and `..`, every name once.
fn assert_listing(listed: &[RawEntry], want: &BTreeSet<Vec<u8>>, what: &str) {
    let mut counts: HashMap<&[u8], usize> = HashMap::new();
    for e in listed {
        *counts.entry(&e.name).or_default() += 1;
    }
    let dups: Vec<_> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, c)| (String::from_utf8_lossy(n).into_owned(), *c))
        .take(10)
        .collect();
    assert!(
        dups.is_empty(),
        "{what}: names listed more than once: {dups:?}"
    );
    assert!(counts.contains_key(&b"."[..]), "{what}: '.' missing");
    assert!(counts.contains_key(&b".."[..]), "{what}: '..' missing");
    let missing: Vec<_> = want
        .iter()
        .filter(|n| !counts.contains_key(n.as_slice()))
        .take(10)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: names missing (first 10): {missing:?}"
    );
    assert_eq!(
        listed.len(),
        want.len() + 2,
        "{what}: number of entries (with . and ..)"
    );
}

/// Every name once, `.` and `..`, and seekdir to any telldir value continues right after it.
fn readdir_100k(env: &Env) {
    const N: usize = 100_000;
    fs::create_dir(env.b("big")).unwrap();
    let want = make_files(&env.b("big"), "entry-with-a-longish-name-", N);

    let mut dir = Dir::new(open_dir(&env.v("big"))).unwrap();
    let listed = read_stream(&mut dir);
    assert_listing(&listed, &want, "readdir of 100k entries");
    for e in &listed {
        if e.name != b"." && e.name != b".." {
            assert_eq!(
                e.ty,
                FileType::RegularFile,
                "d_type of {:?}",
                String::from_utf8_lossy(&e.name)
            );
        }
    }

    // seekdir(telldir) within the same stream, at the start, in the middle and at the end.
    for k in [0, 1, 2, 3, 999, N / 2, N - 7, N] {
        dir.seek(listed[k].next_off).unwrap();
        let rest: Vec<Vec<u8>> = std::iter::from_fn(|| dir.read())
            .take(3)
            .map(|e| e.unwrap().file_name().to_bytes().to_vec())
            .collect();
        let want_rest: Vec<Vec<u8>> = listed[k + 1..]
            .iter()
            .take(3)
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(
            rest, want_rest,
            "entries after seekdir to the offset of entry {k}"
        );
    }
    // Offset 0 is the start again.
    dir.seek(0).unwrap();
    assert_eq!(
        dir.read().unwrap().unwrap().file_name().to_bytes(),
        &listed[0].name[..],
        "seekdir(0)"
    );

    // d_ino agrees with st_ino for a sample of entries.
    for e in listed.iter().step_by(9973) {
        let p = env.v("big").join(std::ffi::OsStr::from_bytes(&e.name));
        assert_eq!(e.ino, lstat(&p).ino(), "d_ino vs st_ino of {}", p.display());
    }

    // std::fs::read_dir (readdir(3) through glibc) sees every name once.
    let mut seen = BTreeSet::new();
    for e in fs::read_dir(env.v("big")).unwrap() {
        let name = e.unwrap().file_name().into_vec();
        assert!(seen.insert(name.clone()), "read_dir listed {name:?} twice");
    }
    assert!(
        seen == want,
        "read_dir: {} names, want {}",
        seen.len(),
        want.len()
    );
}

/// getdents64 with a buffer that holds only a few entries: many calls, each continuing where the
/// previous one stopped.
fn readdir_tiny_buffer(env: &Env) {
    fs::create_dir(env.b("d")).unwrap();
    let want = make_files(&env.b("d"), "f", 3000);
    let fd = open_dir(&env.v("d"));
    let mut buf = [MaybeUninit::<u8>::uninit(); 200];
    let mut raw = rustix::fs::RawDir::new(&fd, &mut buf);
    let mut listed = Vec::new();
    while let Some(e) = raw.next() {
        let e = e.unwrap_or_else(|e| panic!("getdents: {e}"));
        listed.push(RawEntry {
            name: e.file_name().to_bytes().to_vec(),
            ino: e.ino(),
            ty: e.file_type(),
            next_off: e.next_entry_cookie() as i64,
        });
    }
    assert_listing(&listed, &want, "getdents with a 200-byte buffer");
}

fn readdir_types_dots(env: &Env) {
    fs::create_dir(env.v("d")).unwrap();
    write_file(env, "d/file", b"x");
    fs::create_dir(env.v("d/sub")).unwrap();
    symlink("file", env.v("d/link")).unwrap();
    rustix::fs::mknodat(
        CWD,
        env.v("d/fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let kinds = [
        ("file", FileType::RegularFile),
        ("sub", FileType::Directory),
        ("link", FileType::Symlink),
        ("fifo", FileType::Fifo),
    ];
    for root in [env.v("d"), env.b("d")] {
        let listed = read_stream(&mut Dir::new(open_dir(&root)).unwrap());
        let by_name: HashMap<Vec<u8>, &RawEntry> =
            listed.iter().map(|e| (e.name.clone(), e)).collect();
        assert_eq!(listed.len(), 6, "{}: . .. and four entries", root.display());
        for (name, ty) in kinds {
            let e = by_name
                .get(name.as_bytes())
                .unwrap_or_else(|| panic!("{name} not listed"));
            assert_eq!(e.ty, ty, "d_type of {name} in {}", root.display());
            assert_eq!(e.ino, lstat(&root.join(name)).ino(), "d_ino of {name}");
        }
        let dot = by_name.get(&b"."[..]).expect(". listed");
        assert_eq!(dot.ino, lstat(&root).ino(), "d_ino of .");
        assert_eq!(dot.ty, FileType::Directory);
        assert_eq!(
            by_name.get(&b".."[..]).expect(".. listed").ty,
            FileType::Directory
        );
        // std's DirEntry::file_type comes from d_type.
        for e in fs::read_dir(&root).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let lt = lstat(&e.path()).file_type();
            assert_eq!(
                (ft.is_file(), ft.is_dir(), ft.is_symlink()),
                (lt.is_file(), lt.is_dir(), lt.is_symlink()),
                "file_type of {:?}",
                e.path()
            );
        }
    }
    // An empty directory lists only . and ..
    fs::create_dir(env.v("empty")).unwrap();
    let listed = read_stream(&mut Dir::new(open_dir(&env.v("empty"))).unwrap());
    let names: BTreeSet<Vec<u8>> = listed.into_iter().map(|e| e.name).collect();
    assert_eq!(names, BTreeSet::from([b".".to_vec(), b"..".to_vec()]));
    assert_eq!(fs::read_dir(env.v("empty")).unwrap().count(), 0);
    // The root lists its entries too.
    let root_names: BTreeSet<OsString> = fs::read_dir(&env.view)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        root_names,
        BTreeSet::from([OsString::from("d"), OsString::from("empty")])
    );
}

/// `ls -l`: list the directory and stat every entry; everything matches the backing.
fn readdirplus_metadata(env: &Env) {
    const N: usize = 2000;
    fs::create_dir(env.b("d")).unwrap();
    for i in 0..N {
        let p = env.b(&format!("d/e{i}"));
        if i % 17 == 0 {
            fs::create_dir(&p).unwrap();
        } else if i % 10 == 0 {
            symlink(format!("e{}", i + 1), &p).unwrap();
            continue;
        } else {
            fs::write(&p, pseudo_random(i as u64, i % 5000)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600 | (i as u32 % 0o100))).unwrap();
        std::os::unix::fs::chown(&p, Some(i as u32 % 7), Some(i as u32 % 5)).unwrap();
        rustix::fs::utimensat(
            CWD,
            &p,
            &rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: 1_000_000 + i as i64,
                    tv_nsec: i as _,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: 2_000_000 + i as i64,
                    tv_nsec: (i * 1000 + 1) as _,
                },
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }
    let mut count = 0;
    for e in fs::read_dir(env.v("d")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let via_entry = e.metadata().unwrap(); // fstatat relative to the open directory
        let via_path = lstat(&e.path());
        let backing = lstat(&env.b("d").join(&name));
        let what = format!("d/{}", name.to_string_lossy());
        assert_same_attrs(&via_entry, &backing, &what);
        assert_same_attrs(&via_path, &backing, &what);
        assert_eq!(e.ino(), via_path.ino(), "{what}: d_ino vs st_ino");
        assert_eq!(via_entry.ino(), via_path.ino());
        if !backing.is_dir() && !backing.file_type().is_symlink() {
            assert_eq!(
                via_path.size(),
                name.to_str().unwrap()[1..].parse::<u64>().unwrap() % 5000
            );
        }
        count += 1;
    }
    assert_eq!(count, N);
}

fn names_of(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn readdir_follows_changes(env: &Env) {
    fs::create_dir(env.v("d")).unwrap();
    let mut want = BTreeSet::new();
    for i in 0..500 {
        write_file(env, &format!("d/f{i}"), b"");
        want.insert(format!("f{i}"));
    }
    assert_eq!(names_of(&env.v("d")), want);
    for i in (0..500).step_by(2) {
        fs::remove_file(env.v(&format!("d/f{i}"))).unwrap();
        want.remove(&format!("f{i}"));
    }
    assert_eq!(names_of(&env.v("d")), want);
    for i in (1..100).step_by(2) {
        fs::rename(env.v(&format!("d/f{i}")), env.v(&format!("d/renamed{i}"))).unwrap();
        want.remove(&format!("f{i}"));
        want.insert(format!("renamed{i}"));
    }
    fs::create_dir(env.v("d/newdir")).unwrap();
    want.insert("newdir".into());
    assert_eq!(names_of(&env.v("d")), want);
    assert_eq!(names_of(&env.b("d")), want);

    // A stream opened before a change still lists every entry that existed throughout exactly once.
    let stable: BTreeSet<String> = want.clone();
    let mut it = fs::read_dir(env.v("d")).unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(
            it.next()
                .unwrap()
                .unwrap()
                .file_name()
                .into_string()
                .unwrap(),
        );
    }
    write_file(env, "d/added-while-listing", b"");
    for e in it {
        seen.push(e.unwrap().file_name().into_string().unwrap());
    }
    let set: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        set.len(),
        seen.len(),
        "a name listed twice while the directory changed"
    );
    assert!(
        stable.is_subset(&set),
        "an unchanged entry was skipped while the directory changed"
    );
}

/// A directory removed while a stream on it is open: reading ends cleanly.
fn readdir_removed_dir(env: &Env) {
    fs::create_dir(env.v("gone")).unwrap();
    write_file(env, "gone/f", b"x");
    let it = fs::read_dir(env.v("gone")).unwrap();
    fs::remove_file(env.v("gone/f")).unwrap();
    fs::remove_dir(env.v("gone")).unwrap();
    assert_absent(env, "gone");
    let rest: Vec<_> = it
        .collect::<Result<Vec<_>, _>>()
        .expect("readdir of a removed directory");
    assert!(
        rest.is_empty(),
        "entries listed in a removed directory: {rest:?}"
    );

    // The open directory's fd still answers fstat, and fsync.
    fs::create_dir(env.v("gone2")).unwrap();
    let d = fs::File::open(env.v("gone2")).unwrap();
    fs::remove_dir(env.v("gone2")).unwrap();
    let m = d.metadata().unwrap();
    assert!(m.is_dir());
    assert_eq!(m.nlink(), 0, "a removed directory has no links");
    d.sync_all().unwrap();
}
