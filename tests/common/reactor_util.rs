//! Channel-backed completions and a small harness for driving the reactor in tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arsyncfs::reactor::{
    Completions, DoneCompletion, Reactor, ReactorConfig, ReactorHandle, ReactorStats,
    ReadCompletion, WriteCompletion,
};
use crossbeam_channel::{Receiver, Sender};

/// What a request was answered with; `tag` identifies the request.
#[derive(Debug)]
pub enum Answer {
    Read(u64, io::Result<Vec<u8>>),
    Write(u64, io::Result<usize>),
    Done(u64, io::Result<()>),
}

impl Answer {
    pub fn tag(&self) -> u64 {
        match self {
            Answer::Read(t, _) | Answer::Write(t, _) | Answer::Done(t, _) => *t,
        }
    }

    /// The OS error code of a failed answer, `None` for a success.
    pub fn errno(&self) -> Option<i32> {
        let err = match self {
            Answer::Read(_, Err(e)) | Answer::Write(_, Err(e)) | Answer::Done(_, Err(e)) => e,
            _ => return None,
        };
        Some(err.raw_os_error().unwrap_or(-1))
    }
}

pub struct Tagged(pub u64, pub Sender<Answer>);

impl ReadCompletion for Tagged {
    fn complete(self, result: io::Result<&[u8]>) {
        let _ = self
            .1
            .send(Answer::Read(self.0, result.map(|b| b.to_vec())));
    }
}
impl WriteCompletion for Tagged {
    fn complete(self, result: io::Result<usize>) {
        let _ = self.1.send(Answer::Write(self.0, result));
    }
}
impl DoneCompletion for Tagged {
    fn complete(self, result: io::Result<()>) {
        let _ = self.1.send(Answer::Done(self.0, result));
    }
}

pub struct ChannelCompletions;
impl Completions for ChannelCompletions {
    type Read = Tagged;
    type Write = Tagged;
    type Done = Tagged;
}

pub type Handle = ReactorHandle<ChannelCompletions>;

