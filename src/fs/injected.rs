//! Fault injection at the backing calls of the session threads (metadata operations, FLUSH and
//! inline buffered writes): in fault-injection builds the fault plan may fail the call about to
//! run instead (see src/faults); in other builds every hook here says "run it" and vanishes.

use fuser::Errno;

use crate::faults::{self, Decision, FaultKind};

/// Whether the backing call of an operation of kind `op` runs: `Err` with the injected errno if
/// it must not. An injected EINTR is retried here, as the daemon retries an interrupted call
/// (it means nothing to the program: the daemon's threads take no signals).
pub(super) fn fault(op: FaultKind) -> Result<(), Errno> {
    loop {
        match faults::decide(op) {
            Decision::Fail(libc::EINTR) => continue,
            Decision::Fail(e) => return Err(Errno::from_i32(e)),
            Decision::Pass | Decision::Short(_) => return Ok(()),
        }
    }
}
