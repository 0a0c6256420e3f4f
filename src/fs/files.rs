//! Open files: open, create, read, write, flush, release, fsync, fallocate, lseek, copy_file_range.
//! Reads, writes, fsync, fallocate and the final close go to the reactor, which replies to the
//! kernel (with `--buffered-writes inline`, buffered writes are written here, on the session thread).

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fuser::{BackingId, Errno, FopenFlags};
use rustix::fs::{Mode, OFlags, SeekFrom, Stat};

use super::creds::Caller;
use super::handles::{Handle, OpenFile, WriteTarget};
use super::injected::fault;
use super::inodes::{DataStamp, EntryId};
use super::passthrough::{RegisterBacking, passthrough_fopen};
use super::replies::{DoneReply, ReadReply, WriteReply};
use super::timed::Timed;
use super::{BufferedWrites, OpResult, PassthroughFs, check_name, errno, key_of, proc_path};
use crate::faults::{self, Decision, FaultKind};
use crate::reactor::Retries;

/// A new open file handle, as the kernel is told about it.
pub(super) struct Opened {
    pub fh: u64,
    pub fopen: FopenFlags,
    /// The node's backing file when the kernel serves this open itself (`--passthrough`).
    pub backing: Option<Arc<BackingId>>,
}

impl PassthroughFs {
    /// Opens a backing file with `flags` through `open`; when `O_NOATIME` (added for a noatime
    /// mount) is refused because the daemon neither owns the file nor has CAP_FOWNER, opens it
    /// without, as open(2) callers do. A program's `O_NONBLOCK` applies to the open (a file under a
    /// lease answers EWOULDBLOCK) and is then cleared: on a regular file it means nothing to
    /// read(2) and write(2), but io_uring would take it as "never block" and may answer EAGAIN
    /// where a blocking descriptor waits.
    pub(super) fn open_backing(
        flags: OFlags,
        open: impl Fn(OFlags) -> rustix::io::Result<OwnedFd>,
    ) -> rustix::io::Result<OwnedFd> {
        let fd = match open(flags) {
            Err(rustix::io::Errno::PERM) if flags.contains(OFlags::NOATIME) => {
                open(flags - OFlags::NOATIME)
            }
            r => r,
        }?;
        if flags.contains(OFlags::NONBLOCK) {
            let now = rustix::fs::fcntl_getfl(&fd)?;
            rustix::fs::fcntl_setfl(&fd, now - OFlags::NONBLOCK)?;
        }
        Ok(fd)
    }

    /// The flags the backing file is opened with for the kernel's `flags`.
    fn backing_open_flags(&self, flags: i32) -> OFlags {
        let mut f = flags & !(libc::O_NOFOLLOW | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY);
        if self.writeback.load(Ordering::Relaxed) {
            // With the writeback cache the kernel reads pages of write-only files and decides the
            // offsets of appends itself.
            if f & libc::O_ACCMODE == libc::O_WRONLY {
                f = (f & !libc::O_ACCMODE) | libc::O_RDWR;
            }
            f &= !libc::O_APPEND;
        }
        let mut oflags = OFlags::from_bits_retain(f as u32) | OFlags::CLOEXEC;
        if self.atime.noatime_files {
            oflags |= OFlags::NOATIME;
        }
        oflags
    }

    /// Whether reading the file with attributes `st` now would update its access time. Then its
    /// cached pages must go, so that the first read reaches the daemon, whose read of the backing
    /// file updates it (the kernel updates no access time itself, see the `atime` module).
    fn read_updates_atime(&self, st: &Stat) -> bool {
        self.atime.files.update_due_for(st, super::atime::now())
    }

    fn fopen_flags(&self) -> FopenFlags {
        // The backing filesystem orders concurrent direct writes itself; do not serialise them.
        let flags = FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES;
        if self.config.direct_io {
            // `--cache never`: no page to go stale when the backing changes beside the mount.
            return flags | FopenFlags::FOPEN_DIRECT_IO;
        }
        flags
    }

    /// Records the file's contents stamp for node `ino`; true if it is unchanged since the kernel
    /// last cached its pages, so it may keep them (libfuse's auto_cache: a change made directly in
    /// the backing directory is seen at the next open, and by open files through the kernel's
    /// automatic invalidation when attributes are refreshed).
    fn stamp_unchanged(&self, ino: u64, st: &Stat) -> bool {
        let stamp = DataStamp {
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            size: st.st_size as u64,
        };
        self.inodes.swap_data_stamp(ino, stamp) == Some(stamp)
    }

