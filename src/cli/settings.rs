//! Everything the command line decides, resolved: defaults, then `-o` lists in order, then flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fuser::{MountOption, SessionACL};

use super::args::Args;
use super::error::CliError;
use super::options;
use crate::fs::{AtimeMode, AtimeRules, CacheMode, CachePolicy, FsConfig};
use crate::reactor::{ALIGN, ReactorConfig};

/// Default FUSE session threads. Buffered writes block the thread that writes them, so reads and
/// metadata need others: 4 beat 2 by 14% and 8 by 7% on 4-job 4 KiB randrw on this 2-vCPU machine
/// (`scripts/bench/compare.sh`, 4 reps).
pub const DEFAULT_THREADS: usize = 4;

const MAX_BUFFER_SIZE: usize = 16 << 20;
const MAX_BUFFERS: usize = 65536;
const MAX_THREADS: usize = 64;
const MAX_RING_ENTRIES: u32 = 32768;

/// Mount flags set explicitly; `None` keeps the default (nodev, nosuid, exec, async). The atime
/// options live in [`FsConfig`]: the filesystem applies them (see `fs::atime`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountFlags {
    pub dev: Option<bool>,
    pub suid: Option<bool>,
    pub exec: Option<bool>,
    pub sync: Option<bool>,
    pub dirsync: bool,
}

/// The cache mode and the caching settings given explicitly (`--attr-timeout`, `--entry-timeout`,
/// `--writeback` and their -o forms): the mode sets the defaults, and an explicit setting wins over
/// it whichever came first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheChoice {
    pub mode: CacheMode,
    pub attr_timeout: Option<Duration>,
    pub entry_timeout: Option<Duration>,
    pub writeback_cache: Option<bool>,
}

impl CacheChoice {
    /// The mode's policy refined by the explicit settings.
    pub fn policy(&self) -> CachePolicy {
        let mut p = self.mode.policy();
        if let Some(t) = self.attr_timeout {
            p.attr_timeout = t;
        }
        if let Some(t) = self.entry_timeout {
            p.entry_timeout = t;
        }
        if let Some(w) = self.writeback_cache {
            p.writeback_cache = w;
        }
        p
    }
}

/// The resolved settings of one arsyncfs run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backing: PathBuf,
    pub mountpoint: PathBuf,
    /// Detach once mounted (`--daemon`), in the parent process.
    pub daemon: bool,
    /// This process is the detached child of `--daemon`.
    pub daemon_child: bool,
    pub acl: SessionACL,
    pub fsname: Option<String>,
    pub subtype: String,
    pub flags: MountFlags,
    /// The reactor's buffers, ring and spin (its defaults are `ReactorConfig`'s).
    pub reactor: ReactorConfig,
    pub threads: usize,
    pub clone_fd: bool,
    /// Start a watcher that detaches the mount if this process dies (see `auto_unmount`).
    pub auto_unmount: bool,
    /// What the kernel may cache; resolved into `fs` by [`Settings::from_args`].
    pub cache: CacheChoice,
    pub fs: FsConfig,
    pub verbosity: u8,
    pub log_file: Option<PathBuf>,
    /// `-o` options accepted and ignored (logged at debug level).
    pub ignored_options: Vec<String>,
    /// Unknown `-o` options are ignored with a warning instead of failing (mount(8) `-s`).
    pub sloppy: bool,
    /// Check everything but do not mount (mount(8) `-f`).
    pub fake: bool,
    /// Unknown `-o` options skipped because of `sloppy` (logged as warnings).
    pub unknown_options: Vec<String>,
    /// The fault plan of a fault-injection build (`--faults`, or ARSYNCFS_FAULTS).
    #[cfg(feature = "fault-injection")]
    pub faults: Option<crate::faults::Plan>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backing: PathBuf::new(),
            mountpoint: PathBuf::new(),
            daemon: false,
            daemon_child: false,
            acl: SessionACL::Owner,
            fsname: None,
            subtype: "arsyncfs".to_owned(),
            flags: MountFlags::default(),
            reactor: ReactorConfig::default(),
            threads: DEFAULT_THREADS,
            clone_fd: true,
            auto_unmount: true,
            cache: CacheChoice::default(),
            fs: FsConfig::default(),
            verbosity: 0,
            log_file: None,
            ignored_options: Vec::new(),
            sloppy: false,
            fake: false,
            unknown_options: Vec::new(),
            #[cfg(feature = "fault-injection")]
            faults: None,
        }
    }
}

