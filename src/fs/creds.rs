//! Who owns what a caller creates, and with which mode.
//!
//! The daemon runs as root; the kernel has already checked the caller's permissions
//! (default_permissions, with POSIX ACLs) and taken the set-group-ID bit off a mode the caller may
//! not set. The session thread makes the one system call that creates an object under the
//! caller's user and group ([`AsCaller`]), so the object is the caller's from its first moment,
//! as on a local disk: in a setgid directory the backing filesystem gives it the directory's group.
//! The thread keeps root's capabilities meanwhile, so the backing filesystem decides nothing the
//! kernel has decided already (which would need the caller's supplementary groups). The caller's
//! umask arrives separately (FUSE_DONT_MASK) and is applied here unless the parent has a default
//! ACL, which takes precedence over the umask on a local disk too.

use std::cell::Cell;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use rustix::fs::{Gid, Mode, Uid};
use rustix::thread::{
    CapabilitiesSecureBits, capabilities_secure_bits, set_capabilities_secure_bits,
    set_thread_res_gid, set_thread_res_uid,
};

use super::inodes::DefaultAcl;
use super::{OpResult, PassthroughFs, proc_path};

/// The identity of the process a request comes from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    pub umask: u32,
}

impl Caller {
    pub fn of(req: &fuser::Request, umask: u32) -> Self {
        Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
            umask,
        }
    }
}

/// Whether the process `pid`, of primary group `gid`, is a member of group `group`: its primary
/// group, or one of its supplementary groups (read from procfs; a process that is gone counts with
/// its primary group only).
pub(super) fn in_group(pid: u32, gid: u32, group: u32) -> bool {
    gid == group
        || std::fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|status| supplementary_groups(&status).any(|g| g == group))
}

/// Whether the process `pid` (of user `uid`) has CAP_SYS_ADMIN in its effective set, read from
/// procfs; a process that is gone (or whose pid the daemon cannot see) counts as privileged only
/// when it is root. (The kernel asks for the capability in the initial user namespace; a process
/// in a user namespace of its own with the capability there counts as privileged here.)
pub(super) fn has_cap_sys_admin(pid: u32, uid: u32) -> bool {
    const CAP_SYS_ADMIN: u32 = 21; // linux/capability.h
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => effective_caps(&status).is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0),
        Err(_) => uid == 0,
    }
}

/// The `CapEff:` line of a /proc/PID/status text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The `Groups:` line of a /proc/PID/status text.
fn supplementary_groups(status: &str) -> impl Iterator<Item = u32> + '_ {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
}

fn has_default_acl(dir: &OwnedFd) -> bool {
    matches!(
        rustix::fs::getxattr_query(proc_path(dir).as_str(), super::xattrs::DEFAULT_ACL),
        Ok(n) if n > 0
    )
}

/// The daemon's effective group, which session threads go back to.
static DAEMON_GID: OnceLock<Gid> = OnceLock::new();

thread_local! {
    /// Whether this thread keeps its capabilities when its effective user id leaves root
    /// (SECBIT_NO_SETUID_FIXUP, a per-thread setting made once).
    static KEEPS_CAPABILITIES: Cell<bool> = const { Cell::new(false) };
}

/// The calling thread acting as another user and group (its effective ids, and so the ids new
/// objects get), with root's capabilities kept; root again when dropped. Credentials are
/// per-thread in Linux (the raw system calls; glibc's wrappers would change every thread), so other
/// requests are unaffected.
#[must_use = "the thread is root again when this is dropped"]
pub(super) struct AsCaller {
    switched: bool,
}

impl AsCaller {
    /// Nothing to take on: the daemon's own credentials stay.
    fn unchanged() -> Self {
        AsCaller { switched: false }
    }

