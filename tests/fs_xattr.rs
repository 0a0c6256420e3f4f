//! Extended attributes through the mount: get/set/list/remove, XATTR_CREATE/REPLACE, the size
//! query and ERANGE protocol, user/trusted/security namespaces, symlinks, descriptors, and POSIX ACLs
//! stored as system.posix_acl_* (access and default, inherited on create). Each check runs on a
//! plain directory and through arsyncfs (see tests/common/fs_util.rs).

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, symlink};
use std::path::Path;

use fs_util::*;
use rustix::fs::XattrFlags;

fs_tests!(
    xattr_set_get_remove,
    xattr_size_protocol,
    xattr_list,
    xattr_fd_and_dir,
    xattr_symlink,
    xattr_namespaces,
    xattr_limits,
    acl_access,
    acl_default_inherited,
);

type R<T> = std::io::Result<T>;

fn set(p: &Path, name: &str, value: &[u8], flags: XattrFlags) -> R<()> {
    rustix::fs::setxattr(p, name, value, flags).map_err(Into::into)
}

/// The whole value, via a size query then a read (retrying if it grew in between).
fn get(p: &Path, name: &str) -> R<Vec<u8>> {
    loop {
        let n = rustix::fs::getxattr_query(p, name)?;
        let mut buf = vec![0u8; n];
        match rustix::fs::getxattr(p, name, &mut buf[..]) {
            Ok(got) if n == 0 || got <= n => {
                buf.truncate(if n == 0 { 0 } else { got });
                return Ok(buf);
            }
            Err(e) if e == rustix::io::Errno::RANGE => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => unreachable!(),
        }
    }
}

fn remove(p: &Path, name: &str) -> R<()> {
    rustix::fs::removexattr(p, name).map_err(Into::into)
}

/// The names listed by listxattr, as a set.
fn list(p: &Path) -> BTreeSet<String> {
    let n = rustix::fs::listxattr_query(p).unwrap();
    let mut buf = vec![0u8; n];
    let got = if n == 0 {
        0
    } else {
        rustix::fs::listxattr(p, &mut buf[..]).unwrap()
    };
    assert_eq!(got, n, "listxattr returned another size than the query");
    parse_list(&buf[..got])
}

