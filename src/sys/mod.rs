//! The one place where arsyncfs uses `unsafe`.
//!
//! Everything here is a thin, safe wrapper around an operation the safe crates do not offer. Each
//! `unsafe` block carries a SAFETY comment. The rest of the crate is compiled with
//! `#![deny(unsafe_code)]`.
#![allow(unsafe_code)]

pub mod handle;
pub mod mount;
pub mod process;
pub mod uring;
