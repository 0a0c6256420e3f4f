//! Benchmark of the reactor against plain pread/pwrite on the same file, in the same run.
//!
//! ```text
//! cargo run --release --example reactor_bench -- --file /var/tmp/arsyncfs-bench.dat --size 2G
//! ```
//!
//! For every cache state (cached, cold), operation (read, write), block size and number of sending
//! threads it measures plain `pread`/`pwrite` from the sending threads, then the reactor at each queue
//! depth (requests kept in flight by each sending thread), and prints operations per second with two
//! ratios: against plain I/O from the same number of threads, and against plain I/O from one thread.
//! Each case is repeated (`--repeat`, interleaved) and the median is printed.
//!
//! Offsets are random, block-aligned and, within one run of a case, never repeat (a shuffled
//! permutation of the file's blocks), so a cold run reads every block from the disk. The file is
//! advised `POSIX_FADV_RANDOM` so that read-ahead does not turn random reads into sequential ones.
//! "Cold" runs drop the file's pages (fdatasync + `POSIX_FADV_DONTNEED`) and, as root, the page cache
//! (`echo 1 > /proc/sys/vm/drop_caches`) before every run.
//!
//! `--strace-proof` runs one short reactor-only case and prints the reactor thread's id on stderr
//! (`reactor-tid: N`), for scripts/reactor-strace.sh.

// The tests' generator (one xorshift64* for the whole repository).
#[path = "../tests/common/rng.rs"]
mod rng;

use rng::Rng;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use arsyncfs::reactor::{
    Completions, DoneCompletion, ReactorConfig, ReactorHandle, ReactorStats, ReadCompletion,
    WriteCompletion,
};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Reactor vs plain pread/pwrite, random I/O on one file")]
struct Args {
    /// Benchmark file (created and filled if missing or too small). Use the real disk for cold runs.
    #[arg(long, default_value = "/var/tmp/arsyncfs-bench.dat")]
    file: PathBuf,
    /// File size (k, M, G suffixes).
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    size: u64,
    /// Cached runs use only the first this many bytes of the file, kept in the page cache (see
    /// --pin).
    #[arg(long, default_value = "512M", value_parser = parse_size)]
    cached_size: u64,
    /// Keep the cached range mapped by a helper process (python3) during cached runs, so that
    /// someone else's `echo 3 > /proc/sys/vm/drop_caches` on a shared machine cannot empty it.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pin: bool,
    /// Block sizes (comma-separated).
    #[arg(long, default_value = "4k,128k", value_delimiter = ',', value_parser = parse_size)]
    bs: Vec<u64>,
    /// Queue depths per sending thread (comma-separated).
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    qd: Vec<usize>,
    /// Numbers of sending threads (comma-separated).
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Operations: read, write (comma-separated).
    #[arg(long, default_value = "read,write", value_delimiter = ',')]
    ops: Vec<String>,
    /// Cache states: cached, cold (comma-separated).
    #[arg(long, default_value = "cached,cold", value_delimiter = ',')]
    cache: Vec<String>,
    /// Seconds per measured run (a cold run also stops when every block has been touched once).
    #[arg(long, default_value_t = 1.0)]
    secs: f64,
    /// Runs per case; the median is printed.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Skip the plain pread/pwrite runs.
    #[arg(long)]
    no_plain: bool,
    /// Run one short reactor case and print the reactor thread id (for strace).
    #[arg(long)]
    strace_proof: bool,
    /// How long a sending thread spins for a completion before it blocks (microseconds).
    #[arg(long, default_value_t = 50)]
    sender_spin_us: u64,
    /// Reactor pool buffers (default: enough for every sender at the deepest queue, at least 128).
    #[arg(long)]
    buffers: Option<usize>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_lowercase() {
                'k' => 1u64 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                _ => return Err(format!("bad size suffix in {s:?} (use k, M or G)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("bad size {s:?}"))
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{}G", bytes >> 30)
    } else if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{}M", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{}k", bytes >> 10)
    } else {
        bytes.to_string()
    }
}

// ---------------------------------------------------------------------------------------------------
// Completions: each answer goes back to the sending thread over its own channel.

