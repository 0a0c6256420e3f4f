//! The command line, as clap sees it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use super::error::EXIT_CODES_HELP;
use super::values::{
    parse_buffered_writes, parse_cache_mode, parse_count, parse_count_as, parse_reactors,
    parse_seconds, parse_size,
};
use crate::fs::{BufferedWrites, CacheMode};

const ABOUT: &str =
    "Mount a passthrough view of BACKING on MOUNTPOINT (FUSE, with file data moved on io_uring)";

const LONG_ABOUT: &str = "\
Mount a passthrough view of the directory BACKING on MOUNTPOINT. Everything done under MOUNTPOINT
happens to the files under BACKING; file data moves through io_uring with a bounded pool of buffers.

Runs in the foreground by default. SIGINT, SIGTERM or SIGHUP unmount cleanly: in-flight requests are
answered, the mount goes away, and arsyncfs exits 0. If the mount is busy (open files, a shell's
current directory), it is detached lazily, like `umount -l`, and those users get ENOTCONN afterwards.
A second signal exits at once. Unmounting from outside (`umount MOUNTPOINT` or `fusermount3 -u
MOUNTPOINT`) also ends arsyncfs with status 0. If arsyncfs is killed (SIGKILL, the OOM killer), a
watcher process it started detaches the dead mount (see --no-auto-unmount).

`arsyncfs stats MOUNTPOINT` shows what a running mount is doing: requests, errors and latency per
operation, bytes moved, the reactors' counters (see `arsyncfs stats --help`).";

/// The `-o` options, as `--help` ends with them (and the man page's MOUNT OPTIONS section: entries
/// are a term indented by two spaces and its description indented further, then paragraphs).
pub const OPTIONS_HELP: &str = "\
Mount options (-o, comma-separated, repeatable; a later value wins):
  ro, rw                         read-only or read-write view (default rw)
  allow_other                    let every user use the mount (default: only the mounting user)
  allow_root                     let the mounting user and root use the mount
  default_permissions            the kernel checks permissions (always on)
  fsname=NAME                    source shown in /proc/mounts (default: the backing path)
  subtype=NAME                   type shown as fuse.NAME (default arsyncfs)
  dev, nodev, suid, nosuid, exec, noexec, sync, async, dirsync
                                 the usual mount flags (default nodev,nosuid)
  relatime, noatime, strictatime, atime, norelatime, nostrictatime, diratime, nodiratime
                                 when reads update access times, as on a local filesystem
                                 (default relatime)
  buffers=N, buffer_size=SIZE, reactors=N, ring_entries=N, spin_us=N, threads=N, max_background=N,
  clone_fd, noclone_fd, auto_unmount, noauto_unmount, cache=MODE, attr_timeout=SECS,
  entry_timeout=SECS, writeback, nowriteback, passthrough, nopassthrough, buffered_writes=MODE, debug
                                 same as the flags of the same name above (debug = -vv)
  defaults, auto, noauto, user, users, nouser, owner, group, _netdev, nofail, lazytime,
  nolazytime, iversion, noiversion, silent, loud, user=NAME, comment=..., x-...
                                 accepted and ignored, so that an fstab line works

