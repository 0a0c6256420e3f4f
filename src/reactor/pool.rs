//! A bounded pool of reusable, aligned I/O buffers.
//!
//! Buffers are plain `Vec<u8>`s. O_DIRECT needs the memory handed to the kernel to be aligned to the
//! backing device's logical block size, so every buffer is allocated with `ALIGN` bytes of slack and
//! carries `pad`, the offset of the first aligned byte; the data window is `vec[pad..pad + capacity]`,
//! which compio reaches through `IoBuf::slice`. The vector is zero-initialised once when allocated (the
//! allocator maps fresh zero pages, so untouched pages cost no memory) and its length never changes, so
//! the kernel only ever writes into initialised memory and no `unsafe` length juggling is needed.
//! `len` says how many bytes of the window are valid; nothing past it is ever exposed, so the bytes of
//! an earlier use of the buffer can never leak into a later answer.
//!
//! A buffer that is dropped instead of being given back (a request discarded at shutdown, a write
//! refused because the reactor is stopping, a panic) returns to its pool from `Drop`, so the pool can
//! never lose a buffer on any path. A buffer lent to an io_uring operation is not a `PoolBuf` while
//! the operation is in flight (only its `Vec` is), so nothing returns before the completion.
//!
//! The pool grows lazily up to `max_buffers` and never beyond: when every buffer is in use, a caller
//! either gets `None` (`try_take`, used by the reactor thread, which must never block) or waits
//! (`take_blocking`, used by threads that copy write data in). That wait is the backpressure that keeps
//! memory bounded under any load.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

/// Alignment of every buffer's data window. 4 KiB covers the logical block size of every common device.
pub const ALIGN: usize = 4096;

/// One pool buffer: a `Vec<u8>` whose data window starts at an `ALIGN`-aligned address.
/// Dropping it returns it to its pool.
#[derive(Debug)]
pub struct PoolBuf {
    /// Empty (capacity 0) once the vector has been given away; `Drop` then has nothing to return.
    vec: Vec<u8>,
    pad: usize,
    capacity: usize,
    len: usize,
    home: Weak<Inner>,
}

impl PoolBuf {
    fn new(capacity: usize, home: Weak<Inner>) -> Self {
        let vec = vec![0u8; capacity + ALIGN];
        let misalignment = vec.as_ptr() as usize % ALIGN;
        let pad = if misalignment == 0 {
            0
        } else {
            ALIGN - misalignment
        };
        PoolBuf {
            vec,
            pad,
            capacity,
            len: 0,
            home,
        }
    }

    /// Bytes the data window can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The valid bytes of the data window.
    pub fn data(&self) -> &[u8] {
        &self.vec[self.pad..self.pad + self.len]
    }

    /// Marks the data window empty.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Replaces the data window's contents with `data`. Panics if `data` exceeds the capacity: callers
    /// check request sizes against the pool's buffer size before they take a buffer.
    pub fn fill_from(&mut self, data: &[u8]) {
        assert!(
            data.len() <= self.capacity,
            "data larger than the pool buffer"
        );
        self.vec[self.pad..self.pad + data.len()].copy_from_slice(data);
        self.len = data.len();
    }

    /// Lends the vector to an io_uring operation; the absolute byte range `window(a, b)` of the data
    /// window is `vec[pad + a..pad + b]`. Get it back with [`PoolBuf::restore`].
    pub(crate) fn lend(mut self) -> (Vec<u8>, BufShape) {
        let shape = BufShape {
            pad: self.pad,
            capacity: self.capacity,
            home: std::mem::take(&mut self.home),
        };
        (std::mem::take(&mut self.vec), shape)
    }

    /// Rebuilds the buffer from the vector an operation handed back, with `len` valid bytes.
    pub(crate) fn restore(vec: Vec<u8>, shape: BufShape, len: usize) -> Self {
        debug_assert!(len <= shape.capacity && vec.len() >= shape.pad + shape.capacity);
        PoolBuf {
            vec,
            pad: shape.pad,
            capacity: shape.capacity,
            len,
            home: shape.home,
        }
    }

