//! # mio — one thread, edge-triggered epoll
//!
//! Every socket is non-blocking and registered once, for readable *and* writable, in
//! edge-triggered mode (`EPOLLET`, which is how mio always registers on Linux). The
//! kernel reports a descriptor only when its state *changes* — data arrives, room
//! appears in the send buffer — so the loop must remember what it was told: each
//! connection carries "may be readable" / "may be writable" flags that only a
//! `WouldBlock` clears. Registering for writable costs nothing here: the edge fires
//! once when the buffer drains, not on every call as it would level-triggered.
//!
//! **Fairness.** Draining a socket until `WouldBlock` is required, but doing it in one
//! go would let one client streaming at full speed starve everyone else. So each
//! connection gets at most [`READS_PER_TURN`] reads per turn; a connection that is
//! still readable goes on a *ready list*, served round-robin before the next
//! `epoll_wait`, which then uses a zero timeout. Edge-triggered will not report it
//! again, so forgetting it would hang that client.
//!
//! **Syscalls.** Per connection: `accept4`, `setsockopt(TCP_NODELAY)`,
//! `epoll_ctl(ADD)` once, and at the end `epoll_ctl(DEL)` + `close`. Per message: one
//! `epoll_wait` (shared by everything ready at once), one `read` that returns the
//! message, one that returns `EAGAIN`, and one `write`. Interest never changes, so there
//! are no `epoll_ctl(MOD)` calls at all.
//!
//! **Where it waits.** Only in `epoll_wait`, with a timeout equal to the earliest
//! session deadline (a min-heap with lazy invalidation), or zero while the ready list
//! holds connections with work left.
//!
//! **What a connection costs.** A descriptor, a [`Session`] and a slot in a `Vec`
//! keyed by mio `Token`; one 64 KiB read buffer is shared by the whole loop.
//!
//! **How it fails under load.** One core is the ceiling, as for `poll`. The classic
//! edge-triggered bug — stop reading before `WouldBlock` and never hear from that
//! socket again — is what the ready list exists to avoid. Out of descriptors, the loop
//! stops accepting for [`ACCEPT_BACKOFF`] (new-connection edges are ignored meanwhile,
//! so nothing spins) and then drains the backlog, since no new edge may come.
//!
//! **Shutdown.** The shutdown descriptor is registered through
//! [`mio::unix::SourceFd`]. When it fires the listener is deregistered and dropped,
//! every session takes in what has already arrived, is told to
//! [`Session::begin_shutdown`], and the loop runs until every session has closed.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::Shutdown as SocketShutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use echolab_proto::Session;
use echolab_server::{
    is_transient, new_session, read_available, refuse_busy, write_pending, ConnectionSlot,
    Deadlines, ServerContext, Slab, ACCEPT_BACKOFF,
};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection tokens start here: token = index in the slab + `FIRST_CONN`.
const FIRST_CONN: usize = 2;
const READ_BUFFER: usize = 64 * 1024;
/// At most this many reads (of up to 64 KiB each) per connection per turn.
pub const READS_PER_TURN: usize = 4;
/// At most this many accepts per turn before serving connections again.
const ACCEPTS_PER_TURN: usize = 256;

struct Conn {
    stream: TcpStream,
    session: Session,
    _slot: ConnectionSlot,
    fin_sent: bool,
    /// Edge-triggered state: set by events, cleared only by `WouldBlock`.
    readable: bool,
    writable: bool,
    /// Whether the connection is on the ready list.
    queued: bool,
    generation: u64,
    scheduled: Option<Instant>,
}

struct Loop<'a> {
    ctx: &'a ServerContext,
    poll: Poll,
    listener: Option<TcpListener>,
    /// The listener may have connections we have not accepted yet.
    listener_ready: bool,
    backoff_until: Option<Instant>,
    conns: Slab<Conn>,
    ready: VecDeque<usize>,
    timers: Deadlines,
    shutting_down: bool,
    buf: Vec<u8>,
}

