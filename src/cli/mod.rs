//! The `arsyncfs` command: `arsyncfs [OPTIONS] BACKING MOUNTPOINT`, and `arsyncfs stats
//! MOUNTPOINT` ([`stats`]).
//!
//! - `args`: the clap command line; `options`: `-o` lists; `values`: the values both take;
//!   `settings`: both resolved.
//! - `validate`: checks of the directories and /dev/fuse; `mountinfo`: /proc/self/mountinfo.
//! - `run`: the mount's life; `signals`: stop signals on a channel; `daemon`: `--daemon`;
//!   `publish`: the stats socket and the summary at unmount; `stats`: the `arsyncfs stats` command.
//! - `auto_unmount`: the watcher that detaches the mount of a daemon that died.
//! - `helper`: running as `/sbin/mount.fuse.arsyncfs` for mount(8) and fstab.
//! - `systemd`: `READY=1` and `STOPPING=1` for `Type=notify` units.
//! - `logging`: tracing to stderr or a file; `error`: one-line errors and exit codes.

mod args;
mod auto_unmount;
mod daemon;
mod error;
mod helper;
mod logging;
mod mountinfo;
mod options;
mod publish;
mod run;
mod settings;
mod signals;
mod stats;
mod systemd;
mod validate;
mod values;

use std::ffi::OsString;

use clap::Parser;
use clap::error::ErrorKind;

use args::Args;
use error::{CliError, Failure};
use settings::Settings;

// What the man page (examples/gen-man.rs) is made of, besides `command()`.
pub use crate::fs::CacheMode;
pub use args::OPTIONS_HELP;
pub use error::EXIT_CODES_HELP;

/// The command line's clap definition (the man page is generated from it: examples/gen-man.rs).
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

/// The clap definition of `arsyncfs stats` (its section of the man page).
pub fn stats_command() -> clap::Command {
    <stats::StatsArgs as clap::CommandFactory>::command()
}

/// clap's error, whatever its layout, as one line that points to the help of `command` (`""`
/// for the mount command, `"stats"` for the subcommand).
fn clap_error_line(e: &clap::Error, command: &str) -> String {
    let text = e.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.strip_prefix("error: ").unwrap_or(line).to_owned());
        }
    }
    let help = if command.is_empty() {
        "arsyncfs --help".to_owned()
    } else {
        format!("arsyncfs {command} --help")
    };
    format!("{} (see `{help}`)", parts.join(" "))
}

fn report(e: &CliError) -> i32 {
    eprintln!("{e}");
    e.exit_code()
}

/// Runs the command; returns the process exit code. Call it first thing in `main` (before any
/// thread is started), then exit with the code.
pub fn main() -> i32 {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == auto_unmount::WATCHER_FLAG) {
        return auto_unmount::run_watcher(&argv[2..]);
    }
    if argv.first().is_some_and(|a| helper::is_helper(a)) {
        match helper::translate(&argv[1..]) {
            Ok(rest) => {
                argv.truncate(1);
                argv.extend(rest);
            }
            Err(e) => return report(&e),
        }
    } else if argv.get(1).is_some_and(|a| a == "stats") {
        // A backing directory named `stats` in the current directory is `./stats`.
        return stats::main(&argv[2..]);
    }
    let args = match Args::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                return 0;
            }
            _ => return report(&CliError::usage(clap_error_line(&e, ""))),
        },
    };
    let settings = match Settings::from_args(args) {
        Ok(s) => s,
        Err(e) => return report(&e),
    };
    if settings.daemon_child {
        daemon::detach_session();
    }
    // Before any thread exists, so that every thread inherits the blocked mask.
    let blocked = match signals::block() {
        Ok(b) => b,
        Err(e) => {
            return report(&CliError::new(
                Failure::Other,
                format!("cannot block signals: {e}"),
            ));
        }
    };
    if settings.daemon {
        return daemon::run_parent(blocked, &argv[1..]).unwrap_or_else(|e| report(&e));
    }
    if let Err(e) = logging::init(settings.verbosity, settings.log_file.as_deref()) {
        return report(&e);
    }
    let signals = match signals::listen(blocked) {
        Ok(rx) => rx,
        Err(e) => {
            return report(&CliError::new(
                Failure::Other,
                format!("cannot start the signal thread: {e}"),
            ));
        }
    };
    match run::run(&settings, &signals) {
        Ok(()) => 0,
        Err(e) => report(&e),
    }
}
