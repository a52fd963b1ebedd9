//! # poll — one thread, a level-triggered readiness loop
//!
//! Every socket is non-blocking and registered with one poller. The loop asks the
//! kernel "which of these descriptors can make progress?", does one step of work on
//! each one that can, and asks again. Interest follows the session: a connection is
//! watched for *readable* only while [`Session::wants_read`] (so backpressure is simply
//! "stop asking") and for *writable* only while [`Session::wants_write`] (a socket
//! with room in its send buffer is writable almost always; asking for it needlessly
//! would wake the loop on every turn).
//!
//! Level-triggered means the kernel keeps reporting a descriptor for as long as it is
//! ready: the loop may do one `read` per connection per wakeup and trust that the rest
//! will be reported again. That makes fairness free and correctness easy, at the price
//! of more wakeups than edge-triggered (`mio`). On Linux the `polling` crate is epoll
//! underneath (in level mode); the real `poll(2)`/`select(2)` models, whose cost grows
//! with the number of descriptors on every call, come later.
//!
//! **Syscalls.** Per connection: `accept4`, `setsockopt(TCP_NODELAY)`,
//! `epoll_ctl(ADD)`, and at the end `epoll_ctl(DEL)` + `close`. Per message: one
//! `epoll_wait` (shared by everything ready at once), one `read`, one `write` and —
//! only when a reply does not fit the socket buffer — two `epoll_ctl(MOD)` to watch
//! for writable and to stop again.
//!
//! **Where it waits.** Only in `epoll_wait`, with a timeout equal to the earliest
//! session deadline (a min-heap of deadlines with lazy invalidation, so a wakeup costs
//! O(log n) in timers, not a scan of every session).
//!
//! **What a connection costs.** A descriptor, a [`Session`] (a few hundred bytes plus
//! its buffers) and a slot in a `Vec`; no thread, no stack. One 64 KiB read buffer is
//! shared by the whole loop. Ten thousand idle clients cost memory for their sessions
//! and nothing per wakeup.
//!
//! **How it fails under load.** One core: the loop's throughput is the ceiling, and
//! any slow step (a large copy) delays every client. Past `--max-conns`, framed clients
//! get the `server busy` notice. Out of descriptors (EMFILE and friends), the listener
//! is removed from the poller for [`ACCEPT_BACKOFF`] — a level-triggered listener with
//! a pending connection would otherwise be reported on every call and spin a core —
//! while existing clients keep being served.
//!
//! **Shutdown.** The shutdown descriptor is registered like a socket. When it fires the
//! listener is dropped, every session takes in what has already arrived, is told to
//! [`Session::begin_shutdown`], and the loop keeps running until every session has
//! sent what it owes and closed (bounded by the sessions' own linger deadlines).

use std::io;
use std::net::TcpStream;
use std::time::Instant;

use echolab_proto::Session;
use echolab_server::{AcceptStop, Conn, Conns, Listen, Listening, ServerContext, READ_BUFFER};
use polling::{Event, Events, PollMode, Poller};

const LISTENER: usize = 0;
const WAKER: usize = 1;
/// Connection keys start here: key = connection index + `FIRST_CONN`.
const FIRST_CONN: usize = 2;

/// What the poller is currently watching a connection for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interest {
    readable: bool,
    writable: bool,
}

impl Interest {
    fn of(session: &Session) -> Interest {
        Interest {
            readable: session.wants_read(),
            writable: session.wants_write(),
        }
    }

    fn event(self, index: usize) -> Event {
        Event::new(index + FIRST_CONN, self.readable, self.writable)
    }
}

struct Loop<'a> {
    ctx: &'a ServerContext,
    poller: Poller,
    listening: Listening,
    /// Whether the listener is currently registered with the poller.
    watching_listener: bool,
    conns: Conns<Interest>,
    shutting_down: bool,
    buf: Vec<u8>,
}

/// Serves every client from one thread with a level-triggered readiness loop until
/// shutdown, then lets every session finish and returns.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    let listening = Listening::new(listen.bind()?)?;
    let poller = Poller::new()?;
    let mut lp = Loop {
        ctx,
        poller,
        listening,
        watching_listener: false,
        conns: Conns::new(ctx),
        shutting_down: false,
        buf: vec![0u8; READ_BUFFER],
    };
    // SAFETY: the waker outlives this function, and it is deleted from the poller at
    // shutdown or below, before the poller is dropped.
    unsafe {
        lp.poller.add_with_mode(
            &ctx.shutdown.waker(),
            Event::readable(WAKER),
            PollMode::Level,
        )?;
    }
    lp.watch_listener()?;
    let result = lp.run();
    let _ = lp.poller.delete(ctx.shutdown.waker());
    result
}

