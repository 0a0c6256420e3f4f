//! The senders' side: [`ReactorHandle`], the cheap way any thread gives the reactor work, and the
//! counters it can read.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;

use super::pool::PoolStats;
use super::request::{
    BackingFile, Completions, PendingDone, PendingRead, PendingWrite, Request, shutdown_error,
};
use super::shared::{Message, Shared};

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

/// A cheap, cloneable, `Send` way to give the reactor work.
pub struct ReactorHandle<C: Completions> {
    pub(super) tx: Sender<Message<C>>,
    pub(super) shared: Arc<Shared>,
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

    /// Lets go of `file`. When nothing else holds it (no operation in flight) it is closed right
    /// here and `done` answered at once: a round trip through the reactor would cost a wake-up of
    /// its thread. Otherwise the reactor lets go of it, and the last operation's end closes it.
    pub fn close(&self, file: BackingFile, done: C::Done) {
        let done = PendingDone::<C>::new(done);
        match Arc::try_unwrap(file) {
            Ok(file) => {
                drop(file);
                done.complete(Ok(()));
            }
            Err(file) => self.submit(Request::Close { file, done }),
        }
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
