//! What the senders and the reactor thread share: the channel's messages, the buffer pool, the
//! doorbell, the stop flag and the counters.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

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
}

pub(super) struct Shared {
    pub pool: BufferPool,
    pub bell: Doorbell,
    pub stopping: AtomicBool,
    pub counters: Counters,
    /// Requests sent to the reactor and not answered yet (raised before the send, lowered by the
    /// reactor after the answer, once per pass).
    pub unanswered: AtomicUsize,
}

impl Shared {
    pub fn new(pool: BufferPool) -> Self {
        Shared {
            pool,
            bell: Doorbell::default(),
            stopping: AtomicBool::new(false),
            counters: Counters::default(),
            unanswered: AtomicUsize::new(0),
        }
    }
}