impl Settings {
    /// Resolves `args`: defaults, then each `-o` list in order, then the explicit flags.
    pub fn from_args(args: Args) -> Result<Settings, CliError> {
        let mut s = Settings {
            backing: args.backing,
            mountpoint: args.mountpoint,
            sloppy: args.sloppy,
            fake: args.fake,
            ..Settings::default()
        };
        for list in &args.options {
            options::apply(&mut s, list)?;
        }
        s.daemon = args.daemon && !args.foreground && !args.daemon_child && !args.fake;
        s.daemon_child = args.daemon_child;
        if args.read_only {
            s.fs.read_only = true;
        }
        if args.allow_other {
            s.acl = SessionACL::All;
        }
        if let Some(n) = args.buffers {
            s.reactor.buffers = n;
        }
        if let Some(n) = args.buffer_size {
            s.reactor.buffer_size = n;
        }
        if let Some(n) = args.ring_entries {
            s.reactor.ring_entries = n;
        }
        if let Some(n) = args.reactors {
            s.reactor.reactors = n;
        }
        if let Some(n) = args.spin_us {
            s.reactor.spin = Duration::from_micros(n);
        }
        if let Some(n) = args.threads {
            s.threads = n;
        }
        if let Some(n) = args.max_background {
            s.fs.max_background = n;
        }
        if args.clone_fd {
            s.clone_fd = true;
        }
        if args.no_clone_fd {
            s.clone_fd = false;
        }
        if args.auto_unmount {
            s.auto_unmount = true;
        }
        if args.no_auto_unmount {
            s.auto_unmount = false;
        }
        if let Some(mode) = args.cache {
            s.cache.mode = mode;
        }
        if let Some(t) = args.attr_timeout {
            s.cache.attr_timeout = Some(t);
        }
        if let Some(t) = args.entry_timeout {
            s.cache.entry_timeout = Some(t);
        }
        if args.writeback {
            s.cache.writeback_cache = Some(true);
        }
        if args.no_writeback {
            s.cache.writeback_cache = Some(false);
        }
        if args.passthrough {
            s.fs.passthrough = true;
        }
        if args.no_passthrough {
            s.fs.passthrough = false;
        }
        s.fs.set_cache(&s.cache.policy());
        if let Some(mode) = args.buffered_writes {
            s.fs.buffered_writes = mode;
        }
        s.verbosity = s.verbosity.max(args.verbose);
        s.log_file = args.log_file;
        #[cfg(feature = "fault-injection")]
        {
            s.faults = fault_plan(args.faults)?;
        }
        s.check_ranges()?;
        super::validate::check_fs_options(&s.fs)?;
        Ok(s)
    }

    fn check_ranges(&self) -> Result<(), CliError> {
        let r = &self.reactor;
        if r.buffer_size < ALIGN
            || r.buffer_size > MAX_BUFFER_SIZE
            || !r.buffer_size.is_multiple_of(ALIGN)
        {
            return Err(CliError::usage(format!(
                "buffer size {} is not a multiple of 4K between 4K and 16M",
                r.buffer_size
            )));
        }
        if r.buffers > MAX_BUFFERS {
            return Err(CliError::usage(format!(
                "{} buffers is too many (at most {MAX_BUFFERS})",
                r.buffers
            )));
        }
        if self.threads > MAX_THREADS {
            return Err(CliError::usage(format!(
                "{} session threads is too many (at most {MAX_THREADS})",
                self.threads
            )));
        }
        if r.ring_entries > MAX_RING_ENTRIES {
            return Err(CliError::usage(format!(
                "{} ring entries is too many (at most {MAX_RING_ENTRIES})",
                r.ring_entries
            )));
        }
        Ok(())
    }

