//! Access times: which reads update them, and how the mount's atime options are made to hold.
//!
//! The kernel's FUSE module never updates an access time itself: it marks every FUSE inode
//! `S_NOATIME`, so its own atime logic (`touch_atime`) does nothing there, whatever the mount's
//! flags. After each READ, READDIR or READLINK it sends, it only forgets the atime it cached, so that
//! the next stat asks the daemon. The access time a program sees is therefore the one the daemon's
//! own reads leave on the backing file, under the rules of the mount *the daemon* reads through —
//! the backing directory's, not the FUSE mount's. And a read served from the page cache reaches no
//! one.
//!
//! So arsyncfs (see docs/semantics.md, "Access times"):
//! - reads the backing tree through a mount with the FUSE mount's atime rule: the backing mount
//!   itself when its rule is the same (the usual relatime over relatime); with `O_NOATIME` on every
//!   backing file (or directory) when the mount is `noatime` (or `nodiratime`); otherwise through a
//!   private, detached copy of the backing mount with the mount's atime flags ([`AtimePlan`]);
//! - at each open for reading, lets the kernel keep the file's cached pages only when the rule says
//!   a read would not update the access time now ([`AtimeMode::update_due`]): otherwise the first
//!   read reaches the daemon, whose read of the backing file updates it.

use rustix::fs::{Stat, StatVfsMountFlags, Timespec};

use crate::sys::mount::{MOUNT_ATTR_ATIME_MASK, MOUNT_ATTR_NOATIME, MOUNT_ATTR_STRICTATIME};

/// When a read updates the access time (the mount options `noatime`, `relatime`, `strictatime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AtimeMode {
    /// Never.
    NoAtime,
    /// When the access time is not after the last modification or change, or is a day old (the
    /// kernel's default).
    #[default]
    Relatime,
    /// At every read.
    Strictatime,
}

const DAY_SECS: i64 = 24 * 60 * 60;

/// The current time, as file times count it.
pub fn now() -> Timespec {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as _,
    }
}

impl AtimeMode {
    /// Whether a read at `now` updates the access time of a file with these times: the kernel's
    /// `atime_needs_update` / `relatime_need_update` for a mount with this mode.
    pub fn update_due(
        self,
        atime: Timespec,
        mtime: Timespec,
        ctime: Timespec,
        now: Timespec,
    ) -> bool {
        let key = |t: Timespec| (t.tv_sec, t.tv_nsec);
        match self {
            AtimeMode::NoAtime => false,
            AtimeMode::Strictatime => key(atime) != key(now),
            AtimeMode::Relatime => {
                (key(mtime) >= key(atime)
                    || key(ctime) >= key(atime)
                    || now.tv_sec - atime.tv_sec >= DAY_SECS)
                    && key(atime) != key(now)
            }
        }
    }

    /// [`AtimeMode::update_due`] for the times in `st`.
    pub fn update_due_for(self, st: &Stat, now: Timespec) -> bool {
        let ts = |sec: i64, nsec: i64| Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        };
        self.update_due(
            ts(st.st_atime, st.st_atime_nsec as i64),
            ts(st.st_mtime, st.st_mtime_nsec as i64),
            ts(st.st_ctime, st.st_ctime_nsec as i64),
            now,
        )
    }
}

/// The access-time rules of a mount: for files, and for directories (`nodiratime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtimeRules {
    pub files: AtimeMode,
    pub dirs: AtimeMode,
}

impl AtimeRules {
    /// The rules of a mount with atime mode `mode`, and `nodiratime` unless `diratime`.
    pub fn new(mode: AtimeMode, diratime: bool) -> Self {
        AtimeRules {
            files: mode,
            dirs: if diratime { mode } else { AtimeMode::NoAtime },
        }
    }

    /// The rules of the mount whose statvfs(2) flags are `flags`.
    pub fn of_mount(flags: StatVfsMountFlags) -> Self {
        let mode = if flags.contains(StatVfsMountFlags::NOATIME) {
            AtimeMode::NoAtime
        } else if flags.contains(StatVfsMountFlags::RELATIME) {
            AtimeMode::Relatime
        } else {
            AtimeMode::Strictatime
        };
        Self::new(mode, !flags.contains(StatVfsMountFlags::NODIRATIME))
    }

