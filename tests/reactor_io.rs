//! Reads, writes, syncs, fallocate and close through the reactor on real files, checked against a
//! model of the file's contents.

#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::os::unix::fs::MetadataExt;

use arsyncfs::reactor::ReactorConfig;
use reactor_util::{Answer, Harness, Rng, Tagged, collect, disk_tempdir, new_file};

/// Random reads and writes, one at a time, at random offsets and lengths, each checked against an
/// in-memory model of the file; then the whole file compared with the model.
#[test]
fn random_offsets_match_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "model");
    let r = Harness::with(ReactorConfig {
        buffers: 4,
        buffer_size: 128 << 10,
        ..ReactorConfig::default()
    });
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng::new(0x5eed);
    const SPAN: u64 = 3 << 20;
    for i in 0..1500 {
        let offset = rng.below(SPAN);
        let len = 1 + rng.below(128 << 10) as usize;
        if rng.below(2) == 0 {
            let mut data = vec![0u8; len];
            rng.fill(&mut data);
            assert_eq!(r.write(&file, offset, &data).unwrap(), len, "write #{i}");
            let end = offset as usize + len;
            if model.len() < end {
                model.resize(end, 0);
            }
            model[offset as usize..end].copy_from_slice(&data);
        } else {
            let got = r.read(&file, offset, len).unwrap();
            let start = (offset as usize).min(model.len());
            let end = (offset as usize + len).min(model.len());
            assert_eq!(got.len(), end - start, "read #{i} length at {offset}+{len}");
            assert!(
                got == model[start..end],
                "read #{i} contents at {offset}+{len}"
            );
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), model);
    r.finish();
}

/// Many writes to disjoint ranges in flight at once, then many reads in flight at once.
#[test]
fn concurrent_disjoint_writes_then_reads_match() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "disjoint");
    let r = Harness::with(ReactorConfig {
        buffers: 16,
        buffer_size: 64 << 10,
        ..ReactorConfig::default()
    });
    let mut rng = Rng::new(7);
    const N: u64 = 400;
    const CHUNK: usize = 10_000; // not a multiple of anything the kernel likes
    let mut model = vec![0u8; N as usize * CHUNK];
    rng.fill(&mut model);
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..N {
        let range = i as usize * CHUNK..(i as usize + 1) * CHUNK;
        r.h.write(
            file.clone(),
            range.start as u64,
            &model[range],
            Tagged(i, tx.clone()),
        );
    }
    for (tag, a) in collect(&rx, N) {
        match a {
            Answer::Write(_, Ok(n)) => assert_eq!(n, CHUNK, "write {tag}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), model);
    for i in 0..N {
        r.h.read(file.clone(), i * CHUNK as u64, CHUNK, Tagged(i, tx.clone()));
    }
    for (tag, a) in collect(&rx, N) {
        match a {
            Answer::Read(_, Ok(data)) => {
                let start = tag as usize * CHUNK;
                assert!(data == model[start..start + CHUNK], "read {tag}");
            }
            other => panic!("{other:?}"),
        }
    }
    r.finish();
}

#[test]
fn end_of_file_and_short_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = new_file(dir.path(), "eof");
    let r = Harness::new();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(r.write(&file, 0, &data).unwrap(), data.len());
    // A read across the end returns only the bytes that exist.
    assert_eq!(r.read(&file, 9_000, 4096).unwrap(), &data[9_000..]);
    // At and past the end: an empty answer, not an error.
    assert_eq!(r.read(&file, 10_000, 4096).unwrap(), b"");
    assert_eq!(r.read(&file, 1 << 40, 4096).unwrap(), b"");
    // A zero-length read is empty too.
    assert_eq!(r.read(&file, 0, 0).unwrap(), b"");
    // An exact read of the whole file, and one larger than the file.
    assert_eq!(r.read(&file, 0, 10_000).unwrap(), data);
    assert_eq!(r.read(&file, 0, 1 << 20).unwrap(), data);
    // A zero-length write writes nothing and succeeds.
    assert_eq!(r.write(&file, 20_000, b"").unwrap(), 0);
    assert_eq!(file.metadata().unwrap().len(), 10_000);
    r.finish();
}

/// With a single buffer, every request reuses it; a shorter read after a longer one must not show
/// the longer one's bytes.
#[test]
fn a_reused_buffer_never_shows_stale_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, big) = new_file(dir.path(), "big");
    let (_, small) = new_file(dir.path(), "small");
    let (_, empty) = new_file(dir.path(), "empty");
    let r = Harness::with(ReactorConfig {
        buffers: 1,
        buffer_size: 64 << 10,
        ..ReactorConfig::default()
    });
    assert_eq!(r.write(&big, 0, &[0xAA; 64 << 10]).unwrap(), 64 << 10);
    assert_eq!(r.write(&small, 0, &[0x55; 100]).unwrap(), 100);
    for _ in 0..3 {
        let got = r.read(&big, 0, 64 << 10).unwrap();
        assert!(got.len() == 64 << 10 && got.iter().all(|&b| b == 0xAA));
        // Short read (end of file) into the buffer that just held 64 KiB of 0xAA.
        assert_eq!(r.read(&small, 0, 64 << 10).unwrap(), vec![0x55; 100]);
        assert_eq!(r.read(&small, 90, 4096).unwrap(), vec![0x55; 10]);
        // Empty read into the same buffer.
        assert_eq!(r.read(&empty, 0, 64 << 10).unwrap(), b"");
        // A read of a hole reads zeros, not 0xAA.
        assert_eq!(r.write(&small, 200_000, b"x").unwrap(), 1);
        let hole = r.read(&small, 100, 50_000).unwrap();
        assert!(hole.len() == 50_000 && hole.iter().all(|&b| b == 0));
        small.set_len(100).unwrap();
    }
    let stats = r.finish();
    assert_eq!(stats.pool.total, 1);
    assert!(stats.pool.reuses > 10, "{stats:?}");
}

