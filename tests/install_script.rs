//! scripts/install.sh: a DESTDIR install puts the binary, the mount(8) helper link, the man page and
//! the systemd units in place, and `--uninstall` removes every file again; an install under a
//! prefix of its own works end to end (the helper link mounts, the units pass `systemd-analyze
//! verify` where systemd is installed); bad arguments get one line and exit 2.

#[path = "common/mount.rs"]
mod mount;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use mount::{arsyncfs_bin, force_unmount, is_mounted, wait_until};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn install(destdir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(REPO).join("scripts/install.sh"))
        .arg("--bin")
        .arg(arsyncfs_bin())
        .args(args)
        .env_remove("DESTDIR");
    if let Some(d) = destdir {
        cmd.env("DESTDIR", d);
    }
    cmd.output().unwrap()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "install.sh: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file or link under `root` (directories left out), sorted.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_symlink() || !path.is_dir() {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            } else {
                todo.push(path);
            }
        }
    }
    out.sort();
    out
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

#[test]
fn destdir_install_and_uninstall() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    assert_ok(&install(Some(d), &[]));
    let expected: Vec<PathBuf> = [
        "sbin/mount.fuse.arsyncfs",
        "usr/local/bin/arsyncfs",
        "usr/local/lib/systemd/system/arsyncfs@.service",
        "usr/local/share/doc/arsyncfs/examples/mnt-view.mount",
        "usr/local/share/man/man1/arsyncfs.1",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(files_under(d), expected);

    let bin = d.join("usr/local/bin/arsyncfs");
    assert!(same_bytes(&bin, Path::new(arsyncfs_bin())));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(bin.metadata().unwrap().permissions().mode() & 0o777, 0o755);
    // The link names the installed path, not the staging one.
    assert_eq!(
        std::fs::read_link(d.join("sbin/mount.fuse.arsyncfs")).unwrap(),
        Path::new("/usr/local/bin/arsyncfs")
    );
    assert!(same_bytes(
        &d.join("usr/local/share/man/man1/arsyncfs.1"),
        &Path::new(REPO).join("docs/arsyncfs.1")
    ));
    let unit =
        std::fs::read_to_string(d.join("usr/local/lib/systemd/system/arsyncfs@.service")).unwrap();
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    assert!(
        unit.contains("\nExecStart=/usr/local/bin/arsyncfs $ARSYNCFS_OPTIONS ${BACKING} %f\n"),
        "{unit}"
    );

    // A second install over the first is fine (an upgrade).
    assert_ok(&install(Some(d), &[]));
    assert_eq!(files_under(d), expected);

    assert_ok(&install(Some(d), &["--uninstall"]));
    assert_eq!(files_under(d), Vec::<PathBuf>::new());
}

#[test]
fn uninstall_leaves_a_foreign_helper_link_alone() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    std::fs::create_dir(d.join("sbin")).unwrap();
    std::os::unix::fs::symlink("/opt/other/arsyncfs", d.join("sbin/mount.fuse.arsyncfs")).unwrap();
    let out = install(Some(d), &["--uninstall"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("left"));
    assert_eq!(
        files_under(d),
        vec![PathBuf::from("sbin/mount.fuse.arsyncfs")]
    );
}

#[test]
fn prefix_install_mounts_through_the_helper_link() {
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-install-")
        .tempdir()
        .unwrap();
    let root = dir.path().canonicalize().unwrap();
    let prefix = root.join("usr");
    let sbin = root.join("sbin");
    let out = install(
        None,
        &[
            "--prefix",
            prefix.to_str().unwrap(),
            "--sbindir",
            sbin.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    let unit_path = prefix.join("lib/systemd/system/arsyncfs@.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let exec = format!("\nExecStart={}/bin/arsyncfs ", prefix.display());
    assert!(unit.contains(&exec), "{unit}");

    // mount(8) would run the link as `mount.fuse.arsyncfs SPEC DIR -o OPTIONS`.
    let backing = root.join("backing");
    let mnt = root.join("mnt");
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    std::fs::write(backing.join("f"), b"through the helper").unwrap();
    let helper = sbin.join("mount.fuse.arsyncfs");
    let mounted = Command::new(&helper)
        .arg(&backing)
        .arg(&mnt)
        .args(["-o", "ro,noatime"])
        .output()
        .unwrap();
    let cleanup = Unmount(mnt.clone());
    assert!(mounted.status.success(), "{mounted:?}");
    assert!(is_mounted(&mnt));
    assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"through the helper");
    let umount = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(umount.success());
    wait_until(Duration::from_secs(5), "the unmount", || !is_mounted(&mnt));
    drop(cleanup);

    // The units as systemd reads them, where it is installed (not in scripts/setup.sh: optional).
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_ok_and(|o| o.status.success()) {
        let instance = root.join("arsyncfs@mnt-view.service");
        std::fs::copy(&unit_path, &instance).unwrap();
        let example = prefix.join("share/doc/arsyncfs/examples/mnt-view.mount");
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&instance)
            .arg(&example)
            .output()
            .unwrap();
        assert!(out.status.success(), "systemd-analyze verify: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{out:?}");
    } else {
        println!("systemd-analyze not installed: the units are not verified");
    }

    let out = install(
        None,
        &[
            "--prefix",
            prefix.to_str().unwrap(),
            "--sbindir",
            sbin.to_str().unwrap(),
            "--uninstall",
        ],
    );
    assert_ok(&out);
    assert!(!helper.is_symlink());
    assert!(!prefix.join("bin/arsyncfs").exists());
}

/// Unmounts on every path.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        force_unmount(&self.0);
    }
}

#[test]
fn bad_arguments() {
    for (args, wanted) in [
        (&["--bogus"][..], "unknown argument '--bogus'"),
        (&["--prefix"], "--prefix needs a value"),
        (&["--prefix", "relative/dir"], "is not an absolute path"),
    ] {
        let out = install(None, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(wanted), "{stderr}");
    }
    let out = Command::new("bash")
        .arg(Path::new(REPO).join("scripts/install.sh"))
        .args(["--bin", "/nonexistent/arsyncfs"])
        .env("DESTDIR", "/nonexistent-destdir")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("build it first"));
}
