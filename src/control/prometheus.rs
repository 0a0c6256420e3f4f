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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::snapshot::{Rates, sample};
    use std::time::Duration;

    /// Checks one line of the text format: a comment, or `name{labels} value`; returns the
    /// sample's name and labels, if it is one.
    fn check_line(line: &str) -> Option<(String, Vec<(String, String)>)> {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap(), words.next().unwrap());
            assert!(["HELP", "TYPE"].contains(&kind), "{line}");
            assert!(name.starts_with("arsyncfs_"), "{line}");
            if kind == "TYPE" {
                assert!(
                    ["counter", "gauge", "summary"].contains(&words.next().unwrap()),
                    "{line}"
                );
            }
            return None;
        }
        let open = line
            .find('{')
            .unwrap_or_else(|| panic!("no labels: {line}"));
        let name = &line[..open];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && name.starts_with("arsyncfs_"),
            "{line}"
        );
        // Labels: key="value" pairs, values with \\, \" and \n escapes only.
        let mut labels = Vec::new();
        let mut rest = &line[open + 1..];
        loop {
            let eq = rest.find("=\"").unwrap_or_else(|| panic!("{line}"));
            let key = &rest[..eq];
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                match chars.next().unwrap_or_else(|| panic!("{line}")) {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().unwrap().1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => panic!("escape \\{c}: {line}"),
                    },
                    (_, '\n') => panic!("raw newline"),
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            rest = &rest[eq + 2 + end + 1..];
            match rest.chars().next() {
                Some(',') => rest = &rest[1..],
                Some('}') => break,
                _ => panic!("{line}"),
            }
        }
        let value = rest[1..]
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("{line}"));
        assert!(value.parse::<f64>().is_ok(), "value '{value}': {line}");
        Some((name.to_owned(), labels))
    }

    #[test]
    fn every_line_is_well_formed_and_every_sample_has_its_family() {
        let mount = sample::mount();
        let before = sample::snapshot(Duration::from_secs(1), 2);
        let now = sample::snapshot(Duration::from_secs(3), 6);
        let rates = Rates::between(&before, &now).unwrap();
        for rates in [None, Some(&rates)] {
            let text = prometheus(&Report {
                mount: &mount,
                now: &now,
                rates,
            });
            let mut typed = std::collections::HashSet::new();
            let mut samples = Vec::new();
            for line in text.lines() {
                if let Some(t) = line.strip_prefix("# TYPE ") {
                    assert!(
                        typed.insert(t.split(' ').next().unwrap().to_owned()),
                        "{line}"
                    );
                }
                if let Some(sample) = check_line(line) {
                    samples.push(sample);
                }
            }
            for (name, labels) in &samples {
                let family = ["_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "{name} has no TYPE");
                assert_eq!(
                    labels[0],
                    ("mountpoint".to_owned(), "/mnt/a \"view\"\n".to_owned())
                );
            }
            let find = |name: &str, label: (&str, &str)| {
                samples
                    .iter()
                    .any(|(n, l)| n == name && l.iter().any(|(k, v)| k == label.0 && v == label.1))
            };
            assert!(find("arsyncfs_errors_total", ("errno", "ENOENT")));
            assert!(find(
                "arsyncfs_request_duration_seconds",
                ("quantile", "0.99")
            ));
            assert!(find(
                "arsyncfs_request_duration_seconds_count",
                ("op", "read")
            ));
            assert!(find("arsyncfs_reactor_turns_total", ("reactor", "1")));
            assert!(find("arsyncfs_info", ("cache", "auto")));
            assert!(text.contains("arsyncfs_requests_total{mountpoint=\"/mnt/a \\\"view\\\"\\n\",op=\"lookup\"} 3\n"), "{text}");
        }
    }
}
