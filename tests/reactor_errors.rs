//! Errors come back to the request that caused them, and the buffer goes back to the pool.

#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::fs::{File, OpenOptions};
use std::sync::Arc;

use arsyncfs::reactor::ReactorConfig;
use reactor_util::{Harness, TinyTmpfs, disk_tempdir, new_file};

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("not an OS error: {e}"))
}

#[test]
fn write_to_a_read_only_file_is_ebadf() {
    let dir = tempfile::tempdir().unwrap();
    let (path, rw) = new_file(dir.path(), "ro");
    std::fs::write(&path, b"original").unwrap();
    let ro = Arc::new(File::open(&path).unwrap());
    let r = Harness::with(ReactorConfig {
        buffers: 1,
        ..ReactorConfig::default()
    });
    for _ in 0..3 {
        assert_eq!(errno(r.write(&ro, 0, b"changed").unwrap_err()), libc::EBADF);
        assert_eq!(r.h.stats().pool.total, 1);
    }
    // The one buffer came back each time: a good write and read still work.
    assert_eq!(r.write(&rw, 8, b"+").unwrap(), 1);
    assert_eq!(r.read(&ro, 0, 100).unwrap(), b"original+");
    // fallocate on a read-only descriptor fails too (fsync on one is allowed).
    assert_eq!(
        errno(r.fallocate(&ro, 0, 0, 4096).unwrap_err()),
        libc::EBADF
    );
    r.finish();
}

#[test]
fn read_from_a_write_only_file_is_ebadf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wo");
    std::fs::write(&path, b"secret").unwrap();
    let wo = Arc::new(OpenOptions::new().write(true).open(&path).unwrap());
    let r = Harness::with(ReactorConfig {
        buffers: 1,
        ..ReactorConfig::default()
    });
    for _ in 0..3 {
        assert_eq!(errno(r.read(&wo, 0, 100).unwrap_err()), libc::EBADF);
    }
    assert_eq!(r.write(&wo, 0, b"S").unwrap(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), b"Secret");
    r.finish();
}

#[test]
fn read_from_a_directory_is_eisdir() {
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(File::open(dir.path()).unwrap());
    let r = Harness::with(ReactorConfig {
        buffers: 1,
        ..ReactorConfig::default()
    });
    for _ in 0..3 {
        assert_eq!(errno(r.read(&d, 0, 4096).unwrap_err()), libc::EISDIR);
    }
    r.finish();
}

/// O_DIRECT needs offsets, lengths and memory aligned to the device's block size. The reactor's
/// buffers are aligned, so aligned requests work and misaligned offsets or lengths fail with EINVAL.
#[test]
fn misaligned_o_direct_requests_are_einval() {
    let dir = disk_tempdir();
    let path = dir.path().join("direct");
    let file = reactor_util::open_direct(&path);
    let r = Harness::with(ReactorConfig {
        buffers: 1,
        buffer_size: 64 << 10,
        ..ReactorConfig::default()
    });
    assert_eq!(r.write(&file, 0, &[7u8; 16384]).unwrap(), 16384);
    for _ in 0..2 {
        assert_eq!(errno(r.read(&file, 1, 4096).unwrap_err()), libc::EINVAL);
        assert_eq!(errno(r.read(&file, 0, 100).unwrap_err()), libc::EINVAL);
        assert_eq!(
            errno(r.write(&file, 3, &[1u8; 4096]).unwrap_err()),
            libc::EINVAL
        );
        assert_eq!(
            errno(r.write(&file, 0, &[1u8; 100]).unwrap_err()),
            libc::EINVAL
        );
        // And the single buffer is back: an aligned request works.
        assert_eq!(r.read(&file, 4096, 4096).unwrap(), vec![7u8; 4096]);
    }
    r.finish();
}

/// A reactor with one 256 KiB buffer and a new file on a 64 KiB tmpfs (close the file and finish the
/// reactor before the tmpfs goes); `None` where
/// a tmpfs cannot be mounted (not root).
fn reactor_on_a_64k_tmpfs() -> Option<(Harness, std::sync::Arc<std::fs::File>, TinyTmpfs)> {
    let fs = TinyTmpfs::mount("64k")?;
    let (_, file) = new_file(fs.path(), "fill");
    let r = Harness::with(ReactorConfig {
        buffers: 1,
        buffer_size: 256 << 10,
        ..ReactorConfig::default()
    });
    Some((r, file, fs))
}

/// A write that does not fit on a full filesystem fails with ENOSPC, even when the kernel wrote part
/// of it first (the reactor continues short writes and reports the error that ends them).
#[test]
fn enospc_on_a_full_tmpfs() {
    let Some((r, file, _fs)) = reactor_on_a_64k_tmpfs() else {
        return;
    };
    // 48 KiB fit.
    assert_eq!(r.write(&file, 0, &[1u8; 48 << 10]).unwrap(), 48 << 10);
    // 32 KiB more do not: part may be written, then ENOSPC.
    assert_eq!(
        errno(r.write(&file, 48 << 10, &[2u8; 32 << 10]).unwrap_err()),
        libc::ENOSPC
    );
    // Far more than the filesystem holds.
    assert_eq!(
        errno(r.write(&file, 1 << 20, &[3u8; 256 << 10]).unwrap_err()),
        libc::ENOSPC
    );
    // What was written reads back.
    assert_eq!(r.read(&file, 0, 48 << 10).unwrap(), vec![1u8; 48 << 10]);
    assert_eq!(
        errno(r.fallocate(&file, 0, 0, 1 << 20).unwrap_err()),
        libc::ENOSPC
    );
    r.close(file).unwrap();
    r.finish();
}

