//! Special files through the mount: a FIFO made through the view carries data between a reader
//! and a writer; a unix socket bound inside the view accepts connections; a character device made
//! by root has the right rdev and opening it follows the mount's nodev flag; O_TMPFILE. Each check
//! runs on a plain directory and through arsyncfs (see tests/common/fs_util.rs).
//!
//! (mknod of every type and statfs figures equal to the backing's are checked in fs_namespace.rs
//! and fs_attrs.rs.)
//!
//! What is local to the mount, by the nature of FUSE: FIFOs and sockets are kernel objects tied to
//! an inode. The kernel opens a FIFO or connects a socket found through the view on the FUSE
//! inode, not on the backing file, so a reader on the backing path and a writer on the view are
//! two different pipes, and a socket bound through the view is reachable only through the view.
//! `fifo_is_per_inode` and `socket_is_per_inode` pin this down (on the plain run both paths are
//! one inode).

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use fs_util::*;
use rustix::fs::{CWD, FileType, Mode, OFlags};

fs_tests!(
    fifo_reader_writer,
    fifo_is_per_inode,
    unix_socket,
    socket_is_per_inode,
    char_device_nodev,
    o_tmpfile,
);

fn mkfifo(path: &Path, mode: u32) {
    rustix::fs::mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(mode), 0)
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Opens a FIFO for reading without waiting for a writer, then makes reads blocking again.
fn open_fifo_reader(path: &Path) -> File {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for reading: {e}", path.display()));
    rustix::fs::fcntl_setfl(&f, OFlags::empty()).unwrap();
    f
}

/// 256 KiB (four times a default pipe buffer) from a writer thread to a reader, both through the
/// view; the FIFO shows as a FIFO with its mode in the view and the backing dir.
fn fifo_reader_writer(env: &Env) {
    mkfifo(&env.v("p"), 0o640);
    let m = same_attrs(env, "p");
    assert!(m.file_type().is_fifo());
    assert_eq!(m.mode(), libc::S_IFIFO | 0o640);
    assert!(lstat(&env.b("p")).file_type().is_fifo());
    let data = pseudo_random(5, 256 * 1024);
    // Both ends are open before any byte moves: the reader first (non-blocking open), then the
    // writer (which does not block, a reader being there). Reading an empty FIFO with no writer
    // would be EOF, so the writer must not be opened in the thread. If the writer fails, its end
    // closes and the reader sees a short stream instead of hanging.
    let mut reader = open_fifo_reader(&env.v("p"));
    let mut w = OpenOptions::new().write(true).open(env.v("p")).unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        for chunk in sent.chunks(10_000) {
            w.write_all(chunk).unwrap();
        }
    });
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    writer.join().expect("writer thread");
    assert_bytes_eq(&got, &data, "bytes through the FIFO");
    // The FIFO holds no data of its own.
    assert_eq!(lstat(&env.b("p")).size(), 0);
}

/// A reader on the backing path and a writer on the view meet only on the plain run: through the
/// mount the view's FIFO is a different pipe (see the module docs), so a non-blocking open for
/// writing finds no reader (ENXIO).
fn fifo_is_per_inode(env: &Env) {
    mkfifo(&env.v("p"), 0o600);
    let _reader = open_fifo_reader(&env.b("p"));
    let w = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(env.v("p"));
    if env.mounted {
        expect_err(w, libc::ENXIO, "writer on the view, reader on the backing");
    } else {
        w.expect("writer with a reader present");
    }
}

/// A server bound on a path inside the view; a client connecting to that path talks to it both
/// ways; the socket shows as a socket in the view and the backing dir; it can be removed.
fn unix_socket(env: &Env) {
    let listener = UnixListener::bind(env.v("sock")).expect("bind inside the view");
    let m = same_attrs(env, "sock");
    assert!(m.file_type().is_socket());
    assert!(lstat(&env.b("sock")).file_type().is_socket());
    let server = std::thread::spawn(move || {
        for round in 0..3u8 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hello");
            s.write_all(&[b'a' + round; 3]).unwrap();
        }
    });
    for round in 0..3u8 {
        let mut c = UnixStream::connect(env.v("sock")).expect("connect inside the view");
        c.write_all(b"hello").unwrap();
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, [b'a' + round; 3]);
    }
    server.join().expect("server thread");
    fs::remove_file(env.v("sock")).unwrap();
    assert_absent(env, "sock");
}

