//! The reactor's one task: it turns requests into io_uring operations and decides when to sleep.
//!
//! One task does all the work. In each pass it polls the request futures whose operations completed,
//! gives their buffers back to the pool, and admits new requests from the channel: each request
//! becomes a future in a reusable slot (no task spawn and no allocation per request, see `slots`),
//! polled once at once so that its SQE is queued. SQEs queued in one pass are submitted together at
//! the next driver poll, so a burst of requests costs one `io_uring_enter`. Requests that need a
//! buffer while none is free wait in a queue inside the reactor (backpressure) instead of growing
//! memory; so do operations without a buffer beyond `ring_entries` in flight.
//!
//! Wake-ups: the reactor announces with the `Doorbell` when it goes to sleep; senders only pay for
//! a wake-up then. When nothing of its own is in flight it keeps looking at the channel for
//! `ReactorConfig::spin` before sleeping: on virtual machines a wake-up across CPUs costs tens of
//! microseconds, far more than the operations themselves. With operations in flight it never polls
//! the ring (a system call each time) but sleeps in `io_uring_enter`, which returns at the first
//! completion or when a sender wakes it; idle, it uses no CPU.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use super::config::ReactorConfig;
use super::pool::{BufferPool, PoolBuf};
use super::request::{Completions, Request};
use super::serve::serve;
use super::shared::{Counters, Message, Shared};
use super::slots::Slots;

/// How often, in idle passes, the spinning reactor yields its CPU: on a busy machine a sender may
/// share it, and spinning would only delay the work the reactor waits for.
const SPIN_YIELD_EVERY: u32 = 256;

/// Most new requests admitted before the driver submits them.
const MAX_BATCH: usize = 16;

/// The reactor's one task: serves what comes through `rx` until told to stop, then finishes every
/// request it took.
pub(super) async fn run<C: Completions>(
    rx: Receiver<Message<C>>,
    shared: Arc<Shared>,
    config: ReactorConfig,
) {
    let mut scheduler = Scheduler::new(rx, shared, config, serve::<C>);
    poll_fn(|cx| scheduler.poll(cx)).await;
    scheduler.discard_the_rest();
    // Dropping the scheduler's `rx` now discards anything sent since, in the last instant; each
    // such request answers ESHUTDOWN from its `Drop`, uncounted, and later sends fail the same way.
}

/// The state of the reactor's task between its polls. `S` starts serving one request (`serve`);
/// `F` is the future it returns, which a slot holds until the request is answered.
struct Scheduler<C: Completions, F, S> {
    rx: Receiver<Message<C>>,
    shared: Arc<Shared>,
    serve: S,
    slots: Slots<F>,
    ledger: Ledger,
    /// Most operations without a buffer in flight at once (`ReactorConfig::ring_entries`).
    other_limit: usize,
    /// Reads waiting for a buffer, oldest first.
    waiting_for_buffer: VecDeque<Request<C>>,
    /// Operations without a buffer waiting for one of the others to finish, oldest first.
    waiting_for_slot: VecDeque<Request<C>>,
    /// Requests taken from the channel in this poll of the task, at most `MAX_BATCH`.
    admitted: usize,
    stopping: bool,
    local: Local,
    waker_published: bool,
    spin: Duration,
    idle_since: Option<Instant>,
    idle_passes: u32,
}

