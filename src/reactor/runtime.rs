//! The compio runtime on io_uring that the reactor thread runs.
//!
//! compio is built with io_uring alone, without a fallback: where io_uring is disabled (the
//! `kernel.io_uring_disabled` sysctl, a container's seccomp profile) or lacks an operation the
//! reactor submits, building fails, and the error says why and what to do.

use std::io;

use compio::runtime::Runtime;

/// The io_uring operations the reactor submits; `start` fails if the kernel lacks one.
const NEEDED_OPS: [(u8, &str); 5] = [
    (io_uring::opcode::Read::CODE, "READ"),
    (io_uring::opcode::Write::CODE, "WRITE"),
    (io_uring::opcode::Fsync::CODE, "FSYNC"),
    (io_uring::opcode::Fallocate::CODE, "FALLOCATE"),
    (io_uring::opcode::Close::CODE, "CLOSE"),
];

/// Builds the runtime with a ring of `ring_entries`, on the thread that will run it (a `Runtime` is
/// not `Send`), after checking that io_uring is usable and has every operation the reactor needs.
pub(super) fn build_runtime(ring_entries: u32) -> io::Result<Runtime> {
    check_io_uring(ring_entries)?;
    let build = |cooperative: bool| {
        let mut proactor = compio::driver::ProactorBuilder::new();
        proactor.capacity(ring_entries);
        // Completions that arrive while the reactor runs (disk interrupts, io-wq workers) are
        // queued for its next io_uring_enter instead of interrupting it with an IPI.
        proactor.coop_taskrun(cooperative).taskrun_flag(cooperative);
        compio::runtime::RuntimeBuilder::new()
            .with_proactor(proactor)
            .build()
    };
    build(true)
        .or_else(|e| match e.raw_os_error() {
            // Kernels before 5.19 refuse the cooperative flags.
            Some(libc::EINVAL) => build(false),
            _ => Err(e),
        })
        .map_err(|e| io_uring_error(e, ring_entries))
}

fn check_io_uring(ring_entries: u32) -> io::Result<()> {
    let ring = io_uring::IoUring::new(2).map_err(|e| io_uring_error(e, ring_entries))?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| io_uring_error(e, ring_entries))?;
    for (code, name) in NEEDED_OPS {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "this kernel's io_uring lacks IORING_OP_{name}, which arsyncfs needs \
                     (Linux 5.19 or later has everything)"
                ),
            ));
        }
    }
    Ok(())
}

/// The error `start` returns when io_uring cannot be used, saying why and what to do.
fn io_uring_error(e: io::Error, ring_entries: u32) -> io::Error {
    let msg = match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring is unavailable ({e}): arsyncfs needs it for all file I/O. Allow it with \
             `sysctl kernel.io_uring_disabled=0` (or add this user's group to \
             kernel.io_uring_group), and in a container use a seccomp profile that permits \
             io_uring_setup, io_uring_enter and io_uring_register (Docker's default blocks them)"
        ),
        Some(libc::ENOMEM) => format!(
            "cannot set up io_uring ({e}): not enough locked memory for a ring of {ring_entries} \
             entries; raise `ulimit -l` or use a smaller ring"
        ),
        _ => format!("cannot set up io_uring with a ring of {ring_entries} entries ({e})"),
    };
    io::Error::new(e.kind(), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_uring_errors_say_what_is_wrong_and_what_to_do() {
        for errno in [libc::ENOSYS, libc::EPERM, libc::EACCES] {
            let e = io_uring_error(io::Error::from_raw_os_error(errno), 256);
            let msg = e.to_string();
            assert!(msg.starts_with("io_uring is unavailable"), "{msg}");
            assert!(msg.contains("kernel.io_uring_disabled=0"), "{msg}");
            assert!(msg.contains("seccomp"), "{msg}");
            assert_eq!(e.kind(), io::Error::from_raw_os_error(errno).kind());
        }
        let msg = io_uring_error(io::Error::from_raw_os_error(libc::ENOMEM), 4096).to_string();
        assert!(msg.contains("ulimit -l") && msg.contains("4096"), "{msg}");
        let msg = io_uring_error(io::Error::from_raw_os_error(libc::EINVAL), 7).to_string();
        assert!(msg.contains("io_uring") && msg.contains('7'), "{msg}");
    }

    #[test]
    fn this_kernel_has_every_operation_the_reactor_needs() {
        check_io_uring(8).unwrap();
    }
}