    /// The fuser configuration for mounting `backing` (canonical) with these settings.
    pub fn fuser_config(&self, backing: &Path) -> fuser::Config {
        let mut opts = vec![
            MountOption::FSName(
                self.fsname
                    .clone()
                    .unwrap_or_else(|| backing.to_string_lossy().into_owned()),
            ),
            // As a kernel option, so that the mount's type reads fuse.<subtype> (fuser's own
            // Subtype only names the source when mounting directly).
            MountOption::CUSTOM(format!("subtype={}", self.subtype)),
            // The filesystem relies on the kernel's permission checks (it runs as root).
            MountOption::DefaultPermissions,
            if self.fs.read_only {
                MountOption::RO
            } else {
                MountOption::RW
            },
        ];
        let f = &self.flags;
        let pairs = [
            (f.dev, MountOption::Dev, MountOption::NoDev),
            (f.suid, MountOption::Suid, MountOption::NoSuid),
            (f.exec, MountOption::Exec, MountOption::NoExec),
            (f.sync, MountOption::Sync, MountOption::Async),
        ];
        for (choice, yes, no) in pairs {
            match choice {
                Some(true) => opts.push(yes),
                Some(false) => opts.push(no),
                None => {}
            }
        }
        if f.dirsync {
            opts.push(MountOption::DirSync);
        }
        // The only atime flag fuser passes; strictatime and nodiratime are set once mounted
        // (`mount_attrs_after_mount`). The mount's flags only show in mountinfo: the kernel leaves
        // access times on FUSE to the daemon.
        if self.fs.atime == AtimeMode::NoAtime {
            opts.push(MountOption::NoAtime);
        }
        let mut config = fuser::Config::default();
        config.mount_options = opts;
        config.acl = self.acl;
        config.n_threads = Some(self.threads);
        config.clone_fd = self.clone_fd && self.threads > 1;
        config
    }

    /// The `MOUNT_ATTR_*` bits to set and clear on the mount once it is up, for the atime options
    /// fuser cannot pass (strictatime, nodiratime); `None` when there are none.
    pub fn mount_attrs_after_mount(&self) -> Option<(u64, u64)> {
        let strict = self.fs.atime == AtimeMode::Strictatime;
        let nodiratime = !self.fs.diratime && self.fs.atime != AtimeMode::NoAtime;
        (strict || nodiratime)
            .then(|| AtimeRules::new(self.fs.atime, self.fs.diratime).mount_attrs())
    }
}

