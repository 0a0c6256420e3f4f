//! Channel-backed completions for driving the reactor in tests.
#![allow(dead_code)]

use std::io;

use arsyncfs::reactor::{Completions, DoneCompletion, ReadCompletion, WriteCompletion};
use crossbeam_channel::Sender;

/// What a request was answered with; `tag` identifies the request.
#[derive(Debug)]
pub enum Answer {
    Read(u64, io::Result<Vec<u8>>),
    Write(u64, io::Result<usize>),
    Done(u64, io::Result<()>),
}

impl Answer {
    pub fn tag(&self) -> u64 {
        match self {
            Answer::Read(t, _) | Answer::Write(t, _) | Answer::Done(t, _) => *t,
        }
    }
}

pub struct Tagged(pub u64, pub Sender<Answer>);

impl ReadCompletion for Tagged {
    fn complete(self, result: io::Result<&[u8]>) {
        let _ = self.1.send(Answer::Read(self.0, result.map(|b| b.to_vec())));
    }
}
impl WriteCompletion for Tagged {
    fn complete(self, result: io::Result<usize>) {
        let _ = self.1.send(Answer::Write(self.0, result));
    }
}
impl DoneCompletion for Tagged {
    fn complete(self, result: io::Result<()>) {
        let _ = self.1.send(Answer::Done(self.0, result));
    }
}

pub struct ChannelCompletions;
impl Completions for ChannelCompletions {
    type Read = Tagged;
    type Write = Tagged;
    type Done = Tagged;
}
