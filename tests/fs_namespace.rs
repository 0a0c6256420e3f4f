//! Namespace operations through the mount: symlink/readlink, mknod, mkdir/rmdir, unlink, rename
//! (plain, over an existing name, RENAME_NOREPLACE, RENAME_EXCHANGE, across directories), link.
//! Each check runs on a plain directory and through arsyncfs (see tests/common/fs_util.rs).

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};
use std::path::{Path, PathBuf};

use fs_util::*;
use rustix::fs::{CWD, FileType, Mode, RenameFlags};

fs_tests!(
    symlink_readlink,
    mknod,
    mkdir_rmdir,
    unlink,
    rename_plain,
    rename_over_existing,
    rename_noreplace,
    rename_exchange,
    rename_across_dirs,
    link,
    odd_names,
    setgid_dir,
);

fn rename_with(env: &Env, from: &str, to: &str, flags: RenameFlags) -> std::io::Result<()> {
    rustix::fs::renameat_with(CWD, env.v(from), CWD, env.v(to), flags).map_err(Into::into)
}

fn symlink_readlink(env: &Env) {
    fs::create_dir(env.v("x")).unwrap();
    fs::write(env.v("x/target"), b"through the link").unwrap();
    let targets: [(&str, &str); 5] = [
        ("x/rel", "target"),
        ("up", "x/../x/target"),
        ("abs", "/etc/hostname"),
        ("dangling", "does/not/exist"),
        ("x/long", &*"a/".repeat(1000)),
    ];
    for (name, target) in &targets {
        symlink(target, env.v(name)).unwrap_or_else(|e| panic!("symlink {name}: {e}"));
    }
    for (name, target) in &targets {
        for p in [env.v(name), env.b(name)] {
            assert_eq!(
                fs::read_link(&p).unwrap(),
                PathBuf::from(target),
                "readlink {}",
                p.display()
            );
        }
        let m = same_attrs(env, name);
        assert!(m.file_type().is_symlink(), "{name} is a symlink");
        assert_eq!(
            m.size(),
            target.len() as u64,
            "{name}: st_size of a symlink"
        );
    }
    // Relative links resolve inside the view.
    assert_eq!(fs::read(env.v("x/rel")).unwrap(), b"through the link");
    assert_eq!(fs::read(env.v("up")).unwrap(), b"through the link");
    expect_err(
        fs::metadata(env.v("dangling")),
        libc::ENOENT,
        "stat of a dangling link",
    );
    expect_err(
        symlink("t", env.v("x/rel")),
        libc::EEXIST,
        "symlink over an existing name",
    );
    expect_err(
        fs::read_link(env.v("x/target")),
        libc::EINVAL,
        "readlink of a regular file",
    );

    // A loop is reported as such.
    symlink("loop2", env.v("loop1")).unwrap();
    symlink("loop1", env.v("loop2")).unwrap();
    expect_err(
        fs::metadata(env.v("loop1")),
        libc::ELOOP,
        "stat of a symlink loop",
    );
}

fn mknod_at(path: &Path, ft: FileType, mode: u32, dev: u64) -> std::io::Result<()> {
    rustix::fs::mknodat(CWD, path, ft, Mode::from_raw_mode(mode), dev).map_err(Into::into)
}

fn mknod(env: &Env) {
    mknod_at(&env.v("fifo"), FileType::Fifo, 0o640, 0).unwrap();
    let m = same_attrs(env, "fifo");
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode(), libc::S_IFIFO | 0o640);
    assert!(lstat(&env.b("fifo")).file_type().is_fifo());

    mknod_at(&env.v("reg"), FileType::RegularFile, 0o600, 0).unwrap();
    let m = same_attrs(env, "reg");
    assert!(m.file_type().is_file());
    assert_eq!((m.mode(), m.size()), (libc::S_IFREG | 0o600, 0));

    mknod_at(&env.v("sock"), FileType::Socket, 0o644, 0).unwrap();
    assert!(same_attrs(env, "sock").file_type().is_socket());

    // Device nodes need CAP_MKNOD; the tests run as root.
    let dev = rustix::fs::makedev(1, 3);
    mknod_at(&env.v("null"), FileType::CharacterDevice, 0o666, dev).unwrap();
    let m = same_attrs(env, "null");
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), dev);
    let bdev = rustix::fs::makedev(7, 200);
    mknod_at(&env.v("blk"), FileType::BlockDevice, 0o600, bdev).unwrap();
    let m = same_attrs(env, "blk");
    assert!(m.file_type().is_block_device());
    assert_eq!(m.rdev(), bdev);

    expect_err(
        mknod_at(&env.v("fifo"), FileType::Fifo, 0o600, 0),
        libc::EEXIST,
        "mknod over an existing name",
    );

    // A FIFO made through the view works as a FIFO (O_RDWR never blocks on Linux).
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.v("fifo"))
        .unwrap();
    f.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

