//! The children of a process model (`fork`: a process per client; `prefork`: a fixed
//! set forked up front): forking them, hearing them exit, taking in their counters, and
//! taking every one down at shutdown — one mechanism, so both models reap, signal and
//! account the same way.
//!
//! - **Forking** needs a single-threaded parent: `fork` copies only the calling thread,
//!   and a lock or allocator state held by a thread that does not exist in the child
//!   would never be released there. [`Children::new`] refuses a multi-threaded process,
//!   and its owner must start no thread while it forks.
//! - **Exits** arrive as SIGCHLD through a self-pipe; **counters** die with a child, so
//!   before it exits it sends its snapshot as one JSON datagram
//!   ([`ChildProcess::exit`]). The owner's supervising loop is [`Children::wait`]: one
//!   `poll` over shutdown, the self-pipe, the stats socket and the owner's own
//!   descriptor, after which every exited child is reaped and every snapshot added to
//!   the server's totals.
//! - **Shutdown**: [`Children::terminate`] forwards SIGTERM, [`Children::reap_all`]
//!   forwards it again every 100 ms (a child blocked on an idle client has no timer,
//!   and a signal that lands just before its `read` is lost) until a grace period ends,
//!   kills the rest and reaps every one, so no orphan or zombie remains.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};
use signal_hook::SigId;

use crate::{ServerContext, ServerStats, StatsSnapshot};

/// A child gives up sending its stats after this (the parent may be gone).
const STATS_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// The live children of a process model, each with the owner's record `T` for it
/// (`fork`: the client's `--max-conns` slot; `prefork`: the worker's index).
#[derive(Debug)]
pub struct Children<T> {
    live: HashMap<Pid, T>,
    /// This process, recorded before any fork: a child checks it is still its parent.
    parent: Pid,
    stats_rx: UnixDatagram,
    stats_tx: UnixDatagram,
    sigchld_rx: UnixStream,
    sigchld: SigId,
    /// A request on stdin was left for this turn because the owner's descriptor was
    /// ready too (see [`Children::wait`]).
    request_deferred: bool,
}

/// What ended a [`Children::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// Shutdown was requested: the owner stops supervising.
    Shutdown,
    /// The owner's own descriptor (a listener) is readable.
    Ready,
    /// A child exited or sent its stats (both taken in), a signal interrupted the
    /// wait, or the timeout passed.
    Children,
}

/// Which side of a [`Children::fork`] this is.
#[derive(Debug)]
pub enum Forked<'a> {
    /// The parent, with the new child's pid (already recorded).
    Parent(Pid),
    /// The new child: it does its work with [`ChildProcess::ctx`] and leaves through
    /// [`ChildProcess::exit`]; it must never return into the parent's loop.
    Child(ChildProcess<'a>),
}

/// The child side of a fork: a context with counters of its own and the way home for
/// them. Dropping it (the child's work returned without [`ChildProcess::exit`], or
/// panicked) exits the process too, so a child can never run on in the parent's code.
#[derive(Debug)]
pub struct ChildProcess<'a> {
    ctx: ServerContext,
    stats_tx: &'a UnixDatagram,
    parent: Pid,
}

