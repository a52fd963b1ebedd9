//! # uring — one thread, io_uring completions
//!
//! The readiness models ask the kernel "which socket can make progress?" and then make
//! the calls themselves. This one hands the kernel the work and is told when it is
//! *done*: it puts requests in a submission ring shared with the kernel, and reads
//! results from a completion ring. Three requests do almost everything:
//!
//! - **one multishot accept** on the listener (Linux 5.19): armed once, it posts a
//!   completion with a new descriptor for every connection, no `accept4` per client;
//! - **one multishot receive per connection** into a **provided-buffer ring**
//!   (Linux 6.0, buffer rings 5.19): armed once, it posts a completion whenever bytes
//!   arrive, in a buffer the kernel picked from a shared pool, so a connection waiting
//!   for data holds no buffer. The loop copies the bytes into the [`Session`] and gives
//!   the buffer back in the same turn;
//! - **a send from a buffer the kernel holds**: [`Session::take_transmit`] hands over
//!   the output as an owned `Vec`, which the connection keeps until the send's
//!   completion, then [`Session::complete_transmit`] takes it back with the count sent
//!   (the rest, after a short send, goes out again first). One send per connection in
//!   flight keeps the bytes in order.
//!
//! **Syscalls.** One `io_uring_enter` per turn submits everything the turn queued and
//! waits for the next completion, whatever the number of connections. Per connection,
//! besides the shared `io_uring_enter`: `setsockopt(TCP_NODELAY)`, `io_uring_register`
//! twice (the socket into the ring's fixed-file table, so no request pays a descriptor
//! lookup, and out again), `shutdown(SHUT_WR)` for the FIN, and `close`. Per message:
//! none of its own.
//!
//! **Where it waits.** Only in `io_uring_enter`, for at least one completion, with a
//! timeout (`IORING_ENTER_EXT_ARG`, Linux 5.11) equal to the earliest session deadline
//! or the end of an accept back-off. The shutdown descriptor is watched by a poll
//! request in the same ring, so a signal wakes the loop like any completion.
//!
//! **What a connection costs.** A descriptor, a [`Session`]
//! and a slab slot, plus the kernel's record of its armed receive and its fixed-file
//! slot. The receive buffers are shared: a pool of [`BUFFERS`] x [`BUFFER_SIZE`] bytes
//! for the whole loop, only touched pages backed.
//!
//! **How it fails under load.** One core is the ceiling, as for every one-thread
//! loop. A turn that receives more than the pool holds makes the kernel end the
//! receives it cannot serve (`ENOBUFS`); they are armed again at the end of the turn,
//! when every buffer is back, so a flood slows down but loses nothing. Backpressure: a
//! session above its high-water mark has its receive cancelled, and armed again when
//! it drains (what arrives before the cancel lands is still taken in: at most a pool's
//! worth). Out of descriptors, the accept fails (`EMFILE`): the loop stops accepting
//! for [`ACCEPT_BACKOFF`] and arms it again.
//!
//! **Cancellation.** A connection that ends with requests in flight — its session
//! closed after a deadline, a reset, shutdown — gets an `IORING_OP_ASYNC_CANCEL` for
//! each, and keeps its descriptor, its slab slot and the buffer a send points at until
//! their last completions arrive. Only then is it closed.
//!
//! **With work.** `--work` runs inline when a receive completes a frame, on the one
//! thread: a blocking call holds every connection's completions in the ring until it
//! returns. `--offload N` hands each complete frame to the shared pool of N threads
//! (one frame out per connection, so replies stay in order); a worker that finishes
//! one makes a wake descriptor readable, and a one-shot `IORING_OP_POLL_ADD` on it —
//! like the shutdown poll — completes in the ring like any request, so the loop still
//! waits in one place. Its completion clears the descriptor (one `read`) and re-arms
//! the poll (queued for the next `io_uring_enter`) before the jobs are taken back; each
//! turn takes them, queues their replies' sends and hands over the next frames.
//! Not an eventfd read: it would keep a buffer of ours in the kernel for nothing;
//! not `IORING_OP_MSG_RING`: the workers would each need a ring of their own.
//!
//! **Shutdown.** The shutdown poll completes; the loop first runs the completions the
//! kernel already has (bytes that arrived before the signal are still echoed), cancels
//! the accept and closes the listener when that cancel lands (new connects are then
//! refused), tells every session to [`Session::begin_shutdown`], and runs until every
//! connection has closed and every request has completed (the offload poll is
//! cancelled once no connection is left, since no job can then come back). The stats
//! line's `kernel_held` says what the kernel still held at the end: nothing, after a
//! clean stop.
//!
//! **What the kernel must offer** (checked before binding; otherwise `echolab serve
//! uring` says `io_uring unavailable: ...` and exits non-zero): io_uring not disabled
//! (`kernel.io_uring_disabled`, seccomp), Linux 6.0 or later (multishot receive),
//! and the requests above in the ring's opcode probe.
//!
//! [`Session`]: echolab_proto::Session
//! [`Session::take_transmit`]: echolab_proto::Session::take_transmit
//! [`Session::complete_transmit`]: echolab_proto::Session::complete_transmit
//! [`Session::begin_shutdown`]: echolab_proto::Session::begin_shutdown
//! [`ACCEPT_BACKOFF`]: echolab_server::ACCEPT_BACKOFF

