//! # udp-mio — one non-blocking socket in an edge-triggered mio loop
//!
//! The readiness version of `udp-iterative`: the socket is non-blocking and registered
//! once with mio (edge-triggered, for readable and writable), beside the shutdown
//! descriptor. On a readable edge the loop receives until `WouldBlock` — the edge will
//! not fire again for datagrams already queued — answering each as it goes.
//!
//! With TCP a full send buffer is backpressure: the session stops reading until the
//! peer drains it. UDP has none — the kernel never tells a sender to slow down — so a
//! datagram server whose send buffer is full must decide what to do with the replies
//! it owes. This one keeps them, in order, in a bounded queue ([`OWED_LIMIT`] replies,
//! [`OWED_BYTES`] bytes), sends them when the writable edge comes, and drops what does
//! not fit, counting it (`datagrams.send_queue_full` in the stats line). It keeps
//! receiving meanwhile: stopping would only move the loss into the kernel's receive
//! buffer, where nobody counts it per server.
//!
//! **Syscalls.** Per datagram: one `recvmsg` (for `MSG_TRUNC`) and one `sendto`; per
//! burst, one `epoll_wait` and one `recvmsg` that returns `EAGAIN`. At most
//! [`RECVS_PER_TURN`] receives per turn, then a zero-timeout `epoll_wait`, so a flood
//! cannot keep the loop from seeing shutdown. Interest never changes: no `epoll_ctl`
//! after start-up.
//!
//! **Where it waits.** Only in `epoll_wait`, with no timeout: a datagram server keeps no
//! per-client deadlines, so at rest nothing wakes it.
//!
//! **What a client costs.** Nothing but the replies it is owed while the send buffer is
//! full: at most [`OWED_BYTES`] for everyone together.
//!
//! **How it fails under load.** One core is the ceiling; beyond it the socket's receive
//! buffer overflows and the kernel drops datagrams (`RcvbufErrors`). A full send buffer
//! (rare over loopback, where a send hands the datagram straight to the receiver) fills
//! the queue, and then replies are dropped and counted.
//!
//! **With work.** `--work` runs inline, per datagram, between its receive and its
//! send: a blocking call stalls every client, since one loop answers them all.
//! `--offload N` hands each datagram to a pool of N threads instead and sends the reply
//! when the work comes back, woken by a `mio::Waker` (UDP has no order to keep, so
//! several datagrams from one client may be out at once). A job out is a reply owed:
//! jobs out and replies queued share the [`OWED_LIMIT`] / [`OWED_BYTES`] bound, and a
//! datagram past it is dropped and counted like a reply that does not fit the queue —
//! there is no backpressure to apply, and the pool's queue must not grow without bound.
//!
//! **Shutdown.** The shutdown descriptor's edge ends the loop: the offloaded datagrams'
//! replies are waited for (they were received before the signal), the replies owed are sent
//! (waiting up to [`DRAIN_TIME`] for room; what still cannot go is counted as dropped),
//! then the datagrams already queued on the socket are answered
//! ([`echolab_server::drain`]).

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use echolab_server::{
    drain, record_recv_buffer, recv_datagram, Listen, OffloadPort, Responder, ServerContext,
    DRAIN_TIME,
};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

mod offload;

use offload::Request;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// `--offload`: the pool's workers wake the loop through a `mio::Waker` here.
const OFFLOAD: Token = Token(2);
/// At most this many receives per turn before looking at events (and shutdown) again.
pub const RECVS_PER_TURN: usize = 256;
/// Most replies held while the send buffer is full.
pub const OWED_LIMIT: usize = 1024;
/// Most bytes of replies held while the send buffer is full.
pub const OWED_BYTES: usize = 4 << 20;

/// Replies owed, oldest first, bounded in count and bytes — with `--offload`, together
/// with the datagrams whose work is out.
#[derive(Debug, Default)]
struct Owed {
    replies: VecDeque<(SocketAddr, Vec<u8>)>,
    bytes: usize,
    /// Datagrams on the pool, and their bytes.
    working: usize,
    working_bytes: usize,
}

impl Owed {
    fn has_room(&self, len: usize) -> bool {
        self.replies.len() + self.working < OWED_LIMIT
            && self.bytes + self.working_bytes + len <= OWED_BYTES
    }

    /// Holds `reply` for `to`; `false` (and nothing held) when the queue is full.
    fn push(&mut self, to: SocketAddr, reply: Vec<u8>) -> bool {
        if !self.has_room(reply.len()) {
            return false;
        }
        self.bytes += reply.len();
        self.replies.push_back((to, reply));
        true
    }

