//! The level-triggered readiness loop, whatever call it waits in. A level-triggered
//! call reports a descriptor for as long as it is ready, so the loop may do one step
//! of work per report and trust the rest to be reported again: fairness is free. What
//! differs between `select(2)`, `poll(2)`, epoll in level mode and no call at all
//! (a busy loop) is only how the wait is made and what keeping the interest set costs:
//! that is the [`Waiter`] a model crate implements. Everything else lives here once.
//!
//! **`--offload N`** lives here once too, for every waiter: the pool's workers wake the
//! loop through a [`WakeFd`] watched as [`Source::Offload`]; each turn the loop takes
//! the jobs that came back, writes their replies at once, and — wherever it settles a
//! connection — hands over that connection's next complete frame (one out at a time,
//! so its replies stay in order). A waiter only has to watch one more descriptor.

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab_proto::{Job, Session};

use crate::{
    refuse_busy, run_event_loop, AcceptStop, Conn, ConnectionSlot, Conns, EventLoop, Listen,
    Listening, Offload, OffloadPort, ReadOutcome, ServerContext, WakeFd, READ_BUFFER,
};

/// What a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The listening socket: a connection is waiting to be accepted.
    Listener,
    /// The shutdown descriptor: SIGTERM/SIGINT arrived.
    Waker,
    /// The `--offload` pool's [`WakeFd`]: offloaded jobs came back.
    Offload,
    /// The connection with this index.
    Conn(usize),
}

/// Which directions a source is watched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    /// Watch for "can read" (or accept, or a signal).
    pub readable: bool,
    /// Watch for "can write".
    pub writable: bool,
}

impl Interest {
    /// Reading only (the listener, the wakers).
    pub const READ: Interest = Interest {
        readable: true,
        writable: false,
    };

    /// What a session wants now: backpressure is simply "stop asking for readable", and
    /// writable is asked for only while output is pending (a socket with room in its
    /// send buffer is writable almost always; asking needlessly would wake every turn).
    pub fn of(session: &Session) -> Interest {
        Interest {
            readable: session.wants_read(),
            writable: session.wants_write(),
        }
    }
}

/// One readiness report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// What is ready.
    pub source: Source,
    /// It can be read (or has hung up or failed: the next read says which).
    pub readable: bool,
    /// It can be written.
    pub writable: bool,
}

