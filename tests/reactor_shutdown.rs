//! Shutdown drains: every request gets exactly one answer, whatever was in flight.

#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use arsyncfs::reactor::{Reactor, ReactorConfig};
use reactor_util::{
    Answer, ChannelCompletions, Rng, Tagged, assert_pool_clean, collect, fifo, new_file, wait_until,
};

/// Shutdown while reads are in the kernel, reads wait for buffers and writers are blocked on the
/// pool: the in-flight and queued reads finish (shutdown waits for them), blocked writers fail with
/// ESHUTDOWN, later requests fail with ESHUTDOWN, and each request is answered exactly once.
#[test]
fn shutdown_with_requests_in_flight_answers_each_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "data");
    std::fs::write(&path, vec![4u8; 1 << 20]).unwrap();
    let (pipe, mut pipe_writer) = fifo(dir.path());
    let reactor = Reactor::<ChannelCompletions>::start(ReactorConfig {
        buffers: 2,
        buffer_size: 64 << 10,
        ..ReactorConfig::default()
    })
    .unwrap();
    let h = reactor.handle();
    let (tx, rx) = crossbeam_channel::unbounded();
    h.read(pipe.clone(), 0, 3, Tagged(0, tx.clone()));
    h.read(pipe.clone(), 0, 3, Tagged(1, tx.clone()));
    wait_until(&h, "fifo reads in flight", |s| s.pool.in_use == 2);
    for i in 2..12u64 {
        h.read(file.clone(), i * 4096, 4096, Tagged(i, tx.clone()));
    }
    h.sync(file.clone(), false, Tagged(12, tx.clone()));
    wait_until(&h, "reads queued", |s| s.received == 13);
    // Checked once the FIFO reads are released (a panic before would hang the shutdown).
    let queued = h.stats();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let h = h.clone();
            let file = file.clone();
            let tx = tx.clone();
            std::thread::spawn(move || h.write(file, 0, b"late", Tagged(13 + w, tx)))
        })
        .collect();
    wait_until(&h, "writers blocked on the pool", |s| s.pool.waits >= 2);
    let shutdown = std::thread::spawn(move || reactor.shutdown());
    for w in writers {
        w.join().unwrap();
    }
    // Shutdown cannot finish while the FIFO reads are in flight; release them.
    assert!(!shutdown.is_finished());
    pipe_writer.write_all(b"abcdef").unwrap();
    shutdown.join().unwrap();
    // After shutdown: answered at once.
    h.read(file.clone(), 0, 10, Tagged(15, tx.clone()));
    h.write(file.clone(), 0, b"x", Tagged(16, tx.clone()));
    for (tag, a) in collect(&rx, 17) {
        match (tag, &a) {
            (0 | 1, Answer::Read(_, Ok(d))) => assert_eq!(d.len(), 3),
            (2..=11, Answer::Read(_, Ok(d))) => assert_eq!(d, &vec![4u8; 4096]),
            (12, Answer::Done(_, Ok(()))) => {}
            (13..=16, _) => assert_eq!(a.errno(), Some(libc::ESHUTDOWN), "{a:?}"),
            _ => panic!("tag {tag}: {a:?}"),
        }
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![4u8; 1 << 20],
        "a write after shutdown landed"
    );
    assert_pool_clean(&h.stats());
    // 12 reads waited (the sync may be done); in the end the reactor answered the 13 it was sent,
    // and the senders the rest.
    assert_eq!(queued.sent, 13, "{queued:?}");
    assert!(queued.unanswered >= 12, "{queued:?}");
    let s = h.stats();
    assert_eq!((s.sent, s.answered, s.unanswered), (13, 13, 0), "{s:?}");
}