fn mkdir_rmdir(env: &Env) {
    use std::os::unix::fs::DirBuilderExt;
    fs::create_dir(env.v("p")).unwrap();
    let parent_links = same_attrs(env, "p").nlink();
    fs::DirBuilder::new()
        .mode(0o750)
        .create(env.v("p/d"))
        .unwrap();
    let m = same_attrs(env, "p/d");
    assert!(m.file_type().is_dir());
    assert_eq!(m.mode(), libc::S_IFDIR | 0o750);
    assert_eq!(m.nlink(), 2);
    assert_eq!(
        same_attrs(env, "p").nlink(),
        parent_links + 1,
        "a subdirectory adds a link to its parent"
    );
    // The umask (022, set by the harness) applies to mkdir.
    fs::DirBuilder::new()
        .mode(0o777)
        .create(env.v("p/u"))
        .unwrap();
    assert_eq!(same_attrs(env, "p/u").mode(), libc::S_IFDIR | 0o755);
    fs::remove_dir(env.v("p/u")).unwrap();

    expect_err(
        fs::create_dir(env.v("p/d")),
        libc::EEXIST,
        "mkdir of an existing dir",
    );
    fs::write(env.v("p/d/f"), b"x").unwrap();
    expect_err(
        fs::create_dir(env.v("p/d/f")),
        libc::EEXIST,
        "mkdir over a file",
    );
    expect_err(
        fs::create_dir(env.v("p/d/f/sub")),
        libc::ENOTDIR,
        "mkdir below a file",
    );
    expect_err(
        fs::create_dir(env.v("p/missing/sub")),
        libc::ENOENT,
        "mkdir below a missing dir",
    );

    expect_err(
        fs::remove_dir(env.v("p/d")),
        libc::ENOTEMPTY,
        "rmdir of a non-empty dir",
    );
    assert!(
        lstat(&env.b("p/d/f")).is_file(),
        "failed rmdir left the content"
    );
    expect_err(
        fs::remove_dir(env.v("p/d/f")),
        libc::ENOTDIR,
        "rmdir of a file",
    );
    expect_err(
        fs::remove_dir(env.v("p/nothing")),
        libc::ENOENT,
        "rmdir of a missing name",
    );
    fs::remove_file(env.v("p/d/f")).unwrap();
    fs::remove_dir(env.v("p/d")).unwrap();
    assert_absent(env, "p/d");
    assert_eq!(same_attrs(env, "p").nlink(), parent_links);
    assert_eq!(fs::read_dir(env.v("p")).unwrap().count(), 0);

    // Deep nesting.
    let deep = (0..40)
        .map(|i| format!("n{i}"))
        .collect::<Vec<_>>()
        .join("/");
    fs::create_dir_all(env.v(&format!("p/{deep}"))).unwrap();
    assert!(same_attrs(env, &format!("p/{deep}")).is_dir());
    fs::remove_dir_all(env.v("p/n0")).unwrap();
    assert_absent(env, "p/n0");
}

fn unlink(env: &Env) {
    write_file(env, "f", b"x");
    fs::remove_file(env.v("f")).unwrap();
    assert_absent(env, "f");
    expect_err(fs::remove_file(env.v("f")), libc::ENOENT, "unlink twice");
    fs::create_dir(env.v("d")).unwrap();
    expect_err(
        fs::remove_file(env.v("d")),
        libc::EISDIR,
        "unlink of a directory",
    );
    assert!(lstat(&env.b("d")).is_dir());

    // Unlinking a symlink removes the link, not its target.
    write_file(env, "t", b"target");
    symlink("t", env.v("l")).unwrap();
    fs::remove_file(env.v("l")).unwrap();
    assert_absent(env, "l");
    assert_content(env, "t", b"target");

    // Unlinking one hard link leaves the other with one link less.
    fs::hard_link(env.v("t"), env.v("t2")).unwrap();
    assert_eq!(same_attrs(env, "t").nlink(), 2);
    fs::remove_file(env.v("t")).unwrap();
    assert_absent(env, "t");
    assert_eq!(same_attrs(env, "t2").nlink(), 1);
    assert_content(env, "t2", b"target");

    // A name can be reused at once, as a different type.
    fs::create_dir(env.v("t")).unwrap();
    assert!(same_attrs(env, "t").is_dir());
}

