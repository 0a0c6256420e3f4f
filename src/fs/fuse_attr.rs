//! Converting backing-file metadata (`Stat`, `d_type`) into what FUSE replies carry (fuser's
//! `FileAttr`, `FileType`). The attribute operations (getattr, setattr) are in `attr_ops`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use rustix::fs::Stat;

/// A point in time from seconds and nanoseconds since the epoch (negative seconds allowed).
pub fn system_time(secs: i64, nsecs: i64) -> SystemTime {
    let nsecs = nsecs.clamp(0, 999_999_999) as u32;
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsecs as u64)
    }
}

/// The FUSE file type of a `st_mode`.
pub fn file_type(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

/// The FUSE file type of a directory entry's `d_type`, if it is known.
pub fn dirent_type(ft: rustix::fs::FileType) -> FileType {
    use rustix::fs::FileType as T;
    match ft {
        T::Directory => FileType::Directory,
        T::Symlink => FileType::Symlink,
        T::Fifo => FileType::NamedPipe,
        T::CharacterDevice => FileType::CharDevice,
        T::BlockDevice => FileType::BlockDevice,
        T::Socket => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

/// The attributes of `st`, reported under node id `ino`.
pub fn file_attr(ino: u64, st: &Stat) -> FileAttr {
    let mode = st.st_mode;
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: system_time(st.st_atime, st.st_atime_nsec as i64),
        mtime: system_time(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: system_time(st.st_ctime, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind: file_type(mode),
        perm: (mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_keep_nanoseconds_and_sign() {
        let t = system_time(5, 123);
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::new(5, 123));
        let t = system_time(-2, 500_000_000);
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn file_types_map() {
        assert_eq!(file_type(libc::S_IFDIR | 0o755), FileType::Directory);
        assert_eq!(file_type(libc::S_IFLNK), FileType::Symlink);
        assert_eq!(file_type(libc::S_IFREG | 0o644), FileType::RegularFile);
        assert_eq!(file_type(libc::S_IFSOCK), FileType::Socket);
    }
}
