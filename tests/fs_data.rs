//! Data operations through the mount: open/create flags, read/write small and big, O_APPEND with
//! several writers, flush/release, fsync/fdatasync, fallocate modes, SEEK_DATA/SEEK_HOLE, files
//! over 4 GiB, open-unlinked files, shared mmap. Each check runs on a plain directory and through
//! arsyncfs in each cache mode (see tests/common/fs_util.rs).

#[path = "common/mount.rs"]
mod mount;
#[path = "common/rng.rs"]
mod rng;
#[macro_use]
#[path = "common/fs_util.rs"]
mod fs_util;
#[path = "common/mapping.rs"]
mod mapping;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, symlink};

use fs_util::*;
use mapping::Mapping;
use rustix::fs::FallocateFlags;

// Each check also runs under `--cache always` and `--cache never`: what a program does through
// the mount must work whatever the kernel caches.
fs_tests!(
    cache_modes:
    read_write_small,
    read_write_big,
    parallel_preads,
    open_create_flags,
    append_two_writers,
    append_concurrent,
    flush_release,
    fsync_fdatasync,
    fallocate_modes,
    seek_data_hole,
    over_4gib,
    open_unlinked,
    mmap_shared,
    o_direct,
    copy_file_range,
    locks,
);

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

fn create_rw(path: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
}

/// pread that loops over short reads until `len` bytes or EOF.
fn pread_full(f: &File, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], off + got as u64).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    buf
}

fn read_write_small(env: &Env) {
    let f = create_rw(&env.v("f"));
    assert_eq!(f.write_at(b"hello", 0).unwrap(), 5);
    assert_eq!(f.write_at(b"XY", 3).unwrap(), 2);
    assert_eq!(f.write_at(b"", 3).unwrap(), 0, "empty write");
    assert_eq!(pread_full(&f, 0, 100), b"helXY");
    assert_eq!(f.write_at(b"!", 10).unwrap(), 1);
    let want = b"helXY\0\0\0\0\0!";
    assert_eq!(
        pread_full(&f, 0, 100),
        want,
        "a write past EOF leaves zeros in the gap"
    );
    assert_eq!(pread_full(&f, 4, 1), b"Y");
    let mut one = [0u8; 10];
    assert_eq!(f.read_at(&mut one, 11).unwrap(), 0, "read at EOF");
    assert_eq!(f.read_at(&mut one, 1000).unwrap(), 0, "read past EOF");
    assert_eq!(f.read_at(&mut one[..0], 0).unwrap(), 0, "empty read");
    assert_eq!(f.metadata().unwrap().len(), 11);
    // Sequential write/read with the file position.
    let mut f2 = OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.v("f"))
        .unwrap();
    f2.write_all(b"AB").unwrap();
    let mut rest = Vec::new();
    f2.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"lXY\0\0\0\0\0!", "the position follows writes");
    assert_eq!(f2.stream_position().unwrap(), 11);
    drop(f2);
    drop(f);
    assert_content(env, "f", b"ABlXY\0\0\0\0\0!");
    assert_eq!(same_attrs(env, "f").size(), 11);

    // Every small size, each with its own pattern.
    for len in [1usize, 2, 3, 511, 512, 513, 4095, 4096, 4097] {
        let name = format!("s{len}");
        let data = pseudo_random(len as u64, len);
        write_file(env, &name, &data);
        assert_content(env, &name, &data);
    }
}

fn read_write_big(env: &Env) {
    let len = 3 * MIB as usize + 12_345;
    let data = pseudo_random(42, len);
    let mut f = create_rw(&env.v("big"));
    // Odd-sized sequential writes.
    for chunk in data.chunks(65_537) {
        f.write_all(chunk).unwrap();
    }
    // Whole-file read, and reads in odd-sized chunks at odd offsets, through the open file.
    assert_bytes_eq(
        &pread_full(&f, 0, len + 100),
        &data,
        "pread of the whole file",
    );
    let mut off = 0usize;
    while off < len {
        let n = 131_071.min(len - off);
        assert_bytes_eq(
            &pread_full(&f, off as u64, n),
            &data[off..off + n],
            "chunked pread",
        );
        off += n;
    }
    // One write bigger than any FUSE request (the kernel splits it), overlapping the old data.
    let over = pseudo_random(43, 2 * MIB as usize + 3);
    let mut want = data.clone();
    let at = MIB as usize + 1;
    want[at..at + over.len()].copy_from_slice(&over);
    f.write_all_at(&over, at as u64).unwrap();
    assert_bytes_eq(&pread_full(&f, 0, len), &want, "after the big overwrite");
    drop(f);
    assert_content(env, "big", &want);
    assert_eq!(same_attrs(env, "big").size(), len as u64);

    // Unaligned write straddling page boundaries, then read back through a fresh open.
    let f = OpenOptions::new().write(true).open(env.v("big")).unwrap();
    let patch = pseudo_random(44, 10_000);
    f.write_all_at(&patch, 4093).unwrap();
    want[4093..4093 + patch.len()].copy_from_slice(&patch);
    drop(f);
    assert_content(env, "big", &want);
}

