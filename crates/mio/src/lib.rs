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
//! message, and one `write`. A read that returns less than the buffer has drained the
//! socket, so the loop does not read again just to hear `EAGAIN`: new data raises a new
//! edge. Interest never changes, so there are no `epoll_ctl(MOD)` calls at all.
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
//!
//! [`Session`]: echolab_proto::Session
//! [`Session::begin_shutdown`]: echolab_proto::Session::begin_shutdown
//! [`ACCEPT_BACKOFF`]: echolab_server::ACCEPT_BACKOFF

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use echolab_server::{
    run_event_loop, AcceptStop, Conn, Conns, Drained, EventLoop, Listen, Listening, Offload,
    OffloadPort, ReadOutcome, ServerContext, READ_BUFFER,
};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// `--offload`: the pool's workers wake the loop through a `mio::Waker` here when jobs
/// come back.
const OFFLOAD: Token = Token(2);
/// Connection tokens start here: token = connection index + `FIRST_CONN`.
const FIRST_CONN: usize = 3;
/// At most this many reads (of up to 64 KiB each) per connection per turn.
pub const READS_PER_TURN: usize = 4;
/// At most this many accepts per turn before serving connections again.
const ACCEPTS_PER_TURN: usize = 256;

/// Edge-triggered state: set by events, cleared only by `WouldBlock`.
#[derive(Debug)]
struct Edges {
    readable: bool,
    writable: bool,
    /// The peer's FIN (or an error) has been reported: a short read may have stopped
    /// at the FIN, whose end-of-file the next read returns — and no new edge will
    /// come for it.
    read_closed: bool,
    /// Whether the connection is on the ready list.
    queued: bool,
}

struct Loop<'a> {
    ctx: &'a ServerContext,
    poll: Poll,
    listening: Listening,
    /// The listener may have connections we have not accepted yet.
    listener_ready: bool,
    conns: Conns<Edges>,
    ready: VecDeque<usize>,
    buf: Vec<u8>,
    events: Events,
    /// `--offload`: this loop's port to the worker pool.
    offload: Option<OffloadPort>,
}

/// Serves every client from one thread with an edge-triggered epoll loop until
/// shutdown, then lets every session finish and returns.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    let listener = listen.bind()?;
    let pool = ctx.start_offload()?;
    let result = serve_on(listener, ctx, pool.as_ref(), || Ok(()));
    // The loop has drained: every offloaded job is back, so this only joins.
    if let Some(pool) = pool {
        pool.finish();
    }
    result
}

/// The loop itself on a listener bound elsewhere: one of several loops, each with its
/// own `SO_REUSEPORT` listener, is exactly this (the `reactors` model).
/// With `pool` (`--offload`), each message's work runs on the pool's threads; several
/// loops may share one pool. `set_up` runs once the loop holds every descriptor it needs
/// (its epoll instance, its offload waker) and before it serves: `reactors` announces
/// its port only after every loop got that far.
pub fn serve_on(
    listener: TcpListener,
    ctx: &ServerContext,
    pool: Option<&Offload>,
    set_up: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let listening = Listening::new(listener)?;
    let poll = Poll::new()?;
    if let Some(listener) = listening.listener() {
        let fd = listener.as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), LISTENER, Interest::READABLE)?;
    }
    let waker_fd = ctx.shutdown.waker().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&waker_fd), WAKER, Interest::READABLE)?;
    let offload = match pool {
        Some(pool) => {
            let waker = mio::Waker::new(poll.registry(), OFFLOAD)?;
            Some(pool.port(move || {
                // A failed wake leaves the jobs for the next turn's drain, which comes
                // with the next event or deadline at the latest.
                let _ = waker.wake();
            }))
        }
        None => None,
    };
    let mut lp = Loop {
        ctx,
        poll,
        listening,
        listener_ready: true,
        conns: Conns::new(ctx),
        ready: VecDeque::new(),
        buf: vec![0u8; READ_BUFFER],
        events: Events::with_capacity(1024),
        offload,
    };
    let result = set_up().and_then(|()| run_event_loop(&mut lp));
    let _ = lp.poll.registry().deregister(&mut SourceFd(&waker_fd));
    result
}