fn rename_plain(env: &Env) {
    let data = pseudo_random(7, 5000);
    write_file(env, "a", &data);
    let ino = lstat(&env.v("a")).ino();
    fs::rename(env.v("a"), env.v("b")).unwrap();
    assert_absent(env, "a");
    assert_content(env, "b", &data);
    let m = same_attrs(env, "b");
    assert_eq!(m.ino(), ino, "rename keeps the inode number");

    // Directories, with their content.
    fs::create_dir(env.v("d")).unwrap();
    write_file(env, "d/inner", b"inner");
    fs::rename(env.v("d"), env.v("e")).unwrap();
    assert_absent(env, "d");
    assert_content(env, "e/inner", b"inner");
    // rename to itself is a no-op.
    fs::rename(env.v("b"), env.v("b")).unwrap();
    assert_content(env, "b", &data);
    expect_err(
        fs::rename(env.v("nothing"), env.v("x")),
        libc::ENOENT,
        "rename of a missing name",
    );
    expect_err(
        fs::rename(env.v("e"), env.v("e/sub")),
        libc::EINVAL,
        "rename a dir into itself",
    );
}

fn rename_over_existing(env: &Env) {
    write_file(env, "src", b"new content");
    write_file(env, "dst", b"old content, longer");
    let src_ino = lstat(&env.v("src")).ino();
    // Keep the old target open: it lives on after being replaced.
    let mut old = File::open(env.v("dst")).unwrap();
    fs::rename(env.v("src"), env.v("dst")).unwrap();
    assert_absent(env, "src");
    assert_content(env, "dst", b"new content");
    assert_eq!(same_attrs(env, "dst").ino(), src_ino);
    let mut s = String::new();
    old.read_to_string(&mut s).unwrap();
    assert_eq!(
        s, "old content, longer",
        "replaced file still readable through an open fd"
    );
    assert_eq!(old.metadata().unwrap().nlink(), 0);

    // Directory over an empty directory works; over a non-empty one it does not.
    fs::create_dir(env.v("d1")).unwrap();
    write_file(env, "d1/f", b"1");
    fs::create_dir(env.v("empty")).unwrap();
    fs::rename(env.v("d1"), env.v("empty")).unwrap();
    assert_absent(env, "d1");
    assert_content(env, "empty/f", b"1");
    fs::create_dir(env.v("d2")).unwrap();
    expect_err(
        fs::rename(env.v("d2"), env.v("empty")),
        libc::ENOTEMPTY,
        "dir over non-empty dir",
    );
    // Type mismatches.
    expect_err(
        fs::rename(env.v("dst"), env.v("d2")),
        libc::EISDIR,
        "file over dir",
    );
    expect_err(
        fs::rename(env.v("d2"), env.v("dst")),
        libc::ENOTDIR,
        "dir over file",
    );
    assert!(same_attrs(env, "d2").is_dir());
    assert_content(env, "dst", b"new content");

    // Over a hard link of itself: nothing happens.
    fs::hard_link(env.v("dst"), env.v("dst2")).unwrap();
    fs::rename(env.v("dst"), env.v("dst2")).unwrap();
    assert_eq!(same_attrs(env, "dst").nlink(), 2);
    assert_eq!(same_attrs(env, "dst2").nlink(), 2);
}

fn rename_noreplace(env: &Env) {
    write_file(env, "a", b"aaa");
    write_file(env, "b", b"bbb");
    expect_err(
        rename_with(env, "a", "b", RenameFlags::NOREPLACE),
        libc::EEXIST,
        "RENAME_NOREPLACE onto an existing file",
    );
    assert_content(env, "a", b"aaa");
    assert_content(env, "b", b"bbb");
    fs::create_dir(env.v("d")).unwrap();
    expect_err(
        rename_with(env, "a", "d", RenameFlags::NOREPLACE),
        libc::EEXIST,
        "RENAME_NOREPLACE onto a dir",
    );
    rename_with(env, "a", "c", RenameFlags::NOREPLACE).unwrap();
    assert_absent(env, "a");
    assert_content(env, "c", b"aaa");
    rename_with(env, "d", "d2", RenameFlags::NOREPLACE).unwrap();
    assert_absent(env, "d");
    assert!(same_attrs(env, "d2").is_dir());
}

