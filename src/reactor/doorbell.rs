//! A persistent, lossless wake-up for the reactor thread.
//!
//! The reactor *arms* the bell just before it goes to sleep in `io_uring_enter`, then looks at its
//! queue once more. A sender *rings* after it has queued work: only if the bell is armed does it pay for
//! a wake-up (a write to the runtime's eventfd). Both sides use sequentially consistent operations
//! between "publish" and "look", so either the reactor sees the new work in its second look, or the
//! sender sees the armed bell: a wake-up is never lost. While the reactor is busy the bell is disarmed
//! and senders do not wake it at all.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::task::Waker;

#[derive(Default)]
pub struct Doorbell {
    armed: AtomicBool,
    waker: OnceLock<Waker>,
    rings: AtomicU64,
}

impl Doorbell {
    /// Publishes the reactor's waker. The reactor calls this once, before it first arms the bell.
    pub fn set_waker(&self, waker: &Waker) {
        let _ = self.waker.set(waker.clone());
    }

    /// Reactor side: announce that it is about to sleep. The caller must look at its queue again
    /// afterwards and [`disarm`](Self::disarm) if it found work.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Reactor side: it found work after arming and will not sleep.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }

    /// Sender side, after queueing work: wake the reactor if, and only if, it may be asleep.
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.armed.load(Ordering::SeqCst) && self.armed.swap(false, Ordering::SeqCst) {
            self.rings.fetch_add(1, Ordering::Relaxed);
            if let Some(waker) = self.waker.get() {
                waker.wake_by_ref();
            }
        }
    }

    /// How many times a sender actually woke the reactor.
    pub fn rings(&self) -> u64 {
        self.rings.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn rings_only_when_armed_and_only_once() {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let bell = Doorbell::default();
        bell.set_waker(&Waker::from(counter.clone()));
        bell.ring();
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "busy reactor woken");
        bell.arm();
        bell.ring();
        bell.ring();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(bell.rings(), 1);
        bell.arm();
        bell.disarm();
        bell.ring();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }
}
