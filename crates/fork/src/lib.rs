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
//! woken by new connections, by SIGCHLD (through a self-pipe) and by children's stats.
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
//! as one JSON datagram to the parent, which adds it to the server's totals.
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

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab_server::{
    accept_one, refuse_busy, serve_blocking, Accepted, ConnectionSlot, Listen, ServerContext,
    ServerStats, SocketMode, StatsSnapshot, ACCEPT_BACKOFF,
};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// How long shutdown waits for children to finish before killing them.
pub const CHILD_GRACE: Duration = Duration::from_secs(4);

/// A child gives up sending its stats after this (the parent may be gone).
const STATS_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves each client in its own process until shutdown, then reaps every child.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    ensure_single_threaded()?;
    let listener = listen.bind()?;
    listener.set_nonblocking(true)?;
    let (stats_rx, stats_tx) = UnixDatagram::pair()?;
    stats_rx.set_nonblocking(true)?;
    stats_tx.set_write_timeout(Some(STATS_SEND_TIMEOUT))?;
    let (sigchld_rx, sigchld_tx) = UnixStream::pair()?;
    sigchld_rx.set_nonblocking(true)?;
    sigchld_tx.set_nonblocking(true)?;
    let sigchld = signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, sigchld_tx)?;
    let mut parent = Parent {
        ctx,
        listener: Some(listener),
        stats_rx: &stats_rx,
        stats_tx: &stats_tx,
        sigchld_rx: &sigchld_rx,
        children: HashMap::new(),
    };
    let result = parent.accept_loop();
    parent.listener = None;
    parent.stop_children();
    signal_hook::low_level::unregister(sigchld);
    result
}

struct Parent<'a> {
    ctx: &'a ServerContext,
    /// `None` once shutdown begins: closed before the drain, so that a client that
    /// connects then is refused at once instead of waiting in the backlog.
    listener: Option<TcpListener>,
    stats_rx: &'a UnixDatagram,
    stats_tx: &'a UnixDatagram,
    sigchld_rx: &'a UnixStream,
    /// Live children, each holding its `--max-conns` slot until reaped.
    children: HashMap<Pid, ConnectionSlot>,
}