/// A socket bound through the view is reachable through the view only (see the module docs):
/// connecting to the backing path is refused on the mount run.
fn socket_is_per_inode(env: &Env) {
    let _listener = UnixListener::bind(env.v("sock")).unwrap();
    let via_backing = UnixStream::connect(env.b("sock"));
    if env.mounted {
        expect_err(
            via_backing,
            libc::ECONNREFUSED,
            "connect on the backing path to a socket bound through the view",
        );
    } else {
        via_backing.expect("connect");
    }
    UnixStream::connect(env.v("sock")).expect("connect through the view");
}

/// mknod of a character device (1,3, like /dev/null) as root: the right type, mode and rdev in the
/// view and the backing. Opening it through a path on a nodev mount is EACCES (arsyncfs is mounted
/// nodev, as every FUSE mount by default); where devices are allowed it behaves as /dev/null. The
/// node in the backing dir is a real device node.
fn char_device_nodev(env: &Env) {
    let dev = rustix::fs::makedev(1, 3);
    rustix::fs::mknodat(
        CWD,
        env.v("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        dev,
    )
    .expect("mknod c 1 3 as root");
    let m = same_attrs(env, "null");
    assert!(m.file_type().is_char_device());
    assert_eq!(m.mode(), libc::S_IFCHR | 0o644, "0666 under umask 022");
    assert_eq!(m.rdev(), dev);
    let nodev = |p: &Path| {
        rustix::fs::statvfs(p)
            .unwrap()
            .f_flag
            .contains(rustix::fs::StatVfsMountFlags::NODEV)
    };
    if env.mounted {
        assert!(nodev(&env.view), "arsyncfs mounts nodev by default");
    }
    let use_null = |p: &Path| -> std::io::Result<()> {
        let mut f = OpenOptions::new().read(true).write(true).open(p)?;
        f.write_all(b"discarded")?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        assert!(buf.is_empty(), "read from 1,3 gave {} bytes", buf.len());
        Ok(())
    };
    for (path, what) in [(env.v("null"), "view"), (env.b("null"), "backing")] {
        let r = use_null(&path);
        if nodev(&path) {
            expect_err(
                r,
                libc::EACCES,
                &format!("open a device on a nodev mount ({what})"),
            );
        } else {
            r.unwrap_or_else(|e| panic!("use the device node ({what}): {e}"));
        }
    }
}

/// O_TMPFILE: an unnamed file in a directory, writable and readable, absent from the listing,
/// given a name with linkat, on the plain directory. Through the mount it fails with EOPNOTSUPP:
/// fuser 0.18 has no FUSE_TMPFILE request, and that is what the kernel answers then (programs fall
/// back to a named temporary file).
fn o_tmpfile(env: &Env) {
    fs::create_dir(env.v("d")).unwrap();
    let opened = rustix::fs::open(
        env.v("d"),
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o640),
    );
    if env.mounted {
        expect_errno(opened, libc::EOPNOTSUPP, "O_TMPFILE through the mount");
        return;
    }
    let fd = opened.unwrap_or_else(|e| panic!("open O_TMPFILE in {}: {e}", env.v("d").display()));
    let f = File::from(fd);
    let data = pseudo_random(9, 100_000);
    (&f).write_all(&data).unwrap();
    let m = f.metadata().unwrap();
    assert_eq!((m.nlink(), m.size()), (0, 100_000));
    assert_eq!(m.mode(), libc::S_IFREG | 0o640);
    assert_eq!(
        fs::read_dir(env.v("d")).unwrap().count(),
        0,
        "listed in view"
    );
    assert_eq!(
        fs::read_dir(env.b("d")).unwrap().count(),
        0,
        "listed in backing"
    );
    let mut back = vec![0u8; data.len()];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut back, 0).unwrap();
    assert_bytes_eq(&back, &data, "read back the unnamed file");
    rustix::fs::linkat(
        &f,
        "",
        CWD,
        env.v("d/named"),
        rustix::fs::AtFlags::EMPTY_PATH,
    )
    .expect("linkat AT_EMPTY_PATH of the O_TMPFILE");
    assert_content(env, "d/named", &data);
    assert_eq!(same_attrs(env, "d/named").nlink(), 1);
}
