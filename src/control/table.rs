//! The report as a table for people: `arsyncfs stats MOUNTPOINT`, and the summary logged at
//! unmount. Scalar counters read `name: value`, one name per counter, so that a log is easy to
//! search (tests/common/mount.rs `logged_value` reads them).

use std::fmt::Write;

use super::snapshot::Report;
use super::units::{bytes, duration_ns, errno_name, per_second, uptime};
use crate::fs::OpSnapshot;
use crate::reactor::ReactorStats;

/// Width the option list is wrapped at.
const WIDTH: usize = 100;

pub fn table(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, r);
    out.push('\n');
    operations(&mut out, r);
    out.push('\n');
    counters(&mut out, r);
    out.push('\n');
    reactors(&mut out, &r.now.reactors);
    out
}

fn header(out: &mut String, r: &Report) {
    let m = r.mount;
    let _ = writeln!(
        out,
        "arsyncfs {} (pid {}) on {}, backing {}, up {}",
        m.version,
        m.pid,
        m.mountpoint.display(),
        m.backing.display(),
        uptime(r.now.uptime)
    );
    let mut line = String::from("options:");
    for (name, value) in &m.options {
        let item = format!(" {name}={value}");
        if line.len() + item.len() > WIDTH {
            let _ = writeln!(out, "{line}");
            line = " ".repeat("options:".len());
        }
        line.push_str(&item);
    }
    let _ = writeln!(out, "{line}");
}

/// `ENOENT 12, EACCES 1`, and the errors not kept apart by errno.
fn errnos(op: &OpSnapshot) -> String {
    let mut parts: Vec<String> = op
        .errnos
        .iter()
        .map(|(e, n)| format!("{} {n}", errno_name(*e)))
        .collect();
    let apart: u64 = op.errnos.iter().map(|(_, n)| n).sum();
    if op.errors > apart {
        parts.push(format!("other {}", op.errors - apart));
    }
    parts.join(", ")
}

