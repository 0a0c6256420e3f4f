//! The reactor thread's life: [`Reactor::start`] builds the runtime on a new thread and reports
//! whether io_uring works; shutdown lets the reactor drain every request it took, then joins it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::ReactorConfig;
use super::handle::ReactorHandle;
use super::pool::BufferPool;
use super::request::Completions;
use super::runtime::build_runtime;
use super::scheduler;
use super::shared::{Message, Shared};

/// The reactor thread. Stop it with [`Reactor::shutdown`]; dropping it shuts it down too.
pub struct Reactor<C: Completions> {
    handle: ReactorHandle<C>,
    thread: Option<JoinHandle<()>>,
}

impl<C: Completions> Reactor<C> {
    /// Starts the reactor thread. Fails, with a message that says what to do, if io_uring is
    /// unavailable.
    pub fn start(config: ReactorConfig) -> io::Result<Self> {
        if config.buffers == 0 || config.buffer_size == 0 || config.ring_entries == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "reactor buffers, buffer size and ring entries must all be at least 1",
            ));
        }
        let shared = Arc::new(Shared::new(BufferPool::new(
            config.buffers,
            config.buffer_size,
        )));
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("arsyncfs-reactor".into())
            .spawn(move || {
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
            Ok(Ok(())) => Ok(Reactor {
                handle: ReactorHandle { tx, shared },
                thread: Some(thread),
            }),
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

    /// A handle to send work from any thread.
    pub fn handle(&self) -> ReactorHandle<C> {
        self.handle.clone()
    }

    /// Waits, at most `limit`, until every request sent so far has been answered; false on timeout.
    /// (Before unmounting: the kernel aborts the requests still open, and late answers would find
    /// no request.)
    pub fn wait_answered(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while self.handle.shared.unanswered.load(Ordering::Acquire) > 0 {
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Stops taking new work, finishes every request already queued or in flight (each gets its one
    /// completion), and joins the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.handle.shared.stopping.store(true, Ordering::Release);
        if self.handle.tx.send(Message::Shutdown).is_ok() {
            self.handle.shared.bell.ring();
        }
        if thread.join().is_err() {
            tracing::error!("the reactor thread panicked");
        }
    }
}

impl<C: Completions> Drop for Reactor<C> {
    fn drop(&mut self) {
        self.stop();
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
