//! The inode table: which backing object each FUSE node id stands for, and how many lookups the
//! kernel holds on it.
//!
//! Nodes are keyed by the backing `(st_dev, st_ino)`, so all hard links of a file share one node. A
//! node id is the backing inode number whenever that is unambiguous (same device as the backing root,
//! not FUSE's root id 1, below the synthetic range), so `st_ino` seen through the mount is stable
//! across forget/lookup cycles and matches the backing file (git, rsync -H, tar rely on that). Other
//! objects (submounts, collisions) get synthetic ids from the top half of the range.
//!
//! Every operation on a node is relative to an `O_PATH` descriptor of its backing object, never to a
//! path. The kernel may remember millions of inodes, so nodes do not pin descriptors: a node is
//! anchored by its file handle (name_to_handle_at), and descriptors live in a bounded LRU cache,
//! reopened by handle on a miss. Where handles are unavailable (not root, a filesystem without
//! export support, a submount) the node pins its descriptor instead. A node is dropped when the
//! kernel's lookup count reaches zero.
//!
//! The kernel's file handles (name_to_handle_at on the mount, NFS export) name a node by its id and
//! a generation, and may come back after the kernel forgot the node: it then asks for the id again
//! (LOOKUP "." relative to it). So the handles of forgotten handle-anchored nodes are kept in a
//! bounded LRU by node id, and such a node can be registered again under the same id. Every node's
//! generation is a hash of its backing file handle (see [`generation_of`]).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use crate::sys::handle::{BackingHandle, handle_of, open_by_handle};

/// FUSE's fixed node id of the mount's root.
pub const ROOT_ID: u64 = 1;
const SYNTHETIC_BASE: u64 = 1 << 63;

/// Identity of a backing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub dev: u64,
    pub ino: u64,
}

/// What an entry reply tells the kernel about a node: its id and its generation, which together
/// name one backing object in the kernel's file handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryId {
    pub id: u64,
    pub generation: u32,
}

/// The generation of the backing object with file handle `handle`: a 32-bit FNV-1a hash of the
/// handle. The same object always gets the same value (across forget and lookup, and across
/// daemon restarts); a new object that reuses an inode number gets another one, since the handles
/// of ext4, xfs and btrfs carry the inode's own generation. Objects without a handle get 0, and so
/// does the root (the kernel requires 0 there).
pub fn generation_of(handle: &BackingHandle) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    handle
        .handle_type()
        .to_le_bytes()
        .iter()
        .chain(handle.bytes())
        .fold(OFFSET, |h, &b| (h ^ u32::from(b)).wrapping_mul(PRIME))
}

/// A known node found by key; see [`InodeTable::lookup_known`].
struct Known {
    id: u64,
    generation: u32,
    /// The handle to compare with the object found, when the node's identity must be checked.
    check: Option<BackingHandle>,
}

/// What the table knows of whether a directory has a default ACL (which decides whether the
/// caller's umask applies to what is created in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAcl {
    Known(bool),
    /// Not known: ask the backing filesystem, then tell [`InodeTable::learn_default_acl`].
    Unknown(AclTicket),
}

/// The moment an answer about default ACLs was asked for: it is remembered only if no default ACL
/// changed through the mount since (a change that raced with the question may not show in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclTicket(u64);

enum Anchor {
    Pinned(Arc<OwnedFd>),
    Handle(BackingHandle),
}

struct Node {
    anchor: Anchor,
    key: InodeKey,
    generation: u32,
    lookups: u64,
    /// Unique over the table's life: names this node's entry in the descriptor cache, so a
    /// descriptor opened for a node that was forgotten meanwhile can never serve a newer node that
    /// got the same id.
    serial: u64,
    /// What the backing file looked like when the kernel last cached its pages (see
    /// [`InodeTable::swap_data_stamp`]).
    data_stamp: Option<DataStamp>,
    /// For symlinks: the directory node and name it was last seen under. Some calls (xattrs) cannot
    /// reach a symlink through an `O_PATH` descriptor, only through its parent and name.
    link_name: Option<(u64, OsString)>,
    /// For directories: whether it has a default ACL, once known.
    default_acl: Option<bool>,
}

/// The parts of a file's metadata that change whenever its contents change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataStamp {
    pub mtime: (i64, i64),
    pub size: u64,
}

struct Tables {
    by_id: HashMap<u64, Node>,
    by_key: HashMap<InodeKey, u64>,
    /// The handles of forgotten handle-anchored nodes, by node id, most recently used last; `None`
    /// when disabled.
    forgotten: Option<LruCache<u64, BackingHandle>>,
    next_synthetic: u64,
    next_serial: u64,
    /// Changes of default ACLs through the mount so far (see [`AclTicket`]).
    acl_changes: u64,
    /// Nodes in `by_id` anchored by a pinned descriptor, counted as they come and go so that
    /// [`InodeTable::stats`] need not walk the table under its lock.
    pinned: usize,
}

