//! The operation kinds faults can be injected into (compiled in every build: the call sites name
//! them; only fault-injection builds act on them).
#![cfg_attr(not(feature = "fault-injection"), allow(dead_code))]

/// The operation kinds faults can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A read on the reactor (each io_uring read, continuations of a short one included).
    Read,
    /// A write on the reactor, or a buffered write on the session thread (`--buffered-writes inline`).
    Write,
    Fsync,
    Fallocate,
    /// The close of a backing file after its last RELEASE (the kernel ignores its answer).
    Close,
    /// FLUSH: the close(2) of a program.
    Flush,
    Lookup,
    /// Opening an existing file (OPEN).
    Open,
    /// Creating and opening a file (CREATE).
    Create,
    /// mkdir, mknod, symlink.
    Mkdir,
    Link,
    /// unlink, rmdir.
    Unlink,
    Rename,
    /// SETATTR (chmod, chown, truncate, times): decided once per request, before its first change.
    Setattr,
    /// setxattr, getxattr, listxattr, removexattr.
    Xattr,
    /// Reading directory entries (READDIR, READDIRPLUS).
    Readdir,
    /// Not an operation: any reactor operation (closes included) started while its reactor drains
    /// at shutdown.
    Drain,
}

impl FaultKind {
    pub const ALL: [FaultKind; 17] = [
        FaultKind::Read,
        FaultKind::Write,
        FaultKind::Fsync,
        FaultKind::Fallocate,
        FaultKind::Close,
        FaultKind::Flush,
        FaultKind::Lookup,
        FaultKind::Open,
        FaultKind::Create,
        FaultKind::Mkdir,
        FaultKind::Link,
        FaultKind::Unlink,
        FaultKind::Rename,
        FaultKind::Setattr,
        FaultKind::Xattr,
        FaultKind::Readdir,
        FaultKind::Drain,
    ];

    /// The metadata kinds `meta` stands for.
    pub const META: [FaultKind; 10] = [
        FaultKind::Lookup,
        FaultKind::Open,
        FaultKind::Create,
        FaultKind::Mkdir,
        FaultKind::Link,
        FaultKind::Unlink,
        FaultKind::Rename,
        FaultKind::Setattr,
        FaultKind::Xattr,
        FaultKind::Readdir,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Read => "read",
            FaultKind::Write => "write",
            FaultKind::Fsync => "fsync",
            FaultKind::Fallocate => "fallocate",
            FaultKind::Close => "close",
            FaultKind::Flush => "flush",
            FaultKind::Lookup => "lookup",
            FaultKind::Open => "open",
            FaultKind::Create => "create",
            FaultKind::Mkdir => "mkdir",
            FaultKind::Link => "link",
            FaultKind::Unlink => "unlink",
            FaultKind::Rename => "rename",
            FaultKind::Setattr => "setattr",
            FaultKind::Xattr => "xattr",
            FaultKind::Readdir => "readdir",
            FaultKind::Drain => "drain",
        }
    }

    pub fn index(self) -> usize {
        FaultKind::ALL
            .iter()
            .position(|&o| o == self)
            .expect("listed")
    }
}
