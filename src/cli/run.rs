//! One mount's life: check, start the reactor, mount, serve until a signal or an external unmount,
//! unmount, drain the reactor.

use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use crossbeam_channel::{Receiver, select};

use super::auto_unmount;
use super::daemon;
use super::error::{CliError, Failure};
use super::mountinfo::{self, MountEntry};
use super::publish::Publication;
use super::settings::Settings;
use super::signals;
use super::systemd;
use super::validate;
use crate::fs::{FuseReplies, PassthroughFs};
use crate::reactor::Reactor;
use crate::sys::process::unmount;

/// How unmounting went.
enum Unmounted {
    /// The mount is gone; the session threads see the end and stop.
    Clean,
    /// The mount was busy and has been detached from the namespace.
    Detached,
    /// It was not (or no longer) our mount.
    NotOurs,
}

fn reactor_error(e: io::Error) -> CliError {
    let failure = if e.kind() == io::ErrorKind::InvalidInput {
        Failure::Usage
    } else {
        Failure::IoUring
    };
    CliError::new(failure, e.to_string())
}

/// Runs arsyncfs in this process (the foreground mode, and the daemon child). The caller must exit
/// the process when this returns: if the mount was busy it has only been detached, and the session
/// threads still hold /dev/fuse; exiting closes it, which aborts the connection for the remaining
/// users (as libfuse does).
pub fn run(settings: &Settings, signals: &Receiver<i32>) -> Result<(), CliError> {
    let paths = validate::check_paths(&settings.backing, &settings.mountpoint)?;
    validate::check_dev_fuse()?;
    validate::check_passthrough_allowed(&settings.fs)?;
    for opt in &settings.ignored_options {
        tracing::debug!("ignoring mount option '{opt}'");
    }
    for opt in &settings.unknown_options {
        tracing::warn!("ignoring unknown mount option '{opt}' (sloppy)");
    }
    if settings.fake {
        tracing::info!("fake mount: everything checked, not mounting");
        return Ok(());
    }

    #[cfg(feature = "fault-injection")]
    if let Some(plan) = &settings.faults {
        crate::faults::install(plan).map_err(|e| CliError::usage(e.to_string()))?;
        tracing::warn!(?plan, "fault injection: operations fail on purpose");
    }
    let reactor = Reactor::<FuseReplies>::start(settings.reactor).map_err(reactor_error)?;
    let fs = match PassthroughFs::new(&paths.backing, settings.fs.clone(), reactor.handle()) {
        Ok(fs) => fs,
        Err(e) => {
            reactor.shutdown();
            return Err(CliError::new(
                Failure::Backing,
                format!("cannot open backing directory: {e}"),
            ));
        }
    };
    if let Ok(sig) = signals.try_recv() {
        tracing::info!("{} before mounting: not mounting", signals::name(sig));
        drop(fs);
        reactor.shutdown();
        return Ok(());
    }

    let config = settings.fuser_config(&paths.backing);
    let kernel_cache = fs.kernel_cache();
    let observer = fs.observer();
    // Returns once the kernel's INIT has been answered: the mount is live.
    let session = match fuser::spawn_mount(fs, &paths.mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            reactor.shutdown();
            return Err(CliError::new(
                Failure::Fuse,
                format!("cannot mount on '{}': {e}", paths.mountpoint.display()),
            ));
        }
    };
    kernel_cache.connect(session.notifier());
    // Replies of direct writes wait on the cache's own thread for their invalidation; every wait
    // for "all answered" below covers them too.
    let answered = |limit: std::time::Duration| {
        let start = std::time::Instant::now();
        reactor.wait_answered(limit)
            && kernel_cache.wait_idle(limit.saturating_sub(start.elapsed()))
    };
    if let Some((set, clear)) = settings.mount_attrs_after_mount()
        && let Err(e) = crate::sys::mount::set_mount_attrs(&paths.mountpoint, set, clear)
    {
        // Only what mountinfo shows: the filesystem applies the atime options either way.
        tracing::warn!("cannot show the atime options on the mount's flags: {e}");
    }
    let ours = mountinfo::find(&paths.mountpoint).ok().flatten();
    // Before readiness is reported: once `--daemon` returns, `arsyncfs stats` works.
    let publication = Publication::start(
        settings,
        (&paths.backing, &paths.mountpoint),
        ours.as_ref(),
        observer,
        reactor.handle(),
    );
    // Kept until the process exits, whichever way: its end wakes the watcher.
    let _watcher = settings
        .auto_unmount
        .then(|| start_watcher(settings, &paths.mountpoint, ours.as_ref()))
        .flatten();
    tracing::info!(
        backing = %paths.backing.display(),
        mountpoint = %paths.mountpoint.display(),
        threads = settings.threads,
        cache = %settings.cache.mode,
        buffers = settings.reactor.buffers,
        buffer_size = settings.reactor.buffer_size,
        passthrough = settings.fs.passthrough,
        "mounted"
    );
    let mut ready = format!(
        "READY=1\nSTATUS=Serving {} on {}",
        paths.backing.display(),
        paths.mountpoint.display()
    );
    if settings.daemon_child {
        // Not systemd's main process: tell it who serves the mount (NotifyAccess=all needed).
        ready.push_str(&format!("\nMAINPID={}", std::process::id()));
    }
    systemd::notify_or_warn(&ready);
    if settings.daemon_child
        && let Err(e) = daemon::notify_ready()
    {
        tracing::warn!("could not report readiness to the parent: {e}");
    }

    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("arsyncfs-session".into())
        .spawn(move || {
            let mut session = session;
            let guard = std::mem::replace(&mut session.guard, std::thread::spawn(|| Ok(())));
            // Dropping the session would make fuser unmount the mount point once more, although
            // the mount is gone by then (its liveness check in 0.18 answers "mounted" for a dead
            // connection too), and it could hit a new mount at the same path. Leak it instead:
            // the process is about to exit.
            std::mem::forget(session);
            let result = guard
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a FUSE session thread panicked")));
            let _ = done_tx.send(result);
        })
        .map_err(|e| CliError::new(Failure::Other, format!("cannot start a thread: {e}")))?;

    select! {
        recv(done_rx) -> result => {
            // Unmounted from outside (or the session failed).
            tracing::info!("the mount went away; stopping");
            systemd::notify_or_warn("STOPPING=1\nSTATUS=Unmounted from outside; stopping");
            remove_leftover(&paths.mountpoint, ours.as_ref());
            stop_reactors(reactor);
            publication.finish();
            match result {
                Ok(Err(e)) => Err(CliError::new(
                    Failure::Other,
                    format!("the FUSE session ended with an error: {e}"),
                )),
                _ => Ok(()),
            }
        }
        recv(signals) -> sig => {
            let name = sig.map(signals::name).unwrap_or("signal");
            tracing::info!("{name}: unmounting {}", paths.mountpoint.display());
            systemd::notify_or_warn(&format!(
                "STOPPING=1\nSTATUS={name}: unmounting {}",
                paths.mountpoint.display()
            ));
            // Requests the kernel sends in the background (the RELEASE after a close) may still be
            // in the reactor: unmounting aborts them, and their answers would find no request.
            if !answered(std::time::Duration::from_secs(1)) {
                tracing::debug!("requests still unanswered after 1 s; unmounting anyway");
            }
            match unmount_ours(&paths.mountpoint, ours.as_ref()) {
                Unmounted::Clean | Unmounted::NotOurs => {
                    // The session threads finish the requests they hold and stop.
                    select! {
                        recv(done_rx) -> result => {
                            if let Ok(Err(e)) = result {
                                tracing::warn!("the FUSE session ended with an error: {e}");
                            }
                        }
                        recv(signals) -> _ => {
                            publication.finish();
                            return Err(CliError::new(
                                Failure::Other,
                                "second signal: exiting without waiting for the session to end",
                            ));
                        }
                    }
                    stop_reactors(reactor);
                    publication.finish();
                    Ok(())
                }
                Unmounted::Detached => {
                    tracing::warn!(
                        "{} was busy: detached it; its remaining users get ENOTCONN",
                        paths.mountpoint.display()
                    );
                    // Answer what is in flight, then let process exit abort the connection.
                    stop_reactors(reactor);
                    kernel_cache.wait_idle(std::time::Duration::from_secs(1));
                    publication.finish();
                    Ok(())
                }
            }
        }
    }
}

