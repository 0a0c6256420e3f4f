//! The daemon's side of the stats socket: a thread of its own accepts connections on a unix socket
//! (mode 0600 in a 0700 directory, see `paths`), and one short-lived thread per connection answers
//! its requests with a report of a fresh snapshot. Nothing here touches the data path: a snapshot
//! only reads the counters.
//!
//! A connection holds one of [`MAX_CONNECTIONS`] slots, so a client that stalls is let go after
//! [`Limits::stall`]: one that sends no first request, stops part way through a request, or does
//! not read its answer. Between two requests a connection may stay idle as long as it likes: that
//! is `arsyncfs stats --watch SECS`, which keeps its connection for the rates.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::protocol::{self, Format, MAX_REQUEST};
use super::snapshot::{MountInfo, Rates, Report, Snapshot};
use super::{json, prometheus, table};

/// Connections served at once; more are told to come back later.
const MAX_CONNECTIONS: usize = 8;

/// How long the accepting thread waits after a failed accept (EMFILE: no descriptor left) before
/// it tries again, instead of spinning on the error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long the server waits for a stalled client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a connection's first request, for the rest of a request once it began,
    /// and for a client to take its answer.
    pub stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stall: Duration::from_secs(5),
        }
    }
}

/// What the server reports on: the mount, and a way to take a snapshot of its counters.
pub struct Source {
    pub mount: MountInfo,
    pub snapshot: Box<dyn Fn() -> Snapshot + Send + Sync>,
}

impl Source {
    /// The report of `now` in `format`, with rates since `before` if given.
    pub fn report(&self, format: Format, now: &Snapshot, before: Option<&Snapshot>) -> String {
        let rates = before.and_then(|b| Rates::between(b, now));
        let report = Report {
            mount: &self.mount,
            now,
            rates: rates.as_ref(),
        };
        match format {
            Format::Table => table::table(&report),
            Format::Json => json::json(&report) + "\n",
            Format::Prometheus => prometheus::prometheus(&report),
        }
    }
}

/// A running stats socket. [`StatsServer::stop`], or dropping it, removes it.
pub struct StatsServer {
    path: PathBuf,
    /// The socket file as created, to remove only that one.
    identity: (u64, u64),
    /// A copy of the listening socket, to wake the accepting thread.
    listener: OwnedFd,
    stopping: Arc<AtomicBool>,
}

impl StatsServer {
    /// Creates the socket `name` in `dir` (replacing a stale one: the name is the mount's device,
    /// which no other live mount has) and serves it from a thread of its own.
    pub fn start(dir: &Path, name: &str, source: Arc<Source>) -> io::Result<StatsServer> {
        Self::start_with(dir, name, source, Limits::default())
    }

    /// [`StatsServer::start`] with `limits`.
    pub fn start_with(
        dir: &Path,
        name: &str,
        source: Arc<Source>,
        limits: Limits,
    ) -> io::Result<StatsServer> {
        super::paths::prepare_dir(dir)?;
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(&path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(&path)?;
        // The daemon's umask is 0 (see fs::PassthroughFs::new), and must stay so for the session
        // threads: set the mode after the bind. Until then the 0700 directory keeps others out.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let meta = std::fs::symlink_metadata(&path)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let server = StatsServer {
            path,
            identity: (meta.dev(), meta.ino()),
            listener: listener.as_fd().try_clone_to_owned()?,
            stopping: stopping.clone(),
        };
        std::thread::Builder::new()
            .name("arsyncfs-stats".into())
            .spawn(move || accept_loop(listener, source, stopping, limits))?;
        Ok(server)
    }

    /// Where the socket is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket (if it is still the one created) and stops accepting. Connections being
    /// served end with the process.
    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for StatsServer {
    /// Whatever path the daemon ends by, the socket it created goes.
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.identity
            && let Err(e) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(
                "cannot remove the stats socket {}: {e}",
                self.path.display()
            );
        }
        // Makes the blocked accept return.
        let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both);
    }
}

