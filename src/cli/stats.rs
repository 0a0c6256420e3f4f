//! `arsyncfs stats MOUNTPOINT`: asks the daemon of a running mount for a report of its counters
//! over its stats socket (see the `control` module) and prints it; `--watch SECS` asks again every
//! SECS seconds, with rates since the report before. Each way this can fail is one line on stderr
//! with its own exit code.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind;

use super::error::{CliError, Failure};
use super::mountinfo::{self, Liveness, MountEntry};
use super::validate::PROBE_TIMEOUT;
use super::values::parse_seconds;
use crate::control::{ANSWER_TIMEOUT, Format, Located, StatsClient, dirs_for, locate, socket_name};

const EXIT_CODES: &str = "\
Exit status:
  0   the report was printed
  1   other error
  2   bad command line
  4   MOUNTPOINT missing or not a mount point
  8   not an arsyncfs mount, or its daemon has no stats socket
  9   the mount's daemon is gone (a stale mount, or a stale socket)
  10  no permission to ask the mount's daemon (it is another user's)";

const LONG_ABOUT: &str = "\
Show what a running arsyncfs mount is doing: requests, errors by errno and latency (p50, p99, max)
per FUSE operation, bytes read and written, requests in flight, each reactor's requests, turns,
sleeps, wake-ups and buffers, open handles, cached descriptors, inodes known, uptime and the options
in force. The daemon of the mount answers over a unix socket (/run/arsyncfs for root,
$XDG_RUNTIME_DIR/arsyncfs for other users), which only the user who mounted it and root may use.";

/// `arsyncfs stats [--json | --prometheus] [--watch SECS] MOUNTPOINT`
#[derive(Parser, Debug)]
#[command(
    name = "arsyncfs stats",
    version,
    about = "Show the counters of a running arsyncfs mount",
    long_about = LONG_ABOUT,
    after_long_help = EXIT_CODES,
)]
pub struct StatsArgs {
    /// The directory an arsyncfs is mounted on.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,

    /// Print one line of JSON (durations in nanoseconds, sizes in bytes); with --watch, one line
    /// per report.
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,

    /// Print the Prometheus text format (for node_exporter's textfile collector).
    #[arg(long)]
    pub prometheus: bool,

    /// Print a new report every SECS seconds (fractions allowed) until interrupted, with rates
    /// (requests/s, MiB/s) since the report before.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub watch: Option<Duration>,
}

/// Runs `arsyncfs stats` with `args` (what follows `stats` on the command line); returns the exit
/// code.
pub fn main(args: &[OsString]) -> i32 {
    let argv = std::iter::once(OsString::from("arsyncfs stats")).chain(args.iter().cloned());
    let args = match StatsArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                return 0;
            }
            _ => return super::report(&CliError::usage(super::clap_error_line(&e, "stats"))),
        },
    };
    run(&args).unwrap_or_else(|e| super::report(&e))
}

fn run(args: &StatsArgs) -> Result<i32, CliError> {
    if args.watch.is_some_and(|d| d.is_zero()) {
        return Err(CliError::usage("--watch needs a number of seconds above 0"));
    }
    let format = if args.json {
        Format::Json
    } else if args.prometheus {
        Format::Prometheus
    } else {
        Format::Table
    };
    let path = &args.mountpoint;
    let entry = find_mount(path)?;
    let mut client = connect(path, &entry)?;
    let clear_screen =
        args.watch.is_some() && format == Format::Table && io::stdout().is_terminal();
    let mut first = true;
    loop {
        let report = ask(&mut client, format, path, first)?;
        let mut out = io::stdout().lock();
        let written = if clear_screen {
            write!(out, "\x1b[H\x1b[2J{report}")
        } else if format == Format::Table && !first {
            write!(out, "\n{report}")
        } else {
            write!(out, "{report}")
        };
        if let Err(e) = written.and_then(|()| out.flush()) {
            // A reader that stopped (`| head`) ends the watch quietly.
            return if e.kind() == io::ErrorKind::BrokenPipe {
                Ok(0)
            } else {
                Err(CliError::new(
                    Failure::Other,
                    format!("cannot write the report: {e}"),
                ))
            };
        }
        let Some(every) = args.watch else {
            return Ok(0);
        };
        first = false;
        std::thread::sleep(every);
    }
}

/// The mount at `path`: looked up in /proc/self/mountinfo by the path as given first, without
/// touching the mount (a dead or hung one), then resolved.
fn find_mount(path: &Path) -> Result<MountEntry, CliError> {
    let shown = path.display();
    let mounts = mountinfo::read().map_err(|e| {
        CliError::new(
            Failure::Other,
            format!("cannot read /proc/self/mountinfo: {e}"),
        )
    })?;
    let find = |p: &Path| mounts.iter().rev().find(|m| m.mount_point == p).cloned();
    if let Some(entry) = std::path::absolute(path).ok().and_then(|p| find(&p)) {
        return Ok(entry);
    }
    let not_mountpoint = |msg: String| CliError::new(Failure::Mountpoint, msg);
    let canonical = path.canonicalize().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => not_mountpoint(format!("'{shown}' does not exist")),
        io::ErrorKind::PermissionDenied => CliError::new(
            Failure::Permission,
            format!("cannot reach '{shown}': permission denied"),
        ),
        _ if e.raw_os_error() == Some(libc::ENOTCONN) => CliError::new(
            Failure::DaemonGone,
            format!("'{shown}' is on a stale FUSE mount (its daemon is gone)"),
        ),
        _ => not_mountpoint(format!("cannot access '{shown}': {e}")),
    })?;
    find(&canonical).ok_or_else(|| {
        not_mountpoint(format!(
            "'{shown}' is not a mount point (give the directory an arsyncfs is mounted on)"
        ))
    })
}