/// The fault plan from `--faults SPEC`, else from the environment's ARSYNCFS_FAULTS.
#[cfg(feature = "fault-injection")]
fn fault_plan(flag: Option<String>) -> Result<Option<crate::faults::Plan>, CliError> {
    let spec = flag.or_else(|| std::env::var(crate::faults::ENV).ok());
    match spec.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(spec) => crate::faults::Plan::parse(spec)
            .map(Some)
            .map_err(|e| CliError::usage(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<Settings, CliError> {
        let args = Args::try_parse_from(std::iter::once("arsyncfs").chain(argv.iter().copied()))
            .map_err(|e| CliError::usage(e.to_string()))?;
        Settings::from_args(args)
    }

    #[test]
    fn defaults() {
        let s = parse(&["/a", "/b"]).unwrap();
        assert_eq!(s.threads, 4);
        assert_eq!(s.reactor, ReactorConfig::default());
        assert!(s.clone_fd && !s.daemon && !s.fs.read_only);
        let c = s.fuser_config(Path::new("/a"));
        assert_eq!(c.n_threads, Some(4));
        assert!(c.clone_fd);
        assert!(c.mount_options.contains(&MountOption::FSName("/a".into())));
        assert!(
            c.mount_options
                .contains(&MountOption::CUSTOM("subtype=arsyncfs".into()))
        );
        assert!(c.mount_options.contains(&MountOption::DefaultPermissions));
    }

    #[test]
    fn flags_override_o() {
        let s = parse(&[
            "-o",
            "threads=4,buffers=8,writeback,buffered_writes=inline",
            "--threads",
            "1",
            "--no-writeback",
            "--buffered-writes",
            "reactor",
            "--read-only",
            "/a",
            "/b",
        ])
        .unwrap();
        assert_eq!(s.threads, 1);
        assert_eq!(s.reactor.buffers, 8);
        assert!(!s.fs.writeback_cache);
        assert_eq!(s.cache.writeback_cache, Some(false));
        assert_eq!(s.fs.buffered_writes, crate::fs::BufferedWrites::Reactor);
        assert!(s.fs.read_only);
        let c = s.fuser_config(Path::new("/a"));
        assert!(!c.clone_fd, "clone_fd is pointless with one thread");
        assert!(c.mount_options.contains(&MountOption::RO));
    }

    /// The help text writes the reactor's and the filesystem's defaults out; they must be
    /// `ReactorConfig`'s and `FsConfig`'s.
    #[test]
    fn help_states_the_configs_defaults() {
        use clap::CommandFactory;
        let d = ReactorConfig::default();
        let command = Args::command();
        let help = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_help().unwrap().to_string()
        };
        assert!(d.buffer_size.is_multiple_of(1 << 20));
        for (id, default) in [
            ("buffers", d.buffers.to_string()),
            ("buffer_size", format!("{}M", d.buffer_size >> 20)),
            ("ring_entries", d.ring_entries.to_string()),
            ("reactors", d.reactors.to_string()),
            ("spin_us", d.spin.as_micros().to_string()),
            (
                "max_background",
                FsConfig::default().max_background.to_string(),
            ),
        ] {
            let help = help(id);
            assert!(
                help.ends_with(&format!("[default: {default}]")),
                "{id}: {help}"
            );
        }
    }

    /// A mode sets every caching setting; an explicit one wins, as a flag or in -o, before or
    /// after the mode.
    #[test]
    fn cache_modes_and_explicit_settings() {
        let caching = |s: &Settings| {
            let f = &s.fs;
            (
                f.attr_timeout,
                f.entry_timeout,
                f.writeback_cache,
                f.keep_cache,
                f.direct_io,
            )
        };
        let of = |p: CachePolicy| {
            (
                p.attr_timeout,
                p.entry_timeout,
                p.writeback_cache,
                p.keep_cache,
                p.direct_io,
            )
        };
        let defaults = FsConfig::default();
        assert_eq!(
            caching(&parse(&["/a", "/b"]).unwrap()),
            of(CacheMode::Auto.policy())
        );
        assert_eq!(
            (
                defaults.attr_timeout,
                defaults.writeback_cache,
                defaults.direct_io
            ),
            (Duration::from_secs(1), false, false)
        );
        for mode in CacheMode::ALL {
            let flag = parse(&["--cache", mode.name(), "/a", "/b"]).unwrap();
            assert_eq!(caching(&flag), of(mode.policy()), "--cache {mode}");
            let o = parse(&["-o", &format!("cache={mode}"), "/a", "/b"]).unwrap();
            assert_eq!(caching(&o), of(mode.policy()), "-o cache={mode}");
        }
        let day = Duration::from_secs(86_400);
        for argv in [
            &["--cache", "never", "--attr-timeout", "2", "--writeback"][..],
            &["--attr-timeout", "2", "--writeback", "--cache", "never"],
            &["-o", "attr_timeout=2,writeback,cache=never"],
            &["-o", "cache=never,writeback", "--attr-timeout", "2"],
            &["--writeback", "-o", "attr_timeout=2", "-o", "cache=never"],
        ] {
            let s = parse(&[argv, &["/a", "/b"]].concat()).unwrap();
            assert_eq!(
                caching(&s),
                (Duration::from_secs(2), Duration::ZERO, true, false, true),
                "{argv:?}"
            );
        }
        let s = parse(&[
            "-o",
            "cache=always,entry_timeout=0.5",
            "--no-writeback",
            "/a",
            "/b",
        ]);
        assert_eq!(
            caching(&s.unwrap()),
            (day, Duration::from_millis(500), false, true, false)
        );
        // A flag wins over the same setting in -o, as for every other option.
        let s = parse(&["--attr-timeout", "3", "-o", "attr_timeout=4", "/a", "/b"]).unwrap();
        assert_eq!(s.fs.attr_timeout, Duration::from_secs(3));
        assert!(parse(&["--cache", "sometimes", "/a", "/b"]).is_err());
        assert!(parse(&["-o", "cache=", "/a", "/b"]).is_err());
    }

    /// The help text writes each mode's values out; they must be the modes' policies.
    #[test]
    fn help_states_each_cache_modes_values() {
        use clap::CommandFactory;
        let command = Args::command();
        let help = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap();
            arg.get_help().unwrap().to_string()
        };
        let [auto, always, never] = CacheMode::ALL.map(CacheMode::policy);
        let secs = |d: Duration| d.as_secs_f64().to_string();
        let timeouts = format!(
            "[default: from --cache: {} (auto), {} (always), {} (never)]",
            secs(auto.attr_timeout),
            secs(always.attr_timeout),
            secs(never.attr_timeout)
        );
        assert_eq!(auto.attr_timeout, auto.entry_timeout);
        assert_eq!(always.attr_timeout, always.entry_timeout);
        assert_eq!(never.attr_timeout, never.entry_timeout);
        for id in ["attr_timeout", "entry_timeout"] {
            assert!(help(id).ends_with(&timeouts), "{id}: {}", help(id));
        }
        let on = |b: bool| if b { "on" } else { "off" };
        let writeback = format!(
            "[default: from --cache: {} (auto), {} (always), {} (never)]",
            on(auto.writeback_cache),
            on(always.writeback_cache),
            on(never.writeback_cache)
        );
        assert!(
            help("writeback").ends_with(&writeback),
            "{}",
            help("writeback")
        );
        let cache = help("cache");
        assert!(cache.ends_with("[default: auto]"), "{cache}");
        assert!(cache.contains(&format!("{} s timeouts", secs(always.attr_timeout))));
        assert!(cache.contains(&format!("cached for {} s", secs(auto.attr_timeout))));
        for mode in CacheMode::ALL {
            assert!(cache.contains(&format!("`{mode}`")), "{cache}");
        }
        let long = command.clone().render_long_help().to_string();
        assert!(long.contains("--cache <MODE>"), "{long}");
        assert!(long.contains("cache=MODE"), "{long}");
    }

    #[test]
    fn atime_options_reach_the_filesystem_and_the_mount() {
        let s = parse(&["/a", "/b"]).unwrap();
        assert_eq!((s.fs.atime, s.fs.diratime), (AtimeMode::Relatime, true));
        assert_eq!(s.mount_attrs_after_mount(), None);
        let s = parse(&["-o", "noatime", "/a", "/b"]).unwrap();
        assert_eq!(s.fs.atime, AtimeMode::NoAtime);
        let c = s.fuser_config(Path::new("/a"));
        assert!(c.mount_options.contains(&MountOption::NoAtime));
        assert_eq!(s.mount_attrs_after_mount(), None);
        let s = parse(&["-o", "strictatime,nodiratime", "/a", "/b"]).unwrap();
        assert_eq!((s.fs.atime, s.fs.diratime), (AtimeMode::Strictatime, false));
        let c = s.fuser_config(Path::new("/a"));
        assert!(!c.mount_options.contains(&MountOption::NoAtime));
        assert!(s.mount_attrs_after_mount().is_some());
        let s = parse(&["-o", "nodiratime", "/a", "/b"]).unwrap();
        assert!(s.mount_attrs_after_mount().is_some());
    }

    #[test]
    fn ranges() {
        assert!(parse(&["--buffer-size", "1000", "/a", "/b"]).is_err());
        assert!(parse(&["--buffer-size", "32M", "/a", "/b"]).is_err());
        assert!(parse(&["--threads", "65", "/a", "/b"]).is_err());
        assert!(parse(&["--ring-entries", "65536", "/a", "/b"]).is_err());
        assert!(parse(&["-o", "buffers=0", "/a", "/b"]).is_err());
        assert!(parse(&["--buffer-size", "256K", "/a", "/b"]).is_ok());
    }

    #[test]
    fn passthrough_excludes_the_writeback_cache() {
        assert!(
            parse(&["--passthrough", "/a", "/b"])
                .unwrap()
                .fs
                .passthrough
        );
        for argv in [
            &["--passthrough", "--writeback", "/a", "/b"][..],
            &["-o", "writeback,passthrough", "/a", "/b"],
            &["-o", "passthrough", "--writeback", "/a", "/b"],
        ] {
            let e = parse(argv).unwrap_err();
            assert_eq!(e.failure, super::super::error::Failure::Usage, "{argv:?}");
            assert!(e.message.contains("writeback"), "{}", e.message);
        }
        // The later choice wins before the check.
        let s = parse(&["--passthrough", "--writeback", "--no-writeback", "/a", "/b"]).unwrap();
        assert!(s.fs.passthrough && !s.fs.writeback_cache);
    }

    #[test]
    fn daemon_and_foreground() {
        assert!(parse(&["--daemon", "/a", "/b"]).unwrap().daemon);
        assert!(!parse(&["--daemon", "-f", "/a", "/b"]).unwrap().daemon);
        let child = parse(&["--daemon-child", "--daemon", "/a", "/b"]).unwrap();
        assert!(!child.daemon && child.daemon_child);
    }
}