    /// The `MOUNT_ATTR_*` bits to set, and to clear, to give a mount these rules.
    pub fn mount_attrs(&self) -> (u64, u64) {
        let mut set = match self.files {
            AtimeMode::NoAtime => MOUNT_ATTR_NOATIME,
            AtimeMode::Relatime => 0,
            AtimeMode::Strictatime => MOUNT_ATTR_STRICTATIME,
        };
        if self.dirs == AtimeMode::NoAtime && self.files != AtimeMode::NoAtime {
            set |= crate::sys::mount::MOUNT_ATTR_NODIRATIME;
        }
        let clear = MOUNT_ATTR_ATIME_MASK | crate::sys::mount::MOUNT_ATTR_NODIRATIME;
        (set, clear)
    }

    /// How to read a backing tree mounted with rules `backing` so that these rules hold.
    pub fn plan(&self, backing: &AtimeRules) -> AtimePlan {
        // A rule is met natively when it is the backing mount's, and `O_NOATIME` turns any rule
        // into noatime; anything else needs a mount with these flags.
        let need = |want: AtimeMode, have: AtimeMode| want != have && want != AtimeMode::NoAtime;
        let private_tree = need(self.files, backing.files) || need(self.dirs, backing.dirs);
        AtimePlan {
            private_tree,
            noatime_files: !private_tree && self.files != backing.files,
            noatime_dirs: !private_tree && self.dirs != backing.dirs,
            files: self.files,
        }
    }
}

/// How the daemon reads the backing tree so that the mount's atime rules hold (see
/// [`AtimeRules::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtimePlan {
    /// Read through a private copy of the backing mount with the mount's atime flags (needs
    /// CAP_SYS_ADMIN; see docs/semantics.md for what that copy costs).
    pub private_tree: bool,
    /// Open backing files with `O_NOATIME` (the mount is noatime, the backing mount is not).
    pub noatime_files: bool,
    /// Open backing directories with `O_NOATIME` (noatime or nodiratime over a mount without).
    pub noatime_dirs: bool,
    /// The rule the daemon's reads of backing files follow, so the one reads through the mount do.
    pub files: AtimeMode,
}