/// Serves every client from one thread with an edge-triggered epoll loop until
/// shutdown, then lets every session finish and returns.
pub fn serve(listener: std::net::TcpListener, ctx: &ServerContext) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker_fd = ctx.shutdown.waker().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&waker_fd), WAKER, Interest::READABLE)?;
    let mut lp = Loop {
        ctx,
        poll,
        listener: Some(listener),
        listener_ready: true,
        backoff_until: None,
        conns: Slab::new(),
        ready: VecDeque::new(),
        timers: Deadlines::new(),
        shutting_down: false,
        buf: vec![0u8; READ_BUFFER],
    };
    let result = lp.run();
    let _ = lp.poll.registry().deregister(&mut SourceFd(&waker_fd));
    result
}

impl Loop<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            if !self.shutting_down && self.ctx.shutdown.is_requested() {
                self.begin_shutdown();
            }
            if self.shutting_down && self.conns.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            let timeout = if !self.ready.is_empty()
                || (self.listener_ready && self.backoff_until.is_none() && self.listener.is_some())
            {
                Some(Duration::ZERO)
            } else {
                let mut deadline = self.timers.next_deadline();
                if let Some(until) = self.backoff_until {
                    deadline = Some(deadline.map_or(until, |d| d.min(until)));
                }
                deadline.map(|d| d.saturating_duration_since(now))
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.listener_ready = true,
                    WAKER => {
                        if !self.shutting_down {
                            self.begin_shutdown();
                        }
                    }
                    Token(key) => {
                        let index = key - FIRST_CONN;
                        if let Some(conn) = self.conns.get_mut(index) {
                            // Errors and hang-ups are reported as both: the next read or
                            // write returns what happened.
                            let broken = event.is_error();
                            conn.readable |=
                                event.is_readable() || event.is_read_closed() || broken;
                            conn.writable |=
                                event.is_writable() || event.is_write_closed() || broken;
                            if !conn.queued {
                                conn.queued = true;
                                self.ready.push_back(index);
                            }
                        }
                    }
                }
            }
            let now = Instant::now();
            if self.backoff_until.is_some_and(|until| now >= until) {
                // No new edge may come for connections already in the backlog.
                self.backoff_until = None;
                self.listener_ready = true;
            }
            if self.listener_ready && self.backoff_until.is_none() {
                self.accept_some();
            }
            // One turn for everything on the ready list now; connections with work left
            // re-queue themselves behind the others.
            for _ in 0..self.ready.len() {
                let Some(index) = self.ready.pop_front() else {
                    break;
                };
                self.drive(index);
            }
            self.expire_timers(Instant::now());
        }
    }

    /// Accepts until `WouldBlock` (or a per-turn cap, leaving `listener_ready` set).
    fn accept_some(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = self.listener.as_ref() else {
                self.listener_ready = false;
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    self.ctx.stats.record_accept();
                    self.admit(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    return;
                }
                Err(e) if is_transient(&e) => {}
                Err(_) => {
                    // Out of descriptors or memory: retrying now would fail again. Edges
                    // that arrive meanwhile are ignored; `run` retries after the back-off.
                    self.ctx.stats.record_accept_error();
                    self.listener_ready = false;
                    self.backoff_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream) {
        let Some(slot) = self.ctx.try_admit() else {
            refuse_busy(std::net::TcpStream::from(stream), self.ctx);
            return;
        };
        let _ = stream.set_nodelay(true);
        let Ok(session) = new_session(&self.ctx.config.session, Instant::now()) else {
            return;
        };
        let (index, generation) = self.conns.reserve();
        let registered = self.poll.registry().register(
            &mut stream,
            Token(index + FIRST_CONN),
            Interest::READABLE | Interest::WRITABLE,
        );
        if registered.is_err() {
            self.conns.unreserve(index);
            return;
        }
        self.conns.insert(
            index,
            Conn {
                stream,
                session,
                _slot: slot,
                fin_sent: false,
                // Optimistic: a fresh socket usually has room to write, and the worst case
                // is one `WouldBlock`.
                readable: true,
                writable: true,
                queued: true,
                generation,
                scheduled: None,
            },
        );
        self.ready.push_back(index);
    }

    fn drive(&mut self, index: usize) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        conn.queued = false;
        let result = step(conn, &mut self.buf);
        self.settle(index, result);
    }

    /// After any change to a session: FIN once writing is done, close when closed,
    /// re-queue if work is left, keep its timer current.
    fn settle(&mut self, index: usize, result: io::Result<()>) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        if result.is_ok() && conn.session.is_write_finished() && !conn.fin_sent {
            conn.fin_sent = true;
            let _ = conn.stream.shutdown(SocketShutdown::Write);
        }
        if result.is_err() || conn.session.is_closed() {
            self.close(index, result.is_err());
            return;
        }
        let more = (conn.readable && conn.session.wants_read())
            || (conn.writable && conn.session.wants_write());
        if more && !conn.queued {
            conn.queued = true;
            self.ready.push_back(index);
        }
        if let Some(deadline) = conn.session.poll_timeout() {
            self.timers
                .schedule(index, conn.generation, deadline, &mut conn.scheduled);
        }
    }

    fn close(&mut self, index: usize, io_error: bool) {
        if let Some(mut conn) = self.conns.remove(index) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.ctx.stats.record_session(&conn.session, io_error);
            // A stale ready-list entry finds `None` (or a new connection, which then
            // just gets an extra, harmless turn).
        }
    }

    fn expire_timers(&mut self, now: Instant) {
        while let Some(expired) = self.timers.pop_expired(now) {
            let index = expired.index;
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            if !expired.claim(conn.generation, &mut conn.scheduled) {
                continue;
            }
            conn.session.handle_timeout(now);
            let result = if conn.writable { flush(conn) } else { Ok(()) };
            self.settle(index, result);
        }
    }

    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        self.backoff_until = None;
        self.listener_ready = false;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for index in 0..self.conns.capacity() {
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            let result = read_what_has_arrived(conn, &mut self.buf).and_then(|()| {
                conn.session.begin_shutdown(Instant::now());
                if conn.writable {
                    flush(conn)
                } else {
                    Ok(())
                }
            });
            self.settle(index, result);
        }
    }
}

