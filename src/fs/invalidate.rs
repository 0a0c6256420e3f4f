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
use std::sync::atomic::{AtomicUsize, Ordering};
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

    /// A read of `ino` through the page cache on a handle opened with O_DIRECT (switched with
    /// fcntl): counts as a buffered handle closed just now.
    pub fn read_through_cache(&self, ino: u64) {
        self.lock()
            .entry(ino)
            .or_insert(Users {
                open: 0,
                last_close: None,
            })
            .last_close = Some(Instant::now());
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

/// A reply waiting for an invalidation; whoever takes it first sends it (see `REPLY_PATIENCE`).
type ReplyCell = Arc<Mutex<Option<Box<dyn FnOnce() + Send>>>>;

/// Longest a direct write's reply waits for its invalidation. The kernel's invalidation waits for
/// locked pages, and pages can be locked by the very write being answered: when the kernel falls
/// back to a buffered write on an O_DIRECT handle (the rest of a short direct write, or pages it
/// could not drop), it sends a WRITE from locked pages that looks like a direct one. Then the reply
/// goes out after this long, the pages unlock, and the invalidation completes after it. A READ in
/// flight, the case the invalidation is for, is answered by the reactor long before.
const REPLY_PATIENCE: Duration = Duration::from_millis(100);

/// How long the invalidation thread waits for the kernel connection right after mounting.
const CONNECT_PATIENCE: Duration = Duration::from_secs(1);

struct Job {
    ino: u64,
    offset: i64,
    len: i64,
    reply: ReplyCell,
}

/// The connection to the kernel's caches (set once the mount is up), the invalidation thread and
/// the watchdog that answers a reply whose invalidation takes too long.
pub struct KernelCache {
    notifier: Arc<OnceLock<Notifier>>,
    jobs: Sender<Job>,
    deadlines: Sender<(Instant, ReplyCell)>,
    /// Replies queued and not sent yet.
    pending: Arc<AtomicUsize>,
    pub users: PageCacheUsers,
}

impl KernelCache {
    pub fn new() -> std::io::Result<Self> {
        let notifier = Arc::new(OnceLock::new());
        let pending = Arc::new(AtomicUsize::new(0));
        let (jobs, rx) = crossbeam_channel::unbounded();
        let (deadlines, deadline_rx) = crossbeam_channel::unbounded();
        // Both threads end when the last holder of this cache (the filesystem, or a write reply
        // in flight) lets go and they have answered every reply queued.
        let (n, p) = (notifier.clone(), pending.clone());
        std::thread::Builder::new()
            .name("arsyncfs-inval".into())
            .spawn(move || serve(&n, rx, &p))?;
        let p = pending.clone();
        std::thread::Builder::new()
            .name("arsyncfs-inval-watch".into())
            .spawn(move || watch(deadline_rx, &p))?;
        Ok(KernelCache {
            notifier,
            jobs,
            deadlines,
            pending,
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

    /// Drops the cached pages of `len` bytes at `offset` of `ino`, then runs `then`: once, always
    /// (also when the kernel refused, or after `REPLY_PATIENCE` if the invalidation is stuck behind
    /// locked pages): `then` sends a reply.
    pub fn pages_then(&self, ino: u64, offset: u64, len: u64, then: Box<dyn FnOnce() + Send>) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let reply: ReplyCell = Arc::new(Mutex::new(Some(then)));
        let _ = self
            .deadlines
            .send((Instant::now() + REPLY_PATIENCE, reply.clone()));
        let job = Job {
            ino,
            offset: offset.min(i64::MAX as u64) as i64,
            len: len.min(i64::MAX as u64) as i64,
            reply: reply.clone(),
        };
        if self.jobs.send(job).is_err() {
            answer(&reply, &self.pending);
        }
    }

    /// Waits, at most `limit`, until every reply queued here has been sent; false on timeout.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while self.pending.load(Ordering::Acquire) > 0 {
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }
}

/// Sends the reply in `cell` unless someone already did.
fn answer(cell: &ReplyCell, pending: &AtomicUsize) {
    let reply = cell.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(reply) = reply {
        reply();
        pending.fetch_sub(1, Ordering::AcqRel);
    }
}

fn serve(notifier: &OnceLock<Notifier>, jobs: Receiver<Job>, pending: &AtomicUsize) {
    let mut waited = false;
    for job in jobs {
        // The mount answers requests an instant before the connection is handed over.
        if !waited {
            let deadline = Instant::now() + CONNECT_PATIENCE;
            while notifier.get().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            waited = true;
        }
        if let Some(n) = notifier.get() {
            report(
                n.inval_inode(INodeNo(job.ino), job.offset, job.len),
                job.ino,
            );
        }
        answer(&job.reply, pending);
    }
}

/// Answers, in order, the replies whose invalidation outlived `REPLY_PATIENCE`.
fn watch(deadlines: Receiver<(Instant, ReplyCell)>, pending: &AtomicUsize) {
    for (deadline, reply) in deadlines {
        // Already answered (the usual case): nothing to wait for.
        if reply.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            continue;
        }
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        answer(&reply, pending);
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
        u.read_through_cache(9);
        assert!(
            u.may_have_raced(9, Instant::now()),
            "read through the cache just now"
        );
    }

    #[test]
    fn jobs_run_their_continuation_without_a_kernel() {
        let cache = KernelCache::new().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            cache.pages_then(7, 0, 4096, Box::new(move || tx.send(i).unwrap()));
        }
        assert!(cache.wait_idle(Duration::from_secs(10)), "every reply sent");
        drop(cache);
        drop(tx);
        let got: Vec<i32> = rx.iter().collect();
        assert_eq!(got, vec![0, 1, 2], "every continuation ran once, in order");
    }
}
