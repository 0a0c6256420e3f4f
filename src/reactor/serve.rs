//! Serving one request on io_uring.
//!
//! Each function here owns its buffer for the whole operation, hands it to compio by value, gets it back
//! in the operation's result (on errors too), answers the request, and then returns the buffer so the
//! reactor can put it back in the pool: a buffer goes back only after its completion arrived.
//!
//! In fault-injection builds each operation asks `faults` first whether to run: a failed one is not
//! submitted (its buffer stays here), a short one runs on part of its window (see src/faults).

use std::future::Future;
use std::io;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use compio::BufResult;
use compio::driver::op::{CloseFile, Sync};
use compio::runtime::submit;

use super::pool::PoolBuf;
use super::request::{
    BackingFile, Completions, PendingDone, PendingRead, PendingWrite, Request, Shortfall,
};
use super::retry::Retries;
use crate::faults::{self, Decision, FaultKind};
use crate::sys::uring::{Fallocate, OwnedIo};

/// Serves `req`; returns the pool buffer it used, if any, once every operation on it has completed.
pub(crate) async fn serve<C: Completions>(
    req: Request<C>,
    buf: Option<PoolBuf>,
) -> Option<PoolBuf> {
    match req {
        Request::Read {
            file,
            offset,
            len,
            done,
        } => {
            let buf = buf.expect("the reactor hands every read a buffer");
            Some(read::<C>(file, offset, len, buf, done).await)
        }
        Request::Write {
            file,
            offset,
            buf,
            shortfall,
            done,
        } => Some(write::<C>(file, offset, buf, shortfall, done).await),
        Request::Sync {
            file,
            datasync,
            done,
        } => {
            let res = until_done(FaultKind::Fsync, || {
                submit(Sync::new(file.clone(), datasync))
            })
            .await;
            done.complete(res.map(drop));
            None
        }
        Request::Fallocate {
            file,
            mode,
            offset,
            len,
            done,
        } => {
            let res = until_done(FaultKind::Fallocate, || {
                submit(Fallocate::new(file.clone(), mode, offset, len))
            })
            .await;
            done.complete(res.map(drop));
            None
        }
        Request::Close { file, done } => {
            close::<C>(file, done).await;
            None
        }
    }
}

/// Runs an operation without data (fsync, fallocate) of kind `kind` again while it is interrupted
/// (EINTR, EAGAIN: they mean nothing to the program, whose request it is, and are retried like a
/// read's or a write's, see [`Retries`]). In fault-injection builds a fault may replace an attempt
/// (not submitted).
async fn until_done<O, F>(kind: FaultKind, mut run: impl FnMut() -> F) -> io::Result<usize>
where
    F: Future<Output = BufResult<usize, O>>,
{
    let mut retries = Retries::default();
    loop {
        let res = match faults::decide(kind) {
            Decision::Fail(e) => Err(io::Error::from_raw_os_error(e)),
            _ => run().await.0,
        };
        match res {
            Err(e) if retries.again(&e) => continue,
            res => return res,
        }
    }
}

/// Which way an [`issue`]d operation moves data.
#[derive(Clone, Copy)]
enum Way {
    Read,
    Write,
}

/// Issues one read into, or write from, `vec[window]` at `offset`, and hands back its result with
/// the file and the vector. In fault-injection builds the operation may instead not be submitted
/// at all (an injected error) or run on the first part of the window (a short one).
async fn issue(
    way: Way,
    file: BackingFile,
    offset: u64,
    vec: Vec<u8>,
    window: Range<usize>,
) -> (io::Result<usize>, BackingFile, Vec<u8>) {
    let kind = match way {
        Way::Read => FaultKind::Read,
        Way::Write => FaultKind::Write,
    };
    let window = match faults::decide_io(kind, window.len(), || io_unit(&file)) {
        Decision::Pass => window,
        Decision::Short(n) => window.start..window.start + n,
        Decision::Fail(e) => return (Err(io::Error::from_raw_os_error(e)), file, vec),
    };
    let op = match way {
        Way::Read => OwnedIo::read(file, offset, vec, window),
        Way::Write => OwnedIo::write(file, offset, vec, window),
    };
    let BufResult(res, op) = submit(op).await;
    let (file, vec) = op.into_parts();
    (res, file, vec)
}

/// The granularity of a shortened read or write of `file`: O_DIRECT moves whole blocks only.
fn io_unit(file: &BackingFile) -> usize {
    match rustix::fs::fcntl_getfl(&**file) {
        Ok(flags) if flags.contains(rustix::fs::OFlags::DIRECT) => super::pool::ALIGN,
        _ => 1,
    }
}