impl<C, F, S> Scheduler<C, F, S>
where
    C: Completions,
    F: Future<Output = Option<PoolBuf>>,
    S: Fn(Request<C>, Option<PoolBuf>) -> F,
{
    fn new(rx: Receiver<Message<C>>, shared: Arc<Shared>, config: ReactorConfig, serve: S) -> Self {
        let other_limit = config.ring_entries as usize;
        Scheduler {
            rx,
            shared,
            serve,
            slots: Slots::new(config.buffers + other_limit),
            ledger: Ledger::new(config.buffers),
            other_limit,
            waiting_for_buffer: VecDeque::new(),
            waiting_for_slot: VecDeque::new(),
            admitted: 0,
            stopping: false,
            local: Local::default(),
            waker_published: false,
            spin: config.spin,
            idle_since: None,
            idle_passes: 0,
        }
    }

    /// One poll of the task: passes over the steps below until the work runs out, a batch is
    /// ready for the driver, or the reactor has drained after a shutdown.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.wake_up(cx.waker());
        loop {
            // Every step runs in every pass, whatever the ones before it found.
            let completed = self.poll_completed();
            let served = self.serve_waiters();
            let received = self.admit_from_channel();
            self.local.answered += self.ledger.settle(&self.shared);

            if self.admitted >= MAX_BATCH {
                // Let the driver submit this batch, then come straight back for more.
                cx.waker().wake_by_ref();
                return self.end_turn();
            }
            if self.drained() {
                self.local.publish(&self.shared.counters);
                return Poll::Ready(());
            }
            if completed || served || received {
                self.idle_since = None;
                continue;
            }
            if self.admitted > 0 {
                // New operations wait for the driver to submit them, and data in the page cache
                // completes during that very submission: do it without arming the bell or
                // counting a sleep.
                cx.waker().wake_by_ref();
                return self.end_turn();
            }
            if self.keep_spinning() {
                continue;
            }
            if self.may_sleep() {
                return self.end_turn();
            }
        }
    }

    /// Ends a turn: the runtime polls the driver next. The counters are published at every turn,
    /// so that they are current under a load that never lets the reactor idle (plain stores to a
    /// line only this thread writes).
    fn end_turn(&mut self) -> Poll<()> {
        self.local.turns += 1;
        self.local.publish(&self.shared.counters);
        Poll::Pending
    }

    /// Starts a poll: awake now, senders need not ring until the bell is armed again.
    fn wake_up(&mut self, waker: &Waker) {
        self.shared.bell.disarm();
        if !self.waker_published {
            self.shared.bell.set_waker(waker);
            self.slots.set_owner(waker);
            self.waker_published = true;
        }
        self.admitted = 0;
    }

    /// Polls the requests whose operations completed; true if any finished.
    fn poll_completed(&mut self) -> bool {
        let ledger = &mut self.ledger;
        self.slots.poll_woken(|out| ledger.finished(out)) > 0
    }

    /// Starts the requests that waited for a buffer or for room among the operations without one,
    /// oldest first, as far as they now can; true if any started.
    fn serve_waiters(&mut self) -> bool {
        let mut started = false;
        while !self.waiting_for_buffer.is_empty() {
            let pool = &self.shared.pool;
            let Some(buf) = self.ledger.buffer_for_read(pool, Attempt::Retry) else {
                break;
            };
            let req = self
                .waiting_for_buffer
                .pop_front()
                .expect("checked non-empty");
            self.start(req, Some(buf));
            started = true;
        }
        while self.ledger.others < self.other_limit {
            let Some(req) = self.waiting_for_slot.pop_front() else {
                break;
            };
            self.start_other(req);
            started = true;
        }
        started
    }

    /// Takes new requests from the channel, up to a batch: then the driver submits them (and, for
    /// data in the page cache, completes them) before more are taken, so that answers flow back
    /// while senders are still sending instead of after their whole queue. True if anything came.
    fn admit_from_channel(&mut self) -> bool {
        let mut received = false;
        while self.admitted < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(Message::Work(req)) => {
                    self.local.received += 1;
                    self.admitted += 1;
                    received = true;
                    self.admit(req);
                }
                Ok(Message::Shutdown) => {
                    self.begin_draining();
                    // Writers blocked on a buffer fail now instead of queueing more work.
                    self.shared.pool.close();
                    received = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.begin_draining();
                    break;
                }
            }
        }
        received
    }

    /// From now on the reactor only finishes what it took.
    fn begin_draining(&mut self) {
        if !self.stopping {
            self.stopping = true;
            // In fault-injection builds, its operations now get the `drain` faults.
            crate::faults::set_draining();
        }
    }

    /// Starts a new request, or queues it behind those that wait for what it needs.
    fn admit(&mut self, req: Request<C>) {
        match req {
            Request::Read { .. } if !self.waiting_for_buffer.is_empty() => {
                self.waiting_for_buffer.push_back(req)
            }
            Request::Read { .. } => {
                match self
                    .ledger
                    .buffer_for_read(&self.shared.pool, Attempt::First)
                {
                    Some(buf) => self.start(req, Some(buf)),
                    None => {
                        self.local.buffer_waits += 1;
                        self.waiting_for_buffer.push_back(req);
                    }
                }
            }
            // A write brings its own buffer, and buffers bound reads plus writes: there is always a
            // slot for it.
            Request::Write { .. } => self.start(req, None),
            _ if self.ledger.others < self.other_limit && self.waiting_for_slot.is_empty() => {
                self.start_other(req)
            }
            _ => self.waiting_for_slot.push_back(req),
        }
    }

    /// Starts an operation without a buffer (fsync, fallocate, close).
    fn start_other(&mut self, req: Request<C>) {
        self.ledger.others += 1;
        self.start(req, None);
    }

    /// Starts serving `req` in a slot; one that finishes at once is accounted for at once.
    fn start(&mut self, req: Request<C>, buf: Option<PoolBuf>) {
        if let Some(out) = self.slots.start((self.serve)(req, buf)) {
            self.ledger.finished(out);
        }
    }

    /// After draining: requests still in the channel (sent after the last look at it) are
    /// dropped, which answers them ESHUTDOWN and gives back their buffers, and counted as answered.
    fn discard_the_rest(&mut self) {
        for message in self.rx.try_iter() {
            if let Message::Work(req) = message {
                drop(req);
                self.local.answered += 1;
            }
        }
        self.local.publish(&self.shared.counters);
    }

    /// Stopping, and every request taken has been answered.
    fn drained(&self) -> bool {
        self.stopping
            && self.slots.is_empty()
            && self.waiting_for_buffer.is_empty()
            && self.waiting_for_slot.is_empty()
    }

    /// Out of work for now: whether to look again instead of sleeping. A sleep and a wake-up cost
    /// more than the work that usually follows, so the reactor keeps looking for `spin`, but only
    /// while nothing of its own is in the kernel: operations in flight complete through the ring,
    /// which wakes it by itself, and polling the ring would cost a system call per pass.
    fn keep_spinning(&mut self) -> bool {
        if self.spin.is_zero() {
            return false;
        }
        if self.idle_since.is_none() {
            self.local.publish(&self.shared.counters);
            self.idle_since = Some(Instant::now());
            self.idle_passes = 0;
        }
        self.idle_passes += 1;
        let spinning = !self.idle_passes.is_multiple_of(16)
            || self.idle_since.is_some_and(|t| t.elapsed() < self.spin);
        if spinning && self.slots.is_empty() {
            // Look at the channel again from here, letting a sender that shares this CPU run now
            // and then.
            if self.idle_passes.is_multiple_of(SPIN_YIELD_EVERY) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            return true;
        }
        self.idle_since = None;
        false
    }

    /// Nothing to do until a completion or a sender wakes the reactor. Arms the bell, then looks
    /// once more so that a request sent (or a buffer returned) in between is not left behind; true
    /// if nothing came and the task may sleep.
    fn may_sleep(&mut self) -> bool {
        self.shared.bell.arm();
        if !self.rx.is_empty()
            || (!self.waiting_for_buffer.is_empty() && self.shared.pool.has_free())
        {
            self.shared.bell.disarm();
            return false;
        }
        // Published as the turn ends.
        self.local.sleeps += 1;
        true
    }
}

