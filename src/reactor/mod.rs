//! The I/O engine: one thread running a compio runtime on io_uring.
//!
//! Any number of threads send [`Request`]s through a [`ReactorHandle`]; the reactor thread serves them
//! on io_uring with buffers from its [`BufferPool`] and answers each request's completion from its own
//! thread. It knows nothing about FUSE: completions are a trait the caller implements.
//!
//! One task does all the work. It drains the channel, admits each request as a future into a
//! `FuturesUnordered` (no task spawn per request), harvests the finished ones, and returns their buffers
//! to the pool. Requests that need a buffer while none is free wait in a queue inside the reactor
//! (backpressure) instead of growing memory. SQEs pushed in one pass are submitted together at the next
//! driver poll, so a burst of requests costs one `io_uring_enter`.

mod doorbell;
mod pool;
mod request;
mod serve;

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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use futures_util::stream::{FuturesUnordered, StreamExt};

/// Sizes of the reactor's resources.
#[derive(Debug, Clone, Copy)]
pub struct ReactorConfig {
    /// Most pool buffers (and so most reads and writes in flight at once).
    pub buffers: usize,
    /// Bytes per pool buffer: the largest read or write one request may carry.
    pub buffer_size: usize,
    /// Submission queue entries of the io_uring instance.
    pub ring_entries: u32,
    /// How long the reactor keeps looking for new work after it ran out, before it goes to sleep.
    pub spin: std::time::Duration,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            buffers: 128,
            buffer_size: 1 << 20,
            ring_entries: 256,
            spin: std::time::Duration::from_micros(50),
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

struct Shared {
    pool: BufferPool,
    bell: Doorbell,
    stopping: AtomicBool,
    received: AtomicU64,
    sleeps: AtomicU64,
    buffer_waits: AtomicU64,
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
            return; // dropping `req` answers it with ESHUTDOWN
        }
        if self.tx.send(Message::Work(req)).is_ok() {
            self.shared.bell.ring();
        }
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
        ReactorStats {
            pool: self.shared.pool.stats(),
            received: self.shared.received.load(Ordering::Relaxed),
            sleeps: self.shared.sleeps.load(Ordering::Relaxed),
            wakeups: self.shared.bell.rings(),
            buffer_waits: self.shared.buffer_waits.load(Ordering::Relaxed),
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
            received: AtomicU64::new(0),
            sleeps: AtomicU64::new(0),
            buffer_waits: AtomicU64::new(0),
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
                runtime.block_on(run::<C>(rx, thread_shared, config.spin));
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

fn build_runtime(ring_entries: u32) -> io::Result<compio::runtime::Runtime> {
    let mut proactor = compio::driver::ProactorBuilder::new();
    proactor.capacity(ring_entries);
    compio::runtime::RuntimeBuilder::new()
        .with_proactor(proactor)
        .build()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "io_uring is unavailable ({e}): arsyncfs needs it for all file I/O. Allow it with \
                     `sysctl kernel.io_uring_disabled=0`, and if running in a container, use a seccomp \
                     profile that permits io_uring_setup/io_uring_enter (Docker's default blocks them)"
                ),
            )
        })
}

/// The reactor's one task.
async fn run<C: Completions>(
    rx: Receiver<Message<C>>,
    shared: Arc<Shared>,
    spin: std::time::Duration,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut idle_since: Option<std::time::Instant> = None;
    let mut waiting_for_buffer: VecDeque<Request<C>> = VecDeque::new();
    let mut stopping = false;
    let mut waker_published = false;

    poll_fn(|cx| {
        // Awake now: senders need not ring until we arm the bell again.
        shared.bell.disarm();
        if !waker_published {
            shared.bell.set_waker(cx.waker());
            waker_published = true;
        }
        loop {
            let mut progress = false;

            // Harvest finished requests and give their buffers back.
            while let Poll::Ready(Some(buf)) = in_flight.poll_next_unpin(cx) {
                if let Some(buf) = buf {
                    shared.pool.put(buf);
                }
                progress = true;
            }

            // Admit requests that were waiting for a buffer, oldest first.
            while !waiting_for_buffer.is_empty() {
                let Some(buf) = shared.pool.try_take() else {
                    break;
                };
                let req = waiting_for_buffer.pop_front().expect("checked non-empty");
                in_flight.push(serve::serve(req, Some(buf)));
                progress = true;
            }

            // Admit new requests.
            loop {
                match rx.try_recv() {
                    Ok(Message::Work(req)) => {
                        shared.received.fetch_add(1, Ordering::Relaxed);
                        progress = true;
                        if !req.needs_buffer() {
                            in_flight.push(serve::serve(req, None));
                        } else if !waiting_for_buffer.is_empty() {
                            waiting_for_buffer.push_back(req);
                        } else if let Some(buf) = shared.pool.try_take() {
                            in_flight.push(serve::serve(req, Some(buf)));
                        } else {
                            shared.buffer_waits.fetch_add(1, Ordering::Relaxed);
                            waiting_for_buffer.push_back(req);
                        }
                    }
                    Ok(Message::Shutdown) => {
                        stopping = true;
                        // Writers blocked on a buffer fail now instead of queueing more work.
                        shared.pool.close();
                        progress = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                }
            }

            if stopping && in_flight.is_empty() && waiting_for_buffer.is_empty() {
                return Poll::Ready(());
            }
            if progress {
                idle_since = None;
                continue;
            }
            if !spin.is_zero() {
                let now = std::time::Instant::now();
                if now.duration_since(*idle_since.get_or_insert(now)) < spin {
                    if in_flight.is_empty() {
                        std::hint::spin_loop();
                        continue;
                    }
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                idle_since = None;
            }
            // Nothing to do until a completion or a sender wakes us. Arm the bell, then look once more
            // so that a request sent in between is not left behind.
            shared.bell.arm();
            if !rx.is_empty() {
                shared.bell.disarm();
                continue;
            }
            shared.sleeps.fetch_add(1, Ordering::Relaxed);
            return Poll::Pending;
        }
    })
    .await;
    // Dropping `rx` now discards anything sent in the last instant; each such request answers
    // ESHUTDOWN from its `Drop`, and later sends fail and answer the same way.
}
