//! The FUSE layer: a passthrough `fuser::Filesystem` over a backing directory.
//!
//! Metadata operations are answered inline with `*at` calls relative to the `O_PATH` descriptor of a
//! node (see [`inodes`]); no full path is ever resolved, and names are single components opened with
//! `O_NOFOLLOW`, so nothing can follow a symlink out of the backing tree. Data operations (read, write,
//! fsync, fallocate, release) go to the reactor, which answers the kernel from its own thread, except
//! buffered writes the kernel sends one at a time (see [`BufferedWrites`]). With `--passthrough`
//! the kernel reads and writes the backing files itself (see `passthrough.rs`). This
//! layer knows nothing of io_uring: it only sees a [`ReactorHandle`].

mod atime;
mod attr_ops;
mod cache;
mod creds;
mod dirs;
mod dirstream;
mod export;
mod files;
mod filesystem;
mod fuse_attr;
mod handles;
mod injected;
mod inodes;
mod invalidate;
mod killpriv;
mod namespace;
mod observer;
mod passthrough;
mod replies;
mod stats;
mod timed;
mod xattrs;

pub use atime::{AtimeMode, AtimeRules};
pub use cache::{CacheMode, CachePolicy};
pub use invalidate::KernelCache;
pub use observer::{FsObserver, FsSnapshot};
pub use replies::FuseReplies;
pub use stats::{Op, OpSnapshot};
#[cfg(test)]
pub use {
    inodes::InodeStats,
    stats::{FsStatsSnapshot, HistogramSnapshot},
};

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fuser::Errno;
use rustix::fs::{AtFlags, Mode, OFlags, Stat};

use crate::reactor::ReactorHandle;
use atime::AtimePlan;
use handles::HandleTable;
use inodes::{EntryId, InodeKey, InodeTable};

/// Settings of the filesystem (not of the mount: those live in the CLI). The caching fields come
/// from a [`CacheMode`] (see [`FsConfig::set_cache`]); the default is `auto`'s.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// How long the kernel may cache attributes.
    pub attr_timeout: Duration,
    /// How long the kernel may cache name lookups.
    pub entry_timeout: Duration,
    /// Let the kernel cache writes and send them in big batches (FUSE writeback cache).
    pub writeback_cache: bool,
    /// Refuse every change with EROFS.
    pub read_only: bool,
    /// Let the kernel keep a file's cached pages across opens while the backing file's mtime and
    /// size are unchanged (libfuse's auto_cache).
    pub keep_cache: bool,
    /// Open files with FOPEN_DIRECT_IO: the kernel caches no pages of them (shared mmap excepted)
    /// and sends every read and write to the daemon.
    pub direct_io: bool,
    /// Most backing descriptors kept open for the inodes the kernel remembers (the rest are
    /// reopened by file handle when needed).
    pub max_cached_fds: usize,
    /// Most forgotten nodes whose file handles are kept (an LRU by node id), so that a file handle
    /// of the mount (name_to_handle_at, NFS export) still opens after the kernel dropped the node
    /// from its caches. Memory grows with use, to about 130 bytes an entry (measured with 8- to
    /// 20-byte handles: 8.5 MiB at the default of 65536); 0 keeps none.
    pub max_forgotten_handles: usize,
    /// Who writes buffered (non-O_DIRECT) writes to the backing file.
    pub buffered_writes: BufferedWrites,
    /// Most background requests (readahead, asynchronous direct I/O, writeback) the kernel sends at
    /// once before it makes further ones wait (FUSE `max_background`; it counts the connection
    /// congested at 3/4 of this). fuser's own default is 16.
    pub max_background: u16,
    /// When reading a file through the mount updates its access time (`noatime`, `relatime`,
    /// `strictatime`; see the `atime` module).
    pub atime: AtimeMode,
    /// Whether listing a directory updates its access time under `atime` (false: `nodiratime`).
    pub diratime: bool,
    /// Let the kernel read and write the backing files itself (FUSE passthrough, Linux 6.9+; the
    /// daemon needs CAP_SYS_ADMIN). It excludes the writeback cache (see
    /// [`FsConfig::enables_writeback_cache`]). See docs/semantics.md.
    pub passthrough: bool,
}

impl FsConfig {
    /// Whether these settings make the kernel cache writes (the FUSE writeback cache), which the
    /// kernel does not combine with passthrough.
    pub fn enables_writeback_cache(&self) -> bool {
        self.writeback_cache
    }
}