    /// Counts a datagram of `len` bytes going to the pool; `false` when it does not fit.
    fn lend(&mut self, len: usize) -> bool {
        if !self.has_room(len) {
            return false;
        }
        self.working += 1;
        self.working_bytes += len;
        true
    }

    /// A datagram of `len` bytes came back from the pool.
    fn returned(&mut self, len: usize) {
        self.working = self.working.saturating_sub(1);
        self.working_bytes = self.working_bytes.saturating_sub(len);
    }

    fn pop(&mut self) {
        if let Some((_, reply)) = self.replies.pop_front() {
            self.bytes -= reply.len();
        }
    }

    fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }
}

struct Loop<'a> {
    ctx: &'a ServerContext,
    socket: UdpSocket,
    poll: Poll,
    responder: Responder,
    buf: Vec<u8>,
    owed: Owed,
    /// Edge-triggered state: set by events, cleared only by `WouldBlock`.
    readable: bool,
    writable: bool,
    /// `--offload`: this loop's port to the worker pool.
    offload: Option<OffloadPort<Request>>,
}

/// Serves datagrams from one edge-triggered loop until shutdown.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Before binding: a server that cannot start its workers never says it listens.
    let pool = ctx.start_offload::<Request>()?;
    let socket = listen.bind_udp()?;
    record_recv_buffer(&socket, &ctx.stats);
    socket.set_nonblocking(true)?;
    let poll = Poll::new()?;
    let fd = socket.as_raw_fd();
    poll.registry().register(
        &mut SourceFd(&fd),
        SOCKET,
        Interest::READABLE | Interest::WRITABLE,
    )?;
    let waker_fd = ctx.shutdown.waker().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&waker_fd), WAKER, Interest::READABLE)?;
    let offload = match &pool {
        Some(pool) => {
            let waker = mio::Waker::new(poll.registry(), OFFLOAD)?;
            Some(pool.port(move || {
                // A failed wake leaves the jobs for the next turn, which the next
                // datagram or the shutdown edge brings.
                let _ = waker.wake();
            }))
        }
        None => None,
    };
    let responder = Responder::new(&ctx.config);
    let mut lp = Loop {
        ctx,
        socket,
        poll,
        buf: responder.buffer(),
        responder,
        owed: Owed::default(),
        // Optimistic: a datagram may have arrived between the bind and the register.
        readable: true,
        writable: true,
        offload,
    };
    let result = lp.run();
    let _ = lp.poll.registry().deregister(&mut SourceFd(&waker_fd));
    lp.responder.fold_into(&ctx.stats);
    drop(lp);
    // The loop waited for every job it sent: this only joins the workers.
    if let Some(pool) = pool {
        pool.finish();
    }
    result
}

