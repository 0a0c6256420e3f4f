//! A fixed set of reusable slots for the reactor's request futures.
//!
//! This does what `FuturesUnordered` did, without its per-request allocation: every slot is a
//! `Pin<Box<Option<F>>>` allocated once and reused (a finished future is replaced in place with
//! `Pin::set`), and every slot has one waker, made once, that marks the slot in a bitmap of ready
//! slots and wakes the task that owns the set. The reactor polls only the marked slots.
//!
//! A future is dropped only once it has returned `Ready`, or when the whole set is dropped (the
//! reactor drops it only when it is empty): a request future is never dropped while its io_uring
//! operation is in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

/// Which slots were woken since the reactor last looked.
struct Ready {
    words: Box<[AtomicU64]>,
    owner: OnceLock<Waker>,
}

impl Ready {
    fn mark(&self, index: usize) {
        self.words[index / 64].fetch_or(1 << (index % 64), Ordering::Release);
        if let Some(owner) = self.owner.get() {
            owner.wake_by_ref();
        }
    }
}

struct SlotWaker {
    index: usize,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.ready.mark(self.index);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.mark(self.index);
    }
}

pub(crate) struct Slots<F> {
    futures: Vec<Pin<Box<Option<F>>>>,
    wakers: Vec<Waker>,
    free: Vec<usize>,
    ready: Arc<Ready>,
    capacity: usize,
    live: usize,
}

impl<F: Future> Slots<F> {
    /// Room for `capacity` futures at once; slots are allocated on first use.
    pub fn new(capacity: usize) -> Self {
        let words = capacity.div_ceil(64).max(1);
        Slots {
            futures: Vec::with_capacity(capacity),
            wakers: Vec::with_capacity(capacity),
            free: Vec::new(),
            ready: Arc::new(Ready {
                words: (0..words).map(|_| AtomicU64::new(0)).collect(),
                owner: OnceLock::new(),
            }),
            capacity,
            live: 0,
        }
    }

    /// Futures running now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn is_full(&self) -> bool {
        self.live == self.capacity
    }

    /// Tells the set which task to wake when one of its futures is woken. Call on every poll of
    /// that task; only the first waker is kept (the reactor's task never changes).
    pub fn set_owner(&self, waker: &Waker) {
        let _ = self.ready.owner.set(waker.clone());
    }

    /// Starts `future`: polls it once (which submits its first operation) and keeps it if it is
    /// not finished yet. Returns its output if it finished at once. The set must not be full.
    pub fn start(&mut self, future: F) -> Option<F::Output> {
        assert!(!self.is_full(), "slot set full");
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.futures.len();
                self.futures.push(Box::pin(None));
                self.wakers.push(Waker::from(Arc::new(SlotWaker {
                    index: i,
                    ready: self.ready.clone(),
                })));
                i
            }
        };
        self.futures[index].set(Some(future));
        self.live += 1;
        self.poll_slot(index)
    }

    /// Polls every slot woken since the last call; hands each finished future's output to `done`.
    /// Returns how many finished.
    pub fn poll_woken(&mut self, mut done: impl FnMut(F::Output)) -> usize {
        let mut finished = 0;
        for w in 0..self.ready.words.len() {
            let mut bits = self.ready.words[w].swap(0, Ordering::Acquire);
            while bits != 0 {
                let index = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(out) = self.poll_slot(index) {
                    done(out);
                    finished += 1;
                }
            }
        }
        finished
    }

    fn poll_slot(&mut self, index: usize) -> Option<F::Output> {
        let slot = self.futures.get_mut(index)?;
        let future = slot.as_mut().as_pin_mut()?;
        let mut cx = Context::from_waker(&self.wakers[index]);
        match future.poll(&mut cx) {
            Poll::Pending => None,
            Poll::Ready(out) => {
                slot.set(None);
                self.free.push(index);
                self.live -= 1;
                Some(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A future that finishes on its second poll, waking itself on the first.
    struct Twice(Rc<Cell<u32>>, u32);
    impl Future for Twice {
        type Output = u32;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            self.0.set(self.0.get() + 1);
            if self.0.get() % 2 == 1 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(self.1)
            }
        }
    }

    #[test]
    fn slots_are_reused_and_only_woken_slots_are_polled() {
        let mut slots = Slots::new(3);
        let polls: Vec<_> = (0..3).map(|_| Rc::new(Cell::new(0))).collect();
        for (i, p) in polls.iter().enumerate() {
            assert!(slots.start(Twice(p.clone(), i as u32)).is_none());
        }
        assert!(slots.is_full());
        let mut out = Vec::new();
        assert_eq!(slots.poll_woken(|o| out.push(o)), 3);
        out.sort();
        assert_eq!(out, [0, 1, 2]);
        assert!(slots.is_empty());
        // Nothing woken: nothing polled.
        assert_eq!(slots.poll_woken(|_| unreachable!()), 0);
        assert!(polls.iter().all(|p| p.get() == 2));
        // Slots are reused, not grown.
        assert!(slots.start(Twice(polls[0].clone(), 9)).is_none());
        assert_eq!(slots.futures.len(), 3);
        assert_eq!(slots.len(), 1);
        assert_eq!(slots.poll_woken(|o| assert_eq!(o, 9)), 1);
    }

    #[test]
    fn a_future_ready_at_once_never_occupies_a_slot() {
        let mut slots = Slots::new(1);
        assert_eq!(slots.start(std::future::ready(5)), Some(5));
        assert!(slots.is_empty());
        assert_eq!(slots.start(std::future::ready(6)), Some(6));
    }
}
