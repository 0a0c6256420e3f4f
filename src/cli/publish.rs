//! What the daemon tells about its mount while it runs: the stats socket (see the `control`
//! module), and the same report as a summary in the log at unmount (`-v`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::SessionACL;

use super::mountinfo::MountEntry;
use super::settings::Settings;
use crate::control::{Format, MountInfo, Snapshot, Source, StatsServer, own_dir, socket_name};
use crate::fs::{AtimeMode, BufferedWrites, FsObserver, FuseReplies};
use crate::reactor::ReactorHandle;

/// The stats socket of a mount, and what it reports on.
pub struct Publication {
    source: Arc<Source>,
    server: Option<StatsServer>,
}

impl Publication {
    /// Starts the stats socket of the mount `ours` (of `mountpoint` and `backing`). Without one
    /// (no runtime directory, the mount not found) the mount goes on, with a warning.
    pub fn start(
        settings: &Settings,
        (backing, mountpoint): (&Path, &Path),
        ours: Option<&MountEntry>,
        observer: FsObserver,
        reactor: ReactorHandle<FuseReplies>,
    ) -> Self {
        let mount = MountInfo {
            mountpoint: mountpoint.to_path_buf(),
            backing: backing.to_path_buf(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            options: options_in_force(settings, reactor.reactors()),
        };
        let started = Instant::now();
        let source = Arc::new(Source {
            mount,
            snapshot: Box::new(move || Snapshot {
                uptime: started.elapsed(),
                fs: observer.snapshot(),
                reactors: reactor.lane_stats(),
            }),
        });
        let server = match start_server(ours, source.clone()) {
            Ok(server) => {
                tracing::debug!(socket = %server.path().display(), "stats socket");
                Some(server)
            }
            Err(why) => {
                tracing::warn!(
                    "no stats socket (`arsyncfs stats` will not reach this mount): {why}"
                );
                None
            }
        };
        Publication { source, server }
    }

    /// At unmount: removes the socket and logs the summary (at info level, `-v`).
    pub fn finish(self) {
        if let Some(server) = self.server {
            server.stop();
        }
        if tracing::enabled!(tracing::Level::INFO) {
            let now = (self.source.snapshot)();
            let summary = self.source.report(Format::Table, &now, None);
            tracing::info!("summary at unmount:\n{summary}");
        }
    }
}

fn start_server(ours: Option<&MountEntry>, source: Arc<Source>) -> Result<StatsServer, String> {
    let ours = ours.ok_or("the mount is not in /proc/self/mountinfo")?;
    let name = socket_name(&ours.device)
        .ok_or_else(|| format!("unexpected device number '{}'", ours.device))?;
    let uid = rustix::process::geteuid().as_raw();
    let dir = own_dir(uid).ok_or("no runtime directory: set XDG_RUNTIME_DIR")?;
    StatsServer::start(&dir, &name, source)
        .map_err(|e| format!("{}: {e}", dir.join(&name).display()))
}

fn on(b: bool) -> String {
    if b { "on" } else { "off" }.to_owned()
}

fn seconds(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

/// A size as the command line takes it: `1M`, `256K`.
fn size(bytes: usize) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{}M", bytes >> 20)
    } else {
        format!("{}K", bytes >> 10)
    }
}

/// The options in force, as `name=value` pairs in the command line's terms.
fn options_in_force(s: &Settings, reactors: usize) -> Vec<(String, String)> {
    let fs = &s.fs;
    let access = match s.acl {
        SessionACL::All => "allow_other",
        SessionACL::RootAndOwner => "allow_root",
        SessionACL::Owner => "owner",
    };
    let atime = match fs.atime {
        AtimeMode::NoAtime => "noatime",
        AtimeMode::Relatime => "relatime",
        AtimeMode::Strictatime => "strictatime",
    };
    let buffered_writes = match fs.buffered_writes {
        BufferedWrites::Reactor => "reactor",
        BufferedWrites::Inline => "inline",
    };
    let r = &s.reactor;
    [
        ("cache", s.cache.mode.name().to_owned()),
        ("attr_timeout", seconds(fs.attr_timeout)),
        ("entry_timeout", seconds(fs.entry_timeout)),
        ("writeback", on(fs.writeback_cache)),
        ("passthrough", on(fs.passthrough)),
        ("buffered_writes", buffered_writes.to_owned()),
        ("read_only", on(fs.read_only)),
        ("access", access.to_owned()),
        ("atime", atime.to_owned()),
        ("diratime", on(fs.diratime)),
        ("threads", s.threads.to_string()),
        ("clone_fd", on(s.clone_fd && s.threads > 1)),
        ("reactors", reactors.to_string()),
        ("buffers", r.buffers.to_string()),
        ("buffer_size", size(r.buffer_size)),
        ("ring_entries", r.ring_entries.to_string()),
        ("spin_us", r.spin.as_micros().to_string()),
        ("max_background", fs.max_background.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
