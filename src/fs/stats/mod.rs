//! Counters of what the kernel asks of the filesystem: requests, errors (by errno) and latency
//! per operation, and the sizes of reads and writes, readable while the mount runs.
//!
//! Recording must cost nothing measurable, so every thread that records (the session threads,
//! the reactor threads that answer data requests, the thread that answers direct writes after an
//! invalidation) writes into a shard of its own, chosen by a number the thread draws once: relaxed
//! atomic adds on cache lines no other thread writes, no lock. A snapshot sums the shards.
//!
//! A request is counted when it arrives ([`FsStats::start`]) and again, with its latency and its
//! errno if it failed, just before its answer is sent ([`FsStats::finish`]): the latency runs from
//! the filesystem's callback to the answer, queueing in the reactor and waiting for an invalidation
//! included, and a program that got its answer finds the request counted.

mod errnos;
mod histogram;
mod op;

pub use histogram::HistogramSnapshot;
pub use op::Op;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use errnos::{ErrnoCount, ErrnoCounts, OP_LIMIT};
use histogram::Histogram;

// The errno table numbers operations below its limit.
const _: () = assert!(Op::COUNT <= OP_LIMIT);

/// Counters of one operation.
#[derive(Default)]
struct OpCounters {
    started: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

/// Sizes and routes of reads and writes.
#[derive(Default)]
struct DataCounters {
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    largest_read: AtomicU64,
    largest_write: AtomicU64,
    inline_writes: AtomicU64,
    passthrough_opens: AtomicU64,
    passthrough_fallbacks: AtomicU64,
    passthrough_reads: AtomicU64,
    passthrough_writes: AtomicU64,
}

/// What one thread (or the few that share its number) records; aligned so that no two shards
/// share a cache line.
#[repr(align(128))]
struct Shard {
    ops: [OpCounters; Op::COUNT],
    data: DataCounters,
    errnos: ErrnoCounts,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            ops: std::array::from_fn(|_| OpCounters::default()),
            data: DataCounters::default(),
            errnos: ErrnoCounts::default(),
        }
    }
}

/// The number of the calling thread, drawn at its first count.
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

fn add_max(counter: &AtomicU64, value: u64) {
    if value > counter.load(Ordering::Relaxed) {
        counter.fetch_max(value, Ordering::Relaxed);
    }
}

pub struct FsStats {
    /// A power of two of them, so that a thread's shard is its number masked.
    shards: Box<[Shard]>,
}

/// A request on its way: what [`FsStats::finish`] needs to count its answer.
#[derive(Debug, Clone, Copy)]
#[must_use = "a started request must be finished"]
pub struct OpTimer {
    op: Op,
    start: Instant,
}

impl Default for FsStats {
    fn default() -> Self {
        // Twice the CPUs: the threads that record are the session threads, the reactors and one
        // more, and threads beyond the shards only share (correctly, with some contention).
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_shards((2 * cpus).clamp(8, 64))
    }
}