mod buf_ring;
mod error;
mod ops;

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab_proto::Job;
use echolab_server::{
    accept_failed, admit_accepted, run_event_loop, Accepted, Conns, EventLoop, Listen, Listening,
    Offload, OffloadPort, ServerContext, WakeFd,
};
use io_uring::types::{Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use buf_ring::BufRing;
pub use error::UringError;
use ops::Op;

/// Receive buffers in the shared pool (a power of two).
pub const BUFFERS: u16 = 128;
/// Bytes per receive buffer: the most one receive completion carries.
pub const BUFFER_SIZE: u32 = 4096;
/// Submission ring entries; the completion ring has four times as many.
const RING_ENTRIES: u32 = 1024;
/// After shutdown, how long to wait for the last completions before giving up on them
/// (they are then reported in the stats line's `kernel_held`).
const FINAL_WAIT: Duration = Duration::from_secs(1);

/// A connection's requests in the kernel.
#[derive(Debug, Default)]
struct InFlight {
    recv: Recv,
    /// The output buffer the kernel is sending from: it lives here, untouched, until
    /// the send's completion.
    send: Option<Vec<u8>>,
    send_cancelled: bool,
    /// The peer's FIN (or an error) ended receiving for good.
    peer_done: bool,
    /// The connection is closing (with an I/O error or not): waiting for the last
    /// completions before the descriptor is closed.
    doomed: Option<bool>,
    /// Its socket is in the ring's fixed-file table at its slab index, so requests name
    /// it by slot and the kernel skips the descriptor lookup (`fget`/`fput`) per send.
    fixed: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Recv {
    #[default]
    Idle,
    Armed,
    Cancelling,
}

impl InFlight {
    fn is_quiet(&self) -> bool {
        self.recv == Recv::Idle && self.send.is_none()
    }
}

struct Loop<'a> {
    ctx: &'a ServerContext,
    ring: IoUring,
    bufs: BufRing,
    listening: Listening,
    accept_armed: bool,
    /// The listener after shutdown, kept open until its accept's last completion.
    closing_listener: Option<TcpListener>,
    waker_armed: bool,
    conns: Conns<InFlight>,
    shutting_down: bool,
    /// Requests whose last completion has not arrived.
    in_flight: u64,
    /// Slots in the ring's fixed-file table; a connection whose slab index is below
    /// this is registered there.
    fixed_slots: u32,
    /// Whether a multishot accept / receive has ever succeeded (an `EINVAL` before
    /// that means the kernel does not have it).
    accept_seen: bool,
    recv_seen: bool,
    /// Completions taken off the ring and not yet handled, oldest first.
    backlog: VecDeque<cqueue::Entry>,
    /// The time of this turn, read once when the wait returns: what the sessions are
    /// told for every completion of the turn (a clock read per completion would cost
    /// more than the microseconds it could add).
    now: Instant,
    /// When the last connection closed during the drain, with requests still in flight.
    quiet_since: Option<Instant>,
    /// `--offload`: this loop's port to the worker pool.
    offload: Option<Offloading>,
}

/// `--offload`: the port, the descriptor the pool wakes the loop by, and its poll.
struct Offloading {
    port: OffloadPort,
    /// Shared with the port's wake callback, which may outlive the loop on a worker.
    wake: Arc<WakeFd>,
    /// Whether the poll on `wake` is in the kernel.
    armed: bool,
    /// Whether that poll has been cancelled (the drain is over).
    cancelled: bool,
    /// The jobs taken back this turn (kept to reuse its allocation).
    done: Vec<(usize, Job)>,
}

/// Serves every client from one thread on an io_uring until shutdown, then lets every
/// session finish and returns. Fails before binding, with a [`UringError`], when the
/// kernel lacks what the model needs.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    let ring = open_ring()?;
    let bufs =
        BufRing::register(&ring, BUFFERS, BUFFER_SIZE).map_err(|source| UringError::Refused {
            what: "registering a provided-buffer ring",
            since: "5.19",
            source,
        })?;
    let fixed_slots = register_fixed_table(&ring, ctx.config.max_conns);
    let pool = ctx.start_offload()?;
    let offload = match &pool {
        Some(pool) => Some(Offloading::new(pool)?),
        None => None,
    };
    let listening = Listening::new(listen.bind()?)?;
    let mut lp = Loop {
        ctx,
        ring,
        bufs,
        listening,
        accept_armed: false,
        closing_listener: None,
        waker_armed: false,
        conns: Conns::new(ctx),
        shutting_down: false,
        in_flight: 0,
        fixed_slots,
        accept_seen: false,
        recv_seen: false,
        backlog: VecDeque::with_capacity(RING_ENTRIES as usize),
        now: Instant::now(),
        quiet_since: None,
        offload,
    };
    let result = lp.arm_waker().and_then(|()| lp.arm_offload());
    let result = result.and_then(|()| lp.arm_accept());
    let result = result.and_then(|()| run_event_loop(&mut lp));
    let Loop {
        ring,
        bufs,
        in_flight,
        offload,
        ..
    } = lp;
    // Every connection has drained: every offloaded job is back, so this only joins.
    drop(offload);
    if let Some(pool) = pool {
        pool.finish();
    }
    ctx.stats
        .record_kernel_held("provided_buffers", bufs.missing(&ring));
    ctx.stats.record_kernel_held("requests", in_flight);
    bufs.close(&ring, in_flight == 0);
    result
}

