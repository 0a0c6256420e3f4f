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