impl EventLoop for Loop<'_> {
    type Wait = Edges;

    fn conns(&mut self) -> &mut Conns<Edges> {
        &mut self.conns
    }

    fn begin_shutdown(&mut self) -> io::Result<()> {
        self.begin_drain();
        Ok(())
    }

    fn wait_and_serve(&mut self) -> io::Result<Instant> {
        let now = Instant::now();
        let timeout =
            if !self.ready.is_empty() || (self.listener_ready && self.listening.is_accepting()) {
                Some(Duration::ZERO)
            } else {
                let deadline = self.conns.next_wakeup(&self.listening);
                deadline.map(|d| d.saturating_duration_since(now))
            };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        tracing::trace!(
            events = self.events.iter().count(),
            ready_list = self.ready.len(),
            ?timeout,
            "turn"
        );
        let mut shutdown = false;
        for event in self.events.iter() {
            match event.token() {
                LISTENER => self.listener_ready = true,
                WAKER => shutdown = true,
                // Taken below, every turn.
                OFFLOAD => {}
                Token(key) => {
                    let index = key - FIRST_CONN;
                    if let Some(conn) = self.conns.get_mut(index) {
                        // Errors and hang-ups are reported as both: the next read or
                        // write returns what happened.
                        let broken = event.is_error();
                        let edges = &mut conn.wait;
                        edges.readable |= event.is_readable() || event.is_read_closed() || broken;
                        edges.read_closed |= event.is_read_closed() || broken;
                        edges.writable |= event.is_writable() || event.is_write_closed() || broken;
                        if !edges.queued {
                            edges.queued = true;
                            self.ready.push_back(index);
                        }
                    }
                }
            }
        }
        if shutdown && !self.conns.is_draining() {
            self.conns.begin_draining();
            self.begin_drain();
        }
        // One clock read for the whole turn: every message's deadlines come from it, so
        // the loop's clock cost is per turn, not per message (what a read per message
        // cost: docs/models/mio.md).
        let now = Instant::now();
        if self.listening.resume_if_due(now) {
            // No new edge may come for connections already in the backlog.
            self.listener_ready = true;
        }
        if self.listener_ready {
            self.accept_some();
        }
        self.take_offloaded(now);
        // One turn for everything on the ready list now; connections with work left
        // re-queue themselves behind the others.
        for _ in 0..self.ready.len() {
            let Some(index) = self.ready.pop_front() else {
                break;
            };
            self.drive(index, now);
        }
        Ok(now)
    }

    fn expired(&mut self, index: usize, now: Instant) -> io::Result<()> {
        let result = self
            .conns
            .get_mut(index)
            .map_or(Ok(()), |conn| flush_if_writable(conn, now));
        self.settle(index, result);
        Ok(())
    }
}

