//! The I/O engine: one thread running a compio runtime on io_uring.
//!
//! Any number of threads send requests through a [`ReactorHandle`]; the reactor thread serves them
//! on io_uring with buffers from its pool (`pool::BufferPool`) and answers each request's completion from its own
//! thread. It knows nothing about FUSE: completions are a trait the caller implements.
//!
//! - `handle`: what senders call, and the counters they can read.
//! - `thread`: the reactor thread's life: start, shutdown that drains, join.
//! - `runtime`: the compio runtime on io_uring, and the error that says what to do without it.
//! - `scheduler`: the reactor's one task, which turns requests into operations and decides when
//!   to sleep; `slots` holds its request futures, `serve` serves one request.
//! - `config`, `pool`, `request`, `doorbell`, `shared`: sizes, buffers, requests and their
//!   completions, the wake-up, and what senders share with the reactor thread.
//! - `retry`: which failed calls are made again, and how many times in a row.
//!
//! See docs/reactor.md for the design, the measurements and the profile.

mod config;
mod doorbell;
mod handle;
mod pool;
mod request;
mod retry;
mod runtime;
mod scheduler;
mod serve;
mod shared;
mod slots;
mod thread;

// The public surface: what the FUSE layer, the tests and examples/reactor_bench.rs use.
pub use config::ReactorConfig;
pub use handle::{ReactorHandle, ReactorStats};
pub(crate) use pool::ALIGN;
pub use pool::PoolStats;
pub use request::{BackingFile, Completions, DoneCompletion, ReadCompletion, WriteCompletion};
pub(crate) use retry::Retries;
pub use thread::Reactor;
