//! # prefork — N processes forked up front, each blocking in `accept`
//!
//! The parent binds the listener, forks `--workers` children (default one per CPU)
//! before it serves anyone, and from then on only supervises. Every child blocks in
//! `accept` on the one listener they all inherited, serves the client it gets to the
//! end with the shared blocking loop, and goes back to `accept` (UNP vol. 1, 30.6;
//! Apache's prefork MPM). The kernel hands each connection to one waiting child: the
//! fork that `fork` pays per client is paid once per worker, at start.
//!
//! **No thundering herd.** Every idle child sleeps on the same listener, but Linux
//! queues `accept` waiters as *exclusive*: a new connection wakes exactly one of them.
//! One `accept4` returns the connection while the others sleep on, none returning
//! early with `EAGAIN`. The herd comes back if the children wait in `poll`/`select` on
//! the shared listener instead, which wake every waiter — so they block in `accept`
//! itself (the trace and the context-switch counts: `docs/models/prefork.md`).
//!
//! **Syscalls.** Per connection, in the child that gets it: `accept4`,
//! `setsockopt(TCP_NODELAY)`, the blocking loop's two `setsockopt`s (read and write
//! timeouts) and the final `close` — no `clone`, no `wait4`, no stats datagram, and the
//! parent is not involved at all. Per message: one `read` and one `write`, as in
//! `iterative`. An idle worker makes no syscall at all: it sleeps in `accept`.
//!
//! **Where it waits.** Idle children in `accept` (with an hour's `SO_RCVTIMEO`, only so
//! that SIGTERM interrupts it instead of it being restarted); busy children in `read` on
//! their client, until it speaks or its deadline; the parent in `poll` on the shutdown
//! pipe, the SIGCHLD pipe, the stats socket and stdin (the harness's `snapshot` requests,
//! answered in this loop, see `Children::wait`). Nothing wakes on a timer at rest.
//!
//! **What a connection costs.** Nothing beyond the socket: a worker process (page
//! tables, its copy-on-write pages, a stack; measured in `docs/models/prefork.md`) exists
//! whether it serves or not, so memory is fixed by `--workers`, not by the clients.
//!
//! **How it fails under load.** With N clients served, the next one is not refused
//! and not told anything: its connection completes in the kernel and waits in the
//! listen backlog, unread, until a worker comes back to `accept` — head-of-line
//! blocking, as in `pool`, bounded by the clients' `--idle-timeout`. `--max-conns` is
//! checked against a count all workers share (a scoreboard in shared memory):
//! when it caps the workers (`--max-conns` ≤ `--workers`), the parent forks that many
//! plus one, and the extra worker turns the next client away with the busy notice
//! instead of leaving it in the backlog. A worker that dies unexpectedly (a crash,
//! SIGKILL) is replaced at once — at most one fork per worker per [`RESPAWN_BACKOFF`],
//! so a worker that keeps crashing cannot turn the parent into a fork loop; a fork that
//! fails (EAGAIN at the process limit) is retried after it too. The seat a dead worker
//! held is given back, but its counters die with it.
//!
//! **Stats.** Each child counts for itself and sends its snapshot to the parent as a
//! datagram when it exits, as in `fork`; `accepted_per_worker` shows how the kernel
//! spread the connections over the workers.
//!
//! **Shutdown.** The parent forwards SIGTERM to every child (again every 100 ms until it
//! exits: a signal that lands just before a blocking call begins is lost), then shuts
//! the shared listener down (`shutdown(2)` on a listening socket closes it for every
//! process that holds it: children still waiting in `accept` return, queued connections
//! are reset, and a client connecting during the drain is refused). Busy children send
//! what they owe and exit; the parent reaps them all, SIGKILL after [`CHILD_GRACE`].
//! Children ask for SIGTERM when the parent dies (`PR_SET_PDEATHSIG`), and the first
//! orphan to leave shuts the listener down for the rest, so none outlives a parent
//! killed outright for longer than its client's idle deadline. Forking, reaping, stats
//! and the shutdown of children are [`echolab_server::Children`], shared with `fork`;
//! the parent starts no threads. A SIGTERM sent to one child alone also wakes the
//! parent's shutdown pipe (the signal handlers are inherited), so it drains the whole
//! server, as in `fork`.

mod scoreboard;

use std::io;
use std::net::{Shutdown as SocketShutdown, TcpListener};
use std::time::{Duration, Instant};

use echolab_server::{
    accept_one, refuse_busy, serve_blocking, sleep_or_shutdown, Accepted, ChildProcess, Children,
    Forked, Listen, ServerContext, SocketMode, Woken, NO_DEADLINE_WAIT,
};
use socket2::SockRef;

use scoreboard::Scoreboard;

/// How long shutdown waits for busy workers to finish before killing them.
pub const CHILD_GRACE: Duration = Duration::from_secs(4);

/// A worker is replaced at once when it dies, but never sooner than this after the
/// previous one in its place was forked; a failed fork is retried after this too.
pub const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);

