//! The senders' side: [`ReactorHandle`], the cheap way any thread gives the reactor work, and the
//! counters it can read.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use super::pool::PoolStats;
use super::request::{
    BackingFile, Completions, PendingDone, PendingRead, PendingWrite, Request, Shortfall,
    shutdown_error,
};
use super::shared::{Message, Shared};
use crate::faults::{self, Decision, FaultKind};

/// Counters of the reactor, as seen at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactorStats {
    pub pool: PoolStats,
    /// Most buffers the pool may hold (`pool.total` grows up to it as buffers are needed).
    pub buffer_limit: usize,
    /// Requests taken from the channel.
    pub received: u64,
    /// Turns of the reactor's loop: each ends in one poll of the io_uring driver, which submits
    /// the operations queued in the turn with at most one `io_uring_enter` (none when completions
    /// were already waiting). compio does not count its enters, so `received / turns`, requests per
    /// turn, is what is shown; a request is one operation or more, so it is about a lower bound of
    /// operations per `io_uring_enter`.
    pub turns: u64,
    /// Requests put in the reactors' channels, and answered by the reactors: equal once they
    /// drained, if each got its answer (requests answered by their sender, as at shutdown, count
    /// in neither).
    pub sent: u64,
    pub answered: u64,
    /// Requests sent and not answered yet.
    pub unanswered: usize,
    /// Times the reactor went to sleep with nothing to do.
    pub sleeps: u64,
    /// Times a sender had to wake the reactor.
    pub wakeups: u64,
    /// Times a read had to wait because every buffer was in use.
    pub buffer_waits: u64,
}

/// One reactor thread as its senders see it: its channel and what it shares with them.
pub(super) struct Lane<C: Completions> {
    pub tx: Sender<Message<C>>,
    pub shared: Arc<Shared>,
}

impl ReactorStats {
    fn plus(&self, other: &ReactorStats) -> ReactorStats {
        ReactorStats {
            pool: self.pool.plus(&other.pool),
            buffer_limit: self.buffer_limit + other.buffer_limit,
            received: self.received + other.received,
            turns: self.turns + other.turns,
            sent: self.sent + other.sent,
            answered: self.answered + other.answered,
            unanswered: self.unanswered + other.unanswered,
            sleeps: self.sleeps + other.sleeps,
            wakeups: self.wakeups + other.wakeups,
            buffer_waits: self.buffer_waits + other.buffer_waits,
        }
    }
}

/// A cheap, cloneable, `Send` way to give the reactors work. With several reactors a request goes
/// to the one of the CPU the sending thread runs on, so the hand-off wakes a thread on the same CPU.
pub struct ReactorHandle<C: Completions> {
    pub(super) lanes: Arc<[Lane<C>]>,
    /// The lane of each CPU number; CPUs past its end take lane `cpu % lanes`.
    pub(super) lane_of_cpu: Arc<[usize]>,
}

impl<C: Completions> Clone for ReactorHandle<C> {
    fn clone(&self) -> Self {
        ReactorHandle {
            lanes: self.lanes.clone(),
            lane_of_cpu: self.lane_of_cpu.clone(),
        }
    }
}

impl<C: Completions> ReactorHandle<C> {
    /// The reactor for a request sent from this thread now.
    fn lane(&self) -> &Lane<C> {
        if self.lanes.len() == 1 {
            return &self.lanes[0];
        }
        let cpu = rustix::thread::sched_getcpu();
        let i = self
            .lane_of_cpu
            .get(cpu)
            .copied()
            .unwrap_or(cpu % self.lanes.len());
        &self.lanes[i]
    }

    /// Queues a request on the reactor of this thread's CPU. Never blocks. If the reactor is
    /// stopping or gone, the request is answered with `ESHUTDOWN` right here.
    fn submit(&self, req: Request<C>) {
        self.submit_to(self.lane(), req)
    }

    fn submit_to(&self, lane: &Lane<C>, req: Request<C>) {
        let shared = &lane.shared;
        if shared.stopping.load(Ordering::Acquire) {
            // Dropping `req` answers it with ESHUTDOWN and returns its buffer, if any, to the pool;
            // the ring below lets a reactor that waits for that buffer see it.
            drop(req);
        } else {
            shared.sent.fetch_add(1, Ordering::Relaxed);
            if let Err(refused) = lane.tx.send(Message::Work(req)) {
                drop(refused);
                shared.sent.fetch_sub(1, Ordering::Relaxed);
            }
        }
        shared.bell.ring();
    }