    /// Whether the data window is aligned (it always is: the vector never reallocates; the unit
    /// tests check it).
    #[cfg(test)]
    pub fn is_aligned(&self) -> bool {
        (self.vec.as_ptr() as usize + self.pad).is_multiple_of(ALIGN)
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        if self.vec.capacity() == 0 {
            return;
        }
        if let Some(inner) = self.home.upgrade() {
            let buf = PoolBuf {
                vec: std::mem::take(&mut self.vec),
                pad: self.pad,
                capacity: self.capacity,
                len: 0,
                home: std::mem::take(&mut self.home),
            };
            inner.put(buf);
        }
    }
}

/// Where a lent vector's data window lies, and the pool it belongs to.
#[derive(Debug)]
pub(crate) struct BufShape {
    pub pad: usize,
    pub capacity: usize,
    home: Weak<Inner>,
}

impl BufShape {
    /// The vector range of data-window bytes `start..end`.
    pub fn window(&self, start: usize, end: usize) -> std::ops::Range<usize> {
        debug_assert!(start <= end && end <= self.capacity);
        self.pad + start..self.pad + end
    }
}

/// Counters of a pool, as seen at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers allocated so far (never more than the configured maximum).
    pub total: usize,
    /// Buffers handed out and not yet returned.
    pub in_use: usize,
    /// The largest `in_use` ever seen.
    pub high_water: usize,
    /// Times a taker found the pool empty and had to wait (or was told to).
    pub waits: u64,
    /// Times a previously used buffer was handed out again.
    pub reuses: u64,
    /// Buffers handed out over the pool's life.
    pub taken: u64,
    /// Buffers returned over the pool's life.
    pub returned: u64,
}

impl PoolStats {
    /// The counters of two pools together (`high_water`: the sum of both, an upper bound).
    pub fn plus(&self, other: &PoolStats) -> PoolStats {
        PoolStats {
            total: self.total + other.total,
            in_use: self.in_use + other.in_use,
            high_water: self.high_water + other.high_water,
            waits: self.waits + other.waits,
            reuses: self.reuses + other.reuses,
            taken: self.taken + other.taken,
            returned: self.returned + other.returned,
        }
    }
}

/// Error of [`BufferPool::take_blocking`] once the pool has been closed for shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolClosed;

struct PoolState {
    free: Vec<PoolBuf>,
    stats: PoolStats,
    closed: bool,
    /// Threads blocked in `take_blocking`; `put` only pays for a wake-up when this is not zero.
    sleepers: usize,
}

/// A bounded pool of aligned buffers, shared between the reactor and the threads that feed it.
pub struct BufferPool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<PoolState>,
    returned: Condvar,
    buffer_size: usize,
    max_buffers: usize,
    me: Weak<Inner>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("buffer_size", &self.inner.buffer_size)
            .field("max_buffers", &self.inner.max_buffers)
            .field("stats", &self.stats())
            .finish()
    }
}

impl BufferPool {
    /// A pool of at most `max_buffers` buffers of `buffer_size` bytes each, allocated on first use.
    pub fn new(max_buffers: usize, buffer_size: usize) -> Self {
        assert!(max_buffers > 0 && buffer_size > 0);
        let inner = Arc::new_cyclic(|me| Inner {
            state: Mutex::new(PoolState {
                free: Vec::with_capacity(max_buffers),
                stats: PoolStats::default(),
                closed: false,
                sleepers: 0,
            }),
            returned: Condvar::new(),
            buffer_size,
            max_buffers,
            me: me.clone(),
        });
        BufferPool { inner }
    }

    /// Most buffers the pool allocates.
    pub fn max_buffers(&self) -> usize {
        self.inner.max_buffers
    }

    /// Bytes per buffer.
    pub fn buffer_size(&self) -> usize {
        self.inner.buffer_size
    }