/// Several threads reading different ranges of one file at once through their own descriptors.
fn parallel_preads(env: &Env) {
    let len = 2 * MIB as usize;
    let data = std::sync::Arc::new(pseudo_random(5, len));
    write_file(env, "f", &data);
    let path = env.v("f");
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let data = data.clone();
            let path = path.clone();
            s.spawn(move || {
                let f = File::open(&path).unwrap();
                let offsets = pseudo_random(100 + t, 8 * 200);
                for i in 0..200 {
                    let r = u64::from_le_bytes(offsets[i * 8..i * 8 + 8].try_into().unwrap());
                    let off = (r % len as u64) as usize;
                    let n = 1 + ((r >> 32) % 200_000) as usize;
                    let end = (off + n).min(len);
                    let got = pread_full(&f, off as u64, n);
                    assert_bytes_eq(
                        &got,
                        &data[off..end],
                        &format!("thread {t} pread {off}+{n}"),
                    );
                }
            });
        }
    });
}

fn open_create_flags(env: &Env) {
    // O_CREAT|O_EXCL on a new name creates it with the given mode.
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(env.v("new"))
        .unwrap();
    drop(f);
    let m = same_attrs(env, "new");
    assert_eq!(m.mode(), libc::S_IFREG | 0o600);
    assert_eq!((m.size(), m.uid(), m.gid()), (0, 0, 0));
    // The umask (022) applies.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(env.v("masked"))
        .unwrap();
    assert_eq!(same_attrs(env, "masked").mode(), libc::S_IFREG | 0o644);

    // O_CREAT|O_EXCL on an existing name: EEXIST, content untouched. Also for a dangling symlink.
    write_file(env, "old", b"keep me");
    expect_err(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(env.v("old")),
        libc::EEXIST,
        "O_EXCL on an existing file",
    );
    assert_content(env, "old", b"keep me");
    symlink("nowhere", env.v("dangling")).unwrap();
    expect_err(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(env.v("dangling")),
        libc::EEXIST,
        "O_EXCL on a dangling symlink",
    );
    assert_absent(env, "nowhere");
    // O_CREAT without O_EXCL through a dangling symlink creates the target.
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(env.v("dangling"))
        .unwrap()
        .write_all(b"via link")
        .unwrap();
    assert_content(env, "nowhere", b"via link");

    // O_CREAT on an existing file opens it as it is.
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(env.v("old"))
        .unwrap();
    assert_content(env, "old", b"keep me");

    // O_TRUNC empties it.
    fs::write(env.v("t"), pseudo_random(9, 100_000)).unwrap();
    let f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(env.v("t"))
        .unwrap();
    assert_eq!(f.metadata().unwrap().len(), 0);
    assert_eq!(same_attrs(env, "t").size(), 0);
    drop(f);
    assert_content(env, "t", b"");
    // O_TRUNC|O_CREAT then write: only the new data.
    fs::write(env.v("t"), b"short").unwrap();
    assert_content(env, "t", b"short");

    expect_err(
        File::open(env.v("missing")),
        libc::ENOENT,
        "open a missing file",
    );
    fs::create_dir(env.v("d")).unwrap();
    expect_err(
        OpenOptions::new().write(true).open(env.v("d")),
        libc::EISDIR,
        "open a directory for writing",
    );
    expect_err(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(env.v("old")),
        libc::ENOTDIR,
        "O_DIRECTORY on a file",
    );
    expect_err(
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(env.v("dangling")),
        libc::ELOOP,
        "O_NOFOLLOW on a symlink",
    );
}

fn open_append(path: &std::path::Path) -> File {
    OpenOptions::new().append(true).open(path).unwrap()
}

