//! fuser's reply objects as reactor completions: the reactor answers the kernel directly.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use super::invalidate::KernelCache;
use super::timed::Timed;
use crate::reactor::{Completions, DoneCompletion, ReadCompletion, WriteCompletion};

/// Maps an I/O error to the errno FUSE sends back (EIO when the error has none).
pub fn errno_of(e: &io::Error) -> fuser::Errno {
    fuser::Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A read's reply.
pub type ReadReply = Timed<fuser::ReplyData>;
/// The reply of an operation without data (fsync, fallocate, release).
pub type DoneReply = Timed<fuser::ReplyEmpty>;

impl ReadCompletion for ReadReply {
    fn complete(self, result: io::Result<&[u8]>) {
        match result {
            Ok(data) => self.data(data),
            Err(e) => self.error(errno_of(&e)),
        }
    }
}

/// The answer to a write the reactor makes.
pub struct WriteReply {
    reply: Timed<fuser::ReplyWrite>,
    direct: Option<DirectWrite>,
}

/// An O_DIRECT write: buffered reads of the file that raced with it may have cached the old bytes,
/// so its range is invalidated before it is answered (see `invalidate`).
struct DirectWrite {
    cache: Arc<KernelCache>,
    ino: u64,
    offset: u64,
    arrived: Instant,
}

impl WriteReply {
    /// A write through the kernel's page cache, or one that bypasses no cache of the kernel.
    pub fn plain(reply: Timed<fuser::ReplyWrite>) -> Self {
        WriteReply {
            reply,
            direct: None,
        }
    }

    /// An O_DIRECT write of node `ino` at `offset`, arriving now.
    pub fn direct(
        reply: Timed<fuser::ReplyWrite>,
        cache: Arc<KernelCache>,
        ino: u64,
        offset: u64,
    ) -> Self {
        WriteReply {
            reply,
            direct: Some(DirectWrite {
                cache,
                ino,
                offset,
                arrived: Instant::now(),
            }),
        }
    }
}

impl WriteCompletion for WriteReply {
    fn complete(self, result: io::Result<usize>) {
        let n = match result {
            Ok(n) => n,
            Err(e) => return self.reply.error(errno_of(&e)),
        };
        match self.direct {
            Some(d) if n > 0 && d.cache.users.may_have_raced(d.ino, d.arrived) => {
                let reply = self.reply;
                d.cache.pages_then(
                    d.ino,
                    d.offset,
                    n as u64,
                    Box::new(move || reply.written(n as u32)),
                );
            }
            _ => self.reply.written(n as u32),
        }
    }
}

impl DoneCompletion for DoneReply {
    fn complete(self, result: io::Result<()>) {
        match result {
            Ok(()) => self.ok(),
            Err(e) => self.error(errno_of(&e)),
        }
    }
}

/// The completion types of the FUSE layer.
pub struct FuseReplies;

impl Completions for FuseReplies {
    type Read = ReadReply;
    type Write = WriteReply;
    type Done = DoneReply;
}
