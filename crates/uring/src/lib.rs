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
//! cancelled once no connection is left, since no job is then awaited). The stats
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
mod complete;
mod error;
mod in_flight;
mod ops;
mod pump;
mod ring;
mod submit;
mod turn;

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab_proto::Job;
use echolab_server::{
    run_event_loop, Conns, Listen, Listening, Offload, OffloadPort, ServerContext, WakeFd,
};
use io_uring::{cqueue, IoUring};

use buf_ring::BufRing;
pub use error::UringError;
use in_flight::InFlight;
use ring::{open_ring, register_fixed_table};

/// Receive buffers in the shared pool (a power of two).
pub const BUFFERS: u16 = 128;
/// Bytes per receive buffer: the most one receive completion carries.
pub const BUFFER_SIZE: u32 = 4096;
/// Submission ring entries; the completion ring has four times as many.
const RING_ENTRIES: u32 = 1024;
/// After shutdown, how long to wait for the last completions before giving up on them
/// (they are then reported in the stats line's `kernel_held`).
const FINAL_WAIT: Duration = Duration::from_secs(1);

/// The loop's state. What it does is split by responsibility: the turn and the drain
/// (`turn.rs`), what each completion means, the offload pool's returns included
/// (`complete.rs`), bringing a connection's requests in line with its session and
/// handing over its next frame (`pump.rs`), queuing requests (`submit.rs`); `ring.rs`
/// opens the ring, `in_flight.rs` is a connection's part.
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
    // Every connection has drained, so no job is out but one whose connection failed
    // (its reply unwanted): `finish` works that off and joins.
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