/// Counters of the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InodeStats {
    pub nodes: usize,
    pub pinned: usize,
    pub cached_fds: usize,
    /// Forgotten nodes that can still be found again by id.
    pub forgotten: usize,
}

pub struct InodeTable {
    root_key: InodeKey,
    /// A (non-`O_PATH`) descriptor on the backing root's filesystem, for open_by_handle_at; `None`
    /// when nodes pin their descriptors instead.
    mount_fd: Option<OwnedFd>,
    tables: Mutex<Tables>,
    fds: Mutex<LruCache<u64, Arc<OwnedFd>>>,
}

impl InodeTable {
    /// A table holding only the root (pinned, never forgotten). With a `mount_fd` (an ordinary
    /// descriptor of the backing root: open_by_handle_at refuses `O_PATH` ones), other nodes on the
    /// root's filesystem are anchored by file handle and at most `max_fds` descriptors are cached
    /// for them; the handles of at most `max_forgotten` of them are kept once the kernel forgot them.
    pub fn new(
        root_fd: OwnedFd,
        root_key: InodeKey,
        mount_fd: Option<OwnedFd>,
        max_fds: usize,
        max_forgotten: usize,
    ) -> Self {
        let mut by_id = HashMap::new();
        by_id.insert(
            ROOT_ID,
            Node {
                anchor: Anchor::Pinned(Arc::new(root_fd)),
                key: root_key,
                generation: 0,
                lookups: 1,
                serial: 0,
                data_stamp: None,
                link_name: None,
                default_acl: None,
            },
        );
        let mut by_key = HashMap::new();
        by_key.insert(root_key, ROOT_ID);
        InodeTable {
            root_key,
            mount_fd,
            tables: Mutex::new(Tables {
                by_id,
                by_key,
                // Sparse: memory grows with the entries, not with the bound.
                forgotten: NonZeroUsize::new(max_forgotten).map(LruCache::sparse),
                next_synthetic: SYNTHETIC_BASE,
                next_serial: 1,
                acl_changes: 0,
                pinned: 1, // the root
            }),
            fds: Mutex::new(LruCache::new(
                NonZeroUsize::new(max_fds.max(1)).expect("at least 1"),
            )),
        }
    }

