//! Open file and directory handles, by the `fh` number the kernel hands back with each request.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::dirstream::DirStream;

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
    /// With the writeback cache, the kernel may flush any file's cached pages through any writable
    /// handle of it, an O_DIRECT one included. Those writes are neither aligned nor meant to bypass
    /// the cache, so an O_DIRECT handle keeps a second, buffered descriptor for them.
    pub cached_writes: Option<Arc<File>>,
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
        self.pick(fh, |h| match h {
            Handle::File(f) => Some(&f.file),
            Handle::Dir(_) => None,
        })
    }

    /// The descriptor for a write through `fh` (`from_cache`: one the kernel flushes from its page
    /// cache), and whether that descriptor is O_DIRECT.
    pub fn file_for_write(&self, fh: u64, from_cache: bool) -> Option<(Arc<File>, bool)> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(&fh)? {
            Handle::File(f) => match &f.cached_writes {
                Some(buffered) if from_cache => Some((buffered.clone(), false)),
                _ => Some((f.file.clone(), f.direct)),
            },
            Handle::Dir(_) => None,
        }
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

    #[test]
    fn insert_get_remove() {
        let t = HandleTable::default();
        let a = t.insert(Handle::File(OpenFile {
            file: Arc::new(File::open("/").unwrap()),
            writable: false,
            direct: false,
            cached_writes: None,
        }));
        let b = t.insert(Handle::File(OpenFile {
            file: Arc::new(File::open("/").unwrap()),
            writable: true,
            direct: true,
            cached_writes: Some(Arc::new(File::open("/tmp").unwrap())),
        }));
        assert_ne!(a, b);
        assert!(t.file(a).is_some());
        assert!(t.dir(a).is_none());
        // An O_DIRECT handle writes directly through its own descriptor, and the kernel's cached
        // writes through its buffered twin.
        let main = t.file(b).unwrap();
        let (direct, is_direct) = t.file_for_write(b, false).unwrap();
        assert!(Arc::ptr_eq(&main, &direct) && is_direct);
        let (cached, is_direct) = t.file_for_write(b, true).unwrap();
        assert!(!Arc::ptr_eq(&main, &cached) && !is_direct);
        // A buffered handle has one descriptor for both.
        for from_cache in [false, true] {
            let (f, is_direct) = t.file_for_write(a, from_cache).unwrap();
            assert!(Arc::ptr_eq(&t.file(a).unwrap(), &f) && !is_direct);
        }
        assert!(t.remove(a).is_some());
        assert!(t.file(a).is_none());
        assert!(t.remove(a).is_none());
        assert_eq!(t.len(), 1);
    }
}
