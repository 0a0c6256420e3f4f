//! Checks of the two directories and of /dev/fuse, before anything is started, each failure with a
//! message that says what is wrong and what to do.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::Access;

use super::error::{CliError, Failure};
use super::mountinfo;
use crate::fs::FsConfig;

/// Environment variable that points the /dev/fuse check at another path. For tests only: the
/// mount itself always uses /dev/fuse.
pub const DEV_FUSE_ENV: &str = "ARSYNCFS_TEST_DEV_FUSE";

/// The two directories, absolute and with symlinks resolved.
#[derive(Debug, Clone)]
pub struct CheckedPaths {
    pub backing: PathBuf,
    pub mountpoint: PathBuf,
}

fn is_enotconn(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTCONN)
}

/// `path` made absolute without touching the filesystem (no symlink resolution).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn check_backing(path: &Path) -> Result<PathBuf, CliError> {
    let err = |msg: String| CliError::new(Failure::Backing, msg);
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        err(match e.kind() {
            io::ErrorKind::NotFound => format!("backing directory '{shown}' does not exist"),
            io::ErrorKind::PermissionDenied => {
                format!("cannot reach backing directory '{shown}': permission denied")
            }
            _ if is_enotconn(&e) => format!(
                "backing directory '{shown}' is a stale FUSE mount (transport endpoint is not \
                 connected); unmount it first with `umount -l {shown}`"
            ),
            _ => format!("cannot access backing directory '{shown}': {e}"),
        })
    })?;
    if !meta.is_dir() {
        return Err(err(format!("backing '{shown}' is not a directory")));
    }
    let readable = std::fs::read_dir(path).is_ok()
        && rustix::fs::access(path, Access::READ_OK | Access::EXEC_OK).is_ok();
    if !readable {
        return Err(err(format!(
            "backing directory '{shown}' is not readable (permission denied)"
        )));
    }
    path.canonicalize()
        .map_err(|e| err(format!("cannot resolve backing directory '{shown}': {e}")))
}

fn stale_fuse(shown: &std::path::Display<'_>) -> String {
    format!(
        "mountpoint '{shown}' is a stale FUSE mount (transport endpoint is not connected: its \
         filesystem process is gone); unmount it first with `fusermount3 -u {shown}` or \
         `umount -l {shown}`"
    )
}

/// How long to wait for a stat of an existing FUSE mount before calling it hung.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn in_use(mountpoint: &Path, entry: &mountinfo::MountEntry) -> CliError {
    let shown = mountpoint.display();
    if entry.is_fuse() {
        // A FUSE mount whose process died answers ENOTCONN; one whose process hangs never answers.
        match mountinfo::probe(mountpoint, PROBE_TIMEOUT) {
            mountinfo::Liveness::Stale => {
                return CliError::new(Failure::Mountpoint, stale_fuse(&shown));
            }
            mountinfo::Liveness::Hung => {
                return CliError::new(
                    Failure::Mountpoint,
                    format!(
                        "mountpoint '{shown}' is a FUSE mount that does not answer (hung); \
                         unmount it first with `umount -l {shown}`"
                    ),
                );
            }
            mountinfo::Liveness::Answers => {}
        }
    }
    CliError::new(
        Failure::Mountpoint,
        format!(
            "mountpoint '{}' is already a mount point ({} from {}); unmount it first or choose \
             another directory",
            mountpoint.display(),
            entry.fs_type,
            entry.source
        ),
    )
}

fn check_mountpoint(path: &Path) -> Result<PathBuf, CliError> {
    let err = |msg: String| CliError::new(Failure::Mountpoint, msg);
    let shown = path.display();
    // Look it up in mountinfo before touching it: stat on a hung FUSE mount would block.
    let lexical = absolute(path);
    if let Ok(Some(entry)) = mountinfo::find(&lexical) {
        return Err(in_use(path, &entry));
    }
    let meta = std::fs::metadata(path).map_err(|e| {
        err(match e.kind() {
            io::ErrorKind::NotFound => {
                format!("mountpoint '{shown}' does not exist (create it with `mkdir -p {shown}`)")
            }
            io::ErrorKind::PermissionDenied => {
                format!("cannot reach mountpoint '{shown}': permission denied")
            }
            _ if is_enotconn(&e) => stale_fuse(&shown),
            _ => format!("cannot access mountpoint '{shown}': {e}"),
        })
    })?;
    if !meta.is_dir() {
        return Err(err(format!("mountpoint '{shown}' is not a directory")));
    }
    let canonical = path
        .canonicalize()
        .map_err(|e| err(format!("cannot resolve mountpoint '{shown}': {e}")))?;
    match mountinfo::find(&canonical) {
        Ok(Some(entry)) => Err(in_use(path, &entry)),
        Ok(None) => Ok(canonical),
        Err(e) => Err(err(format!("cannot read /proc/self/mountinfo: {e}"))),
    }
}

