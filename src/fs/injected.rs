//! Fault injection at the backing calls of the session threads (metadata operations and FLUSH;
//! an inline buffered write decides in files.rs, where it can be cut short): in fault-injection
//! builds the fault plan may fail the call about to run instead (see src/faults); in other builds
//! every hook here says "run it" and vanishes.

use fuser::Errno;

use crate::faults::{self, Decision, FaultKind};

/// Whether the backing call of an operation of kind `op` runs: `Err` with the injected errno if
/// it must not. Nothing here is retried: the plan gives these kinds no EINTR or EAGAIN, which a
/// metadata call passes on to the program (see src/faults/plan.rs).
pub(super) fn fault(op: FaultKind) -> Result<(), Errno> {
    match faults::decide(op) {
        Decision::Fail(e) => Err(Errno::from_i32(e)),
        Decision::Pass | Decision::Short(_) => Ok(()),
    }
}
