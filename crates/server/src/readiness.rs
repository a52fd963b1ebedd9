//! The readiness connection core: what every single-threaded loop that waits for
//! "this socket can make progress" shares, whatever call it waits in (epoll through
//! `polling` or `mio`, `poll(2)`, `select(2)`, or no call at all). A model keeps only
//! how it waits and how its interest changes; this holds the connections, their
//! deadlines, the FIN, the close, and the listener's back-off.

use std::io::{self, Read};
use std::net::{Shutdown as SocketShutdown, TcpListener, TcpStream};
use std::time::Instant;

use echolab_proto::{Job, Session};

use crate::nonblocking::write_pending;
use crate::{
    accept_one, new_session, read_available, Accepted, ConnectionSlot, Deadlines, Drained,
    OffloadPort, ServerContext, Slab, SocketMode, ACCEPT_BACKOFF,
};

/// One connection of a readiness loop: a non-blocking socket, its session, and `W`,
/// the model's own record of how it waits for it (interest bits, edge flags).
#[derive(Debug)]
pub struct Conn<W> {
    /// The non-blocking socket.
    pub stream: TcpStream,
    /// Its protocol state.
    pub session: Session,
    /// What the model keeps per connection.
    pub wait: W,
    _slot: ConnectionSlot,
    /// Tells a reused slab slot from the connection a stale timer entry was meant for.
    generation: u32,
    /// The deadline this connection has in the timer heap, if any.
    scheduled: Option<Instant>,
}

/// What one [`Conn::read_once`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes went into the session.
    Data(usize),
    /// The peer closed its side; the session has been told.
    Eof,
    /// Nothing to read right now.
    WouldBlock,
}

