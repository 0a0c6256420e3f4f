//! What the filesystem shows of itself while it runs: its counters and the sizes of its tables,
//! read from another thread (the stats socket's, the summary at unmount).

use std::sync::Arc;

use super::handles::HandleTable;
use super::inodes::{InodeStats, InodeTable};
use super::stats::{FsStats, FsStatsSnapshot};

/// A handle on a filesystem's counters and tables; cheap to clone, and valid after the filesystem
/// itself is gone.
#[derive(Clone)]
pub struct FsObserver {
    stats: &'static FsStats,
    inodes: Arc<InodeTable>,
    handles: Arc<HandleTable>,
}

/// The filesystem at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsSnapshot {
    pub stats: FsStatsSnapshot,
    /// Open file and directory handles.
    pub open_handles: usize,
    /// Inodes known, descriptors cached, handles of forgotten inodes kept.
    pub inodes: InodeStats,
}

impl FsObserver {
    pub(super) fn new(
        stats: &'static FsStats,
        inodes: Arc<InodeTable>,
        handles: Arc<HandleTable>,
    ) -> Self {
        FsObserver {
            stats,
            inodes,
            handles,
        }
    }

    /// The counters now, and the tables' sizes (each table's lock is taken for a moment).
    pub fn snapshot(&self) -> FsSnapshot {
        FsSnapshot {
            stats: self.stats.snapshot(),
            open_handles: self.handles.len(),
            inodes: self.inodes.stats(),
        }
    }
}
