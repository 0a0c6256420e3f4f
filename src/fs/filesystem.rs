//! The `fuser::Filesystem` implementation: unpacks each request, calls the operation, and answers
//! exactly once. Data operations hand their reply object to the reactor, which answers (buffered
//! writes may be answered inline, see `files::op_write`).

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use fuser::{
    AccessFlags, CopyFileRangeFlags, FileHandle, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustix::fs::Stat;

use super::attr_ops::AttrChanges;
use super::creds::Caller;
use super::fuse_attr::file_attr;
use super::inodes::EntryId;
use super::stats::{Op, OpTimer};
use super::timed::Timed;
use super::xattrs::XattrReply;
use super::{OpResult, PassthroughFs};

impl PassthroughFs {
    /// A request of `op` arrived (see `stats`).
    fn begin(&self, op: Op) -> OpTimer {
        self.stats.start(op)
    }

    /// The request `timer` started is answered now with `result`.
    fn answered<T>(&self, timer: OpTimer, result: &OpResult<T>) {
        self.stats
            .finish(timer, result.as_ref().err().map(|e| e.code()));
    }

    /// `reply` with the request counted, for the operations whose answer comes later or from
    /// deeper down.
    fn timed<R>(&self, op: Op, reply: R) -> Timed<R> {
        Timed::new(reply, self.stats.start(op), self.stats)
    }

    fn reply_entry(&self, t: OpTimer, reply: ReplyEntry, result: OpResult<(EntryId, Stat)>) {
        self.answered(t, &result);
        match result {
            Ok((entry, st)) => reply.entry_with_ttls(
                &self.config.entry_timeout,
                &self.config.attr_timeout,
                &file_attr(entry.id, &st),
                Generation(entry.generation.into()),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn reply_attr(&self, t: OpTimer, reply: ReplyAttr, ino: u64, result: OpResult<Stat>) {
        self.answered(t, &result);
        match result {
            Ok(st) => reply.attr(&self.config.attr_timeout, &file_attr(ino, &st)),
            Err(e) => reply.error(e),
        }
    }

    fn reply_empty(&self, t: OpTimer, reply: ReplyEmpty, result: OpResult<()>) {
        self.answered(t, &result);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn reply_xattr(&self, t: OpTimer, reply: ReplyXattr, result: OpResult<XattrReply>) {
        self.answered(t, &result);
        match result {
            Ok(XattrReply::Size(n)) => reply.size(n),
            Ok(XattrReply::Data(d)) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }
}

impl fuser::Filesystem for PassthroughFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let available = config.capabilities();
        // The kernel drops passthrough silently when the writeback cache is on too (the command
        // line refuses the pair).
        let passthrough = self.config.passthrough
            && !self.config.enables_writeback_cache()
            && available.contains(InitFlags::FUSE_PASSTHROUGH);
        let mut wanted = InitFlags::FUSE_ASYNC_READ
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_MAX_PAGES
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_AUTO_INVAL_DATA
            | InitFlags::FUSE_ASYNC_DIO
            | InitFlags::FUSE_ATOMIC_O_TRUNC
            // The kernel checks permissions with POSIX ACLs; we apply the umask (see creds.rs).
            | InitFlags::FUSE_POSIX_ACL
            | InitFlags::FUSE_DONT_MASK
            // Saves a GETXATTR round trip per write; see killpriv.rs.
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2
            // The kernel may ask for a node it forgot by id (LOOKUP "." and ".."), so that its
            // file handles of the mount outlive its caches; see export.rs.
            | InitFlags::FUSE_EXPORT_SUPPORT
            // Shared mmap of a FOPEN_DIRECT_IO file (`--cache never`): the kernel then keeps the
            // mapped pages coherent with the direct reads and writes of the same file.
            | InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP;
        if passthrough {
            // Under KILLPRIV_V2 the kernel leaves clearing set-id bits to the WRITE requests,
            // which passthrough writes never send: without it the kernel clears them itself
            // (SETATTR), at the cost of asking for security.capability before each write.
            wanted.remove(InitFlags::FUSE_HANDLE_KILLPRIV_V2);
        }
        let _ = config.add_capabilities(wanted & available);
        if self.config.direct_io && !available.contains(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP) {
            tracing::warn!(
                "this kernel cannot map files opened without page cache: shared mmap of files \
                 on this mount fails with ENODEV (the kernel lacks FUSE_DIRECT_IO_ALLOW_MMAP)"
            );
        }
        if self.config.writeback_cache && available.contains(InitFlags::FUSE_WRITEBACK_CACHE) {
            let _ = config.add_capabilities(InitFlags::FUSE_WRITEBACK_CACHE);
            self.writeback.store(true, Ordering::Relaxed);
        }
        if passthrough {
            let _ = config.add_capabilities(InitFlags::FUSE_PASSTHROUGH);
            // 1: backing files on a plain filesystem, and arsyncfs itself can still be a layer of
            // an overlayfs (2 would allow backing files on an overlayfs, but no overlayfs on top
            // of arsyncfs). A backing file too deep falls back to the daemon.
            let _ = config.set_max_stack_depth(1);
            self.passthrough.store(true, Ordering::Relaxed);
        } else if self.config.passthrough {
            tracing::warn!(
                "the kernel does not offer FUSE passthrough (Linux 6.9+ with \
                 CONFIG_FUSE_PASSTHROUGH): the daemon serves all reads and writes"
            );
        }
        let max_io = self.reactor.max_request_size().min(u32::MAX as usize) as u32;
        if let Err(nearest) = config.set_max_write(max_io) {
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(max_io) {
            let _ = config.set_max_readahead(nearest);
        }
        if let Err(nearest) = config.set_max_background(self.config.max_background) {
            let _ = config.set_max_background(nearest);
        }
        tracing::info!(
            capabilities = ?(wanted & available),
            writeback = self.writeback.load(Ordering::Relaxed),
            passthrough = self.passthrough.load(Ordering::Relaxed),
            direct_io = self.config.direct_io,
            max_io,
            max_background = self.config.max_background,
            "FUSE session initialised"
        );
        Ok(())
    }

    fn destroy(&mut self) {
        // The counters are summed up by whoever holds an observer (the summary at unmount).
        tracing::debug!(
            open_passthrough_nodes = self.backings.len(),
            "FUSE session ended"
        );
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let t = self.begin(Op::Lookup);
        self.reply_entry(t, reply, self.op_lookup(parent.0, name));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        // No answer: counted when done.
        let t = self.begin(Op::Forget);
        self.inodes.forget(ino.0, nlookup);
        self.stats.finish(t, None);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let t = self.begin(Op::Getattr);
        self.reply_attr(t, reply, ino.0, self.op_getattr(ino.0, fh.map(|f| f.0)));
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let t = self.begin(Op::Setattr);
        let changes = AttrChanges {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            fh: fh.map(|f| f.0),
            caller: (req.uid(), req.gid()),
        };
        self.reply_attr(t, reply, ino.0, self.op_setattr(ino.0, changes));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let t = self.begin(Op::Readlink);
        let result = self.op_readlink(ino.0);
        self.answered(t, &result);
        match result {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let t = self.begin(Op::Mknod);
        let caller = Caller::of(req, umask);
        self.reply_entry(t, reply, self.op_mknod(parent.0, name, mode, rdev, caller));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let t = self.begin(Op::Mkdir);
        self.reply_entry(
            t,
            reply,
            self.op_mkdir(parent.0, name, mode, Caller::of(req, umask)),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let t = self.begin(Op::Unlink);
        self.reply_empty(t, reply, self.op_unlink(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let t = self.begin(Op::Rmdir);
        self.reply_empty(t, reply, self.op_unlink(parent.0, name, true));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let t = self.begin(Op::Symlink);
        let caller = Caller::of(req, 0);
        self.reply_entry(
            t,
            reply,
            self.op_symlink(parent.0, link_name, target, caller),
        );
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let t = self.begin(Op::Rename);
        self.reply_empty(
            t,
            reply,
            self.op_rename(parent.0, name, newparent.0, newname, flags.bits()),
        );
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let t = self.begin(Op::Link);
        self.reply_entry(t, reply, self.op_link(ino.0, newparent.0, newname));
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let t = self.begin(Op::Open);
        let result = self.op_open(ino.0, flags.0, (req.uid(), req.gid()), &reply);
        self.answered(t, &result);
        match result {
            Ok(o) => match &o.backing {
                Some(backing) => reply.opened_passthrough(FileHandle(o.fh), o.fopen, backing),
                None => reply.opened(FileHandle(o.fh), o.fopen),
            },
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let reply = self.timed(Op::Read, reply);
        self.op_read(ino.0, fh.0, offset, size, flags.0, reply);
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let reply = self.timed(Op::Write, reply);
        if let Err(e) = self.check_writable() {
            return reply.error(e);
        }
        let kill = write_flags
            .contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID)
            .then_some(req.gid());
        let from_cache = write_flags.contains(WriteFlags::FUSE_WRITE_CACHE);
        // The flags of the request, not those of the open: fcntl(F_SETFL) may have switched O_DIRECT.
        let direct_now = flags.0 & libc::O_DIRECT != 0;
        self.op_write(
            ino.0, fh.0, offset, data, kill, from_cache, direct_now, reply,
        );
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let t = self.begin(Op::Flush);
        self.reply_empty(t, reply, self.op_flush(fh.0));
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let reply = self.timed(Op::Release, reply);
        self.op_release(ino.0, fh.0, reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let reply = self.timed(Op::Fsync, reply);
        self.op_fsync(fh.0, datasync, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let t = self.begin(Op::Opendir);
        let result = self.op_opendir(ino.0);
        self.answered(t, &result);
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), fuser::FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let reply = self.timed(Op::Readdir, reply);
        self.op_readdir(fh.0, offset, reply);
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let reply = self.timed(Op::Readdirplus, reply);
        self.op_readdirplus(ino.0, fh.0, offset, reply);
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let t = self.begin(Op::Releasedir);
        self.reply_empty(t, reply, self.op_releasedir(fh.0));
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let t = self.begin(Op::Fsyncdir);
        self.reply_empty(t, reply, self.op_fsyncdir(fh.0, datasync));
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let t = self.begin(Op::Statfs);
        let result = self.op_statfs(ino.0);
        self.answered(t, &result);
        match result {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let t = self.begin(Op::Setxattr);
        self.reply_empty(
            t,
            reply,
            self.op_setxattr(ino.0, name, value, flags, &Caller::of(req, 0)),
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let t = self.begin(Op::Getxattr);
        self.reply_xattr(t, reply, self.op_getxattr(ino.0, name, size));
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let t = self.begin(Op::Listxattr);
        self.reply_xattr(
            t,
            reply,
            self.op_listxattr(ino.0, size, &Caller::of(req, 0)),
        );
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let t = self.begin(Op::Removexattr);
        self.reply_empty(t, reply, self.op_removexattr(ino.0, name));
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Never sent: the mount always uses default_permissions (forced by FUSE_POSIX_ACL too), so
        // the kernel answers access(2) itself, with mode bits and ACLs. ENOSYS would make it stop
        // asking for good.
        let t = self.begin(Op::Access);
        self.reply_empty(t, reply, Err(fuser::Errno::ENOSYS));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let t = self.begin(Op::Create);
        let caller = Caller::of(req, umask);
        let result = self.op_create(parent.0, name, mode, flags, caller, &reply);
        self.answered(t, &result);
        match result {
            Ok((entry, st, o)) => {
                let (ttl, attr) = (&self.config.entry_timeout, &file_attr(entry.id, &st));
                let (generation, fh) = (Generation(entry.generation.into()), FileHandle(o.fh));
                match &o.backing {
                    Some(backing) => {
                        reply.created_passthrough(ttl, attr, generation, fh, o.fopen, backing)
                    }
                    None => reply.created(ttl, attr, generation, fh, o.fopen),
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let reply = self.timed(Op::Fallocate, reply);
        self.op_fallocate(
            ino.0,
            fh.0,
            offset,
            length,
            mode,
            (req.uid(), req.gid()),
            reply,
        );
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let t = self.begin(Op::Lseek);
        let result = self.op_lseek(fh.0, offset, whence);
        self.answered(t, &result);
        match result {
            Ok(pos) => reply.offset(pos),
            Err(e) => reply.error(e),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let t = self.begin(Op::CopyFileRange);
        let result = self.op_copy_file_range(fh_in.0, offset_in, fh_out.0, offset_out, len);
        self.answered(t, &result);
        match result {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    // Requests arsyncfs does not serve, answered without fuser's "not implemented" warning: the
    // kernel then falls back (poll: always ready; ioctl: ENOTTY, "not supported here").
    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        let t = self.begin(Op::Poll);
        self.stats.finish(t, Some(libc::ENOSYS));
        reply.error(fuser::Errno::ENOSYS);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        let t = self.begin(Op::Ioctl);
        self.stats.finish(t, Some(libc::ENOTTY));
        reply.error(fuser::Errno::ENOTTY);
    }

    fn bmap(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _blocksize: u32,
        _idx: u64,
        reply: fuser::ReplyBmap,
    ) {
        let t = self.begin(Op::Bmap);
        self.stats.finish(t, Some(libc::ENOSYS));
        reply.error(fuser::Errno::ENOSYS);
    }
}
