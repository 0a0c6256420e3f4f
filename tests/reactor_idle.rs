//! An idle reactor sleeps: no spinning, no polling timer. (Alone in its test binary so that the
//! reactor thread it inspects is the only one in the process.)

#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use std::time::{Duration, Instant};

use reactor_util::{Harness, PATIENCE, new_file};

/// The reactor thread's id, found by its name (the kernel keeps 15 bytes: "arsyncfs-reacto").
fn reactor_tid() -> String {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let entry = entry.unwrap();
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == "arsyncfs-reacto" {
            found.push(entry.file_name().into_string().unwrap());
        }
    }
    assert_eq!(
        found.len(),
        1,
        "expected exactly one reactor thread: {found:?}"
    );
    found.pop().unwrap()
}

/// (state, utime + stime in clock ticks) from /proc/self/task/TID/stat.
fn thread_stat(tid: &str) -> (char, u64) {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // Fields after the parenthesised name: state is the first, utime/stime the 12th/13th.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f[0].chars().next().unwrap();
    (
        state,
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap(),
    )
}

#[test]
fn an_idle_reactor_sleeps_and_uses_no_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let (_, file) = new_file(dir.path(), "idle");
    let r = Harness::new();
    for i in 0..1000u64 {
        r.write(&file, i * 8, b"12345678").unwrap();
    }
    let tid = reactor_tid();
    // It goes to sleep once the work is done ...
    let start = Instant::now();
    while thread_stat(&tid).0 != 'S' {
        assert!(start.elapsed() < PATIENCE, "the idle reactor never slept");
        std::thread::sleep(Duration::from_millis(1));
    }
    // ... and stays asleep: no CPU time, no wake-ups of its own.
    let before = (thread_stat(&tid).1, r.h.stats());
    std::thread::sleep(Duration::from_millis(500));
    let after = (thread_stat(&tid).1, r.h.stats());
    assert!(
        after.0 - before.0 <= 5,
        "idle reactor used {} clock ticks in 500 ms",
        after.0 - before.0
    );
    assert_eq!(
        after.1.sleeps, before.1.sleeps,
        "the idle reactor woke up by itself"
    );
    assert_eq!(thread_stat(&tid).0, 'S');
    // And it still answers.
    assert_eq!(r.read(&file, 0, 8).unwrap(), b"12345678");
    r.finish();
}