/// A connection to the daemon of the mount `entry` at `path`, or the one line that says why not.
fn connect(path: &Path, entry: &MountEntry) -> Result<StatsClient, CliError> {
    let shown = path.display();
    let kind = format!("a {} mount of {}", entry.fs_type, entry.source);
    if !entry.is_fuse() {
        return Err(CliError::new(
            Failure::NotArsyncfs,
            format!("'{shown}' is not an arsyncfs mount (it is {kind})"),
        ));
    }
    let name = socket_name(&entry.device).ok_or_else(|| {
        CliError::new(
            Failure::Other,
            format!(
                "'{shown}' has an unexpected device number '{}'",
                entry.device
            ),
        )
    })?;
    let stale = || mountinfo::probe(path, PROBE_TIMEOUT) == Liveness::Stale;
    let stale_mount = |socket: &str| {
        CliError::new(
            Failure::DaemonGone,
            format!(
                "the daemon of '{shown}' is gone (stale mount: transport endpoint is not \
                 connected){socket}; unmount it with `fusermount3 -u {shown}`"
            ),
        )
    };
    let me = rustix::process::geteuid().as_raw();
    let dirs = dirs_for(entry.fuse_owner(), me);
    match locate(&dirs, &name) {
        Located::Socket(socket) => StatsClient::connect(&socket).map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused if stale() => stale_mount(&format!(
                ", its stats socket {} is left over",
                socket.display()
            )),
            io::ErrorKind::ConnectionRefused => CliError::new(
                Failure::DaemonGone,
                format!(
                    "the stats socket {} of '{shown}' is stale: no daemon answers on it",
                    socket.display()
                ),
            ),
            io::ErrorKind::PermissionDenied => CliError::new(
                Failure::Permission,
                format!(
                    "no permission to ask the daemon of '{shown}' (its stats socket {} is {}'s): \
                     run as that user or as root",
                    socket.display(),
                    owner_name(entry)
                ),
            ),
            _ => CliError::new(
                Failure::Other,
                format!("cannot connect to {}: {e}", socket.display()),
            ),
        }),
        Located::NoAccess(dir) => Err(CliError::new(
            Failure::Permission,
            format!(
                "no permission to look for the stats socket of '{shown}' in {} (the mount is \
                 {}'s): run as that user or as root",
                dir.display(),
                owner_name(entry)
            ),
        )),
        Located::Missing if stale() => Err(stale_mount("")),
        Located::Missing if entry.fs_type == "fuse.arsyncfs" => Err(CliError::new(
            Failure::NotArsyncfs,
            format!(
                "the arsyncfs mount '{shown}' has no stats socket (looked in {}): its daemon is \
                 older than `arsyncfs stats` or could not create it (see its log)",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        Located::Missing => Err(CliError::new(
            Failure::NotArsyncfs,
            format!(
                "'{shown}' is not an arsyncfs mount (it is {kind}, and no arsyncfs socket serves it)"
            ),
        )),
    }
}

/// Who made the mount, for messages.
fn owner_name(entry: &MountEntry) -> String {
    match entry.fuse_owner() {
        Some(0) => "root".to_owned(),
        Some(uid) => format!("uid {uid}"),
        None => "another user".to_owned(),
    }
}

/// One report, or the line that says why there is none.
fn ask(
    client: &mut StatsClient,
    format: Format,
    path: &Path,
    first: bool,
) -> Result<String, CliError> {
    let shown = path.display();
    match client.ask(format) {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(refusal)) if refusal.contains("permission denied") => Err(CliError::new(
            Failure::Permission,
            format!("the daemon of '{shown}' refused: {refusal}"),
        )),
        Ok(Err(refusal)) => Err(CliError::new(
            Failure::Other,
            format!("the daemon of '{shown}' refused: {refusal}"),
        )),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
            ) =>
        {
            let when = if first {
                "before answering"
            } else {
                "(unmounted)"
            };
            Err(CliError::new(
                Failure::DaemonGone,
                format!("the daemon of '{shown}' went away {when}"),
            ))
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(CliError::new(
                Failure::Other,
                format!(
                    "the daemon of '{shown}' did not answer within {} s",
                    ANSWER_TIMEOUT.as_secs()
                ),
            ))
        }
        Err(e) => Err(CliError::new(
            Failure::Other,
            format!("cannot read the report of '{shown}': {e}"),
        )),
    }
}