fn parse_list(buf: &[u8]) -> BTreeSet<String> {
    if buf.is_empty() {
        return BTreeSet::new();
    }
    assert_eq!(buf.last(), Some(&0), "list ends with a NUL");
    buf[..buf.len() - 1]
        .split(|b| *b == 0)
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

/// Asserts `name` has `want` through the view and in the backing dir.
#[track_caller]
fn assert_xattr(env: &Env, rel: &str, name: &str, want: &[u8]) {
    for p in [env.v(rel), env.b(rel)] {
        let got = get(&p, name).unwrap_or_else(|e| panic!("getxattr {name} {}: {e}", p.display()));
        assert_eq!(got, want, "{name} of {}", p.display());
    }
}

#[track_caller]
fn assert_no_xattr(env: &Env, rel: &str, name: &str) {
    for p in [env.v(rel), env.b(rel)] {
        expect_err(
            get(&p, name),
            libc::ENODATA,
            &format!("{name} of {}", p.display()),
        );
    }
}

fn xattr_set_get_remove(env: &Env) {
    write_file(env, "f", b"data");
    let f = env.v("f");
    assert_no_xattr(env, "f", "user.a");
    set(&f, "user.a", b"value", XattrFlags::empty()).unwrap();
    assert_xattr(env, "f", "user.a", b"value");
    // XATTR_CREATE on an existing name: EEXIST, value unchanged.
    expect_err(
        set(&f, "user.a", b"other", XattrFlags::CREATE),
        libc::EEXIST,
        "XATTR_CREATE",
    );
    assert_xattr(env, "f", "user.a", b"value");
    // XATTR_REPLACE on a missing name: ENODATA, nothing created.
    expect_err(
        set(&f, "user.b", b"x", XattrFlags::REPLACE),
        libc::ENODATA,
        "XATTR_REPLACE",
    );
    assert_no_xattr(env, "f", "user.b");
    // Both succeed in their own case.
    set(
        &f,
        "user.a",
        b"a longer value than before",
        XattrFlags::REPLACE,
    )
    .unwrap();
    assert_xattr(env, "f", "user.a", b"a longer value than before");
    set(&f, "user.b", b"b", XattrFlags::CREATE).unwrap();
    assert_xattr(env, "f", "user.b", b"b");
    // Shrinking and empty values; binary values with NULs.
    set(&f, "user.a", b"s", XattrFlags::empty()).unwrap();
    assert_xattr(env, "f", "user.a", b"s");
    set(&f, "user.empty", b"", XattrFlags::empty()).unwrap();
    assert_xattr(env, "f", "user.empty", b"");
    let bin = pseudo_random(61, 3000);
    let mut bin_nul = bin.clone();
    bin_nul[0] = 0;
    bin_nul[1500] = 0;
    set(&f, "user.bin", &bin_nul, XattrFlags::empty()).unwrap();
    assert_xattr(env, "f", "user.bin", &bin_nul);
    // Remove.
    remove(&f, "user.a").unwrap();
    assert_no_xattr(env, "f", "user.a");
    expect_err(remove(&f, "user.a"), libc::ENODATA, "remove twice");
    assert_xattr(env, "f", "user.b", b"b");
    // Setting xattrs leaves the content alone, and view and backing still agree.
    assert_content(env, "f", b"data");
    same_attrs(env, "f");
    expect_err(
        get(&env.v("missing"), "user.a"),
        libc::ENOENT,
        "getxattr of a missing file",
    );
}

fn xattr_size_protocol(env: &Env) {
    write_file(env, "f", b"");
    let f = env.v("f");
    let value = b"0123456789abcdef";
    set(&f, "user.v", value, XattrFlags::empty()).unwrap();
    for p in [env.v("f"), env.b("f")] {
        // Size query with a zero-length buffer.
        assert_eq!(
            rustix::fs::getxattr_query(&p, "user.v").unwrap(),
            value.len()
        );
        // A buffer one byte too small: ERANGE.
        let mut small = [0u8; 15];
        expect_errno(
            rustix::fs::getxattr(&p, "user.v", &mut small[..]),
            libc::ERANGE,
            "getxattr with a too-small buffer",
        );
        // Exact and bigger buffers return the exact size.
        let mut exact = [0u8; 16];
        assert_eq!(
            rustix::fs::getxattr(&p, "user.v", &mut exact[..]).unwrap(),
            16
        );
        assert_eq!(&exact, value);
        let mut big = [0xffu8; 100];
        assert_eq!(
            rustix::fs::getxattr(&p, "user.v", &mut big[..]).unwrap(),
            16
        );
        assert_eq!(&big[..16], value);
        // listxattr: the same protocol.
        let n = rustix::fs::listxattr_query(&p).unwrap();
        assert_eq!(n, "user.v\0".len());
        let mut small = vec![0u8; n - 1];
        expect_errno(
            rustix::fs::listxattr(&p, &mut small[..]),
            libc::ERANGE,
            "listxattr with a too-small buffer",
        );
        let mut buf = vec![0u8; n + 10];
        assert_eq!(rustix::fs::listxattr(&p, &mut buf[..]).unwrap(), n);
        assert_eq!(&buf[..n], b"user.v\0");
        // Size query of a missing name.
        expect_errno(
            rustix::fs::getxattr_query(&p, "user.none"),
            libc::ENODATA,
            "query missing",
        );
    }
    // An empty value: the query says 0.
    set(&f, "user.e", b"", XattrFlags::empty()).unwrap();
    assert_eq!(rustix::fs::getxattr_query(&f, "user.e").unwrap(), 0);
    // A big value (ext4 allows up to a block).
    let big = pseudo_random(62, 3500);
    set(&f, "user.big", &big, XattrFlags::empty()).unwrap();
    assert_eq!(rustix::fs::getxattr_query(&f, "user.big").unwrap(), 3500);
    assert_xattr(env, "f", "user.big", &big);
}

fn xattr_list(env: &Env) {
    write_file(env, "f", b"");
    let f = env.v("f");
    assert_eq!(list(&f), BTreeSet::new(), "a new file has no user xattrs");
    let mut want = BTreeSet::new();
    for i in 0..50 {
        let name = format!("user.name-{i:02}-{}", "x".repeat(i));
        set(&f, &name, format!("{i}").as_bytes(), XattrFlags::CREATE).unwrap();
        want.insert(name);
    }
    assert_eq!(list(&f), want);
    assert_eq!(list(&env.b("f")), want);
    for i in (0..50).step_by(3) {
        let name = format!("user.name-{i:02}-{}", "x".repeat(i));
        remove(&f, &name).unwrap();
        want.remove(&name);
    }
    assert_eq!(list(&f), want);
    assert_eq!(list(&env.b("f")), want);
    for name in &want {
        let i: usize = name[10..12].parse().unwrap();
        assert_xattr(env, "f", name, format!("{i}").as_bytes());
    }
}

fn xattr_fd_and_dir(env: &Env) {
    write_file(env, "f", b"");
    let file = File::open(env.v("f")).unwrap();
    rustix::fs::fsetxattr(&file, "user.fd", b"via fd", XattrFlags::empty()).unwrap();
    assert_xattr(env, "f", "user.fd", b"via fd");
    let mut buf = [0u8; 64];
    let n = rustix::fs::fgetxattr(&file, "user.fd", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"via fd");
    assert_eq!(rustix::fs::fgetxattr_query(&file, "user.fd").unwrap(), 6);
    let n = rustix::fs::flistxattr(&file, &mut buf[..]).unwrap();
    assert_eq!(
        parse_list(&buf[..n]),
        BTreeSet::from(["user.fd".to_string()])
    );
    rustix::fs::fremovexattr(&file, "user.fd").unwrap();
    assert_no_xattr(env, "f", "user.fd");

    // Directories.
    fs::create_dir(env.v("d")).unwrap();
    set(&env.v("d"), "user.dir", b"on a dir", XattrFlags::empty()).unwrap();
    assert_xattr(env, "d", "user.dir", b"on a dir");
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(env.v("d"))
        .unwrap();
    let n = rustix::fs::fgetxattr(&d, "user.dir", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"on a dir");
    // The root of the view.
    set(&env.view, "user.root", b"r", XattrFlags::empty()).unwrap();
    assert_xattr(env, "", "user.root", b"r");

    // An xattr survives a rename and is shared by hard links.
    set(&env.v("f"), "user.keep", b"k", XattrFlags::empty()).unwrap();
    fs::rename(env.v("f"), env.v("g")).unwrap();
    assert_xattr(env, "g", "user.keep", b"k");
    fs::hard_link(env.v("g"), env.v("h")).unwrap();
    set(&env.v("h"), "user.via-h", b"h", XattrFlags::empty()).unwrap();
    assert_xattr(env, "g", "user.via-h", b"h");

    // An open, unlinked file keeps its xattrs.
    let g = File::open(env.v("g")).unwrap();
    fs::remove_file(env.v("g")).unwrap();
    fs::remove_file(env.v("h")).unwrap();
    let n = rustix::fs::fgetxattr(&g, "user.keep", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"k");
}

fn xattr_symlink(env: &Env) {
    write_file(env, "t", b"");
    symlink("t", env.v("l")).unwrap();
    set(&env.v("t"), "user.t", b"target", XattrFlags::empty()).unwrap();
    // getxattr follows the link, lgetxattr does not.
    assert_eq!(get(&env.v("l"), "user.t").unwrap(), b"target");
    let mut buf = [0u8; 16];
    expect_errno(
        rustix::fs::lgetxattr(env.v("l"), "user.t", &mut buf[..]),
        libc::ENODATA,
        "lgetxattr of a user xattr on a symlink",
    );
    // user.* xattrs are not allowed on symlinks.
    expect_errno(
        rustix::fs::lsetxattr(env.v("l"), "user.x", b"x", XattrFlags::empty()),
        libc::EPERM,
        "lsetxattr user.* on a symlink",
    );
    // setxattr through the link sets it on the target.
    set(&env.v("l"), "user.via", b"v", XattrFlags::empty()).unwrap();
    assert_xattr(env, "t", "user.via", b"v");
    // trusted.* on the link itself is allowed (root).
    rustix::fs::lsetxattr(env.v("l"), "trusted.link", b"tl", XattrFlags::empty()).unwrap();
    for p in [env.v("l"), env.b("l")] {
        let n = rustix::fs::lgetxattr(&p, "trusted.link", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"tl", "{}", p.display());
    }
    expect_err(
        get(&env.v("t"), "trusted.link"),
        libc::ENODATA,
        "trusted.link on the target",
    );
    // A symlink with a name that is not UTF-8, renamed after its lookup: still reachable.
    let odd = std::ffi::OsStr::from_bytes(b"l-\xff");
    symlink("t", env.view.join(odd)).unwrap();
    rustix::fs::lsetxattr(env.view.join(odd), "trusted.odd", b"o", XattrFlags::empty()).unwrap();
    let moved = std::ffi::OsStr::from_bytes(b"m-\xfe");
    fs::rename(env.view.join(odd), env.view.join(moved)).unwrap();
    rustix::fs::lsetxattr(
        env.view.join(moved),
        "trusted.moved",
        b"m",
        XattrFlags::empty(),
    )
    .unwrap();
    for p in [env.view.join(moved), env.backing.join(moved)] {
        for (name, want) in [("trusted.odd", &b"o"[..]), ("trusted.moved", &b"m"[..])] {
            let n = rustix::fs::lgetxattr(&p, name, &mut buf[..]).unwrap();
            assert_eq!(&buf[..n], want, "{name} of {}", p.display());
        }
    }
}

fn xattr_namespaces(env: &Env) {
    write_file(env, "f", b"");
    let f = env.v("f");
    set(&f, "trusted.t", b"trusted value", XattrFlags::empty()).unwrap();
    assert_xattr(env, "f", "trusted.t", b"trusted value");
    set(&f, "security.s", b"security value", XattrFlags::empty()).unwrap();
    assert_xattr(env, "f", "security.s", b"security value");
    set(&f, "user.u", b"u", XattrFlags::empty()).unwrap();
    let names = list(&f);
    for n in ["trusted.t", "security.s", "user.u"] {
        assert!(names.contains(n), "{n} not listed: {names:?}");
    }
    assert_eq!(names, list(&env.b("f")), "list through the view vs backing");
    // A namespace that does not exist.
    expect_err(
        set(&f, "nonsense.x", b"x", XattrFlags::empty()),
        libc::EOPNOTSUPP,
        "unknown xattr namespace",
    );
    remove(&f, "trusted.t").unwrap();
    remove(&f, "security.s").unwrap();
    assert_no_xattr(env, "f", "trusted.t");
    assert_no_xattr(env, "f", "security.s");
}

fn xattr_limits(env: &Env) {
    write_file(env, "f", b"");
    let f = env.v("f");
    let long = format!("user.{}", "n".repeat(250)); // 255 bytes: the longest name
    set(&f, &long, b"long name", XattrFlags::empty()).unwrap();
    assert_xattr(env, "f", &long, b"long name");
    let too_long = format!("user.{}", "n".repeat(251));
    expect_err(
        set(&f, &too_long, b"x", XattrFlags::empty()),
        libc::ERANGE,
        "xattr name of 256 bytes",
    );
    expect_err(
        set(&f, "user.huge", &vec![1u8; 65_537], XattrFlags::empty()),
        libc::E2BIG,
        "xattr value over 64 KiB",
    );
    expect_err(
        set(&f, "", b"x", XattrFlags::empty()),
        libc::ERANGE,
        "empty xattr name",
    );
}

// POSIX ACLs in their xattr form (linux/posix_acl_xattr.h): a version, then (tag, perm, id).
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const UNDEF: u32 = u32::MAX;

fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn acl_access(env: &Env) {
    write_file(env, "f", b"");
    let a = acl(&[
        (ACL_USER_OBJ, 6, UNDEF),
        (ACL_USER, 4, 1234),
        (ACL_GROUP_OBJ, 4, UNDEF),
        (ACL_MASK, 4, UNDEF),
        (ACL_OTHER, 0, UNDEF),
    ]);
    set(
        &env.v("f"),
        "system.posix_acl_access",
        &a,
        XattrFlags::empty(),
    )
    .unwrap();
    assert_xattr(env, "f", "system.posix_acl_access", &a);
    // The mode follows the ACL: owner rw, group bits = mask r, other none.
    let m = same_attrs(env, "f");
    assert_eq!(
        m.mode(),
        libc::S_IFREG | 0o640,
        "mode after setting the ACL: {:o}",
        m.mode()
    );
    // chmod rewrites the ACL's mask and other entries.
    fs::set_permissions(
        env.v("f"),
        std::os::unix::fs::PermissionsExt::from_mode(0o604),
    )
    .unwrap();
    let after = acl(&[
        (ACL_USER_OBJ, 6, UNDEF),
        (ACL_USER, 4, 1234),
        (ACL_GROUP_OBJ, 4, UNDEF),
        (ACL_MASK, 0, UNDEF),
        (ACL_OTHER, 4, UNDEF),
    ]);
    assert_xattr(env, "f", "system.posix_acl_access", &after);
    same_attrs(env, "f");
    // An ACL equivalent to the mode is stored as the mode only.
    let minimal = acl(&[
        (ACL_USER_OBJ, 7, UNDEF),
        (ACL_GROUP_OBJ, 5, UNDEF),
        (ACL_OTHER, 1, UNDEF),
    ]);
    set(
        &env.v("f"),
        "system.posix_acl_access",
        &minimal,
        XattrFlags::empty(),
    )
    .unwrap();
    assert_eq!(same_attrs(env, "f").mode(), libc::S_IFREG | 0o751);
    assert_no_xattr(env, "f", "system.posix_acl_access");
    // An invalid ACL (no USER_OBJ) is refused.
    expect_err(
        set(
            &env.v("f"),
            "system.posix_acl_access",
            &acl(&[(ACL_OTHER, 1, UNDEF)]),
            XattrFlags::empty(),
        ),
        libc::EINVAL,
        "invalid ACL",
    );
}

fn acl_default_inherited(env: &Env) {
    fs::create_dir(env.v("d")).unwrap();
    let def = acl(&[
        (ACL_USER_OBJ, 7, UNDEF),
        (ACL_USER, 7, 1234),
        (ACL_GROUP_OBJ, 5, UNDEF),
        (ACL_MASK, 7, UNDEF),
        (ACL_OTHER, 5, UNDEF),
    ]);
    set(
        &env.v("d"),
        "system.posix_acl_default",
        &def,
        XattrFlags::empty(),
    )
    .unwrap();
    assert_xattr(env, "d", "system.posix_acl_default", &def);
    // A file created inside gets an access ACL from the default, masked by the create mode, and
    // the umask is not applied (mode 0666 -> rw-, mask rw-, other r--).
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(env.v("d/f"))
        .unwrap();
    let m = same_attrs(env, "d/f");
    assert_eq!(
        m.mode(),
        libc::S_IFREG | 0o664,
        "mode of a file under a default ACL: {:o}",
        m.mode()
    );
    let want = acl(&[
        (ACL_USER_OBJ, 6, UNDEF),
        (ACL_USER, 7, 1234),
        (ACL_GROUP_OBJ, 5, UNDEF),
        (ACL_MASK, 6, UNDEF),
        (ACL_OTHER, 4, UNDEF),
    ]);
    assert_xattr(env, "d/f", "system.posix_acl_access", &want);
    assert_no_xattr(env, "d/f", "system.posix_acl_default");
    // A subdirectory inherits both the default and an access ACL.
    fs::create_dir(env.v("d/sub")).unwrap();
    assert_xattr(env, "d/sub", "system.posix_acl_default", &def);
    assert_xattr(env, "d/sub", "system.posix_acl_access", &def);
    assert_eq!(same_attrs(env, "d/sub").mode(), libc::S_IFDIR | 0o775);
    // Removing the default ACL.
    remove(&env.v("d"), "system.posix_acl_default").unwrap();
    assert_no_xattr(env, "d", "system.posix_acl_default");
}
