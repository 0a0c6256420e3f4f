//! Telling the kernel to drop what it caches of a file: its attributes after the daemon changed them
//! behind the kernel's back (set-id bits cleared), and its pages after an O_DIRECT write.
//!
//! Why pages: the kernel drops a file's cached pages before it sends an O_DIRECT write, and for a
//! synchronous write once more after it; an asynchronous one (AIO, io_uring) gets no second pass.
//! A buffered read that reached the daemon before the write landed, while the write was on its way,
//! then leaves the old bytes in the page cache, and every later read returns them. So a direct write
//! that may have raced with such reads is answered only after its range was invalidated.
//!
//! The kernel's page invalidation waits for pages that are locked by reads still in flight, and those
//! reads are answered by the reactor; so it runs on a thread of its own, never on a thread that
//! answers reads. The write's reply is sent after it: when the program sees its write complete, no
//! stale page is left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use fuser::{INodeNo, Notifier};

/// How long after the last buffered handle of a file was closed its pages still count as in use:
/// a read answered just before the close may have raced with a direct write that is still on its
/// way (the window is microseconds; this is generous).
const RECENT: Duration = Duration::from_secs(1);

/// Which files have handles open without O_DIRECT (whose reads fill the page cache), by node id.
#[derive(Default)]
pub struct PageCacheUsers {
    map: Mutex<HashMap<u64, Users>>,
}

#[derive(Clone, Copy)]
struct Users {
    open: u32,
    last_close: Option<Instant>,
}

impl PageCacheUsers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Users>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A handle of `ino` without O_DIRECT was opened.
    pub fn opened(&self, ino: u64) {
        self.lock()
            .entry(ino)
            .or_insert(Users {
                open: 0,
                last_close: None,
            })
            .open += 1;
    }

    /// A handle of `ino` without O_DIRECT was closed.
    pub fn closed(&self, ino: u64) {
        let mut map = self.lock();
        let now = Instant::now();
        if let Some(u) = map.get_mut(&ino) {
            u.open = u.open.saturating_sub(1);
            u.last_close = Some(now);
        }
        // Keep the map as small as the set of files in use: drop entries long closed.
        if map.len() > 1024 {
            map.retain(|_, u| u.open > 0 || u.last_close.is_some_and(|t| now - t < RECENT));
        }
    }

    /// Whether buffered reads of `ino` may have raced with a direct write that arrived at `since`:
    /// a buffered handle is open now, or was closed shortly before the write arrived or after.
    pub fn may_have_raced(&self, ino: u64, since: Instant) -> bool {
        match self.lock().get(&ino) {
            None => false,
            Some(u) => u.open > 0 || u.last_close.is_some_and(|t| t + RECENT > since),
        }
    }
}

type Job = (u64, i64, i64, Box<dyn FnOnce() + Send>);

/// The connection to the kernel's caches (set once the mount is up) and the invalidation thread.
pub struct KernelCache {
    notifier: Arc<OnceLock<Notifier>>,
    jobs: Sender<Job>,
    pub users: PageCacheUsers,
}

impl KernelCache {
    pub fn new() -> std::io::Result<Self> {
        let notifier = Arc::new(OnceLock::new());
        let (jobs, rx) = crossbeam_channel::unbounded();
        let n = notifier.clone();
        // The thread ends when the last holder of this cache (the filesystem, or a write reply in
        // flight) lets go and it has run every job queued.
        std::thread::Builder::new()
            .name("arsyncfs-inval".into())
            .spawn(move || serve(&n, rx))?;
        Ok(KernelCache {
            notifier,
            jobs,
            users: PageCacheUsers::default(),
        })
    }

    /// Connects to the kernel: called once the session is mounted.
    pub fn connect(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Makes the kernel fetch `ino`'s attributes again. Safe from any thread: it waits for nothing.
    pub fn attributes(&self, ino: u64) {
        if let Some(n) = self.notifier.get() {
            report(n.inval_inode(INodeNo(ino), -1, 0), ino);
        }
    }

    /// Drops the cached pages of `len` bytes at `offset` of `ino`, then runs `then` (always, also
    /// when the kernel refused or the thread is gone: `then` sends a reply).
    pub fn pages_then(&self, ino: u64, offset: u64, len: u64, then: Box<dyn FnOnce() + Send>) {
        let job = (
            ino,
            offset.min(i64::MAX as u64) as i64,
            len.min(i64::MAX as u64) as i64,
            then,
        );
        if let Err(refused) = self.jobs.send(job) {
            (refused.0.3)();
        }
    }
}

fn serve(notifier: &OnceLock<Notifier>, jobs: Receiver<Job>) {
    for (ino, offset, len, then) in jobs {
        if let Some(n) = notifier.get() {
            report(n.inval_inode(INodeNo(ino), offset, len), ino);
        }
        then();
    }
}

fn report(result: std::io::Result<()>, ino: u64) {
    // ENOENT: the kernel has no such inode cached, so nothing to drop.
    if let Err(e) = result
        && e.raw_os_error() != Some(libc::ENOENT)
    {
        tracing::warn!(ino, "could not invalidate the kernel's cache: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_counted_per_file() {
        let u = PageCacheUsers::default();
        let t0 = Instant::now();
        assert!(!u.may_have_raced(5, t0), "never opened buffered");
        u.opened(5);
        u.opened(5);
        assert!(u.may_have_raced(5, t0));
        assert!(!u.may_have_raced(6, t0));
        u.closed(5);
        assert!(u.may_have_raced(5, t0), "one still open");
        u.closed(5);
        assert!(u.may_have_raced(5, t0), "closed just now");
        let later = Instant::now() + RECENT * 2;
        assert!(!u.may_have_raced(5, later), "closed long before the write");
    }

    #[test]
    fn jobs_run_their_continuation_without_a_kernel() {
        let cache = KernelCache::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            cache.pages_then(7, 0, 4096, Box::new(move || tx.send(i).unwrap()));
        }
        drop(cache);
        drop(tx);
        let got: Vec<i32> = rx.iter().collect();
        assert_eq!(got, vec![0, 1, 2], "every continuation ran, in order");
    }
}
