//! # fork — one process per client
//!
//! The classic Unix server: the parent accepts, `fork`s, and the child serves that one
//! client with the shared blocking loop and exits. Each client gets a whole address
//! space of its own, so a crash (or a leak) in one connection cannot touch another.
//!
//! **Syscalls.** Per connection, in the parent: `poll` (listener, shutdown pipe,
//! SIGCHLD pipe, stats socket), `accept4`, `clone` (the `fork`), `close` of its copy of
//! the socket, and later a `wait4` to reap the child plus a `recvfrom` for its stats.
//! In the child: `close` of the listener, the three `setsockopt`s of the blocking loop,
//! one `sendto` (its stats) and `exit_group`. Per message: one `read` and one `write`
//! in the child, as in `iterative` — plus the context switch into that process.
//!
//! **Where it waits.** Each child in `read` on its one client; the parent in `poll`,
//! woken by new connections, by SIGCHLD (through a self-pipe), by children's stats and
//! by a request on stdin (the harness's `snapshot`, answered in this loop: a forking
//! parent may start no thread to read it; see `Children::wait`).
//!
//! **What a connection costs.** A process: page tables and a copy-on-write address
//! space (the first writes to the heap and stack copy pages), a kernel task struct, a
//! PID, and a scheduler entry. The `fork` itself costs more than spawning a thread,
//! and more the larger the parent's address space.
//!
//! **How it fails under load.** Like `threads`, but heavier: thousands of clients mean
//! thousands of processes, bounded by `--max-conns` (live children) and `ulimit -u`.
//! Past `--max-conns`, or when `fork` fails (EAGAIN), framed clients get the
//! `server busy` notice and the parent keeps serving. Children are reaped as soon as
//! SIGCHLD arrives, so no zombie outlives its client for long.
//!
//! **Stats.** A child's counters die with it, so before exiting it sends its snapshot
//! as one JSON datagram to the parent, which adds it to the server's totals. (Forking,
//! reaping, the stats datagrams and the shutdown of children are
//! [`echolab_server::Children`], shared with `prefork`.)
//!
//! **Shutdown.** The parent stops accepting, closes the listening socket (a client
//! connecting during the drain is refused, not left in the backlog), and forwards
//! SIGTERM to every live child, again every 100 ms until it exits (a child blocked on an
//! idle client has no timer; its `read` returns `EINTR` on the signal, and a signal
//! that landed just before the `read` is covered by the next one). Each sends the
//! replies it owes and exits. The parent reaps them all (SIGKILL after
//! [`CHILD_GRACE`]), so no orphan or zombie remains when `serve` returns. At rest a
//! child sleeps until its client speaks or its idle deadline: no wake-ups.
//!
//! **Threads.** `fork` copies only the calling thread, so the parent must be
//! single-threaded: `serve` checks `/proc/self/task` and refuses to start otherwise,
//! and it starts no thread of its own (stats are read in the accept loop, not by a
//! helper thread). A known limit: a child inherits the signal handlers, so a SIGTERM
//! sent to one child alone also wakes the parent's shutdown pipe.

#![forbid(unsafe_code)]

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use echolab_server::{
    accept_one, refuse_busy, serve_blocking, Accepted, ChildProcess, Children, ConnectionSlot,
    Forked, Listen, ServerContext, SocketMode, Woken, ACCEPT_BACKOFF,
};

/// How long shutdown waits for children to finish before killing them.
pub const CHILD_GRACE: Duration = Duration::from_secs(4);

/// Serves each client in its own process until shutdown, then reaps every child.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Before binding: refuses a multi-threaded process.
    let children = Children::new()?;
    let listener = listen.bind()?;
    listener.set_nonblocking(true)?;
    let mut parent = Parent {
        ctx,
        listener: Some(listener),
        children,
    };
    let result = parent.accept_loop();
    parent.listener = None;
    parent.children.terminate();
    parent.children.reap_all(&ctx.stats, CHILD_GRACE);
    result
}

struct Parent<'a> {
    ctx: &'a ServerContext,
    /// `None` once shutdown begins: closed before the drain, so that a client that
    /// connects then is refused at once instead of waiting in the backlog.
    listener: Option<TcpListener>,
    /// Live children, each holding its `--max-conns` slot until reaped.
    children: Children<ConnectionSlot>,
}

impl Parent<'_> {
    fn accept_loop(&mut self) -> io::Result<()> {
        let mut backoff_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let listening = backoff_until.is_none_or(|t| now >= t);
            let timeout = match backoff_until {
                Some(t) if !listening => Some(t - now),
                _ => None,
            };
            if listening {
                backoff_until = None;
            }
            let listener = self.listener.as_ref().filter(|_| listening);
            let woken =
                self.children
                    .wait(self.ctx, listener.map(AsFd::as_fd), timeout, |_, _, _| {})?;
            match woken {
                Woken::Shutdown => return Ok(()),
                Woken::Ready => {
                    if self.accept_one() {
                        backoff_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    }
                }
                Woken::Children => {}
            }
        }
    }

    /// Accepts and forks for one connection; true when `accept` failed for lack of
    /// resources and the loop should back off.
    fn accept_one(&mut self) -> bool {
        let Some(listener) = self.listener.as_ref() else {
            return false;
        };
        let (stream, slot) = match accept_one(listener, self.ctx, SocketMode::Blocking) {
            Accepted::Connection(stream, slot) => (stream, slot),
            Accepted::Refused | Accepted::Retry | Accepted::Empty => return false,
            Accepted::BackOff => return true,
        };
        match self.children.fork(self.ctx, slot) {
            Ok(Forked::Parent(_)) => {
                // The child has its own copy of the socket; ours is closed here.
                drop(stream);
            }
            Ok(Forked::Child(child)) => run_child(child, stream, listener.as_raw_fd()),
            Err((_, slot)) => {
                // EAGAIN (process limit) or ENOMEM: turn the client away, keep serving.
                drop(slot);
                refuse_busy(stream, self.ctx);
            }
        }
        false
    }
}

/// The child's whole life: serve the one client, report, `_exit`.
fn run_child(child: ChildProcess<'_>, stream: TcpStream, listener: RawFd) -> ! {
    // The child never accepts; the listener object is never dropped here (we `_exit`),
    // so closing its descriptor directly cannot double-close.
    let _ = nix::unistd::close(listener);
    serve_blocking(stream, child.ctx());
    child.exit()
}