fn rename_exchange(env: &Env) {
    write_file(env, "f", b"file content");
    fs::create_dir(env.v("d")).unwrap();
    write_file(env, "d/child", b"child");
    let f_ino = lstat(&env.v("f")).ino();
    let d_ino = lstat(&env.v("d")).ino();
    rename_with(env, "f", "d", RenameFlags::EXCHANGE).unwrap();
    // Now "f" is the directory and "d" the file.
    let f = same_attrs(env, "f");
    assert!(f.is_dir(), "f is the directory after the exchange");
    assert_eq!(f.ino(), d_ino);
    assert_content(env, "f/child", b"child");
    let d = same_attrs(env, "d");
    assert!(d.is_file(), "d is the file after the exchange");
    assert_eq!(d.ino(), f_ino);
    assert_content(env, "d", b"file content");
    for p in [env.v("d/child"), env.b("d/child")] {
        expect_err(
            fs::symlink_metadata(p),
            libc::ENOTDIR,
            "lookup below the exchanged file",
        );
    }

    // Two files, in different directories.
    fs::create_dir(env.v("x")).unwrap();
    write_file(env, "x/one", b"1");
    write_file(env, "f/two", b"2");
    rename_with(env, "x/one", "f/two", RenameFlags::EXCHANGE).unwrap();
    assert_content(env, "x/one", b"2");
    assert_content(env, "f/two", b"1");

    expect_err(
        rename_with(env, "d", "missing", RenameFlags::EXCHANGE),
        libc::ENOENT,
        "RENAME_EXCHANGE with a missing target",
    );
    expect_err(
        rename_with(
            env,
            "d",
            "f",
            RenameFlags::EXCHANGE | RenameFlags::NOREPLACE,
        ),
        libc::EINVAL,
        "RENAME_EXCHANGE|RENAME_NOREPLACE",
    );
}

fn rename_across_dirs(env: &Env) {
    fs::create_dir_all(env.v("a/deep")).unwrap();
    fs::create_dir(env.v("b")).unwrap();
    let data = pseudo_random(3, 100_000);
    write_file(env, "a/deep/f", &data);
    let ino = lstat(&env.v("a/deep/f")).ino();
    fs::rename(env.v("a/deep/f"), env.v("b/g")).unwrap();
    assert_absent(env, "a/deep/f");
    assert_content(env, "b/g", &data);
    assert_eq!(same_attrs(env, "b/g").ino(), ino);

    // A directory moves with its subtree and changes the parents' link counts.
    let a_links = same_attrs(env, "a").nlink();
    let b_links = same_attrs(env, "b").nlink();
    write_file(env, "a/deep/x", b"x");
    fs::rename(env.v("a/deep"), env.v("b/deep2")).unwrap();
    assert_absent(env, "a/deep");
    assert_content(env, "b/deep2/x", b"x");
    assert_eq!(same_attrs(env, "a").nlink(), a_links - 1);
    assert_eq!(same_attrs(env, "b").nlink(), b_links + 1);
    // ".." of the moved directory is its new parent.
    assert_eq!(
        lstat(&env.v("b/deep2/..")).ino(),
        lstat(&env.v("b")).ino(),
        "'..' follows the move"
    );
    // Renaming a directory into its own subtree fails.
    expect_err(
        fs::rename(env.v("b"), env.v("b/deep2/b")),
        libc::EINVAL,
        "rename into own subtree",
    );
    assert_eq!(
        fs::read_dir(env.v("a")).unwrap().count(),
        0,
        "source dir empty after the moves"
    );
}

