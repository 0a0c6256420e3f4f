//! A plain directory seen through a bind mount with chosen mount flags: the local-filesystem
//! reference for checks that depend on mount options (atime, nodev, nosuid, ro). Unmounted on
//! every path, also when the test panics.
//!
//! ```ignore
//! #[path = "common/bind.rs"]
//! mod bind;
//! let plain = bind::BoundDir::new(MountFlags::NOATIME); // <tmp>/dir seen at <tmp>/view
//! ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub use rustix::mount::MountFlags;
use rustix::mount::UnmountFlags;

/// `<tmp>/dir`, bind-mounted at `<tmp>/view` with the per-mount flags given.
pub struct BoundDir {
    dir: PathBuf,
    view: PathBuf,
    mounted: bool,
    // Dropped last, once the bind mount is gone.
    _tmp: tempfile::TempDir,
}

impl BoundDir {
    /// Bind-mounts a fresh directory with `flags` (any of RDONLY, NOSUID, NODEV, NOEXEC, NOATIME,
    /// STRICTATIME, NODIRATIME; the rest of the mount's flags are cleared). Both directories and
    /// their parent are 0755, so other users can reach them.
    pub fn new(flags: MountFlags) -> BoundDir {
        let tmp = tempfile::Builder::new()
            .prefix("arsyncfs-bind-")
            .tempdir()
            .expect("create temp dir");
        let root = tmp.path().canonicalize().expect("canonicalize temp dir");
        let dir = root.join("dir");
        let view = root.join("view");
        for d in [&dir, &view] {
            std::fs::create_dir(d).expect("create dir");
        }
        for d in [&root, &dir, &view] {
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod 755");
        }
        let mut bound = BoundDir {
            dir,
            view,
            mounted: false,
            _tmp: tmp,
        };
        rustix::mount::mount_bind(&bound.dir, &bound.view).expect("bind mount");
        bound.mounted = true;
        rustix::mount::mount_remount(&bound.view, MountFlags::BIND | flags, "")
            .unwrap_or_else(|e| panic!("remount the bind mount with {flags:?}: {e}"));
        bound
    }

    /// The directory itself (writable, on the temp dir's own mount).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The same directory through the bind mount.
    pub fn view(&self) -> &Path {
        &self.view
    }
}

impl Drop for BoundDir {
    fn drop(&mut self) {
        if self.mounted && rustix::mount::unmount(&self.view, UnmountFlags::empty()).is_err() {
            let _ = rustix::mount::unmount(&self.view, UnmountFlags::DETACH);
        }
    }
}
