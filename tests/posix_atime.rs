//! Access times under each atime mount option: reading a file (also one whose pages are cached, so
//! no READ reaches the daemon), executing a script or a binary, and listing a directory update the
//! access time exactly when the option says so — relatime (the default), noatime, strictatime,
//! nodiratime, and never on a read-only mount or for a reader that opened the file with O_NOATIME.
//!
//! Each mode runs twice: on a plain directory seen through a bind mount with the same flags (the
//! kernel's own behaviour on a local filesystem, see tests/common/bind.rs) and through an arsyncfs
//! mount with the same `-o` options. Every step starts from an access time set explicitly — long
//! ago (2000-01-01), which relatime updates, or an hour ahead, which it leaves alone but strictatime
//! updates — so no step depends on how much time passes. (The rule's other cases, ctime and the
//! one-day limit, are unit tests in src/fs/atime.rs.) On a writable view the access time read
//! through it must equal the backing file's.

#[path = "common/bind.rs"]
mod bind;
#[path = "common/mount.rs"]
mod mount;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use bind::{BoundDir, MountFlags};
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT};

/// When an access updates the access time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Never,
    Relatime,
    Always,
}

/// One atime mode: how arsyncfs is mounted, the flags of the plain reference, and the rules.
struct Mode {
    name: &'static str,
    args: &'static [&'static str],
    bind_flags: MountFlags,
    files: Rule,
    dirs: Rule,
    writable: bool,
}

const RELATIME: Mode = Mode {
    name: "relatime (default)",
    args: &[],
    bind_flags: MountFlags::empty(),
    files: Rule::Relatime,
    dirs: Rule::Relatime,
    writable: true,
};
const NOATIME: Mode = Mode {
    name: "noatime",
    args: &["-o", "noatime"],
    bind_flags: MountFlags::NOATIME,
    files: Rule::Never,
    dirs: Rule::Never,
    writable: true,
};
const STRICTATIME: Mode = Mode {
    name: "strictatime",
    args: &["-o", "strictatime"],
    bind_flags: MountFlags::STRICTATIME,
    files: Rule::Always,
    dirs: Rule::Always,
    writable: true,
};
const NODIRATIME: Mode = Mode {
    name: "nodiratime",
    args: &["-o", "nodiratime"],
    bind_flags: MountFlags::NODIRATIME,
    files: Rule::Relatime,
    dirs: Rule::Never,
    writable: true,
};
const READ_ONLY: Mode = Mode {
    name: "ro",
    args: &["-o", "ro"],
    bind_flags: MountFlags::RDONLY,
    files: Rule::Never,
    dirs: Rule::Never,
    writable: false,
};

struct Env {
    view: PathBuf,
    backing: PathBuf,
    mode: &'static Mode,
    what: &'static str,
    _keep: Keep,
}

