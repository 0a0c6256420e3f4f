//! A latency histogram with fixed buckets: four per power of two from 1 µs to about 69 s, so a
//! quantile read from it is within 25% of the true value (the exact maximum is kept beside it).
//! Recording is one relaxed add on the bucket plus a sum and a maximum: no lock, no allocation.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as bits: 4 buckets.
const SUB_BITS: u32 = 2;
/// Values below 2^10 ns (about 1 µs) share the first bucket.
const MIN_SHIFT: u32 = 10;
/// Values from 2^36 ns (about 69 s) share the last bucket.
const MAX_SHIFT: u32 = 36;

/// Number of buckets: the one below 1 µs, four per power of two up to 2^36 ns, the one above.
pub const BUCKETS: usize = 2 + ((MAX_SHIFT - MIN_SHIFT) << SUB_BITS) as usize;

/// The bucket of a value of `ns` nanoseconds.
pub fn bucket_of(ns: u64) -> usize {
    if ns < 1 << MIN_SHIFT {
        return 0;
    }
    let msb = 63 - ns.leading_zeros();
    if msb >= MAX_SHIFT {
        return BUCKETS - 1;
    }
    let sub = (ns >> (msb - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    1 + (((msb - MIN_SHIFT) << SUB_BITS) as usize) + sub as usize
}

/// The largest value bucket `b` holds (`u64::MAX` for the last one).
pub fn upper_bound(b: usize) -> u64 {
    match b {
        0 => (1 << MIN_SHIFT) - 1,
        _ if b >= BUCKETS - 1 => u64::MAX,
        _ => {
            let msb = MIN_SHIFT + ((b - 1) >> SUB_BITS) as u32;
            let sub = ((b - 1) & ((1 << SUB_BITS) - 1)) as u64;
            (((1 << SUB_BITS) + sub + 1) << (msb - SUB_BITS)) - 1
        }
    }
}

/// The recording side: atomics, written with relaxed adds by the thread that owns them.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        // A load first: the maximum rarely changes, and a plain load costs no locked instruction.
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// Adds this histogram's counts into `into`.
    pub fn add_to(&self, into: &mut HistogramSnapshot) {
        for (sum, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *sum += b.load(Ordering::Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Ordering::Relaxed);
        into.max_ns = into.max_ns.max(self.max_ns.load(Ordering::Relaxed));
    }
}

/// The counts of one or more histograms at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub buckets: [u64; BUCKETS],
    pub sum_ns: u64,
    pub max_ns: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            buckets: [0; BUCKETS],
            sum_ns: 0,
            max_ns: 0,
        }
    }
}

impl HistogramSnapshot {
    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The value at quantile `q` (0.5: the median), as the upper bound of its bucket, never more
    /// than the maximum recorded; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        // The rank of the value wanted, 1-based: the smallest that has `q` of the values at or
        // below it.
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_bound(b).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// A snapshot of `values` recorded (for tests of what reads snapshots).
    #[cfg(test)]
    pub fn of(values: &[u64]) -> Self {
        let h = Histogram::default();
        for &v in values {
            h.record(v);
        }
        let mut s = HistogramSnapshot::default();
        h.add_to(&mut s);
        s
    }

    /// Mean value, 0 when empty.
    #[cfg(test)]
    pub fn mean(&self) -> u64 {
        self.sum_ns.checked_div(self.count()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_and_without_gaps() {
        assert_eq!(BUCKETS, 106);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1023), 0);
        assert_eq!(bucket_of(1024), 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of(1 << 36), BUCKETS - 1);
        assert_eq!(bucket_of((1 << 36) - 1), BUCKETS - 2);
        // Each bucket ends one below where the next begins.
        for b in 0..BUCKETS - 1 {
            let top = upper_bound(b);
            assert_eq!(bucket_of(top), b, "top of bucket {b}");
            assert_eq!(bucket_of(top + 1), b + 1, "past bucket {b}");
        }
    }

    #[test]
    fn a_bucket_is_at_most_a_quarter_of_its_lower_bound_wide() {
        for b in 1..BUCKETS - 1 {
            let (low, high) = (upper_bound(b - 1) + 1, upper_bound(b));
            assert!((high - low + 1) * 4 <= low, "bucket {b}: {low}..={high}");
        }
    }

    #[test]
    fn quantiles_come_from_the_buckets_and_never_exceed_the_maximum() {
        let h = Histogram::default();
        let mut s = HistogramSnapshot::default();
        h.add_to(&mut s);
        assert_eq!((s.count(), s.quantile(0.5), s.mean()), (0, 0, 0));

        // 98 fast values, one slow, one slowest.
        for _ in 0..98 {
            h.record(10_000);
        }
        h.record(1_000_000);
        h.record(5_000_000);
        let mut s = HistogramSnapshot::default();
        h.add_to(&mut s);
        assert_eq!(s.count(), 100);
        assert_eq!(s.max_ns, 5_000_000);
        assert_eq!(s.sum_ns, 98 * 10_000 + 6_000_000);
        let p50 = s.quantile(0.5);
        assert!((10_000..=12_500).contains(&p50), "p50 {p50}");
        assert_eq!(s.quantile(0.98), p50, "the 98th value is still a fast one");
        let p99 = s.quantile(0.99);
        assert!((1_000_000..=1_250_000).contains(&p99), "p99 {p99}");
        assert_eq!(s.quantile(1.0), 5_000_000, "clamped to the maximum");
        assert_eq!(s.mean(), (98 * 10_000 + 6_000_000) / 100);
    }

    #[test]
    fn snapshots_of_several_histograms_add_up() {
        let (a, b) = (Histogram::default(), Histogram::default());
        a.record(2_000);
        b.record(2_000);
        b.record(70_000_000_000);
        let mut s = HistogramSnapshot::default();
        a.add_to(&mut s);
        b.add_to(&mut s);
        assert_eq!(s.count(), 3);
        assert_eq!(s.buckets[bucket_of(2_000)], 2);
        assert_eq!(s.buckets[BUCKETS - 1], 1);
        assert_eq!(s.max_ns, 70_000_000_000);
        assert_eq!(s.quantile(0.5), upper_bound(bucket_of(2_000)));
    }
}
