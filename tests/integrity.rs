//! Data-integrity exerciser (tests/common/exerciser.rs): one file, a long random sequence of
//! operations with a fixed seed, and an in-memory model of what the file must contain; the whole
//! file is compared with the model through the view and in the backing file every 1,000 operations.
//!
//! It runs on a plain directory (the model and the operations state POSIX) and through arsyncfs,
//! with the default settings (`--cache auto`), with the writeback cache (`--writeback`), in the
//! other cache modes (`--cache always`, `--cache never`), with kernel passthrough (`--passthrough`)
//! and with one reactor per CPU (`--reactors 0`).
//! The temp dirs must be on a disk-backed filesystem (O_DIRECT): TMPDIR, or /tmp.
//!
//! Lengths: `cargo test --release --test integrity` runs the CI form (CI_OPS operations per
//! target). ARSYNCFS_LONG=1 runs LONG_OPS (100,000) instead, as does the ignored test `long_mount`
//! (`-- --ignored`); ARSYNCFS_INTEGRITY_OPS=N sets any count, ARSYNCFS_INTEGRITY_SEED=S another
//! seed. A failure names the seed, the operation number and the last operations.

#[path = "common/exerciser.rs"]
mod exerciser;
#[path = "common/integrity_model.rs"]
mod integrity_model;
#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;

use exerciser::Exerciser;

/// Operations per target in the CI form.
const CI_OPS: u64 = 10_000;
/// Operations per target in the long form.
const LONG_OPS: u64 = 100_000;
const SEED: u64 = 0x5eed_a5f5;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = if let Some(hex) = v.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        v.parse()
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

fn ops_count(default: u64) -> u64 {
    if let Some(n) = env_u64("ARSYNCFS_INTEGRITY_OPS") {
        return n;
    }
    if std::env::var("ARSYNCFS_LONG").is_ok_and(|v| v == "1") {
        return LONG_OPS;
    }
    default
}

fn seed() -> u64 {
    env_u64("ARSYNCFS_INTEGRITY_SEED").unwrap_or(SEED)
}

// ---------------------------------------------------------------------------------------------
// Targets

fn run_plain(ops: u64) {
    let dir = tempfile::Builder::new()
        .prefix("arsyncfs-plain-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("data");
    Exerciser::new(&path, &path, seed()).run(ops);
}

fn run_mounted(args: &[&str], ops: u64) {
    let m = mount::Mounted::with_args(args);
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Exerciser::new(
            &m.mountpoint().join("data"),
            &m.backing().join("data"),
            seed(),
        )
        .run(ops)
    }));
    if let Err(panic) = run {
        eprintln!("arsyncfs {args:?} stderr:\n{}", m.stderr());
        std::panic::resume_unwind(panic);
    }
    m.unmount();
}

#[test]
fn plain() {
    run_plain(ops_count(CI_OPS));
}

#[test]
fn mount() {
    run_mounted(&[], ops_count(CI_OPS));
}

/// With the FUSE writeback cache the kernel holds written pages and sends them later: the model
/// must still hold through the view, and in the backing file after fdatasync.
#[test]
fn mount_writeback() {
    run_mounted(&["--writeback"], ops_count(CI_OPS));
}

/// One reactor per CPU: requests of one file go to whichever reactor the session thread's CPU has.
#[test]
fn mount_reactors_per_cpu() {
    run_mounted(&["--reactors", "0"], ops_count(CI_OPS));
}

/// With kernel passthrough the kernel reads and writes the backing file itself.
#[test]
fn mount_passthrough() {
    run_mounted(&["--passthrough"], ops_count(CI_OPS));
}

/// `--cache always`: a day's timeouts, the writeback cache and kept pages; the backing changes only
/// through the mount here, so the model must hold as in the default mode.
#[test]
fn mount_cache_always() {
    run_mounted(&["--cache", "always"], ops_count(CI_OPS));
}

/// `--cache never`: every read and write reaches the daemon (FOPEN_DIRECT_IO), shared mappings
/// included through the kernel's direct-I/O mmap support.
#[test]
fn mount_cache_never() {
    run_mounted(&["--cache", "never"], ops_count(CI_OPS));
}

#[test]
#[ignore = "long form: 100,000 operations (run with --ignored, or ARSYNCFS_LONG=1)"]
fn long_mount() {
    run_mounted(&[], ops_count(LONG_OPS).max(LONG_OPS));
}

#[test]
#[ignore = "long form: 100,000 operations (run with --ignored, or ARSYNCFS_LONG=1)"]
fn long_mount_writeback() {
    run_mounted(&["--writeback"], ops_count(LONG_OPS).max(LONG_OPS));
}

#[test]
#[ignore = "long form: 100,000 operations (run with --ignored, or ARSYNCFS_LONG=1)"]
fn long_mount_passthrough() {
    run_mounted(&["--passthrough"], ops_count(LONG_OPS).max(LONG_OPS));
}

#[test]
#[ignore = "long form: 100,000 operations (run with --ignored, or ARSYNCFS_LONG=1)"]
fn long_plain() {
    run_plain(ops_count(LONG_OPS).max(LONG_OPS));
}
