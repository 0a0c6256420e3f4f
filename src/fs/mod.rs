//! The FUSE layer: a passthrough `fuser::Filesystem` over a backing directory.
//!
//! Metadata operations are answered inline with `*at` calls relative to a parent's descriptor; data
//! operations (read, write, fsync, fallocate, release) go to the reactor, which answers the kernel from
//! its own thread. This layer knows nothing of io_uring: it only sees a [`ReactorHandle`].

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::reactor::ReactorHandle;

mod replies;
pub use replies::FuseReplies;

/// Settings of the filesystem (not of the mount: those live in the CLI).
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// How long the kernel may cache attributes.
    pub attr_timeout: Duration,
    /// How long the kernel may cache name lookups (and negative lookups).
    pub entry_timeout: Duration,
    /// Let the kernel cache writes and send them in big batches (FUSE writeback cache).
    pub writeback_cache: bool,
    /// Refuse every change with EROFS.
    pub read_only: bool,
}

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            attr_timeout: Duration::from_secs(1),
            entry_timeout: Duration::from_secs(1),
            writeback_cache: false,
            read_only: false,
        }
    }
}

/// The reactor handle type the filesystem uses.
pub type FsReactor = ReactorHandle<FuseReplies>;

/// A passthrough view of one backing directory.
pub struct PassthroughFs {
    #[allow(dead_code)]
    config: FsConfig,
    #[allow(dead_code)]
    reactor: FsReactor,
}

impl PassthroughFs {
    /// Opens `backing` (which must be a directory) and prepares the view. Data operations go to
    /// `reactor`; the caller owns the reactor and shuts it down after unmounting.
    pub fn new(backing: &Path, config: FsConfig, reactor: FsReactor) -> io::Result<Self> {
        let _ = backing;
        Ok(PassthroughFs { config, reactor })
    }
}

impl fuser::Filesystem for PassthroughFs {}
