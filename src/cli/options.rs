//! `-o` lists in the mount(8) / mount.fuse3 style.

use std::time::Duration;

use fuser::SessionACL;

use super::error::CliError;
use super::settings::Settings;
use super::values::{
    parse_buffered_writes, parse_cache_mode, parse_count, parse_count_as, parse_reactors,
    parse_seconds, parse_size,
};
use crate::fs::AtimeMode;

/// Options mount(8), mount.fuse3 or an fstab line may pass that mean nothing to arsyncfs.
const IGNORED: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "lazytime",
    "nolazytime",
    "iversion",
    "noiversion",
    "silent",
    "loud",
];

/// Ignored prefixes: `user=NAME` (mount(8) passes it for user mounts), `comment=`, `x-*`.
const IGNORED_PREFIXES: &[&str] = &["user=", "comment=", "x-"];

/// Splits an `-o` value at commas; `\,` is a literal comma (for names that contain one).
pub fn split_list(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                cur.push(',');
                chars.next();
            }
            ',' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Applies one `-o` list to `settings`, left to right.
pub fn apply(settings: &mut Settings, list: &str) -> Result<(), CliError> {
    for opt in split_list(list) {
        apply_one(settings, &opt)?;
    }
    Ok(())
}

fn value_of<'a>(opt: &'a str, key: &str) -> Option<&'a str> {
    opt.strip_prefix(key)?.strip_prefix('=')
}

fn bad(opt: &str, why: String) -> CliError {
    CliError::usage(format!("invalid mount option '{opt}': {why}"))
}

/// `atime` / `nostrictatime`: back to the default mode if `mode` is the one in force.
fn undo_atime(s: &mut Settings, mode: AtimeMode) {
    if s.fs.atime == mode {
        s.fs.atime = AtimeMode::Relatime;
    }
}

