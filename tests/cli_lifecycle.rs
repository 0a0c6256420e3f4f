//! Mount lifecycle of the arsyncfs binary: the mount appears with the right type, signals and an
//! external unmount end it with status 0, a busy mount is detached, mount options take effect.

#[path = "common/mount.rs"]
mod mount;

use std::io::Read;
use std::process::Command;

use mount::{Mounted, Signal, is_mounted, mount_entry};

#[test]
fn mounts_as_fuse_arsyncfs_and_sigterm_unmounts() {
    let mut m = Mounted::spawn(&[] as &[&str], |b| {
        std::fs::write(b.join("hello"), b"hi").unwrap()
    });
    let entry = mount_entry(m.mountpoint()).expect("mounted");
    assert_eq!(entry.fs_type, "fuse.arsyncfs");
    assert_eq!(entry.source, m.backing().to_str().unwrap());
    assert!(entry.mount_options.split(',').any(|o| o == "rw"));
    assert!(entry.super_options.contains("default_permissions"));
    // The view works.
    assert_eq!(std::fs::read(m.mountpoint().join("hello")).unwrap(), b"hi");
    std::fs::write(m.mountpoint().join("new"), b"through the mount").unwrap();
    assert_eq!(
        std::fs::read(m.backing().join("new")).unwrap(),
        b"through the mount"
    );
    m.signal(Signal::TERM);
    let status = m.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", m.stderr());
    assert!(!is_mounted(m.mountpoint()));
    // Quiet by default: nothing on stderr for a normal life.
    assert_eq!(m.stderr(), "");
}

#[test]
fn sigint_unmounts_and_exits_0() {
    let mut m = Mounted::new();
    m.signal(Signal::INT);
    let status = m.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", m.stderr());
    assert!(!is_mounted(m.mountpoint()));
}

#[test]
fn sighup_unmounts_and_exits_0() {
    let mut m = Mounted::new();
    m.signal(Signal::HUP);
    let status = m.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", m.stderr());
    assert!(!is_mounted(m.mountpoint()));
}

#[test]
fn external_umount_ends_the_process_with_0() {
    let mut m = Mounted::new();
    let st = Command::new("umount").arg(m.mountpoint()).status().unwrap();
    assert!(st.success());
    let status = m.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", m.stderr());
    assert!(!is_mounted(m.mountpoint()));
}

#[test]
fn external_fusermount_u_ends_the_process_with_0() {
    let mut m = Mounted::new();
    let st = Command::new("fusermount3")
        .arg("-u")
        .arg(m.mountpoint())
        .status()
        .unwrap();
    assert!(st.success());
    let status = m.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", m.stderr());
    assert!(!is_mounted(m.mountpoint()));
}

#[test]
fn busy_mount_is_detached_on_sigterm() {
    let mut m = Mounted::spawn(&[] as &[&str], |b| {
        std::fs::write(b.join("f"), b"data").unwrap()
    });
    // An open file keeps the mount busy: a plain umount(2) fails with EBUSY.
    let mut open = std::fs::File::open(m.mountpoint().join("f")).unwrap();
    m.signal(Signal::TERM);
    let status = m.wait_exit();
    assert!(status.success(), "{status}; stderr:\n{}", m.stderr());
    assert!(
        !is_mounted(m.mountpoint()),
        "the busy mount was not detached"
    );
    // The connection is gone: the open file answers ENOTCONN instead of hanging.
    let mut buf = Vec::new();
    let err = open.read_to_end(&mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    assert!(m.stderr().contains("busy"), "stderr:\n{}", m.stderr());
}

#[test]
fn mount_options_take_effect() {
    let m = Mounted::spawn(
        &[
            "-o",
            "ro,fsname=my-data,subtype=view,noatime,noexec",
            "-o",
            "threads=1",
        ],
        |b| std::fs::write(b.join("f"), b"x").unwrap(),
    );
    let entry = mount_entry(m.mountpoint()).expect("mounted");
    assert_eq!(entry.fs_type, "fuse.view");
    assert_eq!(entry.source, "my-data");
    let opts: Vec<&str> = entry.mount_options.split(',').collect();
    for want in ["ro", "noatime", "noexec", "nosuid", "nodev"] {
        assert!(opts.contains(&want), "{want} missing in {opts:?}");
    }
    let err = std::fs::write(m.mountpoint().join("g"), b"y").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    assert!(!m.backing().join("g").exists());
    m.unmount();
}

#[test]
fn fstab_generic_options_are_accepted() {
    let m = Mounted::with_args(&[
        "-o",
        "defaults,auto,nouser,_netdev,nofail,relatime,x-systemd.automount,comment=test,rw",
    ]);
    let entry = mount_entry(m.mountpoint()).expect("mounted");
    assert_eq!(entry.fs_type, "fuse.arsyncfs");
    m.unmount();
}

#[test]
/// Every flag is accepted; threads, buffers, buffer size, writeback and max_background are checked
/// in the logs.
/// (--no-clone-fd and the timeouts are only checked as accepted.)
fn flags_and_verbose_logging() {
    let m = Mounted::with_args(&[
        "-vv",
        "--threads",
        "3",
        "--no-clone-fd",
        "--buffers",
        "8",
        "--buffer-size",
        "256K",
        "--attr-timeout",
        "0",
        "--entry-timeout",
        "0.5",
        "--writeback",
        "--max-background",
        "32",
    ]);
    std::fs::write(m.mountpoint().join("f"), b"abc").unwrap();
    assert_eq!(std::fs::read(m.mountpoint().join("f")).unwrap(), b"abc");
    let log = m.stderr();
    assert!(log.contains("mounted"), "no info log:\n{log}");
    assert!(log.contains("threads=3"), "{log}");
    assert!(log.contains("buffers=8"), "{log}");
    assert!(log.contains("buffer_size=262144"), "{log}");
    // What the filesystem asked the kernel for at init follows the flags.
    assert!(log.contains("writeback=true"), "{log}");
    assert!(log.contains("max_io=262144"), "{log}");
    assert!(log.contains("max_background=32"), "{log}");
    m.unmount();
}