/// Whether a read asks the pool for a buffer for the first time: only that miss counts as a wait.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    First,
    Retry,
}

/// The scheduler's accounts of requests: operations in flight without a buffer, and what the
/// requests that finished in this pass left behind.
struct Ledger {
    /// Operations in flight that hold no buffer (fsync, fallocate, close).
    others: usize,
    /// Buffers of requests that finished in this pass; a read admitted in the same pass takes one
    /// of these (`recycled`) before asking the pool.
    returned: Vec<PoolBuf>,
    recycled: u64,
    /// Requests answered in this pass.
    answered: u64,
}

impl Ledger {
    fn new(buffers: usize) -> Self {
        Ledger {
            others: 0,
            returned: Vec::with_capacity(buffers),
            recycled: 0,
            answered: 0,
        }
    }

    /// A finished request hands back its buffer (reads, writes) or nothing (the others).
    fn finished(&mut self, out: Option<PoolBuf>) {
        self.answered += 1;
        match out {
            Some(buf) => self.returned.push(buf),
            None => self.others -= 1,
        }
    }

    /// A buffer for a read: one given back in this pass if there is one, else one from the pool.
    fn buffer_for_read(&mut self, pool: &BufferPool, attempt: Attempt) -> Option<PoolBuf> {
        if let Some(buf) = self.returned.pop() {
            self.recycled += 1;
            return Some(buf);
        }
        match attempt {
            Attempt::First => pool.try_take(),
            Attempt::Retry => pool.take_if_free(),
        }
    }