fn operations(out: &mut String, r: &Report) {
    let rate_col = |s: &str| {
        if r.rates.is_some() {
            format!(" {s:>9}")
        } else {
            String::new()
        }
    };
    let _ = writeln!(
        out,
        "{:<16} {:>10}{} {:>8} {:>8} {:>8} {:>8}  errors by errno",
        "operation",
        "requests",
        rate_col("req/s"),
        "errors",
        "p50",
        "p99",
        "max"
    );
    let mut any = false;
    for op in r.now.fs.stats.ops.iter().filter(|o| o.started > 0) {
        any = true;
        let rate = r.rates.map_or(String::new(), |rates| {
            rate_col(&per_second(rates.of(op.op)))
        });
        let l = &op.latency;
        let answered = l.count() > 0;
        let latency = |ns: u64| {
            if answered {
                duration_ns(ns)
            } else {
                "-".to_owned()
            }
        };
        let line = format!(
            "{:<16} {:>10}{} {:>8} {:>8} {:>8} {:>8}  {}",
            op.op.name(),
            op.started,
            rate,
            op.errors,
            latency(l.quantile(0.5)),
            latency(l.quantile(0.99)),
            latency(l.max_ns),
            errnos(op)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !any {
        let _ = writeln!(out, "(no requests yet)");
    }
}

fn counters(out: &mut String, r: &Report) {
    let s = &r.now.fs.stats;
    let rate = |f: &dyn Fn(&super::snapshot::Rates) -> String| {
        r.rates
            .map_or(String::new(), |rates| format!("; {}", f(rates)))
    };
    let mib = |b: f64| format!("{:.1} MiB/s", b / (1024.0 * 1024.0));
    let _ = writeln!(
        out,
        "requests   in_flight: {}  answered: {}{}",
        s.in_flight(),
        r.now.answered(),
        r.rates.map_or(String::new(), |x| format!(
            " ({}/s)",
            per_second(x.requests)
        ))
    );
    let _ = writeln!(
        out,
        "data       reads: {}  bytes_read: {} ({}{})  largest_read: {}",
        s.reads,
        s.bytes_read,
        bytes(s.bytes_read),
        rate(&|x| mib(x.bytes_read)),
        s.largest_read
    );
    let _ = writeln!(
        out,
        "           writes: {}  bytes_written: {} ({}{})  largest_write: {}",
        s.writes,
        s.bytes_written,
        bytes(s.bytes_written),
        rate(&|x| mib(x.bytes_written)),
        s.largest_write
    );
    let _ = writeln!(
        out,
        "           inline_writes: {}  flushes: {}",
        s.inline_writes, s.flushes
    );
    let _ = writeln!(
        out,
        "           passthrough_opens: {}  passthrough_fallbacks: {}  passthrough_reads: {}  \
         passthrough_writes: {}",
        s.passthrough_opens, s.passthrough_fallbacks, s.passthrough_reads, s.passthrough_writes
    );
    let f = &r.now.fs;
    let _ = writeln!(
        out,
        "files      open_handles: {}  inodes: {}  cached_fds: {}  pinned_inodes: {}  \
         forgotten_handles: {}",
        f.open_handles, f.inodes.nodes, f.inodes.cached_fds, f.inodes.pinned, f.inodes.forgotten
    );
}

fn reactors(out: &mut String, lanes: &[ReactorStats]) {
    let _ = writeln!(
        out,
        "{:<8} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6} {:>10} {:>7}",
        "reactor",
        "requests",
        "turns",
        "req/turn",
        "sleeps",
        "wake-ups",
        "in flight",
        "buffers",
        "in use",
        "high water",
        "waits"
    );
    for (i, l) in lanes.iter().enumerate() {
        let per_turn = if l.turns == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}", l.received as f64 / l.turns as f64)
        };
        let _ = writeln!(
            out,
            "{:<8} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6} {:>10} {:>7}",
            i,
            l.received,
            l.turns,
            per_turn,
            l.sleeps,
            l.wakeups,
            l.unanswered,
            format!("{}/{}", l.pool.total, l.buffer_limit),
            l.pool.in_use,
            l.pool.high_water,
            l.pool.waits
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::snapshot::{Rates, sample};
    use std::time::Duration;

    /// The value after ` name: `, as tests/common/mount.rs `logged_value` reads it.
    fn value(text: &str, name: &str) -> u64 {
        let key = format!(" {name}: ");
        let at = text
            .find(&key)
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        text[at + key.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    }

    #[test]
    fn shows_each_operation_with_requests_and_the_counters_by_name() {
        let (mount, now) = (
            sample::mount(),
            sample::snapshot(Duration::from_secs(192), 2),
        );
        let t = table(&Report {
            mount: &mount,
            now: &now,
            rates: None,
        });
        assert!(
            t.starts_with(
                "arsyncfs 0.1.0 (pid 42) on /mnt/a \"view\"\n, backing /srv/data, up 3m 12s\n"
            ),
            "{t}"
        );
        assert!(t.contains("options: cache=auto buffers=128\n"), "{t}");
        let row = |name: &str| {
            t.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} row:\n{t}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        // requests, errors, p50 (a bucket's top), p99 and max (exact), errnos
        assert_eq!(
            row("lookup"),
            ["lookup", "3", "1", "5.1us", "1.5ms", "1.5ms", "ENOENT", "1"]
        );
        assert_eq!(row("read")[..3], ["read", "2", "0"]);
        assert_eq!(
            row("write"),
            ["write", "1", "0", "-", "-", "-"],
            "not answered yet"
        );
        assert!(
            !t.contains("\ngetattr"),
            "operations without requests are left out:\n{t}"
        );
        assert!(!t.contains("req/s"), "no rates in a single report");
        assert_eq!(value(&t, "reads"), 2);
        assert_eq!(value(&t, "writes"), 1);
        assert_eq!(value(&t, "bytes_read"), 8192);
        assert_eq!(value(&t, "in_flight"), 1);
        assert_eq!(value(&t, "inodes"), 5);
        assert_eq!(value(&t, "passthrough_opens"), 0);
        assert_eq!(
            row("0"),
            ["0", "2", "4", "0.5", "0", "0", "0", "0/64", "0", "0", "0"]
        );
        assert_eq!(row("1")[..4], ["1", "0", "0", "-"]);
    }

    #[test]
    fn with_rates_a_column_and_throughputs_appear() {
        let mount = sample::mount();
        let before = sample::snapshot(Duration::from_secs(10), 2);
        let now = sample::snapshot(Duration::from_secs(12), 12);
        let rates = Rates::between(&before, &now).unwrap();
        let t = table(&Report {
            mount: &mount,
            now: &now,
            rates: Some(&rates),
        });
        assert!(t.contains("req/s"), "{t}");
        let read = t.lines().find(|l| l.starts_with("read ")).unwrap();
        assert_eq!(
            read.split_whitespace().collect::<Vec<_>>()[..4],
            ["read", "12", "5.0", "0"]
        );
        assert!(t.contains("answered: 15 (5.0/s)"), "{t}");
        assert!(t.contains("(48.0 KiB; 0.0 MiB/s)"), "{t}");
    }

    #[test]
    fn a_fresh_mount_says_it_has_no_requests() {
        let mount = sample::mount();
        let mut now = sample::snapshot(Duration::ZERO, 0);
        for op in &mut now.fs.stats.ops {
            op.started = 0;
        }
        let t = table(&Report {
            mount: &mount,
            now: &now,
            rates: None,
        });
        assert!(t.contains("(no requests yet)"), "{t}");
    }
}