/// How a level-triggered model waits: the one thing its crate implements.
pub trait Waiter {
    /// Whether `fd` can be watched at all (select(2) cannot watch a descriptor at or
    /// above `FD_SETSIZE`): a connection that cannot is refused with the busy notice.
    fn can_watch(&self, _fd: BorrowedFd<'_>) -> bool {
        true
    }
    /// Starts watching `source`; the descriptor stays open until [`Waiter::remove`].
    fn add(&mut self, source: Source, fd: BorrowedFd<'_>, interest: Interest) -> io::Result<()>;
    /// Changes what `source` is watched for.
    fn modify(&mut self, source: Source, fd: BorrowedFd<'_>, interest: Interest) -> io::Result<()>;
    /// Stops watching `source` (before its descriptor is closed).
    fn remove(&mut self, source: Source, fd: BorrowedFd<'_>);
    /// Waits up to `timeout` (`None`: until something is ready) and appends what is
    /// ready to `ready`. `idle` says the previous turn moved no byte and accepted no
    /// connection: a waiter that does not really wait uses it to back off.
    fn wait(
        &mut self,
        timeout: Option<Duration>,
        idle: bool,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()>;
}

/// Serves every client from one thread until shutdown, waiting with `waiter`, then lets
/// every session finish and returns.
/// With `--offload N` the loop hands each message's work to a pool of N threads.
pub fn serve_level<W: Waiter>(listen: &Listen, ctx: &ServerContext, waiter: W) -> io::Result<()> {
    let listening = Listening::new(listen.bind()?)?;
    let pool = ctx.start_offload()?;
    let result = serve_with(listening, ctx, waiter, pool.as_ref());
    // The loop has drained: every offloaded job is back, so this only joins.
    if let Some(pool) = pool {
        pool.finish();
    }
    result
}

fn serve_with<W: Waiter>(
    listening: Listening,
    ctx: &ServerContext,
    waiter: W,
    pool: Option<&Offload>,
) -> io::Result<()> {
    let offload = match pool {
        Some(pool) => {
            let wake = Arc::new(WakeFd::new()?);
            let remote = Arc::clone(&wake);
            Some(Offloading {
                port: pool.port(move || remote.wake()),
                wake,
                done: Vec::new(),
            })
        }
        None => None,
    };
    let mut lp = LevelLoop {
        ctx,
        waiter,
        listening,
        watching_listener: false,
        watching_waker: false,
        conns: Conns::new(ctx),
        progress: true,
        buf: vec![0u8; READ_BUFFER],
        ready: Vec::new(),
        offload,
    };
    if let Some(offload) = &lp.offload {
        lp.waiter
            .add(Source::Offload, offload.wake.fd(), Interest::READ)?;
    }
    lp.waiter
        .add(Source::Waker, ctx.shutdown.waker(), Interest::READ)?;
    lp.watching_waker = true;
    lp.watch_listener()?;
    let result = run_event_loop(&mut lp);
    lp.stop_watching_waker();
    if let Some(offload) = &lp.offload {
        lp.waiter.remove(Source::Offload, offload.wake.fd());
    }
    result
}

/// `--offload`: the loop's port to the pool and the descriptor the pool wakes it by.
struct Offloading {
    port: OffloadPort,
    /// Shared with the port's wake callback, which may outlive the loop on a worker.
    wake: Arc<WakeFd>,
    /// The jobs taken back this turn (kept to reuse its allocation).
    done: Vec<(usize, Job)>,
}

struct LevelLoop<'a, W> {
    ctx: &'a ServerContext,
    waiter: W,
    listening: Listening,
    watching_listener: bool,
    watching_waker: bool,
    conns: Conns<Interest>,
    /// Whether the last turn moved a byte or accepted a connection.
    progress: bool,
    buf: Vec<u8>,
    /// What the last wait reported (kept to reuse its allocation).
    ready: Vec<Ready>,
    offload: Option<Offloading>,
}

impl<W: Waiter> EventLoop for LevelLoop<'_, W> {
    type Wait = Interest;

    fn conns(&mut self) -> &mut Conns<Interest> {
        &mut self.conns
    }

    fn begin_shutdown(&mut self) -> io::Result<()> {
        self.begin_drain();
        Ok(())
    }

    fn wait_and_serve(&mut self) -> io::Result<Instant> {
        let now = Instant::now();
        let deadline = self.conns.next_wakeup(&self.listening);
        let timeout = deadline.map(|d| d.saturating_duration_since(now));
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        let idle = !std::mem::take(&mut self.progress);
        match self.waiter.wait(timeout, idle, &mut ready) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        tracing::trace!(ready = ready.len(), ?timeout, idle, "turn");
        let served = self.serve(&ready);
        self.ready = ready;
        served
    }

    fn expired(&mut self, index: usize, now: Instant) -> io::Result<()> {
        let result = self
            .conns
            .get_mut(index)
            .map_or(Ok(()), |conn| flush(conn, now));
        self.settle(index, result);
        Ok(())
    }
}

impl<W: Waiter> LevelLoop<'_, W> {
    /// Does what one wait reported; returns the turn's clock reading.
    fn serve(&mut self, ready: &[Ready]) -> io::Result<Instant> {
        // One clock read per turn, as in mio: every message's deadlines come from it.
        let now = Instant::now();
        for event in ready {
            match event.source {
                Source::Listener => self.accept_all()?,
                // A waiter that does not really wait reports it every turn.
                Source::Waker => {
                    if self.conns.drain_due() {
                        self.conns.begin_draining();
                        self.begin_drain();
                    }
                }
                Source::Offload => {
                    if let Some(offload) = &self.offload {
                        offload.wake.clear();
                    }
                }
                Source::Conn(index) => self.drive(index, event.readable, event.writable, now),
            }
        }
        // After the wake descriptor was cleared above, never before: a job that comes
        // back in between wakes the next wait instead of being read away unseen.
        self.take_offloaded(now);
        if self.listening.resume_if_due(now) {
            self.watch_listener()?;
        }
        Ok(now)
    }

    /// Accepts until the kernel has no more connections waiting.
    fn accept_all(&mut self) -> io::Result<()> {
        let mut admitted = Vec::new();
        let LevelLoop {
            ctx,
            waiter,
            listening,
            conns,
            ..
        } = self;
        let stop = listening.accept_some(ctx, usize::MAX, |stream, slot| {
            admitted.extend(admit(ctx, waiter, conns, stream, slot));
        });
        if stop == AcceptStop::Paused {
            // Out of descriptors: a level-triggered listener with a connection waiting
            // would be reported again at once, so stop watching it for a while.
            self.stop_watching_listener();
        }
        self.progress |= !admitted.is_empty();
        for index in admitted {
            // The handshake challenge (if any) is written on the first writable report.
            self.settle(index, Ok(()));
        }
        Ok(())
    }

    fn watch_listener(&mut self) -> io::Result<()> {
        if let Some(listener) = self.listening.listener() {
            if !self.watching_listener {
                self.waiter
                    .add(Source::Listener, listener.as_fd(), Interest::READ)?;
                self.watching_listener = true;
            }
        }
        Ok(())
    }

    fn stop_watching_listener(&mut self) {
        if let Some(listener) = self.listening.listener() {
            if self.watching_listener {
                self.waiter.remove(Source::Listener, listener.as_fd());
            }
        }
        self.watching_listener = false;
    }

    fn stop_watching_waker(&mut self) {
        if self.watching_waker {
            self.waiter.remove(Source::Waker, self.ctx.shutdown.waker());
            self.watching_waker = false;
        }
    }

    /// One step of work on a connection the waiter reported.
    fn drive(&mut self, index: usize, readable: bool, writable: bool, now: Instant) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let result = step(conn, &mut self.buf, readable, writable, now);
        if let Ok(true) = result {
            self.progress = true;
        }
        self.settle(index, result.map(drop));
    }

