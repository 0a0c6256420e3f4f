//! The reactor's sizes and timings, each with its default: the one place they are defined.

use std::time::Duration;

/// Sizes of the reactor's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReactorConfig {
    /// Most pool buffers (and so most reads and writes in flight at once). Default 128.
    pub buffers: usize,
    /// Bytes per pool buffer: the largest read or write one request may carry. Default 1 MiB, the
    /// kernel's largest FUSE request (max_pages 256).
    pub buffer_size: usize,
    /// Submission queue entries of the io_uring instance; also the most operations without a
    /// buffer (fsync, fallocate, close) in flight at once. Default 256.
    pub ring_entries: u32,
    /// How long the reactor keeps looking for work after it ran out, before it sleeps. Zero sleeps
    /// at once. An idle reactor spends at most this much CPU after its last request. Default 50 µs
    /// (a wake-up across CPUs costs about that on a virtual machine; see docs/reactor.md).
    pub spin: Duration,
    /// Reactor threads, each with its own runtime, ring and share of the buffers (`buffers / n`,
    /// rounded up), pinned one per CPU of the process's affinity; a request goes to the reactor of
    /// the CPU its sender runs on. 0 means one per CPU, and more than the CPUs means one per CPU.
    /// Default 1 (not pinned).
    pub reactors: usize,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            buffers: 128,
            buffer_size: 1 << 20,
            ring_entries: 256,
            spin: Duration::from_micros(50),
            reactors: 1,
        }
    }
}