/// Two descriptors opened with O_APPEND, writing in turn: every write lands at the end.
fn append_two_writers(env: &Env) {
    write_file(env, "log", b"start\n");
    let mut a = open_append(&env.v("log"));
    let mut b = open_append(&env.v("log"));
    let mut want = b"start\n".to_vec();
    for i in 0..50 {
        let la = format!("a{i}\n");
        let lb = format!("bb{i}\n");
        a.write_all(la.as_bytes()).unwrap();
        want.extend_from_slice(la.as_bytes());
        b.write_all(lb.as_bytes()).unwrap();
        want.extend_from_slice(lb.as_bytes());
    }
    // pwrite on an O_APPEND descriptor appends too on Linux (pwrite(2), BUGS).
    a.write_at(b"P\n", 0).unwrap();
    want.extend_from_slice(b"P\n");
    assert_eq!(a.metadata().unwrap().len(), want.len() as u64);
    drop((a, b));
    assert_content(env, "log", &want);
}

/// Two threads appending fixed-size records at the same time: no record lost or torn.
fn append_concurrent(env: &Env) {
    const REC: usize = 64;
    const N: usize = 2000;
    fs::write(env.v("log"), b"").unwrap();
    let path = env.v("log");
    std::thread::scope(|s| {
        for t in 0..2 {
            let path = path.clone();
            s.spawn(move || {
                let mut f = open_append(&path);
                for i in 0..N {
                    let mut rec = format!("writer {t} record {i:06} ").into_bytes();
                    rec.resize(REC - 1, b'.');
                    rec.push(b'\n');
                    f.write_all(&rec).unwrap();
                }
            });
        }
    });
    let content = fs::read(env.v("log")).unwrap();
    assert_bytes_eq(
        &fs::read(env.b("log")).unwrap(),
        &content,
        "backing vs view",
    );
    assert_eq!(
        content.len(),
        2 * N * REC,
        "total size of the appended records"
    );
    let mut seen = HashSet::new();
    let mut next = [0usize; 2];
    for rec in content.chunks(REC) {
        let s = std::str::from_utf8(rec).expect("record is text");
        let parts: Vec<&str> = s.split_whitespace().collect();
        assert!(
            parts.len() == 5 && parts[0] == "writer" && parts[2] == "record",
            "torn record {s:?}"
        );
        let t: usize = parts[1].parse().unwrap();
        let i: usize = parts[3].parse().unwrap();
        assert_eq!(i, next[t], "writer {t}'s records out of order");
        next[t] += 1;
        assert!(seen.insert((t, i)));
    }
    assert_eq!(next, [N, N]);
}

fn flush_release(env: &Env) {
    let data = pseudo_random(11, 300_000);
    let mut f = create_rw(&env.v("f"));
    f.write_all(&data).unwrap();
    close_checked(f).expect("close after writing returns 0");
    let b = fs::read(env.b("f")).unwrap();
    assert_bytes_eq(&b, &data, "backing content after close");
    assert_content(env, "f", &data);

    // A dup'd descriptor: closing one (a flush) keeps the other usable.
    let f = OpenOptions::new().write(true).open(env.v("f")).unwrap();
    let g = f.try_clone().unwrap();
    f.write_all_at(b"first", 0).unwrap();
    close_checked(f).unwrap();
    g.write_all_at(b"second", 5).unwrap();
    close_checked(g).unwrap();
    let mut want = data.clone();
    want[..11].copy_from_slice(b"firstsecond");
    assert_content(env, "f", &want);

    // Read-only opens, opened and closed many times (release of each).
    for _ in 0..200 {
        let f = File::open(env.v("f")).unwrap();
        close_checked(f).unwrap();
    }
    // Many files open at once, all released.
    let files: Vec<File> = (0..100)
        .map(|i| {
            let f = create_rw(&env.v(&format!("m{i}")));
            f.write_all_at(format!("{i}").as_bytes(), 0).unwrap();
            f
        })
        .collect();
    for f in files {
        close_checked(f).unwrap();
    }
    for i in 0..100 {
        assert_content(env, &format!("m{i}"), format!("{i}").as_bytes());
    }
}

