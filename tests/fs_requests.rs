//! The kernel gives arsyncfs the big requests it asks for: 1 MiB writes and 1 MiB direct reads
//! (max_write and max_pages), as counted by the daemon and logged when the session ends.

#[path = "common/mount.rs"]
mod mount;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use mount::{Mounted, Signal};

fn logged_value(log: &str, field: &str) -> u64 {
    let start = log
        .find(&format!("{field}: "))
        .unwrap_or_else(|| panic!("{field} not in the log:\n{log}"));
    log[start + field.len() + 2..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn kernel_sends_one_mib_requests() {
    let mut m = Mounted::with_args(&["-v"]);
    let path = m.mountpoint().join("big");
    let data: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all(&data).unwrap();
    drop(f);

    // An O_DIRECT read of 4 MiB into aligned memory: the kernel splits it by max_pages only.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .unwrap();
    let mut buf = vec![0u8; (4 << 20) + 4096];
    let off = buf.as_ptr().align_offset(4096);
    let window = &mut buf[off..off + (4 << 20)];
    f.read_exact_at(window, 0).unwrap();
    assert!(window == &data[..], "O_DIRECT read returned other bytes");
    drop(f);

    m.signal(Signal::TERM);
    assert!(m.wait_exit().success());
    let log = m.stderr();
    assert_eq!(logged_value(&log, "largest_write"), 1 << 20, "{log}");
    assert_eq!(logged_value(&log, "largest_read"), 1 << 20, "{log}");
}

/// Unchanged files are served from the kernel's page cache across opens (auto_cache): a second
/// open and read of the same file sends no read to the daemon; after the backing file changed, the
/// next open reads afresh.
#[test]
fn unchanged_files_stay_cached_across_opens() {
    const SIZE: usize = 1 << 20;
    let old: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    let new: Vec<u8> = (0..SIZE).map(|i| (i % 241) as u8).collect();
    let mut m = Mounted::spawn(&["-v"], |backing| {
        std::fs::write(backing.join("f"), &old).unwrap();
    });
    let view = m.mountpoint().join("f");
    assert!(std::fs::read(&view).unwrap() == old, "first read");
    assert!(std::fs::read(&view).unwrap() == old, "second open");
    std::fs::write(m.backing().join("f"), &new).unwrap();
    assert!(
        std::fs::read(&view).unwrap() == new,
        "open after the backing changed"
    );

    m.signal(Signal::TERM);
    assert!(m.wait_exit().success());
    let log = m.stderr();
    let asked = logged_value(&log, "bytes_read") as usize;
    // The first open and the one after the change read the whole file from the daemon; the second
    // open read nothing.
    assert!(
        (2 * SIZE..3 * SIZE).contains(&asked),
        "bytes the kernel asked the daemon for: {asked}\n{log}"
    );
}