/// Stops the reactors, each once it answered every request it took, and logs (`-v`) their counters:
/// the pools' balance (taken == returned), the requests sent to them and answered (equal: each
/// answered once), and in fault-injection builds the faults injected per kind.
fn stop_reactors(reactor: Reactor<FuseReplies>) {
    let handle = reactor.handle();
    reactor.shutdown();
    let stats = handle.stats();
    #[cfg(feature = "fault-injection")]
    if let Some(faults) = crate::faults::injected() {
        tracing::info!(reactor = ?stats, ?faults, "reactors drained");
        return;
    }
    tracing::info!(reactor = ?stats, "reactors drained");
}

/// Starts the auto_unmount watcher of our mount; a failure leaves the mount without one.
fn start_watcher(
    settings: &Settings,
    mountpoint: &Path,
    ours: Option<&MountEntry>,
) -> Option<auto_unmount::Watcher> {
    let Some(ours) = ours else {
        tracing::warn!("auto_unmount: cannot find our mount in mountinfo; no watcher");
        return None;
    };
    // Its one message goes where ours go: the log file, or stderr unless that is about to be
    // closed (the --daemon child).
    let stderr = match &settings.log_file {
        Some(path) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null()),
        None if settings.daemon_child => Stdio::null(),
        None => Stdio::inherit(),
    };
    match auto_unmount::start(mountpoint, ours.id, stderr) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("auto_unmount: cannot start the watcher: {e}");
            None
        }
    }
}