fn fsync_fdatasync(env: &Env) {
    let data = pseudo_random(12, 200_000);
    let mut f = create_rw(&env.v("f"));
    f.write_all(&data).unwrap();
    f.sync_all().expect("fsync");
    assert_bytes_eq(&fs::read(env.b("f")).unwrap(), &data, "backing after fsync");
    f.write_all_at(b"changed", 100).unwrap();
    f.sync_data().expect("fdatasync");
    let mut want = data.clone();
    want[100..107].copy_from_slice(b"changed");
    assert_bytes_eq(
        &fs::read(env.b("f")).unwrap(),
        &want,
        "backing after fdatasync",
    );
    drop(f);
    // fsync on a read-only descriptor, and on a directory (fsyncdir).
    File::open(env.v("f"))
        .unwrap()
        .sync_all()
        .expect("fsync of O_RDONLY fd");
    fs::create_dir(env.v("d")).unwrap();
    write_file(env, "d/x", b"x");
    let d = File::open(env.v("d")).unwrap();
    d.sync_all().expect("fsync of a directory");
    d.sync_data().expect("fdatasync of a directory");
    File::open(&env.view)
        .unwrap()
        .sync_all()
        .expect("fsync of the root directory");
    assert_content(env, "f", &want);
}

fn fallocate(f: &File, mode: FallocateFlags, off: u64, len: u64) -> std::io::Result<()> {
    rustix::fs::fallocate(f, mode, off, len).map_err(Into::into)
}

fn fallocate_modes(env: &Env) {
    // Plain mode: allocates and extends.
    let f = create_rw(&env.v("plain"));
    fallocate(&f, FallocateFlags::empty(), 0, MIB).unwrap();
    let m = same_attrs(env, "plain");
    assert_eq!(m.size(), MIB);
    assert!(
        m.blocks() * 512 >= MIB,
        "fallocate allocated only {} blocks",
        m.blocks()
    );
    assert_eq!(
        lstat(&env.b("plain")).blocks(),
        m.blocks(),
        "st_blocks view vs backing"
    );
    assert_content(env, "plain", &vec![0u8; MIB as usize]);

    // KEEP_SIZE: blocks without size.
    let f = create_rw(&env.v("keep"));
    fallocate(&f, FallocateFlags::KEEP_SIZE, 0, MIB).unwrap();
    let m = same_attrs(env, "keep");
    assert_eq!(m.size(), 0, "KEEP_SIZE must not change the size");
    assert!(
        m.blocks() * 512 >= MIB,
        "KEEP_SIZE allocated only {} blocks",
        m.blocks()
    );
    assert_eq!(lstat(&env.b("keep")).blocks(), m.blocks());
    drop(f);

    // PUNCH_HOLE: st_blocks drops, the range reads as zeros, the size stays.
    let data = pseudo_random(13, MIB as usize);
    let f = create_rw(&env.v("punch"));
    f.write_all_at(&data, 0).unwrap();
    f.sync_all().unwrap();
    let before = same_attrs(env, "punch").blocks();
    fallocate(
        &f,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        256 * KIB,
        512 * KIB,
    )
    .unwrap();
    let m = same_attrs(env, "punch");
    assert_eq!(m.size(), MIB);
    assert!(
        m.blocks() + 512 * KIB / 512 <= before,
        "punching 512 KiB took st_blocks only from {before} to {}",
        m.blocks()
    );
    assert_eq!(lstat(&env.b("punch")).blocks(), m.blocks());
    let mut want = data.clone();
    want[256 * KIB as usize..768 * KIB as usize].fill(0);
    assert_bytes_eq(
        &pread_full(&f, 0, MIB as usize),
        &want,
        "after punch, open fd",
    );
    assert_content(env, "punch", &want);
    expect_err(
        fallocate(&f, FallocateFlags::PUNCH_HOLE, 0, 4096),
        libc::EOPNOTSUPP,
        "PUNCH_HOLE without KEEP_SIZE",
    );

    // ZERO_RANGE: zeros inside, size unchanged; past EOF it extends unless KEEP_SIZE.
    fallocate(&f, FallocateFlags::ZERO_RANGE, 10, 5000).unwrap();
    want[10..5010].fill(0);
    assert_bytes_eq(&pread_full(&f, 0, MIB as usize), &want, "after zero range");
    assert_eq!(same_attrs(env, "punch").size(), MIB);
    fallocate(
        &f,
        FallocateFlags::ZERO_RANGE | FallocateFlags::KEEP_SIZE,
        MIB,
        8192,
    )
    .unwrap();
    assert_eq!(same_attrs(env, "punch").size(), MIB);
    fallocate(&f, FallocateFlags::ZERO_RANGE, MIB, 8192).unwrap();
    assert_eq!(same_attrs(env, "punch").size(), MIB + 8192);
    want.resize((MIB + 8192) as usize, 0);
    drop(f);
    assert_content(env, "punch", &want);

    // Bad arguments.
    let f = File::open(env.v("keep")).unwrap();
    expect_err(
        fallocate(&f, FallocateFlags::empty(), 0, 4096),
        libc::EBADF,
        "fallocate on a read-only fd",
    );
    let f = open_rw(&env.v("keep"));
    expect_err(
        fallocate(&f, FallocateFlags::empty(), 0, 0),
        libc::EINVAL,
        "fallocate of length 0",
    );
}

