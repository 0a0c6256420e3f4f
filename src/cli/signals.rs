//! SIGINT, SIGTERM and SIGHUP, received on a channel instead of killing the process.
//!
//! [`block`] must run before any other thread exists, so every thread inherits the blocked mask and
//! the signals stay pending until the listener thread takes them with sigwait(2). Processes spawned
//! later start with an empty mask (std resets it), so the blocking does not leak into them.

use std::io;

use crossbeam_channel::Receiver;

use crate::sys::process::BlockedSignals;

/// The signals that stop arsyncfs.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Blocks the stop signals in the calling thread (call it first thing in `main`).
pub fn block() -> io::Result<BlockedSignals> {
    BlockedSignals::block(&STOP_SIGNALS)
}

/// Starts a thread that forwards each stop signal, by number, to the returned channel.
pub fn listen(blocked: BlockedSignals) -> io::Result<Receiver<i32>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("arsyncfs-signals".into())
        .spawn(move || {
            loop {
                match blocked.wait() {
                    Ok(sig) => {
                        if tx.send(sig).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::error!("waiting for signals failed: {e}");
                        return;
                    }
                }
            }
        })?;
    Ok(rx)
}

/// A signal's name, for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}
