//! Replies that count their answer. A data request's reply travels to whichever thread answers it
//! (a reactor, the invalidation thread, or the session thread on an early error); wrapped with the
//! [`OpTimer`] of its request, it counts the answer and its errno there, just before sending it.

use std::ops::{Deref, DerefMut};

use fuser::Errno;

use super::stats::{FsStats, OpTimer};

/// A fuser reply object and the request it answers, as counted.
pub struct Timed<R> {
    reply: R,
    timer: OpTimer,
    stats: &'static FsStats,
}

/// fuser's reply objects that can answer an error.
pub trait ErrorReply {
    fn error(self, e: Errno);
}

impl<R> Timed<R> {
    pub fn new(reply: R, timer: OpTimer, stats: &'static FsStats) -> Self {
        Timed {
            reply,
            timer,
            stats,
        }
    }

    /// Counts the answer; returns the reply object to send it with.
    fn answer(self, errno: Option<Errno>) -> R {
        self.stats.finish(self.timer, errno.map(Errno::code));
        self.reply
    }

    pub fn error(self, e: Errno)
    where
        R: ErrorReply,
    {
        self.answer(Some(e)).error(e)
    }
}

/// Lets the directory replies be filled in place (`add`); answering goes through `Timed`.
impl<R> Deref for Timed<R> {
    type Target = R;
    fn deref(&self) -> &R {
        &self.reply
    }
}

impl<R> DerefMut for Timed<R> {
    fn deref_mut(&mut self) -> &mut R {
        &mut self.reply
    }
}

macro_rules! error_reply {
    ($($t:ty),*) => {
        $(impl ErrorReply for $t {
            fn error(self, e: Errno) {
                <$t>::error(self, e)
            }
        })*
    };
}

error_reply!(
    fuser::ReplyData,
    fuser::ReplyWrite,
    fuser::ReplyEmpty,
    fuser::ReplyDirectory,
    fuser::ReplyDirectoryPlus
);

impl Timed<fuser::ReplyData> {
    pub fn data(self, data: &[u8]) {
        self.answer(None).data(data)
    }
}

impl Timed<fuser::ReplyWrite> {
    pub fn written(self, n: u32) {
        self.answer(None).written(n)
    }
}

impl Timed<fuser::ReplyEmpty> {
    pub fn ok(self) {
        self.answer(None).ok()
    }
}

impl Timed<fuser::ReplyDirectory> {
    pub fn ok(self) {
        self.answer(None).ok()
    }
}

impl Timed<fuser::ReplyDirectoryPlus> {
    pub fn ok(self) {
        self.answer(None).ok()
    }
}