    /// Takes on `uid` and `gid`. On an error the thread is unchanged.
    fn switch(uid: u32, gid: u32) -> io::Result<Self> {
        if !KEEPS_CAPABILITIES.get() {
            let bits = capabilities_secure_bits()?;
            set_capabilities_secure_bits(bits | CapabilitiesSecureBits::NO_SETUID_FIXUP)?;
            KEEPS_CAPABILITIES.set(true);
        }
        // Group first and back last: the thread never is the user with the daemon's group.
        set_thread_res_gid(None::<Gid>, Gid::from_raw(gid), None::<Gid>)?;
        if let Err(e) = set_thread_res_uid(None::<Uid>, Uid::from_raw(uid), None::<Uid>) {
            restore_gid();
            return Err(e.into());
        }
        Ok(AsCaller { switched: true })
    }
}

fn restore_gid() {
    let gid = DAEMON_GID.get().copied().unwrap_or(Gid::ROOT);
    if let Err(e) = set_thread_res_gid(None::<Gid>, gid, None::<Gid>) {
        identity_lost(e);
    }
}

/// A session thread that cannot become root again would serve every later request as some user:
/// stop rather than do that.
fn identity_lost(e: rustix::io::Errno) -> ! {
    tracing::error!("cannot restore the daemon's credentials on a session thread: {e}; aborting");
    std::process::abort()
}

impl Drop for AsCaller {
    fn drop(&mut self) {
        if !self.switched {
            return;
        }
        // The real and saved user ids stayed root, so going back needs no capability.
        if let Err(e) = set_thread_res_uid(None::<Uid>, Uid::ROOT, None::<Uid>) {
            identity_lost(e);
        }
        restore_gid();
    }
}

/// Whether this process can create objects as their callers: it runs as root and a thread of it
/// can take on another user's ids and come back. Tried on a scratch thread.
pub(super) fn can_act_as_callers() -> bool {
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    DAEMON_GID.get_or_init(rustix::process::getegid);
    let probe = std::thread::spawn(|| {
        let nobody = 65534;
        let guard = AsCaller::switch(nobody, nobody)?;
        let switched = rustix::process::geteuid().as_raw() == nobody;
        drop(guard);
        Ok::<_, io::Error>(switched && rustix::process::geteuid().is_root())
    });
    match probe.join() {
        Ok(Ok(works)) => works,
        Ok(Err(e)) => {
            tracing::warn!(
                "cannot create objects as their callers ({e}): what users create through the \
                 mount belongs to the daemon's user"
            );
            false
        }
        Err(_) => false,
    }
}

impl PassthroughFs {
    /// The permission bits to create with in directory node `parent` (open as `pfd`).
    pub(super) fn creation_mode(
        &self,
        parent: u64,
        pfd: &OwnedFd,
        mode: u32,
        caller: &Caller,
    ) -> Mode {
        let mode = mode & 0o7777;
        if caller.umask == 0 || self.has_default_acl(parent, pfd) {
            Mode::from_raw_mode(mode)
        } else {
            Mode::from_raw_mode(mode & !caller.umask)
        }
    }

    /// Whether directory node `dir` (open as `fd`) has a default ACL: remembered per node, asked
    /// of the backing filesystem the first time (setxattr and removexattr of it through the mount
    /// make the node forget; a change made directly in the backing tree is not seen).
    fn has_default_acl(&self, dir: u64, fd: &OwnedFd) -> bool {
        match self.inodes.default_acl(dir) {
            DefaultAcl::Known(has) => has,
            DefaultAcl::Unknown(asked) => {
                let has = has_default_acl(fd);
                self.inodes.learn_default_acl(dir, asked, has);
                has
            }
        }
    }