#[test]
fn requests_larger_than_a_buffer_fail_with_einval() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = new_file(dir.path(), "big");
    let r = Harness::with(ReactorConfig {
        buffers: 2,
        buffer_size: 4096,
        ..ReactorConfig::default()
    });
    assert_eq!(r.h.max_request_size(), 4096);
    let e = r.read(&file, 0, 4097).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    let e = r.write(&file, 0, &[1u8; 4097]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(r.write(&file, 0, &[1u8; 4096]).unwrap(), 4096);
    assert_eq!(r.read(&file, 0, 4096).unwrap(), vec![1u8; 4096]);
    r.finish();
}

#[test]
fn sync_and_datasync_succeed() {
    let dir = disk_tempdir();
    let (_, file) = new_file(dir.path(), "sync");
    let r = Harness::new();
    r.write(&file, 0, b"durable").unwrap();
    r.sync(&file, false).unwrap();
    r.sync(&file, true).unwrap();
    r.finish();
}

/// Close lets go of one holder (through the reactor, since another holder may be an operation in
/// flight); the descriptor closes only with the last one, which is answered at once, without a
/// round trip through the reactor.
#[test]
fn close_closes_the_descriptor_with_the_last_holder() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "close");
    let r = Harness::new();
    let fd = file.as_raw_fd();
    let link = format!("/proc/self/fd/{fd}");
    let other = file.clone();
    let received = r.h.stats().received;
    r.close(file).unwrap();
    assert_eq!(
        r.h.stats().received,
        received + 1,
        "a shared file goes to the reactor"
    );
    // Still open: another holder remains and can use it.
    assert_eq!(std::fs::read_link(&link).unwrap(), path);
    assert_eq!(r.write(&other, 0, b"still open").unwrap(), 10);
    let received = r.h.stats().received;
    r.close(other).unwrap();
    assert_eq!(
        r.h.stats().received,
        received,
        "the last holder closes it at once"
    );
    // Closed now (the number may have been reused by another test's file, never for ours).
    match std::fs::read_link(&link) {
        Ok(target) => assert_ne!(target, path, "descriptor {fd} still open"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"still open");
    r.finish();
}

fn blocks(file: &std::fs::File) -> u64 {
    file.metadata().unwrap().blocks()
}