    /// `--offload`, every turn: the replies whose work is done go to their sessions
    /// and are written at once (settling each connection hands over its next job).
    fn take_offloaded(&mut self, now: Instant) {
        let Some(offload) = &mut self.offload else {
            return;
        };
        let mut done = std::mem::take(&mut offload.done);
        done.extend(offload.port.completed());
        // A job back is progress even before its reply moves: a waiter that naps when
        // idle must not nap on it.
        self.progress |= !done.is_empty();
        for (key, job) in done.drain(..) {
            if let Some(index) = self.conns.offload_done(key, job, now) {
                self.drive(index, false, true, now);
            }
        }
        if let Some(offload) = &mut self.offload {
            offload.done = done;
        }
    }

    /// The core's settle, then the connection's next offloaded job, then interest
    /// brought in line with what the session wants.
    fn settle(&mut self, index: usize, result: io::Result<()>) {
        let waiter = &mut self.waiter;
        let forget = |stream: &TcpStream| waiter.remove(Source::Conn(index), stream.as_fd());
        if self.conns.settle(index, result, forget).is_none() {
            return;
        }
        if let Some(offload) = &self.offload {
            self.conns.offload_next(index, &offload.port);
        }
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let wanted = Interest::of(&conn.session);
        if wanted == conn.wait {
            return;
        }
        if waiter
            .modify(Source::Conn(index), conn.stream.as_fd(), wanted)
            .is_err()
        {
            self.conns.close(index, true, |stream| {
                waiter.remove(Source::Conn(index), stream.as_fd())
            });
            return;
        }
        conn.wait = wanted;
    }

    fn begin_drain(&mut self) {
        self.stop_watching_listener();
        // Closing it now refuses a client that connects during the drain at once.
        drop(self.listening.close());
        // The waker stays readable forever; a level-triggered loop must stop watching it.
        self.stop_watching_waker();
        let now = Instant::now();
        for index in self.conns.indices() {
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            let result = conn
                .begin_shutdown(&mut self.buf)
                .and_then(|_| flush(conn, now));
            self.settle(index, result);
        }
    }
}

/// Starts a session for an accepted connection and starts watching it, or turns the
/// client away when the waiter cannot watch its descriptor.
fn admit<W: Waiter>(
    ctx: &ServerContext,
    waiter: &mut W,
    conns: &mut Conns<Interest>,
    stream: TcpStream,
    slot: ConnectionSlot,
) -> Option<usize> {
    if !waiter.can_watch(stream.as_fd()) {
        drop(slot);
        refuse_busy(stream, ctx);
        return None;
    }
    conns.admit(stream, slot, |index, stream, session| {
        let interest = Interest::of(session);
        waiter
            .add(Source::Conn(index), stream.as_fd(), interest)
            .map(|()| interest)
    })
}

/// One read (if reported readable and wanted), then as much writing as the socket
/// takes; whether a byte moved.
fn step(
    conn: &mut Conn<Interest>,
    buf: &mut [u8],
    readable: bool,
    writable: bool,
    now: Instant,
) -> io::Result<bool> {
    let mut moved = false;
    if readable && conn.session.wants_read() {
        moved = !matches!(conn.read_once(buf, now)?, ReadOutcome::WouldBlock);
    }
    if writable || conn.session.wants_write() {
        let before = conn.session.stats().bytes_out;
        flush(conn, now)?;
        moved |= conn.session.stats().bytes_out != before;
    }
    Ok(moved)
}

fn flush(conn: &mut Conn<Interest>, now: Instant) -> io::Result<()> {
    conn.flush(now).map(drop)
}