/// Checks both directories and that neither contains the other; returns them canonical.
pub fn check_paths(backing: &Path, mountpoint: &Path) -> Result<CheckedPaths, CliError> {
    let backing_c = check_backing(backing)?;
    let mountpoint_c = check_mountpoint(mountpoint)?;
    let overlap = |msg: String| CliError::new(Failure::Overlap, msg);
    if mountpoint_c == backing_c {
        return Err(overlap(format!(
            "mountpoint '{}' and backing directory '{}' are the same directory ({}); the view \
             would contain itself: choose a mountpoint outside the backing directory",
            mountpoint.display(),
            backing.display(),
            backing_c.display()
        )));
    }
    if mountpoint_c.starts_with(&backing_c) {
        return Err(overlap(format!(
            "mountpoint '{}' is inside the backing directory '{}'; the view would contain \
             itself: choose a mountpoint outside the backing directory",
            mountpoint_c.display(),
            backing_c.display()
        )));
    }
    if backing_c.starts_with(&mountpoint_c) {
        return Err(overlap(format!(
            "backing directory '{}' is inside the mountpoint '{}'; the mount would hide it and \
             recurse into itself: choose a mountpoint outside the backing directory",
            backing_c.display(),
            mountpoint_c.display()
        )));
    }
    Ok(CheckedPaths {
        backing: backing_c,
        mountpoint: mountpoint_c,
    })
}

/// Refuses filesystem settings that cannot go together.
pub fn check_fs_options(fs: &FsConfig) -> Result<(), CliError> {
    // Whatever enables the writeback cache (--writeback, --cache always), not only that flag.
    if fs.passthrough && fs.enables_writeback_cache() {
        return Err(CliError::usage(
            "--passthrough cannot be combined with the writeback cache (--writeback, --cache \
             always): the kernel does not pass through files it caches writes of; choose one",
        ));
    }
    Ok(())
}

/// `--passthrough` registers backing files with the kernel, which needs CAP_SYS_ADMIN in the
/// effective set (checked by the kernel at each registration, so check it before mounting).
pub fn check_passthrough_allowed(fs: &FsConfig) -> Result<(), CliError> {
    if !fs.passthrough {
        return Ok(());
    }
    let sets = rustix::thread::capabilities(None).map_err(|e| {
        CliError::new(
            Failure::Fuse,
            format!("--passthrough: cannot read this process's capabilities: {e}"),
        )
    })?;
    if !sets
        .effective
        .contains(rustix::thread::CapabilitySet::SYS_ADMIN)
    {
        return Err(CliError::new(
            Failure::Fuse,
            "--passthrough needs CAP_SYS_ADMIN (the kernel lets only it register backing files): \
             run arsyncfs as root with that capability, or without --passthrough",
        ));
    }
    Ok(())
}

/// The FUSE device to check: /dev/fuse, or the test override.
pub fn dev_fuse_path() -> PathBuf {
    std::env::var_os(DEV_FUSE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/fuse"))
}

/// Checks that the FUSE device exists and can be opened.
pub fn check_dev_fuse() -> Result<(), CliError> {
    let path = dev_fuse_path();
    let shown = path.display();
    let err = |msg: String| CliError::new(Failure::Fuse, msg);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| {
            err(match e.kind() {
                io::ErrorKind::NotFound => format!(
                    "{shown} does not exist: load the FUSE kernel module (`modprobe fuse`), or in \
                     a container pass the device (e.g. `docker run --device /dev/fuse \
                     --cap-add SYS_ADMIN`)"
                ),
                io::ErrorKind::PermissionDenied => format!(
                    "cannot open {shown}: permission denied; run arsyncfs as root, or give your \
                     user read-write access to {shown}"
                ),
                _ => format!("cannot open {shown}: {e}"),
            })
        })?;
    let is_char = file.metadata().map(|m| m.file_type().is_char_device());
    if !matches!(is_char, Ok(true)) {
        return Err(err(format!(
            "{shown} is not the FUSE device (not a character device)"
        )));
    }
    Ok(())
}
