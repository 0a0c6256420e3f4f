//! The operation kinds faults can be injected into (compiled in every build: the call sites name
//! them; only fault-injection builds act on them).
#![cfg_attr(not(feature = "fault-injection"), allow(dead_code))]

/// The operation kinds faults can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
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
    /// Each change of a SETATTR: chmod, chown, truncate, times.
    Setattr,
    /// setxattr, getxattr, listxattr, removexattr.
    Xattr,
    /// Reading directory entries (READDIR, READDIRPLUS).
    Readdir,
    /// Not an operation: any reactor operation started while its reactor drains at shutdown.
    Drain,
}

impl Op {
    pub const ALL: [Op; 17] = [
        Op::Read,
        Op::Write,
        Op::Fsync,
        Op::Fallocate,
        Op::Close,
        Op::Flush,
        Op::Lookup,
        Op::Open,
        Op::Create,
        Op::Mkdir,
        Op::Link,
        Op::Unlink,
        Op::Rename,
        Op::Setattr,
        Op::Xattr,
        Op::Readdir,
        Op::Drain,
    ];

    /// The metadata kinds `meta` stands for.
    pub const META: [Op; 10] = [
        Op::Lookup,
        Op::Open,
        Op::Create,
        Op::Mkdir,
        Op::Link,
        Op::Unlink,
        Op::Rename,
        Op::Setattr,
        Op::Xattr,
        Op::Readdir,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Fsync => "fsync",
            Op::Fallocate => "fallocate",
            Op::Close => "close",
            Op::Flush => "flush",
            Op::Lookup => "lookup",
            Op::Open => "open",
            Op::Create => "create",
            Op::Mkdir => "mkdir",
            Op::Link => "link",
            Op::Unlink => "unlink",
            Op::Rename => "rename",
            Op::Setattr => "setattr",
            Op::Xattr => "xattr",
            Op::Readdir => "readdir",
            Op::Drain => "drain",
        }
    }

    pub fn index(self) -> usize {
        Op::ALL.iter().position(|&o| o == self).expect("listed")
    }
}