/// Reads up to `len` bytes. A short read is continued until `len` bytes or end of file, because FUSE
/// takes a short reply for end of file. For the same reason an error after some bytes arrived is
/// answered as the error, not as those bytes: the kernel would take them for the end of the file
/// (and shrink the size it caches), and the program would read a truncated file. On an O_DIRECT
/// descriptor a short read that ends off a block boundary ended at the end of the file: it is not
/// continued, since a read there would start unaligned (filesystems on fs/direct-io.c answer it
/// EINVAL, not 0).
async fn read<C: Completions>(
    file: BackingFile,
    offset: u64,
    len: usize,
    buf: PoolBuf,
    done: PendingRead<C>,
) -> PoolBuf {
    if len > buf.capacity() {
        done.complete(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        return buf;
    }
    let (mut vec, shape) = buf.lend();
    let mut file = file;
    let mut filled = 0;
    let mut error = None;
    let mut retries = Retries::default();
    while filled < len {
        let window = shape.window(filled, len);
        let res;
        (res, file, vec) = issue(Way::Read, file, offset + filled as u64, vec, window).await;
        match res {
            Ok(0) => break,
            Ok(n) => {
                retries.succeeded();
                filled += n.min(len - filled);
                let end = offset + filled as u64;
                if filled < len && direct_read_ended(end, || io_unit(&file)) {
                    break;
                }
            }
            Err(e) if retries.again(&e) => continue,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    // Only the `filled` bytes the kernel reported are valid; nothing beyond them is ever answered.
    let buf = PoolBuf::restore(vec, shape, filled);
    match error {
        Some(e) => done.complete(Err(e)),
        None => done.complete(Ok(buf.data())),
    }
    buf
}

/// Whether a read that came back short at file offset `end` reached the end of the file, as far as
/// `unit()` (the descriptor's I/O granularity, asked only for an `end` off a block boundary) tells:
/// an O_DIRECT read moves whole blocks except at the end of the file.
fn direct_read_ended(end: u64, unit: impl FnOnce() -> usize) -> bool {
    !end.is_multiple_of(super::pool::ALIGN as u64) && unit() > 1
}

/// Writes all of `buf`'s data, continuing short writes; an error that stops it is answered, or with
/// `Shortfall::Short` after some data was written, the count written.
async fn write<C: Completions>(
    file: BackingFile,
    offset: u64,
    buf: PoolBuf,
    shortfall: Shortfall,
    done: PendingWrite<C>,
) -> PoolBuf {
    let total = buf.data().len();
    let (mut vec, shape) = buf.lend();
    let mut file = file;
    let mut written = 0;
    let mut retries = Retries::default();
    let result = loop {
        if written == total {
            break Ok(total);
        }
        let window = shape.window(written, total);
        let res;
        (res, file, vec) = issue(Way::Write, file, offset + written as u64, vec, window).await;
        match res {
            Ok(0) if written > 0 && shortfall == Shortfall::Short => break Ok(written),
            Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                retries.succeeded();
                written += n.min(total - written);
            }
            Err(e) if retries.again(&e) => continue,
            Err(_) if written > 0 && shortfall == Shortfall::Short => break Ok(written),
            Err(e) => break Err(e),
        }
    };
    done.complete(result);
    PoolBuf::restore(vec, shape, 0)
}

/// Lets go of the backing file; if this was the last holder, closes the descriptor through io_uring so
/// that a slow close (network filesystems flush on close) does not stall the reactor thread.
async fn close<C: Completions>(file: BackingFile, done: PendingDone<C>) {
    match Arc::try_unwrap(file) {
        Ok(file) => {
            let BufResult(res, _) = submit(CloseFile::new(OwnedFd::from(file))).await;
            // A close always runs (the descriptor is gone whatever it answers); a fault replaces
            // its answer.
            let res = match faults::decide(FaultKind::Close) {
                Decision::Fail(e) => Err(io::Error::from_raw_os_error(e)),
                _ => res.map(drop),
            };
            done.complete(res);
        }
        Err(_shared) => done.complete(Ok(())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::pool::ALIGN;

    #[test]
    fn a_direct_read_short_off_a_block_boundary_ended_at_the_end_of_the_file() {
        let direct = || ALIGN;
        assert!(direct_read_ended(5000, direct));
        assert!(direct_read_ended(ALIGN as u64 + 1, direct));
        // Whole blocks: an injected short read, or the file ends on a boundary (the next read says).
        assert!(!direct_read_ended(2 * ALIGN as u64, direct));
        // A buffered descriptor reads from anywhere; the granularity is not even asked for then.
        assert!(!direct_read_ended(5000, || 1));
        assert!(!direct_read_ended(ALIGN as u64, || panic!("asked")));
    }
}