/// A write answered as pwrite(2) on a full filesystem: what fits is written and counted, and the
/// next write gets ENOSPC.
#[test]
fn pwrite_like_writes_are_short_then_enospc() {
    let Some((r, file, _fs)) = reactor_on_a_64k_tmpfs() else {
        return;
    };
    let data: Vec<u8> = (0..256 << 10).map(|i| (i % 251) as u8).collect();
    let n = r.write_as_pwrite(&file, 0, &data).unwrap();
    assert!(n > 0 && n < data.len(), "a short count, got {n}");
    assert_eq!(
        errno(r.write_as_pwrite(&file, n as u64, &data[n..]).unwrap_err()),
        libc::ENOSPC
    );
    assert_eq!(r.read(&file, 0, n).unwrap(), data[..n]);
    r.close(file).unwrap();
    r.finish();
}

/// Requests after shutdown are answered ESHUTDOWN at once, and take no buffer.
#[test]
fn requests_after_shutdown_get_eshutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = new_file(dir.path(), "late");
    let r = Harness::new();
    let h = r.h.clone();
    let stats = r.finish();
    let (tx, rx) = crossbeam_channel::unbounded();
    use reactor_util::{Answer, Tagged, collect};
    h.read(file.clone(), 0, 10, Tagged(0, tx.clone()));
    h.write(file.clone(), 0, b"x", Tagged(1, tx.clone()));
    h.sync(file.clone(), false, Tagged(2, tx.clone()));
    h.fallocate(file.clone(), 0, 0, 10, Tagged(3, tx.clone()));
    h.close(file.clone(), Tagged(4, tx.clone()));
    for (_, a) in collect(&rx, 5) {
        assert_eq!(a.errno(), Some(libc::ESHUTDOWN), "{a:?}");
        assert!(!matches!(a, Answer::Read(_, Ok(_))));
    }
    let after = h.stats();
    assert_eq!(
        after.pool.taken, stats.pool.taken,
        "a buffer was taken after shutdown"
    );
    reactor_util::assert_pool_clean(&after);
}

/// A configuration the kernel refuses makes `start` fail with an error, never a panic, and leaves no
/// thread behind.
#[test]
fn a_ring_the_kernel_refuses_is_an_error_not_a_panic() {
    use arsyncfs::reactor::Reactor;
    let err = Reactor::<reactor_util::ChannelCompletions>::start(ReactorConfig {
        ring_entries: 1 << 20,
        ..ReactorConfig::default()
    })
    .err()
    .expect("a ring of 2^20 entries is beyond the kernel's limit");
    assert!(err.to_string().contains("io_uring"), "{err}");
    for bad in [
        ReactorConfig {
            buffers: 0,
            ..ReactorConfig::default()
        },
        ReactorConfig {
            buffer_size: 0,
            ..ReactorConfig::default()
        },
        ReactorConfig {
            ring_entries: 0,
            ..ReactorConfig::default()
        },
    ] {
        let e = Reactor::<reactor_util::ChannelCompletions>::start(bad)
            .err()
            .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }
}

/// A completion that panics is contained: the reactor answers everything after it, and its buffer
/// still goes back to the pool.
#[test]
fn a_panicking_completion_does_not_stop_the_reactor() {
    use arsyncfs::reactor::{
        Completions, DoneCompletion, Reactor, ReadCompletion, WriteCompletion,
    };
    use crossbeam_channel::Sender;

    struct Bomb(u64, Sender<u64>);
    impl ReadCompletion for Bomb {
        fn complete(self, result: std::io::Result<&[u8]>) {
            assert!(result.is_ok());
            if self.0 % 2 == 1 {
                panic!("completion {} explodes (on purpose)", self.0);
            }
            let _ = self.1.send(self.0);
        }
    }
    impl WriteCompletion for Bomb {
        fn complete(self, _: std::io::Result<usize>) {
            let _ = self.1.send(self.0);
        }
    }
    impl DoneCompletion for Bomb {
        fn complete(self, _: std::io::Result<()>) {
            let _ = self.1.send(self.0);
        }
    }
    struct Bombs;
    impl Completions for Bombs {
        type Read = Bomb;
        type Write = Bomb;
        type Done = Bomb;
    }

    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "bomb");
    std::fs::write(&path, b"data").unwrap();
    let reactor = Reactor::<Bombs>::start(ReactorConfig {
        buffers: 1,
        ..ReactorConfig::default()
    })
    .unwrap();
    let h = reactor.handle();
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..20u64 {
        h.read(file.clone(), 0, 4, Bomb(i, tx.clone()));
    }
    let mut got: Vec<u64> = (0..10)
        .map(|_| rx.recv_timeout(reactor_util::PATIENCE).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..20).step_by(2).collect::<Vec<_>>());
    h.sync(file.clone(), false, Bomb(100, tx.clone()));
    assert_eq!(rx.recv_timeout(reactor_util::PATIENCE).unwrap(), 100);
    reactor.shutdown();
    reactor_util::assert_pool_clean(&h.stats());
}
