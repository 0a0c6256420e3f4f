//! The decision, per operation, whether to inject a fault, and the count of faults injected.
//!
//! The n-th operation of a kind gets a fault when a hash of (seed, kind, n) falls under the kind's
//! rates, so a run is determined by its seed and the order of the operations of each kind.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Decision;
use super::kind::FaultKind;
use super::plan::{Fault, Plan};

const OPS: usize = FaultKind::ALL.len();
const FAULTS: usize = Fault::ALL.len();

/// A plan ready to decide, with its counters.
pub struct Injector {
    seed: u64,
    /// Per kind, its faults with the cumulative rate up to each.
    thresholds: [Vec<(Fault, f64)>; OPS],
    calls: [AtomicU64; OPS],
    injected: [[AtomicU64; FAULTS]; OPS],
}

thread_local! {
    /// Set on a reactor thread once it drains at shutdown.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Reactors that began to drain, in this process.
static DRAINS: AtomicU64 = AtomicU64::new(0);

/// The calling (reactor) thread drains from now on: its operations get the `drain` faults.
pub fn set_draining() {
    DRAINING.with(|d| d.set(true));
    DRAINS.fetch_add(1, Ordering::Release);
}

/// How many reactors of this process began to drain.
pub fn drains_started() -> u64 {
    DRAINS.load(Ordering::Acquire)
}

/// splitmix64's finaliser: a good 64-bit mix of `z`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Injector {
    pub fn new(plan: &Plan) -> Injector {
        let mut thresholds: [Vec<(Fault, f64)>; OPS] = Default::default();
        for rule in &plan.rules {
            let list = &mut thresholds[rule.op.index()];
            let before = list.last().map_or(0.0, |&(_, cum)| cum);
            list.push((rule.fault, before + rule.rate));
        }
        Injector {
            seed: plan.seed,
            thresholds,
            calls: Default::default(),
            injected: Default::default(),
        }
    }

    /// Decides for one operation of kind `op` whose data window is `len` bytes (0: no data); a
    /// short one keeps a multiple of `unit()` bytes (asked only then: O_DIRECT needs whole blocks).
    /// On a draining reactor thread the `drain` faults apply instead, if the plan has any.
    pub fn decide(&self, op: FaultKind, len: usize, unit: impl FnOnce() -> usize) -> Decision {
        let op =
            if DRAINING.with(Cell::get) && !self.thresholds[FaultKind::Drain.index()].is_empty() {
                FaultKind::Drain
            } else {
                op
            };
        let rules = &self.thresholds[op.index()];
        if rules.is_empty() {
            return Decision::Pass;
        }
        let n = self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
        let h = mix(self.seed ^ mix(((op.index() as u64) << 56) ^ n));
        let x = (h >> 11) as f64 / (1u64 << 53) as f64;
        let Some(&(fault, _)) = rules.iter().find(|&&(_, cum)| x < cum) else {
            return Decision::Pass;
        };
        let decision = match fault.errno() {
            Some(errno) => Decision::Fail(errno),
            None => {
                let unit = unit().max(1);
                let units = len / unit;
                if units < 2 {
                    return Decision::Pass;
                }
                Decision::Short((1 + (mix(h) % (units as u64 - 1)) as usize) * unit)
            }
        };
        self.injected[op.index()][fault.index()].fetch_add(1, Ordering::Relaxed);
        decision
    }

    /// The faults injected so far, for every fault the plan names.
    pub fn injected(&self) -> Injected {
        let mut counts = Vec::new();
        for op in FaultKind::ALL {
            for &(fault, _) in &self.thresholds[op.index()] {
                let n = self.injected[op.index()][fault.index()].load(Ordering::Relaxed);
                counts.push((format!("{}_{}", op.name(), fault.name()), n));
            }
        }
        Injected(counts)
    }
}

/// Faults injected per kind and fault, named `<kind>_<fault>` (`read_eio`, `write_short`, ...).
/// Shown as `Injected { read_eio: 3, write_short: 10, faults_injected: 13 }`.
#[derive(Clone, PartialEq, Eq)]
pub struct Injected(pub Vec<(String, u64)>);