impl AtimePlan {
    /// The plan that remains when the private tree it needs cannot be made: `O_NOATIME` where it
    /// meets the rule on its own; the rest follows the backing mount.
    pub fn without_private_tree(want: &AtimeRules, backing: &AtimeRules) -> AtimePlan {
        let noatime_files = want.files == AtimeMode::NoAtime && backing.files != AtimeMode::NoAtime;
        AtimePlan {
            private_tree: false,
            noatime_files,
            noatime_dirs: want.dirs == AtimeMode::NoAtime && backing.dirs != AtimeMode::NoAtime,
            files: if noatime_files {
                AtimeMode::NoAtime
            } else {
                backing.files
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AtimeMode::*;

    fn t(sec: i64, nsec: i64) -> Timespec {
        Timespec {
            tv_sec: sec,
            tv_nsec: nsec as _,
        }
    }

    const NOW: i64 = 1_000_000_000;

    #[test]
    fn relatime_updates_when_not_newer_than_mtime_or_ctime_or_a_day_old() {
        let now = t(NOW, 5);
        let old = t(NOW - 100, 0);
        // atime after mtime and ctime, recent: no update.
        assert!(!Relatime.update_due(t(NOW - 10, 0), old, old, now));
        // mtime or ctime at or after atime: update.
        assert!(Relatime.update_due(t(NOW - 10, 0), t(NOW - 10, 0), old, now));
        assert!(Relatime.update_due(t(NOW - 10, 0), old, t(NOW - 10, 1), now));
        assert!(!Relatime.update_due(t(NOW - 10, 2), old, t(NOW - 10, 1), now));
        // A day old: update; a second less: not.
        assert!(Relatime.update_due(t(NOW - DAY_SECS, 0), t(0, 0), t(0, 0), now));
        assert!(!Relatime.update_due(t(NOW - DAY_SECS + 1, 0), t(0, 0), t(0, 0), now));
        // In the future: no update.
        assert!(!Relatime.update_due(t(NOW + 3600, 0), old, old, now));
    }

    #[test]
    fn strict_and_noatime() {
        let now = t(NOW, 5);
        assert!(Strictatime.update_due(t(NOW + 3600, 0), t(0, 0), t(0, 0), now));
        assert!(Strictatime.update_due(t(NOW - 1, 0), t(0, 0), t(0, 0), now));
        assert!(!Strictatime.update_due(now, t(0, 0), t(0, 0), now));
        assert!(!NoAtime.update_due(t(0, 0), now, now, now));
    }

    #[test]
    fn rules_of_mount_flags() {
        let f = StatVfsMountFlags::RELATIME;
        assert_eq!(AtimeRules::of_mount(f), AtimeRules::new(Relatime, true));
        let f = StatVfsMountFlags::NOATIME | StatVfsMountFlags::RELATIME;
        assert_eq!(AtimeRules::of_mount(f), AtimeRules::new(NoAtime, true));
        let f = StatVfsMountFlags::NODIRATIME;
        let r = AtimeRules::of_mount(f);
        assert_eq!((r.files, r.dirs), (Strictatime, NoAtime));
        assert_eq!(AtimeRules::new(NoAtime, true).dirs, NoAtime);
    }

    #[test]
    fn mount_attrs() {
        use crate::sys::mount::MOUNT_ATTR_NODIRATIME as NODIR;
        let clear = MOUNT_ATTR_ATIME_MASK | NODIR;
        assert_eq!(AtimeRules::new(Relatime, true).mount_attrs(), (0, clear));
        assert_eq!(
            AtimeRules::new(Strictatime, false).mount_attrs(),
            (MOUNT_ATTR_STRICTATIME | NODIR, clear)
        );
        assert_eq!(
            AtimeRules::new(NoAtime, false).mount_attrs(),
            (MOUNT_ATTR_NOATIME, clear)
        );
    }

    #[test]
    fn plans() {
        let relatime = AtimeRules::new(Relatime, true);
        // Same rules: nothing to do.
        let p = relatime.plan(&relatime);
        assert_eq!(
            (p.private_tree, p.noatime_files, p.noatime_dirs),
            (false, false, false)
        );
        assert_eq!(p.files, Relatime);
        // noatime / nodiratime over relatime: O_NOATIME is enough.
        let p = AtimeRules::new(NoAtime, true).plan(&relatime);
        assert_eq!(
            (p.private_tree, p.noatime_files, p.noatime_dirs),
            (false, true, true)
        );
        let p = AtimeRules::new(Relatime, false).plan(&relatime);
        assert_eq!(
            (p.private_tree, p.noatime_files, p.noatime_dirs),
            (false, false, true)
        );
        // strictatime over relatime, relatime over noatime: a private tree, and with it no O_NOATIME.
        let p = AtimeRules::new(Strictatime, false).plan(&relatime);
        assert_eq!(
            (p.private_tree, p.noatime_files, p.noatime_dirs),
            (true, false, false)
        );
        let p = relatime.plan(&AtimeRules::new(NoAtime, true));
        assert!(p.private_tree);
        // Without the tree, strictatime over relatime with nodiratime keeps O_NOATIME for dirs.
        let want = AtimeRules::new(Strictatime, false);
        let p = AtimePlan::without_private_tree(&want, &relatime);
        assert_eq!(
            (p.private_tree, p.noatime_files, p.noatime_dirs),
            (false, false, true)
        );
        assert_eq!(p.files, Relatime, "reads follow the backing mount's rule");
        let p = AtimePlan::without_private_tree(&AtimeRules::new(NoAtime, true), &relatime);
        assert_eq!(
            (p.noatime_files, p.noatime_dirs, p.files),
            (true, true, NoAtime)
        );
    }
}