/// Where buffered writes are written; O_DIRECT writes and the kernel's writeback flushes always go to
/// the reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferedWrites {
    /// By the reactor through io_uring, like every other data operation (the default: all file data
    /// moves on io_uring).
    #[default]
    Reactor,
    /// By the session thread that received them (pwrite(2)): fewest thread hops, faster for small
    /// writes a program waits for one by one (see docs/benchmarks-reading.md, "Buffered writes").
    Inline,
}

impl Default for FsConfig {
    fn default() -> Self {
        let cache = CacheMode::default().policy();
        FsConfig {
            attr_timeout: cache.attr_timeout,
            entry_timeout: cache.entry_timeout,
            writeback_cache: cache.writeback_cache,
            read_only: false,
            keep_cache: cache.keep_cache,
            direct_io: cache.direct_io,
            max_cached_fds: 16384,
            max_forgotten_handles: 65536,
            buffered_writes: BufferedWrites::Reactor,
            max_background: 64,
            atime: AtimeMode::Relatime,
            diratime: true,
            passthrough: false,
        }
    }
}

impl FsConfig {
    /// Takes every caching setting from `policy`.
    pub fn set_cache(&mut self, policy: &CachePolicy) {
        self.attr_timeout = policy.attr_timeout;
        self.entry_timeout = policy.entry_timeout;
        self.writeback_cache = policy.writeback_cache;
        self.keep_cache = policy.keep_cache;
        self.direct_io = policy.direct_io;
    }
}

/// The reactor handle type the filesystem uses.
pub type FsReactor = ReactorHandle<FuseReplies>;

/// A passthrough view of one backing directory.
pub struct PassthroughFs {
    config: FsConfig,
    reactor: FsReactor,
    inodes: Arc<InodeTable>,
    handles: Arc<HandleTable>,
    /// Whether the kernel agreed to the writeback cache (decided in `init`).
    writeback: std::sync::atomic::AtomicBool,
    /// Whether session threads create objects as their callers (the daemon runs as root and can
    /// switch a thread's credentials; see the `creds` module).
    acts_as_callers: bool,
    /// Whether closing a backing file can never report an error (local filesystems without a
    /// flush-on-close: ext4, xfs, btrfs, tmpfs): then a created file needs no FLUSH at each close.
    silent_close: bool,
    /// How reads of the backing tree are made to follow the mount's atime rules.
    atime: AtimePlan,
    /// The backing directory on its own mount, held while the tree is reached through a private
    /// copy of that mount: it keeps the mount busy, so it cannot be unmounted under us unnoticed
    /// (the copy would keep its filesystem alive, detached).
    _backing_mount: Option<OwnedFd>,
    /// Leaked, one per filesystem: the replies of requests in flight carry it to the threads that
    /// answer them (a reference to count with costs nothing, a shared `Arc` a contended cache
    /// line per request), and they may outlive the filesystem object at unmount.
    stats: &'static stats::FsStats,
    /// What the kernel caches of files, and how to make it drop it.
    cache: Arc<invalidate::KernelCache>,
    /// Whether the kernel agreed to passthrough (decided in `init`).
    passthrough: std::sync::atomic::AtomicBool,
    /// The backing file and mode of every node open while passthrough is on.
    backings: passthrough::BackingRegistry<fuser::BackingId>,
}

/// Result of an operation: a value or the errno to answer.
type OpResult<T> = Result<T, Errno>;

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_i32(e.raw_os_error())
}