impl Injected {
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }
}

impl fmt::Debug for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Injected {{")?;
        for (name, n) in &self.0 {
            write!(f, " {name}: {n},")?;
        }
        write!(f, " faults_injected: {} }}", self.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(spec: &str, op: FaultKind, n: usize, len: usize) -> Vec<Decision> {
        let inj = Injector::new(&Plan::parse(spec).unwrap());
        (0..n).map(|_| inj.decide(op, len, || 1)).collect()
    }

    #[test]
    fn the_seed_decides_and_rates_hold_roughly() {
        let a = run(
            "seed=7,read=eio:0.1+short:0.2",
            FaultKind::Read,
            10_000,
            4096,
        );
        assert_eq!(
            a,
            run(
                "seed=7,read=eio:0.1+short:0.2",
                FaultKind::Read,
                10_000,
                4096
            )
        );
        assert_ne!(
            a,
            run(
                "seed=8,read=eio:0.1+short:0.2",
                FaultKind::Read,
                10_000,
                4096
            )
        );
        let eio = a
            .iter()
            .filter(|d| **d == Decision::Fail(libc::EIO))
            .count();
        let short: Vec<usize> = a
            .iter()
            .filter_map(|d| match d {
                Decision::Short(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert!((800..1200).contains(&eio), "{eio} EIO of 10000 at 10%");
        assert!(
            (1700..2300).contains(&short.len()),
            "{} short at 20%",
            short.len()
        );
        assert!(short.iter().all(|&n| (1..4096).contains(&n)));
        // Other kinds are untouched.
        assert!(
            run("read=eio:1", FaultKind::Write, 100, 10)
                .iter()
                .all(|d| *d == Decision::Pass)
        );
    }

    #[test]
    fn counts_what_it_injects_and_cannot_shorten_a_byte() {
        let inj = Injector::new(&Plan::parse("write=short:1,fsync=eio:1").unwrap());
        assert_eq!(inj.decide(FaultKind::Write, 1, || 1), Decision::Pass);
        assert_eq!(inj.decide(FaultKind::Write, 0, || 1), Decision::Pass);
        assert!(matches!(
            inj.decide(FaultKind::Write, 2, || 1),
            Decision::Short(1)
        ));
        assert_eq!(
            inj.decide(FaultKind::Fsync, 0, || 1),
            Decision::Fail(libc::EIO)
        );
        // Whole units only: 3 units of 4096 are cut to 1 or 2 units.
        for _ in 0..20 {
            match inj.decide(FaultKind::Write, 3 * 4096 + 7, || 4096) {
                Decision::Short(n) => assert!(n == 4096 || n == 8192, "{n}"),
                d => panic!("{d:?}"),
            }
        }
        assert_eq!(inj.decide(FaultKind::Write, 8191, || 4096), Decision::Pass);
        let got = inj.injected();
        assert_eq!(
            format!("{got:?}"),
            "Injected { write_short: 21, fsync_eio: 1, faults_injected: 22 }"
        );
    }

    #[test]
    fn a_draining_thread_gets_the_drain_faults() {
        let inj = Injector::new(&Plan::parse("read=short:1,drain=eio:1").unwrap());
        assert!(matches!(
            inj.decide(FaultKind::Read, 100, || 1),
            Decision::Short(_)
        ));
        std::thread::scope(|s| {
            s.spawn(|| {
                set_draining();
                assert_eq!(
                    inj.decide(FaultKind::Read, 100, || 1),
                    Decision::Fail(libc::EIO)
                );
                assert_eq!(
                    inj.decide(FaultKind::Fsync, 0, || 1),
                    Decision::Fail(libc::EIO)
                );
            });
        });
        // Only that thread drained.
        assert!(matches!(
            inj.decide(FaultKind::Read, 100, || 1),
            Decision::Short(_)
        ));
        assert!(drains_started() >= 1);
        assert_eq!(inj.injected().total(), 4);
    }
}
