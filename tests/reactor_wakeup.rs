//! Wake-ups: none is ever lost, and a busy reactor is not woken for every request.

#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::time::Duration;

use arsyncfs::reactor::ReactorConfig;
use reactor_util::{Answer, Harness, Tagged, collect, new_file, one};

/// Without any spinning the reactor sleeps whenever its queue is empty, so strictly alternating
/// requests from several threads each need a wake-up. A lost one would hang a sender (and fail the
/// test after `PATIENCE`).
#[test]
fn no_wake_up_is_ever_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "ping");
    std::fs::write(&path, b"pong").unwrap();
    let r = Harness::with(ReactorConfig {
        spin: Duration::ZERO,
        ..ReactorConfig::default()
    });
    std::thread::scope(|s| {
        for _ in 0..4 {
            let h = r.h.clone();
            let file = file.clone();
            s.spawn(move || {
                let (tx, rx) = crossbeam_channel::bounded(1);
                for i in 0..1500u64 {
                    h.read(file.clone(), 0, 4, Tagged(i, tx.clone()));
                    match one(&rx) {
                        Answer::Read(t, Ok(d)) => assert!(t == i && d == b"pong"),
                        other => panic!("{other:?}"),
                    }
                }
            });
        }
    });
    let stats = r.finish();
    assert_eq!(stats.received, 6000);
    assert!(stats.wakeups > 0 && stats.sleeps > 0, "{stats:?}");
}

/// A sender that keeps the queue full does not pay for a wake-up per request: it rings only when
/// the reactor announced it would sleep.
#[test]
fn a_busy_reactor_is_not_woken_for_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "busy");
    std::fs::write(&path, vec![3u8; 64 << 10]).unwrap();
    let r = Harness::new();
    let (tx, rx) = crossbeam_channel::unbounded();
    const N: u64 = 20_000;
    for i in 0..N {
        r.h.read(file.clone(), (i % 16) * 4096, 4096, Tagged(i, tx.clone()));
    }
    assert_eq!(collect(&rx, N).len() as u64, N);
    let stats = r.finish();
    assert!(
        stats.wakeups < N / 2,
        "woken {} times for {N} requests",
        stats.wakeups
    );
}
