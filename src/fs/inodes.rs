//! The inode table: which backing object each FUSE node id stands for, and how many lookups the
//! kernel holds on it.
//!
//! Nodes are keyed by the backing `(st_dev, st_ino)`, so all hard links of a file share one node. A
//! node id is the backing inode number whenever that is unambiguous (same device as the backing root,
//! not FUSE's root id 1, below the synthetic range), so `st_ino` seen through the mount is stable
//! across forget/lookup cycles and matches the backing file (git, rsync -H, tar rely on that). Other
//! objects (submounts, collisions) get synthetic ids from the top half of the range.
//!
//! Each node holds an `O_PATH` descriptor of its backing object: every operation on it is relative to
//! that descriptor, never to a path. The table forgets a node (and closes its descriptor) when the
//! kernel's lookup count drops to zero.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

/// FUSE's fixed node id of the mount's root.
pub const ROOT_ID: u64 = 1;
const SYNTHETIC_BASE: u64 = 1 << 63;

/// Identity of a backing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub dev: u64,
    pub ino: u64,
}

struct Node {
    fd: Arc<OwnedFd>,
    key: InodeKey,
    lookups: u64,
}

struct Tables {
    by_id: HashMap<u64, Node>,
    by_key: HashMap<InodeKey, u64>,
    next_synthetic: u64,
}

pub struct InodeTable {
    root_dev: u64,
    tables: Mutex<Tables>,
}

impl InodeTable {
    /// A table holding only the root, which is never forgotten.
    pub fn new(root_fd: OwnedFd, root_key: InodeKey) -> Self {
        let mut by_id = HashMap::new();
        by_id.insert(
            ROOT_ID,
            Node {
                fd: Arc::new(root_fd),
                key: root_key,
                lookups: 1,
            },
        );
        let mut by_key = HashMap::new();
        by_key.insert(root_key, ROOT_ID);
        InodeTable {
            root_dev: root_key.dev,
            tables: Mutex::new(Tables {
                by_id,
                by_key,
                next_synthetic: SYNTHETIC_BASE,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `O_PATH` descriptor of node `id`.
    pub fn fd(&self, id: u64) -> Option<Arc<OwnedFd>> {
        self.lock().by_id.get(&id).map(|n| n.fd.clone())
    }

    /// If `key` is known, counts one more lookup and returns its id.
    pub fn lookup_known(&self, key: InodeKey) -> Option<u64> {
        let mut t = self.lock();
        let id = *t.by_key.get(&key)?;
        let node = t.by_id.get_mut(&id).expect("by_key and by_id agree");
        node.lookups += 1;
        Some(id)
    }

    /// Counts one lookup of `key`, registering it with descriptor `fd` if it is new (otherwise `fd` is
    /// dropped). Returns the node id.
    pub fn lookup(&self, key: InodeKey, fd: OwnedFd) -> u64 {
        let mut t = self.lock();
        if let Some(&id) = t.by_key.get(&key) {
            t.by_id
                .get_mut(&id)
                .expect("by_key and by_id agree")
                .lookups += 1;
            return id;
        }
        let natural = key.dev == self.root_dev && key.ino != ROOT_ID && key.ino < SYNTHETIC_BASE;
        let id = if natural && !t.by_id.contains_key(&key.ino) {
            key.ino
        } else {
            loop {
                let id = t.next_synthetic;
                t.next_synthetic = t.next_synthetic.checked_add(1).unwrap_or(SYNTHETIC_BASE);
                if !t.by_id.contains_key(&id) {
                    break id;
                }
            }
        };
        t.by_id.insert(
            id,
            Node {
                fd: Arc::new(fd),
                key,
                lookups: 1,
            },
        );
        t.by_key.insert(key, id);
        id
    }

    /// Drops `n` lookups of node `id`; forgets the node when none are left. The root is never forgotten.
    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT_ID {
            return;
        }
        let mut t = self.lock();
        let Some(node) = t.by_id.get_mut(&id) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            let node = t.by_id.remove(&id).expect("present");
            t.by_key.remove(&node.key);
        }
    }

    /// Number of nodes the table holds (root included).
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Whether only the root is left.
    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some_fd() -> OwnedFd {
        OwnedFd::from(std::fs::File::open("/").unwrap())
    }

    fn table() -> InodeTable {
        InodeTable::new(some_fd(), InodeKey { dev: 7, ino: 2 })
    }

    #[test]
    fn natural_ids_and_shared_hard_links() {
        let t = table();
        let k = InodeKey { dev: 7, ino: 100 };
        assert_eq!(t.lookup(k, some_fd()), 100);
        assert_eq!(t.lookup(k, some_fd()), 100, "a second link shares the node");
        assert_eq!(t.lookup_known(k), Some(100));
        assert_eq!(t.len(), 2);
        t.forget(100, 2);
        assert_eq!(t.len(), 2);
        t.forget(100, 1);
        assert_eq!(t.len(), 1, "forgotten when the count reaches zero");
        assert!(t.fd(100).is_none());
        assert!(t.lookup_known(k).is_none());
    }

    #[test]
    fn synthetic_ids_for_other_devices_and_root_clash() {
        let t = table();
        let other_dev = t.lookup(InodeKey { dev: 8, ino: 100 }, some_fd());
        assert!(other_dev >= SYNTHETIC_BASE);
        let clash = t.lookup(
            InodeKey {
                dev: 7,
                ino: ROOT_ID,
            },
            some_fd(),
        );
        assert!(clash >= SYNTHETIC_BASE && clash != other_dev);
        let natural = t.lookup(InodeKey { dev: 7, ino: 100 }, some_fd());
        assert_eq!(natural, 100);
    }

    #[test]
    fn root_is_never_forgotten() {
        let t = table();
        t.forget(ROOT_ID, 1000);
        assert!(t.fd(ROOT_ID).is_some());
        assert!(t.is_empty());
    }
}