impl Loop<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::new();
        loop {
            if !self.shutting_down && self.ctx.shutdown.is_requested() {
                self.begin_shutdown();
            }
            if self.shutting_down && self.conns.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            let deadline = earliest(self.conns.next_deadline(), self.listening.resume_at());
            let timeout = deadline.map(|d| d.saturating_duration_since(now));
            events.clear();
            match self.poller.wait(&mut events, timeout) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.key {
                    LISTENER => self.accept_all()?,
                    WAKER => {
                        if !self.shutting_down {
                            self.begin_shutdown();
                        }
                    }
                    key => self.drive(key - FIRST_CONN, event.readable, event.writable),
                }
            }
            let now = Instant::now();
            if self.listening.resume_if_due(now) {
                self.watch_listener()?;
            }
            while let Some(index) = self.conns.next_expired(now) {
                let result = self.conns.get_mut(index).map_or(Ok(()), flush);
                self.settle(index, result);
            }
        }
    }

    /// Accepts until the kernel has no more connections waiting.
    fn accept_all(&mut self) -> io::Result<()> {
        let Loop {
            ctx,
            poller,
            listening,
            conns,
            ..
        } = self;
        let mut admitted = Vec::new();
        let stop = listening.accept_some(ctx, usize::MAX, |stream, slot| {
            let index = conns.admit(stream, slot, |index, stream, session| {
                let interest = Interest::of(session);
                // SAFETY: the stream is deleted from the poller before it is dropped
                // (`forget` in `settle` and `close`).
                unsafe { poller.add_with_mode(stream, interest.event(index), PollMode::Level) }
                    .map(|()| interest)
            });
            admitted.extend(index);
        });
        if stop == AcceptStop::Paused {
            // Out of descriptors: a level-triggered listener with a connection waiting
            // would be reported again at once, so stop watching it for a while.
            if let Some(listener) = self.listening.listener() {
                self.poller.delete(listener)?;
            }
            self.watching_listener = false;
        }
        for index in admitted {
            // The handshake challenge (if any) is written on the first writable report.
            self.settle(index, Ok(()));
        }
        Ok(())
    }

    fn watch_listener(&mut self) -> io::Result<()> {
        if let Some(listener) = self.listening.listener() {
            if !self.watching_listener {
                // SAFETY: deleted before it is dropped (`begin_shutdown`, `accept_all`).
                unsafe {
                    self.poller.add_with_mode(
                        listener,
                        Event::readable(LISTENER),
                        PollMode::Level,
                    )?;
                }
                self.watching_listener = true;
            }
        }
        Ok(())
    }

    /// One step of work on a connection the poller reported.
    fn drive(&mut self, index: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let result = step(conn, &mut self.buf, readable, writable);
        self.settle(index, result);
    }

    /// The core's settle, then interest brought in line with what the session wants.
    fn settle(&mut self, index: usize, result: io::Result<()>) {
        let poller = &self.poller;
        let Some(conn) = self.conns.settle(index, result, |s| forget(poller, s)) else {
            return;
        };
        let wanted = Interest::of(&conn.session);
        if wanted == conn.wait {
            return;
        }
        if poller
            .modify_with_mode(&conn.stream, wanted.event(index), PollMode::Level)
            .is_err()
        {
            self.conns.close(index, true, |s| forget(poller, s));
            return;
        }
        conn.wait = wanted;
    }

    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        if let Some(listener) = self.listening.close() {
            if self.watching_listener {
                let _ = self.poller.delete(&listener);
            }
        }
        self.watching_listener = false;
        // The waker stays readable forever; a level-triggered loop must stop watching it.
        let _ = self.poller.delete(self.ctx.shutdown.waker());
        for index in self.conns.indices() {
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            let result = conn.begin_shutdown(&mut self.buf).and_then(|_| flush(conn));
            self.settle(index, result);
        }
    }
}

/// One read (if reported readable and wanted), then as much writing as the socket takes.
fn step(
    conn: &mut Conn<Interest>,
    buf: &mut [u8],
    readable: bool,
    writable: bool,
) -> io::Result<()> {
    if readable && conn.session.wants_read() {
        conn.read_once(buf)?;
    }
    if writable || conn.session.wants_write() {
        flush(conn)?;
    }
    Ok(())
}

fn flush(conn: &mut Conn<Interest>) -> io::Result<()> {
    conn.flush().map(drop)
}

fn forget(poller: &Poller, stream: &TcpStream) {
    let _ = poller.delete(stream);
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