/// Whether the topmost mount at `mountpoint` is still the one we made.
fn is_ours(mountpoint: &Path, ours: Option<&MountEntry>) -> bool {
    match (mountinfo::find(mountpoint), ours) {
        (Ok(Some(now)), Some(ours)) => now.id == ours.id,
        (Ok(Some(_)), None) => true, // could not identify ours: assume it is
        (Ok(None), _) => false,
        (Err(_), _) => true,
    }
}

fn unmount_ours(mountpoint: &Path, ours: Option<&MountEntry>) -> Unmounted {
    if !is_ours(mountpoint, ours) {
        return Unmounted::NotOurs;
    }
    match unmount_patiently(mountpoint) {
        Ok(()) => Unmounted::Clean,
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => match unmount(mountpoint, true) {
            Ok(()) => Unmounted::Detached,
            Err(e) => {
                tracing::error!("cannot detach {}: {e}", mountpoint.display());
                Unmounted::Detached
            }
        },
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Unmounted::NotOurs,
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            // Not root: the setuid helper can unmount what the user mounted.
            if fusermount_unmount(mountpoint, false) {
                Unmounted::Clean
            } else if fusermount_unmount(mountpoint, true) {
                Unmounted::Detached
            } else {
                tracing::error!("cannot unmount {}: {e}", mountpoint.display());
                Unmounted::Detached
            }
        }
        Err(e) => {
            tracing::error!("cannot unmount {}: {e}", mountpoint.display());
            Unmounted::Detached
        }
    }
}

/// Unmounts cleanly; while the mount is busy, tries again for a short while first: a mount held for
/// an instant (a program closing its last file of the mount as the signal came, or a child another
/// thread forked, holding copies of its parent's descriptors until it execs) is free a moment later.
fn unmount_patiently(mountpoint: &Path) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        match unmount(mountpoint, false) {
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

pub(super) fn fusermount_unmount(mountpoint: &Path, lazy: bool) -> bool {
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u").arg("-q");
    if lazy {
        cmd.arg("-z");
    }
    cmd.arg("--")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    matches!(cmd.status(), Ok(s) if s.success())
}

/// After the session ended by itself: if our mount is still there (the session failed rather than
/// being unmounted), detach it so no dead mount is left behind.
fn remove_leftover(mountpoint: &Path, ours: Option<&MountEntry>) {
    if ours.is_some() && is_ours(mountpoint, ours) {
        tracing::warn!("detaching the dead mount at {}", mountpoint.display());
        if unmount(mountpoint, true).is_err() {
            let _ = fusermount_unmount(mountpoint, true);
        }
    }
}
