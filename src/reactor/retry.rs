//! When a backing call that failed is made again: EINTR and EAGAIN mean nothing to the program
//! whose request it is (the daemon's threads take no signals, and backing descriptors are never
//! non-blocking), so the call is made again, but not forever: a backing that keeps answering
//! them (another FUSE filesystem may) would hold the request, and a thread, for good.

use std::io;

/// EINTR or EAGAIN answers in a row a call is made again for; the next one is answered.
pub const RETRIES_IN_A_ROW: u32 = 64;

/// The retries of one request's calls.
#[derive(Debug, Default)]
pub struct Retries {
    in_a_row: u32,
}

impl Retries {
    /// Whether the call that just failed with `e` is to be made again.
    pub fn again(&mut self, e: &io::Error) -> bool {
        let retryable = matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN));
        if retryable && self.in_a_row < RETRIES_IN_A_ROW {
            self.in_a_row += 1;
            return true;
        }
        false
    }

    /// A call succeeded: the count in a row starts again.
    pub fn succeeded(&mut self) {
        self.in_a_row = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interruptions_are_retried_until_too_many_in_a_row() {
        let (eintr, eagain) = (
            io::Error::from_raw_os_error(libc::EINTR),
            io::Error::from_raw_os_error(libc::EAGAIN),
        );
        let mut r = Retries::default();
        assert!(!r.again(&io::Error::from_raw_os_error(libc::EIO)));
        for i in 0..RETRIES_IN_A_ROW {
            assert!(r.again(if i % 2 == 0 { &eintr } else { &eagain }));
        }
        assert!(!r.again(&eagain), "one too many: answered");
        r.succeeded();
        assert!(r.again(&eintr));
    }
}
