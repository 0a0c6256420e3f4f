//! The report in the Prometheus text format (what node_exporter's textfile collector reads):
//! counters end in `_total`, durations are seconds, and every series carries the mountpoint as a
//! label, so that the outputs of several mounts can sit side by side.

use std::fmt::Write;

use super::snapshot::Report;
use super::units::errno_name;

/// `s` as a label value: backslash, double quote and newline escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Exposition {
    out: String,
    /// `mountpoint="..."`, first label of every series.
    mount: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP arsyncfs_{name} {help}");
        let _ = writeln!(self.out, "# TYPE arsyncfs_{name} {kind}");
    }

    /// One sample of `name` with `labels` (`k="v"` pairs, already escaped) after the mountpoint.
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let sep = if labels.is_empty() { "" } else { "," };
        let _ = writeln!(
            self.out,
            "arsyncfs_{name}{{{}{sep}{labels}}} {value}",
            self.mount
        );
    }
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

pub fn prometheus(r: &Report) -> String {
    let (m, now) = (r.mount, r.now);
    let mut e = Exposition {
        out: String::new(),
        mount: format!("mountpoint=\"{}\"", label(&m.mountpoint.to_string_lossy())),
    };
    let ops: Vec<_> = now.fs.stats.ops.iter().filter(|o| o.started > 0).collect();

    let mut info = format!(
        "version=\"{}\",backing=\"{}\"",
        label(&m.version),
        label(&m.backing.to_string_lossy())
    );
    for (name, value) in &m.options {
        let _ = write!(info, ",{name}=\"{}\"", label(value));
    }
    e.family(
        "info",
        "gauge",
        "The mount's version, backing directory and options, as labels.",
    );
    e.sample("info", &info, 1);
    e.family(
        "uptime_seconds",
        "gauge",
        "Seconds since the mount was made.",
    );
    e.sample("uptime_seconds", "", now.uptime.as_secs_f64());

    e.family(
        "requests_total",
        "counter",
        "FUSE requests answered, by operation.",
    );
    for op in &ops {
        e.sample(
            "requests_total",
            &format!("op=\"{}\"", op.op.name()),
            op.answered(),
        );
    }
    e.family(
        "errors_total",
        "counter",
        "FUSE requests answered with an error, by operation and errno.",
    );
    for op in &ops {
        let mut apart = 0;
        for (errno, n) in &op.errnos {
            apart += n;
            let labels = format!("op=\"{}\",errno=\"{}\"", op.op.name(), errno_name(*errno));
            e.sample("errors_total", &labels, n);
        }
        if op.errors > apart {
            let labels = format!("op=\"{}\",errno=\"other\"", op.op.name());
            e.sample("errors_total", &labels, op.errors - apart);
        }
    }
    e.family(
        "request_duration_seconds",
        "summary",
        "Time from a request's arrival to its answer, by operation (quantiles from a histogram \
         with 4 buckets per power of two).",
    );
    for op in &ops {
        let l = &op.latency;
        let name = op.op.name();
        for q in ["0.5", "0.99"] {
            let value = seconds(l.quantile(q.parse().unwrap_or(0.5)));
            e.sample(
                "request_duration_seconds",
                &format!("op=\"{name}\",quantile=\"{q}\""),
                value,
            );
        }
        let op_label = format!("op=\"{name}\"");
        e.sample("request_duration_seconds_sum", &op_label, seconds(l.sum_ns));
        e.sample("request_duration_seconds_count", &op_label, l.count());
    }
    e.family(
        "request_duration_max_seconds",
        "gauge",
        "Longest request so far, by operation.",
    );
    for op in &ops {
        let op_label = format!("op=\"{}\"", op.op.name());
        e.sample(
            "request_duration_max_seconds",
            &op_label,
            seconds(op.latency.max_ns),
        );
    }
    e.family(
        "requests_in_flight",
        "gauge",
        "Requests arrived and not answered yet.",
    );
    e.sample("requests_in_flight", "", now.fs.stats.in_flight());

    let s = &now.fs.stats;
    e.family(
        "read_bytes_total",
        "counter",
        "Bytes asked for by read requests.",
    );
    e.sample("read_bytes_total", "", s.bytes_read);
    e.family(
        "written_bytes_total",
        "counter",
        "Bytes carried by write requests.",
    );
    e.sample("written_bytes_total", "", s.bytes_written);

    let f = &now.fs;
    for (name, help, value) in [
        (
            "open_handles",
            "Open file and directory handles.",
            f.open_handles,
        ),
        ("inodes", "Inodes the kernel knows of.", f.inodes.nodes),
        (
            "cached_fds",
            "Backing descriptors kept open for inodes.",
            f.inodes.cached_fds,
        ),
    ] {
        e.family(name, "gauge", help);
        e.sample(name, "", value);
    }

    type Field = fn(&crate::reactor::ReactorStats) -> u64;
    let per_reactor: [(&str, &str, &str, Field); 9] = [
        (
            "reactor_requests_total",
            "counter",
            "Requests the reactor took.",
            |l| l.received,
        ),
        (
            "reactor_turns_total",
            "counter",
            "Turns of the reactor's loop, each ending in one poll of io_uring (at most one \
             io_uring_enter).",
            |l| l.turns,
        ),
        (
            "reactor_sleeps_total",
            "counter",
            "Times the reactor went to sleep.",
            |l| l.sleeps,
        ),
        (
            "reactor_wakeups_total",
            "counter",
            "Times a sender woke the reactor.",
            |l| l.wakeups,
        ),
        (
            "reactor_requests_in_flight",
            "gauge",
            "Requests sent to the reactor and not answered.",
            |l| l.unanswered as u64,
        ),
        ("reactor_buffers", "gauge", "Pool buffers allocated.", |l| {
            l.pool.total as u64
        }),
        (
            "reactor_buffers_in_use",
            "gauge",
            "Pool buffers in use.",
            |l| l.pool.in_use as u64,
        ),
        (
            "reactor_buffers_high_water",
            "gauge",
            "Most pool buffers in use at once.",
            |l| l.pool.high_water as u64,
        ),
        (
            "reactor_buffer_waits_total",
            "counter",
            "Times a request found no free buffer.",
            |l| l.pool.waits,
        ),
    ];
    for (name, kind, help, field) in per_reactor {
        e.family(name, kind, help);
        for (i, l) in now.reactors.iter().enumerate() {
            e.sample(name, &format!("reactor=\"{i}\""), field(l));
        }
    }
    e.out
}