fn seek_data_hole(env: &Env) {
    use rustix::fs::SeekFrom as S;
    let f = create_rw(&env.v("sparse"));
    f.set_len(2 * MIB).unwrap();
    f.write_all_at(&[0xaa; 4096], 0).unwrap();
    f.write_all_at(&[0xbb; 4096], MIB).unwrap();
    let b = File::open(env.b("sparse")).unwrap();
    let seeks = [
        S::Data(0),
        S::Hole(0),
        S::Data(4096),
        S::Hole(MIB),
        S::Data(MIB + 4096),
        S::Hole(MIB + 4096),
        S::Hole(2 * MIB - 1),
        S::Data(2 * MIB),
        S::Hole(2 * MIB),
    ];
    let expected: [Result<u64, i32>; 9] = [
        Ok(0),
        Ok(4096),
        Ok(MIB),
        Ok(MIB + 4096),
        Err(libc::ENXIO),
        Ok(MIB + 4096),
        Ok(2 * MIB - 1),
        Err(libc::ENXIO),
        Err(libc::ENXIO),
    ];
    for (s, want) in seeks.iter().zip(expected) {
        let got = rustix::fs::seek(&f, *s).map_err(|e| e.raw_os_error());
        if env.writeback {
            // The kernel answers from its own pages (see docs/semantics.md).
            assert_eq!(got, whole_file_is_data(*s, 2 * MIB), "{s:?}");
            continue;
        }
        let in_backing = rustix::fs::seek(&b, *s).map_err(|e| e.raw_os_error());
        assert_eq!(got, in_backing, "{s:?}: view vs backing");
        assert_eq!(got, want, "{s:?}");
    }
    // The position is where SEEK_DATA put it.
    let mut f2 = File::open(env.v("sparse")).unwrap();
    let pos = rustix::fs::seek(&f2, S::Data(4096)).unwrap();
    let mut buf = [0u8; 4];
    f2.read_exact(&mut buf).unwrap();
    if env.writeback {
        assert_eq!((pos, buf), (4096, [0; 4]));
    } else {
        assert_eq!((pos, buf), (MIB, [0xbb; 4]));
    }
    // A file that is one hole.
    let h = create_rw(&env.v("hole"));
    h.set_len(MIB).unwrap();
    let (data, hole) = if env.writeback {
        (Ok(0), MIB)
    } else {
        (Err(libc::ENXIO), 0)
    };
    assert_eq!(
        rustix::fs::seek(&h, S::Data(0)).map_err(|e| e.raw_os_error()),
        data
    );
    assert_eq!(rustix::fs::seek(&h, S::Hole(0)).unwrap(), hole);
}

/// What lseek(2) gives for a file of `size` bytes that counts as data throughout, as the kernel
/// answers SEEK_DATA and SEEK_HOLE for a filesystem that does not (lseek(2) allows it).
fn whole_file_is_data(s: rustix::fs::SeekFrom, size: u64) -> Result<u64, i32> {
    use rustix::fs::SeekFrom as S;
    match s {
        S::Data(o) if o < size => Ok(o),
        S::Hole(o) if o < size => Ok(size),
        _ => Err(libc::ENXIO),
    }
}

fn over_4gib(env: &Env) {
    let f = create_rw(&env.v("huge"));
    let tail = pseudo_random(21, 4096);
    f.write_all_at(&tail, 5 * GIB).unwrap();
    // Straddling the 32-bit boundary.
    f.write_all_at(b"edge", 4 * GIB - 2).unwrap();
    let size = 5 * GIB + 4096;
    assert_eq!(f.metadata().unwrap().len(), size);
    let m = same_attrs(env, "huge");
    assert_eq!(m.size(), size);
    assert!(
        m.blocks() * 512 < 4 * MIB,
        "sparse file has {} blocks",
        m.blocks()
    );
    assert_eq!(pread_full(&f, 5 * GIB, 8192), tail);
    assert_eq!(pread_full(&f, 4 * GIB - 2, 4), b"edge");
    assert_eq!(pread_full(&f, 3 * GIB, 4096), vec![0u8; 4096]);
    drop(f);
    for p in [env.v("huge"), env.b("huge")] {
        let f = File::open(&p).unwrap();
        assert_eq!(pread_full(&f, 5 * GIB, 4096), tail, "{}", p.display());
        assert_eq!(
            pread_full(&f, 4 * GIB - 4, 8),
            b"\0\0edge\0\0",
            "{}",
            p.display()
        );
        let mut f = f;
        assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), size);
    }
    // Truncate across the boundary.
    open_rw(&env.v("huge")).set_len(4 * GIB + 1).unwrap();
    let m = same_attrs(env, "huge");
    assert_eq!(m.size(), 4 * GIB + 1);
    let f = File::open(env.v("huge")).unwrap();
    assert_eq!(pread_full(&f, 4 * GIB - 2, 100), b"edg");
}

