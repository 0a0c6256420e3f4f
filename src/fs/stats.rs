//! Counters of the requests the kernel sends, to show what it actually gives us (request sizes
//! above all) without a tracer.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct FsStats {
    reads: AtomicU64,
    writes: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    largest_read: AtomicU64,
    largest_write: AtomicU64,
    inline_writes: AtomicU64,
    passthrough_opens: AtomicU64,
    passthrough_fallbacks: AtomicU64,
    passthrough_reads: AtomicU64,
    passthrough_writes: AtomicU64,
    flushes: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStatsSnapshot {
    pub reads: u64,
    pub writes: u64,
    /// Bytes asked for by reads (what the kernel requested, not what end of file allowed).
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub largest_read: u64,
    pub largest_write: u64,
    /// Writes the session threads wrote themselves (buffered ones; the rest went to the reactor).
    pub inline_writes: u64,
    /// Opens the kernel serves itself (`--passthrough`).
    pub passthrough_opens: u64,
    /// Opens under `--passthrough` served by the daemon instead (see fs/passthrough.rs).
    pub passthrough_fallbacks: u64,
    /// Reads and writes that still reached the daemon through a passthrough handle.
    pub passthrough_reads: u64,
    pub passthrough_writes: u64,
    /// FLUSH requests (one per close(2) of a file opened without FOPEN_NOFLUSH).
    pub flushes: u64,
}

impl FsStats {
    pub fn read(&self, size: u64) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(size, Ordering::Relaxed);
        self.largest_read.fetch_max(size, Ordering::Relaxed);
    }

    pub fn write(&self, size: u64) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(size, Ordering::Relaxed);
        self.largest_write.fetch_max(size, Ordering::Relaxed);
    }

    pub fn inline_write(&self) {
        self.inline_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// An open under `--passthrough`: served by the kernel, or a fallback to the daemon.
    pub fn passthrough_open(&self, by_kernel: bool) {
        let counter = if by_kernel {
            &self.passthrough_opens
        } else {
            &self.passthrough_fallbacks
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A read (`write` false) or write that arrived on a handle the kernel serves itself.
    pub fn passthrough_io(&self, write: bool) {
        let counter = if write {
            &self.passthrough_writes
        } else {
            &self.passthrough_reads
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn flush(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> FsStatsSnapshot {
        FsStatsSnapshot {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            largest_read: self.largest_read.load(Ordering::Relaxed),
            largest_write: self.largest_write.load(Ordering::Relaxed),
            inline_writes: self.inline_writes.load(Ordering::Relaxed),
            passthrough_opens: self.passthrough_opens.load(Ordering::Relaxed),
            passthrough_fallbacks: self.passthrough_fallbacks.load(Ordering::Relaxed),
            passthrough_reads: self.passthrough_reads.load(Ordering::Relaxed),
            passthrough_writes: self.passthrough_writes.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_maxima() {
        let s = FsStats::default();
        s.read(4096);
        s.read(131072);
        s.write(1 << 20);
        s.write(4096);
        s.inline_write();
        s.passthrough_open(true);
        s.passthrough_open(true);
        s.passthrough_open(false);
        s.passthrough_io(false);
        s.flush();
        let snap = s.snapshot();
        assert_eq!(
            (snap.reads, snap.bytes_read, snap.largest_read),
            (2, 135168, 131072)
        );
        assert_eq!(
            (snap.writes, snap.largest_write, snap.inline_writes),
            (2, 1 << 20, 1)
        );
        assert_eq!(
            (
                snap.passthrough_opens,
                snap.passthrough_fallbacks,
                snap.passthrough_reads,
                snap.passthrough_writes
            ),
            (2, 1, 1, 0)
        );
        assert_eq!(snap.flushes, 1);
    }
}
