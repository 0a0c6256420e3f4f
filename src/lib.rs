//! arsyncfs: a FUSE passthrough filesystem whose data path runs on io_uring.
//!
//! - [`reactor`]: the I/O engine, a compio runtime on io_uring with a bounded buffer pool. Knows
//!   nothing about FUSE.
//! - [`control`]: `arsyncfs stats`: the daemon's stats socket and its reports.
//! - [`faults`]: fault injection for tests (cargo feature `fault-injection`; no-ops without it).
//! - [`sys`]: the only module with `unsafe`: io_uring operations compio lacks.
#![deny(unsafe_code)]

pub mod cli;
pub mod control;
pub mod faults;
pub mod fs;
pub mod reactor;
pub mod sys;
