//! Numbers as people read them: durations, sizes, rates, errno names.

use std::borrow::Cow;
use std::time::Duration;

/// `ns` nanoseconds in the largest unit that keeps it at 1 or more, with three significant digits
/// at most: `850ns`, `3.1us`, `20us`, `1.2ms`, `2.50s`.
pub fn duration_ns(ns: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")];
    for (scale, unit) in UNITS {
        if ns >= scale {
            return format!("{}{unit}", significant(ns as f64 / scale as f64));
        }
    }
    format!("{ns}ns")
}

/// `x` (at least 1) with one decimal below 10 and none above: `3.1`, `20`, `120`.
fn significant(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// A byte count in binary units: `512 B`, `4.0 KiB`, `19.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An uptime to the second, in its two largest units: `12s`, `3m 12s`, `1h 02m`, `3d 04h`.
pub fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{mins}m {secs:02}s"),
        (0, _, _) => format!("{hours}h {mins:02}m"),
        _ => format!("{days}d {hours:02}h"),
    }
}

/// A rate per second: one decimal below 100, none above.
pub fn per_second(x: f64) -> String {
    if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// The symbolic name of an errno (`ENOENT`), or `errno N` for one without a name here.
pub fn errno_name(errno: i32) -> Cow<'static, str> {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ERANGE => "ERANGE",
        libc::EDEADLK => "EDEADLK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOLCK => "ENOLCK",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESHUTDOWN => "ESHUTDOWN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ESTALE => "ESTALE",
        libc::EDQUOT => "EDQUOT",
        libc::ECANCELED => "ECANCELED",
        _ => return Cow::Owned(format!("errno {errno}")),
    };
    Cow::Borrowed(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ns(0), "0ns");
        assert_eq!(duration_ns(850), "850ns");
        assert_eq!(duration_ns(1_000), "1.0us");
        assert_eq!(duration_ns(3_149), "3.1us");
        assert_eq!(duration_ns(20_400), "20us");
        assert_eq!(duration_ns(1_250_000), "1.2ms");
        assert_eq!(duration_ns(2_500_000_000), "2.5s");
        assert_eq!(duration_ns(u64::MAX), "18446744074s");
    }

    #[test]
    fn sizes_rates_and_uptimes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(20_480_000), "19.5 MiB");
        assert_eq!(bytes(u64::MAX), "16384.0 PiB");
        assert_eq!(per_second(12.34), "12.3");
        assert_eq!(per_second(1234.5), "1234");
        assert_eq!(uptime(Duration::from_secs(12)), "12s");
        assert_eq!(uptime(Duration::from_secs(192)), "3m 12s");
        assert_eq!(uptime(Duration::from_secs(3723)), "1h 02m");
        assert_eq!(uptime(Duration::from_secs(3 * 86_400 + 4 * 3600)), "3d 04h");
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ENOENT), "ENOENT");
        assert_eq!(errno_name(libc::ENOSPC), "ENOSPC");
        assert_eq!(errno_name(4000), "errno 4000");
    }
}