/// Checks the kernel, sets up the ring and probes for every request the loop makes.
fn open_ring() -> Result<IoUring, UringError> {
    if let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        error::check_release(release.trim(), (6, 0), "6.0", "multishot receive")?;
    }
    // Only this thread submits, and completions are finished when it enters the kernel
    // rather than by interrupting it (`COOP_TASKRUN`, Linux 5.19). `DEFER_TASKRUN`
    // (6.1), which defers that work further, to the wait, measured 4% more CPU per
    // response here (docs/benchmarking.md).
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_cqsize(RING_ENTRIES * 4)
        .build(RING_ENTRIES)
        .map_err(UringError::setup)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(UringError::Unsupported {
            feature: "IORING_FEAT_EXT_ARG (a timeout on the wait)",
            since: "5.11",
        });
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|source| UringError::Refused {
            what: "the opcode probe",
            since: "5.6",
            source,
        })?;
    let needed = [
        (opcode::AcceptMulti::CODE, "IORING_OP_ACCEPT", "5.5"),
        (opcode::RecvMulti::CODE, "IORING_OP_RECV", "5.6"),
        (opcode::Send::CODE, "IORING_OP_SEND", "5.6"),
        (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL", "5.5"),
        (opcode::PollAdd::CODE, "IORING_OP_POLL_ADD", "5.1"),
    ];
    for (code, feature, since) in needed {
        if !probe.is_supported(code) {
            return Err(UringError::Unsupported { feature, since });
        }
    }
    Ok(ring)
}