fstab: install the binary as mount(8)'s helper too, `ln -s /usr/local/bin/arsyncfs
/sbin/mount.fuse.arsyncfs`; run under that name it takes mount(8)'s helper arguments (-s sloppy,
-f fake, -n, -v, -o, -t) and goes to the background once the mount is live. Then a line like
  /srv/data  /mnt/view  fuse.arsyncfs  defaults,allow_other  0 0
works with `mount /mnt/view` and `umount /mnt/view`.";

/// `arsyncfs [OPTIONS] BACKING MOUNTPOINT`
#[derive(Parser, Debug, Default)]
#[command(
    name = "arsyncfs",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = "Run `arsyncfs --help` for the -o options and exit codes.",
    after_long_help = format!("{OPTIONS_HELP}\n\n{EXIT_CODES_HELP}"),
)]
pub struct Args {
    /// The directory to show (the backing tree).
    #[arg(value_name = "BACKING")]
    pub backing: PathBuf,

    /// The directory where the view appears. It must not be inside BACKING, nor BACKING inside it.
    #[arg(value_name = "MOUNTPOINT")]
    pub mountpoint: PathBuf,

    /// Mount options, comma-separated, in the mount(8) style (listed at the end of --help).
    #[arg(short = 'o', value_name = "OPT[,OPT...]", action = ArgAction::Append)]
    pub options: Vec<String>,

    /// Go to the background once the mount is ready. The command then exits 0, or with the error
    /// and its exit code if mounting failed. The daemon's stdin, stdout and stderr go to /dev/null
    /// (use --log-file to keep its log).
    #[arg(long, visible_alias = "background")]
    pub daemon: bool,

    /// Stay in the foreground (the default; cancels --daemon).
    #[arg(short = 'f', long)]
    pub foreground: bool,

    /// Read-only view: every change fails with EROFS (same as -o ro).
    #[arg(long)]
    pub read_only: bool,

    /// Let every user use the mount, not only the one who mounted it (same as -o allow_other).
    #[arg(long)]
    pub allow_other: bool,

    /// I/O buffers in the reactor's pool: how many reads and O_DIRECT writes can be in flight at once.
    /// Memory use is at most BUFFERS x BUFFER_SIZE. [default: 128]
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub buffers: Option<usize>,

    /// Size of one I/O buffer (suffixes K, M: e.g. 256K, 1M): the largest read or write the kernel
    /// sends in one request. A multiple of 4K, from 4K to 16M. [default: 1M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub buffer_size: Option<usize>,

    /// Reactor threads (each with its own io_uring and share of the buffers), pinned one per CPU; a
    /// request goes to the reactor of the CPU its session thread runs on. 0: one per CPU. More than
    /// the CPUs: one per CPU. [default: 1]
    #[arg(long, value_name = "N", value_parser = parse_reactors)]
    pub reactors: Option<usize>,

    /// Submission queue entries of the io_uring instance (1 to 32768). [default: 256]
    #[arg(long, value_name = "N", value_parser = parse_count_as::<u32>)]
    pub ring_entries: Option<u32>,

    /// Microseconds the reactor keeps looking for new work before it sleeps; a waking thread costs
    /// tens of microseconds on some virtual machines, a spinning one costs CPU. 0 sleeps at once.
    /// [default: 50]
    #[arg(long, value_name = "MICROS")]
    pub spin_us: Option<u64>,

    /// FUSE session threads reading requests from the kernel (1 to 64); metadata operations run on
    /// them, and buffered writes. [default: 4]
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub threads: Option<usize>,

    /// Background requests (readahead, asynchronous direct I/O, writeback) the kernel may send
    /// before it makes further ones wait (1 to 65535). [default: 64]
    #[arg(long, value_name = "N", value_parser = parse_count_as::<u16>)]
    pub max_background: Option<u16>,

    /// Give each session thread its own /dev/fuse descriptor (less contention). [default: on]
    #[arg(long, overrides_with = "no_clone_fd")]
    pub clone_fd: bool,

    /// Let all session threads share one /dev/fuse descriptor.
    #[arg(long, overrides_with = "clone_fd")]
    pub no_clone_fd: bool,

    /// If arsyncfs dies without unmounting (SIGKILL, the OOM killer, a crash), a small watcher
    /// process it started detaches the dead mount, which would otherwise answer every program
    /// with ENOTCONN until unmounted by hand. [default: on]
    #[arg(long, overrides_with = "no_auto_unmount")]
    pub auto_unmount: bool,

    /// Start no watcher: a dead daemon leaves its mount behind (ENOTCONN) until `umount` or
    /// `fusermount3 -u`.
    #[arg(long, overrides_with = "auto_unmount")]
    pub no_auto_unmount: bool,

    /// What the kernel may cache, by who else changes BACKING. `auto`: others do now and then;
    /// attributes and names are cached for 1 s, a file's pages while its mtime and size are
    /// unchanged. `always`: nothing but this mount does; 86400 s timeouts and the writeback cache,
    /// fastest, but changes made beside the mount may stay unseen. `never`: others write to it all
    /// the time; nothing is cached, every read, write, lookup and stat reaches BACKING, slowest.
    /// --attr-timeout, --entry-timeout and --writeback refine a mode. [default: auto]
    #[arg(long, value_name = "MODE", value_parser = parse_cache_mode)]
    pub cache: Option<CacheMode>,

    /// Seconds the kernel may cache file attributes (0 disables; fractions allowed).
    /// [default: from --cache: 1 (auto), 86400 (always), 0 (never)]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub attr_timeout: Option<Duration>,

    /// Seconds the kernel may cache name lookups (0 disables; fractions allowed).
    /// [default: from --cache: 1 (auto), 86400 (always), 0 (never)]
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub entry_timeout: Option<Duration>,

    /// Enable the FUSE writeback cache: the kernel gathers writes and sends them in big batches.
    /// Faster writes, but the backing files see them later. [default: from --cache: off (auto),
    /// on (always), off (never)]
    #[arg(long, overrides_with = "no_writeback")]
    pub writeback: bool,

    /// Disable the FUSE writeback cache: every write goes through to the backing file.
    #[arg(long, overrides_with = "writeback")]
    pub no_writeback: bool,

    /// Kernel passthrough (Linux 6.9+): the kernel reads and writes the backing files itself,
    /// at native speed; the daemon only opens and closes them. Needs CAP_SYS_ADMIN; excludes
    /// --writeback. [default: off]
    #[arg(long, overrides_with = "no_passthrough")]
    pub passthrough: bool,

    /// Serve every read and write through the daemon's reactor (the default).
    #[arg(long, overrides_with = "passthrough")]
    pub no_passthrough: bool,

    /// Who writes buffered (non-O_DIRECT) writes to the backing file: `reactor`, through io_uring
    /// like every other data operation, or `inline`, the session thread that received them, with
    /// pwrite(2) (fewest thread hops: faster for small writes a program waits for one by one).
    /// O_DIRECT writes always go through the reactor. [default: reactor]
    #[arg(long, value_name = "MODE", value_parser = parse_buffered_writes)]
    pub buffered_writes: Option<BufferedWrites>,

    /// More log output on stderr: -v info, -vv debug, -vvv trace. RUST_LOG, when set, takes
    /// precedence (e.g. RUST_LOG=arsyncfs=debug,fuser=info). [default: warnings and errors]
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Append the log to FILE instead of stderr (useful with --daemon).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Fault-injection builds only (cargo feature `fault-injection`): a fault plan, e.g.
    /// `seed=7,read=eio:0.05,write=short:0.1` (src/faults; also the environment's ARSYNCFS_FAULTS).
    #[cfg(feature = "fault-injection")]
    #[arg(long, hide = true, value_name = "SPEC")]
    pub faults: Option<String>,

    /// Internal: this process is the detached child of `--daemon`; report readiness on stdout.
    #[arg(long, hide = true)]
    pub daemon_child: bool,

    /// mount(8) `-s`: ignore unknown -o options (with a warning) instead of failing.
    #[arg(long, hide = true)]
    pub sloppy: bool,

    /// mount(8) `-f`: check everything, then exit 0 without mounting.
    #[arg(long, hide = true)]
    pub fake: bool,
}
