//! Several reactors (`ReactorConfig::reactors`): a request goes to the reactor of the CPU its sender
//! runs on; each reactor answers what it took, keeps its own pool balanced, and drains at shutdown.
//! Needs at least two CPUs to show the spread; on one CPU it checks that one reactor serves all.

#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::io::Write;

use arsyncfs::reactor::{Reactor, ReactorConfig};
use reactor_util::{
    Answer, ChannelCompletions, Tagged, assert_pool_clean, collect, fifo, new_file, wait_until,
};

fn allowed_cpus() -> Vec<usize> {
    let set = rustix::thread::sched_getaffinity(None).unwrap();
    (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect()
}

/// One reactor per CPU, 8 buffers of 64 KiB in all.
fn per_cpu_reactors() -> Reactor<ChannelCompletions> {
    Reactor::<ChannelCompletions>::start(ReactorConfig {
        reactors: 0,
        buffers: 8,
        buffer_size: 64 << 10,
        ..ReactorConfig::default()
    })
    .unwrap()
}

/// Runs `f` on a thread pinned to `cpu`.
fn on_cpu<T: Send + 'static>(cpu: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// One reactor per CPU: reads and writes sent from a thread pinned to each CPU are answered right,
/// each reactor took exactly the requests of its CPU, and every reactor's pool is balanced.
#[test]
fn requests_go_to_the_reactor_of_their_cpu() {
    let cpus = allowed_cpus();
    let dir = tempfile::tempdir().unwrap();
    let (path, file) = new_file(dir.path(), "data");
    std::fs::write(&path, vec![0u8; 1 << 20]).unwrap();
    let reactor = per_cpu_reactors();
    let h = reactor.handle();
    assert_eq!(h.reactors(), cpus.len());
    let per_cpu = 50u64;
    for (i, &cpu) in cpus.iter().enumerate() {
        let (h, file) = (h.clone(), file.clone());
        on_cpu(cpu, move || {
            let (tx, rx) = crossbeam_channel::unbounded();
            for k in 0..per_cpu {
                let off = (i as u64 * per_cpu + k) * 4096;
                h.write(
                    file.clone(),
                    off,
                    &[i as u8 + 1; 4096],
                    Tagged(k, tx.clone()),
                );
            }
            for (_, a) in collect(&rx, per_cpu) {
                assert!(matches!(a, Answer::Write(_, Ok(4096))), "{a:?}");
            }
            for k in 0..per_cpu {
                let off = (i as u64 * per_cpu + k) * 4096;
                h.read(file.clone(), off, 4096, Tagged(k, tx.clone()));
            }
            for (_, a) in collect(&rx, per_cpu) {
                match a {
                    Answer::Read(_, Ok(d)) => assert_eq!(d, vec![i as u8 + 1; 4096]),
                    other => panic!("{other:?}"),
                }
            }
        });
    }
    let lanes = h.lane_stats();
    reactor.shutdown();
    for (i, s) in lanes.iter().enumerate() {
        assert_eq!(
            s.received,
            2 * per_cpu,
            "reactor {i} took the requests of CPU {}: {lanes:?}",
            cpus[i]
        );
    }
    for s in h.lane_stats() {
        assert_pool_clean(&s);
    }
}

/// Shutdown with operations in flight on every reactor (a FIFO read each, which only completes when
/// the FIFO gets data): shutdown waits for all of them, each request is answered exactly once, and
/// requests after shutdown get ESHUTDOWN from whichever reactor they would have gone to.
#[test]
fn shutdown_drains_every_reactor() {
    let cpus = allowed_cpus();
    let dir = tempfile::tempdir().unwrap();
    let (pipe, mut pipe_writer) = fifo(dir.path());
    let (_, file) = new_file(dir.path(), "data");
    let reactor = per_cpu_reactors();
    let h = reactor.handle();
    let (tx, rx) = crossbeam_channel::unbounded();
    for (i, &cpu) in cpus.iter().enumerate() {
        let (h, pipe, tx) = (h.clone(), pipe.clone(), tx.clone());
        on_cpu(cpu, move || h.read(pipe, 0, 2, Tagged(i as u64, tx)));
    }
    wait_until(&h, "a FIFO read in flight on every reactor", |_| {
        h.lane_stats().iter().all(|s| s.pool.in_use == 1)
    });
    let shutdown = std::thread::spawn(move || reactor.shutdown());
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        !shutdown.is_finished(),
        "shutdown must wait for the reads in flight"
    );
    pipe_writer.write_all(&vec![b'x'; 2 * cpus.len()]).unwrap();
    shutdown.join().unwrap();
    let n = cpus.len() as u64;
    for (i, &cpu) in cpus.iter().enumerate() {
        let (h, file, tx) = (h.clone(), file.clone(), tx.clone());
        on_cpu(cpu, move || h.read(file, 0, 1, Tagged(n + i as u64, tx)));
    }
    let answers = collect(&rx, 2 * n);
    for (tag, a) in answers {
        if tag < n {
            assert!(
                matches!(&a, Answer::Read(_, Ok(d)) if d.len() == 2),
                "{a:?}"
            );
        } else {
            assert_eq!(a.errno(), Some(libc::ESHUTDOWN), "{a:?}");
        }
    }
    for s in h.lane_stats() {
        assert_pool_clean(&s);
    }
}

/// More reactors asked for than CPUs: one per CPU.
#[test]
fn no_more_reactors_than_cpus() {
    let reactor = Reactor::<ChannelCompletions>::start(ReactorConfig {
        reactors: 1024,
        buffers: 4,
        ..ReactorConfig::default()
    })
    .unwrap();
    assert_eq!(reactor.handle().reactors(), allowed_cpus().len());
    reactor.shutdown();
}