fn key_of(st: &Stat) -> InodeKey {
    InodeKey {
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

/// The procfs name of a descriptor: the way to reach an `O_PATH` node for calls that have no
/// descriptor-relative form (open, xattrs, chmod). It resolves to the very object, never a path.
fn proc_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// FUSE names are single path components; refuse anything else so no lookup can leave a directory.
fn check_name(name: &OsStr) -> OpResult<()> {
    let b = name.as_bytes();
    if b.is_empty() || b.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if b == b"." || b == b".." {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl PassthroughFs {
    /// Opens `backing` (which must be a directory) and prepares the view. Data operations go to
    /// `reactor`; the caller owns the reactor and shuts it down after unmounting.
    pub fn new(backing: &Path, config: FsConfig, reactor: FsReactor) -> io::Result<Self> {
        let root = rustix::fs::open(
            backing,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            let e = io::Error::from(e);
            io::Error::new(e.kind(), format!("{}: {e}", backing.display()))
        })?;
        let st = rustix::fs::fstat(&root)?;
        let st_fs = rustix::fs::fstatfs(&root)?;
        let (root, atime, backing_mount) = reach_with_atime_rules(root, &config)?;
        raise_fd_limit();
        let is_root = rustix::process::geteuid().is_root();
        // open_by_handle_at needs CAP_DAC_READ_SEARCH and a filesystem that exports handles;
        // without them every node pins a descriptor.
        let mount_fd = if is_root && crate::sys::handle::handle_of(root.as_fd()).is_ok() {
            rustix::fs::openat(
                &root,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
        } else {
            None
        };
        let use_handles = mount_fd.is_some();
        // The caller's umask is applied by `creation_mode` (FUSE_DONT_MASK); the daemon's own must
        // not apply on top of it.
        rustix::process::umask(Mode::empty());
        tracing::debug!(use_handles, "inode table");
        Ok(PassthroughFs {
            inodes: Arc::new(InodeTable::new(
                root,
                key_of(&st),
                mount_fd,
                config.max_cached_fds,
                config.max_forgotten_handles,
            )),
            config,
            reactor,
            handles: Arc::default(),
            writeback: std::sync::atomic::AtomicBool::new(false),
            acts_as_callers: creds::can_act_as_callers(),
            silent_close: closes_silently(&st_fs),
            atime,
            _backing_mount: backing_mount,
            stats: Box::leak(Box::default()),
            cache: Arc::new(invalidate::KernelCache::new()?),
            passthrough: std::sync::atomic::AtomicBool::new(false),
            backings: passthrough::BackingRegistry::default(),
        })
    }

    /// A view of the filesystem's counters and tables, for a thread that reports them while the
    /// mount runs and after it ended.
    pub fn observer(&self) -> FsObserver {
        FsObserver::new(self.stats, self.inodes.clone(), self.handles.clone())
    }

    /// The kernel-cache connection, to [`connect`](KernelCache::connect) once the mount is up.
    pub fn kernel_cache(&self) -> Arc<KernelCache> {
        self.cache.clone()
    }

    /// The `O_PATH` descriptor of node `ino`.
    fn node_fd(&self, ino: u64) -> OpResult<Arc<OwnedFd>> {
        self.inodes.fd(ino).map_err(|e| replies::errno_of(&e))
    }

    fn check_writable(&self) -> OpResult<()> {
        if self.config.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// Registers what was just created as `name` in `parent` (open as `pfd`), counting one kernel
    /// lookup of it: opened directly, since it is new (no stat of the name first).
    fn created(&self, parent: u64, pfd: &OwnedFd, name: &OsStr) -> OpResult<(EntryId, Stat)> {
        let fd = rustix::fs::openat(
            pfd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        let entry = self.register(fd, &st);
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            self.inodes.set_link_name(entry.id, parent, name);
        }
        Ok((entry, st))
    }

    /// The node of the object open as `fd` (an `O_PATH` descriptor; `st` its attributes), counting
    /// one kernel lookup: the node known for it, or a new node that keeps `fd`.
    fn register(&self, fd: OwnedFd, st: &Stat) -> EntryId {
        let key = key_of(st);
        match self
            .inodes
            .known_entry(key, || crate::sys::handle::handle_of(fd.as_fd()))
        {
            Some(entry) => entry,
            None => self.inodes.lookup(key, fd),
        }
    }

    /// Looks `name` up in `parent`, counting one kernel lookup of the result.
    fn lookup_child(&self, parent: u64, name: &OsStr) -> OpResult<(EntryId, Stat)> {
        self.lookup_child_hinted(parent, name, None)
    }

    /// [`lookup_child`](Self::lookup_child), where `listed_ino` is the inode number a directory
    /// listing gave for `name`: a hint that spares the stat before the open of an object the table
    /// does not know yet.
    fn lookup_child_hinted(
        &self,
        parent: u64,
        name: &OsStr,
        listed_ino: Option<u64>,
    ) -> OpResult<(EntryId, Stat)> {
        let (entry, st) = self.lookup_child_inner(parent, name, listed_ino)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            self.inodes.set_link_name(entry.id, parent, name);
        }
        Ok((entry, st))
    }

    fn lookup_child_inner(
        &self,
        parent: u64,
        name: &OsStr,
        listed_ino: Option<u64>,
    ) -> OpResult<(EntryId, Stat)> {
        check_name(name)?;
        let pfd = self.node_fd(parent)?;
        let open = || {
            rustix::fs::openat(
                &*pfd,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(errno)
        };
        let unknown = listed_ino.is_some_and(|ino| {
            let dev = self.inodes.root_key().dev;
            self.inodes.id_of(InodeKey { dev, ino }).is_none()
        });
        if unknown {
            // Most likely new to the table: open it at once and register what was opened (if it
            // is known after all, under another device, the descriptor just goes).
            let fd = open()?;
            let st = rustix::fs::fstat(&fd).map_err(errno)?;
            return Ok((self.register(fd, &st), st));
        }
        let st = rustix::fs::statat(&*pfd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
        if let Some(entry) = self.inodes.known_entry(key_of(&st), || {
            crate::sys::handle::handle_of_child(pfd.as_fd(), name)
        }) {
            return Ok((entry, st));
        }
        let fd = open()?;
        // The name may have been replaced between the stat and the open: trust what was opened.
        let st = rustix::fs::fstat(&fd).map_err(errno)?;
        Ok((self.inodes.lookup(key_of(&st), fd), st))
    }
}

/// The root to reach the backing tree through, so that the daemon's reads of it follow the mount's
/// atime rules (see the `atime` module); how; and, when that root is a private copy of the backing
/// mount, the original root, to hold.
fn reach_with_atime_rules(
    root: OwnedFd,
    config: &FsConfig,
) -> io::Result<(OwnedFd, AtimePlan, Option<OwnedFd>)> {
    // A read-only mount changes nothing, access times included (as the kernel's touch_atime).
    let mode = if config.read_only {
        AtimeMode::NoAtime
    } else {
        config.atime
    };
    let want = AtimeRules::new(mode, config.diratime);
    let backing = AtimeRules::of_mount(rustix::fs::fstatvfs(&root)?.f_flag);
    let plan = want.plan(&backing);
    tracing::debug!(?want, ?backing, ?plan, "access times");
    if !plan.private_tree {
        return Ok((root, plan, None));
    }
    let tree = crate::sys::mount::clone_tree(root.as_fd()).and_then(|tree| {
        let (set, clear) = want.mount_attrs();
        crate::sys::mount::set_tree_attrs(tree.as_fd(), set, clear)?;
        Ok(tree)
    });
    match tree {
        Ok(tree) => Ok((tree, plan, Some(root))),
        Err(e) => {
            let plan = AtimePlan::without_private_tree(&want, &backing);
            tracing::warn!(
                "cannot give the backing directory the mount's access-time rules ({e}); reads \
                 update access times as its own mount says ({backing:?})"
            );
            Ok((root, plan, None))
        }
    }
}

/// Whether closing a file of the filesystem `st` describes never reports an error (the filesystem
/// has no flush-on-close, unlike NFS, SMB, Ceph, 9p, FUSE or overlay over those).
fn closes_silently(st: &rustix::fs::StatFs) -> bool {
    const EXT4: i64 = 0xef53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683e;
    const TMPFS: i64 = 0x0102_1994;
    // f_type is an i64 here, an i32 or u32 on other architectures.
    #[allow(clippy::unnecessary_cast)]
    let f_type = st.f_type as i64;
    matches!(f_type, EXT4 | XFS | BTRFS | TMPFS)
}

/// Lets the daemon hold an `O_PATH` descriptor for every inode the kernel remembers: raise the soft
/// limit on open files to the hard one, and as root the hard one to the system maximum.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if let Ok(max) = std::fs::read_to_string("/proc/sys/fs/nr_open")
        && let Ok(max) = max.trim().parse::<u64>()
    {
        let raised = rustix::process::Rlimit {
            current: Some(max),
            maximum: Some(max),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return;
        }
    }
    lim.current = lim.maximum;
    let _ = setrlimit(Resource::Nofile, lim);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon looks names up only one component at a time, and never "." or ".." (the kernel's
    /// file-handle code sends those as lookups of their own, answered by `export`): nothing a
    /// request names can lead out of a directory. Names made of dots are names.
    #[test]
    fn names_are_single_components() {
        for bad in ["", ".", "..", "/", "a/b", "../x", "x/..", "/etc"] {
            assert_eq!(check_name(OsStr::new(bad)), Err(Errno::EINVAL), "{bad:?}");
        }
        for good in ["...", "..x", "x..", ". .", ".. ", ".hidden", "a\\b"] {
            assert_eq!(check_name(OsStr::new(good)), Ok(()), "{good:?}");
        }
    }
}