fn accept_loop(
    listener: UnixListener,
    source: Arc<Source>,
    stopping: Arc<AtomicBool>,
    limits: Limits,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!("stats socket: accept: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        // Neither a refusal nor an answer may wait for ever on a client that does not read.
        if let Err(e) = stream.set_write_timeout(Some(limits.stall)) {
            tracing::debug!("stats connection: {e}");
            continue;
        }
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            refuse(stream, "busy: too many stats connections at once");
            continue;
        }
        let (source, done) = (source.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name("arsyncfs-stats-conn".into())
            .spawn(move || {
                if let Err(e) = serve(&stream, &source, limits) {
                    tracing::debug!("stats connection: {e}");
                }
                done.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn refuse(mut stream: UnixStream, why: &str) {
    let _ = protocol::write_answer(&mut stream, Err(why));
}

/// Whether the peer is the daemon's own user or root (the socket's mode says so already; this
/// holds even if someone loosened it).
fn peer_allowed(stream: &UnixStream) -> bool {
    let me = rustix::process::geteuid().as_raw();
    rustix::net::sockopt::socket_peercred(stream)
        .is_ok_and(|cred| cred.uid.as_raw() == me || cred.uid.is_root())
}

/// Answers the requests of one connection until it closes, or stalls (see [`Limits`]).
fn serve(stream: &UnixStream, source: &Source, limits: Limits) -> io::Result<()> {
    let mut writer = stream;
    if !peer_allowed(stream) {
        return protocol::write_answer(&mut writer, Err("permission denied"));
    }
    let mut reader = BufReader::new(stream);
    let mut before: Option<Snapshot> = None;
    loop {
        // The first request must come in time; a later one whenever the client likes.
        let idle = if before.is_none() {
            Some(limits.stall)
        } else {
            None
        };
        stream.set_read_timeout(idle)?;
        if reader.fill_buf()?.is_empty() {
            return Ok(());
        }
        stream.set_read_timeout(Some(limits.stall))?;
        let mut line = String::new();
        let n = (&mut reader)
            .take(MAX_REQUEST as u64)
            .read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') {
            return protocol::write_answer(&mut writer, Err("request line too long"));
        }
        let format = match protocol::parse_request(&line) {
            Ok(f) => f,
            Err(e) => return protocol::write_answer(&mut writer, Err(&e)),
        };
        let now = (source.snapshot)();
        let report = source.report(format, &now, before.as_ref());
        protocol::write_answer(&mut writer, Ok(&report))?;
        before = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client::{Located, StatsClient, locate};
    use crate::control::snapshot::sample;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    #[test]
    fn serves_reports_with_rates_on_one_connection_and_removes_its_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("arsyncfs");
        let asked = Arc::new(AtomicU64::new(0));
        let counter = asked.clone();
        let source = Arc::new(Source {
            mount: sample::mount(),
            snapshot: Box::new(move || {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                sample::snapshot(Duration::from_secs(n), 2 * n)
            }),
        });
        // A socket left by a dead daemon is replaced.
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        drop(UnixListener::bind(dir.join("0-99.sock")).unwrap());
        let server = StatsServer::start(&dir, "0-99.sock", source).unwrap();
        let path = server.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            locate(std::slice::from_ref(&dir), "0-99.sock"),
            Located::Socket(path.clone())
        );

        let mut client = StatsClient::connect(&path).unwrap();
        let first = client.ask(Format::Json).unwrap().unwrap();
        assert!(
            first.ends_with("}\n") && !first.contains("\"rates\""),
            "{first}"
        );
        let second = client.ask(Format::Table).unwrap().unwrap();
        assert!(second.contains("req/s"), "rates since the first: {second}");
        let prom = StatsClient::connect(&path)
            .unwrap()
            .ask(Format::Prometheus)
            .unwrap()
            .unwrap();
        assert!(prom.contains("# TYPE arsyncfs_requests_total counter"));
        assert_eq!(asked.load(Ordering::Relaxed), 3);

        server.stop();
        assert!(!path.exists(), "socket removed");
        assert_eq!(locate(&[dir], "0-99.sock"), Located::Missing);
        assert!(StatsClient::connect(&path).is_err());
    }

    fn quick_server(dir: &Path, name: &str) -> StatsServer {
        let source = Arc::new(Source {
            mount: sample::mount(),
            snapshot: Box::new(|| sample::snapshot(Duration::ZERO, 0)),
        });
        let limits = Limits {
            stall: Duration::from_millis(100),
        };
        StatsServer::start_with(dir, name, source, limits).unwrap()
    }

    /// Asks on a new connection until the daemon has a slot for it (the limit is a safety net:
    /// only a server that never lets a stalled client go gets near it).
    fn ask_until_served(path: &Path) -> String {
        let start = std::time::Instant::now();
        loop {
            // Refused as busy: an error line, or a closed connection before the request is in.
            match StatsClient::connect(path).and_then(|mut c| c.ask(Format::Json)) {
                Ok(Ok(report)) => return report,
                refused => assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "never served: {refused:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn stalled_clients_are_let_go_and_an_idle_watch_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("arsyncfs");
        let server = quick_server(&dir, "0-97.sock");
        let path = server.path().to_path_buf();
        // A watch: one request, then idle for many stall limits, then the next.
        let mut watch = StatsClient::connect(&path).unwrap();
        watch.ask(Format::Json).unwrap().unwrap();
        // Every other slot taken by clients that send nothing, or half a request.
        let stalled: Vec<UnixStream> = (1..MAX_CONNECTIONS)
            .map(|i| {
                let mut s = UnixStream::connect(&path).unwrap();
                if i % 2 == 0 {
                    std::io::Write::write_all(&mut s, b"js").unwrap();
                }
                s
            })
            .collect();
        // A new client gets a slot once the stalled ones are let go.
        assert!(ask_until_served(&path).ends_with("}\n"));
        std::thread::sleep(Duration::from_millis(500));
        let again = watch.ask(Format::Json).unwrap();
        assert!(
            again.is_ok_and(|r| r.ends_with("}\n")),
            "the watch kept its connection"
        );
        // The stalled ones were closed by the server.
        for mut s in stalled {
            let mut rest = Vec::new();
            assert!(s.read_to_end(&mut rest).is_ok_and(|_| rest.is_empty()));
        }
        drop(server);
        assert!(!path.exists(), "socket removed when the server is dropped");
    }

    #[test]
    fn a_stranger_gets_an_error_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("arsyncfs");
        let source = Arc::new(Source {
            mount: sample::mount(),
            snapshot: Box::new(|| sample::snapshot(Duration::ZERO, 0)),
        });
        let server = StatsServer::start(&dir, "0-98.sock", source).unwrap();
        let mut stream = UnixStream::connect(server.path()).unwrap();
        std::io::Write::write_all(&mut stream, b"GET / HTTP/1.0\n").unwrap();
        let answer = protocol::read_answer(&mut BufReader::new(&stream)).unwrap();
        assert_eq!(answer, Err("not a stats request".to_owned()));
        server.stop();
    }
}
