//! Errors counted by (operation, errno) without a lock: a small open-addressing table of atomics in
//! which each slot is a key word and a count word, so that claiming a slot and counting in it are
//! each one atomic operation, and no count can ever run into its key. Errors past its capacity
//! (which takes many different errnos) are counted together.

use std::sync::atomic::{AtomicU64, Ordering};

/// Slots of one table; each (operation, errno) pair seen takes one.
const SLOTS: usize = 64;
/// Errno values are kept below this (Linux's are below 150).
const ERRNO_LIMIT: i32 = 1 << 12;
/// Operations are numbered below this.
pub const OP_LIMIT: usize = 64;

/// One error count of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErrnoCount {
    pub op: usize,
    pub errno: i32,
    pub count: u64,
}

pub struct ErrnoCounts {
    /// The key of each slot (0: free), set once.
    keys: [AtomicU64; SLOTS],
    /// The count of each slot's key; a slot's key is claimed before its first count.
    counts: [AtomicU64; SLOTS],
    /// Errors that found no free slot.
    overflow: AtomicU64,
}

impl Default for ErrnoCounts {
    fn default() -> Self {
        ErrnoCounts {
            keys: std::array::from_fn(|_| AtomicU64::new(0)),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
        }
    }
}

/// A nonzero key for (op, errno): an empty slot is 0.
fn key(op: usize, errno: i32) -> u64 {
    debug_assert!(op < OP_LIMIT);
    let errno = errno.clamp(0, ERRNO_LIMIT - 1) as u64;
    ((op as u64) << 12 | errno) + 1
}

impl ErrnoCounts {
    /// Counts one error `errno` of operation number `op` (below [`OP_LIMIT`]).
    pub fn record(&self, op: usize, errno: i32) {
        let key = key(op, errno);
        let start = (key as usize).wrapping_mul(0x9e37_79b9) % SLOTS;
        for i in 0..SLOTS {
            let slot = (start + i) % SLOTS;
            let mut now = self.keys[slot].load(Ordering::Relaxed);
            if now == 0 {
                // Another thread may claim it meanwhile, maybe for this very key.
                now = match self.keys[slot].compare_exchange(
                    0,
                    key,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => key,
                    Err(taken) => taken,
                };
            }
            if now == key {
                self.counts[slot].fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds this table's counts into `into` (one entry per (op, errno)); returns the errors that
    /// found no slot.
    pub fn add_to(&self, into: &mut Vec<ErrnoCount>) -> u64 {
        for (key, count) in self.keys.iter().zip(&self.counts) {
            let (key, count) = (key.load(Ordering::Relaxed), count.load(Ordering::Relaxed));
            // A slot claimed a moment ago may not have its first count yet.
            if key == 0 || count == 0 {
                continue;
            }
            let key = key - 1;
            let (op, errno) = ((key >> 12) as usize, (key & 0xfff) as i32);
            match into.iter_mut().find(|e| e.op == op && e.errno == errno) {
                Some(e) => e.count += count,
                None => into.push(ErrnoCount { op, errno, count }),
            }
        }
        self.overflow.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(t: &ErrnoCounts) -> (Vec<ErrnoCount>, u64) {
        let mut v = Vec::new();
        let overflow = t.add_to(&mut v);
        v.sort();
        (v, overflow)
    }

    #[test]
    fn counts_each_pair_apart() {
        let t = ErrnoCounts::default();
        t.record(3, libc::ENOENT);
        t.record(3, libc::ENOENT);
        t.record(3, libc::EACCES);
        t.record(OP_LIMIT - 1, 4095);
        t.record(0, 99999); // clamped, still counted
        let (v, overflow) = counts(&t);
        assert_eq!(overflow, 0);
        assert_eq!(
            v,
            vec![
                ErrnoCount {
                    op: 0,
                    errno: 4095,
                    count: 1
                },
                ErrnoCount {
                    op: 3,
                    errno: libc::ENOENT,
                    count: 2
                },
                ErrnoCount {
                    op: 3,
                    errno: libc::EACCES,
                    count: 1
                },
                ErrnoCount {
                    op: OP_LIMIT - 1,
                    errno: 4095,
                    count: 1
                },
            ]
        );
    }

    #[test]
    fn a_count_past_40_bits_keeps_its_key() {
        let t = ErrnoCounts::default();
        t.record(3, libc::ENOENT);
        let slot = t.counts.iter().position(|c| c.load(Ordering::Relaxed) == 1);
        t.counts[slot.unwrap()].store((1 << 40) - 1, Ordering::Relaxed);
        t.record(3, libc::ENOENT);
        let (v, _) = counts(&t);
        assert_eq!(
            v,
            vec![ErrnoCount {
                op: 3,
                errno: libc::ENOENT,
                count: 1 << 40
            }]
        );
    }

    #[test]
    fn a_full_table_counts_the_rest_together() {
        let t = ErrnoCounts::default();
        for errno in 1..=SLOTS as i32 + 5 {
            t.record(1, errno);
        }
        t.record(1, 1); // still has its slot
        let (v, overflow) = counts(&t);
        assert_eq!(v.len(), SLOTS);
        assert_eq!(overflow, 5);
        assert_eq!(v.iter().map(|e| e.count).sum::<u64>(), SLOTS as u64 + 1);
    }

    #[test]
    fn threads_racing_for_slots_lose_no_count() {
        let t = std::sync::Arc::new(ErrnoCounts::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        t.record(i % 3, (i % 7) as i32);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let (v, overflow) = counts(&t);
        assert_eq!(overflow, 0);
        assert_eq!(v.len(), 21, "one slot per pair, none claimed twice");
        assert_eq!(v.iter().map(|e| e.count).sum::<u64>(), 40_000);
    }

    #[test]
    fn snapshots_of_several_tables_merge_by_pair() {
        let (a, b) = (ErrnoCounts::default(), ErrnoCounts::default());
        a.record(2, libc::ENOSPC);
        b.record(2, libc::ENOSPC);
        b.record(2, libc::EIO);
        let mut v = Vec::new();
        a.add_to(&mut v);
        b.add_to(&mut v);
        v.sort();
        assert_eq!(
            v,
            vec![
                ErrnoCount {
                    op: 2,
                    errno: libc::EIO,
                    count: 1
                },
                ErrnoCount {
                    op: 2,
                    errno: libc::ENOSPC,
                    count: 2
                },
            ]
        );
    }
}