    fn check_open_writable(&self, flags: i32) -> OpResult<()> {
        let acc = flags & libc::O_ACCMODE;
        if acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            self.check_writable()?;
        }
        Ok(())
    }

    pub(super) fn op_open(
        &self,
        ino: u64,
        flags: i32,
        caller: (u32, u32),
        kernel: &impl RegisterBacking,
    ) -> OpResult<Opened> {
        self.check_open_writable(flags)?;
        let fd = self.node_fd(ino)?;
        fault(FaultKind::Open)?;
        let file = Self::open_backing(self.backing_open_flags(flags), |f| {
            rustix::fs::open(proc_path(&*fd).as_str(), f, Mode::empty())
        })
        .map_err(errno)?;
        if flags & libc::O_TRUNC != 0 && caller.0 != 0 {
            self.kill_suid_sgid(ino, &file, caller.1)?;
        }
        let mut fopen = self.fopen_flags();
        if self.config.keep_cache
            && let Ok(st) = rustix::fs::fstat(&file)
            && self.stamp_unchanged(ino, &st)
            && !(reads_update_atime(flags) && self.read_updates_atime(&st))
        {
            fopen |= FopenFlags::FOPEN_KEEP_CACHE;
        }
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            // Nothing to report at close for a file only read (locks are the kernel's, see
            // docs/semantics.md): spare every close(2) a FLUSH round trip.
            fopen |= FopenFlags::FOPEN_NOFLUSH;
        }
        Ok(self.register_open(ino, file, flags, fopen, kernel))
    }

    pub(super) fn op_create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: i32,
        caller: Caller,
        kernel: &impl RegisterBacking,
    ) -> OpResult<(EntryId, Stat, Opened)> {
        self.check_writable()?;
        check_name(name)?;
        let pfd = self.node_fd(parent)?;
        // O_NOFOLLOW: the kernel only sends create for a name it saw absent; a symlink that appeared
        // since must not be followed (it could lead out of the backing tree).
        let oflags = self.backing_open_flags(flags) | OFlags::NOFOLLOW;
        let perm = self.creation_mode(parent, &pfd, mode, &caller);
        // Create exclusively, as the caller (so the file is the caller's from its first moment);
        // a file that appeared meanwhile is opened as it is (by the daemon, as any open), unless the
        // caller asked for O_EXCL.
        let created = {
            let _as_caller = self.become_caller(&caller)?;
            fault(FaultKind::Create)?;
            Self::open_backing(oflags | OFlags::CREATE | OFlags::EXCL, |f| {
                rustix::fs::openat(&*pfd, name, f, perm)
            })
        };
        let file = match created {
            Ok(file) => file,
            Err(e) if e == rustix::io::Errno::EXIST && flags & libc::O_EXCL == 0 => {
                Self::open_backing(oflags, |f| {
                    rustix::fs::openat(&*pfd, name, f, Mode::empty())
                })
                .map_err(errno)?
            }
            Err(e) => return Err(errno(e)),
        };
        let st = rustix::fs::fstat(&file).map_err(errno)?;
        let key = key_of(&st);
        let entry = match self
            .inodes
            .known_entry(key, || crate::sys::handle::handle_of(file.as_fd()))
        {
            Some(entry) => entry,
            None => {
                // An O_PATH descriptor of exactly the object just created, whatever its name is now.
                let path_fd = rustix::fs::open(
                    proc_path(&file).as_str(),
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno)?;
                self.inodes.lookup(key, path_fd)
            }
        };
        let mut fopen = self.fopen_flags();
        if self.silent_close {
            // Closing the backing file reports nothing (and locks are the kernel's): spare every
            // close(2) a FLUSH round trip. The writeback cache flushes at close regardless.
            fopen |= FopenFlags::FOPEN_NOFLUSH;
        }
        let opened = self.register_open(entry.id, file, flags, fopen, kernel);
        Ok((entry, st, opened))
    }

    /// Registers a backing file of node `ino`, opened with the kernel's `flags`, as a new handle,
    /// and decides whether the kernel serves it itself (`--passthrough`). Every open gets a handle:
    /// the kernel may still send reads and writes for a passthrough open.
    fn register_open(
        &self,
        ino: u64,
        file: OwnedFd,
        flags: i32,
        fopen: FopenFlags,
        kernel: &impl RegisterBacking,
    ) -> Opened {
        let direct = flags & libc::O_DIRECT != 0;
        if !direct {
            self.cache.users.opened(ino);
        }
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let (served, backing) = self.route_open(ino, &file, kernel);
        let mut open = OpenFile::new(File::from(file), writable, direct);
        open.served = served;
        Opened {
            fh: self.handles.insert(Handle::File(open)),
            fopen: if backing.is_some() {
                passthrough_fopen(fopen)
            } else {
                fopen
            },
            backing,
        }
    }

    /// Clears the set-id bits (and capabilities) of `file`, node `ino`, for a change by an
    /// unprivileged caller of group `gid`, and makes the kernel forget the mode it cached.
    fn kill_suid_sgid(&self, ino: u64, file: &impl AsFd, gid: u32) -> OpResult<()> {
        if super::killpriv::kill_suid_sgid(file, gid)? {
            self.cache.attributes(ino);
        }
        Ok(())
    }

    /// Where a write through `fh` goes, and whether that descriptor is O_DIRECT.
    fn write_target(&self, fh: u64, from_cache: bool) -> OpResult<(Arc<File>, bool)> {
        match self.handles.file_for_write(fh, from_cache) {
            None => Err(Errno::EBADF),
            Some(WriteTarget::Ready { file, direct }) => Ok((file, direct)),
            Some(WriteTarget::NeedsTwin { file, slot }) => {
                // The same file without O_DIRECT (nor O_APPEND: these writes are positioned).
                let access = rustix::fs::fcntl_getfl(&*file).map_err(errno)? & OFlags::RWMODE;
                let twin = rustix::fs::open(
                    proc_path(&*file).as_str(),
                    access | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno)?;
                // Two threads may race here: the first twin stored wins, the other is closed.
                Ok((
                    slot.get_or_init(|| Arc::new(File::from(twin))).clone(),
                    false,
                ))
            }
        }
    }

    fn file(&self, fh: u64) -> OpResult<Arc<File>> {
        self.handles.file(fh).ok_or(Errno::EBADF)
    }

    /// A read of node `ino` through `fh`; `flags` are the file's flags as the request carries them.
    pub(super) fn op_read(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        flags: i32,
        reply: ReadReply,
    ) {
        self.stats.read(size as u64);
        self.count_passthrough_io(fh, false);
        match self.handles.file_and_direct(fh) {
            Some((file, opened_direct)) => {
                if opened_direct && flags & libc::O_DIRECT == 0 {
                    // O_DIRECT cleared with fcntl(F_SETFL): this read fills the page cache, which
                    // direct writes of the file must now invalidate (see invalidate.rs).
                    self.cache.users.read_through_cache(ino);
                }
                self.reactor.read(file, offset, size as usize, reply)
            }
            None => reply.error(Errno::EBADF),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn op_write(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        data: &[u8],
        kill_suidgid_for: Option<u32>,
        from_cache: bool,
        direct_now: bool,
        reply: Timed<fuser::ReplyWrite>,
    ) {
        self.stats.write(data.len() as u64);
        self.count_passthrough_io(fh, true);
        let (file, direct) = match self.write_target(fh, from_cache) {
            Ok(target) => target,
            Err(e) => return reply.error(e),
        };
        if let Some(gid) = kill_suidgid_for
            && let Err(e) = self.kill_suid_sgid(ino, &*file, gid)
        {
            return reply.error(e);
        }
        // The kernel's writeback flushes (`from_cache`) must fail whole when they cannot be
        // written: the kernel keeps only the error of a flush, not a short count. Every other write
        // is answered as pwrite(2) would answer it (a short count, then the error).
        if from_cache {
            return self
                .reactor
                .write(file, offset, data, WriteReply::plain(reply));
        }
        if direct || direct_now {
            // Direct to the kernel (the request's flags: O_DIRECT may have been set with fcntl on a
            // buffered handle, whose backing descriptor then writes through the backing cache).
            let reply = WriteReply::direct(reply, self.cache.clone(), ino, offset);
            return self.reactor.write_as_pwrite(file, offset, data, reply);
        }
        if self.config.buffered_writes == BufferedWrites::Reactor {
            return self
                .reactor
                .write_as_pwrite(file, offset, data, WriteReply::plain(reply));
        }
        // `--buffered-writes inline`: written here, on the session thread, like a plain pwrite(2):
        // no thread hop (see docs/benchmarks-reading.md, "Buffered writes").
        self.stats.inline_write();
        match write_at_most(&file, data, offset) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(super::replies::errno_of(&e)),
        }
    }

    pub(super) fn op_flush(&self, fh: u64) -> OpResult<()> {
        // Closing a duplicate makes filesystems that report write-back errors on close (NFS) report
        // them to this close(2), as a local close would.
        let file = self.file(fh)?;
        fault(FaultKind::Flush)?;
        let dup = file
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| super::replies::errno_of(&e))?;
        drop::<OwnedFd>(dup);
        Ok(())
    }

    pub(super) fn op_release(&self, ino: u64, fh: u64, reply: DoneReply) {
        match self.handles.remove(fh) {
            Some(Handle::File(open)) => {
                // Writes through this handle changed the file as the kernel's cache knows it, so
                // its pages stay good. A handle only read from must not record anything: the file
                // may have changed under it, and its stamp from the open is the one to compare.
                if self.config.keep_cache
                    && open.writable
                    && let Ok(st) = rustix::fs::fstat(&*open.file)
                {
                    self.stamp_unchanged(ino, &st);
                }
                if !open.direct {
                    self.cache.users.closed(ino);
                }
                self.release_route(ino, open.served);
                drop(open.buffered_twin);
                self.reactor.close(open.file, reply)
            }
            Some(Handle::Dir(_)) | None => reply.error(Errno::EBADF),
        }
    }

    pub(super) fn op_fsync(&self, fh: u64, datasync: bool, reply: DoneReply) {
        match self.file(fh) {
            Ok(file) => self.reactor.sync(file, datasync, reply),
            Err(e) => reply.error(e),
        }
    }

    /// fallocate(2) for a caller of `caller` = (uid, gid): any mode changes the file's contents or
    /// its allocation, so an unprivileged caller clears the set-id bits as a write does (Linux's
    /// file_modified on a local filesystem).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn op_fallocate(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        len: u64,
        mode: i32,
        caller: (u32, u32),
        reply: DoneReply,
    ) {
        if let Err(e) = self.check_writable() {
            return reply.error(e);
        }
        let file = match self.file(fh) {
            Ok(file) => file,
            Err(e) => return reply.error(e),
        };
        if caller.0 != 0
            && let Err(e) = self.kill_suid_sgid(ino, &*file, caller.1)
        {
            return reply.error(e);
        }
        self.reactor.fallocate(file, mode, offset, len, reply)
    }

    pub(super) fn op_lseek(&self, fh: u64, offset: i64, whence: i32) -> OpResult<i64> {
        if self.writeback.load(Ordering::Relaxed) {
            // With the writeback cache the newest data may still be in the kernel's pages, which the
            // backing file's holes know nothing about. ENOSYS makes the kernel answer lseek itself
            // (the whole file as data, the hole at its end), which lseek(2) allows.
            return Err(Errno::ENOSYS);
        }
        let file = self.file(fh)?;
        let pos = match whence {
            libc::SEEK_SET => SeekFrom::Start(offset as u64),
            libc::SEEK_CUR => SeekFrom::Current(offset),
            libc::SEEK_END => SeekFrom::End(offset),
            libc::SEEK_DATA => SeekFrom::Data(offset as u64),
            libc::SEEK_HOLE => SeekFrom::Hole(offset as u64),
            _ => return Err(Errno::EINVAL),
        };
        // The backing descriptor's own position is never used for I/O (all I/O is positioned), so
        // moving it here is harmless.
        let r = rustix::fs::seek(&*file, pos).map_err(errno)?;
        Ok(r as i64)
    }

    pub(super) fn op_copy_file_range(
        &self,
        fh_in: u64,
        offset_in: u64,
        fh_out: u64,
        offset_out: u64,
        len: u64,
    ) -> OpResult<u32> {
        self.check_writable()?;
        let fin = self.file(fh_in)?;
        let fout = self.file(fh_out)?;
        let mut off_in = offset_in;
        let mut off_out = offset_out;
        let len = len.min(u32::MAX as u64 & !0xfff) as usize;
        let n =
            rustix::fs::copy_file_range(&*fin, Some(&mut off_in), &*fout, Some(&mut off_out), len)
                .map_err(errno)?;
        Ok(n as u32)
    }
}

