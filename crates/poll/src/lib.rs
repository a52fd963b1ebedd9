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

use std::io::{self, Read};
use std::net::{Shutdown as SocketShutdown, TcpListener, TcpStream};
use std::time::Instant;

use echolab_proto::Session;
use echolab_server::{
    is_transient, new_session, read_available, refuse_busy, write_pending, ConnectionSlot,
    Deadlines, ServerContext, Slab, ACCEPT_BACKOFF,
};
use polling::{Event, Events, PollMode, Poller};

const LISTENER: usize = 0;
const WAKER: usize = 1;
/// Connection keys start here: key = index in the slab + `FIRST_CONN`.
const FIRST_CONN: usize = 2;
const READ_BUFFER: usize = 64 * 1024;

struct Conn {
    stream: TcpStream,
    session: Session,
    _slot: ConnectionSlot,
    fin_sent: bool,
    /// What the poller is currently watching for: (readable, writable).
    interest: (bool, bool),
    /// Tells a reused slab slot from the connection a stale timer entry was meant for.
    generation: u64,
    /// The deadline this connection has in the timer heap, if any.
    scheduled: Option<Instant>,
}

struct Loop<'a> {
    ctx: &'a ServerContext,
    poller: Poller,
    listener: Option<TcpListener>,
    /// Whether the listener is currently registered.
    listening: bool,
    backoff_until: Option<Instant>,
    conns: Slab<Conn>,
    timers: Deadlines,
    shutting_down: bool,
    buf: Vec<u8>,
}

/// Serves every client from one thread with a level-triggered readiness loop until
/// shutdown, then lets every session finish and returns.
pub fn serve(listener: TcpListener, ctx: &ServerContext) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let poller = Poller::new()?;
    // SAFETY: both descriptors are deleted from the poller (or the poller is dropped)
    // before they are closed: the listener lives in `Loop` beside the poller and is
    // deleted before it is dropped; the waker outlives this function.
    unsafe {
        poller.add_with_mode(&listener, Event::readable(LISTENER), PollMode::Level)?;
        poller.add_with_mode(
            &ctx.shutdown.waker(),
            Event::readable(WAKER),
            PollMode::Level,
        )?;
    }
    let mut lp = Loop {
        ctx,
        poller,
        listener: Some(listener),
        listening: true,
        backoff_until: None,
        conns: Slab::new(),
        timers: Deadlines::new(),
        shutting_down: false,
        buf: vec![0u8; READ_BUFFER],
    };
    let result = lp.run();
    let _ = lp.poller.delete(ctx.shutdown.waker());
    result
}

