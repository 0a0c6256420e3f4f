//! Kernel passthrough (`--passthrough`, Linux 6.9+): the kernel reads and writes the backing file
//! itself, and the daemon only opens and closes it.
//!
//! The daemon registers a backing file with the kernel (FUSE_DEV_IOC_BACKING_OPEN) and answers an
//! open with its id. The kernel keeps only the registered file's path and the daemon's credentials:
//! for each open it opens the backing file anew with the opener's own flags (access mode, O_DIRECT,
//! O_APPEND...), so one id serves every open of a node whatever its flags. The kernel allows one
//! backing file per inode at a time, and refuses (EIO to the program) an open without passthrough
//! while the inode is open with it, and one with passthrough while it is open without. So every node
//! is in one mode while it is open: [`BackingRegistry`] keeps that mode and the open count, and keeps
//! the backing id until the last release (dropping it closes it in the kernel).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{BackingId, FopenFlags, ReplyCreate, ReplyOpen};

use super::PassthroughFs;

/// Something that can register a backing file with the kernel: the reply of an open or a create.
pub trait RegisterBacking {
    fn register_backing(&self, fd: BorrowedFd<'_>) -> io::Result<BackingId>;
}

impl RegisterBacking for ReplyOpen {
    fn register_backing(&self, fd: BorrowedFd<'_>) -> io::Result<BackingId> {
        self.open_backing(fd)
    }
}

impl RegisterBacking for ReplyCreate {
    fn register_backing(&self, fd: BorrowedFd<'_>) -> io::Result<BackingId> {
        self.open_backing(fd)
    }
}

/// Who serves the reads and writes of one open of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The kernel, on the node's backing file.
    ByKernel,
    /// The daemon (the reactor), because the node is open without passthrough.
    ByDaemon,
}

/// The decision for one open.
pub enum Route<B> {
    /// Passthrough, with the node's backing file (shared by all its opens).
    Kernel(Arc<B>),
    /// Through the daemon: the node is already open that way.
    Daemon,
    /// Through the daemon: registering the backing file failed (no CAP_SYS_ADMIN, a backing
    /// filesystem stacked too deep, a kernel without passthrough...). Later opens of the node
    /// follow it until it is closed, then try again.
    Fallback(io::Error),
}

impl<B> Route<B> {
    pub fn served(&self) -> Served {
        match self {
            Route::Kernel(_) => Served::ByKernel,
            Route::Daemon | Route::Fallback(_) => Served::ByDaemon,
        }
    }
}

enum NodeMode<B> {
    Kernel { backing: Arc<B>, opens: usize },
    Daemon { opens: usize },
}

/// The mode of every open node, by node id, with its open count (see the module docs). Generic
/// over the backing id so that it can be tested without a mount.
pub struct BackingRegistry<B> {
    nodes: Mutex<HashMap<u64, NodeMode<B>>>,
}

impl<B> Default for BackingRegistry<B> {
    fn default() -> Self {
        BackingRegistry {
            nodes: Mutex::new(HashMap::new()),
        }
    }
}

impl<B> BackingRegistry<B> {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, NodeMode<B>>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one open of node `ino` and says how it is served. `register` registers the backing
    /// file when the node is not open yet; it runs under the registry's lock (one ioctl), so two
    /// first opens of a node cannot register two backing files.
    pub fn open(&self, ino: u64, register: impl FnOnce() -> io::Result<B>) -> Route<B> {
        let mut nodes = self.lock();
        match nodes.get_mut(&ino) {
            Some(NodeMode::Kernel { backing, opens }) => {
                *opens += 1;
                Route::Kernel(backing.clone())
            }
            Some(NodeMode::Daemon { opens }) => {
                *opens += 1;
                Route::Daemon
            }
            None => match register() {
                Ok(backing) => {
                    let backing = Arc::new(backing);
                    nodes.insert(
                        ino,
                        NodeMode::Kernel {
                            backing: backing.clone(),
                            opens: 1,
                        },
                    );
                    Route::Kernel(backing)
                }
                Err(e) => {
                    nodes.insert(ino, NodeMode::Daemon { opens: 1 });
                    Route::Fallback(e)
                }
            },
        }
    }

    /// Counts one release of node `ino`, opened as `served`. After the last one, returns the
    /// backing file if the node had one: the caller drops it (closing it in the kernel) outside
    /// the lock.
    pub fn release(&self, ino: u64, served: Served) -> Option<Arc<B>> {
        let mut nodes = self.lock();
        let opens = match nodes.get_mut(&ino)? {
            NodeMode::Kernel { opens, .. } => {
                debug_assert_eq!(served, Served::ByKernel, "one mode per open node");
                opens
            }
            NodeMode::Daemon { opens } => {
                debug_assert_eq!(served, Served::ByDaemon, "one mode per open node");
                opens
            }
        };
        *opens -= 1;
        if *opens > 0 {
            return None;
        }
        match nodes.remove(&ino) {
            Some(NodeMode::Kernel { backing, .. }) => Some(backing),
            _ => None,
        }
    }