/// Longest a test waits for one answer. Only a hang (a lost wake-up or a lost completion) ever gets
/// near it; no test depends on how fast an answer comes.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A reactor plus conveniences; [`Harness::finish`] shuts it down and checks the pool.
pub struct Harness {
    reactor: Option<Reactor<ChannelCompletions>>,
    pub h: Handle,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(ReactorConfig::default())
    }

    pub fn with(config: ReactorConfig) -> Self {
        let reactor = Reactor::<ChannelCompletions>::start(config).expect("reactor starts");
        let h = reactor.handle();
        Harness {
            reactor: Some(reactor),
            h,
        }
    }

    pub fn read(&self, file: &Arc<File>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.h.read(file.clone(), offset, len, Tagged(0, tx));
        match one(&rx) {
            Answer::Read(0, r) => r,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    pub fn write(&self, file: &Arc<File>, offset: u64, data: &[u8]) -> io::Result<usize> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.h.write(file.clone(), offset, data, Tagged(0, tx));
        match one(&rx) {
            Answer::Write(0, r) => r,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    /// A write answered as pwrite(2) would: a short count when an error stops it part way.
    pub fn write_as_pwrite(&self, file: &Arc<File>, offset: u64, data: &[u8]) -> io::Result<usize> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.h
            .write_as_pwrite(file.clone(), offset, data, Tagged(0, tx));
        match one(&rx) {
            Answer::Write(0, r) => r,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    pub fn sync(&self, file: &Arc<File>, datasync: bool) -> io::Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.h.sync(file.clone(), datasync, Tagged(0, tx));
        done(one(&rx))
    }

    pub fn fallocate(&self, file: &Arc<File>, mode: i32, offset: u64, len: u64) -> io::Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.h
            .fallocate(file.clone(), mode, offset, len, Tagged(0, tx));
        done(one(&rx))
    }

    pub fn close(&self, file: Arc<File>) -> io::Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.h.close(file, Tagged(0, tx));
        done(one(&rx))
    }

    /// Shuts the reactor down and checks that the pool got every buffer back and that the reactor
    /// answered every request it was sent.
    pub fn finish(mut self) -> ReactorStats {
        if let Some(r) = self.reactor.take() {
            r.shutdown();
        }
        let stats = self.h.stats();
        assert_pool_clean(&stats);
        assert_eq!(stats.sent, stats.answered, "{stats:?}");
        stats
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

fn done(a: Answer) -> io::Result<()> {
    match a {
        Answer::Done(0, r) => r,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The next answer, or a panic if none comes in [`PATIENCE`].
pub fn one(rx: &Receiver<Answer>) -> Answer {
    rx.recv_timeout(PATIENCE)
        .expect("no answer: a request was lost or the reactor hangs")
}

/// Collects exactly `n` answers and checks that every tag in `0..n` was answered exactly once.
pub fn collect(rx: &Receiver<Answer>, n: u64) -> HashMap<u64, Answer> {
    let mut seen = HashMap::with_capacity(n as usize);
    for _ in 0..n {
        let a = one(rx);
        let tag = a.tag();
        assert!(tag < n, "answer for unknown tag {tag}");
        if let Some(prev) = seen.insert(tag, a) {
            panic!("tag {tag} answered twice: {prev:?}");
        }
    }
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "more answers than requests"
    );
    seen
}

/// The pool holds every buffer again: nothing in use, and as many returned as taken.
pub fn assert_pool_clean(stats: &ReactorStats) {
    assert_eq!(stats.pool.in_use, 0, "buffers still in use: {stats:?}");
    assert_eq!(
        stats.pool.taken, stats.pool.returned,
        "taken != returned: {stats:?}"
    );
    assert!(stats.pool.high_water <= stats.pool.total, "{stats:?}");
}

#[allow(unused_imports)] // not every test file draws random numbers
pub use crate::rng::Rng;

/// A temporary directory on a disk-backed filesystem (the cargo target dir), where O_DIRECT and
/// every fallocate mode work; /tmp may be tmpfs.
pub fn disk_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("reactor-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir in the target dir")
}

/// Opens (creating) `path` read-write with O_DIRECT. `path` must be in a `disk_tempdir` (the target
/// dir is on a real disk); a filesystem that refuses O_DIRECT there is a broken setup, not a skip.
pub fn open_direct(path: &Path) -> Arc<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} with O_DIRECT: {e}", path.display()));
    Arc::new(f)
}

/// Opens (creating) `path` read-write.
pub fn open_rw(path: &Path) -> Arc<File> {
    Arc::new(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .expect("open test file"),
    )
}

/// A fresh read-write file named `name` in `dir`.
pub fn new_file(dir: &Path, name: &str) -> (PathBuf, Arc<File>) {
    let path = dir.join(name);
    let f = open_rw(&path);
    (path, f)
}

/// A tmpfs of `size` bytes mounted on a fresh temp dir, unmounted on drop. `None` (with a note on
/// stderr) when this process may not mount.
pub struct TinyTmpfs {
    pub dir: tempfile::TempDir,
}

impl TinyTmpfs {
    pub fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::Builder::new()
            .prefix("reactor-tmpfs-")
            .tempdir()
            .expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("arsyncfs-test")
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Some(TinyTmpfs { dir }),
            _ => {
                eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// A FIFO opened read-write: reads on it stay in flight until someone writes to the other end.
pub fn fifo(dir: &Path) -> (Arc<File>, File) {
    let path = dir.join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let reader = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let writer = OpenOptions::new().write(true).open(&path).unwrap();
    (Arc::new(reader), writer)
}

/// Waits (without any timing assumption) until `cond` holds for the reactor's stats.
pub fn wait_until(h: &Handle, what: &str, cond: impl Fn(&arsyncfs::reactor::ReactorStats) -> bool) {
    let start = std::time::Instant::now();
    while !cond(&h.stats()) {
        assert!(
            start.elapsed() < PATIENCE,
            "never reached: {what}: {:?}",
            h.stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
