//! # prethreaded — N threads started up front, each blocking in `accept`
//!
//! `--workers` threads (default one per CPU) are started before the port is announced.
//! Every one blocks in `accept` on the one shared listener, serves the client it gets to
//! the end with the shared blocking loop, and goes back to `accept` (Stevens, *UNIX
//! Network Programming* vol. 1, 30.11, "TCP prethreaded server, per-thread accept"). It
//! is `prefork` with threads instead of processes, and `pool` without the acceptor
//! thread and its queue: the kernel's listen backlog is the only queue.
//!
//! **No thundering herd.** As for `prefork`: Linux queues blocking `accept` waiters as
//! *exclusive*, so a new connection wakes exactly one idle worker; the others sleep on.
//! Stevens serialises the threads' `accept` behind a mutex; on Linux it is not needed,
//! and the workers wait in `accept` itself, not in `poll` on the listener (which would
//! wake them all).
//!
//! **Syscalls.** Per connection, in the worker that gets it: `accept4`,
//! `setsockopt(TCP_NODELAY)`, the blocking loop's two `setsockopt`s (read and write
//! timeouts) and the final `close` — no `poll` before the `accept` and no `futex` to hand
//! the socket over (as `pool` pays), no `clone3` and no stack `mmap` (as `threads` pays).
//! Per message: one `read` and one `write`, as in `iterative`, plus the context switch
//! into the worker that owns the socket. An idle worker makes no syscall: it sleeps in
//! `accept`.
//!
//! **Where it waits.** Idle workers in `accept` (with an hour's `SO_RCVTIMEO` on the
//! listener, only so that a signal interrupts it instead of it being restarted); busy
//! ones in `read` on their client, until it speaks or its deadline; the main thread in
//! `join`. Nothing wakes on a timer at rest.
//!
//! **What a connection costs.** Nothing beyond the socket and, while served, the
//! blocking loop's read buffer: the threads (a 256 KiB stack reservation each) exist
//! whether they serve or not, so memory is fixed by `--workers`, not by the clients.
//!
//! **How it fails under load.** With N clients served, the next one is not refused and
//! not told anything: its connection completes in the kernel and waits in the listen
//! backlog, unread, until a worker comes back to `accept` — head-of-line blocking, as in
//! `prefork` and `pool`, bounded by the clients' `--idle-timeout`; past the backlog
//! (`--backlog`), a connection is not queued at all (Linux drops its handshake's packets
//! and the client retransmits). `--max-conns` is checked
//! against the count every thread shares; when it caps the workers (`--max-conns` ≤
//! `--workers`), that many start plus one, and the extra worker turns the next client
//! away with the busy notice instead of leaving it in the backlog — `prefork`'s rule,
//! `ServerConfig::accepting_workers`. If fewer threads start than asked for (`ulimit -u`),
//! those that did serve; if none does, `serve` fails.
//!
//! **Stats.** Each worker counts its accepts as its own (`accepted_per_worker`): how the
//! kernel spread the connections over the threads.
//!
//! **Shutdown.** Each worker is registered with the [`echolab_server::Interrupter`] for
//! its whole life, so its signal reaches it in `accept` as in `read`: either call
//! returns `EINTR` and the loop sees the flag. The first worker out shuts the shared
//! listener down (`shutdown(2)` on a listening socket: the workers still in `accept`
//! return at once, queued connections are reset, and a connect during the drain is
//! refused). Busy workers send what they owe and leave; every worker is joined before
//! `serve` returns. If every worker is busy when shutdown comes, the listener closes
//! when the first has drained its client (at once for a client that reads, up to the
//! shutdown linger for one that does not); a connect in between waits in the backlog and
//! is reset at exit, as in `iterative`.

#![forbid(unsafe_code)]

use std::io;
use std::net::{Shutdown as SocketShutdown, TcpListener};
use std::thread;

use echolab_server::{
    accept_one, serve_blocking, sleep_or_shutdown, Accepted, Interrupter, Listen, ServerContext,
    SocketMode, NO_DEADLINE_WAIT,
};
use socket2::SockRef;

/// Each worker needs little stack: the read buffer lives on the heap.
const WORKER_STACK: usize = 256 * 1024;

/// Starts the workers on the shared listener (`--workers`, or `--max-conns` + 1 when that
/// is fewer), announces the port once they exist, and returns when every worker has left
/// after shutdown.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Started before the port is announced: every descriptor it opens exists by the time
    // a client (or the harness counting sockets) sees `listening on`. It wakes the
    // workers at shutdown, in `accept` as in `read`; until then they sleep with no timer.
    let interrupter = Interrupter::start(&ctx.shutdown, &ctx.blocked)?;
    // Announced only once the workers exist.
    let listener = listen.bind_unannounced()?;
    // With a receive timeout set on the listener, a signal interrupts `accept` (EINTR)
    // instead of restarting it, so the interrupter reaches an idle worker; the timeout
    // itself is an hour, so at rest a worker never wakes.
    SockRef::from(&listener).set_read_timeout(Some(NO_DEADLINE_WAIT))?;
    let result = thread::scope(|scope| {
        let mut workers = Vec::new();
        let count = ctx.config.accepting_workers();
        for index in 0..count {
            let (listener, worker_ctx) = (&listener, ctx.for_worker(index));
            let spawned = thread::Builder::new()
                .name(format!("echolab-worker-{index}"))
                .stack_size(WORKER_STACK)
                .spawn_scoped(scope, move || work(listener, &worker_ctx));
            match spawned {
                Ok(handle) => workers.push(handle),
                // Fewer workers than asked for still serve; none at all cannot.
                Err(e) if workers.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        let announced = listen.announce(&listener);
        if announced.is_err() {
            // Nobody will come: the workers must not wait for a client forever.
            ctx.shutdown.request();
        }
        for worker in workers {
            let _ = worker.join();
        }
        announced
    });
    drop(listener);
    drop(interrupter);
    result
}

/// A worker's whole life: `accept`, serve that client to its end, `accept` again, until
/// shutdown; then shut the shared listener down for everyone.
fn work(listener: &TcpListener, ctx: &ServerContext) {
    // For the whole life, not only while serving (which registers again): the
    // interrupter's signal must reach the worker in `accept` too.
    let _registration = ctx.blocked.register();
    while !ctx.shutdown.is_requested() {
        match accept_one(listener, ctx, SocketMode::Blocking) {
            Accepted::Connection(stream, _slot) => serve_blocking(stream, ctx),
            // Refused: past `--max-conns`, told so; Retry: a signal interrupted `accept`,
            // or the client left first; Empty: the listener was shut down (or an hour
            // passed). Either way, look at the flag again.
            Accepted::Refused | Accepted::Retry | Accepted::Empty => {}
            Accepted::BackOff => {
                if sleep_or_shutdown(ctx) {
                    break;
                }
            }
        }
    }
    // The first worker out wakes every sibling still in `accept` (it returns EINVAL) and
    // makes a connect during the drain refused rather than queued for nobody; for the
    // others the listener is already down, and the error is ignored.
    let _ = SockRef::from(listener).shutdown(SocketShutdown::Read);
}