impl Loop<'_> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(8);
        loop {
            if self.ctx.shutdown.is_requested() {
                return self.finish(&mut events);
            }
            // Work left from the last turn (a capped receive, replies owed with room to
            // send them): look at events without waiting.
            let busy = self.readable || (self.writable && !self.owed.is_empty());
            self.wait(&mut events, busy.then_some(Duration::ZERO))?;
            self.flush_owed();
            self.take_offloaded();
            self.receive_some()?;
        }
    }

    /// One `epoll_wait`; folds the socket's edges into the flags.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() == SOCKET {
                // An error (an ICMP report) shows as both: the next call returns it.
                self.readable |= event.is_readable() || event.is_error();
                self.writable |= event.is_writable() || event.is_error();
            }
            // WAKER: the flag is what the loop reads. OFFLOAD: jobs are taken every turn.
        }
        tracing::trace!(
            events = events.iter().count(),
            readable = self.readable,
            writable = self.writable,
            owed = self.owed.replies.len(),
            ?timeout,
            "turn"
        );
        Ok(())
    }

    /// Receives until `WouldBlock`, at most [`RECVS_PER_TURN`] times, answering each.
    fn receive_some(&mut self) -> io::Result<()> {
        for _ in 0..RECVS_PER_TURN {
            if !self.readable {
                break;
            }
            let received = match recv_datagram(&self.socket, &mut self.buf) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) => {
                    self.responder.recv_failed(e)?;
                    continue;
                }
            };
            let Loop {
                socket,
                responder,
                buf,
                owed,
                writable,
                offload,
                ..
            } = self;
            let datagram = &buf[..received.len];
            let Some(port) = offload else {
                if let Some(reply) = responder.answer(datagram, received.truncated) {
                    send_or_owe(socket, responder, owed, writable, received.from, reply);
                }
                continue;
            };
            let Some(datagram) = responder.take_for_work(datagram, received.truncated) else {
                continue;
            };
            if !owed.lend(datagram.len()) {
                responder.record_queue_full();
                continue;
            }
            let request = Request {
                to: received.from,
                datagram,
            };
            if let Err(request) = port.submit(0, request) {
                // The pool finishes only after the loop: should it refuse anyway, the
                // reply goes without its work rather than not at all.
                owed.returned(request.datagram.len());
                if let Some(reply) = responder.answer_worked(&request.datagram) {
                    send_or_owe(socket, responder, owed, writable, request.to, reply);
                }
            }
        }
        Ok(())
    }

    /// `--offload`: sends the replies whose work came back (or queues them behind the
    /// replies owed).
    fn take_offloaded(&mut self) {
        let Loop {
            socket,
            responder,
            owed,
            writable,
            offload: Some(port),
            ..
        } = self
        else {
            return;
        };
        for (_, request) in port.completed() {
            owed.returned(request.datagram.len());
            if let Some(reply) = responder.answer_worked(&request.datagram) {
                send_or_owe(socket, responder, owed, writable, request.to, reply);
            }
        }
    }

    /// Sends what is owed, oldest first, until the queue is empty or `WouldBlock`.
    fn flush_owed(&mut self) {
        while self.writable {
            let Some((to, reply)) = self.owed.replies.front() else {
                break;
            };
            match self.socket.send_to(reply, *to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                sent => {
                    self.responder.record_send(&sent);
                    self.owed.pop();
                }
            }
        }
    }

    /// Shutdown: the replies owed first (they were received first), waiting for room
    /// up to [`DRAIN_TIME`]; then what the socket already holds.
    fn finish(&mut self, events: &mut Events) -> io::Result<()> {
        // The offloaded datagrams first: received before the signal, their replies are
        // owed like the rest. Every job comes back (a worker survives a panicking
        // handler) and wakes the loop if it has not been woken since it last took.
        loop {
            self.take_offloaded();
            if self.owed.working == 0 {
                break;
            }
            self.wait(events, None)?;
        }
        let until = Instant::now() + DRAIN_TIME;
        loop {
            self.flush_owed();
            let now = Instant::now();
            if self.owed.is_empty() || now >= until {
                break;
            }
            self.wait(events, Some(until - now))?;
        }
        while !self.owed.is_empty() {
            self.responder.record_queue_full();
            self.owed.pop();
        }
        drain(&self.socket, &mut self.responder, &mut self.buf)
    }
}

/// Sends `reply` to `to` now, or holds it behind the replies owed (counted as dropped
/// when they are full). Replies go out in the order they were made: while some are
/// owed, a new one queues behind them.
fn send_or_owe(
    socket: &UdpSocket,
    responder: &mut Responder,
    owed: &mut Owed,
    writable: &mut bool,
    to: SocketAddr,
    reply: std::borrow::Cow<'_, [u8]>,
) {
    if owed.is_empty() && *writable {
        match socket.send_to(&reply, to) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => *writable = false,
            sent => {
                responder.record_send(&sent);
                return;
            }
        }
    }
    if !owed.push(to, reply.into_owned()) {
        responder.record_queue_full();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owed_queue_is_bounded_in_count_and_bytes() {
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut owed = Owed::default();
        for _ in 0..OWED_LIMIT {
            assert!(owed.push(to, vec![0; 1]));
        }
        assert!(!owed.push(to, vec![0; 1]));
        owed.pop();
        assert!(owed.push(to, Vec::new()));
        let mut big = Owed::default();
        assert!(big.push(to, vec![0; OWED_BYTES]));
        assert!(!big.push(to, vec![0; 1]));
        big.pop();
        assert_eq!(big.bytes, 0);
        assert!(big.is_empty());
    }

    #[test]
    fn datagrams_at_work_count_against_the_same_bound() {
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut owed = Owed::default();
        for _ in 0..OWED_LIMIT - 1 {
            assert!(owed.lend(1));
        }
        assert!(owed.push(to, vec![0; 1]), "one place left");
        assert!(
            !owed.lend(1),
            "full: replies queued and datagrams at work together"
        );
        assert!(!owed.push(to, vec![0; 1]));
        owed.returned(1);
        assert!(owed.lend(1), "a job back frees its place");
        let mut big = Owed::default();
        assert!(big.lend(OWED_BYTES - 1));
        assert!(!big.push(to, vec![0; 2]), "bytes at work count too");
        big.returned(OWED_BYTES - 1);
        assert!(big.push(to, vec![0; 2]));
    }
}
