//! File handles (name_to_handle_at / open_by_handle_at, what NFS export and fanotify with file ids
//! rely on) outlive the kernel's caches: a handle taken through the view still opens the same file
//! after `echo 2 > /proc/sys/vm/drop_caches` has made the kernel forget every unused dentry and
//! inode (through the mount the kernel then asks arsyncfs for the node by id, LOOKUP "."); a
//! directory opened by handle is connected to its parents again (LOOKUP ".."); a handle of a
//! removed file is stale, even when a new file took its inode number. Each check runs on a plain
//! directory and through arsyncfs (see tests/common/fs_util.rs). Needs root (open_by_handle_at
//! wants CAP_DAC_READ_SEARCH, drop_caches root).

#[path = "common/file_handles.rs"]
mod file_handles;
#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use file_handles::{Handle, handle_of};
use fs_util::*;
use rustix::fs::{Mode, OFlags};

fs_tests!(
    file_handles_survive_cache_drop,
    directory_handles_survive_cache_drop,
    handles_follow_renames,
    handle_of_removed_file_is_stale,
    directory_handle_reconnects_to_parents,
);

fn open_by_handle(env: &Env, h: &Handle, flags: i32) -> io::Result<OwnedFd> {
    file_handles::open_by_handle(&env.view, h, flags)
}

/// Makes the kernel forget every unused dentry and inode (the view's and the backing's
/// filesystems synced first).
fn drop_caches(env: &Env) {
    file_handles::drop_caches(&[&env.view, &env.backing]);
}

/// The contents of the file `h` names, opened by handle.
fn read_by_handle(env: &Env, h: &Handle, what: &str) -> Vec<u8> {
    let fd = open_by_handle(env, h, libc::O_RDONLY)
        .unwrap_or_else(|e| panic!("open_by_handle_at of {what}: {e}"));
    let mut data = Vec::new();
    File::from(fd).read_to_end(&mut data).unwrap();
    data
}

/// The inode number of what `fd` refers to.
fn ino(fd: &OwnedFd) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_ino
}

/// A regular file, a file two directories down and a file with two links (its handle taken under
/// the second name) open by handle after the caches are dropped, with their contents; taking the
/// handles again gives the same handles (same node id and generation through the mount).
fn file_handles_survive_cache_drop(env: &Env) {
    fs::create_dir_all(env.v("d/sub")).unwrap();
    write_file(env, "f", b"plain file");
    write_file(env, "d/sub/g", b"nested file");
    write_file(env, "h", b"hard-linked file");
    fs::hard_link(env.v("h"), env.v("d/h2")).unwrap();
    let files = [
        ("f", &b"plain file"[..]),
        ("d/sub/g", b"nested file"),
        ("d/h2", b"hard-linked file"),
    ];
    let handles: Vec<Handle> = files.iter().map(|(p, _)| handle_of(&env.v(p))).collect();
    assert_eq!(handle_of(&env.v("h")), handles[2], "both links, one handle");
    drop_caches(env);
    for ((path, want), h) in files.iter().zip(&handles) {
        assert_bytes_eq(&read_by_handle(env, h, path), want, path);
    }
    drop_caches(env);
    for ((path, _), h) in files.iter().zip(&handles) {
        assert_eq!(
            &handle_of(&env.v(path)),
            h,
            "handle of {path} after a cache drop"
        );
    }
}

