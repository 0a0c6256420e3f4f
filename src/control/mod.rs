//! Looking into a running mount: `arsyncfs stats MOUNTPOINT` asks the mount's daemon over a unix
//! socket (one per mount, see `paths`) for a report of its counters.
//!
//! - `server`: the daemon's socket thread; `client`: finding the socket and asking it;
//!   `protocol`: the lines they exchange.
//! - `snapshot`: what a report shows (the mount, its counters, rates between two snapshots);
//!   `table`, `json`, `prometheus`: the report written for people, for scripts, for monitoring;
//!   `units`: durations, sizes and errno names as people read them.
//!
//! The counters themselves belong to the layers that keep them (`fs::FsObserver`,
//! `reactor::ReactorStats`); this module only reads and writes them out.

mod client;
mod json;
mod paths;
mod prometheus;
mod protocol;
mod server;
mod snapshot;
mod table;
mod units;

pub use client::{ANSWER_TIMEOUT, Located, StatsClient, locate};
pub use paths::{dirs_for, own_dir, socket_name};
pub use protocol::Format;
pub use server::{Source, StatsServer};
pub use snapshot::{MountInfo, Snapshot};
