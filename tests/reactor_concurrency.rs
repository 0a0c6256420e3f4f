//! Many senders, thousands of requests in flight, and a pool too small for them all.

#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::io::Write;

use arsyncfs::reactor::ReactorConfig;
use reactor_util::{Answer, Harness, Rng, Tagged, collect, fifo, new_file, one, wait_until};

/// 8 threads each own a region of one shared file. In each round a thread writes a new version of
/// all its 4 KiB slots with every write in flight at once, then reads them all back at once, with
/// syncs and fallocates mixed in. Every request is answered exactly once and every read sees the
/// round's data.
#[test]
fn many_threads_thousands_of_concurrent_requests() {
    const THREADS: u64 = 8;
    const SLOTS: u64 = 48;
    const ROUNDS: u64 = 10;
    const SLOT: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "shared");
    let r = Harness::with(ReactorConfig {
        buffers: 32,
        buffer_size: 64 << 10,
        ..ReactorConfig::default()
    });
    let total: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let h = r.h.clone();
                let file = file.clone();
                s.spawn(move || {
                    let (tx, rx) = crossbeam_channel::unbounded();
                    let mut rng = Rng::new(t + 1);
                    let base = t * SLOTS * SLOT as u64;
                    let mut sent = 0u64;
                    for round in 0..ROUNDS {
                        let mut expect = Vec::new();
                        let first = sent;
                        for slot in 0..SLOTS {
                            let mut data = vec![0u8; SLOT];
                            rng.fill(&mut data);
                            data[0] = round as u8;
                            h.write(
                                file.clone(),
                                base + slot * SLOT as u64,
                                &data,
                                Tagged(sent, tx.clone()),
                            );
                            sent += 1;
                            expect.push(data);
                        }
                        h.sync(file.clone(), round % 2 == 0, Tagged(sent, tx.clone()));
                        sent += 1;
                        h.fallocate(
                            file.clone(),
                            libc::FALLOC_FL_KEEP_SIZE,
                            base,
                            SLOTS * SLOT as u64,
                            Tagged(sent, tx.clone()),
                        );
                        sent += 1;
                        for _ in first..sent {
                            match one(&rx) {
                                Answer::Write(_, Ok(n)) => assert_eq!(n, SLOT),
                                Answer::Done(_, Ok(())) => {}
                                other => panic!("thread {t}: {other:?}"),
                            }
                        }
                        let first = sent;
                        for slot in 0..SLOTS {
                            h.read(
                                file.clone(),
                                base + slot * SLOT as u64,
                                SLOT,
                                Tagged(sent, tx.clone()),
                            );
                            sent += 1;
                        }
                        for _ in first..sent {
                            match one(&rx) {
                                Answer::Read(tag, Ok(data)) => {
                                    let slot = (tag - first) as usize;
                                    assert!(
                                        data == expect[slot],
                                        "thread {t} round {round} slot {slot}"
                                    );
                                }
                                other => panic!("thread {t}: {other:?}"),
                            }
                        }
                    }
                    assert!(rx.try_recv().is_err(), "an extra answer");
                    sent
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(total, THREADS * ROUNDS * (2 * SLOTS + 2));
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        THREADS * SLOTS * SLOT as u64
    );
    let stats = r.finish();
    assert_eq!(stats.received, total);
}

