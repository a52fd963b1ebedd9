//! `--offload N` for a task: its connection's line to the shared [`Offload`] pool.
//!
//! Each task gets a port of its own whose wake callback is a [`Notify`]: with one job
//! out per connection at a time, the port is the job's oneshot, and the worker that
//! finishes it wakes exactly the task that waits for it (through the runtime, as any
//! I/O readiness would). `Notify` keeps a permit when the task is not waiting yet, so a
//! job that comes back between two `select!`s is not missed.

use std::sync::Arc;
use std::time::Instant;

use echolab_proto::Session;
use echolab_server::{Offload, OffloadPort};
use tokio::sync::Notify;

/// One connection's port to the pool, and whether its job is out.
#[derive(Debug)]
pub(crate) struct JobLine {
    port: OffloadPort,
    back: Arc<Notify>,
    out: bool,
}

impl JobLine {
    /// A line to `pool` for one connection.
    pub(crate) fn new(pool: &Offload) -> JobLine {
        let back = Arc::new(Notify::new());
        let wake = Arc::clone(&back);
        JobLine {
            port: pool.port(move || wake.notify_one()),
            back,
            out: false,
        }
    }

    /// After any change to the session: the job that came back (if it did) queues its
    /// reply, and the next complete frame goes out (one at a time keeps the replies in
    /// order).
    pub(crate) fn exchange(&mut self, session: &mut Session) {
        for (_, job) in self.port.completed() {
            session.complete_job(job, Instant::now());
            self.out = false;
        }
        if self.out {
            return;
        }
        if let Some(job) = session.take_job() {
            match self.port.submit(0, job) {
                Ok(()) => self.out = true,
                // The pool finishes only after every task has drained; should a task
                // outlive it, it answers without the work rather than lose the reply.
                Err(job) => session.complete_job(job, Instant::now()),
            }
        }
    }

    /// Whether a job is out: the session then waits for it (and perhaps for nothing
    /// else — no read under backpressure, no deadline while work is owed).
    pub(crate) fn is_out(&self) -> bool {
        self.out
    }

    /// Resolves when the pool has woken this line (perhaps spuriously: the caller
    /// [exchanges](JobLine::exchange) and finds nothing).
    pub(crate) async fn woken(&self) {
        self.back.notified().await;
    }
}
