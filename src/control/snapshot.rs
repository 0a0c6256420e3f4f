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

/// A report's parts as tests of the formats use them.
#[cfg(test)]
pub mod sample {
    use super::*;
    use crate::fs::{FsStatsSnapshot, HistogramSnapshot, InodeStats, OpSnapshot};

    pub fn mount() -> MountInfo {
        MountInfo {
            mountpoint: PathBuf::from("/mnt/a \"view\"\n"),
            backing: PathBuf::from("/srv/data"),
            pid: 42,
            version: "0.1.0".to_owned(),
            options: vec![
                ("cache".to_owned(), "auto".to_owned()),
                ("buffers".to_owned(), "128".to_owned()),
            ],
        }
    }

    fn op(op: Op, started: u64, errnos: Vec<(i32, u64)>, latencies: &[u64]) -> OpSnapshot {
        OpSnapshot {
            op,
            started,
            errors: errnos.iter().map(|(_, n)| n).sum(),
            errnos,
            latency: HistogramSnapshot::of(latencies),
        }
    }

    /// Lookups (one failed), reads, one write in flight, two reactors.
    pub fn snapshot(uptime: Duration, reads: u64) -> Snapshot {
        let mut ops: Vec<OpSnapshot> = Op::ALL.iter().map(|&o| op(o, 0, vec![], &[])).collect();
        ops[Op::Lookup.index()] = op(
            Op::Lookup,
            3,
            vec![(libc::ENOENT, 1)],
            &[4_000, 5_000, 1_500_000],
        );
        ops[Op::Read.index()] = op(Op::Read, reads, vec![], &vec![20_000; reads as usize]);
        ops[Op::Write.index()] = op(Op::Write, 1, vec![], &[]);
        let stats = FsStatsSnapshot {
            ops,
            reads,
            writes: 1,
            bytes_read: reads * 4096,
            bytes_written: 0,
            largest_read: 4096,
            ..Default::default()
        };
        let lane = |received, turns| ReactorStats {
            received,
            turns,
            buffer_limit: 64,
            ..Default::default()
        };
        Snapshot {
            uptime,
            fs: FsSnapshot {
                stats,
                open_handles: 2,
                inodes: InodeStats {
                    nodes: 5,
                    pinned: 1,
                    cached_fds: 4,
                    forgotten: 0,
                },
            },
            reactors: vec![lane(reads, 4), lane(0, 0)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_between_two_snapshots() {
        let before = sample::snapshot(Duration::from_secs(10), 2);
        let now = sample::snapshot(Duration::from_secs(12), 12);
        let r = Rates::between(&before, &now).unwrap();
        assert_eq!(r.interval, Duration::from_secs(2));
        assert_eq!(r.of(Op::Read), 5.0);
        assert_eq!(r.of(Op::Lookup), 0.0);
        assert_eq!(r.requests, 5.0);
        assert_eq!(r.bytes_read, 5.0 * 4096.0);
        assert!(
            r.ops
                .iter()
                .all(|(op, _)| [Op::Lookup, Op::Read, Op::Write].contains(op))
        );
        assert_eq!(Rates::between(&now, &now), None, "no time passed");
        assert_eq!(Rates::between(&now, &before), None, "backwards");
        assert_eq!(now.fs.stats.in_flight(), 1, "the write");
    }
}