    /// The calling thread acting as `caller` until the result is dropped, for a call that creates
    /// an object; unchanged where the daemon cannot give objects away (not root) or the caller is
    /// root.
    pub(super) fn become_caller(&self, caller: &Caller) -> OpResult<AsCaller> {
        if !self.acts_as_callers || (caller.uid == 0 && caller.gid == 0) {
            return Ok(AsCaller::unchanged());
        }
        if caller.uid == u32::MAX || caller.gid == u32::MAX {
            // -1 means "unchanged" to setresuid: the object would be root's. (The kernel sends
            // no request for a caller whose ids it cannot map.)
            return Err(fuser::Errno::EOVERFLOW);
        }
        AsCaller::switch(caller.uid, caller.gid).map_err(|e| super::replies::errno_of(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::OFlags;

    #[test]
    fn effective_capabilities() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_caps(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_caps("CapEff:\t0000000000000000\n"), Some(0));
        assert_eq!(effective_caps("Name:\tx\n"), None);
        // This process: as its CapEff says (bit 21).
        let me = std::process::id();
        let status = std::fs::read_to_string(format!("/proc/{me}/status")).unwrap();
        let mine = effective_caps(&status).unwrap();
        assert_eq!(has_cap_sys_admin(me, u32::MAX), mine & (1 << 21) != 0);
        // A process that is gone: root only.
        assert!(has_cap_sys_admin(u32::MAX, 0));
        assert!(!has_cap_sys_admin(u32::MAX, 1000));
    }

    #[test]
    fn groups_from_status() {
        let status = "Name:\tx\nGid:\t5\t5\t5\t5\nGroups:\t4 24 27 \nNgid:\t0\n";
        assert_eq!(
            supplementary_groups(status).collect::<Vec<_>>(),
            [4, 24, 27]
        );
        assert_eq!(supplementary_groups("Groups:\n").count(), 0);
        assert_eq!(supplementary_groups("").count(), 0);
        assert!(in_group(0, 5, 5), "primary group");
        let me = std::process::id();
        let mine = std::fs::read_to_string(format!("/proc/{me}/status")).unwrap();
        for g in supplementary_groups(&mine) {
            assert!(in_group(me, u32::MAX, g));
        }
        assert!(
            !in_group(u32::MAX, 5, 6),
            "no such process: primary group only"
        );
    }

    #[test]
    fn default_acl_is_detected() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let open = |p: &std::path::Path| {
            rustix::fs::open(p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap()
        };
        assert!(!has_default_acl(&open(dir.path())));
        let ok = std::process::Command::new("setfacl")
            .args(["-d", "-m", "u::rwx,g::rwx,o::rwx"])
            .arg(dir.path())
            .status();
        if !matches!(ok, Ok(s) if s.success()) {
            eprintln!("setfacl unavailable or unsupported here; skipping");
            return;
        }
        assert!(has_default_acl(&open(dir.path())));
    }

    /// On a thread of its own (credentials are per thread): what is created while acting as a
    /// user is that user's, root's capabilities still apply meanwhile, and the thread is root
    /// again afterwards.
    #[test]
    fn acting_as_a_user_creates_as_that_user_and_comes_back() {
        if !can_act_as_callers() {
            eprintln!("not root, or credentials cannot be switched here; skipping");
            return;
        }
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        // Only root may write here: the user gets in through the kept capabilities.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let path = dir.path().to_owned();
        std::thread::spawn(move || {
            let (uid, gid) = (4321, 8765);
            let guard = AsCaller::switch(uid, gid).unwrap();
            assert_eq!(rustix::process::geteuid().as_raw(), uid);
            std::fs::create_dir(path.join("d")).unwrap();
            std::fs::write(path.join("f"), b"x").unwrap();
            drop(guard);
            assert!(rustix::process::geteuid().is_root());
            assert!(rustix::process::getegid().is_root());
            for name in ["d", "f"] {
                let st = rustix::fs::stat(path.join(name)).unwrap();
                assert_eq!((st.st_uid, st.st_gid), (uid, gid), "{name}");
            }
            // Root's own creations are root's again.
            std::fs::write(path.join("r"), b"x").unwrap();
            let st = rustix::fs::stat(path.join("r")).unwrap();
            assert_eq!((st.st_uid, st.st_gid), (0, 0));
        })
        .join()
        .unwrap();
        assert!(
            rustix::process::geteuid().is_root(),
            "other threads untouched"
        );
    }
}