fn apply_one(s: &mut Settings, opt: &str) -> Result<(), CliError> {
    let (key, value) = match opt.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    let no_value = |s: &mut Settings, f: fn(&mut Settings)| -> Result<(), CliError> {
        if value.is_some() {
            return Err(bad(opt, format!("'{key}' takes no value")));
        }
        f(s);
        Ok(())
    };
    match key {
        "ro" => no_value(s, |s| s.fs.read_only = true),
        "rw" => no_value(s, |s| s.fs.read_only = false),
        "allow_other" => no_value(s, |s| s.acl = SessionACL::All),
        "allow_root" => no_value(s, |s| s.acl = SessionACL::RootAndOwner),
        "default_permissions" => no_value(s, |_| {}),
        "dev" => no_value(s, |s| s.flags.dev = Some(true)),
        "nodev" => no_value(s, |s| s.flags.dev = Some(false)),
        "suid" => no_value(s, |s| s.flags.suid = Some(true)),
        "nosuid" => no_value(s, |s| s.flags.suid = Some(false)),
        "exec" => no_value(s, |s| s.flags.exec = Some(true)),
        "noexec" => no_value(s, |s| s.flags.exec = Some(false)),
        // The atime modes: a later one wins; each "no" form only undoes its own mode, and
        // norelatime changes nothing (relatime is the kernel's default).
        "noatime" => no_value(s, |s| s.fs.atime = AtimeMode::NoAtime),
        "relatime" => no_value(s, |s| s.fs.atime = AtimeMode::Relatime),
        "strictatime" => no_value(s, |s| s.fs.atime = AtimeMode::Strictatime),
        "atime" => no_value(s, |s| undo_atime(s, AtimeMode::NoAtime)),
        "nostrictatime" => no_value(s, |s| undo_atime(s, AtimeMode::Strictatime)),
        "norelatime" => no_value(s, |_| {}),
        "diratime" => no_value(s, |s| s.fs.diratime = true),
        "nodiratime" => no_value(s, |s| s.fs.diratime = false),
        "sync" => no_value(s, |s| s.flags.sync = Some(true)),
        "async" => no_value(s, |s| s.flags.sync = Some(false)),
        "dirsync" => no_value(s, |s| s.flags.dirsync = true),
        "clone_fd" => no_value(s, |s| s.clone_fd = true),
        "noclone_fd" => no_value(s, |s| s.clone_fd = false),
        "auto_unmount" => no_value(s, |s| s.auto_unmount = true),
        "noauto_unmount" | "no_auto_unmount" => no_value(s, |s| s.auto_unmount = false),
        "writeback" | "writeback_cache" => no_value(s, |s| s.cache.writeback_cache = Some(true)),
        "nowriteback" | "no_writeback" | "nowriteback_cache" | "no_writeback_cache" => {
            no_value(s, |s| s.cache.writeback_cache = Some(false))
        }
        "cache" => {
            let v = value
                .ok_or_else(|| bad(opt, "'cache' needs a value: auto, always or never".into()))?;
            s.cache.mode = parse_cache_mode(v).map_err(|e| bad(opt, e))?;
            Ok(())
        }
        "passthrough" => no_value(s, |s| s.fs.passthrough = true),
        "nopassthrough" | "no_passthrough" => no_value(s, |s| s.fs.passthrough = false),
        "debug" => no_value(s, |s| s.verbosity = s.verbosity.max(2)),
        "buffered_writes" => {
            let v = value.ok_or_else(|| {
                bad(
                    opt,
                    "'buffered_writes' needs a value: inline or reactor".into(),
                )
            })?;
            s.fs.buffered_writes = parse_buffered_writes(v).map_err(|e| bad(opt, e))?;
            Ok(())
        }
        "fsname" | "subtype" => {
            let v = value_of(opt, key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| bad(opt, format!("'{key}' needs a value, e.g. {key}=NAME")))?;
            if key == "fsname" {
                s.fsname = Some(v.to_owned());
            } else {
                if v.contains(['/', ' ', '\t', '\n', '\\']) {
                    return Err(bad(opt, "a subtype is a plain word".into()));
                }
                s.subtype = v.to_owned();
            }
            Ok(())
        }
        "buffers" | "buffer_size" | "reactors" | "ring_entries" | "spin_us" | "threads"
        | "max_background" | "attr_timeout" | "entry_timeout" => {
            let v =
                value.ok_or_else(|| bad(opt, format!("'{key}' needs a value, e.g. {key}=N")))?;
            let with_key = |e: String| bad(opt, e);
            match key {
                "buffers" => s.reactor.buffers = parse_count(v).map_err(with_key)?,
                "buffer_size" => s.reactor.buffer_size = parse_size(v).map_err(with_key)?,
                "ring_entries" => s.reactor.ring_entries = parse_count_as(v).map_err(with_key)?,
                "reactors" => s.reactor.reactors = parse_reactors(v).map_err(with_key)?,
                "max_background" => s.fs.max_background = parse_count_as(v).map_err(with_key)?,
                "spin_us" => {
                    let us = v
                        .trim()
                        .parse()
                        .map_err(|_| with_key(format!("'{v}' is not a whole number")))?;
                    s.reactor.spin = Duration::from_micros(us);
                }
                "threads" => s.threads = parse_count(v).map_err(with_key)?,
                "attr_timeout" => s.cache.attr_timeout = Some(parse_seconds(v).map_err(with_key)?),
                _ => s.cache.entry_timeout = Some(parse_seconds(v).map_err(with_key)?),
            }
            Ok(())
        }
        _ if IGNORED.contains(&opt) || IGNORED_PREFIXES.iter().any(|p| opt.starts_with(p)) => {
            s.ignored_options.push(opt.to_owned());
            Ok(())
        }
        _ if s.sloppy => {
            s.unknown_options.push(opt.to_owned());
            Ok(())
        }
        _ => Err(CliError::usage(format!(
            "unknown mount option '{opt}' (see `arsyncfs --help` for the supported -o options)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{BufferedWrites, CacheMode};

    fn applied(list: &str) -> Result<Settings, CliError> {
        let mut s = Settings::default();
        apply(&mut s, list).map(|()| s)
    }

    #[test]
    fn splits_with_escaped_commas() {
        assert_eq!(split_list("a,b\\,c,,d"), vec!["a", "b,c", "d"]);
        assert!(split_list("").is_empty());
    }

    #[test]
    fn fstab_defaults_are_accepted() {
        let s =
            applied("defaults,auto,nouser,_netdev,nofail,x-systemd.automount,comment=x,relatime")
                .unwrap();
        assert_eq!(s.ignored_options.len(), 7);
        assert!(!s.fs.read_only);
    }

    #[test]
    fn sloppy_skips_unknown_options() {
        let mut s = Settings {
            sloppy: true,
            ..Settings::default()
        };
        apply(&mut s, "ro,frobnicate,max_read=4096").unwrap();
        assert!(s.fs.read_only);
        assert_eq!(s.unknown_options, vec!["frobnicate", "max_read=4096"]);
        // A bad value of a known option is still an error.
        assert!(apply(&mut s, "threads=x").is_err());
    }

    #[test]
    fn later_values_win() {
        let s = applied("ro,rw,nodev,dev,writeback,nowriteback,threads=3,threads=4").unwrap();
        assert!(!s.fs.read_only);
        assert_eq!(s.flags.dev, Some(true));
        assert_eq!(s.cache.writeback_cache, Some(false));
        assert_eq!(s.threads, 4);
    }

    #[test]
    fn own_options() {
        let s = applied(
            "buffers=64,buffer_size=256K,ring_entries=512,spin_us=7,max_background=32,\
             attr_timeout=0.5,entry_timeout=0,noclone_fd,allow_other,fsname=a\\,b,subtype=view",
        )
        .unwrap();
        assert_eq!(s.reactor.buffers, 64);
        assert_eq!(s.reactor.buffer_size, 256 * 1024);
        assert_eq!(s.reactor.ring_entries, 512);
        assert_eq!(applied("reactors=0").unwrap().reactor.reactors, 0);
        assert_eq!(applied("reactors=2").unwrap().reactor.reactors, 2);
        assert!(applied("reactors=two").is_err());
        assert!(applied("reactors=5000").is_err());
        assert_eq!(s.reactor.spin, Duration::from_micros(7));
        assert_eq!(s.fs.max_background, 32);
        assert_eq!(s.cache.attr_timeout, Some(Duration::from_millis(500)));
        assert_eq!(s.cache.entry_timeout, Some(Duration::ZERO));
        assert!(!s.clone_fd);
        assert!(Settings::default().auto_unmount);
        assert!(!applied("noauto_unmount").unwrap().auto_unmount);
        assert!(
            applied("no_auto_unmount,auto_unmount")
                .unwrap()
                .auto_unmount
        );
        assert!(applied("auto_unmount=1").is_err());
        assert_eq!(s.acl, SessionACL::All);
        assert_eq!(s.fsname.as_deref(), Some("a,b"));
        assert_eq!(s.subtype, "view");
    }

    #[test]
    fn atime_modes() {
        let mode = |list: &str| applied(list).unwrap().fs.atime;
        assert_eq!(Settings::default().fs.atime, AtimeMode::Relatime);
        assert_eq!(mode("noatime"), AtimeMode::NoAtime);
        assert_eq!(mode("strictatime"), AtimeMode::Strictatime);
        assert_eq!(mode("noatime,strictatime"), AtimeMode::Strictatime);
        assert_eq!(mode("strictatime,relatime"), AtimeMode::Relatime);
        assert_eq!(mode("noatime,atime"), AtimeMode::Relatime);
        assert_eq!(mode("strictatime,atime"), AtimeMode::Strictatime);
        assert_eq!(mode("strictatime,nostrictatime"), AtimeMode::Relatime);
        assert_eq!(mode("noatime,nostrictatime,norelatime"), AtimeMode::NoAtime);
        assert!(Settings::default().fs.diratime);
        assert!(!applied("nodiratime").unwrap().fs.diratime);
        assert!(applied("nodiratime,diratime").unwrap().fs.diratime);
        assert!(applied("relatime=1").is_err());
    }

    #[test]
    fn passthrough_option() {
        assert!(!Settings::default().fs.passthrough);
        assert!(applied("passthrough").unwrap().fs.passthrough);
        assert!(!applied("passthrough,nopassthrough").unwrap().fs.passthrough);
        assert!(applied("passthrough=1").is_err());
    }

    #[test]
    fn buffered_writes_mode() {
        assert_eq!(
            Settings::default().fs.buffered_writes,
            BufferedWrites::Reactor
        );
        let s = applied("buffered_writes=inline").unwrap();
        assert_eq!(s.fs.buffered_writes, BufferedWrites::Inline);
        let s = applied("buffered_writes=inline,buffered_writes=reactor").unwrap();
        assert_eq!(s.fs.buffered_writes, BufferedWrites::Reactor);
        let e = applied("buffered_writes=sometimes").unwrap_err();
        assert!(e.message.contains("inline or reactor"), "{}", e.message);
        assert!(applied("buffered_writes").is_err());
    }

    #[test]
    fn cache_modes() {
        let mode = |list: &str| applied(list).unwrap().cache.mode;
        assert_eq!(Settings::default().cache.mode, CacheMode::Auto);
        assert_eq!(mode("cache=always"), CacheMode::Always);
        assert_eq!(mode("cache=never"), CacheMode::Never);
        assert_eq!(mode("cache=never,cache=auto"), CacheMode::Auto);
        // A mode leaves the explicit settings alone, before or after it.
        let s = applied("attr_timeout=5,cache=never,writeback").unwrap();
        assert_eq!(s.cache.mode, CacheMode::Never);
        assert_eq!(s.cache.attr_timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.cache.writeback_cache, Some(true));
        assert_eq!(s.cache.entry_timeout, None);
        let e = applied("cache=sometimes").unwrap_err();
        assert!(
            e.message.contains("'cache=sometimes'") && e.message.contains("auto, always or never"),
            "{}",
            e.message
        );
        let e = applied("cache").unwrap_err();
        assert!(e.message.contains("needs a value"), "{}", e.message);
        assert!(applied("cache=").is_err());
        assert!(applied("cache=Always").is_err());
    }

    #[test]
    fn errors_name_the_option() {
        let e = applied("ro,bogus").unwrap_err();
        assert!(e.message.contains("'bogus'"), "{}", e.message);
        let e = applied("buffers=x").unwrap_err();
        assert!(e.message.contains("buffers=x"), "{}", e.message);
        let e = applied("ro=1").unwrap_err();
        assert!(e.message.contains("takes no value"), "{}", e.message);
        assert!(applied("fsname=").is_err());
        assert!(applied("threads").is_err());
    }
}