impl Parent<'_> {
    fn accept_loop(&mut self) -> io::Result<()> {
        let mut backoff_until: Option<Instant> = None;
        loop {
            self.reap();
            self.drain_stats();
            if self.ctx.shutdown.is_requested() {
                return Ok(());
            }
            let now = Instant::now();
            let listening = backoff_until.is_none_or(|t| now >= t);
            let timeout = match backoff_until {
                Some(t) if !listening => poll_timeout(t - now),
                _ => PollTimeout::NONE,
            };
            if listening {
                backoff_until = None;
            }
            let mut fds = vec![
                PollFd::new(self.ctx.shutdown.waker(), PollFlags::POLLIN),
                PollFd::new(self.sigchld_rx.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.stats_rx.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(listener) = self.listener.as_ref().filter(|_| listening) {
                fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(io::Error::from_raw_os_error(errno as i32)),
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            if ready(&fds[0]) {
                return Ok(());
            }
            let connection_waiting = listening && fds.get(3).is_some_and(ready);
            drop(fds);
            drain_wakeups(self.sigchld_rx);
            if connection_waiting && self.accept_one() {
                backoff_until = Some(Instant::now() + ACCEPT_BACKOFF);
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
        // SAFETY: `serve` checked that this process is single-threaded and it starts no
        // threads, so no lock or allocator state can be held by a thread that does not
        // exist in the child: the child may run ordinary Rust code. The child never
        // returns into the accept loop; it leaves through `_exit`.
        match unsafe { fork() } {
            Ok(ForkResult::Parent { child }) => {
                self.children.insert(child, slot);
                // The child has its own copy of the socket; ours is closed here.
                drop(stream);
            }
            Ok(ForkResult::Child) => {
                run_child(stream, listener.as_raw_fd(), self.stats_tx, self.ctx)
            }
            Err(_) => {
                // EAGAIN (process limit) or ENOMEM: turn the client away, keep serving.
                drop(slot);
                refuse_busy(stream, self.ctx);
            }
        }
        false
    }

    /// Reaps every child that has exited, without blocking; frees their slots.
    fn reap(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.children.remove(&pid);
                    }
                }
                Err(Errno::EINTR) => {}
                // ECHILD: no children left.
                Err(_) => return,
            }
        }
    }

    /// Adds every stats snapshot the children have sent to the server's totals.
    fn drain_stats(&self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stats_rx.recv(&mut buf) {
                Ok(n) => {
                    if let Ok(snapshot) = serde_json::from_slice::<StatsSnapshot>(&buf[..n]) {
                        self.ctx.stats.absorb(&snapshot);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Shutdown: forwards SIGTERM to the children, waits up to [`CHILD_GRACE`] for them
    /// to finish, kills the rest, and reaps every one.
    fn stop_children(&mut self) {
        for pid in self.children.keys() {
            let _ = kill(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + CHILD_GRACE;
        loop {
            self.reap();
            self.drain_stats();
            let now = Instant::now();
            if self.children.is_empty() || now >= deadline {
                break;
            }
            // Again each turn: a child blocked on an idle client has no timer to wake
            // it, and a signal that landed just before it entered `read` was lost.
            for pid in self.children.keys() {
                let _ = kill(*pid, Signal::SIGTERM);
            }
            let mut fds = [
                PollFd::new(self.sigchld_rx.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.stats_rx.as_fd(), PollFlags::POLLIN),
            ];
            // A short cap: SIGCHLD may have been consumed before the last reap.
            let _ = poll(
                &mut fds,
                poll_timeout((deadline - now).min(Duration::from_millis(100))),
            );
            drain_wakeups(self.sigchld_rx);
        }
        for pid in self.children.keys() {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        for pid in std::mem::take(&mut self.children).into_keys() {
            while waitpid(pid, None) == Err(Errno::EINTR) {}
        }
        self.drain_stats();
    }
}

/// The child's whole life: serve the one client, report, `_exit`.
fn run_child(
    stream: TcpStream,
    listener: RawFd,
    stats_tx: &UnixDatagram,
    ctx: &ServerContext,
) -> ! {
    // The child never accepts; the listener object is never dropped here (we `_exit`),
    // so closing its descriptor directly cannot double-close.
    let _ = nix::unistd::close(listener);
    let child_ctx = ServerContext {
        config: Arc::clone(&ctx.config),
        shutdown: ctx.shutdown.clone(),
        // Fresh counters: the parent's (copied by fork) are the parent's to report.
        stats: Arc::new(ServerStats::default()),
        blocked: Arc::clone(&ctx.blocked),
    };
    serve_blocking(stream, &child_ctx);
    if let Ok(line) = serde_json::to_vec(&child_ctx.stats.snapshot()) {
        let _ = stats_tx.send(&line);
    }
    // `_exit`, not `exit`: no atexit handlers or stdio flushes that belong to the parent.
    // (nix 0.29 has no `_exit` wrapper, so this is the libc one.)
    // SAFETY: `_exit` takes no pointers and never returns; it only ends this process.
    unsafe { libc::_exit(0) }
}

/// Empties the SIGCHLD self-pipe (its bytes only mean "look again").
fn drain_wakeups(mut pipe: &UnixStream) {
    let mut buf = [0u8; 256];
    while matches!(pipe.read(&mut buf), Ok(n) if n > 0) {}
}

fn poll_timeout(d: Duration) -> PollTimeout {
    PollTimeout::try_from(d.as_millis().clamp(1, i32::MAX as u128) as i32)
        .unwrap_or(PollTimeout::MAX)
}

/// `fork` in a multi-threaded process copies only one thread; refuse to start there.
fn ensure_single_threaded() -> io::Result<()> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Ok(());
    };
    let threads = tasks.count();
    if threads > 1 {
        return Err(io::Error::other(format!(
            "the fork model needs a single-threaded process, this one has {threads} threads"
        )));
    }
    Ok(())
}