impl FsStats {
    /// Counters with `n` shards (rounded up to a power of two).
    pub fn with_shards(n: usize) -> Self {
        FsStats {
            shards: (0..n.next_power_of_two())
                .map(|_| Shard::default())
                .collect(),
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[thread_number() & (self.shards.len() - 1)]
    }

    /// A request of `op` arrived.
    pub fn start(&self, op: Op) -> OpTimer {
        self.shard().ops[op.index()]
            .started
            .fetch_add(1, Ordering::Relaxed);
        OpTimer {
            op,
            start: Instant::now(),
        }
    }

    /// The request `timer` started is answered now, with `errno` if it failed.
    pub fn finish(&self, timer: OpTimer, errno: Option<i32>) {
        let ns = u64::try_from(timer.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let shard = self.shard();
        let op = &shard.ops[timer.op.index()];
        op.latency.record(ns);
        if let Some(errno) = errno {
            op.errors.fetch_add(1, Ordering::Relaxed);
            shard.errnos.record(timer.op.index(), errno);
        }
    }

    /// A read of `size` bytes was asked for.
    pub fn read(&self, size: u64) {
        let d = &self.shard().data;
        d.bytes_read.fetch_add(size, Ordering::Relaxed);
        add_max(&d.largest_read, size);
    }

    /// A write of `size` bytes arrived.
    pub fn write(&self, size: u64) {
        let d = &self.shard().data;
        d.bytes_written.fetch_add(size, Ordering::Relaxed);
        add_max(&d.largest_write, size);
    }

    pub fn inline_write(&self) {
        self.shard()
            .data
            .inline_writes
            .fetch_add(1, Ordering::Relaxed);
    }

    /// An open under `--passthrough`: served by the kernel, or a fallback to the daemon.
    pub fn passthrough_open(&self, by_kernel: bool) {
        let d = &self.shard().data;
        let counter = if by_kernel {
            &d.passthrough_opens
        } else {
            &d.passthrough_fallbacks
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A read (`write` false) or write that arrived on a handle the kernel serves itself.
    pub fn passthrough_io(&self, write: bool) {
        let d = &self.shard().data;
        let counter = if write {
            &d.passthrough_writes
        } else {
            &d.passthrough_reads
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters of every shard together now.
    pub fn snapshot(&self) -> FsStatsSnapshot {
        let mut ops: Vec<OpSnapshot> = Op::ALL
            .iter()
            .map(|&op| OpSnapshot {
                op,
                started: 0,
                errors: 0,
                errnos: Vec::new(),
                latency: HistogramSnapshot::default(),
            })
            .collect();
        let mut errnos: Vec<ErrnoCount> = Vec::new();
        let mut s = FsStatsSnapshot::default();
        for shard in self.shards.iter() {
            for (sum, c) in ops.iter_mut().zip(&shard.ops) {
                sum.started += c.started.load(Ordering::Relaxed);
                sum.errors += c.errors.load(Ordering::Relaxed);
                c.latency.add_to(&mut sum.latency);
            }
            shard.errnos.add_to(&mut errnos);
            let d = &shard.data;
            let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
            s.bytes_read += load(&d.bytes_read);
            s.bytes_written += load(&d.bytes_written);
            s.largest_read = s.largest_read.max(load(&d.largest_read));
            s.largest_write = s.largest_write.max(load(&d.largest_write));
            s.inline_writes += load(&d.inline_writes);
            s.passthrough_opens += load(&d.passthrough_opens);
            s.passthrough_fallbacks += load(&d.passthrough_fallbacks);
            s.passthrough_reads += load(&d.passthrough_reads);
            s.passthrough_writes += load(&d.passthrough_writes);
        }
        for e in errnos {
            ops[e.op].errnos.push((e.errno, e.count));
        }
        for op in &mut ops {
            // Most frequent first.
            op.errnos.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        s.reads = ops[Op::Read.index()].started;
        s.writes = ops[Op::Write.index()].started;
        s.flushes = ops[Op::Flush.index()].started;
        s.ops = ops;
        s
    }
}

/// One operation's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSnapshot {
    pub op: Op,
    /// Requests that arrived.
    pub started: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Those errors by errno, most frequent first (errors beyond what the counters keep apart are
    /// missing here: `errors` has them all).
    pub errnos: Vec<(i32, u64)>,
    /// Latency of the requests answered.
    pub latency: HistogramSnapshot,
}

impl OpSnapshot {
    /// Requests answered.
    pub fn answered(&self) -> u64 {
        self.latency.count()
    }
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsStatsSnapshot {
    /// Every operation, in [`Op::ALL`] order.
    pub ops: Vec<OpSnapshot>,
    pub reads: u64,
    pub writes: u64,
    /// Bytes asked for by reads (what the kernel requested, not what end of file allowed).
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub largest_read: u64,
    pub largest_write: u64,
    /// Writes the session threads wrote themselves (buffered ones; the rest went to the reactor).
    pub inline_writes: u64,
    /// Opens the kernel serves itself (`--passthrough`).
    pub passthrough_opens: u64,
    /// Opens under `--passthrough` served by the daemon instead (see fs/passthrough.rs).
    pub passthrough_fallbacks: u64,
    /// Reads and writes that still reached the daemon through a passthrough handle.
    pub passthrough_reads: u64,
    pub passthrough_writes: u64,
    /// FLUSH requests (one per close(2) of a file opened without FOPEN_NOFLUSH).
    pub flushes: u64,
}

impl FsStatsSnapshot {
    /// The counters of `op`.
    #[cfg(test)]
    pub fn op(&self, op: Op) -> Option<&OpSnapshot> {
        self.ops.get(op.index())
    }

    /// Requests that arrived and are not answered yet.
    pub fn in_flight(&self) -> u64 {
        // The two counts are read one after the other: an answer may be counted before its
        // arrival was read, hence per operation and never below zero.
        self.ops
            .iter()
            .map(|o| o.started.saturating_sub(o.answered()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_maxima() {
        let s = FsStats::default();
        s.read(4096);
        s.read(131072);
        s.write(1 << 20);
        s.write(4096);
        s.inline_write();
        s.passthrough_open(true);
        s.passthrough_open(true);
        s.passthrough_open(false);
        s.passthrough_io(false);
        let snap = s.snapshot();
        assert_eq!((snap.bytes_read, snap.largest_read), (135168, 131072));
        assert_eq!((snap.largest_write, snap.inline_writes), (1 << 20, 1));
        assert_eq!(
            (
                snap.passthrough_opens,
                snap.passthrough_fallbacks,
                snap.passthrough_reads,
                snap.passthrough_writes
            ),
            (2, 1, 1, 0)
        );
    }

    #[test]
    fn requests_errors_and_latency_per_operation() {
        let s = FsStats::with_shards(4);
        let a = s.start(Op::Lookup);
        let b = s.start(Op::Lookup);
        let c = s.start(Op::Read);
        let flush = s.start(Op::Flush);
        s.finish(a, None);
        s.finish(b, Some(libc::ENOENT));
        s.finish(flush, None);
        let snap = s.snapshot();
        let lookup = snap.op(Op::Lookup).unwrap();
        assert_eq!(
            (lookup.started, lookup.answered(), lookup.errors),
            (2, 2, 1)
        );
        assert_eq!(lookup.errnos, vec![(libc::ENOENT, 1)]);
        assert!(lookup.latency.max_ns > 0);
        assert_eq!((snap.reads, snap.flushes, snap.writes), (1, 1, 0));
        assert_eq!(snap.in_flight(), 1, "the read is not answered");
        s.finish(c, Some(libc::EIO));
        let snap = s.snapshot();
        assert_eq!(snap.in_flight(), 0);
        assert_eq!(snap.op(Op::Read).unwrap().errnos, vec![(libc::EIO, 1)]);
    }

    /// Threads record into shards of their own (or shared, past the shards); the sum is exact.
    #[test]
    fn threads_sum_up_across_shards() {
        let s = std::sync::Arc::new(FsStats::with_shards(2));
        let threads: Vec<_> = (0..5)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let t = s.start(Op::Write);
                        s.write(i);
                        s.finish(t, (i == 4).then_some(libc::ENOSPC));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let snap = s.snapshot();
        let w = snap.op(Op::Write).unwrap();
        assert_eq!((w.started, w.answered(), w.errors), (5000, 5000, 1000));
        assert_eq!(w.errnos, vec![(libc::ENOSPC, 1000)]);
        assert_eq!((snap.bytes_written, snap.largest_write), (10_000, 4));
    }
}