impl Loop<'_> {
    /// Accepts until the backlog is empty, or up to a per-turn cap (leaving
    /// `listener_ready` set), or until out of descriptors (edges that arrive during the
    /// pause are ignored; `run` retries after it).
    fn accept_some(&mut self) {
        let Loop {
            ctx,
            poll,
            listening,
            conns,
            ready,
            ..
        } = self;
        let registry = poll.registry();
        let stop = listening.accept_some(ctx, ACCEPTS_PER_TURN, |stream, slot| {
            let admitted = conns.admit(stream, slot, |index, stream, _| {
                register(registry, index, stream)
            });
            ready.extend(admitted);
        });
        self.listener_ready = stop == AcceptStop::Capped;
    }

    fn drive(&mut self, index: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        conn.wait.queued = false;
        let result = step(conn, &mut self.buf, now);
        self.settle(index, result);
    }

    /// `--offload`: the replies whose work is done go to their sessions, and their
    /// connections on the ready list to be written (and to hand over their next job).
    fn take_offloaded(&mut self, now: Instant) {
        let Some(port) = &self.offload else {
            return;
        };
        for (key, job) in port.completed() {
            let Some(index) = self.conns.offload_done(key, job, now) else {
                continue;
            };
            if let Some(conn) = self.conns.get_mut(index) {
                if !conn.wait.queued {
                    conn.wait.queued = true;
                    self.ready.push_back(index);
                }
            }
        }
    }

    /// The core's settle, then the next offloaded job, then back on the ready list if
    /// the edges say work is left.
    fn settle(&mut self, index: usize, result: io::Result<()>) {
        let registry = self.poll.registry();
        if self
            .conns
            .settle(index, result, |stream| deregister(registry, stream))
            .is_none()
        {
            return;
        }
        if let Some(port) = &self.offload {
            self.conns.offload_next(index, port);
        }
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let edges = &mut conn.wait;
        let more = (edges.readable && conn.session.wants_read())
            || (edges.writable && conn.session.wants_write());
        if more && !edges.queued {
            edges.queued = true;
            self.ready.push_back(index);
        }
    }

    fn begin_drain(&mut self) {
        self.listener_ready = false;
        if let Some(listener) = self.listening.close() {
            deregister(self.poll.registry(), &listener);
        }
        let now = Instant::now();
        for index in self.conns.indices() {
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            let result = conn.begin_shutdown(&mut self.buf).and_then(|drained| {
                if drained.socket_exhausted() {
                    conn.wait.readable = false;
                }
                flush_if_writable(conn, now)
            });
            self.settle(index, result);
        }
    }
}

/// Registers a new connection for both directions, edge-triggered (how mio always
/// registers on Linux); optimistic flags, since a fresh socket usually has room to
/// write and the worst case is one `WouldBlock`.
fn register(registry: &Registry, index: usize, stream: &TcpStream) -> io::Result<Edges> {
    let fd = stream.as_raw_fd();
    registry.register(
        &mut SourceFd(&fd),
        Token(index + FIRST_CONN),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(Edges {
        readable: true,
        writable: true,
        read_closed: false,
        queued: true,
    })
}

fn deregister(registry: &Registry, socket: &impl AsRawFd) {
    let _ = registry.deregister(&mut SourceFd(&socket.as_raw_fd()));
}

/// One turn: up to [`READS_PER_TURN`] reads, then writes until the output is empty or
/// the socket is full.
fn step(conn: &mut Conn<Edges>, buf: &mut [u8], now: Instant) -> io::Result<()> {
    let mut reads = 0;
    while conn.wait.readable && conn.session.wants_read() && reads < READS_PER_TURN {
        match conn.read_once(buf, now)? {
            ReadOutcome::Data(n) => {
                reads += 1;
                // A stream socket that returned less than the buffer had no more to
                // give: it is drained, and data arriving from now on raises a new edge.
                // Reading again only to hear `EAGAIN` would cost a syscall per message
                // (tokio relies on the same rule). A full buffer may hide more: keep
                // reading; so may a reported FIN (data and FIN that arrived together
                // leave a short read and an end-of-file still to read, with no edge
                // to come).
                if n < buf.len() && !conn.wait.read_closed {
                    conn.wait.readable = false;
                }
                // Echo as we go, so output never piles up past what one read added.
                flush_if_writable(conn, now)?;
            }
            ReadOutcome::Eof | ReadOutcome::WouldBlock => conn.wait.readable = false,
        }
    }
    flush_if_writable(conn, now)
}

/// Writes until the output is empty or `WouldBlock` (which clears `writable`).
fn flush_if_writable(conn: &mut Conn<Edges>, now: Instant) -> io::Result<()> {
    if conn.wait.writable && conn.flush(now)? == Drained::WouldBlock {
        conn.wait.writable = false;
    }
    Ok(())
}