/// Where a sending thread's completions land: a counter it watches, and a way to wake it when it
/// sleeps. One per sending thread per run, leaked (a few bytes) so that completions can point at it
/// without reference counting: a channel send or an `Arc` per request would add cross-CPU traffic
/// of the benchmark's own to every operation.
struct Inbox {
    done: AtomicU64,
    /// Bytes every answer must carry (block size); anything else is an error.
    want: usize,
    error: Mutex<Option<String>>,
    sleeping: AtomicBool,
    thread: std::thread::Thread,
}

impl Inbox {
    fn new(want: usize) -> &'static Inbox {
        Box::leak(Box::new(Inbox {
            done: AtomicU64::new(0),
            want,
            error: Mutex::new(None),
            sleeping: AtomicBool::new(false),
            thread: std::thread::current(),
        }))
    }

    fn answer(&self, result: io::Result<usize>) {
        match result {
            Ok(n) if n == self.want => {}
            other => {
                let msg = match other {
                    Ok(n) => format!("short answer: {n} of {} bytes", self.want),
                    Err(e) => e.to_string(),
                };
                self.error.lock().unwrap().get_or_insert(msg);
            }
        }
        self.done.fetch_add(1, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
    }

    /// Waits until more than `seen` answers arrived: spins for up to `spin`, then parks.
    fn wait_past(&self, seen: u64, spin: Duration) -> u64 {
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                let d = self.done.load(Ordering::Acquire);
                if d > seen {
                    return d;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= spin {
                break;
            }
            // Let the reactor run if it shares this CPU.
            std::thread::yield_now();
        }
        loop {
            self.sleeping.store(true, Ordering::SeqCst);
            let d = self.done.load(Ordering::SeqCst);
            if d > seen {
                self.sleeping.store(false, Ordering::Relaxed);
                return d;
            }
            std::thread::park();
            self.sleeping.store(false, Ordering::Relaxed);
        }
    }
}

struct Sink(&'static Inbox);

impl ReadCompletion for Sink {
    fn complete(self, result: io::Result<&[u8]>) {
        // Touch the data, as a real consumer would, and report how much came back.
        self.0.answer(result.map(|d| {
            std::hint::black_box(d.first());
            d.len()
        }));
    }
}
impl WriteCompletion for Sink {
    fn complete(self, result: io::Result<usize>) {
        self.0.answer(result);
    }
}
impl DoneCompletion for Sink {
    fn complete(self, result: io::Result<()>) {
        self.0.answer(result.map(|()| self.0.want));
    }
}

struct BenchCompletions;
impl Completions for BenchCompletions {
    type Read = Sink;
    type Write = Sink;
    type Done = Sink;
}

type Handle = ReactorHandle<BenchCompletions>;

// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Read,
    Write,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cache {
    Cached,
    Cold,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Plain,
    Reactor { qd: usize },
}

#[derive(Clone, Copy)]
struct Case {
    cache: Cache,
    op: Op,
    bs: u64,
    threads: usize,
    engine: Engine,
}

#[derive(Clone, Copy, Default)]
struct Outcome {
    ops: u64,
    secs: f64,
    /// Reactor wake-ups and sleeps during the run (zero for plain I/O).
    wakeups: u64,
    sleeps: u64,
    /// Reactor thread CPU time (ns) and involuntary context switches during the run.
    reactor_cpu_ns: u64,
    reactor_preempted: u64,
    /// CPU time of the sending threads (ns).
    sender_cpu_ns: u64,
}

impl Outcome {
    fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Block indices of the file in random order; thread `t` of `n` uses the `t`-th contiguous share.
fn permutation(blocks: u64, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..blocks as u32).collect();
    let mut rng = Rng::new(seed);
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn fail(msg: impl std::fmt::Display) -> io::Error {
    io::Error::other(msg.to_string())
}

fn prepare_file(path: &Path, size: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| fail(format!("cannot open {}: {e}", path.display())))?;
    let len = file.metadata()?.len();
    if len < size {
        eprintln!(
            "filling {} with {} of data (once)...",
            path.display(),
            human(size)
        );
        // Real, non-zero data everywhere: holes would be "read" without touching the disk.
        let mut chunk = vec![0u8; 1 << 20];
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut off = 0;
        while off < size {
            for w in chunk.chunks_exact_mut(8) {
                w.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            let n = chunk.len().min((size - off) as usize);
            file.write_all_at(&chunk[..n], off)?;
            off += n as u64;
        }
        file.sync_all()?;
    }
    Ok(file)
}

fn advise(file: &File, advice: rustix::fs::Advice) -> io::Result<()> {
    rustix::fs::fadvise(file, 0, None::<NonZeroU64>, advice).map_err(io::Error::from)
}

fn drop_caches(file: &File) -> io::Result<()> {
    file.sync_data()?;
    advise(file, rustix::fs::Advice::DontNeed)?;
    // Best effort: only root may, and the file's own pages are gone already.
    if let Ok(mut f) = OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")
    {
        let _ = f.write_all(b"1");
    }
    Ok(())
}

fn warm_cache(file: &File, size: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = file.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        off += n as u64;
    }
    Ok(())
}

/// A helper process that maps (and so keeps in the page cache) the first `len` bytes of a file
/// until dropped: `drop_caches` only drops pages nobody maps.
struct Pin(std::process::Child);

impl Pin {
    fn new(path: &Path, len: u64) -> io::Result<Self> {
        const HELPER: &str = "import mmap,sys\n\
            f=open(sys.argv[1],'rb'); n=int(sys.argv[2])\n\
            m=mmap.mmap(f.fileno(),n,prot=mmap.PROT_READ)\n\
            s=sum(m[i] for i in range(0,n,4096))\n\
            print('pinned',flush=True); sys.stdin.read()\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", HELPER])
            .arg(path)
            .arg(len.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("--pin needs python3 ({e}); use --pin false")))?;
        let mut line = String::new();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| fail("pin helper: no stdout"))?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        if line.trim() != "pinned" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("the pin helper failed"));
        }
        Ok(Pin(child))
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

