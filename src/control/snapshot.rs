//! What a report is made of: the mount's description, a snapshot of its counters, and the rates
//! between two snapshots.

use std::path::PathBuf;
use std::time::Duration;

use crate::fs::{FsSnapshot, Op};
use crate::reactor::ReactorStats;

/// The mount, as it stays while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountInfo {
    pub mountpoint: PathBuf,
    pub backing: PathBuf,
    pub pid: u32,
    pub version: String,
    /// The options in force, as `name=value` pairs, in a fixed order.
    pub options: Vec<(String, String)>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Since the mount was made.
    pub uptime: Duration,
    pub fs: FsSnapshot,
    /// Each reactor's counters, by index.
    pub reactors: Vec<ReactorStats>,
}

impl Snapshot {
    /// Requests answered, all operations together.
    pub fn answered(&self) -> u64 {
        self.fs.stats.ops.iter().map(|o| o.answered()).sum()
    }
}

/// Per-second rates between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    pub interval: Duration,
    /// Requests answered per second, all operations together.
    pub requests: f64,
    /// Requests answered per second, by operation (those with any).
    pub ops: Vec<(Op, f64)>,
    pub bytes_read: f64,
    pub bytes_written: f64,
}

impl Rates {
    /// The rates from `before` to `now`; `None` if no time passed between them.
    pub fn between(before: &Snapshot, now: &Snapshot) -> Option<Rates> {
        let interval = now.uptime.checked_sub(before.uptime)?;
        let secs = interval.as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let per_sec = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        let ops = before
            .fs
            .stats
            .ops
            .iter()
            .zip(&now.fs.stats.ops)
            .filter(|(_, n)| n.started > 0)
            .map(|(b, n)| (n.op, per_sec(b.answered(), n.answered())))
            .collect();
        Some(Rates {
            interval,
            requests: per_sec(before.answered(), now.answered()),
            ops,
            bytes_read: per_sec(before.fs.stats.bytes_read, now.fs.stats.bytes_read),
            bytes_written: per_sec(before.fs.stats.bytes_written, now.fs.stats.bytes_written),
        })
    }

    /// The rate of `op`, 0 when it has none.
    pub fn of(&self, op: Op) -> f64 {
        self.ops
            .iter()
            .find(|(o, _)| *o == op)
            .map_or(0.0, |(_, r)| *r)
    }
}

/// Everything one report shows.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub mount: &'a MountInfo,
    pub now: &'a Snapshot,
    /// Since the snapshot before, when there was one (`--watch`).
    pub rates: Option<&'a Rates>,
}
