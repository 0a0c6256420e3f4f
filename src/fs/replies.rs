//! fuser's reply objects as reactor completions: the reactor answers the kernel directly.

use std::io;

use crate::reactor::{Completions, DoneCompletion, ReadCompletion, WriteCompletion};

/// Maps an I/O error to the errno FUSE sends back (EIO when the error has none).
pub fn errno_of(e: &io::Error) -> fuser::Errno {
    fuser::Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl ReadCompletion for fuser::ReplyData {
    fn complete(self, result: io::Result<&[u8]>) {
        match result {
            Ok(data) => self.data(data),
            Err(e) => self.error(errno_of(&e)),
        }
    }
}

impl WriteCompletion for fuser::ReplyWrite {
    fn complete(self, result: io::Result<usize>) {
        match result {
            Ok(n) => self.written(n as u32),
            Err(e) => self.error(errno_of(&e)),
        }
    }
}

impl DoneCompletion for fuser::ReplyEmpty {
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
    type Read = fuser::ReplyData;
    type Write = fuser::ReplyWrite;
    type Done = fuser::ReplyEmpty;
}