fn open_unlinked(env: &Env) {
    let data = pseudo_random(31, 100_000);
    write_file(env, "f", &data);
    let f = open_rw(&env.v("f"));
    fs::remove_file(env.v("f")).unwrap();
    assert_absent(env, "f");
    let st = f.metadata().unwrap();
    assert_eq!(
        (st.nlink(), st.len()),
        (0, 100_000),
        "fstat of an unlinked file"
    );
    assert_bytes_eq(&pread_full(&f, 0, 200_000), &data, "read after unlink");
    f.write_all_at(b"still writable", 50_000).unwrap();
    f.write_all_at(b"grows", 200_000).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 200_005);
    assert_eq!(pread_full(&f, 50_000, 14), b"still writable");
    assert_eq!(pread_full(&f, 200_000, 10), b"grows");
    f.set_len(10).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 10);
    assert_eq!(pread_full(&f, 0, 100), &data[..10]);
    f.sync_all().unwrap();
    f.sync_data().unwrap();
    // A new file under the old name is a different file.
    write_file(env, "f", b"new");
    assert_eq!(pread_full(&f, 0, 100), &data[..10]);
    assert_content(env, "f", b"new");
    close_checked(f).unwrap();

    // Renamed over while open: the old descriptor still reads and writes the old file.
    write_file(env, "a", b"old a");
    write_file(env, "b", b"new b");
    let old = open_rw(&env.v("a"));
    fs::rename(env.v("b"), env.v("a")).unwrap();
    assert_eq!(pread_full(&old, 0, 100), b"old a");
    old.write_all_at(b"OLD", 0).unwrap();
    assert_eq!(pread_full(&old, 0, 100), b"OLD a");
    old.set_len(2).unwrap();
    assert_eq!(old.metadata().unwrap().nlink(), 0);
    assert_content(env, "a", b"new b");
    close_checked(old).unwrap();
}

fn mmap_shared(env: &Env) {
    let len = 256 * KIB as usize;
    let initial = pseudo_random(51, len);
    write_file(env, "m", &initial);
    let f = open_rw(&env.v("m"));
    let mut map = Mapping::new(&f, len).expect("mmap");
    assert_bytes_eq(map.bytes(), &initial, "mapping shows the file");
    let new = pseudo_random(52, len);
    map.bytes().copy_from_slice(&new);
    map.msync().expect("msync");
    // read() through the same descriptor and through a fresh open agree with the mapping.
    assert_bytes_eq(&pread_full(&f, 0, len), &new, "pread after msync");
    assert_bytes_eq(
        &fs::read(env.v("m")).unwrap(),
        &new,
        "fresh read after msync",
    );
    assert_bytes_eq(&fs::read(env.b("m")).unwrap(), &new, "backing after msync");
    // A write() is seen through the mapping.
    f.write_all_at(b"XYZ", 100).unwrap();
    assert_eq!(&map.bytes()[100..103], b"XYZ", "mapping sees write()");
    // A store without msync, then munmap and close: the data reaches the file.
    map.bytes()[len - 5..].copy_from_slice(b"tail!");
    drop(map);
    close_checked(f).unwrap();
    let mut want = new.clone();
    want[100..103].copy_from_slice(b"XYZ");
    want[len - 5..].copy_from_slice(b"tail!");
    assert_bytes_eq(
        &fs::read(env.v("m")).unwrap(),
        &want,
        "view after munmap+close",
    );
    let f = File::open(env.v("m")).unwrap();
    f.sync_all().unwrap();
    assert_bytes_eq(
        &fs::read(env.b("m")).unwrap(),
        &want,
        "backing after munmap+close+fsync",
    );
    drop(f);

    // A private mapping never changes the file.
    let f = open_rw(&env.v("m"));
    let mut private = Mapping::with_flags(&f, len, libc::MAP_PRIVATE).expect("mmap");
    private.bytes()[..7].copy_from_slice(b"private");
    drop(private);
    drop(f);
    assert_content(env, "m", &want);
}

