//! The report as one line of JSON, for scripts (`--json`; one object per line with `--watch`).
//! Written by hand: the structure is fixed and flat enough that a serializer would add a crate
//! for a few dozen lines. Durations are integer nanoseconds, sizes bytes.

use std::fmt::Write;

use super::snapshot::Report;
use super::units::errno_name;

/// `s` as a JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A finite number (rates); JSON has no NaN or infinity.
fn float(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".to_owned()
    }
}

/// An object being written: `{"a":1,"b":{...}}`.
struct Object {
    out: String,
}

impl Object {
    fn new() -> Self {
        Object {
            out: String::from("{"),
        }
    }

    /// Adds `"name":raw`, where `raw` is already JSON.
    fn raw(&mut self, name: &str, raw: impl AsRef<str>) -> &mut Self {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        self.out.push_str(&string(name));
        self.out.push(':');
        self.out.push_str(raw.as_ref());
        self
    }

    fn num(&mut self, name: &str, n: impl Into<u64>) -> &mut Self {
        self.raw(name, n.into().to_string())
    }

    fn str(&mut self, name: &str, s: &str) -> &mut Self {
        self.raw(name, string(s))
    }

    fn end(&mut self) -> String {
        self.out.push('}');
        std::mem::take(&mut self.out)
    }
}

