//! arsyncfs: a FUSE passthrough filesystem whose data path runs on io_uring.
//!
//! - [`cli`]: the `arsyncfs` command (its public part: `main`, and what the man page is made of).
//! - `fs`: the FUSE layer, a passthrough `fuser::Filesystem` over the backing directory.
//! - [`reactor`]: the I/O engine, a compio runtime on io_uring with a bounded buffer pool. Knows
//!   nothing about FUSE; public for its tests and examples/reactor_bench.rs.
//! - `control`: `arsyncfs stats`: the daemon's stats socket and its reports.
//! - `faults`: fault injection for tests (cargo feature `fault-injection`; no-ops without it).
//! - `sys`: the only module with `unsafe`: io_uring operations compio lacks, and system calls the
//!   safe crates do not offer.
//!
//! Only what the binary, the tests and the examples use is public, so that the compiler reports
//! code nothing uses.
#![deny(unsafe_code)]

pub mod cli;
mod control;
// Public in fault-injection builds, for tests/fault_injection.rs.
#[cfg(feature = "fault-injection")]
pub mod faults;
#[cfg(not(feature = "fault-injection"))]
mod faults;
mod fs;
pub mod reactor;
mod sys;