fn link(env: &Env) {
    write_file(env, "a", b"shared");
    fs::hard_link(env.v("a"), env.v("b")).unwrap();
    let a = same_attrs(env, "a");
    let b = same_attrs(env, "b");
    assert_eq!(a.ino(), b.ino(), "hard links share st_ino through the view");
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    assert_eq!(lstat(&env.b("a")).ino(), lstat(&env.b("b")).ino());
    // The number seen through the view is the backing file's own (stable for git, rsync -H, tar).
    assert_eq!(
        a.ino(),
        lstat(&env.b("a")).ino(),
        "st_ino of the view vs the backing"
    );

    // Writes through one name are seen through the other.
    fs::OpenOptions::new()
        .append(true)
        .open(env.v("b"))
        .unwrap()
        .write_all(b" and appended")
        .unwrap();
    assert_content(env, "a", b"shared and appended");

    // Across directories, a third link.
    fs::create_dir(env.v("d")).unwrap();
    fs::hard_link(env.v("a"), env.v("d/c")).unwrap();
    assert_eq!(same_attrs(env, "a").nlink(), 3);
    assert_eq!(same_attrs(env, "d/c").ino(), a.ino());

    expect_err(
        fs::hard_link(env.v("a"), env.v("b")),
        libc::EEXIST,
        "link onto an existing name",
    );
    expect_err(
        fs::hard_link(env.v("d"), env.v("d2")),
        libc::EPERM,
        "link of a directory",
    );
    expect_err(
        fs::hard_link(env.v("nothing"), env.v("x")),
        libc::ENOENT,
        "link of a missing name",
    );

    fs::remove_file(env.v("a")).unwrap();
    fs::remove_file(env.v("d/c")).unwrap();
    let b = same_attrs(env, "b");
    assert_eq!(b.nlink(), 1);
    assert_eq!(b.ino(), a.ino());
    assert_content(env, "b", b"shared and appended");

    // A link to a symlink links the symlink itself (linkat without AT_SYMLINK_FOLLOW).
    symlink("b", env.v("sl")).unwrap();
    rustix::fs::linkat(
        CWD,
        env.v("sl"),
        CWD,
        env.v("sl2"),
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    let sl2 = same_attrs(env, "sl2");
    assert!(sl2.file_type().is_symlink());
    assert_eq!(sl2.ino(), lstat(&env.v("sl")).ino());
    assert_eq!(sl2.nlink(), 2);
}

/// Names with spaces, newlines, non-UTF-8 bytes and the longest allowed length.
fn odd_names(env: &Env) {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let long = "L".repeat(255);
    let names: Vec<&OsStr> = vec![
        OsStr::new("with space"),
        OsStr::new("new\nline"),
        OsStr::new("ünïcødé ✓"),
        OsStr::from_bytes(b"latin1-\xe9\xff"),
        OsStr::new(".hidden"),
        OsStr::new("..."),
        OsStr::new(&long),
    ];
    for n in &names {
        fs::write(env.view.join(n), n.as_bytes()).unwrap_or_else(|e| panic!("create {n:?}: {e}"));
    }
    for n in &names {
        assert_eq!(fs::read(env.view.join(n)).unwrap(), n.as_bytes());
        assert_eq!(fs::read(env.backing.join(n)).unwrap(), n.as_bytes());
    }
    let mut listed: Vec<_> = fs::read_dir(&env.view)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    listed.sort();
    let mut want: Vec<_> = names.iter().map(|n| n.to_os_string()).collect();
    want.sort();
    assert_eq!(listed, want);
    let too_long = "L".repeat(256);
    expect_err(
        fs::write(env.v(&too_long), b""),
        libc::ENAMETOOLONG,
        "256-byte name",
    );
}

/// Objects created in a set-group-ID directory take the directory's group; subdirectories
/// inherit the bit.
fn setgid_dir(env: &Env) {
    use std::os::unix::fs::{PermissionsExt, chown};
    fs::create_dir(env.v("g")).unwrap();
    chown(env.v("g"), None, Some(4321)).unwrap();
    fs::set_permissions(env.v("g"), fs::Permissions::from_mode(0o2775)).unwrap();
    write_file(env, "g/f", b"x");
    let f = same_attrs(env, "g/f");
    assert_eq!((f.uid(), f.gid()), (0, 4321), "file in a setgid dir");
    fs::create_dir(env.v("g/sub")).unwrap();
    let d = same_attrs(env, "g/sub");
    assert_eq!((d.uid(), d.gid()), (0, 4321), "subdir in a setgid dir");
    assert_eq!(
        d.mode() & 0o2000,
        0o2000,
        "subdir inherits setgid: {:o}",
        d.mode()
    );
    symlink("f", env.v("g/l")).unwrap();
    assert_eq!(
        same_attrs(env, "g/l").gid(),
        4321,
        "symlink in a setgid dir"
    );
    mknod_at(&env.v("g/p"), FileType::Fifo, 0o644, 0).unwrap();
    assert_eq!(same_attrs(env, "g/p").gid(), 4321, "fifo in a setgid dir");
    // Outside it, the creator's group.
    write_file(env, "h", b"");
    assert_eq!(same_attrs(env, "h").gid(), 0);
}
