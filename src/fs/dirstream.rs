//! A directory being listed, with offsets the kernel can come back to.
//!
//! FUSE offsets are the backing filesystem's own `d_off` cookies, which stay valid across calls (and
//! across entries being added or removed meanwhile), so a listing of any size resumes exactly where
//! the previous reply ended. An entry read from the backing directory that did not fit in a reply is
//! kept and handed out first next time.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;

use fuser::FileType;
use rustix::fs::Dir;

use super::fuse_attr::dirent_type;

/// One directory entry.
pub struct Entry {
    pub name: OsString,
    pub ino: u64,
    pub kind: FileType,
    /// The offset that resumes the listing right after this entry.
    pub next_offset: u64,
}

impl Entry {
    pub fn is_dot_or_dotdot(&self) -> bool {
        self.name == "." || self.name == ".."
    }
}

pub struct DirStream {
    dir: Dir,
    /// The offset of the next entry `next()` hands out.
    position: u64,
    unsent: Option<Entry>,
}

impl DirStream {
    /// Lists the directory open on `fd` (opened for reading, not `O_PATH`).
    pub fn new(fd: OwnedFd) -> rustix::io::Result<Self> {
        Ok(DirStream {
            dir: Dir::new(fd)?,
            position: 0,
            unsent: None,
        })
    }

    /// Makes the next entry the one that follows `offset` (0: the start).
    pub fn seek(&mut self, offset: u64) -> rustix::io::Result<()> {
        if offset == self.position {
            return Ok(());
        }
        self.unsent = None;
        if offset == 0 {
            self.dir.rewind();
        } else {
            self.dir.seek(offset as i64)?;
        }
        self.position = offset;
        Ok(())
    }

    /// The next entry, if any. Call [`consumed`](Self::consumed) once it is in a reply, or
    /// [`unread`](Self::unread) if it did not fit.
    pub fn next_entry(&mut self) -> Option<rustix::io::Result<Entry>> {
        if let Some(e) = self.unsent.take() {
            return Some(Ok(e));
        }
        let e = match self.dir.read()? {
            Ok(e) => e,
            Err(err) => return Some(Err(err)),
        };
        Some(Ok(Entry {
            name: OsString::from_vec(e.file_name().to_bytes().to_vec()),
            ino: e.ino(),
            kind: dirent_type(e.file_type()),
            next_offset: e.offset() as u64,
        }))
    }

    /// The entry made it into a reply: the listing continues after it.
    pub fn consumed(&mut self, entry: &Entry) {
        self.position = entry.next_offset;
    }

    /// The entry did not fit: hand it out again first.
    pub fn unread(&mut self, entry: Entry) {
        self.unsent = Some(entry);
    }

    /// The directory descriptor, for fsyncdir.
    pub fn fd(&self) -> rustix::io::Result<std::os::fd::BorrowedFd<'_>> {
        self.dir.fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn open_dir(p: &std::path::Path) -> DirStream {
        DirStream::new(OwnedFd::from(std::fs::File::open(p).unwrap())).unwrap()
    }

    #[test]
    fn resumes_at_any_offset_without_loss_or_repeat() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..500 {
            std::fs::write(tmp.path().join(format!("f{i}")), b"").unwrap();
        }
        let mut s = open_dir(tmp.path());
        let mut seen = BTreeSet::new();
        let mut offset = 0;
        // Take 7 entries per "reply", pretending the 8th did not fit, like a full FUSE buffer.
        loop {
            s.seek(offset).unwrap();
            let mut n = 0;
            let mut done = true;
            while let Some(e) = s.next_entry() {
                let e = e.unwrap();
                if n == 7 {
                    s.unread(e);
                    done = false;
                    break;
                }
                assert!(seen.insert(e.name.clone()), "{:?} listed twice", e.name);
                s.consumed(&e);
                offset = e.next_offset;
                n += 1;
            }
            if done {
                break;
            }
        }
        assert_eq!(seen.len(), 502);
        // A fresh stream seeking to an offset from the first one continues from there too.
        let mut s2 = open_dir(tmp.path());
        s2.seek(0).unwrap();
        let first = s2.next_entry().unwrap().unwrap();
        let mut s3 = open_dir(tmp.path());
        s3.seek(first.next_offset).unwrap();
        let second = s3.next_entry().unwrap().unwrap();
        assert_ne!(first.name, second.name);
    }
}