    /// A buffer if one is free or may still be allocated; `None` (counted as a wait) otherwise.
    pub fn try_take(&self) -> Option<PoolBuf> {
        self.inner.try_take()
    }

    /// A buffer, waiting for one to be returned if all are in use. Fails once the pool is closed.
    pub fn take_blocking(&self) -> Result<PoolBuf, PoolClosed> {
        self.inner.take_blocking()
    }

    /// Returns a buffer. Its contents are cleared so that no later user can see them. (Dropping a
    /// buffer returns it too, which is what the reactor does.)
    #[cfg(test)]
    pub fn put(&self, buf: PoolBuf) {
        self.inner.put(buf)
    }

    /// Makes every current and future `take_blocking` fail; buffers may still be returned.
    pub fn close(&self) {
        self.inner.close()
    }

    /// Like `try_take`, but a miss is not counted as a wait (the reactor retrying for a request it
    /// already counted).
    pub(crate) fn take_if_free(&self) -> Option<PoolBuf> {
        let mut state = self.inner.lock();
        self.inner.take_locked(&mut state)
    }

    /// Returns every buffer in `bufs` (leaving it empty) under one lock, and counts `recycled`
    /// buffers the caller gave back and took again without the pool (each a return, a take and a
    /// reuse).
    pub(crate) fn put_all(&self, bufs: &mut Vec<PoolBuf>, recycled: u64) {
        let n = bufs.len();
        if n == 0 && recycled == 0 {
            return;
        }
        let mut state = self.inner.lock();
        state.stats.taken += recycled;
        state.stats.returned += recycled;
        state.stats.reuses += recycled;
        debug_assert!(state.stats.in_use >= n, "a buffer returned twice");
        for mut buf in bufs.drain(..) {
            buf.clear();
            state.free.push(buf);
        }
        state.stats.in_use -= n;
        state.stats.returned += n as u64;
        let wake = state.sleepers > 0;
        drop(state);
        if wake {
            self.inner.returned.notify_all();
        }
    }

    /// Whether a take would succeed now.
    pub(crate) fn has_free(&self) -> bool {
        let state = self.inner.lock();
        !state.free.is_empty() || state.stats.total < self.inner.max_buffers
    }

    /// The counters now.
    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock leaves only counters behind; keep going with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_locked(&self, state: &mut PoolState) -> Option<PoolBuf> {
        let buf = if let Some(buf) = state.free.pop() {
            state.stats.reuses += 1;
            buf
        } else if state.stats.total < self.max_buffers {
            state.stats.total += 1;
            PoolBuf::new(self.buffer_size, self.me.clone())
        } else {
            return None;
        };
        state.stats.in_use += 1;
        state.stats.taken += 1;
        state.stats.high_water = state.stats.high_water.max(state.stats.in_use);
        Some(buf)
    }

    fn try_take(&self) -> Option<PoolBuf> {
        let mut state = self.lock();
        let buf = self.take_locked(&mut state);
        if buf.is_none() {
            state.stats.waits += 1;
        }
        buf
    }

    fn take_blocking(&self) -> Result<PoolBuf, PoolClosed> {
        let mut state = self.lock();
        let mut counted = false;
        loop {
            if state.closed {
                return Err(PoolClosed);
            }
            if let Some(buf) = self.take_locked(&mut state) {
                return Ok(buf);
            }
            if !counted {
                state.stats.waits += 1;
                counted = true;
            }
            state.sleepers += 1;
            state = self.returned.wait(state).unwrap_or_else(|e| e.into_inner());
            state.sleepers -= 1;
        }
    }

