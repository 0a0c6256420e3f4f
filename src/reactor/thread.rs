//! The reactor thread's life: [`Reactor::start`] builds the runtime on a new thread and reports
//! whether io_uring works; shutdown lets the reactor drain every request it took, then joins it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::ReactorConfig;
use super::handle::{Lane, ReactorHandle};
use super::pool::BufferPool;
use super::request::Completions;
use super::runtime::build_runtime;
use super::scheduler;
use super::shared::{Message, Shared};

/// The reactor threads. Stop them with [`Reactor::shutdown`]; dropping them shuts them down too.
pub struct Reactor<C: Completions> {
    handle: ReactorHandle<C>,
    threads: Vec<JoinHandle<()>>,
}

impl<C: Completions> Reactor<C> {
    /// Starts the reactor threads (`config.reactors`, 0 = one per CPU). Fails, with a message that
    /// says what to do, if io_uring is unavailable.
    pub fn start(config: ReactorConfig) -> io::Result<Self> {
        if config.buffers == 0 || config.buffer_size == 0 || config.ring_entries == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "reactor buffers, buffer size and ring entries must all be at least 1",
            ));
        }
        let cpus = allowed_cpus();
        // A request goes to the reactor of its sender's CPU, so more reactors than CPUs would idle.
        let n = match (config.reactors, cpus.len()) {
            (0, 0) => 1,
            (0, c) => c,
            (n, 0) => n.min(1),
            (n, c) => n.min(c),
        };
        // One reactor runs wherever the scheduler puts it; several are pinned one per CPU.
        let pinned = n > 1 && !cpus.is_empty();
        let lane_config = ReactorConfig {
            buffers: config.buffers.div_ceil(n),
            ..config
        };
        let mut lanes = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        // CPUs without a reactor of their own (more CPUs than reactors) spread over the reactors.
        let mut lane_of_cpu: Vec<usize> = (0..cpus.iter().max().map_or(0, |&c| c + 1))
            .map(|cpu| cpu % n)
            .collect();
        // n <= cpus.len() when pinned, so each reactor gets a CPU of its own.
        let cpu_of_lane = (0..n).map(|i| pinned.then(|| cpus[i]));
        for (i, cpu) in cpu_of_lane.enumerate() {
            if let Some(cpu) = cpu {
                lane_of_cpu[cpu] = i;
            }
            match start_lane::<C>(i, lane_config, cpu) {
                Ok((lane, thread)) => {
                    lanes.push(lane);
                    threads.push(thread);
                }
                Err(e) => {
                    // Stop the ones already running before reporting.
                    let started = Reactor {
                        handle: ReactorHandle {
                            lanes: lanes.into(),
                            lane_of_cpu: lane_of_cpu.into(),
                        },
                        threads,
                    };
                    drop(started);
                    return Err(e);
                }
            }
        }
        Ok(Reactor {
            handle: ReactorHandle {
                lanes: lanes.into(),
                lane_of_cpu: lane_of_cpu.into(),
            },
            threads,
        })
    }

    /// A handle to send work from any thread.
    pub fn handle(&self) -> ReactorHandle<C> {
        self.handle.clone()
    }

    /// Waits, at most `limit`, until every request sent so far has been answered; false on timeout.
    /// (Before unmounting: the kernel aborts the requests still open, and late answers would find
    /// no request.)
    pub fn wait_answered(&self, limit: Duration) -> bool {
        let start = Instant::now();
        let unanswered = || {
            self.handle
                .lanes
                .iter()
                .map(|l| l.shared.unanswered())
                .sum::<u64>()
        };
        while unanswered() > 0 {
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Stops taking new work, finishes every request already queued or in flight on every reactor
    /// (each gets its one completion), and joins the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // Every reactor stops taking work first, then each drains; a request sent meanwhile to any
        // of them is answered ESHUTDOWN by the sender.
        for lane in self.handle.lanes.iter() {
            lane.shared.stopping.store(true, Ordering::Release);
            if lane.tx.send(Message::Shutdown).is_ok() {
                lane.shared.bell.ring();
            }
        }
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a reactor thread panicked");
            }
        }
    }
}

impl<C: Completions> Drop for Reactor<C> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts reactor `index` on a thread of its own (pinned to `cpu` if given); returns its lane once
/// its runtime is built.
fn start_lane<C: Completions>(
    index: usize,
    config: ReactorConfig,
    cpu: Option<usize>,
) -> io::Result<(Lane<C>, JoinHandle<()>)> {
    let shared = Arc::new(Shared::new(BufferPool::new(
        config.buffers,
        config.buffer_size,
    )));
    let (tx, rx) = crossbeam_channel::unbounded();
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let thread_shared = shared.clone();
    let name = if index == 0 {
        "arsyncfs-reactor".to_owned()
    } else {
        format!("arsyncfs-reactor{index}")
    };
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        if let Some(cpu) = cpu {
            let mut set = rustix::thread::CpuSet::new();
            set.set(cpu);
            if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
                tracing::warn!(cpu, "cannot pin a reactor thread: {e}");
            }
        }
        let runtime = match build_runtime(config.ring_entries) {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        // However the thread ends, senders must not keep waiting for it.
        let _closed_on_exit = CloseOnExit(thread_shared.clone());
        runtime.block_on(scheduler::run::<C>(rx, thread_shared, config));
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((Lane { tx, shared }, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other("the reactor thread died while starting"))
        }
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Marks the reactor stopped and closes its pool when the reactor thread ends, also by a panic:
/// later requests are refused at once and writers blocked on the pool are released.
struct CloseOnExit(Arc<Shared>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.stopping.store(true, Ordering::Release);
        self.0.pool.close();
    }
}
