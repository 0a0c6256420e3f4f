//! Log output through tracing: to stderr (or a file), level from `-v` unless RUST_LOG is set.
//! fuser's `log` records are bridged in as well.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use super::error::{CliError, Failure};

fn level(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Installs the global subscriber. Spawns no thread.
pub fn init(verbosity: u8, log_file: Option<&Path>) -> Result<(), CliError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).map_err(|e| {
            CliError::new(Failure::Usage, format!("invalid RUST_LOG '{spec}': {e}"))
        })?,
        _ => EnvFilter::new(level(verbosity)),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match log_file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    CliError::new(
                        Failure::Usage,
                        format!("cannot open log file '{}': {e}", path.display()),
                    )
                })?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init()
        }
        None => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .with_writer(std::io::stderr)
            .try_init(),
    };
    // Only fails if a subscriber is already installed, which would be a bug of ours: keep going.
    if let Err(e) = result {
        eprintln!("arsyncfs: warning: logging not initialised: {e}");
    }
    Ok(())
}
