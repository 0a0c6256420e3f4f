//! Fault injection, for tests: the cargo feature `fault-injection` (off by default, so release
//! builds have none of it: every hook below is then an inlined no-op that always says "run it").
//!
//! A fault plan (`--faults SPEC` or the environment variable `ARSYNCFS_FAULTS`, both only in such
//! builds; the spec's form is in `plan`) makes a seeded, deterministic fraction of the operations of
//! each kind fail with EIO, ENOSPC, EINTR or EAGAIN, or run short. Where and how:
//!
//! - **Reactor** (read, write, fsync, fallocate, close): decided where each io_uring operation is
//!   issued, so the buffer rules hold: a failed operation is not submitted at all (its buffer never
//!   leaves the reactor, and comes back with the answer), a short one really runs on the first part
//!   of its window. A close always runs; its fault replaces its answer. `drain` faults replace the
//!   others on a reactor that drains at shutdown.
//! - **Metadata** (lookup, open, create, mkdir, link, unlink, rename, setattr, xattr, readdir) and
//!   **flush**: decided at the backing system call of the operation, which then does not run; a
//!   buffered write on the session thread (`--buffered-writes inline`) is a `write`.
//! - **What programs see**: EINTR and EAGAIN on the data path are retried by the daemon (the
//!   daemon's threads take no signals, so neither means anything to the program); metadata calls
//!   and closes are not retried, so the plan gives them neither; EIO and ENOSPC reach the program's
//!   system call (write, fsync, close, ...). A short read is continued
//!   until the request is filled or the file ends; a short write is continued, and when an error
//!   stops it after some bytes the write answers the count written, as pwrite(2) does.
//! - **Counts**: the daemon logs the faults injected per kind when it exits (`-v`), after its
//!   reactors drained: `faults = Injected { read_eio: 3, write_short: 10, faults_injected: 13 }`.

#[cfg(feature = "fault-injection")]
mod injector;
mod kind;
#[cfg(feature = "fault-injection")]
mod plan;

#[cfg(feature = "fault-injection")]
pub use injector::{Injected, drains_started};
pub use kind::FaultKind;
#[cfg(feature = "fault-injection")]
pub use plan::{Plan, PlanError};

/// What to do with one operation (always `Pass` without the feature).
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run it as asked.
    Pass,
    /// Do not run it; answer this errno as if the backing had.
    Fail(i32),
    /// Run it on the first `n` bytes of its window only (0 < n < the window).
    Short(usize),
}

/// The environment variable a fault plan may come from.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub const ENV: &str = "ARSYNCFS_FAULTS";

#[cfg(feature = "fault-injection")]
static INJECTOR: std::sync::OnceLock<injector::Injector> = std::sync::OnceLock::new();

/// Makes `plan` the process's fault plan. Once per process: a second plan is refused.
#[cfg(feature = "fault-injection")]
pub fn install(plan: &Plan) -> Result<(), PlanError> {
    INJECTOR
        .set(injector::Injector::new(plan))
        .map_err(|_| PlanError("a fault plan is already installed".into()))
}

/// Whether an operation of kind `op` without data (fsync, a metadata call, ...) runs.
#[inline(always)]
pub fn decide(op: FaultKind) -> Decision {
    decide_io(op, 0, || 1)
}

/// Whether the read or write of kind `op` about to run on a `len`-byte window runs, fails or runs
/// short; a short one keeps a multiple of `unit()` bytes (asked only for a short one).
#[cfg(feature = "fault-injection")]
pub fn decide_io(op: FaultKind, len: usize, unit: impl FnOnce() -> usize) -> Decision {
    match INJECTOR.get() {
        Some(injector) => injector.decide(op, len, unit),
        None => Decision::Pass,
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn decide_io(_op: FaultKind, _len: usize, _unit: impl FnOnce() -> usize) -> Decision {
    Decision::Pass
}

/// The calling reactor thread drains at shutdown from now on.
#[cfg(feature = "fault-injection")]
pub fn set_draining() {
    injector::set_draining()
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn set_draining() {}

/// The faults injected so far, if a plan is installed.
#[cfg(feature = "fault-injection")]
pub fn injected() -> Option<Injected> {
    INJECTOR.get().map(injector::Injector::injected)
}