impl<W> Conn<W> {
    /// One `read` into the session (retried on EINTR). `now` is the loop turn's clock:
    /// one clock read per turn instead of one per message, and the deadlines it sets
    /// are at most a turn early.
    pub fn read_once(&mut self, buf: &mut [u8], now: Instant) -> io::Result<ReadOutcome> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => {
                    self.session.handle_eof(now);
                    return Ok(ReadOutcome::Eof);
                }
                Ok(n) => {
                    self.session.handle_input(&buf[..n], now);
                    return Ok(ReadOutcome::Data(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::WouldBlock)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the session's output until it is empty or the socket is full (`now` as
    /// for [`Conn::read_once`]).
    pub fn flush(&mut self, now: Instant) -> io::Result<Drained> {
        write_pending(&mut self.stream, &mut self.session, now)
    }

    /// Shutdown has begun: takes in what the peer already sent (without waiting for
    /// more) and tells the session, which then owes its replies and a notice.
    pub fn begin_shutdown(&mut self, buf: &mut [u8]) -> io::Result<Drained> {
        let drained = read_available(&mut self.stream, &mut self.session, buf)?;
        self.session.begin_shutdown(Instant::now());
        Ok(drained)
    }
}

/// The connections of one loop, keyed by a stable index (the model's poller key), with
/// their deadlines in a heap with lazy invalidation: a wakeup costs O(log n) in timers,
/// not a scan of every session.
#[derive(Debug)]
pub struct Conns<W> {
    ctx: ServerContext,
    slab: Slab<Conn<W>>,
    timers: Deadlines,
    /// The shutdown drain has begun.
    draining: bool,
}

impl<W> Conns<W> {
    /// No connections yet.
    pub fn new(ctx: &ServerContext) -> Self {
        Conns {
            ctx: ctx.clone(),
            slab: Slab::new(),
            timers: Deadlines::new(),
            draining: false,
        }
    }

    /// Whether shutdown was requested and the drain has not begun yet: the loop should
    /// begin it now.
    pub fn drain_due(&self) -> bool {
        !self.draining && self.ctx.shutdown.is_requested()
    }

    /// Records that the drain has begun (the loop has stopped listening and told every
    /// session).
    pub fn begin_draining(&mut self) {
        self.draining = true;
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Starts a session for an admitted socket. `register` is given the connection's
    /// index, socket and new session before it is stored (to add it to the model's
    /// poller) and returns the model's wait state for it; when it fails, or no session
    /// can start, the socket is closed and `None` returned.
    pub fn admit(
        &mut self,
        stream: TcpStream,
        slot: ConnectionSlot,
        register: impl FnOnce(usize, &TcpStream, &Session) -> io::Result<W>,
    ) -> Option<usize> {
        let session = new_session(&self.ctx.config.session, Instant::now()).ok()?;
        let (index, generation) = self.slab.reserve();
        let wait = match register(index, &stream, &session) {
            Ok(wait) => wait,
            Err(_) => {
                self.slab.unreserve(index);
                return None;
            }
        };
        self.slab.insert(
            index,
            Conn {
                stream,
                session,
                wait,
                _slot: slot,
                generation,
                scheduled: None,
            },
        );
        Some(index)
    }

    /// The connection at `index`, if it is still open.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut Conn<W>> {
        self.slab.get_mut(index)
    }

    /// After any change to a session: sends the FIN once its writing is done, closes it
    /// (on an error or when the session is closed; `forget` first removes the socket
    /// from the model's poller) and records its stats, or keeps its deadline current
    /// and returns it so the model can bring its interest up to date.
    pub fn settle(
        &mut self,
        index: usize,
        result: io::Result<()>,
        forget: impl FnOnce(&TcpStream),
    ) -> Option<&mut Conn<W>> {
        let conn = self.slab.get_mut(index)?;
        if result.is_ok() && conn.session.take_fin() {
            // Our FIN goes out after the last reply; the peer may still be sending, so
            // the session keeps reading until its FIN (lingering close).
            let _ = conn.stream.shutdown(SocketShutdown::Write);
        }
        if result.is_err() || conn.session.is_closed() {
            self.close(index, result.is_err(), forget);
            return None;
        }
        let conn = self.slab.get_mut(index)?;
        if let Some(deadline) = conn.session.poll_timeout() {
            self.timers
                .schedule(index, conn.generation, deadline, &mut conn.scheduled);
        }
        Some(conn)
    }

    /// `--offload`: hands the connection's oldest complete frame to the pool, if one
    /// waits and none of its frames is out (one at a time keeps its replies in order).
    /// A loop calls it after every change to the connection ([`Conns::settle`] is the
    /// place).
    pub fn offload_next(&mut self, index: usize, port: &OffloadPort) {
        let Some(conn) = self.slab.get_mut(index) else {
            return;
        };
        let Some(job) = conn.session.take_job() else {
            return;
        };
        if let Err(job) = port.submit(job_key(index, conn.generation), job) {
            // The pool finishes only after every loop has drained; a loop still
            // running past it answers without the work rather than lose the reply.
            conn.session.complete_job(job, Instant::now());
        }
    }

    /// An offloaded job came back with `key`: its reply goes to its session, and the
    /// connection's index is returned for the loop to write it. `None` when the
    /// connection is gone — a failed socket closes at once — even if its slot now
    /// holds a newer connection (the key carries the generation).
    pub fn offload_done(&mut self, key: usize, job: Job, now: Instant) -> Option<usize> {
        let (index, generation) = (key & 0xffff_ffff, (key >> 32) as u32);
        let conn = self.slab.get_mut(index)?;
        if conn.generation != generation {
            return None;
        }
        conn.session.complete_job(job, now);
        Some(index)
    }

    /// Closes the connection at `index` now and records its stats.
    pub fn close(&mut self, index: usize, io_error: bool, forget: impl FnOnce(&TcpStream)) {
        if let Some(conn) = self.slab.remove(index) {
            crate::log::closed(&conn.stream, &conn.session, io_error);
            forget(&conn.stream);
            self.ctx.stats.record_session(&conn.session, io_error);
            // A stale poller event or ready-list entry for this index finds `None` (or
            // a newer connection, which then just gets an extra, harmless turn).
        }
    }

    /// The earliest deadline of any connection (possibly stale), for the wait timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// When the loop must wake next: a connection's deadline or the end of an accept
    /// pause, whichever comes first.
    pub fn next_wakeup(&self, listening: &Listening) -> Option<Instant> {
        match (self.next_deadline(), listening.resume_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next connection whose deadline has passed at `now`, after telling its
    /// session; the model then writes what it owes and calls [`Conns::settle`].
    pub fn next_expired(&mut self, now: Instant) -> Option<usize> {
        while let Some(expired) = self.timers.pop_expired(now) {
            let Some(conn) = self.slab.get_mut(expired.index) else {
                continue;
            };
            if expired.claim(conn.generation, &mut conn.scheduled) {
                conn.session.handle_timeout(now);
                return Some(expired.index);
            }
            // Stale: superseded by an earlier entry, or the slot was reused.
        }
        None
    }

    /// Every index that may hold a connection (check each with [`Conns::get_mut`]).
    pub fn indices(&self) -> std::ops::Range<usize> {
        0..self.slab.capacity()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }
}

/// The listening side of a readiness loop: the listener until shutdown, and the pause
/// after `accept` ran out of descriptors or memory.
#[derive(Debug)]
pub struct Listening {
    listener: Option<TcpListener>,
    paused_until: Option<Instant>,
}

/// Why an [`Listening::accept_some`] batch stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStop {
    /// The backlog is empty: wait for the listener to be reported again.
    Drained,
    /// The per-turn cap was reached with connections maybe still waiting.
    Capped,
    /// Out of resources: accepting is paused until [`Listening::resume_at`].
    Paused,
    /// No listener (shutdown has begun).
    Closed,
}

impl Listening {
    /// Accepting on `listener`, which must be non-blocking.
    pub fn new(listener: TcpListener) -> io::Result<Listening> {
        listener.set_nonblocking(true)?;
        Ok(Listening {
            listener: Some(listener),
            paused_until: None,
        })
    }

    /// The listener, until shutdown takes it.
    pub fn listener(&self) -> Option<&TcpListener> {
        self.listener.as_ref()
    }

    /// Whether new connections should be taken now: listening and not paused.
    pub fn is_accepting(&self) -> bool {
        self.listener.is_some() && self.paused_until.is_none()
    }

    /// When a pause ends, for the wait timeout.
    pub fn resume_at(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Ends a pause whose time has come; true when it did (the model then watches the
    /// listener again and tries it at once: no new event may come for connections
    /// already in the backlog).
    pub fn resume_if_due(&mut self, now: Instant) -> bool {
        if self.paused_until.is_some_and(|until| now >= until) {
            self.paused_until = None;
            return self.listener.is_some();
        }
        false
    }

    /// Stops accepting for [`ACCEPT_BACKOFF`] (out of descriptors or memory), for a model
    /// whose accepts fail elsewhere than in [`Listening::accept_some`] (a completion).
    pub fn pause(&mut self, now: Instant) {
        self.paused_until = Some(now + ACCEPT_BACKOFF);
    }

    /// Accepts up to `max` connections, handing each admitted one to `admit`.
    pub fn accept_some(
        &mut self,
        ctx: &ServerContext,
        max: usize,
        mut admit: impl FnMut(TcpStream, ConnectionSlot),
    ) -> AcceptStop {
        let Some(listener) = self
            .listener
            .as_ref()
            .filter(|_| self.paused_until.is_none())
        else {
            return AcceptStop::Closed;
        };
        for _ in 0..max {
            match accept_one(listener, ctx, SocketMode::NonBlocking) {
                Accepted::Connection(stream, slot) => admit(stream, slot),
                Accepted::Refused | Accepted::Retry => {}
                Accepted::Empty => return AcceptStop::Drained,
                Accepted::BackOff => {
                    self.pause(Instant::now());
                    return AcceptStop::Paused;
                }
            }
        }
        AcceptStop::Capped
    }

    /// Shutdown: stops listening and hands the listener back to be removed from the
    /// poller and closed, so a client connecting during the drain is refused at once.
    pub fn close(&mut self) -> Option<TcpListener> {
        self.paused_until = None;
        self.listener.take()
    }
}

/// An offloaded job's key: the connection's slab index and its generation.
fn job_key(index: usize, generation: u32) -> usize {
    (usize::try_from(generation).unwrap_or(0) << 32) | (index & 0xffff_ffff)
}