    fn put(&self, mut buf: PoolBuf) {
        debug_assert_eq!(buf.capacity(), self.buffer_size);
        buf.clear();
        let mut state = self.lock();
        debug_assert!(state.stats.in_use > 0, "a buffer returned twice");
        state.stats.in_use -= 1;
        state.stats.returned += 1;
        state.free.push(buf);
        // Condvar::notify_one is a futex syscall even with no one waiting: skip it then.
        let wake = state.sleepers > 0;
        drop(state);
        if wake {
            self.returned.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.returned.notify_all();
    }

    fn stats(&self) -> PoolStats {
        self.lock().stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn buffers_are_aligned_and_lazily_allocated() {
        let pool = BufferPool::new(4, 8192);
        assert_eq!(pool.stats().total, 0);
        let bufs: Vec<_> = (0..4).map(|_| pool.try_take().unwrap()).collect();
        for b in &bufs {
            assert!(b.is_aligned());
            assert_eq!(b.capacity(), 8192);
            assert!(b.data().is_empty());
        }
        let s = pool.stats();
        assert_eq!((s.total, s.in_use, s.high_water, s.waits), (4, 4, 4, 0));
        assert!(pool.try_take().is_none());
        assert_eq!(pool.stats().waits, 1);
        for b in bufs {
            pool.put(b);
        }
        let s = pool.stats();
        assert_eq!((s.in_use, s.taken, s.returned), (0, 4, 4));
    }

    #[test]
    fn reuse_is_counted_and_contents_are_cleared() {
        let pool = BufferPool::new(1, 64);
        let mut b = pool.try_take().unwrap();
        b.fill_from(b"secret");
        assert_eq!(b.data(), b"secret");
        pool.put(b);
        let b = pool.try_take().unwrap();
        assert!(b.data().is_empty(), "stale bytes visible after reuse");
        assert!(b.is_aligned());
        assert_eq!(pool.stats().reuses, 1);
        pool.put(b);
    }

    #[test]
    #[should_panic(expected = "larger than the pool buffer")]
    fn fill_beyond_capacity_is_refused() {
        let pool = BufferPool::new(1, 4);
        let mut b = pool.try_take().unwrap();
        b.fill_from(b"12345");
    }

    #[test]
    fn take_blocking_waits_for_a_return() {
        let pool = Arc::new(BufferPool::new(1, 16));
        let held = pool.try_take().unwrap();
        let p2 = pool.clone();
        let waiter = std::thread::spawn(move || {
            let b = p2.take_blocking().unwrap();
            p2.put(b);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished());
        pool.put(held);
        waiter.join().unwrap();
        let s = pool.stats();
        assert_eq!((s.total, s.in_use, s.waits), (1, 0, 1));
    }

    #[test]
    fn a_dropped_buffer_goes_home() {
        let pool = BufferPool::new(2, 64);
        let mut b = pool.try_take().unwrap();
        b.fill_from(b"dropped");
        drop(b);
        let s = pool.stats();
        assert_eq!((s.in_use, s.taken, s.returned), (0, 1, 1));
        // Lent to an "operation" and restored: still one buffer with a home.
        let b = pool.try_take().unwrap();
        let (vec, shape) = b.lend();
        assert_eq!(pool.stats().in_use, 1, "a lent buffer is in use");
        let b = PoolBuf::restore(vec, shape, 3);
        assert_eq!(b.data().len(), 3);
        drop(b);
        let s = pool.stats();
        assert_eq!((s.in_use, s.taken, s.returned, s.total), (0, 2, 2, 1));
        let b = pool.try_take().unwrap();
        assert!(b.data().is_empty());
        // Outliving the pool is harmless.
        drop(pool);
        drop(b);
    }

    #[test]
    fn close_releases_waiters() {
        let pool = Arc::new(BufferPool::new(1, 16));
        let held = pool.try_take().unwrap();
        let p2 = pool.clone();
        let waiter = std::thread::spawn(move || p2.take_blocking());
        std::thread::sleep(Duration::from_millis(20));
        pool.close();
        assert_eq!(waiter.join().unwrap().unwrap_err(), PoolClosed);
        pool.put(held);
        assert_eq!(pool.stats().in_use, 0);
    }
}