/// A `len`-byte slice of `storage` aligned to 4 KiB (what O_DIRECT needs on any backing device).
fn aligned(storage: &mut Vec<u8>, len: usize) -> &mut [u8] {
    storage.clear();
    storage.resize(len + 4096, 0);
    let off = storage.as_ptr().align_offset(4096);
    &mut storage[off..off + len]
}

fn open_direct(path: &std::path::Path, create: bool) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap_or_else(|e| panic!("open O_DIRECT {}: {e}", path.display()))
}

/// O_DIRECT reads and writes with aligned buffers, 4 KiB and 1 MiB, mixed with buffered I/O.
fn o_direct(env: &Env) {
    let f = open_direct(&env.v("d"), true);
    let big = pseudo_random(71, MIB as usize);
    let small = pseudo_random(72, 4096);
    let mut s1 = Vec::new();
    let buf = aligned(&mut s1, MIB as usize);
    buf.copy_from_slice(&big);
    f.write_all_at(buf, 0).expect("O_DIRECT 1 MiB write");
    let buf = aligned(&mut s1, 4096);
    buf.copy_from_slice(&small);
    f.write_all_at(buf, MIB + 8192)
        .expect("O_DIRECT 4 KiB write");
    let mut want = big.clone();
    want.resize((MIB + 8192) as usize, 0);
    want.extend_from_slice(&small);
    assert_eq!(f.metadata().unwrap().len(), want.len() as u64);

    // O_DIRECT reads: whole, 4 KiB pieces, and a read running past EOF (short).
    let mut s2 = Vec::new();
    let rbuf = aligned(&mut s2, want.len());
    let mut got = 0;
    while got < rbuf.len() {
        let n = f
            .read_at(&mut rbuf[got..], got as u64)
            .expect("O_DIRECT read");
        assert!(n > 0, "O_DIRECT read hit EOF early at {got}");
        got += n;
    }
    assert_bytes_eq(rbuf, &want, "O_DIRECT read of the whole file");
    for off in [0u64, 4096, MIB - 4096, MIB + 8192] {
        let rbuf = aligned(&mut s2, 4096);
        assert_eq!(f.read_at(rbuf, off).unwrap(), 4096);
        assert_bytes_eq(
            rbuf,
            &want[off as usize..off as usize + 4096],
            "O_DIRECT 4 KiB read",
        );
    }
    let rbuf = aligned(&mut s2, 8192);
    assert_eq!(
        f.read_at(rbuf, MIB + 8192).unwrap(),
        4096,
        "O_DIRECT read across EOF is short"
    );

    // Buffered and direct I/O see each other's writes.
    let buffered = open_rw(&env.v("d"));
    buffered.write_all_at(&[0x5a; 4096], 4096).unwrap();
    want[4096..8192].fill(0x5a);
    let rbuf = aligned(&mut s2, 8192);
    assert_eq!(f.read_at(rbuf, 0).unwrap(), 8192);
    assert_bytes_eq(rbuf, &want[..8192], "O_DIRECT read after a buffered write");
    let buf = aligned(&mut s1, 4096);
    buf.fill(0xa5);
    f.write_all_at(buf, 0).unwrap();
    want[..4096].fill(0xa5);
    assert_bytes_eq(
        &pread_full(&buffered, 0, 8192),
        &want[..8192],
        "buffered read after O_DIRECT write",
    );
    drop((f, buffered));
    assert_content(env, "d", &want);
}

