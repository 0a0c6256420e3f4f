//! What can go wrong before or while mounting, as one line of text and an exit code.

use std::fmt;

/// The class of a failure; each has its own exit code (listed in `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Anything else: the mount failed in an unexpected way, the session ended with an error.
    Other,
    /// Bad command line or `-o` option.
    Usage,
    /// The backing directory is missing, not a directory, or not readable.
    Backing,
    /// The mountpoint is missing, not a directory, already mounted, or a stale FUSE mount.
    Mountpoint,
    /// The mountpoint is inside the backing tree or the other way round.
    Overlap,
    /// /dev/fuse is missing or not permitted, the kernel refused the mount, or `--passthrough`
    /// lacks CAP_SYS_ADMIN.
    Fuse,
    /// io_uring is unavailable.
    IoUring,
    /// `arsyncfs stats`: the mount is not arsyncfs's, or its daemon has no stats socket.
    NotArsyncfs,
    /// `arsyncfs stats`: the mount's daemon is gone (a stale mount, or a stale socket).
    DaemonGone,
    /// `arsyncfs stats`: the mount's socket is another user's.
    Permission,
}

impl Failure {
    pub fn exit_code(self) -> i32 {
        match self {
            Failure::Other => 1,
            Failure::Usage => 2,
            Failure::Backing => 3,
            Failure::Mountpoint => 4,
            Failure::Overlap => 5,
            Failure::Fuse => 6,
            Failure::IoUring => 7,
            Failure::NotArsyncfs => 8,
            Failure::DaemonGone => 9,
            Failure::Permission => 10,
        }
    }
}

/// Exit codes, as shown at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0  mounted and later unmounted cleanly (signal or external umount); with --daemon, the mount is live
  1  other error (unexpected mount or session failure)
  2  bad command line or -o option
  3  backing directory missing, not a directory, or not readable
  4  mountpoint missing, not a directory, already a mount point, or a stale FUSE mount
     (arsyncfs stats: MOUNTPOINT missing or not a mount point)
  5  mountpoint inside the backing directory, or backing directory inside the mountpoint
  6  /dev/fuse missing or not permitted, the kernel refused the FUSE mount, or --passthrough
     without CAP_SYS_ADMIN
  7  io_uring unavailable
  8  arsyncfs stats: not an arsyncfs mount, or its daemon has no stats socket
  9  arsyncfs stats: the mount's daemon is gone (stale mount or stale socket)
  10 arsyncfs stats: no permission to ask the mount's daemon";

/// A failure with the one line that explains it.
#[derive(Debug, Clone)]
pub struct CliError {
    pub failure: Failure,
    pub message: String,
}

impl CliError {
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        CliError {
            failure,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Failure::Usage, message)
    }

    pub fn exit_code(&self) -> i32 {
        self.failure.exit_code()
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the source message looked like.
        let one_line: String = self
            .message
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        write!(f, "arsyncfs: error: {one_line}")
    }
}

impl std::error::Error for CliError {}
