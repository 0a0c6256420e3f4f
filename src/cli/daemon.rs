//! `--daemon`: go to the background once the mount is ready.
//!
//! Forking a process that already runs threads is unsafe, so the parent forks nothing itself: it
//! re-executes its own binary with the hidden `--daemon-child` flag and the same arguments, its
//! stdout a pipe. The child starts a new session (setsid), mounts in the foreground way, then writes
//! `ready` on that pipe and points its standard streams at /dev/null. The parent exits 0 when it reads
//! `ready`; if the child exits first, its one-line error has gone to the shared stderr already and
//! the parent exits with the child's status.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use super::error::{CliError, Failure};
use super::signals;
use crate::sys::process::{BlockedSignals, redirect_stdio_to_null};

/// What the child writes on its stdout once the mount is live.
const READY_LINE: &str = "ready";

/// The hidden flag that makes a process the daemon child.
pub const CHILD_FLAG: &str = "--daemon-child";

/// Runs the `--daemon` parent: starts the child with `args` (the command line without argv0) and
/// waits until the mount is ready or the child failed. Returns the exit code.
pub fn run_parent(blocked: BlockedSignals, args: &[OsString]) -> Result<i32, CliError> {
    let exe = std::env::current_exe().map_err(|e| {
        CliError::new(
            Failure::Other,
            format!("cannot find the arsyncfs binary to start the daemon: {e}"),
        )
    })?;
    let mut child = Command::new(&exe)
        .arg(CHILD_FLAG)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            CliError::new(
                Failure::Other,
                format!("cannot start the daemon ({}): {e}", exe.display()),
            )
        })?;
    let child_pid = child.id();
    // Ctrl-C while waiting: the child is in its own session and would not see it, so pass it on.
    let sigs = signals::listen(blocked).map_err(|e| {
        CliError::new(
            Failure::Other,
            format!("cannot start the signal thread: {e}"),
        )
    })?;
    std::thread::spawn(move || {
        if sigs.recv().is_ok()
            && let Some(pid) = rustix::process::Pid::from_raw(child_pid as i32)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        match line {
            Ok(l) if l.trim() == READY_LINE => return Ok(0),
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    // No readiness: the child failed (and said why on stderr) or was stopped.
    let status = child
        .wait()
        .map_err(|e| CliError::new(Failure::Other, format!("cannot wait for the daemon: {e}")))?;
    match status.code() {
        Some(0) => Err(CliError::new(
            Failure::Other,
            "the daemon stopped before the mount was ready (interrupted)",
        )),
        Some(code) => Ok(code),
        None => Err(CliError::new(
            Failure::Other,
            format!("the daemon died before the mount was ready ({status})"),
        )),
    }
}

/// Becomes a session leader, away from the parent's terminal. Call first thing in the child.
pub fn detach_session() {
    if let Err(e) = rustix::process::setsid() {
        tracing::warn!("setsid failed: {e}");
    }
}

/// Tells the waiting parent the mount is live, then lets go of the standard streams and the
/// current directory.
pub fn notify_ready() -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{READY_LINE}")?;
    out.flush()?;
    drop(out);
    redirect_stdio_to_null()?;
    // Do not keep whatever directory we were started from busy.
    rustix::process::chdir("/")?;
    Ok(())
}