/// Senders keep sending from several threads while the reactor shuts down under them.
#[test]
fn shutdown_under_load_loses_nothing_and_answers_nothing_twice() {
    const THREADS: u64 = 4;
    const PER: u64 = 3000;
    for round in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = new_file(dir.path(), "load");
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        let reactor = Reactor::<ChannelCompletions>::start(ReactorConfig {
            buffers: 8,
            buffer_size: 16 << 10,
            ..ReactorConfig::default()
        })
        .unwrap();
        let h = reactor.handle();
        let (tx, rx) = crossbeam_channel::unbounded();
        let go = AtomicBool::new(false);
        let early = std::thread::scope(|s| {
            for t in 0..THREADS {
                let h = h.clone();
                let file = file.clone();
                let tx = tx.clone();
                let go = &go;
                s.spawn(move || {
                    while !go.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                    let mut rng = Rng::new(round * 10 + t + 1);
                    for k in 0..PER {
                        let tag = t * PER + k;
                        let off = rng.below(1 << 20) & !511;
                        match k % 4 {
                            0 | 1 => h.read(file.clone(), off, 512, Tagged(tag, tx.clone())),
                            2 => h.write(file.clone(), off, &[1u8; 512], Tagged(tag, tx.clone())),
                            _ if k % 8 == 3 => h.sync(file.clone(), true, Tagged(tag, tx.clone())),
                            _ => h.fallocate(
                                file.clone(),
                                libc::FALLOC_FL_KEEP_SIZE,
                                off,
                                512,
                                Tagged(tag, tx.clone()),
                            ),
                        }
                    }
                });
            }
            go.store(true, Ordering::Release);
            // Shut down once some answers have come back (a point in the middle of the load).
            let mut early = Vec::new();
            for _ in 0..(round + 1) * 500 {
                early.push(reactor_util::one(&rx));
            }
            reactor.shutdown();
            early
        });
        let n = THREADS * PER;
        let mut answers = collect_with(&rx, early, n);
        let mut served = 0;
        let mut refused = 0;
        for (tag, a) in answers.drain() {
            match a.errno() {
                None => served += 1,
                Some(libc::ESHUTDOWN) => refused += 1,
                Some(e) => panic!("tag {tag}: errno {e}: {a:?}"),
            }
            if let Answer::Read(_, Ok(d)) = a {
                assert_eq!(d, vec![1u8; 512]);
            }
        }
        assert_eq!(served + refused, n);
        assert!(served >= (round + 1) * 500);
        assert_pool_clean(&h.stats());
    }
}

fn collect_with(
    rx: &crossbeam_channel::Receiver<Answer>,
    early: Vec<Answer>,
    n: u64,
) -> std::collections::HashMap<u64, Answer> {
    let mut seen = std::collections::HashMap::new();
    for a in early {
        let tag = a.tag();
        assert!(seen.insert(tag, a).is_none(), "tag {tag} answered twice");
    }
    let rest = n - seen.len() as u64;
    for _ in 0..rest {
        let a = reactor_util::one(rx);
        let tag = a.tag();
        assert!(tag < n);
        assert!(seen.insert(tag, a).is_none(), "tag {tag} answered twice");
    }
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(20))
            .is_err(),
        "extra answers"
    );
    seen
}

/// Dropping the reactor without calling shutdown drains it the same way.
#[test]
fn dropping_the_reactor_drains_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = new_file(dir.path(), "drop");
    let reactor = Reactor::<ChannelCompletions>::start(ReactorConfig::default()).unwrap();
    let h = reactor.handle();
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..200u64 {
        h.write(file.clone(), i * 10, b"0123456789", Tagged(i, tx.clone()));
    }
    drop(reactor);
    let answers = collect(&rx, 200);
    assert!(
        answers
            .values()
            .all(|a| matches!(a, Answer::Write(_, Ok(10))))
    );
    assert_eq!(file.metadata().unwrap().len(), 2000);
    assert_pool_clean(&h.stats());
}

/// `wait_answered` waits for every request sent so far to be answered: not while a read is stuck on
/// an empty FIFO, yes once it is fed and answered (what the CLI does before unmounting).
#[test]
fn wait_answered_waits_for_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let (_path, file) = new_file(dir.path(), "data");
    let (pipe, mut pipe_writer) = fifo(dir.path());
    let reactor = Reactor::<ChannelCompletions>::start(ReactorConfig::default()).unwrap();
    let h = reactor.handle();
    assert!(reactor.wait_answered(std::time::Duration::ZERO), "idle");
    let (tx, rx) = crossbeam_channel::unbounded();
    h.write(file.clone(), 0, b"done", Tagged(0, tx.clone()));
    h.read(pipe.clone(), 0, 3, Tagged(1, tx.clone()));
    assert!(!reactor.wait_answered(std::time::Duration::from_millis(50)));
    pipe_writer.write_all(b"abc").unwrap();
    assert!(reactor.wait_answered(std::time::Duration::from_secs(10)));
    // Both answers are out by then.
    assert_eq!(rx.len(), 2);
    let answers = collect(&rx, 2);
    assert!(answers.values().all(|a| a.errno().is_none()), "{answers:?}");
    reactor.shutdown();
}
