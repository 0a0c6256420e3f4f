//! The reactor under a fault plan of its own process (one plan per process, so one test here):
//! every read of an O_DIRECT file runs short, and reads still answer exactly the file's bytes.
//!
//! `TMPDIR=/var/tmp cargo test --release --features fault-injection --test reactor_faults`
#![cfg(feature = "fault-injection")]

#[path = "common/reactor_util.rs"]
mod reactor_util;
#[path = "common/rng.rs"]
mod rng;

use arsyncfs::faults;
use reactor_util::{Harness, disk_tempdir, open_direct};

const BLOCK: usize = 4096;

fn read_shorts() -> u64 {
    let injected = faults::injected().expect("a plan is installed");
    injected
        .0
        .iter()
        .filter(|(name, _)| name == "read_short")
        .map(|(_, n)| n)
        .sum()
}

/// Short O_DIRECT reads (whole blocks) are continued to the end of the file; the one that ends off
/// a block boundary is the end of the file and is not continued (a read starting there would be
/// unaligned: EINVAL on filesystems built on fs/direct-io.c, 0 on ext4, xfs and btrfs).
#[test]
fn short_direct_reads_end_at_an_unaligned_end_of_file() {
    faults::install(&faults::Plan::parse("seed=3,read=short:1").unwrap()).unwrap();
    let dir = disk_tempdir();
    let data = reactor_util::Rng::new(9).bytes(3 * BLOCK + 904);
    let path = dir.path().join("odd");
    std::fs::write(&path, &data).unwrap();
    let file = open_direct(&path);
    let r = Harness::new();

    // Cut to whole blocks, again and again, the reads still come back whole.
    for _ in 0..20 {
        assert_eq!(r.read(&file, 0, 4 * BLOCK).unwrap(), data);
        assert_eq!(
            r.read(&file, BLOCK as u64, 4 * BLOCK).unwrap(),
            data[BLOCK..]
        );
    }

    // From the last block, 3 blocks asked: the first read is cut (to 1 or 2 blocks) and reads the
    // 904 bytes left. A continuation at the unaligned end would be a second read, cut too (2 blocks
    // of window left): exactly one cut per request means none was issued.
    let before = read_shorts();
    for _ in 0..10 {
        assert_eq!(
            r.read(&file, 3 * BLOCK as u64, 3 * BLOCK).unwrap(),
            data[3 * BLOCK..]
        );
    }
    assert_eq!(read_shorts() - before, 10, "a read was issued past the end");
    reactor_util::assert_pool_clean(&r.finish());
}