    /// Ends a pass: buffers nobody took go back to the pool, all at once; returns the requests
    /// answered in the pass.
    fn settle(&mut self, shared: &Shared) -> u64 {
        if !self.returned.is_empty() || self.recycled > 0 {
            shared.pool.put_all(&mut self.returned, self.recycled);
            self.recycled = 0;
        }
        std::mem::take(&mut self.answered)
    }
}

/// Counters the reactor keeps locally and publishes at the end of each turn and when it runs out
/// of work.
#[derive(Default)]
struct Local {
    received: u64,
    turns: u64,
    sleeps: u64,
    buffer_waits: u64,
    answered: u64,
}

impl Local {
    fn publish(&self, c: &Counters) {
        c.received.store(self.received, Ordering::Relaxed);
        c.turns.store(self.turns, Ordering::Relaxed);
        c.sleeps.store(self.sleeps, Ordering::Relaxed);
        c.buffer_waits.store(self.buffer_waits, Ordering::Relaxed);
        // Release: a reader that sees a request answered sees it counted as sent.
        c.answered.store(self.answered, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_takes_a_buffer_given_back_in_the_same_pass_before_the_pool() {
        let shared = Shared::new(BufferPool::new(2, 4096));
        let mut ledger = Ledger::new(2);
        let first = shared.pool.try_take().unwrap();
        let second = shared.pool.try_take().unwrap();

        ledger.finished(Some(first));
        let reused = ledger
            .buffer_for_read(&shared.pool, Attempt::First)
            .unwrap();
        assert_eq!((ledger.recycled, ledger.returned.len()), (1, 0));
        // Pool empty: a retry's miss is not a wait, a first attempt's is.
        assert!(
            ledger
                .buffer_for_read(&shared.pool, Attempt::Retry)
                .is_none()
        );
        assert_eq!(shared.pool.stats().waits, 0);
        assert!(
            ledger
                .buffer_for_read(&shared.pool, Attempt::First)
                .is_none()
        );
        assert_eq!(shared.pool.stats().waits, 1);

        ledger.others = 1;
        ledger.finished(None);
        ledger.finished(Some(second));
        assert_eq!((ledger.others, ledger.answered), (0, 3));
        assert_eq!(ledger.settle(&shared), 3, "answered in the pass");
        assert_eq!(
            (ledger.recycled, ledger.returned.len(), ledger.answered),
            (0, 0, 0)
        );
        let stats = shared.pool.stats();
        assert_eq!(stats.in_use, 1, "only the reused buffer is still out");
        assert_eq!((stats.taken, stats.returned, stats.reuses), (3, 2, 1));

        drop(reused);
        let stats = shared.pool.stats();
        assert_eq!((stats.in_use, stats.taken, stats.returned), (0, 3, 3));
    }
}
