//! The dev and suid mount flags, and the subtype: by default arsyncfs mounts nodev,nosuid (as
//! libfuse does), so a device node made on the mount cannot be opened and a set-user-ID program
//! run from it gains nothing; with `-o dev,suid` a character device 1,3 made with mknod works as
//! /dev/null and a set-user-ID-root copy of `id` run by user nobody shows euid=0. A `subtype=` of
//! the user's choice names the filesystem type (fuse.SUBTYPE).
//!
//! Each check runs twice: on a plain directory seen through a bind mount with the same flags
//! (tests/common/bind.rs) and through an arsyncfs mount made with `-o allow_other` (so that user
//! nobody may use it) and the flags under test. The unprivileged side runs through
//! `setpriv --reuid=65534 --regid=65534 --clear-groups`.

#[path = "common/bind.rs"]
mod bind;
#[path = "common/mount.rs"]
mod mount;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use bind::{BoundDir, MountFlags};
use rustix::fs::{CWD, FileType, Mode};

struct Env {
    view: PathBuf,
    what: &'static str,
    _keep: Keep,
}

enum Keep {
    Plain(#[allow(dead_code)] BoundDir),
    Mounted(#[allow(dead_code)] mount::Mounted),
}

impl Env {
    fn v(&self, rel: &str) -> PathBuf {
        self.view.join(rel)
    }

    /// The per-mount options of the view, from /proc/self/mountinfo.
    fn mount_options(&self) -> Vec<String> {
        let entry = mount::mount_entry(&self.view).expect("the view is a mount point");
        entry.mount_options.split(',').map(str::to_owned).collect()
    }
}

fn plain(flags: MountFlags) -> Env {
    let bound = BoundDir::new(flags);
    Env {
        view: bound.view().to_path_buf(),
        what: "plain",
        _keep: Keep::Plain(bound),
    }
}

fn mounted(options: &str) -> Env {
    let m = mount::Mounted::with_args(&["-o", options]);
    // The guard's temp dir (parent of backing/ and mnt/) is 0700: open it for user nobody.
    for d in [m.backing().parent().unwrap(), m.backing()] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    Env {
        view: m.mountpoint().to_path_buf(),
        what: "mount",
        _keep: Keep::Mounted(m),
    }
}

/// Makes a character device 1,3 (what /dev/null is) named `null` in the view, as root.
fn make_null(env: &Env) -> PathBuf {
    let p = env.v("null");
    rustix::fs::mknodat(
        CWD,
        &p,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap_or_else(|e| panic!("{}: mknod c 1 3 as root: {e}", env.what));
    let m = fs::symlink_metadata(&p).unwrap();
    assert!(rustix::fs::FileType::from_raw_mode(m.mode()) == FileType::CharacterDevice);
    assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
    p
}

/// Writes to the device and reads from it: /dev/null swallows the bytes and reads as empty.
fn use_null(p: &Path) -> std::io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(p)?;
    f.write_all(b"discarded")?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    assert!(buf.is_empty(), "read {} bytes from 1,3", buf.len());
    Ok(())
}

/// A copy of `id` owned by root with the set-user-ID bit, in the view.
fn setuid_id(env: &Env) -> PathBuf {
    let p = env.v("id");
    fs::copy("/usr/bin/id", &p).unwrap_or_else(|e| panic!("copy id into the view: {e}"));
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o4755);
    p
}

/// The effective uid `id -u` prints when user nobody (65534) runs `prog`.
fn euid_as_nobody(prog: &Path) -> u32 {
    for _ in 0..50 {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(prog)
            .arg("-u")
            .output()
            .expect("run setpriv (util-linux)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A fork in another test thread may briefly hold the new file open for writing.
        if stderr.contains("Text file busy") {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        assert!(
            out.status.success(),
            "{} as nobody: {stderr}",
            prog.display()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        return text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("id -u printed {text:?}"));
    }
    panic!("{} stayed busy (ETXTBSY)", prog.display());
}

/// nodev,nosuid: shown on the mount; the device node cannot be opened (EACCES); the set-user-ID
/// program runs with nobody's own euid.
fn nodev_nosuid(env: &Env) {
    let opts = env.mount_options();
    for want in ["nodev", "nosuid"] {
        assert!(
            opts.iter().any(|o| o == want),
            "{}: {want} missing in {opts:?}",
            env.what
        );
    }
    let null = make_null(env);
    let err = use_null(&null).expect_err("open a device node on a nodev mount");
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EACCES),
        "{}: {err}",
        env.what
    );
    let id = setuid_id(env);
    assert_eq!(euid_as_nobody(&id), 65534, "{}: nosuid ignored", env.what);
}

/// dev,suid: neither flag on the mount; the device node works as /dev/null; the set-user-ID-root
/// program runs with euid 0.
fn dev_suid(env: &Env) {
    let opts = env.mount_options();
    for absent in ["nodev", "nosuid"] {
        assert!(
            !opts.iter().any(|o| o == absent),
            "{}: {absent} in {opts:?}",
            env.what
        );
    }
    let null = make_null(env);
    use_null(&null).unwrap_or_else(|e| panic!("{}: use the device node: {e}", env.what));
    let id = setuid_id(env);
    assert_eq!(
        euid_as_nobody(&id),
        0,
        "{}: set-user-ID-root program",
        env.what
    );
}

#[test]
fn defaults_are_nodev_nosuid_plain() {
    nodev_nosuid(&plain(MountFlags::NODEV | MountFlags::NOSUID));
}

#[test]
fn defaults_are_nodev_nosuid_mount() {
    nodev_nosuid(&mounted("allow_other"));
}

#[test]
fn dev_suid_plain() {
    dev_suid(&plain(MountFlags::empty()));
}

#[test]
fn dev_suid_mount() {
    dev_suid(&mounted("dev,suid,allow_other"));
}

/// Explicit nodev,nosuid after dev,suid win (a later option wins).
#[test]
fn later_nodev_nosuid_win_mount() {
    nodev_nosuid(&mounted("dev,suid,allow_other,nodev,nosuid"));
}

/// The filesystem type is fuse.SUBTYPE for a subtype of the user's choice (fuse.arsyncfs by
/// default), and the mount works as usual.
#[test]
fn subtype_names_the_type() {
    for (options, fs_type) in [
        ("allow_other", "fuse.arsyncfs"),
        ("subtype=my-view_2,dev,suid,allow_other", "fuse.my-view_2"),
    ] {
        let env = mounted(options);
        let entry = mount::mount_entry(&env.view).expect("mounted");
        assert_eq!(entry.fs_type, fs_type, "-o {options}");
        fs::write(env.v("f"), b"data").unwrap();
        assert_eq!(fs::read(env.v("f")).unwrap(), b"data");
    }
    dev_suid(&mounted("subtype=my-view_2,dev,suid,allow_other"));
}