struct Bench {
    file: Arc<File>,
    size: u64,
    cached_size: u64,
    handle: Handle,
    secs: f64,
    seed: u64,
    sender_spin: Duration,
    reactor_tid: Option<String>,
}

/// (CPU time in ns, involuntary context switches) of a thread of this process, from
/// /proc/self/task/TID/sched.
fn schedstat(tid: &Option<String>) -> (u64, u64) {
    schedstat_of(&tid.as_ref().map(|t| format!("task/{t}")))
}

/// Same for `/proc/<what>/sched`: `Some("self")` is the calling thread (thread-self).
fn schedstat_of(what: &Option<String>) -> (u64, u64) {
    let path = match what.as_deref() {
        None => return (0, 0),
        Some("self") => "/proc/thread-self/sched".to_string(),
        Some(w) => format!("/proc/self/{w}/sched"),
    };
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.rsplit(':').next())
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let cpu_ms: f64 = field("se.sum_exec_runtime").parse().unwrap_or(0.0);
    let invol: u64 = field("nr_involuntary_switches").parse().unwrap_or(0);
    ((cpu_ms * 1e6) as u64, invol)
}

impl Bench {
    fn run(&mut self, case: Case) -> io::Result<Outcome> {
        let span = match case.cache {
            Cache::Cached => self.cached_size.min(self.size),
            Cache::Cold => self.size,
        };
        let blocks = span / case.bs;
        if blocks < case.threads as u64 {
            return Err(fail("file too small for this block size"));
        }
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let perm = permutation(blocks, self.seed);
        let share = perm.len() / case.threads;
        if case.cache == Cache::Cold {
            drop_caches(&self.file)?;
        }
        let data: Vec<u8> = (0..case.bs).map(|i| (i % 251) as u8).collect();
        let before = self.handle.stats();
        let sched_before = schedstat(&self.reactor_tid);
        let barrier = Barrier::new(case.threads + 1);
        let deadline_after = Duration::from_secs_f64(self.secs);
        type WorkerResult = io::Result<(u64, u64)>;
        let (results, elapsed): (Vec<WorkerResult>, Duration) = std::thread::scope(|s| {
            let workers: Vec<_> = (0..case.threads)
                .map(|t| {
                    let offsets = &perm[t * share..(t + 1) * share];
                    let file = self.file.clone();
                    let handle = self.handle.clone();
                    let barrier = &barrier;
                    let data = &data[..];
                    let spin = self.sender_spin;
                    s.spawn(move || {
                        barrier.wait();
                        let deadline = Instant::now() + deadline_after;
                        let limit = if case.cache == Cache::Cold {
                            offsets.len() as u64
                        } else {
                            u64::MAX
                        };
                        let offsets = offsets.iter().cycle().map(|&b| b as u64 * case.bs);
                        let me = Some("self".to_string());
                        let cpu_before = schedstat_of(&me);
                        let ops = match case.engine {
                            Engine::Plain => {
                                plain(&file, case.op, case.bs, data, offsets, deadline, limit)
                            }
                            Engine::Reactor { qd } => reactor(
                                &handle, &file, case.op, case.bs, data, qd, spin, offsets,
                                deadline, limit,
                            ),
                        }?;
                        Ok((ops, schedstat_of(&me).0 - cpu_before.0))
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            let r = workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err(fail("worker panicked"))))
                .collect();
            (r, start.elapsed())
        });
        let mut ops = 0;
        let mut sender_cpu_ns = 0;
        for r in results {
            let (o, cpu) = r?;
            ops += o;
            sender_cpu_ns += cpu;
        }
        let after = self.handle.stats();
        let sched_after = schedstat(&self.reactor_tid);
        Ok(Outcome {
            ops,
            secs: elapsed.as_secs_f64(),
            wakeups: after.wakeups - before.wakeups,
            sleeps: after.sleeps - before.sleeps,
            reactor_cpu_ns: sched_after.0 - sched_before.0,
            reactor_preempted: sched_after.1 - sched_before.1,
            sender_cpu_ns,
        })
    }
}

fn plain(
    file: &File,
    op: Op,
    bs: u64,
    data: &[u8],
    mut offsets: impl Iterator<Item = u64>,
    deadline: Instant,
    limit: u64,
) -> io::Result<u64> {
    let mut buf = vec![0u8; bs as usize];
    let mut done = 0u64;
    while done < limit {
        if done.is_multiple_of(16) && Instant::now() >= deadline {
            break;
        }
        let off = offsets.next().expect("cycle never ends");
        match op {
            Op::Read => {
                let n = file.read_at(&mut buf, off)?;
                if n != bs as usize {
                    return Err(fail(format!("short pread: {n} of {bs} at {off}")));
                }
                std::hint::black_box(buf[0]);
            }
            Op::Write => file.write_all_at(data, off)?,
        }
        done += 1;
    }
    Ok(done)
}

#[allow(clippy::too_many_arguments)]
fn reactor(
    handle: &Handle,
    file: &Arc<File>,
    op: Op,
    bs: u64,
    data: &[u8],
    qd: usize,
    spin: Duration,
    mut offsets: impl Iterator<Item = u64>,
    deadline: Instant,
    limit: u64,
) -> io::Result<u64> {
    let inbox = Inbox::new(bs as usize);
    let mut issued = 0u64;
    let mut completed = 0u64;
    loop {
        let stop = issued >= limit
            || (issued.is_multiple_of(16) && Instant::now() >= deadline)
            || inbox.error.lock().unwrap().is_some();
        if !stop {
            while issued - completed < qd as u64 && issued < limit {
                let off = offsets.next().expect("cycle never ends");
                match op {
                    Op::Read => handle.read(file.clone(), off, bs as usize, Sink(inbox)),
                    Op::Write => handle.write(file.clone(), off, data, Sink(inbox)),
                }
                issued += 1;
                if issued.is_multiple_of(16) {
                    break;
                }
            }
        }
        if issued == completed {
            if stop {
                break;
            }
            continue;
        }
        completed = if stop || issued - completed >= qd as u64 || issued >= limit {
            inbox.wait_past(completed, spin)
        } else {
            inbox.done.load(Ordering::Acquire)
        };
    }
    match inbox.error.lock().unwrap().take() {
        Some(e) => Err(fail(e)),
        None => Ok(completed),
    }
}

fn median(mut v: Vec<Outcome>) -> Outcome {
    v.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    v[v.len() / 2]
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reactor_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn reactor_tid() -> Option<String> {
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let entry = entry.ok()?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        // The kernel keeps 15 bytes of a thread name: "arsyncfs-reacto".
        if "arsyncfs-reactor".starts_with(comm.trim()) && !comm.trim().is_empty() {
            return entry.file_name().to_str().map(str::to_owned);
        }
    }
    None
}

fn run(args: Args) -> io::Result<()> {
    let mut ops = Vec::new();
    for o in &args.ops {
        ops.push(match o.as_str() {
            "read" => Op::Read,
            "write" => Op::Write,
            _ => return Err(fail(format!("unknown op {o:?} (read, write)"))),
        });
    }
    let mut caches = Vec::new();
    for c in &args.cache {
        caches.push(match c.as_str() {
            "cached" => Cache::Cached,
            "cold" => Cache::Cold,
            _ => return Err(fail(format!("unknown cache state {c:?} (cached, cold)"))),
        });
    }
    if args.qd.contains(&0) || args.threads.contains(&0) || args.repeat == 0 || args.secs <= 0.0 {
        return Err(fail(
            "queue depths, threads, repeat and secs must be positive",
        ));
    }
    let max_bs = *args.bs.iter().max().ok_or_else(|| fail("no block size"))?;
    let max_qd = *args.qd.iter().max().ok_or_else(|| fail("no queue depth"))?;
    let max_threads = *args
        .threads
        .iter()
        .max()
        .ok_or_else(|| fail("no thread count"))?;
    if args
        .bs
        .iter()
        .any(|&b| b > args.size || b > u32::MAX as u64)
    {
        return Err(fail("block size larger than the file"));
    }
    if args.size / args.bs.iter().min().copied().unwrap_or(1) > u32::MAX as u64 {
        return Err(fail(
            "too many blocks; use a larger block size or a smaller file",
        ));
    }

    let file = prepare_file(&args.file, args.size)?;
    advise(&file, rustix::fs::Advice::Random)?;
    let file = Arc::new(file);

    let config = ReactorConfig {
        buffers: args.buffers.unwrap_or((max_qd * max_threads).max(128)),
        buffer_size: (max_bs as usize).max(1 << 20),
        ..ReactorConfig::default()
    };
    let reactor = arsyncfs::reactor::Reactor::<BenchCompletions>::start(config)?;
    let mut bench = Bench {
        file,
        size: args.size,
        cached_size: args.cached_size,
        handle: reactor.handle(),
        secs: args.secs,
        seed: 1,
        sender_spin: Duration::from_micros(args.sender_spin_us),
        reactor_tid: reactor_tid(),
    };

    if args.strace_proof {
        let tid = bench
            .reactor_tid
            .clone()
            .ok_or_else(|| fail("reactor thread not found in /proc"))?;
        eprintln!("reactor-tid: {tid}");
        bench.secs = args.secs.min(0.3);
        let bs = args.bs[0];
        // Through the reactor, then (so that the trace shows what plain I/O looks like, from the
        // sending thread) a little plain pread/pwrite.
        for engine in [Engine::Reactor { qd: max_qd }, Engine::Plain] {
            for &op in &ops {
                let o = bench.run(Case {
                    cache: Cache::Cached,
                    op,
                    bs,
                    threads: 1,
                    engine,
                })?;
                println!("{engine:?} {op:?} {}: {} ops", human(bs), o.ops);
            }
            bench.secs = 0.05;
        }
        reactor.shutdown();
        return Ok(());
    }

    // Fault in the pool's buffers once so the first measured case does not pay for it.
    bench.secs = 0.2;
    bench.run(Case {
        cache: Cache::Cached,
        op: Op::Read,
        bs: max_bs,
        threads: max_threads,
        engine: Engine::Reactor { qd: max_qd },
    })?;
    bench.secs = args.secs;

    println!(
        "# file {} size {}  {} s/run  median of {}  reactor: {} buffers of {}",
        args.file.display(),
        human(args.size),
        args.secs,
        args.repeat,
        config.buffers,
        human(config.buffer_size as u64)
    );
    println!(
        "{:<6} {:<5} {:>5} {:>3} {:<8} {:>3} {:>10} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "cache",
        "op",
        "bs",
        "thr",
        "engine",
        "qd",
        "ops/s",
        "MiB/s",
        "x_same_t",
        "x_plain1",
        "wake/op",
        "sleep/op",
        "scpu_us",
        "rcpu_us",
        "preempt"
    );
    for &cache in &caches {
        let _pin = if cache == Cache::Cached {
            warm_cache(&bench.file, args.cached_size.min(args.size))?;
            if args.pin {
                Some(Pin::new(&args.file, args.cached_size.min(args.size))?)
            } else {
                None
            }
        } else {
            None
        };
        for &op in &ops {
            for &bs in &args.bs {
                let mut plain1: Option<f64> = None;
                for &threads in &args.threads {
                    let mut engines = Vec::new();
                    if !args.no_plain {
                        engines.push(Engine::Plain);
                    }
                    engines.extend(args.qd.iter().map(|&qd| Engine::Reactor { qd }));
                    let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); engines.len()];
                    for _ in 0..args.repeat {
                        for (i, &engine) in engines.iter().enumerate() {
                            runs[i].push(bench.run(Case {
                                cache,
                                op,
                                bs,
                                threads,
                                engine,
                            })?);
                        }
                    }
                    let mut plain_same: Option<f64> = None;
                    for (engine, runs) in engines.iter().zip(runs) {
                        let m = median(runs);
                        let rate = m.rate();
                        if *engine == Engine::Plain {
                            plain_same = Some(rate);
                            if threads == 1 {
                                plain1 = Some(rate);
                            }
                        }
                        let ratio = |base: Option<f64>| match base {
                            Some(b) if b > 0.0 => format!("{:.2}", rate / b),
                            _ => "-".into(),
                        };
                        let (name, qd) = match engine {
                            Engine::Plain => (
                                if op == Op::Read { "pread" } else { "pwrite" },
                                "-".to_string(),
                            ),
                            Engine::Reactor { qd } => ("reactor", qd.to_string()),
                        };
                        let per_op = |n: u64| {
                            if matches!(engine, Engine::Reactor { .. }) && m.ops > 0 {
                                format!("{:.3}", n as f64 / m.ops as f64)
                            } else {
                                "-".into()
                            }
                        };
                        let per_op_us = |ns: u64| {
                            if matches!(engine, Engine::Reactor { .. }) && m.ops > 0 {
                                format!("{:.3}", ns as f64 / 1000.0 / m.ops as f64)
                            } else {
                                "-".into()
                            }
                        };
                        println!(
                            "{:<6} {:<5} {:>5} {:>3} {:<8} {:>3} {:>10.0} {:>9.1} {:>9} {:>9} {:>7} {:>7} {:>8} {:>8} {:>8}",
                            format!("{cache:?}").to_lowercase(),
                            format!("{op:?}").to_lowercase(),
                            human(bs),
                            threads,
                            name,
                            qd,
                            rate,
                            rate * bs as f64 / (1 << 20) as f64,
                            ratio(plain_same),
                            ratio(plain1),
                            per_op(m.wakeups),
                            per_op(m.sleeps),
                            format!(
                                "{:.3}",
                                m.sender_cpu_ns as f64 / 1000.0 / m.ops.max(1) as f64
                            ),
                            per_op_us(m.reactor_cpu_ns),
                            per_op(m.reactor_preempted),
                        );
                    }
                }
            }
        }
    }
    let stats: ReactorStats = bench.handle.stats();
    println!(
        "# reactor totals: received {} wakeups {} sleeps {} buffer_waits {} pool {:?}",
        stats.received, stats.wakeups, stats.sleeps, stats.buffer_waits, stats.pool
    );
    reactor.shutdown();
    Ok(())
}
