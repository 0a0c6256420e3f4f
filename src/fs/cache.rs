//! The cache modes (`--cache auto|always|never`, named as virtiofsd's): what the kernel may cache of
//! the backing tree, for how long, and so what a change made directly in the backing directory does.
//! This is the one place each mode's values are defined; explicit settings refine a mode.

use std::time::Duration;

/// How much the kernel may cache, by who else changes the backing tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The backing may change underneath: attributes and names are cached for a second, pages are
    /// kept across opens while the file's mtime and size are unchanged (libfuse's auto_cache).
    #[default]
    Auto,
    /// The backing changes only through the mount: a day's timeouts, writeback cache, pages kept
    /// (libfuse passthrough_hp's defaults). Changes made beside the mount may stay unseen.
    Always,
    /// The backing is shared with other writers: nothing is cached, every read and write reaches
    /// the backing file (FOPEN_DIRECT_IO), every lookup and stat asks the daemon.
    Never,
}

/// What a cache mode sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long the kernel may cache attributes.
    pub attr_timeout: Duration,
    /// How long the kernel may cache name lookups.
    pub entry_timeout: Duration,
    /// The FUSE writeback cache: the kernel gathers writes and sends them later, in big batches.
    pub writeback_cache: bool,
    /// Keep a file's cached pages across opens while its mtime and size are unchanged.
    pub keep_cache: bool,
    /// Open every file with FOPEN_DIRECT_IO: no page cache, no readahead; reads and writes go to
    /// the daemon as the program issues them (shared mmap still uses the page cache).
    pub direct_io: bool,
}

/// The timeouts of `always`: a day, as libfuse's passthrough_hp.
const ALWAYS_TIMEOUT: Duration = Duration::from_secs(86_400);

impl CacheMode {
    pub const ALL: [CacheMode; 3] = [CacheMode::Auto, CacheMode::Always, CacheMode::Never];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Auto => "auto",
            CacheMode::Always => "always",
            CacheMode::Never => "never",
        }
    }

    pub fn from_name(name: &str) -> Option<CacheMode> {
        CacheMode::ALL.into_iter().find(|m| m.name() == name)
    }

    /// This mode's values.
    pub const fn policy(self) -> CachePolicy {
        match self {
            CacheMode::Auto => CachePolicy {
                attr_timeout: Duration::from_secs(1),
                entry_timeout: Duration::from_secs(1),
                writeback_cache: false,
                keep_cache: true,
                direct_io: false,
            },
            CacheMode::Always => CachePolicy {
                attr_timeout: ALWAYS_TIMEOUT,
                entry_timeout: ALWAYS_TIMEOUT,
                writeback_cache: true,
                keep_cache: true,
                direct_io: false,
            },
            CacheMode::Never => CachePolicy {
                attr_timeout: Duration::ZERO,
                entry_timeout: Duration::ZERO,
                writeback_cache: false,
                keep_cache: false,
                direct_io: true,
            },
        }
    }
}

impl std::fmt::Display for CacheMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in CacheMode::ALL {
            assert_eq!(CacheMode::from_name(mode.name()), Some(mode));
        }
        assert_eq!(CacheMode::from_name("Always"), None);
        assert_eq!(CacheMode::from_name(""), None);
        assert_eq!(CacheMode::default(), CacheMode::Auto);
    }

    /// The modes are ordered by how much they cache: longer timeouts never come with less caching.
    #[test]
    fn modes_cache_in_order() {
        let [auto, always, never] = CacheMode::ALL.map(CacheMode::policy);
        assert!(never.attr_timeout < auto.attr_timeout && auto.attr_timeout < always.attr_timeout);
        assert!(never.entry_timeout < auto.entry_timeout);
        assert!(auto.entry_timeout < always.entry_timeout);
        // Only `always` lets the kernel hold writes; only `never` bypasses the page cache.
        assert_eq!(
            CacheMode::ALL.map(|m| m.policy().writeback_cache),
            [false, true, false]
        );
        assert_eq!(
            CacheMode::ALL.map(|m| m.policy().direct_io),
            [false, false, true]
        );
        assert!(auto.keep_cache && always.keep_cache && !never.keep_cache);
        assert_eq!(never.attr_timeout, Duration::ZERO);
        assert_eq!(always.attr_timeout, Duration::from_secs(86_400));
    }
}