impl<T> Children<T> {
    /// No children yet: the stats socket and the SIGCHLD self-pipe, in a process that
    /// must be (and is checked to be) single-threaded.
    pub fn new() -> io::Result<Children<T>> {
        ensure_single_threaded()?;
        let (stats_rx, stats_tx) = UnixDatagram::pair()?;
        stats_rx.set_nonblocking(true)?;
        stats_tx.set_write_timeout(Some(STATS_SEND_TIMEOUT))?;
        let (sigchld_rx, sigchld_tx) = UnixStream::pair()?;
        sigchld_rx.set_nonblocking(true)?;
        sigchld_tx.set_nonblocking(true)?;
        let sigchld =
            signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, sigchld_tx)?;
        Ok(Children {
            live: HashMap::new(),
            parent: getpid(),
            stats_rx,
            stats_tx,
            sigchld_rx,
            sigchld,
            request_deferred: false,
        })
    }

    /// Forks a child recorded with `record`. In the child, the returned
    /// [`ChildProcess`] carries `ctx` with fresh counters. On failure (EAGAIN at the
    /// process limit, ENOMEM) `record` comes back with the error.
    pub fn fork(&mut self, ctx: &ServerContext, record: T) -> Result<Forked<'_>, (io::Error, T)> {
        // SAFETY: `Children::new` refused a multi-threaded process and its owner starts
        // no threads (the documented contract of this type), so no lock or allocator
        // state can be held by a thread that does not exist in the child: the child
        // may run ordinary Rust code. The child leaves through `ChildProcess`, which
        // `_exit`s whether it is used to the end or dropped, so it never returns into
        // the parent's loop.
        match unsafe { fork() } {
            Ok(ForkResult::Parent { child }) => {
                self.live.insert(child, record);
                Ok(Forked::Parent(child))
            }
            Ok(ForkResult::Child) => {
                // The child's copy of the parent's record (a slot of the parent's
                // counters, say) is not the child's to keep.
                drop(record);
                Ok(Forked::Child(ChildProcess {
                    ctx: ctx.with_fresh_stats(),
                    stats_tx: &self.stats_tx,
                    parent: self.parent,
                }))
            }
            Err(errno) => Err((io::Error::from_raw_os_error(errno as i32), record)),
        }
    }

    /// Reaps every child that has exited, without blocking, handing each one's pid,
    /// record and exit status to `exited`.
    fn reap(&mut self, mut exited: impl FnMut(Pid, T, WaitStatus)) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        if let Some(record) = self.live.remove(&pid) {
                            exited(pid, record, status);
                        }
                    }
                }
                Err(Errno::EINTR) => {}
                // ECHILD: no children left.
                Err(_) => return,
            }
        }
    }

    /// Adds every stats snapshot the children have sent to `stats`.
    fn drain_stats(&self, stats: &ServerStats) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stats_rx.recv(&mut buf) {
                Ok(n) => {
                    if let Ok(snapshot) = serde_json::from_slice::<StatsSnapshot>(&buf[..n]) {
                        stats.absorb(&snapshot);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// The supervisor's one wait: for shutdown, a child's exit (SIGCHLD), a child's
    /// stats, a request on stdin (a `snapshot`: this parent has no thread to read them,
    /// see [`crate::control`]), `owner`'s descriptor (a listener) if given, or `timeout`
    /// (`None`: no timeout) — one `poll(2)`. Then reaps every child that has exited
    /// (handing each to `exited`), takes in the stats sent, whatever woke it, so that
    /// nothing the children did is missed however the wait ended, and only then answers
    /// the requests: a snapshot never counts a child both live and reaped.
    ///
    /// A request and a ready `owner` in the same turn take turns: a snapshot of a big
    /// tree reads every child's `/proc` (tens to hundreds of milliseconds for a thousand
    /// children), and a client waiting in the backlog meanwhile would wait for it — for
    /// two of them when the next request is already there, longer than a short
    /// measurement window, which then sees no reply at all. So the request is left for
    /// the next turn (stdin stays readable) and the owner goes first; a request left
    /// once is answered in the next turn whatever else is ready, so a steady stream of
    /// clients never starves the snapshots either.
    pub fn wait(
        &mut self,
        ctx: &ServerContext,
        owner: Option<BorrowedFd<'_>>,
        timeout: Option<Duration>,
        exited: impl FnMut(Pid, T, WaitStatus),
    ) -> io::Result<Woken> {
        let mut woken = Woken::Children;
        let mut request_waiting = false;
        if !ctx.shutdown.is_requested() {
            let requests = crate::control::waker();
            let mut fds = vec![
                PollFd::new(ctx.shutdown.waker(), PollFlags::POLLIN),
                PollFd::new(self.sigchld_rx.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.stats_rx.as_fd(), PollFlags::POLLIN),
            ];
            let requests_at = fds.len();
            if let Some(stdin) = &requests {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            let owner_at = fds.len();
            if let Some(fd) = owner {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout.map_or(PollTimeout::NONE, poll_timeout)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(io::Error::from_raw_os_error(errno as i32)),
            }
            let ready = |at: usize| {
                fds.get(at)
                    .and_then(PollFd::revents)
                    .is_some_and(|r| !r.is_empty())
            };
            let request_ready = requests.is_some() && ready(requests_at);
            let owner_ready = owner.is_some() && ready(owner_at);
            if owner_ready {
                woken = Woken::Ready;
            }
            request_waiting = request_ready && (!owner_ready || self.request_deferred);
            self.request_deferred = request_ready && !request_waiting;
        }
        self.drain_wakeups();
        self.reap(exited);
        self.drain_stats(&ctx.stats);
        if request_waiting {
            crate::control::on_readable();
        }
        // The flag is set before the shutdown descriptor becomes readable.
        if ctx.shutdown.is_requested() {
            return Ok(Woken::Shutdown);
        }
        Ok(woken)
    }

    /// Empties the SIGCHLD self-pipe (its bytes only mean "look again").
    fn drain_wakeups(&self) {
        let mut buf = [0u8; 256];
        while matches!((&self.sigchld_rx).read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Forwards SIGTERM to every live child: each sends what it owes and exits.
    pub fn terminate(&self) {
        for pid in self.live.keys() {
            let _ = kill(*pid, Signal::SIGTERM);
        }
    }

    /// Waits up to `grace` for every child to exit (reaping them and taking in their
    /// stats as they go), forwarding SIGTERM again every turn, then kills the rest and
    /// reaps them too.
    pub fn reap_all(&mut self, stats: &ServerStats, grace: Duration) {
        let deadline = Instant::now() + grace;
        loop {
            self.reap(|_, _, _| {});
            self.drain_stats(stats);
            let now = Instant::now();
            if self.live.is_empty() || now >= deadline {
                break;
            }
            // Again each turn: a child blocked on an idle client has no timer to wake
            // it, and a signal that landed just before it entered `read` was lost.
            self.terminate();
            let mut fds = [
                PollFd::new(self.sigchld_rx.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.stats_rx.as_fd(), PollFlags::POLLIN),
            ];
            // A short cap: SIGCHLD may have been consumed before the last reap.
            let _ = poll(
                &mut fds,
                poll_timeout((deadline - now).min(Duration::from_millis(100))),
            );
            self.drain_wakeups();
        }
        self.kill_and_reap();
        self.drain_stats(stats);
    }

    fn kill_and_reap(&mut self) {
        for pid in self.live.keys() {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        for pid in std::mem::take(&mut self.live).into_keys() {
            while waitpid(pid, None) == Err(Errno::EINTR) {}
        }
    }
}

impl<T> Drop for Children<T> {
    /// Runs only in the parent (a child leaves through `_exit`): no child outlives its
    /// owner, even one that returned early.
    fn drop(&mut self) {
        self.kill_and_reap();
        signal_hook::low_level::unregister(self.sigchld);
    }
}

impl ChildProcess<'_> {
    /// The child's context: the parent's config and shutdown, counters of its own.
    pub fn ctx(&self) -> &ServerContext {
        &self.ctx
    }

    /// The child's context for worker `index`, so its accepts are counted per worker.
    pub fn set_worker(&mut self, index: usize) {
        self.ctx.worker = Some(index);
    }

    /// Asks the kernel for SIGTERM when the parent dies (`PR_SET_PDEATHSIG`), so the
    /// child drains and exits instead of serving on as an orphan; if the parent died
    /// before the request, the child exits now.
    pub fn exit_with_parent(self) -> Self {
        let asked = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).is_ok();
        if !asked || self.orphaned() {
            self.exit()
        }
        self
    }

    /// Whether the parent that forked this child has died (the child was reparented).
    pub fn orphaned(&self) -> bool {
        getppid() != self.parent
    }

    /// Sends the child's counters to the parent and ends the process.
    pub fn exit(mut self) -> ! {
        self.finish()
    }

    fn finish(&mut self) -> ! {
        if let Ok(line) = serde_json::to_vec(&self.ctx.stats.snapshot()) {
            let _ = self.stats_tx.send(&line);
        }
        let code = if std::thread::panicking() { 101 } else { 0 };
        // `_exit`, not `exit`: no atexit handlers or stdio flushes that belong to the
        // parent.
        // SAFETY: `_exit` takes no pointers and never returns; it only ends this process.
        unsafe { libc::_exit(code) }
    }
}

impl Drop for ChildProcess<'_> {
    fn drop(&mut self) {
        self.finish()
    }
}

/// A poll timeout of `d`, at least 1 ms (a zero timeout would spin), at most `i32::MAX`
/// ms.
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
            "a process model forks, so it needs a single-threaded process; this one has \
             {threads} threads"
        )));
    }
    Ok(())
}
