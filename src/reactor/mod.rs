//! The I/O engine: one thread running a compio runtime on io_uring.
//!
//! Any number of threads send [`Request`]s through a [`ReactorHandle`]; the reactor thread serves them
//! on io_uring with buffers from its [`BufferPool`] and answers each request's completion from its own
//! thread. It knows nothing about FUSE: completions are a trait the caller implements.
//!
//! One task does all the work. In each pass it polls the request futures whose operations completed,
//! gives their buffers back to the pool, and admits new requests from the channel: each request
//! becomes a future in a reusable slot (no task spawn and no allocation per request, see `slots`),
//! polled once at once so that its SQE is queued. SQEs queued in one pass are submitted together at
//! the next driver poll, so a burst of requests costs one `io_uring_enter`. Requests that need a
//! buffer while none is free wait in a queue inside the reactor (backpressure) instead of growing
//! memory; so do operations without a buffer beyond `ring_entries` in flight.
//!
//! Wake-ups: the reactor announces with the [`Doorbell`] when it goes to sleep; senders only pay for
//! a wake-up then. When nothing of its own is in flight it keeps looking at the channel for
//! `ReactorConfig::spin` before sleeping: on virtual machines a wake-up across CPUs costs tens of
//! microseconds, far more than the operations themselves. With operations in flight it never polls
//! the ring (a system call each time) but sleeps in `io_uring_enter`, which returns at the first
//! completion or when a sender wakes it; idle, it uses no CPU.
//!
//! See docs/reactor.md for the design, the measurements and the profile.

mod doorbell;
mod pool;
mod request;
mod serve;
mod slots;

pub use doorbell::Doorbell;
pub use pool::{ALIGN, BufferPool, PoolBuf, PoolClosed, PoolStats};
pub use request::{
    BackingFile, Completions, DoneCompletion, PendingDone, PendingRead, PendingWrite,
    ReadCompletion, Request, WriteCompletion, shutdown_error,
};

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use slots::Slots;

/// Sizes of the reactor's resources.
#[derive(Debug, Clone, Copy)]
pub struct ReactorConfig {
    /// Most pool buffers (and so most reads and writes in flight at once).
    pub buffers: usize,
    /// Bytes per pool buffer: the largest read or write one request may carry.
    pub buffer_size: usize,
    /// Submission queue entries of the io_uring instance; also the most operations without a
    /// buffer (fsync, fallocate, close) in flight at once.
    pub ring_entries: u32,
    /// How long the reactor keeps looking for work after it ran out, before it sleeps. Zero sleeps
    /// at once. An idle reactor spends at most this much CPU after its last request.
    pub spin: Duration,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            buffers: 128,
            buffer_size: 1 << 20,
            ring_entries: 256,
            spin: Duration::from_micros(50),
        }
    }
}

/// Counters of the reactor, as seen at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReactorStats {
    pub pool: PoolStats,
    /// Requests taken from the channel.
    pub received: u64,
    /// Times the reactor went to sleep with nothing to do.
    pub sleeps: u64,
    /// Times a sender had to wake the reactor.
    pub wakeups: u64,
    /// Times a read had to wait because every buffer was in use.
    pub buffer_waits: u64,
}

enum Message<C: Completions> {
    Work(Request<C>),
    Shutdown,
}

/// Counters only the reactor thread writes, on a cache line of their own so that senders reading
/// `stopping` or ringing the bell do not share it.
#[repr(align(128))]
#[derive(Default)]
struct Counters {
    received: AtomicU64,
    sleeps: AtomicU64,
    buffer_waits: AtomicU64,
}

struct Shared {
    pool: BufferPool,
    bell: Doorbell,
    stopping: AtomicBool,
    counters: Counters,
    /// Requests sent to the reactor and not answered yet (raised before the send, lowered by the
    /// reactor after the answer, once per pass).
    unanswered: AtomicUsize,
}

/// A cheap, cloneable, `Send` way to give the reactor work.
pub struct ReactorHandle<C: Completions> {
    tx: Sender<Message<C>>,
    shared: Arc<Shared>,
}

