//! Proof that io_uring moves all file data of a mount made with the default options: runs
//! scripts/daemon-strace.sh (a mixed fio job — buffered and O_DIRECT, reads and writes, psync,
//! io_uring and mmap — under `strace -f` of the whole daemon) and requires that the daemon issued
//! io_uring_enter and not one pread64/pwrite64/preadv/pwritev. Skipped, with a note, where strace or
//! fio is missing.

use std::path::PathBuf;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_daemon_moves_file_data_through_io_uring_only() {
    if !have("strace") || !have("fio") {
        eprintln!("SKIP: needs strace and fio (scripts/setup.sh installs them)");
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(repo.join("scripts/daemon-strace.sh"))
        .env("ARSYNCFS_BIN", env!("CARGO_BIN_EXE_arsyncfs"))
        .output()
        .expect("run scripts/daemon-strace.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("OK: "),
        "daemon-strace failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
