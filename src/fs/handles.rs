//! Open file and directory handles, by the `fh` number the kernel hands back with each request.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::dirstream::DirStream;

/// What an `fh` refers to.
#[derive(Clone)]
pub enum Handle {
    File(Arc<File>),
    Dir(Arc<Mutex<DirStream>>),
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

    pub fn get(&self, fh: u64) -> Option<Handle> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fh)
            .cloned()
    }

    /// The open file behind `fh`, if it is one.
    pub fn file(&self, fh: u64) -> Option<Arc<File>> {
        match self.get(fh)? {
            Handle::File(f) => Some(f),
            Handle::Dir(_) => None,
        }
    }

    /// The directory stream behind `fh`, if it is one.
    pub fn dir(&self, fh: u64) -> Option<Arc<Mutex<DirStream>>> {
        match self.get(fh)? {
            Handle::Dir(d) => Some(d),
            Handle::File(_) => None,
        }
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
        let f = Arc::new(File::open("/").unwrap());
        let a = t.insert(Handle::File(f.clone()));
        let b = t.insert(Handle::File(f));
        assert_ne!(a, b);
        assert!(t.file(a).is_some());
        assert!(t.dir(a).is_none());
        assert!(t.remove(a).is_some());
        assert!(t.get(a).is_none());
        assert!(t.remove(a).is_none());
        assert_eq!(t.len(), 1);
    }
}
