//! # pool — a fixed set of worker threads
//!
//! The acceptor puts each connection on a bounded queue; `--workers` threads, started
//! once, take connections off it and each runs the shared blocking loop on one
//! connection until that client leaves, then takes the next. The thread count no longer
//! follows the client count: that is the whole point, and the whole weakness.
//!
//! **Syscalls.** Per connection: `poll` + `accept4` in the acceptor and a `futex` wake
//! when a worker is parked on the queue — no `clone3`, no stack `mmap`: the threads
//! already exist. Per message: one `read` and one `write`, as in `iterative`, plus the
//! context switch into the worker that owns the socket.
//!
//! **Where it waits.** Each busy worker in `read` on its one client; idle workers in a
//! `futex` on the queue; the acceptor in `poll`. A queued client waits in the queue:
//! accepted and connected, but not read from.
//!
//! **What a connection costs.** A queue slot (a socket and a `--max-conns` slot) while
//! it waits; while served, a share of a worker that already exists. Memory is fixed by
//! `--workers`, not by the number of clients.
//!
//! **How it fails under load.** Like `iterative`, times `--workers`: with more long-lived
//! clients than workers, the extra clients wait in the queue until a worker frees up —
//! head-of-line blocking, bounded by `--idle-timeout`. `--max-conns` bounds busy plus
//! queued connections (the queue holds at most `min(max_conns, 4096)`); past it, framed
//! clients get the `server busy` notice instead of an ever-growing queue.
//!
//! **Shutdown.** The acceptor stops, the listening socket closes (a client connecting
//! during the drain is refused, not left in the backlog), and the queue's sender drops.
//! Workers blocked on their clients are woken by the [`echolab_server::Interrupter`]
//! (their `read` returns `EINTR`) and send what they owe; then they keep taking queued connections until the queue is empty, and each of
//! those is served with shutdown already requested (what the client sent is echoed,
//! then it is closed). Every worker is joined before `serve` returns.

#![forbid(unsafe_code)]

use std::io;
use std::net::TcpStream;
use std::thread::{self, JoinHandle};

use crossbeam_channel::{bounded, Receiver, TrySendError};
use echolab_server::{
    refuse_busy, serve_blocking, Acceptor, ConnectionSlot, Interrupter, Listen, ServerContext,
};

/// Each worker needs little stack: the read buffer lives on the heap.
const WORKER_STACK: usize = 256 * 1024;

/// The queue never holds more than this many waiting connections, whatever
/// `--max-conns` says (each one is an open socket nobody reads).
pub const MAX_QUEUE: usize = 4096;

/// Serves clients on `ctx.config.worker_count()` worker threads until shutdown, then
/// drains the queue and joins the workers.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Started before the bind announces the server: every descriptor it opens exists
    // by the time a client (or the harness counting sockets) sees `listening on`.
    // Wakes the workers blocked on idle clients when shutdown comes.
    let interrupter = Interrupter::start(&ctx.shutdown, &ctx.blocked)?;
    let listener = listen.bind()?;
    let acceptor = Acceptor::new(&listener, ctx)?;
    let capacity = ctx.config.max_conns.clamp(1, MAX_QUEUE);
    let (sender, receiver) = bounded::<(TcpStream, ConnectionSlot)>(capacity);
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for index in 0..ctx.config.worker_count() {
        let receiver = receiver.clone();
        let worker_ctx = ctx.clone();
        let spawned = thread::Builder::new()
            .name(format!("echolab-worker-{index}"))
            .stack_size(WORKER_STACK)
            .spawn(move || work(&receiver, &worker_ctx));
        match spawned {
            Ok(handle) => workers.push(handle),
            // Fewer workers than asked for still serve; none at all cannot.
            Err(e) if workers.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    drop(receiver);
    while let Some((stream, slot)) = acceptor.next() {
        match sender.try_send((stream, slot)) {
            Ok(()) => {}
            Err(
                TrySendError::Full((stream, slot)) | TrySendError::Disconnected((stream, slot)),
            ) => {
                drop(slot);
                refuse_busy(stream, ctx);
            }
        }
    }
    // Closing the queue: workers finish what they serve, drain it, and stop. The
    // listening socket closes first, so a client that connects now is refused at once
    // instead of waiting in the backlog to be reset at exit.
    drop(listener);
    drop(sender);
    for worker in workers {
        let _ = worker.join();
    }
    drop(interrupter);
    Ok(())
}

/// One worker: serves queued connections one at a time until the queue is closed and
/// empty.
fn work(receiver: &Receiver<(TcpStream, ConnectionSlot)>, ctx: &ServerContext) {
    for (stream, slot) in receiver.iter() {
        serve_blocking(stream, ctx);
        drop(slot);
    }
}
