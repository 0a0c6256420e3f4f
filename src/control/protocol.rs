//! The stats socket's protocol: lines of text. The client sends `stats 1 FORMAT` (FORMAT is
//! `table`, `json` or `prometheus`; 1 is the protocol's version) and may send it again on the same
//! connection: rates are then given since the request before. The daemon answers each with
//! `ok LENGTH` and LENGTH bytes of the report, or with `error MESSAGE`.

use std::io::{self, BufRead, Write};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Prometheus,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Prometheus => "prometheus",
        }
    }
}

const VERSION: &str = "1";

/// Longest request line read, newline included: anything longer is not ours.
pub const MAX_REQUEST: usize = 64;

/// Largest answer a client takes (a report is a few KiB).
const MAX_ANSWER: usize = 16 << 20;

pub fn request(format: Format) -> String {
    format!("stats {VERSION} {}\n", format.name())
}

/// The format a request line asks for, or why it is not a request.
pub fn parse_request(line: &str) -> Result<Format, String> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("stats"), Some(VERSION), Some(format), None) => match format {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "prometheus" => Ok(Format::Prometheus),
            _ => Err(format!("unknown format '{format}'")),
        },
        (Some("stats"), Some(v), _, _) => Err(format!(
            "protocol version {v} not supported (this daemon speaks {VERSION})"
        )),
        _ => Err("not a stats request".to_owned()),
    }
}

pub fn write_answer(w: &mut impl Write, answer: Result<&str, &str>) -> io::Result<()> {
    match answer {
        Ok(body) => {
            write!(w, "ok {}\n{body}", body.len())?;
        }
        Err(message) => writeln!(w, "error {}", message.replace('\n', " "))?,
    }
    w.flush()
}

/// Reads one answer: the report, or the daemon's error message. An end of stream before the
/// answer is `UnexpectedEof`.
pub fn read_answer(r: &mut impl BufRead) -> io::Result<Result<String, String>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches('\n');
    if let Some(message) = line.strip_prefix("error ") {
        return Ok(Err(message.to_owned()));
    }
    let len: usize = line
        .strip_prefix("ok ")
        .and_then(|n| n.parse().ok())
        .filter(|&n| n <= MAX_ANSWER)
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad answer '{line}'"))
        })?;
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    String::from_utf8(body)
        .map(Ok)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "answer is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_strangers_are_refused() {
        for f in [Format::Table, Format::Json, Format::Prometheus] {
            let line = request(f);
            assert!(line.len() <= MAX_REQUEST);
            assert_eq!(parse_request(&line), Ok(f));
        }
        assert!(parse_request("stats 1 yaml").unwrap_err().contains("yaml"));
        assert!(
            parse_request("stats 2 json")
                .unwrap_err()
                .contains("version 2")
        );
        assert!(parse_request("GET / HTTP/1.1").is_err());
        assert!(parse_request("stats 1 json extra").is_err());
    }

    #[test]
    fn answers_round_trip() {
        let mut wire = Vec::new();
        write_answer(&mut wire, Ok("two\nlines\n")).unwrap();
        write_answer(&mut wire, Err("no\nway")).unwrap();
        write_answer(&mut wire, Ok("")).unwrap();
        let mut r = io::BufReader::new(&wire[..]);
        assert_eq!(read_answer(&mut r).unwrap(), Ok("two\nlines\n".to_owned()));
        assert_eq!(read_answer(&mut r).unwrap(), Err("no way".to_owned()));
        assert_eq!(read_answer(&mut r).unwrap(), Ok(String::new()));
        let eof = read_answer(&mut r).unwrap_err();
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
        let cut = b"ok 10\nshort";
        assert!(read_answer(&mut io::BufReader::new(&cut[..])).is_err());
        let junk = b"hello\n";
        let e = read_answer(&mut io::BufReader::new(&junk[..])).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