/// Directories open by handle after the caches are dropped, and list their entries.
fn directory_handles_survive_cache_drop(env: &Env) {
    fs::create_dir_all(env.v("d/sub")).unwrap();
    write_file(env, "d/sub/g", b"x");
    let h_d = handle_of(&env.v("d"));
    let h_sub = handle_of(&env.v("d/sub"));
    drop_caches(env);
    for (h, path, entry) in [(&h_d, "d", "sub"), (&h_sub, "d/sub", "g")] {
        let fd = open_by_handle(env, h, libc::O_RDONLY | libc::O_DIRECTORY)
            .unwrap_or_else(|e| panic!("open_by_handle_at of {path}: {e}"));
        assert_eq!(ino(&fd), lstat(&env.v(path)).ino(), "{path}");
        let st = rustix::fs::statat(&fd, entry, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .unwrap_or_else(|e| panic!("{entry} in {path} opened by handle: {e}"));
        assert_eq!(st.st_ino, lstat(&env.v(&format!("{path}/{entry}"))).ino());
    }
}

/// A handle names the file, not its name: it still opens after a rename into another directory
/// and a cache drop.
fn handles_follow_renames(env: &Env) {
    fs::create_dir(env.v("d")).unwrap();
    write_file(env, "r1", b"renamed");
    let h = handle_of(&env.v("r1"));
    fs::rename(env.v("r1"), env.v("d/r2")).unwrap();
    drop_caches(env);
    assert_bytes_eq(&read_by_handle(env, &h, "r1 renamed"), b"renamed", "d/r2");
    assert_eq!(handle_of(&env.v("d/r2")), h);
}

/// The handle of a removed file is stale (ESTALE) once its last link is gone, also after new files
/// were made, one of which may have taken its inode number (it then has another handle).
fn handle_of_removed_file_is_stale(env: &Env) {
    write_file(env, "gone", b"x");
    let gone_ino = lstat(&env.v("gone")).ino();
    let h = handle_of(&env.v("gone"));
    fs::remove_file(env.v("gone")).unwrap();
    drop_caches(env);
    expect_err(
        open_by_handle(env, &h, libc::O_RDONLY),
        libc::ESTALE,
        "open_by_handle_at of a removed file",
    );
    // New files, until one reuses the inode number (ext4 usually hands it out again soon).
    let mut reused = false;
    for i in 0..64 {
        let name = format!("new{i}");
        write_file(env, &name, b"y");
        if lstat(&env.v(&name)).ino() == gone_ino {
            assert_ne!(
                handle_of(&env.v(&name)),
                h,
                "a new file with the old inode number"
            );
            reused = true;
            break;
        }
    }
    eprintln!("inode number reused by a new file: {reused}");
    expect_err(
        open_by_handle(env, &h, libc::O_RDONLY),
        libc::ESTALE,
        "open_by_handle_at of a removed file, after new files",
    );
    drop_caches(env);
    expect_err(
        open_by_handle(env, &h, libc::O_RDONLY),
        libc::ESTALE,
        "open_by_handle_at of a removed file, after new files and a cache drop",
    );
}

/// A directory opened by handle after a cache drop is connected to the tree again (through the
/// mount: LOOKUP ".." up to the root): "..", "../.." and the directory's own path resolve as they
/// should.
fn directory_handle_reconnects_to_parents(env: &Env) {
    fs::create_dir_all(env.v("top/mid/leaf")).unwrap();
    write_file(env, "top/mid/leaf/x", b"leaf file");
    let h = handle_of(&env.v("top/mid/leaf"));
    drop_caches(env);
    let fd = open_by_handle(env, &h, libc::O_RDONLY | libc::O_DIRECTORY)
        .unwrap_or_else(|e| panic!("open_by_handle_at of top/mid/leaf: {e}"));
    let open_at = |rel: &str| {
        rustix::fs::openat(
            &fd,
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .unwrap_or_else(|e| panic!("openat(leaf by handle, {rel:?}): {e}"))
    };
    assert_eq!(ino(&open_at("..")), lstat(&env.v("top/mid")).ino(), "..");
    assert_eq!(ino(&open_at("../..")), lstat(&env.v("top")).ino(), "../..");
    assert_eq!(
        ino(&open_at("../../..")),
        lstat(&env.view).ino(),
        "../../.."
    );
    let mut data = Vec::new();
    File::from(open_at("x")).read_to_end(&mut data).unwrap();
    assert_bytes_eq(&data, b"leaf file", "x in the leaf opened by handle");
    // The kernel names the descriptor by its full path: it is connected to the tree.
    let named = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    assert_eq!(named, env.v("top/mid/leaf").canonicalize().unwrap());
}
