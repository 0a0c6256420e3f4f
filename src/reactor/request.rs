//! What the reactor is asked to do, and how it answers.
//!
//! Every request carries its completion. A completion is consumed when it is answered, so it can be
//! answered at most once; and it is wrapped in [`Pending`], whose `Drop` answers with an error if no one
//! did, so it is answered at least once on every path: a request dropped in a closed channel at
//! shutdown, a request rejected because the reactor is gone, or a panic.

use std::fs::File;
use std::io;
use std::sync::Arc;

use super::pool::PoolBuf;

/// Answer to a read: exactly the bytes read (shorter than asked at end of file).
pub trait ReadCompletion: Send + 'static {
    fn complete(self, result: io::Result<&[u8]>);
}

/// Answer to a write: the number of bytes written (all of them, or an error).
pub trait WriteCompletion: Send + 'static {
    fn complete(self, result: io::Result<usize>);
}

/// Answer to an operation without data: fsync, fallocate, close.
pub trait DoneCompletion: Send + 'static {
    fn complete(self, result: io::Result<()>);
}

/// The completion types a user of the reactor plugs in. The FUSE layer uses fuser's reply objects;
/// tests use channels.
pub trait Completions: 'static {
    type Read: ReadCompletion;
    type Write: WriteCompletion;
    type Done: DoneCompletion;
}

/// The error every request gets if it cannot be served because the reactor is stopping or stopped.
pub fn shutdown_error() -> io::Error {
    io::Error::from_raw_os_error(libc::ESHUTDOWN)
}

/// Runs a caller's completion; a panic in it is logged and contained, so that one bad completion
/// cannot take the reactor (and every request after it) down.
fn guarded(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!("a request's completion panicked; the reactor carries on");
    }
}

/// Holds a completion until it is answered; answers `ESHUTDOWN` if dropped unanswered.
pub struct Pending<T: AnswerOnDrop>(Option<T>);

/// Completions that can be answered with an error from `Drop`.
pub trait AnswerOnDrop: Send + 'static {
    fn answer_error(self, error: io::Error);
}

impl<T: ReadCompletion> AnswerOnDrop for ReadDone<T> {
    fn answer_error(self, error: io::Error) {
        self.0.complete(Err(error))
    }
}
impl<T: WriteCompletion> AnswerOnDrop for WriteDone<T> {
    fn answer_error(self, error: io::Error) {
        self.0.complete(Err(error))
    }
}
impl<T: DoneCompletion> AnswerOnDrop for UnitDone<T> {
    fn answer_error(self, error: io::Error) {
        self.0.complete(Err(error))
    }
}

/// Adapters that give the three completion kinds one shape for [`Pending`].
pub struct ReadDone<T>(T);
pub struct WriteDone<T>(T);
pub struct UnitDone<T>(T);

impl<T: AnswerOnDrop> Pending<T> {
    fn wrap(done: T) -> Self {
        Pending(Some(done))
    }

    fn take(&mut self) -> T {
        self.0.take().expect("a completion answered twice")
    }
}

impl<T: ReadCompletion> Pending<ReadDone<T>> {
    pub fn new(done: T) -> Self {
        Pending::wrap(ReadDone(done))
    }
    pub fn complete(mut self, result: io::Result<&[u8]>) {
        let done = self.take().0;
        guarded(move || done.complete(result))
    }
}

impl<T: WriteCompletion> Pending<WriteDone<T>> {
    pub fn new(done: T) -> Self {
        Pending::wrap(WriteDone(done))
    }
    pub fn complete(mut self, result: io::Result<usize>) {
        let done = self.take().0;
        guarded(move || done.complete(result))
    }
}

impl<T: DoneCompletion> Pending<UnitDone<T>> {
    pub fn new(done: T) -> Self {
        Pending::wrap(UnitDone(done))
    }
    pub fn complete(mut self, result: io::Result<()>) {
        let done = self.take().0;
        guarded(move || done.complete(result))
    }
}

impl<T: AnswerOnDrop> Drop for Pending<T> {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            guarded(move || done.answer_error(shutdown_error()));
        }
    }
}

pub type PendingRead<C> = Pending<ReadDone<<C as Completions>::Read>>;
pub type PendingWrite<C> = Pending<WriteDone<<C as Completions>::Write>>;
pub type PendingDone<C> = Pending<UnitDone<<C as Completions>::Done>>;

/// A backing file shared by the handle table and the operations in flight on it. The descriptor is
/// closed when the last holder lets go, so it can never be closed under a running operation.
pub type BackingFile = Arc<File>;

/// What a write answers when an error stops it after part of its data was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// The error: the write is all or nothing to its caller.
    Error,
    /// The count written, as pwrite(2): the error comes with the next write.
    Short,
}

/// One unit of work for the reactor.
pub enum Request<C: Completions> {
    /// Read up to `len` bytes at `offset`.
    Read {
        file: BackingFile,
        offset: u64,
        len: usize,
        done: PendingRead<C>,
    },
    /// Write all of `buf`'s data at `offset` (a buffer the caller took from the pool and filled).
    Write {
        file: BackingFile,
        offset: u64,
        buf: PoolBuf,
        shortfall: Shortfall,
        done: PendingWrite<C>,
    },
    /// fsync(2), or fdatasync(2) when `datasync`.
    Sync {
        file: BackingFile,
        datasync: bool,
        done: PendingDone<C>,
    },
    /// fallocate(2) with any mode the backing filesystem accepts.
    Fallocate {
        file: BackingFile,
        mode: i32,
        offset: u64,
        len: u64,
        done: PendingDone<C>,
    },
    /// Let go of a backing file; closes it through io_uring when this was the last holder.
    Close {
        file: BackingFile,
        done: PendingDone<C>,
    },
}