    /// The backing root's identity.
    pub fn root_key(&self) -> InodeKey {
        self.root_key
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_fds(&self) -> MutexGuard<'_, LruCache<u64, Arc<OwnedFd>>> {
        self.fds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An `O_PATH` descriptor of node `id`. `ESTALE` if the node is unknown or its object is gone.
    pub fn fd(&self, id: u64) -> io::Result<Arc<OwnedFd>> {
        let stale = || io::Error::from_raw_os_error(libc::ESTALE);
        let (handle, serial) = {
            let t = self.lock();
            let node = t.by_id.get(&id).ok_or_else(stale)?;
            match &node.anchor {
                Anchor::Pinned(fd) => return Ok(fd.clone()),
                Anchor::Handle(h) => (h.clone(), node.serial),
            }
        };
        if let Some(fd) = self.lock_fds().get(&serial) {
            return Ok(fd.clone());
        }
        let mount_fd = self.mount_fd.as_ref().ok_or_else(stale)?;
        let fd = Arc::new(open_by_handle(
            mount_fd.as_fd(),
            &handle,
            libc::O_PATH | libc::O_NOFOLLOW,
        )?);
        // Cache it only if the node still exists (it may have been forgotten meanwhile).
        if self
            .lock()
            .by_id
            .get(&id)
            .is_some_and(|n| n.serial == serial)
        {
            // A descriptor pushed out of the cache closes outside its lock.
            let evicted = self.lock_fds().push(serial, fd.clone());
            drop(evicted);
        }
        Ok(fd)
    }

    /// The node registered for `key`, counting one lookup, unless it is a stale node whose inode
    /// number the backing filesystem gave to a new object: a handle-anchored node whose descriptor
    /// is not cached does not keep its backing inode alive. Such a node's handle is compared with
    /// the handle of the object found now, which `found` gives (it is called only then); on a
    /// mismatch the node is retired (see [`retire`](Self::retire)) and `None` tells the caller to
    /// register the object found as a new node.
    pub fn known_entry(
        &self,
        key: InodeKey,
        found: impl FnOnce() -> io::Result<BackingHandle>,
    ) -> Option<EntryId> {
        let known = self.lookup_known(key)?;
        if let Some(h) = &known.check
            && !found().is_ok_and(|f| f == *h)
        {
            self.retire(known.id);
            return None;
        }
        Some(EntryId {
            id: known.id,
            generation: known.generation,
        })
    }

    /// If `key` is known, counts one more lookup and returns its id, with the handle to check the
    /// object found against when the node may be stale (see [`known_entry`](Self::known_entry)).
    fn lookup_known(&self, key: InodeKey) -> Option<Known> {
        let (id, generation, anchor) = {
            let mut t = self.lock();
            let id = *t.by_key.get(&key)?;
            let node = t.by_id.get_mut(&id).expect("by_key and by_id agree");
            node.lookups += 1;
            let anchor = match &node.anchor {
                Anchor::Handle(h) => Some((h.clone(), node.serial)),
                Anchor::Pinned(_) => None,
            };
            (id, node.generation, anchor)
        };
        // Not under the table's lock, which the other session threads want (it is taken after the
        // object was found, which is what matters: a descriptor cached now kept it alive since).
        let check = anchor
            .filter(|(_, serial)| !self.lock_fds().contains(serial))
            .map(|(h, _)| h);
        Some(Known {
            id,
            generation,
            check,
        })
    }

    /// If node `id` is known, counts one more lookup and returns its entry.
    pub fn lookup_id(&self, id: u64) -> Option<EntryId> {
        let mut t = self.lock();
        let node = t.by_id.get_mut(&id)?;
        node.lookups += 1;
        Some(EntryId {
            id,
            generation: node.generation,
        })
    }

    /// Node `id` turned out to stand for an object that no longer exists under its key: undo the
    /// lookup just counted and stop finding it by key (the kernel still forgets it by id).
    fn retire(&self, id: u64) {
        {
            let mut t = self.lock();
            let Some(key) = t.by_id.get(&id).map(|n| n.key) else {
                return;
            };
            if t.by_key.get(&key) == Some(&id) {
                t.by_key.remove(&key);
            }
        }
        self.forget(id, 1);
    }

    /// Counts one lookup of `key`, registering it with descriptor `fd` (an `O_PATH` descriptor of
    /// the object) if it is new. Returns the node's entry.
    pub fn lookup(&self, key: InodeKey, fd: OwnedFd) -> EntryId {
        // The handle names the object even where it cannot anchor the node (no open_by_handle_at
        // without CAP_DAC_READ_SEARCH, other filesystems): it still gives the generation.
        let handle = handle_of(fd.as_fd()).ok();
        let generation = handle.as_ref().map_or(0, generation_of);
        let anchored = self.mount_fd.is_some() && key.dev == self.root_key.dev;
        let fd = Arc::new(fd);
        let mut t = self.lock();
        if let Some(&id) = t.by_key.get(&key) {
            // Registered by another thread meanwhile.
            let node = t.by_id.get_mut(&id).expect("by_key and by_id agree");
            node.lookups += 1;
            return EntryId {
                id,
                generation: node.generation,
            };
        }
        let natural =
            key.dev == self.root_key.dev && key.ino != ROOT_ID && key.ino < SYNTHETIC_BASE;
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
        let anchor = match handle {
            Some(h) if anchored => Anchor::Handle(h),
            _ => Anchor::Pinned(fd.clone()),
        };
        let evicted = self.insert(&mut t, id, key, anchor, generation, fd);
        drop(t);
        drop(evicted);
        EntryId { id, generation }
    }

    /// Registers a new node `id` (free in `by_id`) with one lookup; `fd` is its descriptor.
    /// Returns what the descriptor cache let go of, to be dropped (closed) once the caller holds
    /// no lock.
    #[must_use]
    fn insert(
        &self,
        t: &mut Tables,
        id: u64,
        key: InodeKey,
        anchor: Anchor,
        generation: u32,
        fd: Arc<OwnedFd>,
    ) -> Option<(u64, Arc<OwnedFd>)> {
        let serial = t.next_serial;
        t.next_serial += 1;
        let evicted = if matches!(anchor, Anchor::Handle(_)) {
            self.lock_fds().push(serial, fd)
        } else {
            None
        };
        // The id now names this node: a handle kept for an earlier node of that id is obsolete.
        if let Some(f) = t.forgotten.as_mut() {
            f.pop(&id);
        }
        if matches!(anchor, Anchor::Pinned(_)) {
            t.pinned += 1;
        }
        t.by_id.insert(
            id,
            Node {
                anchor,
                key,
                generation,
                lookups: 1,
                serial,
                data_stamp: None,
                link_name: None,
                default_acl: None,
            },
        );
        t.by_key.insert(key, id);
        evicted
    }

    /// Finds node `id` again after the kernel forgot it, through the file handle kept for it, and
    /// registers it under the same id with one lookup. `ESTALE` if no handle is kept (never
    /// anchored by handle, or pushed out of the LRU), if the object is gone (the handle no longer
    /// opens, or it has no links left), or if the id or the object is registered to something else
    /// meanwhile.
    pub fn refind(&self, id: u64) -> io::Result<(EntryId, rustix::fs::Stat)> {
        let stale = || io::Error::from_raw_os_error(libc::ESTALE);
        let handle = {
            let mut t = self.lock();
            t.forgotten
                .as_mut()
                .and_then(|f| f.get(&id).cloned())
                .ok_or_else(stale)?
        };
        let mount_fd = self.mount_fd.as_ref().ok_or_else(stale)?;
        let gone = |t: &mut Tables| {
            if let Some(f) = t.forgotten.as_mut() {
                f.pop(&id);
            }
        };
        let fd = match open_by_handle(mount_fd.as_fd(), &handle, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(e) => {
                if e.raw_os_error() == Some(libc::ESTALE) {
                    gone(&mut self.lock());
                }
                return Err(e);
            }
        };
        let st = rustix::fs::fstat(&fd)?;
        if st.st_nlink == 0 {
            gone(&mut self.lock());
            return Err(stale());
        }
        let key = InodeKey {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        let entry = self.revive(id, key, handle, fd).ok_or_else(stale)?;
        Ok((entry, st))
    }

    /// Registers the object `key` (with file handle `handle`, open on `fd`) as node `id` again, or
    /// counts a lookup if it is registered as `id` already. `None` if `id` or `key` belongs to
    /// another node: the kernel insists on the id it asked for.
    fn revive(
        &self,
        id: u64,
        key: InodeKey,
        handle: BackingHandle,
        fd: OwnedFd,
    ) -> Option<EntryId> {
        let mut t = self.lock();
        if let Some(node) = t.by_id.get_mut(&id) {
            // Found again meanwhile (by name, or by another request for the id).
            let same = node.key == key
                && match &node.anchor {
                    Anchor::Handle(h) => *h == handle,
                    Anchor::Pinned(_) => true,
                };
            if !same {
                return None;
            }
            node.lookups += 1;
            return Some(EntryId {
                id,
                generation: node.generation,
            });
        }
        if t.by_key.contains_key(&key) {
            return None;
        }
        let generation = generation_of(&handle);
        let evicted = self.insert(
            &mut t,
            id,
            key,
            Anchor::Handle(handle),
            generation,
            Arc::new(fd),
        );
        drop(t);
        drop(evicted);
        Some(EntryId { id, generation })
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
            let Node {
                anchor,
                key,
                serial,
                ..
            } = t.by_id.remove(&id).expect("present");
            if matches!(anchor, Anchor::Pinned(_)) {
                t.pinned -= 1;
            }
            // A retired node no longer owns its key (a newer node may have it).
            let current = t.by_key.get(&key) == Some(&id);
            if current {
                t.by_key.remove(&key);
            }
            // Keep what finds a current handle-anchored node again; a retired one is gone for good.
            let unkept = match (current, anchor, t.forgotten.as_mut()) {
                (true, Anchor::Handle(h), Some(f)) => {
                    f.put(id, h);
                    None
                }
                (_, anchor, _) => Some(anchor),
            };
            // After a walk of a huge tree the kernel forgets almost everything: release the tables'
            // memory to the allocator instead of keeping them sized for the peak (the process RSS
            // still keeps what malloc holds on to).
            if t.by_id.capacity() > 1024 && t.by_id.len() < t.by_id.capacity() / 4 {
                t.by_id.shrink_to_fit();
                t.by_key.shrink_to_fit();
            }
            drop(t);
            // Descriptors close outside the table's lock.
            drop(unkept);
            let cached = self.lock_fds().pop(&serial);
            drop(cached);
        }
    }

    /// Records `stamp` as node `id`'s contents now and returns the previous record. An open may let
    /// the kernel keep its cached pages only if the file is unchanged since they were cached.
    pub fn swap_data_stamp(&self, id: u64, stamp: DataStamp) -> Option<DataStamp> {
        let mut t = self.lock();
        let node = t.by_id.get_mut(&id)?;
        node.data_stamp.replace(stamp)
    }

    /// Whether directory node `id` has a default ACL, if known. An unknown node (forgotten
    /// meanwhile) is never learned about.
    pub fn default_acl(&self, id: u64) -> DefaultAcl {
        let t = self.lock();
        match t.by_id.get(&id).and_then(|n| n.default_acl) {
            Some(has) => DefaultAcl::Known(has),
            None => DefaultAcl::Unknown(AclTicket(t.acl_changes)),
        }
    }

    /// A ticket to [`learn_default_acl`](Self::learn_default_acl) with, taken before the
    /// backing filesystem is asked (or before it decides, as when a directory is created).
    pub fn acl_ticket(&self) -> AclTicket {
        AclTicket(self.lock().acl_changes)
    }

    /// Remembers whether directory node `id` has a default ACL, as found out since `ticket` was
    /// taken, unless a default ACL changed through the mount meanwhile.
    pub fn learn_default_acl(&self, id: u64, ticket: AclTicket, has: bool) {
        let mut t = self.lock();
        if t.acl_changes != ticket.0 {
            return;
        }
        if let Some(node) = t.by_id.get_mut(&id) {
            node.default_acl = Some(has);
        }
    }

    /// The default ACL of node `id` was set or removed: forget what was known of it.
    pub fn default_acl_changed(&self, id: u64) {
        let mut t = self.lock();
        t.acl_changes += 1;
        if let Some(node) = t.by_id.get_mut(&id) {
            node.default_acl = None;
        }
    }

    /// The node registered for `key`, without counting a lookup.
    pub fn id_of(&self, key: InodeKey) -> Option<u64> {
        self.lock().by_key.get(&key).copied()
    }

    /// Remembers that symlink node `id` was seen as `name` in directory node `parent`.
    pub fn set_link_name(&self, id: u64, parent: u64, name: &OsStr) {
        if let Some(node) = self.lock().by_id.get_mut(&id)
            && node
                .link_name
                .as_ref()
                .is_none_or(|(p, n)| *p != parent || n != name)
        {
            node.link_name = Some((parent, name.to_owned()));
        }
    }

    /// Where symlink node `id` was last seen, and its key to check that it is still there.
    pub fn link_name(&self, id: u64) -> Option<(u64, OsString, InodeKey)> {
        let t = self.lock();
        let node = t.by_id.get(&id)?;
        let (parent, name) = node.link_name.clone()?;
        Some((parent, name, node.key))
    }

    /// Counters now.
    pub fn stats(&self) -> InodeStats {
        let t = self.lock();
        InodeStats {
            nodes: t.by_id.len(),
            pinned: t.pinned,
            cached_fds: self.lock_fds().len(),
            forgotten: t.forgotten.as_ref().map_or(0, LruCache::len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode, OFlags};

    fn opath(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    fn key(fd: &OwnedFd) -> InodeKey {
        let st = rustix::fs::fstat(fd).unwrap();
        InodeKey {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }

    fn some_fd() -> OwnedFd {
        opath(std::path::Path::new("/"))
    }

    fn table() -> InodeTable {
        InodeTable::new(some_fd(), InodeKey { dev: 7, ino: 2 }, None, 4, 4)
    }

    #[test]
    fn natural_ids_and_shared_hard_links() {
        let t = table();
        let k = InodeKey { dev: 7, ino: 100 };
        assert_eq!(t.lookup(k, some_fd()).id, 100);
        assert_eq!(
            t.lookup(k, some_fd()).id,
            100,
            "a second link shares the node"
        );
        assert_eq!(t.lookup_known(k).map(|k| k.id), Some(100));
        assert_eq!(t.stats().nodes, 2);
        t.forget(100, 2);
        assert_eq!(t.stats().nodes, 2);
        t.forget(100, 1);
        assert_eq!(t.stats().nodes, 1, "forgotten when the count reaches zero");
        assert!(t.fd(100).is_err());
        assert!(t.lookup_known(k).is_none());
    }

    #[test]
    fn synthetic_ids_for_other_devices_and_root_clash() {
        let t = table();
        let other_dev = t.lookup(InodeKey { dev: 8, ino: 100 }, some_fd()).id;
        assert!(other_dev >= SYNTHETIC_BASE);
        let clash = t
            .lookup(
                InodeKey {
                    dev: 7,
                    ino: ROOT_ID,
                },
                some_fd(),
            )
            .id;
        assert!(clash >= SYNTHETIC_BASE && clash != other_dev);
        let natural = t.lookup(InodeKey { dev: 7, ino: 100 }, some_fd()).id;
        assert_eq!(natural, 100);
    }

    #[test]
    fn data_stamps_are_swapped_per_node() {
        let t = table();
        let id = t.lookup(InodeKey { dev: 7, ino: 100 }, some_fd()).id;
        let a = DataStamp {
            mtime: (1, 2),
            size: 3,
        };
        let b = DataStamp { size: 4, ..a };
        assert_eq!(t.swap_data_stamp(id, a), None);
        assert_eq!(t.swap_data_stamp(id, a), Some(a));
        assert_eq!(t.swap_data_stamp(id, b), Some(a));
        assert_eq!(t.swap_data_stamp(999, a), None);
    }

    #[test]
    fn default_acl_knowledge_follows_changes() {
        let t = table();
        let id = t.lookup(InodeKey { dev: 7, ino: 100 }, some_fd()).id;
        let other = t.lookup(InodeKey { dev: 7, ino: 101 }, some_fd()).id;
        let DefaultAcl::Unknown(ticket) = t.default_acl(id) else {
            panic!("a new node knows nothing of its default ACL")
        };
        t.learn_default_acl(id, ticket, true);
        assert_eq!(t.default_acl(id), DefaultAcl::Known(true));
        assert!(matches!(t.default_acl(other), DefaultAcl::Unknown(_)));
        t.default_acl_changed(id);
        let DefaultAcl::Unknown(asked) = t.default_acl(id) else {
            panic!("a change is forgotten")
        };
        // A default ACL changed (anywhere) after the question: its answer may predate the change.
        t.default_acl_changed(other);
        t.learn_default_acl(id, asked, false);
        assert!(matches!(t.default_acl(id), DefaultAcl::Unknown(_)));
        t.learn_default_acl(id, t.acl_ticket(), false);
        assert_eq!(t.default_acl(id), DefaultAcl::Known(false));
        // A forgotten node knows nothing, and learns nothing.
        t.forget(id, 1);
        t.learn_default_acl(id, t.acl_ticket(), true);
        assert!(matches!(t.default_acl(id), DefaultAcl::Unknown(_)));
    }

    #[test]
    fn root_is_never_forgotten() {
        let t = table();
        t.forget(ROOT_ID, 1000);
        assert!(t.fd(ROOT_ID).is_ok());
        assert_eq!(t.stats().nodes, 1);
    }

    #[test]
    fn handle_anchored_nodes_keep_descriptors_bounded() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let root = opath(dir.path());
        let rk = key(&root);
        if handle_of(root.as_fd()).is_err() || !rustix::process::geteuid().is_root() {
            eprintln!("file handles unavailable here; skipping");
            return;
        }
        let mount_fd = OwnedFd::from(std::fs::File::open(dir.path()).unwrap());
        let t = InodeTable::new(root, rk, Some(mount_fd), 3, 0);
        let mut ids = Vec::new();
        for i in 0..10 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, format!("{i}")).unwrap();
            let fd = opath(&p);
            let k = key(&fd);
            ids.push((t.lookup(k, fd).id, k));
        }
        let s = t.stats();
        assert_eq!((s.nodes, s.pinned, s.cached_fds), (11, 1, 3));
        // An evicted node must be checked against the object found; a cached one need not be.
        let (last_id, last_key) = *ids.last().unwrap();
        assert!(t.lookup_known(last_key).unwrap().check.is_none());
        t.forget(last_id, 1);
        let (first_id, first_key) = ids[0];
        let known = t.lookup_known(first_key).unwrap();
        assert_eq!(known.id, first_id);
        assert!(known.check.is_some());
        t.forget(first_id, 1);
        // Retiring a node hides it from lookups by key but keeps it for the kernel's forget.
        t.lookup_known(first_key).unwrap();
        t.retire(first_id);
        assert!(t.lookup_known(first_key).is_none());
        assert!(t.fd(first_id).is_ok());
        // Every node still opens the right object, through its handle when evicted.
        for (id, k) in &ids {
            let fd = t.fd(*id).unwrap();
            assert_eq!(key(&fd), *k);
        }
        assert!(t.stats().cached_fds <= 3);
        for (id, _) in &ids {
            t.forget(*id, 1);
        }
        let s = t.stats();
        assert_eq!((s.nodes, s.cached_fds), (1, 0));
    }

    #[test]
    fn known_entries_are_checked_against_the_object_found_when_not_pinned() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let Some(t) = handle_table(dir.path(), 0) else {
            eprintln!("file handles unavailable here; skipping");
            return;
        };
        let (fd, k, h) = new_file(dir.path(), "f");
        let e = t.lookup(k, fd);
        let other = BackingHandle::from_parts(h.handle_type(), &[0xff; 8]);
        // Its descriptor is cached (it keeps the inode alive): no check, the object is the node's.
        let unused = || -> io::Result<BackingHandle> { panic!("no check needed") };
        assert_eq!(t.known_entry(k, unused), Some(e));
        // Pushed out of the cache: the node is checked against the object found.
        for i in 0..8 {
            let (fd, k, _) = new_file(dir.path(), &format!("g{i}"));
            t.lookup(k, fd);
        }
        assert_eq!(t.known_entry(k, || Ok(h.clone())), Some(e), "same object");
        assert_eq!(
            t.known_entry(k, || Err(io::ErrorKind::NotFound.into())),
            None
        );
        // That node was retired: the key is free for the object found, under a new node.
        assert_eq!(t.known_entry(k, || Ok(other.clone())), None);
        let newer = t.lookup(k, opath(&dir.path().join("f")));
        assert_ne!(newer.id, e.id);
        assert_eq!(t.known_entry(k, unused), Some(newer));
        // The kernel still forgets the retired node by id: its lookups were 3 (1 + 2 matches).
        t.forget(e.id, 3);
        assert!(t.fd(e.id).is_err());
    }

    #[test]
    fn generations_are_stable_hashes_of_handles() {
        // ext4's FILEID_INO32_GEN: inode 1, i_generation 2, then the same inode number reused by a
        // file of generation 3. The value is pinned: handles given out before a restart must still
        // carry the same generation after it.
        let old = BackingHandle::from_parts(1, &[1, 0, 0, 0, 2, 0, 0, 0]);
        let reused = BackingHandle::from_parts(1, &[1, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(generation_of(&old), 0x0c69_cfc7);
        assert_eq!(generation_of(&old), generation_of(&old.clone()));
        assert_eq!(generation_of(&reused), 0xbc3d_90b6);
        let other_type = BackingHandle::from_parts(2, old.bytes());
        assert_ne!(generation_of(&other_type), generation_of(&old));
    }

    /// A table over `dir` whose nodes are anchored by handle (no open_by_handle_at is needed for
    /// the pure bookkeeping below, only name_to_handle_at, which any user may call). `None` where
    /// the filesystem has no handles.
    fn handle_table(dir: &std::path::Path, max_forgotten: usize) -> Option<InodeTable> {
        let root = opath(dir);
        handle_of(root.as_fd()).ok()?;
        let rk = key(&root);
        let mount_fd = OwnedFd::from(std::fs::File::open(dir).unwrap());
        Some(InodeTable::new(root, rk, Some(mount_fd), 8, max_forgotten))
    }

    /// A new file `name` in `dir`: an `O_PATH` descriptor, its key and its handle.
    fn new_file(dir: &std::path::Path, name: &str) -> (OwnedFd, InodeKey, BackingHandle) {
        let p = dir.join(name);
        std::fs::write(&p, name).unwrap();
        let fd = opath(&p);
        let h = handle_of(fd.as_fd()).unwrap();
        let k = key(&fd);
        (fd, k, h)
    }

    #[test]
    fn forgotten_nodes_are_kept_bounded_and_revived_under_their_id() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let Some(t) = handle_table(dir.path(), 2) else {
            eprintln!("file handles unavailable here; skipping");
            return;
        };
        let files: Vec<_> = (0..3)
            .map(|i| new_file(dir.path(), &format!("f{i}")))
            .collect();
        let entries: Vec<EntryId> = files
            .iter()
            .map(|(fd, k, _)| t.lookup(*k, fd.try_clone().unwrap()))
            .collect();
        for ((_, _, h), e) in files.iter().zip(&entries) {
            assert_eq!(e.generation, generation_of(h));
            assert_eq!(t.lookup_id(e.id), Some(*e), "a live node is found by id");
            t.forget(e.id, 2);
        }
        // The oldest forgotten handle made room for the newest.
        assert_eq!(t.stats().forgotten, 2);
        assert_eq!(t.stats().nodes, 1);
        assert_eq!(
            t.lookup_id(entries[1].id),
            None,
            "forgotten nodes are not live"
        );
        let revive = |i: usize| {
            let (fd, k, h) = &files[i];
            t.revive(entries[i].id, *k, h.clone(), fd.try_clone().unwrap())
        };
        // Revived: same id, same generation, one lookup; a second request counts another one.
        assert_eq!(revive(1), Some(entries[1]));
        assert_eq!(revive(1), Some(entries[1]));
        assert_eq!(t.stats().forgotten, 1, "a live node needs no kept handle");
        assert_eq!(
            t.lookup_known(files[1].1).map(|k| k.id),
            Some(entries[1].id)
        );
        t.forget(entries[1].id, 3);
        assert_eq!(t.stats().nodes, 1);
        // The id must be the one asked for: not if it now names another object, nor if the object
        // is registered under another id.
        let (fd0, k0, _) = &files[0];
        assert_eq!(t.lookup(*k0, fd0.try_clone().unwrap()), entries[0]);
        let (fd2, _, h2) = &files[2];
        assert_eq!(
            t.revive(
                entries[0].id,
                files[2].1,
                h2.clone(),
                fd2.try_clone().unwrap()
            ),
            None
        );
        assert_eq!(
            t.revive(99, *k0, files[0].2.clone(), fd0.try_clone().unwrap()),
            None
        );
        // Same id and key but another handle: a stale object, not this one.
        assert_eq!(
            t.revive(entries[0].id, *k0, h2.clone(), fd0.try_clone().unwrap()),
            None
        );
        t.forget(entries[0].id, 1);
        assert_eq!(t.stats().nodes, 1);
    }

    #[test]
    fn a_new_node_takes_its_id_from_the_forgotten() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let Some(t) = handle_table(dir.path(), 4) else {
            eprintln!("file handles unavailable here; skipping");
            return;
        };
        let (fd, k, h) = new_file(dir.path(), "f");
        let e = t.lookup(k, fd.try_clone().unwrap());
        t.forget(e.id, 1);
        assert_eq!(t.stats().forgotten, 1);
        // Registered again by name (natural id: the same one): the kept handle is dropped.
        assert_eq!(t.lookup(k, fd.try_clone().unwrap()), e);
        assert_eq!(t.stats().forgotten, 0);
        // A retired node (its inode number went to a new object) is not kept when forgotten, and
        // does not take the key of the node registered after it.
        t.lookup_known(k).unwrap();
        t.retire(e.id);
        let newer = t.lookup(k, fd.try_clone().unwrap());
        assert_ne!(newer.id, e.id, "the retired node still holds its id");
        t.forget(e.id, 1);
        assert_eq!(t.stats().forgotten, 0);
        assert_eq!(t.lookup_known(k).map(|k| k.id), Some(newer.id));
        t.forget(newer.id, 2);
        assert_eq!(t.stats().forgotten, 1);
        assert!(t.revive(newer.id, k, h, fd).is_some());
    }

    #[test]
    fn pinned_nodes_and_a_zero_bound_keep_nothing() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let (fd, k, _) = new_file(dir.path(), "f");
        // Without a mount descriptor nodes pin their descriptors: nothing to find them again by.
        let root = opath(dir.path());
        let rk = key(&root);
        let pinned = InodeTable::new(root, rk, None, 8, 4);
        let e = pinned.lookup(k, fd.try_clone().unwrap());
        assert_eq!(pinned.lookup(k, fd.try_clone().unwrap()), e);
        assert_eq!((pinned.stats().nodes, pinned.stats().pinned), (2, 1 + 1));
        pinned.forget(e.id, 1);
        assert_eq!(pinned.stats().pinned, 2, "one lookup left");
        pinned.forget(e.id, 1);
        assert_eq!((pinned.stats().forgotten, pinned.stats().pinned), (0, 1));
        assert_eq!(
            pinned.refind(e.id).unwrap_err().raw_os_error(),
            Some(libc::ESTALE)
        );
        let Some(t) = handle_table(dir.path(), 0) else {
            return;
        };
        let e = t.lookup(k, fd);
        t.forget(e.id, 1);
        assert_eq!(t.stats().forgotten, 0);
    }