/// A sparse fixed-file table of one slot per possible connection (at most 65,536; the
/// kernel also caps it at the descriptor limit), or none when the kernel refuses it:
/// then requests name plain descriptors, which works the same at the cost of a lookup
/// per request.
fn register_fixed_table(ring: &IoUring, max_conns: usize) -> u32 {
    let mut slots = u32::try_from(max_conns).unwrap_or(u32::MAX).min(1 << 16);
    while slots >= 64 {
        if ring.submitter().register_files_sparse(slots).is_ok() {
            return slots;
        }
        slots /= 2;
    }
    0
}

impl EventLoop for Loop<'_> {
    type Wait = InFlight;

    fn ctx(&self) -> &ServerContext {
        self.ctx
    }

    fn conns(&mut self) -> &mut Conns<InFlight> {
        &mut self.conns
    }

    fn draining(&self) -> bool {
        self.shutting_down
    }

    fn begin_shutdown(&mut self) -> io::Result<()> {
        self.begin_drain()
    }

    /// Every connection has closed; the requests cancelled for them may still be in
    /// the kernel: wait for their completions, up to [`FINAL_WAIT`].
    fn drained(&mut self) -> bool {
        if self.in_flight == 0 {
            return true;
        }
        let since = *self.quiet_since.get_or_insert_with(Instant::now);
        since.elapsed() >= FINAL_WAIT
    }

    fn wait_and_serve(&mut self) -> io::Result<Instant> {
        if self.shutting_down && self.conns.is_empty() {
            // No connection is left to send a job: the poll for their return can go.
            self.disarm_offload()?;
        }
        self.wait()?;
        self.now = Instant::now();
        self.complete_all()?;
        // After the completions, whose offload poll (if any) cleared the wake
        // descriptor: a job back in between wakes the re-armed poll, not lost.
        self.take_offloaded()?;
        if self.listening.resume_if_due(self.now) {
            self.arm_accept()?;
        }
        Ok(self.now)
    }

    fn expired(&mut self, index: usize, _now: Instant) -> io::Result<()> {
        self.pump(index, Ok(()))
    }
}

