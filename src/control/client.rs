//! The client's side of the stats socket: find it, connect, ask.

use std::io::{self, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{self, Format};

/// Where a mount's socket was looked for, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// A socket file (its daemon may still be gone).
    Socket(PathBuf),
    /// A directory it could be in cannot be searched by this user.
    NoAccess(PathBuf),
    /// In none of the directories.
    Missing,
}

/// Looks for the socket `name` in `dirs`, in order.
pub fn locate(dirs: &[PathBuf], name: &str) -> Located {
    let mut no_access = None;
    for dir in dirs {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => return Located::Socket(path),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                no_access.get_or_insert(dir.clone());
            }
            Err(_) => {}
        }
    }
    no_access.map_or(Located::Missing, Located::NoAccess)
}

/// Longest wait for the daemon to take a request or to answer it: it answers at once, so a
/// daemon that does not is hung (an error of kind `WouldBlock`).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a daemon's stats socket.
pub struct StatsClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl StatsClient {
    /// Connects to the socket at `path`: `ConnectionRefused` when no daemon listens on it any more,
    /// `PermissionDenied` when it is another user's.
    pub fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        Ok(StatsClient {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// One report in `format` (rates since the one asked for before, on this connection); the
    /// daemon's refusal as `Err`. `UnexpectedEof` when the daemon went away.
    pub fn ask(&mut self, format: Format) -> io::Result<Result<String, String>> {
        self.writer
            .write_all(protocol::request(format).as_bytes())?;
        protocol::read_answer(&mut self.reader)
    }
}