pub fn json(r: &Report) -> String {
    let (m, now) = (r.mount, r.now);
    let mut options = Object::new();
    for (name, value) in &m.options {
        options.str(name, value);
    }
    let mut ops = Object::new();
    for op in now.fs.stats.ops.iter().filter(|o| o.started > 0) {
        let mut errnos = Object::new();
        for (errno, n) in &op.errnos {
            errnos.num(&errno_name(*errno), *n);
        }
        let l = &op.latency;
        let latency = Object::new()
            .num("count", l.count())
            .num("p50", l.quantile(0.5))
            .num("p99", l.quantile(0.99))
            .num("max", l.max_ns)
            .num("sum", l.sum_ns)
            .end();
        let o = Object::new()
            .num("requests", op.started)
            .num("answered", op.answered())
            .num("errors", op.errors)
            .raw("errnos", errnos.end())
            .raw("latency_ns", latency)
            .end();
        ops.raw(op.op.name(), o);
    }
    let s = &now.fs.stats;
    let data = Object::new()
        .num("reads", s.reads)
        .num("bytes_read", s.bytes_read)
        .num("largest_read", s.largest_read)
        .num("writes", s.writes)
        .num("bytes_written", s.bytes_written)
        .num("largest_write", s.largest_write)
        .num("inline_writes", s.inline_writes)
        .num("flushes", s.flushes)
        .num("passthrough_opens", s.passthrough_opens)
        .num("passthrough_fallbacks", s.passthrough_fallbacks)
        .num("passthrough_reads", s.passthrough_reads)
        .num("passthrough_writes", s.passthrough_writes)
        .end();
    let f = &now.fs;
    let files = Object::new()
        .num("open_handles", f.open_handles as u64)
        .num("inodes", f.inodes.nodes as u64)
        .num("cached_fds", f.inodes.cached_fds as u64)
        .num("pinned_inodes", f.inodes.pinned as u64)
        .num("forgotten_handles", f.inodes.forgotten as u64)
        .end();
    let reactors: Vec<String> = now
        .reactors
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let buffers = Object::new()
                .num("limit", l.buffer_limit as u64)
                .num("total", l.pool.total as u64)
                .num("in_use", l.pool.in_use as u64)
                .num("high_water", l.pool.high_water as u64)
                .num("waits", l.pool.waits)
                .end();
            Object::new()
                .num("index", i as u64)
                .num("requests", l.received)
                .num("turns", l.turns)
                .num("sleeps", l.sleeps)
                .num("wakeups", l.wakeups)
                .num("in_flight", l.unanswered as u64)
                .num("buffer_waits", l.buffer_waits)
                .raw("buffers", buffers)
                .end()
        })
        .collect();
    let mut top = Object::new();
    top.str("version", &m.version)
        .num("pid", m.pid)
        .str("mountpoint", &m.mountpoint.to_string_lossy())
        .str("backing", &m.backing.to_string_lossy())
        .raw("uptime_seconds", float(now.uptime.as_secs_f64()))
        .raw("options", options.end())
        .num("in_flight", s.in_flight())
        .num("answered", now.answered())
        .raw("operations", ops.end())
        .raw("data", data)
        .raw("files", files)
        .raw("reactors", format!("[{}]", reactors.join(",")));
    if let Some(rates) = r.rates {
        let mut by_op = Object::new();
        for (op, rate) in &rates.ops {
            by_op.raw(op.name(), float(*rate));
        }
        let rates = Object::new()
            .raw("interval_seconds", float(rates.interval.as_secs_f64()))
            .raw("requests_per_second", float(rates.requests))
            .raw("read_bytes_per_second", float(rates.bytes_read))
            .raw("written_bytes_per_second", float(rates.bytes_written))
            .raw("operations", by_op.end())
            .end();
        top.raw("rates", rates);
    }
    top.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::snapshot::{Rates, sample};
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// Just enough of a JSON reader to check the output is JSON and look into it.
    #[derive(Debug, PartialEq)]
    enum Value {
        Null,
        Num(f64),
        Str(String),
        List(Vec<Value>),
        Map(BTreeMap<String, Value>),
    }

    impl Value {
        fn get(&self, path: &str) -> &Value {
            path.split('.').fold(self, |v, key| match v {
                Value::Map(m) => m.get(key).unwrap_or_else(|| panic!("no {key} in {path}")),
                Value::List(l) => &l[key.parse::<usize>().unwrap()],
                _ => panic!("{path}: {v:?} has no {key}"),
            })
        }
        fn num(&self, path: &str) -> f64 {
            match self.get(path) {
                Value::Num(n) => *n,
                v => panic!("{path}: {v:?}"),
            }
        }
    }

    struct Reader<'a>(std::iter::Peekable<std::str::Chars<'a>>);

    impl Reader<'_> {
        fn expect(&mut self, c: char) {
            assert_eq!(self.0.next(), Some(c));
        }
        fn string(&mut self) -> String {
            self.expect('"');
            let mut s = String::new();
            loop {
                match self.0.next().expect("unterminated string") {
                    '"' => return s,
                    '\\' => match self.0.next().unwrap() {
                        'n' => s.push('\n'),
                        'u' => {
                            let hex: String = (0..4).map(|_| self.0.next().unwrap()).collect();
                            s.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                        }
                        c @ ('"' | '\\' | '/') => s.push(c),
                        c => panic!("escape \\{c}"),
                    },
                    c if (c as u32) < 0x20 => panic!("raw control character in a string"),
                    c => s.push(c),
                }
            }
        }
        fn value(&mut self) -> Value {
            match *self.0.peek().expect("a value") {
                '{' => {
                    self.0.next();
                    let mut m = BTreeMap::new();
                    if self.0.peek() == Some(&'}') {
                        self.0.next();
                        return Value::Map(m);
                    }
                    loop {
                        let k = self.string();
                        self.expect(':');
                        assert!(m.insert(k, self.value()).is_none(), "duplicate key");
                        match self.0.next() {
                            Some(',') => continue,
                            Some('}') => return Value::Map(m),
                            c => panic!("{c:?} in an object"),
                        }
                    }
                }
                '[' => {
                    self.0.next();
                    let mut l = Vec::new();
                    if self.0.peek() == Some(&']') {
                        self.0.next();
                        return Value::List(l);
                    }
                    loop {
                        l.push(self.value());
                        match self.0.next() {
                            Some(',') => continue,
                            Some(']') => return Value::List(l),
                            c => panic!("{c:?} in a list"),
                        }
                    }
                }
                '"' => Value::Str(self.string()),
                'n' => {
                    for c in "null".chars() {
                        self.expect(c);
                    }
                    Value::Null
                }
                _ => {
                    let mut n = String::new();
                    while let Some(&c) = self.0.peek() {
                        if !(c.is_ascii_digit() || "-+.eE".contains(c)) {
                            break;
                        }
                        n.push(c);
                        self.0.next();
                    }
                    Value::Num(n.parse().unwrap_or_else(|_| panic!("number '{n}'")))
                }
            }
        }
    }

    fn parse(text: &str) -> Value {
        let mut r = Reader(text.chars().peekable());
        let v = r.value();
        assert_eq!(r.0.next(), None, "text after the value");
        v
    }

    #[test]
    fn one_line_of_json_with_every_part() {
        let mount = sample::mount();
        let now = sample::snapshot(Duration::from_millis(1500), 2);
        let text = json(&Report {
            mount: &mount,
            now: &now,
            rates: None,
        });
        assert!(!text.contains('\n'), "one line: {text}");
        let v = parse(&text);
        assert_eq!(
            *v.get("mountpoint"),
            Value::Str("/mnt/a \"view\"\n".to_owned())
        );
        assert_eq!(*v.get("options.cache"), Value::Str("auto".to_owned()));
        assert_eq!(v.num("uptime_seconds"), 1.5);
        assert_eq!(v.num("operations.lookup.requests"), 3.0);
        assert_eq!(v.num("operations.lookup.errors"), 1.0);
        assert_eq!(v.num("operations.lookup.errnos.ENOENT"), 1.0);
        assert_eq!(v.num("operations.lookup.latency_ns.max"), 1_500_000.0);
        assert_eq!(v.num("operations.lookup.latency_ns.count"), 3.0);
        assert_eq!(v.num("operations.write.answered"), 0.0);
        assert!(
            matches!(v.get("operations"), Value::Map(m) if m.len() == 3),
            "only those with requests"
        );
        assert_eq!(v.num("in_flight"), 1.0);
        assert_eq!(v.num("data.bytes_read"), 8192.0);
        assert_eq!(v.num("files.inodes"), 5.0);
        assert_eq!(v.num("reactors.0.requests"), 2.0);
        assert_eq!(v.num("reactors.1.buffers.limit"), 64.0);
        assert!(matches!(v, Value::Map(ref m) if !m.contains_key("rates")));
    }

    #[test]
    fn rates_come_with_a_report_after_another() {
        let mount = sample::mount();
        let before = sample::snapshot(Duration::from_secs(1), 2);
        let now = sample::snapshot(Duration::from_secs(3), 6);
        let rates = Rates::between(&before, &now).unwrap();
        let v = parse(&json(&Report {
            mount: &mount,
            now: &now,
            rates: Some(&rates),
        }));
        assert_eq!(v.num("rates.interval_seconds"), 2.0);
        assert_eq!(v.num("rates.operations.read"), 2.0);
        assert_eq!(v.num("rates.read_bytes_per_second"), 8192.0);
    }

    #[test]
    fn strings_escape_what_json_forbids() {
        assert_eq!(string("a\"b\\c\n\t\u{1}é"), "\"a\\\"b\\\\c\\n\\t\\u0001é\"");
        assert_eq!(float(f64::NAN), "null");
    }
}