/// Whether reads through a file opened with `flags` may update its access time: it is open for
/// reading, without O_NOATIME (which the kernel allowed the caller, and the backing file is opened
/// with too).
fn reads_update_atime(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_WRONLY && flags & libc::O_NOATIME == 0
}

/// Writes `data` at `offset` as pwrite(2) would for the caller: all of it, or, when an error stops
/// it part way (ENOSPC, EFBIG), the count written so far, so that the error comes with the next write.
/// EINTR and EAGAIN are retried as on the reactor ([`Retries`]).
fn write_at_most(file: &File, data: &[u8], offset: u64) -> std::io::Result<usize> {
    let mut written = 0;
    let mut retries = Retries::default();
    while written < data.len() {
        // In fault-injection builds: not run (an injected error), or run on part of the rest.
        let end = match faults::decide_io(FaultKind::Write, data.len() - written, || 1) {
            Decision::Pass => Ok(data.len()),
            Decision::Short(n) => Ok(written + n),
            Decision::Fail(e) => Err(std::io::Error::from_raw_os_error(e)),
        };
        let result =
            end.and_then(|end| file.write_at(&data[written..end], offset + written as u64));
        match result {
            Ok(0) => break,
            Ok(n) => {
                retries.succeeded();
                written += n;
            }
            Err(e) if retries.again(&e) => {}
            Err(e) if written == 0 => return Err(e),
            Err(_) => break,
        }
    }
    if written == 0 && !data.is_empty() {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    Ok(written)
}
