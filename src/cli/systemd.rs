//! systemd's readiness protocol (sd_notify(3)), for `Type=notify` units: `READY=1` once the mount
//! is live, `STOPPING=1` when unmounting. Each message is one datagram to the socket $NOTIFY_SOCKET
//! names: a path, or `@name` for a socket in the abstract namespace. Without the variable (not
//! started by systemd, or not `Type=notify`) nothing is sent.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// The socket address `value` of $NOTIFY_SOCKET names.
fn address(value: &OsStr) -> io::Result<SocketAddr> {
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
        Some(b'/') => SocketAddr::from_pathname(value),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{NOTIFY_SOCKET}={} is neither an absolute path nor an @abstract name",
                value.to_string_lossy()
            ),
        )),
    }
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to systemd. Returns whether it was
/// sent: `false` when $NOTIFY_SOCKET is not set.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(value) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    let addr = address(&value)?;
    let socket = UnixDatagram::unbound()?;
    let sent = socket.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::other("the notification was cut short"));
    }
    Ok(true)
}

/// Like [`notify`], but a failure is only logged: the mount works without systemd's attention.
pub fn notify_or_warn(state: &str) {
    if let Err(e) = notify(state) {
        tracing::warn!("cannot notify systemd ({NOTIFY_SOCKET}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let path = address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abstract_ = address(OsStr::new("@arsyncfs/notify")).unwrap();
        assert_eq!(abstract_.as_abstract_name(), Some(&b"arsyncfs/notify"[..]));
        for bad in ["", "relative/path", "vsock:2:1"] {
            assert!(address(OsStr::new(bad)).is_err(), "{bad}");
        }
    }
}