impl Loop<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::new();
        loop {
            if !self.shutting_down && self.ctx.shutdown.is_requested() {
                self.begin_shutdown()?;
            }
            if self.shutting_down && self.conns.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            let mut deadline = self.timers.next_deadline();
            if let Some(until) = self.backoff_until {
                deadline = Some(deadline.map_or(until, |d| d.min(until)));
            }
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
                            self.begin_shutdown()?;
                        }
                    }
                    key => self.drive(key - FIRST_CONN, event.readable, event.writable),
                }
            }
            let now = Instant::now();
            if self.backoff_until.is_some_and(|until| now >= until) {
                self.backoff_until = None;
                self.resume_accepting()?;
            }
            self.expire_timers(now);
        }
    }

    /// Accepts until the kernel has no more connections waiting.
    fn accept_all(&mut self) -> io::Result<()> {
        loop {
            let Some(listener) = self.listener.as_ref().filter(|_| self.listening) else {
                return Ok(());
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    self.ctx.stats.record_accept();
                    self.admit(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if is_transient(&e) => {}
                Err(_) => {
                    // Out of descriptors or memory: a level-triggered listener would be
                    // reported again at once, so stop watching it for a while.
                    self.ctx.stats.record_accept_error();
                    self.poller.delete(listener)?;
                    self.listening = false;
                    self.backoff_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return Ok(());
                }
            }
        }
    }

    fn resume_accepting(&mut self) -> io::Result<()> {
        if let Some(listener) = self.listener.as_ref() {
            if !self.listening {
                // SAFETY: deleted before it is dropped (see `serve`).
                unsafe {
                    self.poller.add_with_mode(
                        listener,
                        Event::readable(LISTENER),
                        PollMode::Level,
                    )?;
                }
                self.listening = true;
            }
        }
        Ok(())
    }

    fn admit(&mut self, stream: TcpStream) {
        let Some(slot) = self.ctx.try_admit() else {
            refuse_busy(stream, self.ctx);
            return;
        };
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let now = Instant::now();
        let Ok(session) = new_session(&self.ctx.config.session, now) else {
            return;
        };
        let (index, generation) = self.conns.reserve();
        let interest = (session.wants_read(), session.wants_write());
        // SAFETY: the stream is deleted from the poller before it is dropped (`close`).
        let added = unsafe {
            self.poller.add_with_mode(
                &stream,
                Event::new(index + FIRST_CONN, interest.0, interest.1),
                PollMode::Level,
            )
        };
        if added.is_err() {
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
                interest,
                generation,
                scheduled: None,
            },
        );
        // The handshake challenge (if any) is written on the first writable report.
        self.settle(index, Ok(()));
    }

    /// One step of work on a connection the poller reported.
    fn drive(&mut self, index: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        let result = step(conn, &mut self.buf, readable, writable);
        self.settle(index, result);
    }

    /// After any change to a session: send FIN once its writing is done, close it when
    /// it is closed, otherwise bring interest and timer up to date.
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
        let wanted = (conn.session.wants_read(), conn.session.wants_write());
        if wanted != conn.interest {
            let event = Event::new(index + FIRST_CONN, wanted.0, wanted.1);
            if self
                .poller
                .modify_with_mode(&conn.stream, event, PollMode::Level)
                .is_err()
            {
                self.close(index, true);
                return;
            }
            conn.interest = wanted;
        }
        if let Some(deadline) = conn.session.poll_timeout() {
            self.timers
                .schedule(index, conn.generation, deadline, &mut conn.scheduled);
        }
    }

    fn close(&mut self, index: usize, io_error: bool) {
        if let Some(conn) = self.conns.remove(index) {
            let _ = self.poller.delete(&conn.stream);
            self.ctx.stats.record_session(&conn.session, io_error);
        }
    }

    fn expire_timers(&mut self, now: Instant) {
        while let Some(expired) = self.timers.pop_expired(now) {
            let index = expired.index;
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            if !expired.claim(conn.generation, &mut conn.scheduled) {
                continue; // stale: superseded by an earlier entry, or a reused slot
            }
            conn.session.handle_timeout(now);
            let result = flush(conn);
            self.settle(index, result);
        }
    }

    fn begin_shutdown(&mut self) -> io::Result<()> {
        self.shutting_down = true;
        self.backoff_until = None;
        if let Some(listener) = self.listener.take() {
            if self.listening {
                let _ = self.poller.delete(&listener);
            }
        }
        self.listening = false;
        // The waker stays readable forever; a level-triggered loop must stop watching it.
        let _ = self.poller.delete(self.ctx.shutdown.waker());
        for index in 0..self.conns.capacity() {
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            let result = read_available(&mut conn.stream, &mut conn.session, &mut self.buf)
                .and_then(|_| {
                    conn.session.begin_shutdown(Instant::now());
                    flush(conn)
                });
            self.settle(index, result);
        }
        Ok(())
    }
}

/// One read (if reported readable and wanted), then as much writing as the socket takes.
fn step(conn: &mut Conn, buf: &mut [u8], readable: bool, writable: bool) -> io::Result<()> {
    if readable && conn.session.wants_read() {
        match conn.stream.read(buf) {
            Ok(0) => conn.session.handle_eof(Instant::now()),
            Ok(n) => conn.session.handle_input(&buf[..n], Instant::now()),
            Err(e) if would_retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
    if writable || conn.session.wants_write() {
        flush(conn)?;
    }
    Ok(())
}

/// Writes the session's output until it is empty or the socket is full.
fn flush(conn: &mut Conn) -> io::Result<()> {
    write_pending(&mut conn.stream, &mut conn.session).map(drop)
}

fn would_retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