#[test]
fn fallocate_default_mode_extends_the_file() {
    let dir = disk_tempdir();
    let (_, file) = new_file(dir.path(), "falloc");
    let r = Harness::new();
    r.fallocate(&file, 0, 0, 1 << 20).unwrap();
    assert_eq!(file.metadata().unwrap().len(), 1 << 20);
    assert!(blocks(&file) >= (1 << 20) / 512, "{} blocks", blocks(&file));
    assert_eq!(r.read(&file, 4096, 4096).unwrap(), vec![0u8; 4096]);
    r.finish();
}

#[test]
fn fallocate_keep_size_allocates_without_growing() {
    let dir = disk_tempdir();
    let (_, file) = new_file(dir.path(), "keep");
    let r = Harness::new();
    r.write(&file, 0, b"abc").unwrap();
    r.fallocate(&file, libc::FALLOC_FL_KEEP_SIZE, 0, 1 << 20)
        .unwrap();
    assert_eq!(file.metadata().unwrap().len(), 3);
    assert!(blocks(&file) >= (1 << 20) / 512, "{} blocks", blocks(&file));
    assert_eq!(r.read(&file, 0, 100).unwrap(), b"abc");
    r.finish();
}

#[test]
fn fallocate_punch_hole_frees_blocks_and_reads_zeros() {
    let dir = disk_tempdir();
    let (_, file) = new_file(dir.path(), "punch");
    let r = Harness::new();
    let data = vec![0xFFu8; 1 << 20];
    r.write(&file, 0, &data).unwrap();
    r.sync(&file, false).unwrap();
    let before = blocks(&file);
    r.fallocate(
        &file,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        256 << 10,
        256 << 10,
    )
    .unwrap();
    assert_eq!(file.metadata().unwrap().len(), 1 << 20);
    assert_eq!(before - blocks(&file), (256 << 10) / 512, "blocks freed");
    let got = r.read(&file, 0, 1 << 20).unwrap();
    assert!(got[..256 << 10].iter().all(|&b| b == 0xFF));
    assert!(got[256 << 10..512 << 10].iter().all(|&b| b == 0));
    assert!(got[512 << 10..].iter().all(|&b| b == 0xFF));
    // Punching a hole without KEEP_SIZE is refused by the kernel; the error comes back.
    let e = r
        .fallocate(&file, libc::FALLOC_FL_PUNCH_HOLE, 0, 4096)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP));
    r.finish();
}

#[test]
fn fallocate_zero_range_zeroes_in_place() {
    let dir = disk_tempdir();
    let (_, file) = new_file(dir.path(), "zero");
    let r = Harness::new();
    r.write(&file, 0, &[0xEEu8; 64 << 10]).unwrap();
    r.fallocate(&file, libc::FALLOC_FL_ZERO_RANGE, 4096, 8192)
        .unwrap();
    let got = r.read(&file, 0, 64 << 10).unwrap();
    assert_eq!(got.len(), 64 << 10);
    assert!(got[..4096].iter().all(|&b| b == 0xEE));
    assert!(got[4096..12288].iter().all(|&b| b == 0));
    assert!(got[12288..].iter().all(|&b| b == 0xEE));
    // Zeroing past the end grows the file (no KEEP_SIZE) ...
    r.fallocate(&file, libc::FALLOC_FL_ZERO_RANGE, 64 << 10, 4096)
        .unwrap();
    assert_eq!(file.metadata().unwrap().len(), 68 << 10);
    // ... or not (KEEP_SIZE).
    r.fallocate(
        &file,
        libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
        1 << 20,
        4096,
    )
    .unwrap();
    assert_eq!(file.metadata().unwrap().len(), 68 << 10);
    r.finish();
}

/// Buffers are aligned, so a file opened with O_DIRECT works for aligned requests.
#[test]
fn o_direct_aligned_requests_work() {
    let dir = disk_tempdir();
    let path = dir.path().join("direct");
    let file = reactor_util::open_direct(&path);
    let r = Harness::new();
    let mut data = vec![0u8; 64 << 10];
    Rng::new(3).fill(&mut data);
    for i in 0..8u64 {
        assert_eq!(r.write(&file, i * (64 << 10), &data).unwrap(), 64 << 10);
    }
    for i in 0..8u64 {
        assert_eq!(r.read(&file, i * (64 << 10), 64 << 10).unwrap(), data);
    }
    assert_eq!(r.read(&file, 4096, 4096).unwrap(), &data[4096..8192]);
    r.finish();
}