impl Loop<'_> {
    /// Submits what this turn queued and waits for one completion, or the earliest
    /// deadline: one `io_uring_enter`.
    fn wait(&mut self) -> io::Result<()> {
        let deadline = self.conns.next_wakeup(&self.listening);
        let deadline = if self.shutting_down && self.conns.is_empty() {
            Some(self.now + FINAL_WAIT)
        } else {
            deadline
        };
        let result = match deadline {
            None => self.ring.submit_and_wait(1),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let ts = Timespec::new()
                    .sec(left.as_secs())
                    .nsec(left.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                // Timed out, interrupted by a signal, or completions to reap first.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Runs every completion the kernel has posted, and those it posts meanwhile.
    fn complete_all(&mut self) -> io::Result<()> {
        self.backlog.extend(self.ring.completion());
        tracing::trace!(
            completions = self.backlog.len(),
            in_flight = self.in_flight,
            "turn"
        );
        while let Some(cqe) = self.backlog.pop_front() {
            self.complete(&cqe)?;
            if self.backlog.is_empty() {
                self.backlog.extend(self.ring.completion());
            }
        }
        Ok(())
    }

    fn complete(&mut self, cqe: &cqueue::Entry) -> io::Result<()> {
        let Some((op, index)) = Op::untag(cqe.user_data()) else {
            return Ok(());
        };
        let more = cqueue::more(cqe.flags());
        if !more {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        match op {
            Op::Accept => self.accepted(cqe.result(), more),
            Op::Waker => {
                // The flag is set before the descriptor becomes readable: `run` sees it.
                self.waker_armed = false;
                Ok(())
            }
            Op::Recv => self.received(index, cqe, more),
            Op::Send => self.sent(index, cqe.result()),
            Op::Cancel => Ok(()),
            Op::Offload => self.offload_woken(cqe.result()),
        }
    }

    /// The poll on the pool's wake descriptor completed: clear it and poll again, unless
    /// the drain is over (the jobs themselves are taken at the end of the turn).
    fn offload_woken(&mut self, result: i32) -> io::Result<()> {
        let Some(offload) = &mut self.offload else {
            return Ok(());
        };
        offload.armed = false;
        if result == -libc::ECANCELED || offload.cancelled {
            return Ok(());
        }
        offload.wake.clear();
        self.arm_offload()
    }

    /// `--offload`, every turn: the replies whose work is done go to their sessions,
    /// whose sends are queued (and next jobs handed over) by `pump`.
    fn take_offloaded(&mut self) -> io::Result<()> {
        let Some(offload) = &mut self.offload else {
            return Ok(());
        };
        let mut done = std::mem::take(&mut offload.done);
        done.extend(offload.port.completed());
        for (key, job) in done.drain(..) {
            if let Some(index) = self.conns.offload_done(key, job, self.now) {
                // An error here ends the loop: the jobs left in `done` go with it.
                self.pump(index, Ok(()))?;
            }
        }
        if let Some(offload) = &mut self.offload {
            offload.done = done;
        }
        Ok(())
    }

    /// A multishot accept completion: a new connection, or why there was none.
    fn accepted(&mut self, result: i32, more: bool) -> io::Result<()> {
        if !more {
            self.accept_armed = false;
            // The cancel at shutdown has landed: closing the listener now refuses new
            // connects (while the accept was armed, the kernel held it open).
            self.closing_listener = None;
        }
        if result >= 0 {
            self.accept_seen = true;
            // SAFETY: the kernel created this descriptor for us and names it only in
            // this completion; nothing else owns it.
            let stream = unsafe { std::net::TcpStream::from_raw_fd(result) };
            if self.shutting_down {
                // Accepted in the moment before the cancel landed: not served.
                drop(stream);
            } else if let Accepted::Connection(stream, slot) = admit_accepted(stream, self.ctx) {
                let ring = &self.ring;
                let fixed_slots = self.fixed_slots;
                let index = self.conns.admit(stream, slot, |index, stream, _| {
                    let fixed = u32::try_from(index).is_ok_and(|i| i < fixed_slots)
                        && ring
                            .submitter()
                            .register_files_update(index as u32, &[stream.as_raw_fd()])
                            .is_ok();
                    Ok(InFlight {
                        fixed,
                        ..InFlight::default()
                    })
                });
                if let Some(index) = index {
                    self.pump(index, Ok(()))?;
                }
            }
        } else {
            let e = io::Error::from_raw_os_error(-result);
            if result == -libc::ECANCELED {
                return Ok(());
            }
            if result == -libc::EINVAL && !self.accept_seen {
                return Err(UringError::Refused {
                    what: "multishot accept",
                    since: "5.19",
                    source: e,
                }
                .into());
            }
            if let Accepted::BackOff = accept_failed(&e, self.ctx) {
                self.listening.pause(self.now);
                if more {
                    self.cancel(Op::Accept.tag(0))?;
                }
            }
        }
        if !more && self.listening.is_accepting() {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// A multishot receive completion: bytes in a provided buffer, the peer's FIN, or
    /// the end of the receive.
    fn received(&mut self, index: usize, cqe: &cqueue::Entry, more: bool) -> io::Result<()> {
        let result = cqe.result();
        let Some(conn) = self.conns.get_mut(index) else {
            if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                self.bufs.give_back(bid);
            }
            return Ok(());
        };
        if !more {
            conn.wait.recv = Recv::Idle;
        }
        let now = self.now;
        if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
            let filled = match self.bufs.filled(bid, result.max(0) as usize) {
                Ok(data) => {
                    if !data.is_empty() {
                        conn.session.handle_input(data, now);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            };
            self.recv_seen = true;
            self.bufs.give_back(bid);
            filled?;
        }
        let outcome = match result {
            n if n > 0 => Ok(()),
            0 => {
                conn.wait.peer_done = true;
                conn.session.handle_eof(now);
                Ok(())
            }
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED => Ok(()),
            e if e == -libc::EINVAL && !self.recv_seen => {
                return Err(UringError::Refused {
                    what: "multishot receive with a provided-buffer ring",
                    since: "6.0",
                    source: io::Error::from_raw_os_error(-e),
                }
                .into());
            }
            e => {
                conn.wait.peer_done = true;
                Err(io::Error::from_raw_os_error(-e))
            }
        };
        self.pump(index, outcome)
    }

    /// A send completion: the kernel is done with the buffer.
    fn sent(&mut self, index: usize, result: i32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(());
        };
        let Some(buf) = conn.wait.send.take() else {
            return Ok(());
        };
        conn.wait.send_cancelled = false;
        let now = self.now;
        let outcome = if result >= 0 {
            conn.session.complete_transmit(buf, result as usize, now);
            Ok(())
        } else {
            conn.session.complete_transmit(buf, 0, now);
            if result == -libc::ECANCELED {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(-result))
            }
        };
        self.pump(index, outcome)
    }

    /// After any change to a connection: queue its send, arm or cancel its receive as
    /// the session wants, send the FIN and keep the deadline current (the readiness
    /// core's settle); or, once it is closing, cancel what is in flight and close it
    /// when nothing is.
    fn pump(&mut self, index: usize, outcome: io::Result<()>) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(());
        };
        if outcome.is_err() {
            conn.wait.doomed = Some(true);
        } else if conn.session.is_closed() && conn.wait.doomed.is_none() {
            conn.wait.doomed = Some(false);
        }
        if let Some(io_error) = conn.wait.doomed {
            let cancel_recv = conn.wait.recv == Recv::Armed;
            let cancel_send = conn.wait.send.is_some() && !conn.wait.send_cancelled;
            if cancel_recv {
                conn.wait.recv = Recv::Cancelling;
            }
            if cancel_send {
                conn.wait.send_cancelled = true;
            }
            if conn.wait.is_quiet() {
                if conn.wait.fixed {
                    // Out of the table before the descriptor closes (the table holds a
                    // reference of its own) and before the slot is reused.
                    let _ = self
                        .ring
                        .submitter()
                        .register_files_update(index as u32, &[-1]);
                }
                self.conns.close(index, io_error, |_| {});
                return Ok(());
            }
            if cancel_recv {
                self.cancel(Op::Recv.tag(index))?;
            }
            if cancel_send {
                self.cancel(Op::Send.tag(index))?;
            }
            return Ok(());
        }
        if let Some(offload) = &self.offload {
            self.conns.offload_next(index, &offload.port);
        }
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(());
        };
        let fd = Fd(conn.stream.as_raw_fd());
        let fixed = conn.wait.fixed.then_some(Fixed(index as u32));
        if conn.wait.send.is_none() {
            if let Some(buf) = conn.session.take_transmit() {
                let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
                let send = match fixed {
                    Some(slot) => opcode::Send::new(slot, buf.as_ptr(), len),
                    None => opcode::Send::new(fd, buf.as_ptr(), len),
                };
                let send = send
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(Op::Send.tag(index));
                conn.wait.send = Some(buf);
                // SAFETY: the entry points at the heap buffer of the Vec now in
                // `conn.wait.send`; it is neither touched nor dropped until this send's
                // completion takes it back (`sent`), and the connection is not closed
                // while a send is in flight (`pump` waits for it to be quiet).
                unsafe { self.push(&send)? };
            }
        }
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(());
        };
        let wants_read = conn.session.wants_read() && !conn.wait.peer_done;
        match (wants_read, conn.wait.recv) {
            (true, Recv::Idle) => {
                conn.wait.recv = Recv::Armed;
                let recv = match fixed {
                    Some(slot) => opcode::RecvMulti::new(slot, buf_ring::GROUP),
                    None => opcode::RecvMulti::new(fd, buf_ring::GROUP),
                };
                let recv = recv.build().user_data(Op::Recv.tag(index));
                // SAFETY: the receive points at no memory of ours but the registered
                // buffer ring, which lives until the ring is closed after the last
                // receive has completed (`BufRing::close`).
                unsafe { self.push(&recv)? };
            }
            (false, Recv::Armed) => {
                // Backpressure (or the session stopped reading): stop the receive.
                conn.wait.recv = Recv::Cancelling;
                self.cancel(Op::Recv.tag(index))?;
            }
            _ => {}
        }
        self.conns.settle(index, Ok(()), |_| {});
        Ok(())
    }

    fn begin_drain(&mut self) -> io::Result<()> {
        self.shutting_down = true;
        // Take in what has already arrived: a zero wait runs the kernel's pending
        // completions (the receives of bytes sent before the signal) before the
        // sessions stop reading.
        let ts = Timespec::new();
        match self
            .ring
            .submitter()
            .submit_with_args(1, &SubmitArgs::new().timespec(&ts))
        {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
        self.now = Instant::now();
        self.complete_all()?;
        if let Some(listener) = self.listening.close() {
            if self.accept_armed {
                self.cancel(Op::Accept.tag(0))?;
                self.closing_listener = Some(listener);
            }
        }
        if self.waker_armed {
            self.cancel(Op::Waker.tag(0))?;
        }
        for index in self.conns.indices() {
            if let Some(conn) = self.conns.get_mut(index) {
                conn.session.begin_shutdown(self.now);
                self.pump(index, Ok(()))?;
            }
        }
        Ok(())
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        let Some(listener) = self.listening.listener() else {
            return Ok(());
        };
        if self.accept_armed || !self.listening.is_accepting() {
            return Ok(());
        }
        let accept = opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(Op::Accept.tag(0));
        self.accept_armed = true;
        // SAFETY: the accept points at no memory of ours (no address is asked for).
        unsafe { self.push(&accept) }
    }

    fn arm_waker(&mut self) -> io::Result<()> {
        let waker = self.ctx.shutdown.waker().as_raw_fd();
        let poll = opcode::PollAdd::new(Fd(waker), libc::POLLIN as u32)
            .build()
            .user_data(Op::Waker.tag(0));
        self.waker_armed = true;
        // SAFETY: the poll points at no memory of ours.
        unsafe { self.push(&poll) }
    }

    /// `--offload`: polls the pool's wake descriptor (one-shot, re-armed by
    /// `offload_woken`).
    fn arm_offload(&mut self) -> io::Result<()> {
        let Some(offload) = &mut self.offload else {
            return Ok(());
        };
        if offload.armed || offload.cancelled {
            return Ok(());
        }
        let poll = opcode::PollAdd::new(Fd(offload.wake.fd().as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(Op::Offload.tag(0));
        offload.armed = true;
        // SAFETY: the poll points at no memory of ours; the descriptor stays open until
        // the poll's last completion (the loop owns it and cancels the poll first).
        unsafe { self.push(&poll) }
    }

    /// Cancels the poll on the pool's wake descriptor, once.
    fn disarm_offload(&mut self) -> io::Result<()> {
        let Some(offload) = &mut self.offload else {
            return Ok(());
        };
        if offload.cancelled {
            return Ok(());
        }
        offload.cancelled = true;
        if offload.armed {
            self.cancel(Op::Offload.tag(0))?;
        }
        Ok(())
    }

    /// Asks the kernel to cancel the request tagged `target`; its own completion (and
    /// the target's last one) come later.
    fn cancel(&mut self, target: u64) -> io::Result<()> {
        let cancel = opcode::AsyncCancel::new(target)
            .build()
            .user_data(Op::Cancel.tag(0));
        // SAFETY: a cancel points at no memory of ours.
        unsafe { self.push(&cancel) }
    }

    /// Queues `entry` for the next `io_uring_enter` (submitting early only if the
    /// submission ring is full).
    ///
    /// # Safety
    ///
    /// Every buffer `entry` points at must stay valid, and unmoved, until the request's
    /// last completion.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: passed on from the caller.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.in_flight += 1;
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {
                    // The completion ring is full: make room by taking completions off
                    // it, to be handled in order by `complete_all`.
                    self.backlog.extend(self.ring.completion());
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Offloading {
    /// A port to `pool` that wakes this loop through a descriptor of its own.
    fn new(pool: &Offload) -> io::Result<Offloading> {
        let wake = Arc::new(WakeFd::new()?);
        let remote = Arc::clone(&wake);
        Ok(Offloading {
            port: pool.port(move || remote.wake()),
            wake,
            armed: false,
            cancelled: false,
            done: Vec::new(),
        })
    }
}