/// Two buffers, both held by reads that cannot finish yet: every further read waits in the reactor
/// and every further write waits in its sender. Nothing grows; when the buffers come back,
/// everything completes.
#[test]
fn backpressure_with_a_tiny_pool() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = new_file(dir.path(), "data");
    std::fs::write(dir.path().join("data"), vec![9u8; 1 << 20]).unwrap();
    let (pipe, mut pipe_writer) = fifo(dir.path());
    let r = Harness::with(ReactorConfig {
        buffers: 2,
        buffer_size: 64 << 10,
        ..ReactorConfig::default()
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    // Tags 0 and 1: reads parked on the FIFO, holding both buffers.
    r.h.read(pipe.clone(), 0, 5, Tagged(0, tx.clone()));
    r.h.read(pipe.clone(), 0, 5, Tagged(1, tx.clone()));
    wait_until(&r.h, "both buffers in use", |s| s.pool.in_use == 2);
    // Reads now queue inside the reactor.
    for i in 2..22u64 {
        r.h.read(file.clone(), i * 4096, 4096, Tagged(i, tx.clone()));
    }
    wait_until(&r.h, "reads queued for buffers", |s| {
        s.buffer_waits > 0 && s.received == 22
    });
    // Writers block in their own threads until a buffer is free.
    const WRITERS: u64 = 3;
    const PER_WRITER: u64 = 100;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let h = r.h.clone();
            let file = file.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for k in 0..PER_WRITER {
                    let tag = 22 + w * PER_WRITER + k;
                    h.write(
                        file.clone(),
                        (1 << 20) + tag * 100,
                        &[w as u8 + 1; 100],
                        Tagged(tag, tx.clone()),
                    );
                }
            })
        })
        .collect();
    wait_until(&r.h, "a writer waiting for a buffer", |s| s.pool.waits > 0);
    assert_eq!(r.h.stats().pool.in_use, 2);
    // Let the parked reads finish; everything else follows.
    pipe_writer.write_all(b"helloworld").unwrap();
    for w in writers {
        w.join().unwrap();
    }
    let n = 22 + WRITERS * PER_WRITER;
    let answers = collect(&rx, n);
    let mut fifo_data = Vec::new();
    for (tag, a) in answers {
        match a {
            Answer::Read(t, Ok(d)) if t < 2 => fifo_data.extend(d),
            Answer::Read(_, Ok(d)) => assert_eq!(d, vec![9u8; 4096], "read {tag}"),
            Answer::Write(_, Ok(100)) => {}
            other => panic!("{other:?}"),
        }
    }
    fifo_data.sort();
    let mut expect = b"helloworld".to_vec();
    expect.sort();
    assert_eq!(fifo_data, expect);
    let stats = r.finish();
    assert!(
        stats.pool.high_water <= 2 && stats.pool.total <= 2,
        "{stats:?}"
    );
    assert!(stats.pool.waits > 0 && stats.buffer_waits > 0, "{stats:?}");
}

/// Many senders with mixed reads and writes against two buffers, no waiting between requests.
#[test]
fn a_tiny_pool_under_a_flood_of_mixed_requests() {
    const THREADS: u64 = 4;
    const PER: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "flood");
    std::fs::write(&path, vec![5u8; 256 << 10]).unwrap();
    let r = Harness::with(ReactorConfig {
        buffers: 2,
        buffer_size: 16 << 10,
        ..ReactorConfig::default()
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let h = r.h.clone();
            let file = file.clone();
            let tx = tx.clone();
            s.spawn(move || {
                let mut rng = Rng::new(t + 100);
                for k in 0..PER {
                    let tag = t * PER + k;
                    let off = rng.below(256 << 10) & !4095;
                    if k % 2 == 0 {
                        h.read(file.clone(), off, 4096, Tagged(tag, tx.clone()));
                    } else {
                        // Writes go past the region the reads look at.
                        h.write(
                            file.clone(),
                            (1 << 20) + off,
                            &[6u8; 4096],
                            Tagged(tag, tx.clone()),
                        );
                    }
                }
            });
        }
    });
    for (tag, a) in collect(&rx, THREADS * PER) {
        match a {
            Answer::Read(_, Ok(d)) => assert_eq!(d, vec![5u8; 4096], "read {tag}"),
            Answer::Write(_, Ok(4096)) => {}
            other => panic!("{other:?}"),
        }
    }
    let stats = r.finish();
    assert!(
        stats.pool.high_water <= 2 && stats.pool.total <= 2,
        "{stats:?}"
    );
    assert_eq!(stats.pool.taken, THREADS * PER);
}
