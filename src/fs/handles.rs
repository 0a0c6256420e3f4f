//! Open file and directory handles, by the `fh` number the kernel hands back with each request.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use super::dirstream::DirStream;
use super::passthrough::Served;

/// What an `fh` refers to.
pub enum Handle {
    File(OpenFile),
    Dir(Arc<Mutex<DirStream>>),
}

/// An open backing file.
pub struct OpenFile {
    pub file: Arc<File>,
    /// Opened for writing: writes through it change the file as the kernel's cache knows it.
    pub writable: bool,
    /// `file` was opened with O_DIRECT: its writes bypass the backing page cache.
    pub direct: bool,
    /// For an O_DIRECT handle: the same file opened without O_DIRECT, for the writes the kernel
    /// flushes from its page cache through this handle (the writeback cache's, and a shared
    /// mapping's: mmap works on O_DIRECT descriptors too). Those writes are neither aligned nor
    /// meant to bypass the cache. Opened at the first such write.
    pub buffered_twin: Arc<OnceLock<Arc<File>>>,
    /// Under `--passthrough`: who serves this open's reads and writes (the handle is registered
    /// either way, for the requests that still come).
    pub served: Option<Served>,
}

impl OpenFile {
    pub fn new(file: File, writable: bool, direct: bool) -> Self {
        OpenFile {
            file: Arc::new(file),
            writable,
            direct,
            buffered_twin: Arc::default(),
            served: None,
        }
    }
}

/// The descriptor a write goes to.
pub enum WriteTarget {
    /// This descriptor; `direct`: it is O_DIRECT.
    Ready { file: Arc<File>, direct: bool },
    /// A write from the kernel's page cache through an O_DIRECT handle whose buffered twin is not
    /// open yet: the caller opens it (outside the table's lock) and puts it in `slot`.
    NeedsTwin {
        file: Arc<File>,
        slot: Arc<OnceLock<Arc<File>>>,
    },
}

pub struct HandleTable {
    next: AtomicU64,
    map: RwLock<HashMap<u64, Handle>>,
}

impl Default for HandleTable {
    fn default() -> Self {
        HandleTable {
            next: AtomicU64::new(1),
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl HandleTable {
    /// Registers `handle` and returns its new, never reused number.
    pub fn insert(&self, handle: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fh, handle);
        fh
    }

    /// What `pick` takes from the handle `fh`, cloned under the read lock (only that, not the
    /// whole handle: this is on every read and write).
    fn pick<T>(&self, fh: u64, pick: impl FnOnce(&Handle) -> Option<&T>) -> Option<T>
    where
        T: Clone,
    {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        pick(map.get(&fh)?).cloned()
    }

    /// The open file behind `fh`, if it is one.
    pub fn file(&self, fh: u64) -> Option<Arc<File>> {
        self.file_and_direct(fh).map(|(file, _)| file)
    }

    /// The open file behind `fh`, if it is one, and whether it was opened with O_DIRECT.
    pub fn file_and_direct(&self, fh: u64) -> Option<(Arc<File>, bool)> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(&fh)? {
            Handle::File(f) => Some((f.file.clone(), f.direct)),
            Handle::Dir(_) => None,
        }
    }

    /// Who serves the handle `fh` under `--passthrough`.
    pub fn served(&self, fh: u64) -> Option<Served> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(&fh)? {
            Handle::File(f) => f.served,
            Handle::Dir(_) => None,
        }
    }

    /// Where a write through `fh` goes (`from_cache`: one the kernel flushes from its page cache).
    pub fn file_for_write(&self, fh: u64, from_cache: bool) -> Option<WriteTarget> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let Handle::File(f) = map.get(&fh)? else {
            return None;
        };
        Some(if from_cache && f.direct {
            match f.buffered_twin.get() {
                Some(twin) => WriteTarget::Ready {
                    file: twin.clone(),
                    direct: false,
                },
                None => WriteTarget::NeedsTwin {
                    file: f.file.clone(),
                    slot: f.buffered_twin.clone(),
                },
            }
        } else {
            WriteTarget::Ready {
                file: f.file.clone(),
                direct: f.direct,
            }
        })
    }

    /// The directory stream behind `fh`, if it is one.
    pub fn dir(&self, fh: u64) -> Option<Arc<Mutex<DirStream>>> {
        self.pick(fh, |h| match h {
            Handle::Dir(d) => Some(d),
            Handle::File(_) => None,
        })
    }

    pub fn remove(&self, fh: u64) -> Option<Handle> {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh)
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(t: WriteTarget) -> (Arc<File>, bool) {
        match t {
            WriteTarget::Ready { file, direct } => (file, direct),
            WriteTarget::NeedsTwin { .. } => panic!("expected a ready descriptor"),
        }
    }

    #[test]
    fn insert_get_remove() {
        let t = HandleTable::default();
        let a = t.insert(Handle::File(OpenFile::new(
            File::open("/").unwrap(),
            false,
            false,
        )));
        let b = t.insert(Handle::File(OpenFile::new(
            File::open("/").unwrap(),
            true,
            true,
        )));
        assert_ne!(a, b);
        assert!(t.file(a).is_some());
        assert!(t.dir(a).is_none());
        // An O_DIRECT handle writes directly through its own descriptor...
        let main = t.file(b).unwrap();
        let (direct, is_direct) = ready(t.file_for_write(b, false).unwrap());
        assert!(Arc::ptr_eq(&main, &direct) && is_direct);
        // ...and the kernel's cached writes through a buffered twin, opened at the first one.
        let Some(WriteTarget::NeedsTwin { file, slot }) = t.file_for_write(b, true) else {
            panic!("the twin is opened on demand");
        };
        assert!(Arc::ptr_eq(&main, &file));
        let twin = Arc::new(File::open("/tmp").unwrap());
        slot.set(twin.clone()).unwrap();
        let (cached, is_direct) = ready(t.file_for_write(b, true).unwrap());
        assert!(Arc::ptr_eq(&twin, &cached) && !is_direct);
        // A buffered handle has one descriptor for both.
        for from_cache in [false, true] {
            let (f, is_direct) = ready(t.file_for_write(a, from_cache).unwrap());
            assert!(Arc::ptr_eq(&t.file(a).unwrap(), &f) && !is_direct);
        }
        assert!(t.remove(a).is_some());
        assert!(t.file(a).is_none());
        assert!(t.remove(a).is_none());
        assert_eq!(t.len(), 1);
    }
}