enum Keep {
    Plain(#[allow(dead_code)] BoundDir),
    Mounted(#[allow(dead_code)] mount::Mounted),
}

impl Env {
    fn v(&self, rel: &str) -> PathBuf {
        self.view.join(rel)
    }
    fn b(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }
    /// Where changes are made: the view, unless it is read-only.
    fn w(&self, rel: &str) -> PathBuf {
        if self.mode.writable {
            self.v(rel)
        } else {
            self.b(rel)
        }
    }

    fn create(&self, rel: &str, data: &[u8], mode: u32) {
        let p = self.w(rel);
        fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Sets the access time of `rel` (the modification time stays).
    fn set_atime(&self, rel: &str, t: Timespec) {
        let times = Timestamps {
            last_access: t,
            last_modification: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            },
        };
        rustix::fs::utimensat(CWD, self.w(rel), &times, AtFlags::empty())
            .unwrap_or_else(|e| panic!("set atime of {rel}: {e}"));
    }

    /// The access time of `rel` in the backing directory; through a writable view it must be the
    /// same.
    fn atime(&self, rel: &str) -> (i64, i64) {
        let of = |p: &Path| {
            let m =
                fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
            (m.atime(), m.atime_nsec())
        };
        let backing = of(&self.b(rel));
        if self.mode.writable {
            assert_eq!(
                of(&self.v(rel)),
                backing,
                "{} ({}): {rel}: atime through the view differs from the backing file's",
                self.mode.name,
                self.what
            );
        }
        backing
    }

    /// Sets the access time of `rel` to `start`, runs `access`, and checks that the access time
    /// changed exactly when `rule` says so (`due`: relatime would update it).
    #[track_caller]
    fn check(&self, rel: &str, start: Timespec, rule: Rule, step: &str, access: impl FnOnce()) {
        self.set_atime(rel, start);
        let before = self.atime(rel);
        assert_eq!(before, (start.tv_sec, start.tv_nsec), "{step}: set");
        access();
        let after = self.atime(rel);
        let due = start.tv_sec < now_secs();
        let expected = match rule {
            Rule::Never => false,
            Rule::Relatime => due,
            Rule::Always => true,
        };
        assert_eq!(
            after != before,
            expected,
            "{} ({}): {step}: atime {before:?} -> {after:?}, expected it {}",
            self.mode.name,
            self.what,
            if expected { "updated" } else { "unchanged" }
        );
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Long ago: relatime updates it.
fn old() -> Timespec {
    Timespec {
        tv_sec: 946_684_800,
        tv_nsec: 0,
    }
}

/// An hour ahead: after mtime and ctime and not a day old, so relatime leaves it; strictatime not.
fn ahead() -> Timespec {
    Timespec {
        tv_sec: now_secs() + 3600,
        tv_nsec: 0,
    }
}

fn read_all(p: &Path) {
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
}

fn run(p: &Path) {
    // A fork in another test thread may briefly hold a descriptor open for writing (ETXTBSY).
    for _ in 0..50 {
        match Command::new(p).status() {
            Ok(s) => {
                assert!(s.success(), "{} exited with {s}", p.display());
                return;
            }
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("run {}: {e}", p.display()),
        }
    }
    panic!("{} stayed busy (ETXTBSY)", p.display());
}

/// Full pages: written through a writable view, they stay in the page cache.
fn data() -> Vec<u8> {
    (0..64 * 1024).map(|i| (i % 251) as u8).collect()
}

fn reads(env: &Env) {
    let rule = env.mode.files;
    // Read after write: the pages the write left may be cached.
    env.create("w", &data(), 0o644);
    env.check("w", old(), rule, "first read after a write", || {
        read_all(&env.v("w"))
    });
    env.create("n", &data(), 0o644);
    env.check("n", ahead(), rule, "first read, recent atime", || {
        read_all(&env.v("n"))
    });
    // Reads served from the page cache: the file was read just before.
    env.create("c", &data(), 0o644);
    read_all(&env.v("c"));
    env.check("c", old(), rule, "cached read", || read_all(&env.v("c")));
    env.check("c", ahead(), rule, "cached read, recent atime", || {
        read_all(&env.v("c"))
    });
    env.check("c", old(), rule, "cached read again", || {
        read_all(&env.v("c"))
    });
    // A reader that asks for O_NOATIME (root may) leaves the access time alone under every rule.
    env.check("c", old(), Rule::Never, "read with O_NOATIME", || {
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(env.v("c"))
            .unwrap();
        f.read_to_end(&mut Vec::new()).unwrap();
    });
}

fn executions(env: &Env) {
    let rule = env.mode.files;
    env.create("script", b"#!/bin/sh\nexit 0\n", 0o755);
    let bin = fs::read("/bin/true").expect("read /bin/true");
    env.create("true", &bin, 0o755);
    for rel in ["script", "true"] {
        run(&env.v(rel));
        env.check(
            rel,
            old(),
            rule,
            &format!("exec {rel}"),
            || run(&env.v(rel)),
        );
        env.check(
            rel,
            ahead(),
            rule,
            &format!("exec {rel}, recent atime"),
            || run(&env.v(rel)),
        );
    }
}

fn listings(env: &Env) {
    let rule = env.mode.dirs;
    fs::create_dir(env.w("d")).unwrap();
    fs::write(env.w("d/f"), b"x").unwrap();
    let list = || {
        let n = fs::read_dir(env.v("d")).unwrap().count();
        assert_eq!(n, 1);
    };
    list();
    env.check("d", old(), rule, "list a directory", list);
    env.check("d", ahead(), rule, "list a directory, recent atime", list);
}

fn all(env: &Env) {
    reads(env);
    executions(env);
    listings(env);
}

fn run_plain(mode: &'static Mode) {
    let bound = BoundDir::new(mode.bind_flags);
    let env = Env {
        view: bound.view().to_path_buf(),
        backing: bound.dir().to_path_buf(),
        mode,
        what: "plain",
        _keep: Keep::Plain(bound),
    };
    all(&env);
}

fn run_mounted(mode: &'static Mode) {
    let m = mount::Mounted::with_args(mode.args);
    let env = Env {
        view: m.mountpoint().to_path_buf(),
        backing: m.backing().to_path_buf(),
        mode,
        what: "mount",
        _keep: Keep::Mounted(m),
    };
    all(&env);
}

macro_rules! atime_tests {
    ($($name:ident: $mode:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn plain() {
                crate::run_plain(&crate::$mode)
            }
            #[test]
            fn mount() {
                crate::run_mounted(&crate::$mode)
            }
        }
    )*};
}

atime_tests!(
    relatime: RELATIME,
    noatime: NOATIME,
    strictatime: STRICTATIME,
    nodiratime: NODIRATIME,
    read_only: READ_ONLY,
);

/// The options show on the mount as on any other (fuser passes noatime; strictatime and
/// nodiratime are set once mounted).
#[test]
fn options_show_in_mountinfo() {
    for (args, want, absent) in [
        (&[][..], &["relatime"][..], &["noatime", "nodiratime"][..]),
        (&["-o", "noatime"][..], &["noatime"][..], &["relatime"][..]),
        (
            &["-o", "strictatime"][..],
            &[][..],
            &["relatime", "noatime"][..],
        ),
        (
            &["-o", "nodiratime"][..],
            &["nodiratime", "relatime"][..],
            &["noatime"][..],
        ),
    ] {
        let m = mount::Mounted::with_args(args);
        let entry = mount::mount_entry(m.mountpoint()).expect("mounted");
        let opts: Vec<&str> = entry.mount_options.split(',').collect();
        for w in want {
            assert!(opts.contains(w), "{args:?}: {w} missing in {opts:?}");
        }
        for a in absent {
            assert!(!opts.contains(a), "{args:?}: {a} in {opts:?}");
        }
        m.unmount();
    }
}