/// One turn: up to [`READS_PER_TURN`] reads, then writes until the output is empty or
/// the socket is full.
fn step(conn: &mut Conn, buf: &mut [u8]) -> io::Result<()> {
    let mut reads = 0;
    while conn.readable && conn.session.wants_read() && reads < READS_PER_TURN {
        match conn.stream.read(buf) {
            Ok(0) => {
                conn.readable = false;
                conn.session.handle_eof(Instant::now());
            }
            Ok(n) => {
                reads += 1;
                conn.session.handle_input(&buf[..n], Instant::now());
                // Echo as we go, so output never piles up past what one read added.
                if conn.writable {
                    flush(conn)?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.readable = false,
            Err(e) => return Err(e),
        }
    }
    if conn.writable {
        flush(conn)?;
    }
    Ok(())
}

/// Writes until the output is empty or `WouldBlock` (which clears `writable`).
fn flush(conn: &mut Conn) -> io::Result<()> {
    if write_pending(&mut conn.stream, &mut conn.session)?.socket_exhausted() {
        conn.writable = false;
    }
    Ok(())
}

/// At shutdown: takes in what the peer already sent, without waiting for more (an EOF
/// or `WouldBlock` clears `readable`).
fn read_what_has_arrived(conn: &mut Conn, buf: &mut [u8]) -> io::Result<()> {
    if read_available(&mut conn.stream, &mut conn.session, buf)?.socket_exhausted() {
        conn.readable = false;
    }
    Ok(())
}
