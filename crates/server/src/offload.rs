//! Half-sync/half-async (POSA2): event loops hand each message's work to a pool of
//! worker threads and write the reply when it comes back, so a blocking call or a long
//! computation stalls one worker instead of every connection on a loop (`--offload N`).
//!
//! The asynchronous half is any event loop; the synchronous half is [`Offload`]: N
//! threads taking jobs from one channel, each running the handler (a
//! [`Work`](crate::Work)) on the job's payload. A loop talks to the pool through its
//! own [`OffloadPort`]: it submits a job with a key (its connection's index or token),
//! and the job comes back on the port's completion queue, after which the port runs
//! the wake callback the loop gave — `mio::Waker::wake`, `polling::Poller::notify`, an
//! eventfd write: the pool does not know which. Several loops (reactors) share one pool,
//! each with its own port. The wake is coalesced: a port is woken once until the loop
//! next takes its completions ([`OffloadPort::completed`]), not once per job.
//!
//! Shutdown: the loops drain first (their sessions give every offloaded frame its reply,
//! so they keep their ports and the pool running until the jobs are back), then the
//! pool is finished ([`Offload::finish`], or dropped): the jobs still queued are worked
//! on and returned, and the threads are joined.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use echolab_proto::{Handler, Job};

/// Something a worker can work on: it lends the message's payload to the handler.
pub trait Offloadable: Send + 'static {
    /// The message's payload.
    fn payload(&self) -> &[u8];
}

/// A session's complete frame ([`echolab_proto::Session::take_job`]).
impl Offloadable for Job {
    fn payload(&self) -> &[u8] {
        Job::payload(self)
    }
}

/// A message as plain bytes: the pool's own tests offload these.
#[cfg(test)]
impl Offloadable for Vec<u8> {
    fn payload(&self) -> &[u8] {
        self
    }
}

enum Message<T> {
    Task {
        key: usize,
        item: T,
        port: Arc<Completion<T>>,
    },
    /// One per worker, after every task, at finish.
    Stop,
}

/// Where a loop's finished jobs go, and how it is told.
struct Completion<T> {
    done: Sender<(usize, T)>,
    wake: Box<dyn Fn() + Send + Sync>,
    /// Set when the loop has been woken and has not yet taken its completions.
    woken: AtomicBool,
}

impl<T> Completion<T> {
    fn deliver(&self, key: usize, item: T) {
        // The loop may have stopped (and dropped its port): then nobody waits for it.
        if self.done.send((key, item)).is_ok() && !self.woken.swap(true, Ordering::AcqRel) {
            (self.wake)();
        }
    }
}

/// The worker pool: see the module docs.
pub struct Offload<T: Offloadable = Job> {
    tasks: Sender<Message<T>>,
    /// Whether [`Offload::finish`] has begun; under the lock, so that no task is sent
    /// after the workers' stop messages.
    closed: Arc<RwLock<bool>>,
    workers: Vec<JoinHandle<()>>,
}

/// One event loop's connection to the pool: submit jobs, take them back.
pub struct OffloadPort<T: Offloadable = Job> {
    tasks: Sender<Message<T>>,
    closed: Arc<RwLock<bool>>,
    completion: Arc<Completion<T>>,
    done: Receiver<(usize, T)>,
}

impl<T: Offloadable> Offload<T> {
    /// Starts `workers` threads (at least 1) running `handler` on each job. A thread
    /// that cannot be started is an error (the ones already started are stopped).
    pub fn start(workers: usize, handler: Arc<dyn Handler>) -> io::Result<Offload<T>> {
        if workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an offload pool needs at least one worker thread",
            ));
        }
        let (tasks, queue) = crossbeam_channel::unbounded();
        let mut pool = Offload {
            tasks,
            closed: Arc::new(RwLock::new(false)),
            workers: Vec::with_capacity(workers),
        };
        for i in 0..workers {
            let (queue, handler) = (queue.clone(), Arc::clone(&handler));
            let worker = std::thread::Builder::new()
                .name(format!("offload-{i}"))
                .spawn(move || run_worker(&queue, &*handler))?;
            // On an early return the pool is dropped: the started workers stop.
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// A port for one event loop: its jobs come back to it, and `wake` runs (on a
    /// worker thread) when a job comes back and the loop has not been woken since it
    /// last took its completions.
    pub fn port(&self, wake: impl Fn() + Send + Sync + 'static) -> OffloadPort<T> {
        let (done_tx, done) = crossbeam_channel::unbounded();
        OffloadPort {
            tasks: self.tasks.clone(),
            closed: Arc::clone(&self.closed),
            completion: Arc::new(Completion {
                done: done_tx,
                wake: Box::new(wake),
                woken: AtomicBool::new(false),
            }),
            done,
        }
    }

    /// Works off every job already submitted, returns each to its port, and joins the
    /// threads. Later submissions are refused. Dropping the pool does the same.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        {
            let mut closed = self.closed.write().unwrap_or_else(PoisonError::into_inner);
            if *closed {
                return;
            }
            *closed = true;
            // Behind every task already queued: each worker takes one and exits.
            for _ in &self.workers {
                let _ = self.tasks.send(Message::Stop);
            }
        }
        for worker in self.workers.drain(..) {
            // A worker survives a panicking handler (caught per job), so this is Ok.
            let _ = worker.join();
        }
    }
}

impl<T: Offloadable> Drop for Offload<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<T: Offloadable> std::fmt::Debug for Offload<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offload")
            .field("workers", &self.workers.len())
            .field("queued", &self.tasks.len())
            .finish()
    }
}

impl<T: Offloadable> OffloadPort<T> {
    /// Hands `item` to the pool; it comes back from [`OffloadPort::completed`] with
    /// `key`. Refused, with the item given back, once the pool is finishing.
    pub fn submit(&self, key: usize, item: T) -> Result<(), T> {
        let closed = self.closed.read().unwrap_or_else(PoisonError::into_inner);
        if *closed {
            return Err(item);
        }
        let task = Message::Task {
            key,
            item,
            port: Arc::clone(&self.completion),
        };
        self.tasks.send(task).map_err(|e| match e.into_inner() {
            Message::Task { item, .. } => item,
            Message::Stop => unreachable!("a port sends only tasks"),
        })
    }

    /// The jobs that came back since the last call, with their keys, and re-arms the
    /// wake: a loop calls this whenever it was woken (it may call it every turn).
    pub fn completed(&self) -> impl Iterator<Item = (usize, T)> + '_ {
        // Acquire pairs with the worker's release: a job delivered before its worker saw
        // the flag set is visible to the drain below; one delivered after wakes again.
        self.completion.woken.swap(false, Ordering::AcqRel);
        self.done.try_iter()
    }
}

impl<T: Offloadable> std::fmt::Debug for OffloadPort<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffloadPort")
            .field("completed", &self.done.len())
            .finish()
    }
}

fn run_worker<T: Offloadable>(queue: &Receiver<Message<T>>, handler: &dyn Handler) {
    while let Ok(Message::Task { key, item, port }) = queue.recv() {
        // A handler that panics must not lose the job: its connection would wait for
        // it forever. The message is answered without its work, and the worker lives.
        if catch_unwind(AssertUnwindSafe(|| handler.handle(item.payload()))).is_err() {
            tracing::error!(key, "the work handler panicked; answering without its work");
        }
        port.deliver(key, item);
    }
}

#[cfg(test)]
mod tests;