/// Forks the workers, keeps them at strength until shutdown, then stops and reaps them.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // First: refuses a multi-threaded process, which cannot fork safely.
    let children = Children::new()?;
    // Announced only once the workers exist: no client arrives before them.
    let listener = listen.bind_unannounced()?;
    // The workers block in `accept`. With a receive timeout set on the listener, a
    // signal interrupts it (EINTR) instead of restarting it, so SIGTERM reaches an idle
    // worker; the timeout itself is an hour, so at rest a worker never wakes.
    SockRef::from(&listener).set_read_timeout(Some(NO_DEADLINE_WAIT))?;
    let count = ctx.config.accepting_workers();
    let board = Scoreboard::new(count)?;
    let mut parent = Parent {
        ctx,
        listener: &listener,
        board: &board,
        children,
        workers: vec![Worker::Due(Instant::now()); count],
    };
    parent.fork_due(Instant::now());
    listen.announce(&listener)?;
    let result = parent.supervise();
    parent.children.terminate();
    // Closes the listening socket for every process holding it (the children's copies
    // included): waiting `accept`s return, queued connections are reset, and a connect
    // during the drain is refused.
    let _ = SockRef::from(&listener).shutdown(SocketShutdown::Read);
    parent.children.reap_all(&ctx.stats, CHILD_GRACE);
    ctx.stats.record_active_peak(board.peak());
    result
}

/// One worker's place.
#[derive(Debug, Clone, Copy)]
enum Worker {
    /// A child serves in it, forked at this time.
    Running(Instant),
    /// Empty: fork a child for it at this time.
    Due(Instant),
}

struct Parent<'a> {
    ctx: &'a ServerContext,
    listener: &'a TcpListener,
    board: &'a Scoreboard,
    /// Live children, each recorded with its worker index.
    children: Children<usize>,
    workers: Vec<Worker>,
}

impl Parent<'_> {
    /// Keeps every worker place filled until shutdown is requested.
    fn supervise(&mut self) -> io::Result<()> {
        loop {
            let next_due = self
                .workers
                .iter()
                .filter_map(|w| match w {
                    Worker::Due(at) => Some(*at),
                    Worker::Running(_) => None,
                })
                .min();
            let timeout = next_due.map(|at| at.saturating_duration_since(Instant::now()));
            let (workers, board) = (&mut self.workers, self.board);
            // Before shutdown every exit is unexpected (a crash, a kill): replace it.
            let woken = self.children.wait(self.ctx, None, timeout, |_, index, _| {
                board.release_dead(index);
                if let Some(Worker::Running(forked)) = workers.get(index).copied() {
                    // At once, unless it died young (a crash loop).
                    workers[index] = Worker::Due(forked + RESPAWN_BACKOFF);
                }
            })?;
            if woken == Woken::Shutdown {
                return Ok(());
            }
            self.fork_due(Instant::now());
        }
    }

    /// Forks a child for every worker place that is due.
    fn fork_due(&mut self, now: Instant) {
        for index in 0..self.workers.len() {
            if !matches!(self.workers[index], Worker::Due(at) if at <= now) {
                continue;
            }
            match self.children.fork(self.ctx, index) {
                Ok(Forked::Parent(_)) => self.workers[index] = Worker::Running(now),
                Ok(Forked::Child(child)) => work(child, index, self.listener, self.board),
                // EAGAIN at the process limit, or ENOMEM: fewer workers serve meanwhile.
                Err(_) => self.workers[index] = Worker::Due(now + RESPAWN_BACKOFF),
            }
        }
    }
}

/// A worker's whole life: `accept`, serve that client to the end, `accept` again, until
/// shutdown; then report and `_exit`.
fn work(child: ChildProcess<'_>, index: usize, listener: &TcpListener, board: &Scoreboard) -> ! {
    let mut child = child.exit_with_parent();
    child.set_worker(index);
    let ctx = child.ctx();
    while !ctx.shutdown.is_requested() {
        match accept_one(listener, ctx, SocketMode::Blocking) {
            Accepted::Connection(stream, _slot) => {
                match board.try_seat(index, ctx.config.max_conns) {
                    Some(_seat) => serve_blocking(stream, ctx),
                    None => refuse_busy(stream, ctx),
                }
            }
            // Retry: a signal interrupted `accept`; Empty: the listener was shut down
            // (or an hour passed). Either way, look at the flag again.
            Accepted::Refused | Accepted::Retry | Accepted::Empty => {}
            Accepted::BackOff => {
                if sleep_or_shutdown(ctx) {
                    break;
                }
            }
        }
    }
    // Shutdown. The parent shuts the shared listener down, once it has signalled every
    // worker. If it is gone (`PR_SET_PDEATHSIG`), the first worker out does, to wake
    // its siblings — including one whose signal landed just before its `accept` began,
    // which would otherwise sleep on — and so that a client connecting now is refused
    // rather than queued for nobody.
    if child.orphaned() {
        let _ = SockRef::from(listener).shutdown(SocketShutdown::Read);
    }
    child.exit()
}