    #[test]
    fn refind_opens_forgotten_nodes_and_refuses_removed_ones() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        if !rustix::process::geteuid().is_root() {
            eprintln!("open_by_handle_at needs CAP_DAC_READ_SEARCH; skipping");
            return;
        }
        let Some(t) = handle_table(dir.path(), 4) else {
            eprintln!("file handles unavailable here; skipping");
            return;
        };
        let (fd, k, _) = new_file(dir.path(), "f");
        let e = t.lookup(k, fd);
        t.forget(e.id, 1);
        let (found, st) = t.refind(e.id).unwrap();
        assert_eq!(found, e);
        assert_eq!(key_of_stat(&st), k);
        assert_eq!(key(&t.fd(e.id).unwrap()), k);
        t.forget(e.id, 1);
        let stale = |id| t.refind(id).unwrap_err().raw_os_error();
        assert_eq!(stale(12345), Some(libc::ESTALE), "never known");
        // Removed but still open: the handle opens, but a file without links is gone for handles.
        let open = std::fs::File::open(dir.path().join("f")).unwrap();
        std::fs::remove_file(dir.path().join("f")).unwrap();
        assert_eq!(stale(e.id), Some(libc::ESTALE));
        assert_eq!(t.stats().forgotten, 0, "a removed file's handle is dropped");
        drop(open);
        // Removed and closed: the handle no longer opens.
        let (fd, k, _) = new_file(dir.path(), "g");
        let e = t.lookup(k, fd);
        t.forget(e.id, 1);
        std::fs::remove_file(dir.path().join("g")).unwrap();
        assert_eq!(stale(e.id), Some(libc::ESTALE));
        assert_eq!(t.stats().forgotten, 0);
    }

    fn key_of_stat(st: &rustix::fs::Stat) -> InodeKey {
        InodeKey {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}
