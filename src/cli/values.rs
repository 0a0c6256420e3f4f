//! The values options take, parsed the same way as flags (clap's value parsers) and in `-o` lists:
//! counts, sizes, seconds and mode names. An error is a short phrase; the caller names the option.

use std::time::Duration;

use crate::fs::{BufferedWrites, CacheMode};

/// A number of reactors: a whole number, 0 meaning one per CPU.
pub fn parse_reactors(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n <= 1024 => Ok(n),
        Ok(n) => Err(format!(
            "{n} reactors is too many (at most 1024; 0 = one per CPU)"
        )),
        Err(_) => Err(format!("'{v}' is not a whole number")),
    }
}

/// `inline` or `reactor` (see `--buffered-writes`).
pub fn parse_buffered_writes(v: &str) -> Result<BufferedWrites, String> {
    match v.trim() {
        "inline" => Ok(BufferedWrites::Inline),
        "reactor" => Ok(BufferedWrites::Reactor),
        _ => Err(format!("'{v}' is not inline or reactor")),
    }
}

/// `auto`, `always` or `never` (see `--cache`).
pub fn parse_cache_mode(v: &str) -> Result<CacheMode, String> {
    CacheMode::from_name(v.trim()).ok_or_else(|| format!("'{v}' is not auto, always or never"))
}

/// A positive count, like `128`.
pub fn parse_count(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{v}' is not a positive whole number")),
    }
}

/// A positive count that fits `T`: a `u32` ring size, a `u16` kernel limit.
pub fn parse_count_as<T: TryFrom<usize>>(v: &str) -> Result<T, String> {
    let n = parse_count(v)?;
    T::try_from(n).map_err(|_| format!("'{v}' is too large"))
}

/// A size in bytes: `4096`, `256K`, `1M`, `1MiB`, `2m`.
pub fn parse_size(v: &str) -> Result<usize, String> {
    let t = v.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{v}' is not a size (e.g. 4096, 256K, 1M)"))?;
    let mult: usize = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{v}' is not a size (e.g. 4096, 256K, 1M)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{v}' is too large"))
}

/// Seconds, possibly fractional: `1`, `0.5`, `0`.
pub fn parse_seconds(v: &str) -> Result<Duration, String> {
    let secs: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("'{v}' is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{v}' is not a number of seconds"));
    }
    if secs > 365.0 * 86400.0 {
        return Err(format!("'{v}' seconds is more than a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_seconds() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("256KiB"), Ok(256 << 10));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("nan").is_err());
        assert!(parse_seconds("inf").is_err());
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-2").is_err());
        assert_eq!(parse_count_as::<u32>("512"), Ok(512));
        assert!(parse_count_as::<u32>("4294967296").is_err());
        assert_eq!(parse_count_as::<u16>("65535"), Ok(65535));
        assert!(parse_count_as::<u16>("65536").is_err());
        assert!(parse_count_as::<u16>("0").is_err());
    }
}