    /// Open nodes (for the exit log and the tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The open flags the kernel accepts together with FOPEN_PASSTHROUGH; any other fails the open
/// with EIO. FOPEN_KEEP_CACHE above all: the node's page cache is not used while it is open.
pub fn passthrough_fopen(flags: FopenFlags) -> FopenFlags {
    flags
        & (FopenFlags::FOPEN_NOFLUSH
            | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
            | FopenFlags::FOPEN_DIRECT_IO)
}

/// Only the first refused registration is a warning: where it cannot work (a backing filesystem
/// stacked too deep) every open would repeat it.
static WARNED: AtomicBool = AtomicBool::new(false);

impl PassthroughFs {
    /// Decides how a new open of node `ino`, whose backing file is `file`, is served: `None` when
    /// passthrough is off, else who serves it and, when the kernel does, the backing id to answer
    /// the open with.
    pub(super) fn route_open(
        &self,
        ino: u64,
        file: &impl AsFd,
        kernel: &impl RegisterBacking,
    ) -> (Option<Served>, Option<Arc<BackingId>>) {
        if !self.passthrough.load(Ordering::Relaxed) {
            return (None, None);
        }
        let route = self
            .backings
            .open(ino, || kernel.register_backing(file.as_fd()));
        self.stats
            .passthrough_open(route.served() == Served::ByKernel);
        match route {
            Route::Kernel(backing) => (Some(Served::ByKernel), Some(backing)),
            Route::Daemon => (Some(Served::ByDaemon), None),
            Route::Fallback(e) => {
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        ino,
                        "kernel passthrough refused this file ({e}); the daemon serves it, and \
                         any other file it is refused for (debug log)"
                    );
                } else {
                    tracing::debug!(ino, "kernel passthrough refused: {e}");
                }
                (Some(Served::ByDaemon), None)
            }
        }
    }

    /// Counts the release of an open of node `ino` that was served as `served`; the last one
    /// closes the node's backing file in the kernel.
    pub(super) fn release_route(&self, ino: u64, served: Option<Served>) {
        if let Some(served) = served {
            drop(self.backings.release(ino, served));
        }
    }

    /// Counts a read or write that reached the daemon on a handle the kernel serves itself.
    pub(super) fn count_passthrough_io(&self, fh: u64, write: bool) {
        if self.passthrough.load(Ordering::Relaxed)
            && self.handles.served(fh) == Some(Served::ByKernel)
        {
            self.stats.passthrough_io(write);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A backing id that counts its registrations and closes.
    struct Id<'a>(&'a AtomicUsize);

    impl Drop for Id<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn register(live: &AtomicUsize) -> io::Result<Id<'_>> {
        live.fetch_add(1, Ordering::SeqCst);
        Ok(Id(live))
    }

    fn refused<'a>() -> io::Result<Id<'a>> {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }

    #[test]
    fn one_backing_per_node_kept_until_the_last_release() {
        let live = AtomicUsize::new(0);
        let r = BackingRegistry::default();
        let Route::Kernel(a) = r.open(7, || register(&live)) else {
            panic!("first open registers");
        };
        // Further opens share it and register nothing.
        let Route::Kernel(b) = r.open(7, || panic!("registered twice")) else {
            panic!("second open shares the backing");
        };
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        // Another node gets its own.
        assert!(matches!(r.open(8, || register(&live)), Route::Kernel(_)));
        assert_eq!(live.load(Ordering::SeqCst), 2);
        assert_eq!(r.len(), 2);

        assert!(r.release(7, Served::ByKernel).is_none(), "one open left");
        assert_eq!(live.load(Ordering::SeqCst), 2, "still registered");
        let last = r.release(7, Served::ByKernel).expect("the last release");
        assert_eq!(live.load(Ordering::SeqCst), 2, "closed only when dropped");
        drop(last);
        assert_eq!(live.load(Ordering::SeqCst), 1);
        drop(r.release(8, Served::ByKernel));
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn a_refused_registration_keeps_the_node_on_the_daemon_while_open() {
        let live = AtomicUsize::new(0);
        let r = BackingRegistry::default();
        let Route::Fallback(e) = r.open(3, refused) else {
            panic!("expected a fallback");
        };
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        // The kernel would refuse a passthrough open while the node is open without: no new try.
        assert!(matches!(
            r.open(3, || panic!(
                "must not register while open through the daemon"
            )),
            Route::Daemon
        ));
        assert_eq!(r.open(3, refused).served(), Served::ByDaemon);
        for _ in 0..3 {
            assert!(r.release(3, Served::ByDaemon).is_none());
        }
        assert_eq!(r.len(), 0);
        // Closed: the next open tries again.
        assert!(matches!(r.open(3, || register(&live)), Route::Kernel(_)));
        drop(r.release(3, Served::ByKernel));
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn release_of_an_unknown_node_is_ignored() {
        let r = BackingRegistry::<u32>::default();
        assert!(r.release(42, Served::ByKernel).is_none());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn concurrent_first_opens_register_once() {
        let live = AtomicUsize::new(0);
        let registrations = AtomicUsize::new(0);
        let r = BackingRegistry::default();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let route = r.open(1, || {
                        registrations.fetch_add(1, Ordering::SeqCst);
                        register(&live)
                    });
                    assert_eq!(route.served(), Served::ByKernel);
                });
            }
        });
        assert_eq!(registrations.load(Ordering::SeqCst), 1);
        for i in 0..8 {
            let last = r.release(1, Served::ByKernel);
            assert_eq!(last.is_some(), i == 7);
        }
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }
}
