//! Proof that io_uring does the reactor's I/O: runs scripts/reactor-strace.sh on the (debug build
//! of the) reactor_bench example. Skipped, with a note, where strace or python3 is missing.

use std::path::PathBuf;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn the_reactor_thread_does_its_io_through_io_uring_only() {
    if !have("strace") || !have("python3") {
        eprintln!("SKIP: needs strace and python3");
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The example in the test profile (cheap: the library is built already).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "--example",
            "reactor_bench",
            "--message-format=json",
        ])
        .current_dir(&repo)
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "building the example failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    // The executable's path, from cargo's own report.
    let stdout = String::from_utf8_lossy(&build.stdout);
    let exe = stdout
        .lines()
        .filter(|l| l.contains("\"reactor_bench\"") && l.contains("\"executable\":\""))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = start + l[start..].find('"')?;
            Some(l[start..end].to_string())
        })
        .expect("cargo reports the example's executable");
    let out = Command::new(repo.join("scripts/reactor-strace.sh"))
        .env("REACTOR_BENCH_BIN", &exe)
        .output()
        .expect("the script runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "reactor-strace.sh failed:\n{text}");
    assert!(text.contains("OK: reactor thread"), "{text}");
}