impl<C: Completions> Clone for ReactorHandle<C> {
    fn clone(&self) -> Self {
        ReactorHandle {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<C: Completions> ReactorHandle<C> {
    /// Queues a request. Never blocks. If the reactor is stopping or gone, the request is answered with
    /// `ESHUTDOWN` right here.
    pub fn submit(&self, req: Request<C>) {
        if self.shared.stopping.load(Ordering::Acquire) {
            // Dropping `req` answers it with ESHUTDOWN and returns its buffer, if any, to the pool;
            // the ring below lets a reactor that waits for that buffer see it.
            drop(req);
        } else {
            self.shared.unanswered.fetch_add(1, Ordering::AcqRel);
            if let Err(refused) = self.tx.send(Message::Work(req)) {
                drop(refused);
                self.shared.unanswered.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.shared.bell.ring();
    }

    /// Reads up to `len` bytes at `offset`.
    pub fn read(&self, file: BackingFile, offset: u64, len: usize, done: C::Read) {
        let done = PendingRead::<C>::new(done);
        if len > self.shared.pool.buffer_size() {
            return done.complete(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        self.submit(Request::Read {
            file,
            offset,
            len,
            done,
        });
    }

    /// Writes `data` at `offset`. `data` is copied into a pool buffer first, waiting for a free one if
    /// all are in use: that wait is the backpressure that bounds memory.
    pub fn write(&self, file: BackingFile, offset: u64, data: &[u8], done: C::Write) {
        let done = PendingWrite::<C>::new(done);
        if data.len() > self.shared.pool.buffer_size() {
            return done.complete(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        let Ok(mut buf) = self.shared.pool.take_blocking() else {
            return done.complete(Err(shutdown_error()));
        };
        buf.fill_from(data);
        self.submit(Request::Write {
            file,
            offset,
            buf,
            done,
        });
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

    /// Lets go of `file`, closing it on the reactor when no operation holds it any more.
    pub fn close(&self, file: BackingFile, done: C::Done) {
        let done = PendingDone::<C>::new(done);
        self.submit(Request::Close { file, done });
    }

    /// Largest read or write one request may carry.
    pub fn max_request_size(&self) -> usize {
        self.shared.pool.buffer_size()
    }

    /// The reactor's counters now.
    pub fn stats(&self) -> ReactorStats {
        let c = &self.shared.counters;
        ReactorStats {
            pool: self.shared.pool.stats(),
            received: c.received.load(Ordering::Relaxed),
            sleeps: c.sleeps.load(Ordering::Relaxed),
            wakeups: self.shared.bell.rings(),
            buffer_waits: c.buffer_waits.load(Ordering::Relaxed),
        }
    }
}

/// The reactor thread. Stop it with [`Reactor::shutdown`]; dropping it shuts it down too.
pub struct Reactor<C: Completions> {
    handle: ReactorHandle<C>,
    thread: Option<JoinHandle<()>>,
}

impl<C: Completions> Reactor<C> {
    /// Starts the reactor thread. Fails, with a message that says what to do, if io_uring is
    /// unavailable.
    pub fn start(config: ReactorConfig) -> io::Result<Self> {
        if config.buffers == 0 || config.buffer_size == 0 || config.ring_entries == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "reactor buffers, buffer size and ring entries must all be at least 1",
            ));
        }
        let shared = Arc::new(Shared {
            pool: BufferPool::new(config.buffers, config.buffer_size),
            bell: Doorbell::default(),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
            unanswered: AtomicUsize::new(0),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("arsyncfs-reactor".into())
            .spawn(move || {
                let runtime = match build_runtime(config.ring_entries) {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // However the thread ends, senders must not keep waiting for it.
                let _closed_on_exit = CloseOnExit(thread_shared.clone());
                runtime.block_on(run::<C>(rx, thread_shared, config));
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Reactor {
                handle: ReactorHandle { tx, shared },
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other("the reactor thread died while starting"))
            }
        }
    }

    /// A handle to send work from any thread.
    pub fn handle(&self) -> ReactorHandle<C> {
        self.handle.clone()
    }

    /// Waits, at most `limit`, until every request sent so far has been answered; false on timeout.
    /// (Before unmounting: the kernel aborts the requests still open, and late answers would find
    /// no request.)
    pub fn wait_answered(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while self.handle.shared.unanswered.load(Ordering::Acquire) > 0 {
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Stops taking new work, finishes every request already queued or in flight (each gets its one
    /// completion), and joins the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.handle.shared.stopping.store(true, Ordering::Release);
        if self.handle.tx.send(Message::Shutdown).is_ok() {
            self.handle.shared.bell.ring();
        }
        if thread.join().is_err() {
            tracing::error!("the reactor thread panicked");
        }
    }
}

impl<C: Completions> Drop for Reactor<C> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Marks the reactor stopped and closes its pool when the reactor thread ends, also by a panic:
/// later requests are refused at once and writers blocked on the pool are released.
struct CloseOnExit(Arc<Shared>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.stopping.store(true, Ordering::Release);
        self.0.pool.close();
    }
}

/// The error `start` returns when io_uring cannot be used, saying why and what to do.
pub(crate) fn io_uring_error(e: io::Error, ring_entries: u32) -> io::Error {
    let msg = match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring is unavailable ({e}): arsyncfs needs it for all file I/O. Allow it with \
             `sysctl kernel.io_uring_disabled=0` (or add this user's group to \
             kernel.io_uring_group), and in a container use a seccomp profile that permits \
             io_uring_setup, io_uring_enter and io_uring_register (Docker's default blocks them)"
        ),
        Some(libc::ENOMEM) => format!(
            "cannot set up io_uring ({e}): not enough locked memory for a ring of {ring_entries} \
             entries; raise `ulimit -l` or use a smaller ring"
        ),
        _ => format!("cannot set up io_uring with a ring of {ring_entries} entries ({e})"),
    };
    io::Error::new(e.kind(), msg)
}

/// The io_uring operations the reactor submits; `start` fails if the kernel lacks one.
const NEEDED_OPS: [(u8, &str); 5] = [
    (io_uring::opcode::Read::CODE, "READ"),
    (io_uring::opcode::Write::CODE, "WRITE"),
    (io_uring::opcode::Fsync::CODE, "FSYNC"),
    (io_uring::opcode::Fallocate::CODE, "FALLOCATE"),
    (io_uring::opcode::Close::CODE, "CLOSE"),
];

fn check_io_uring(ring_entries: u32) -> io::Result<()> {
    let ring = io_uring::IoUring::new(2).map_err(|e| io_uring_error(e, ring_entries))?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| io_uring_error(e, ring_entries))?;
    for (code, name) in NEEDED_OPS {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "this kernel's io_uring lacks IORING_OP_{name}, which arsyncfs needs \
                     (Linux 5.19 or later has everything)"
                ),
            ));
        }
    }
    Ok(())
}

fn build_runtime(ring_entries: u32) -> io::Result<compio::runtime::Runtime> {
    check_io_uring(ring_entries)?;
    let build = |cooperative: bool| {
        let mut proactor = compio::driver::ProactorBuilder::new();
        proactor.capacity(ring_entries);
        // Completions that arrive while the reactor runs (disk interrupts, io-wq workers) are
        // queued for its next io_uring_enter instead of interrupting it with an IPI.
        proactor.coop_taskrun(cooperative).taskrun_flag(cooperative);
        compio::runtime::RuntimeBuilder::new()
            .with_proactor(proactor)
            .build()
    };
    build(true)
        .or_else(|e| match e.raw_os_error() {
            // Kernels before 5.19 refuse the cooperative flags.
            Some(libc::EINVAL) => build(false),
            _ => Err(e),
        })
        .map_err(|e| io_uring_error(e, ring_entries))
}

/// Counters the reactor keeps locally and publishes when it runs out of work.
#[derive(Default)]
struct Local {
    received: u64,
    sleeps: u64,
    buffer_waits: u64,
}

impl Local {
    fn publish(&self, c: &Counters) {
        c.received.store(self.received, Ordering::Relaxed);
        c.sleeps.store(self.sleeps, Ordering::Relaxed);
        c.buffer_waits.store(self.buffer_waits, Ordering::Relaxed);
    }
}

/// A finished request hands back its buffer (reads, writes) or nothing (the others).
fn finished(
    out: Option<PoolBuf>,
    returned: &mut Vec<PoolBuf>,
    others: &mut usize,
    answered: &mut usize,
) {
    *answered += 1;
    match out {
        Some(buf) => returned.push(buf),
        None => *others -= 1,
    }
}

/// How often, in idle passes, the spinning reactor yields its CPU: on a busy machine a sender may
/// share it, and spinning would only delay the work the reactor waits for.
const SPIN_YIELD_EVERY: u32 = 256;

/// Most new requests admitted before the driver submits them.
const MAX_BATCH: usize = 16;

/// The reactor's one task.
async fn run<C: Completions>(rx: Receiver<Message<C>>, shared: Arc<Shared>, config: ReactorConfig) {
    let pool = &shared.pool;
    let other_limit = config.ring_entries as usize;
    let mut slots = Slots::new(config.buffers + other_limit);
    // Operations in flight that hold no buffer (fsync, fallocate, close).
    let mut others = 0usize;
    let mut waiting_for_buffer: VecDeque<Request<C>> = VecDeque::new();
    let mut waiting_for_slot: VecDeque<Request<C>> = VecDeque::new();
    // Buffers of requests that finished in this pass; a read admitted in the same pass takes one of
    // these (`recycled`) before asking the pool.
    let mut returned: Vec<PoolBuf> = Vec::with_capacity(config.buffers);
    let mut recycled = 0u64;
    // Requests answered in this pass, for `Shared::unanswered`.
    let mut answered = 0usize;
    let mut stopping = false;
    let mut local = Local::default();
    let mut waker_published = false;
    let mut idle_since: Option<Instant> = None;
    let mut idle_passes = 0u32;

    poll_fn(|cx| {
        let mut admitted = 0usize;
        // Awake now: senders need not ring until we arm the bell again.
        shared.bell.disarm();
        if !waker_published {
            shared.bell.set_waker(cx.waker());
            slots.set_owner(cx.waker());
            waker_published = true;
        }
        loop {
            let mut progress = false;

            // Harvest the requests whose operations completed.
            if slots.poll_woken(|out| finished(out, &mut returned, &mut others, &mut answered)) > 0
            {
                progress = true;
            }

            // Admit requests that were waiting for a buffer or a slot, oldest first.
            while !waiting_for_buffer.is_empty() {
                let buf = match returned.pop() {
                    Some(buf) => {
                        recycled += 1;
                        Some(buf)
                    }
                    None => pool.take_if_free(),
                };
                let Some(buf) = buf else { break };
                let req = waiting_for_buffer.pop_front().expect("checked non-empty");
                if let Some(out) = slots.start(serve::serve(req, Some(buf))) {
                    finished(out, &mut returned, &mut others, &mut answered);
                }
                progress = true;
            }
            while others < other_limit {
                let Some(req) = waiting_for_slot.pop_front() else {
                    break;
                };
                others += 1;
                if let Some(out) = slots.start(serve::serve(req, None)) {
                    finished(out, &mut returned, &mut others, &mut answered);
                }
                progress = true;
            }

            // Admit new requests, up to a batch: then let the driver submit them (and, for data
            // in the page cache, complete them) before taking more, so that answers flow back
            // while senders are still sending instead of after their whole queue.
            let mut batch_full = false;
            loop {
                if admitted >= MAX_BATCH {
                    batch_full = true;
                    break;
                }
                let req = match rx.try_recv() {
                    Ok(Message::Work(req)) => req,
                    Ok(Message::Shutdown) => {
                        stopping = true;
                        // Writers blocked on a buffer fail now instead of queueing more work.
                        pool.close();
                        progress = true;
                        continue;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                };
                local.received += 1;
                admitted += 1;
                progress = true;
                let out = match req {
                    Request::Read { .. } => {
                        if !waiting_for_buffer.is_empty() {
                            waiting_for_buffer.push_back(req);
                            continue;
                        }
                        let buf = match returned.pop() {
                            Some(buf) => {
                                recycled += 1;
                                Some(buf)
                            }
                            None => pool.try_take(),
                        };
                        match buf {
                            Some(buf) => slots.start(serve::serve(req, Some(buf))),
                            None => {
                                local.buffer_waits += 1;
                                waiting_for_buffer.push_back(req);
                                continue;
                            }
                        }
                    }
                    // A write brings its own buffer, and buffers bound reads plus writes: there is
                    // always a slot for it.
                    Request::Write { .. } => slots.start(serve::serve(req, None)),
                    _ if others < other_limit && waiting_for_slot.is_empty() => {
                        others += 1;
                        slots.start(serve::serve(req, None))
                    }
                    _ => {
                        waiting_for_slot.push_back(req);
                        continue;
                    }
                };
                if let Some(out) = out {
                    finished(out, &mut returned, &mut others, &mut answered);
                }
            }

            // Buffers nobody took this pass go back to the pool, all at once.
            if !returned.is_empty() || recycled > 0 {
                pool.put_all(&mut returned, recycled);
                recycled = 0;
            }
            if answered > 0 {
                shared.unanswered.fetch_sub(answered, Ordering::AcqRel);
                answered = 0;
            }

            if batch_full {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if stopping
                && slots.is_empty()
                && waiting_for_buffer.is_empty()
                && waiting_for_slot.is_empty()
            {
                local.publish(&shared.counters);
                return Poll::Ready(());
            }
            if progress {
                idle_since = None;
                continue;
            }
            if admitted > 0 {
                // New operations wait for the driver to submit them, and data in the page cache
                // completes during that very submission: do it without arming the bell or
                // counting a sleep.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }

            // Out of work for now. Keep looking for a while: a sleep and a wake-up cost more than
            // the work that usually follows.
            if !config.spin.is_zero() {
                if idle_since.is_none() {
                    local.publish(&shared.counters);
                    idle_since = Some(Instant::now());
                    idle_passes = 0;
                }
                idle_passes += 1;
                let spinning = !idle_passes.is_multiple_of(16)
                    || idle_since.is_some_and(|t| t.elapsed() < config.spin);
                // Only while nothing of ours is in the kernel: operations in flight complete
                // through the ring, which wakes us by itself, and polling it would cost a system
                // call per pass.
                if spinning && slots.is_empty() {
                    // Look at the channel again from here, letting a sender that shares this CPU
                    // run now and then.
                    if idle_passes.is_multiple_of(SPIN_YIELD_EVERY) {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                    continue;
                }
                idle_since = None;
            }

            // Nothing to do until a completion or a sender wakes us. Arm the bell, then look once more
            // so that a request sent (or a buffer returned) in between is not left behind.
            shared.bell.arm();
            if !rx.is_empty() || (!waiting_for_buffer.is_empty() && pool.has_free()) {
                shared.bell.disarm();
                continue;
            }
            local.sleeps += 1;
            local.publish(&shared.counters);
            return Poll::Pending;
        }
    })
    .await;
    // Dropping `rx` now discards anything sent in the last instant; each such request answers
    // ESHUTDOWN from its `Drop` (and gives back its buffer), and later sends fail the same way.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_uring_errors_say_what_is_wrong_and_what_to_do() {
        for errno in [libc::ENOSYS, libc::EPERM, libc::EACCES] {
            let e = io_uring_error(io::Error::from_raw_os_error(errno), 256);
            let msg = e.to_string();
            assert!(msg.starts_with("io_uring is unavailable"), "{msg}");
            assert!(msg.contains("kernel.io_uring_disabled=0"), "{msg}");
            assert!(msg.contains("seccomp"), "{msg}");
            assert_eq!(e.kind(), io::Error::from_raw_os_error(errno).kind());
        }
        let msg = io_uring_error(io::Error::from_raw_os_error(libc::ENOMEM), 4096).to_string();
        assert!(msg.contains("ulimit -l") && msg.contains("4096"), "{msg}");
        let msg = io_uring_error(io::Error::from_raw_os_error(libc::EINVAL), 7).to_string();
        assert!(msg.contains("io_uring") && msg.contains('7'), "{msg}");
    }

    #[test]
    fn this_kernel_has_every_operation_the_reactor_needs() {
        check_io_uring(8).unwrap();
    }
}
