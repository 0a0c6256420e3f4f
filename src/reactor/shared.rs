//! What the senders and the reactor thread share: the channel's messages, the buffer pool, the
//! doorbell, the stop flag and the counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::doorbell::Doorbell;
use super::pool::BufferPool;
use super::request::{Completions, Request};

pub(super) enum Message<C: Completions> {
    Work(Request<C>),
    Shutdown,
}

/// Counters only the reactor thread writes, on a cache line of their own so that senders reading
/// `stopping` or ringing the bell do not share it.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct Counters {
    pub received: AtomicU64,
    pub turns: AtomicU64,
    pub sleeps: AtomicU64,
    pub buffer_waits: AtomicU64,
    /// Requests the reactor answered (see [`Shared::sent`]).
    pub answered: AtomicU64,
}

pub(super) struct Shared {
    pub pool: BufferPool,
    pub bell: Doorbell,
    pub stopping: AtomicBool,
    pub counters: Counters,
    /// Requests put in this reactor's channel: counted by their sender before the send (one
    /// relaxed add on this line, shared by the senders of this lane only), taken back if the send
    /// fails. The reactor counts what it answers in a local, published at the end of each turn;
    /// once it drained the two are equal if every request it was sent got its answer.
    pub sent: AtomicU64,
}

impl Shared {
    pub fn new(pool: BufferPool) -> Self {
        Shared {
            pool,
            bell: Doorbell::default(),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
            sent: AtomicU64::new(0),
        }
    }

    /// Requests sent to the reactor and not answered yet (as of its last published turn).
    pub fn unanswered(&self) -> u64 {
        // `answered` first: every request it counts was counted as sent before.
        let answered = self.counters.answered.load(Ordering::Acquire);
        self.sent.load(Ordering::Acquire).saturating_sub(answered)
    }
}