fn copy_file_range(env: &Env) {
    let data = pseudo_random(81, 3 * MIB as usize + 100);
    write_file(env, "src", &data);
    let src = File::open(env.v("src")).unwrap();
    let dst = create_rw(&env.v("dst"));
    let (mut off_in, mut off_out) = (0u64, 4096u64);
    let mut left = data.len();
    while left > 0 {
        let n =
            rustix::fs::copy_file_range(&src, Some(&mut off_in), &dst, Some(&mut off_out), left)
                .expect("copy_file_range");
        assert!(
            n > 0,
            "copy_file_range made no progress with {left} bytes left"
        );
        left -= n;
    }
    assert_eq!(
        (off_in, off_out),
        (data.len() as u64, data.len() as u64 + 4096)
    );
    let mut want = vec![0u8; 4096];
    want.extend_from_slice(&data);
    drop(dst);
    assert_content(env, "dst", &want);
    assert_eq!(same_attrs(env, "dst").size(), want.len() as u64);
    // Within one file, non-overlapping ranges.
    let f = open_rw(&env.v("dst"));
    let (mut a, mut b) = (4096u64, 0u64);
    let n = rustix::fs::copy_file_range(&f, Some(&mut a), &f, Some(&mut b), 4096).unwrap();
    assert_eq!(n, 4096);
    want.copy_within(4096..8192, 0);
    drop(f);
    assert_content(env, "dst", &want);
    // Overlapping ranges in one file are refused.
    let f = open_rw(&env.v("dst"));
    let (mut a, mut b) = (0u64, 100u64);
    expect_errno(
        rustix::fs::copy_file_range(&f, Some(&mut a), &f, Some(&mut b), 4096),
        libc::EINVAL,
        "copy_file_range over overlapping ranges",
    );
}

/// F_OFD_SETLK / F_OFD_GETLK with `l_type` on [start, start+len).
fn ofd(
    f: &File,
    cmd: libc::c_int,
    l_type: i32,
    start: i64,
    len: i64,
) -> std::io::Result<libc::flock> {
    use std::os::fd::AsRawFd;
    let mut fl = libc::flock {
        l_type: l_type as _,
        l_whence: libc::SEEK_SET as _,
        l_start: start,
        l_len: len,
        l_pid: 0,
    };
    // SAFETY: `fl` is a valid, initialised struct flock that outlives the call.
    #[allow(unsafe_code)]
    let r = unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if r == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fl)
    }
}

/// flock and open-file-description record locks between two opens of one file.
fn locks(env: &Env) {
    use rustix::fs::FlockOperation as Op;
    write_file(env, "f", &[0u8; 1000]);
    let a = open_rw(&env.v("f"));
    let b = open_rw(&env.v("f"));
    rustix::fs::flock(&a, Op::NonBlockingLockExclusive).unwrap();
    expect_errno(
        rustix::fs::flock(&b, Op::NonBlockingLockShared),
        libc::EWOULDBLOCK,
        "flock shared against an exclusive flock",
    );
    rustix::fs::flock(&a, Op::Unlock).unwrap();
    rustix::fs::flock(&b, Op::NonBlockingLockShared).unwrap();
    rustix::fs::flock(&a, Op::NonBlockingLockShared).unwrap();
    expect_errno(
        rustix::fs::flock(&a, Op::NonBlockingLockExclusive),
        libc::EWOULDBLOCK,
        "flock upgrade while another holds it shared",
    );
    rustix::fs::flock(&a, Op::Unlock).unwrap();
    rustix::fs::flock(&b, Op::Unlock).unwrap();

    let wr = libc::F_WRLCK;
    let rd = libc::F_RDLCK;
    ofd(&a, libc::F_OFD_SETLK, wr, 0, 100).unwrap();
    expect_err(
        ofd(&b, libc::F_OFD_SETLK, rd, 50, 10),
        libc::EAGAIN,
        "OFD read lock in a write-locked range",
    );
    ofd(&b, libc::F_OFD_SETLK, wr, 100, 100).expect("OFD lock of the next range");
    let conflict = ofd(&b, libc::F_OFD_GETLK, wr, 0, 10).unwrap();
    assert_eq!(
        conflict.l_type as i32, wr,
        "F_OFD_GETLK reports the write lock"
    );
    assert_eq!((conflict.l_start, conflict.l_len), (0, 100));
    let free = ofd(&b, libc::F_OFD_GETLK, wr, 300, 10).unwrap();
    assert_eq!(
        free.l_type as i32,
        libc::F_UNLCK,
        "F_OFD_GETLK on a free range"
    );
    // Closing the description releases its locks: once its last reference is gone. A child that
    // another test thread of this process forks (to start a daemon) holds a copy of every
    // descriptor until it execs, so allow that moment to pass.
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while let Err(e) = ofd(&b, libc::F_OFD_SETLK, wr, 0, 100) {
        assert!(
            e.raw_os_error() == Some(libc::EAGAIN) && std::time::Instant::now() < deadline,
            "lock after the holder closed: {e}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let c = open_rw(&env.v("f"));
    expect_err(
        ofd(&c, libc::F_OFD_SETLK, rd, 0, 1),
        libc::EAGAIN,
        "locked by b",
    );
}