    /// Reads up to `len` bytes at `offset`.
    pub fn read(&self, file: BackingFile, offset: u64, len: usize, done: C::Read) {
        let done = PendingRead::<C>::new(done);
        if len > self.max_request_size() {
            return done.complete(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        self.submit(Request::Read {
            file,
            offset,
            len,
            done,
        });
    }

    /// Writes all of `data` at `offset`, or answers an error (the data written before the error
    /// stays written). `data` is copied into a pool buffer first, waiting for a free one if all are
    /// in use: that wait is the backpressure that bounds memory.
    pub fn write(&self, file: BackingFile, offset: u64, data: &[u8], done: C::Write) {
        self.write_with(file, offset, data, Shortfall::Error, done)
    }

    /// Writes `data` at `offset` as pwrite(2) would: when an error (ENOSPC, EFBIG) stops it part
    /// way, the answer is the count written so far, and the error comes with the next write.
    pub fn write_as_pwrite(&self, file: BackingFile, offset: u64, data: &[u8], done: C::Write) {
        self.write_with(file, offset, data, Shortfall::Short, done)
    }

    fn write_with(
        &self,
        file: BackingFile,
        offset: u64,
        data: &[u8],
        shortfall: Shortfall,
        done: C::Write,
    ) {
        let done = PendingWrite::<C>::new(done);
        if data.len() > self.max_request_size() {
            return done.complete(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        // The buffer comes from the pool of the reactor that will write it.
        let lane = self.lane();
        let Ok(mut buf) = lane.shared.pool.take_blocking() else {
            return done.complete(Err(shutdown_error()));
        };
        buf.fill_from(data);
        self.submit_to(
            lane,
            Request::Write {
                file,
                offset,
                buf,
                shortfall,
                done,
            },
        );
    }

    /// fsync(2) or, with `datasync`, fdatasync(2).
    pub fn sync(&self, file: BackingFile, datasync: bool, done: C::Done) {
        let done = PendingDone::<C>::new(done);
        self.submit(Request::Sync {
            file,
            datasync,
            done,
        });
    }

    /// fallocate(2) with `mode` (0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, …).
    pub fn fallocate(&self, file: BackingFile, mode: i32, offset: u64, len: u64, done: C::Done) {
        let done = PendingDone::<C>::new(done);
        self.submit(Request::Fallocate {
            file,
            mode,
            offset,
            len,
            done,
        });
    }

    /// Lets go of `file`. When nothing else holds it (no operation in flight) it is closed right
    /// here and `done` answered at once: a round trip through the reactor would cost a wake-up of
    /// its thread. Otherwise the reactor lets go of it, and the last operation's end closes it.
    pub fn close(&self, file: BackingFile, done: C::Done) {
        let done = PendingDone::<C>::new(done);
        match Arc::try_unwrap(file) {
            Ok(file) => {
                drop(file);
                done.complete(match faults::decide(FaultKind::Close) {
                    Decision::Fail(e) => Err(io::Error::from_raw_os_error(e)),
                    _ => Ok(()),
                });
            }
            Err(file) => self.submit(Request::Close { file, done }),
        }
    }

    /// Largest read or write one request may carry.
    pub fn max_request_size(&self) -> usize {
        self.lanes[0].shared.pool.buffer_size()
    }

    /// Number of reactor threads.
    pub fn reactors(&self) -> usize {
        self.lanes.len()
    }

    /// The counters of all reactors together now.
    pub fn stats(&self) -> ReactorStats {
        self.lane_stats()
            .into_iter()
            .fold(ReactorStats::default(), |sum, s| sum.plus(&s))
    }

    /// The counters of each reactor now.
    pub fn lane_stats(&self) -> Vec<ReactorStats> {
        self.lanes
            .iter()
            .map(|lane| {
                let c = &lane.shared.counters;
                // `answered` first, as in `Shared::unanswered`.
                let answered = c.answered.load(Ordering::Acquire);
                let sent = lane.shared.sent.load(Ordering::Acquire);
                ReactorStats {
                    pool: lane.shared.pool.stats(),
                    buffer_limit: lane.shared.pool.max_buffers(),
                    received: c.received.load(Ordering::Relaxed),
                    turns: c.turns.load(Ordering::Relaxed),
                    sent,
                    answered,
                    unanswered: sent.saturating_sub(answered) as usize,
                    sleeps: c.sleeps.load(Ordering::Relaxed),
                    wakeups: lane.shared.bell.rings(),
                    buffer_waits: c.buffer_waits.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}
