//! # udp-batch — `recvmmsg` / `sendmmsg`, a batch of datagrams per call
//!
//! For small datagrams the cost of a UDP server is the syscall, not the bytes: each
//! `recvfrom` and `sendto` enters and leaves the kernel to move 64 bytes. Linux's
//! `recvmmsg(2)` fills up to [`BATCH`] buffers in one call (each with its sender and its
//! own flags), and `sendmmsg(2)` sends up to that many replies, each to its own address,
//! in one call. With `MSG_WAITFORONE` the receive blocks only for the first datagram and
//! then takes whatever else is already queued, so a quiet server answers each datagram
//! at once and a busy one answers them in batches.
//!
//! **Syscalls.** Per batch of k datagrams: one `recvmmsg` and one `sendmmsg`, so 2/k
//! per datagram — 2 when the load is light (k = 1, the same as `udp-iterative`), far
//! fewer under a flood of small datagrams. No readiness call.
//!
//! **Where it waits.** In `recvmmsg`, on the one socket, for the first datagram.
//!
//! **What a client costs.** Nothing; the model holds [`BATCH`] receive buffers of one
//! datagram each (`--max-frame`, at most 64 KiB: 2 MiB at the default).
//!
//! **How it fails under load.** As `udp-iterative` — one thread, and beyond it the kernel
//! drops datagrams from the full receive buffer (`RcvbufErrors`) — only later, since it
//! spends fewer syscalls per datagram. A datagram cut short (`MSG_TRUNC` in its own
//! message flags) is dropped and counted; the rest of its batch is answered. If
//! `sendmmsg` stops partway (an error on one reply), the rest are sent again from the
//! one that failed, which is counted and skipped.
//!
//! **Shutdown.** As `udp-iterative`: the blocked `recvmmsg` is interrupted (`EINTR`) by
//! the [`echolab_server::Interrupter`]; the loop answers, batch by batch, what the
//! socket already holds, and returns.

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use echolab_server::{
    record_recv_buffer, socket_addr, Interrupter, Listen, Responder, ServerContext, DRAIN_LIMIT,
    DRAIN_TIME, NO_DEADLINE_WAIT, SEND_WAIT,
};
use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

/// Datagrams per `recvmmsg` / `sendmmsg` call at most.
pub const BATCH: usize = 32;

/// One received datagram of a batch: its length, its sender, whether it was cut short.
type Got = (usize, Option<SockaddrStorage>, bool);

/// The buffers and the kernel's message headers, allocated once.
struct Batch {
    bufs: Vec<Vec<u8>>,
    recv_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
    got: Vec<Got>,
}

/// Serves datagrams a batch at a time until shutdown.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Started before the bind announces the server: every descriptor it opens exists
    // by the time a client (or the harness counting sockets) sees `listening on`.
    let _interrupter = Interrupter::start(&ctx.shutdown, &ctx.blocked)?;
    let socket = listen.bind_udp()?;
    record_recv_buffer(&socket, &ctx.stats);
    // The receive timeout makes a blocked `recvmmsg` return `EINTR` on the interrupter's
    // signal; at rest it never expires.
    socket.set_read_timeout(Some(NO_DEADLINE_WAIT))?;
    socket.set_write_timeout(Some(SEND_WAIT))?;
    let _registration = ctx.blocked.register();
    let mut responder = Responder::new(&ctx.config);
    let mut batch = Batch {
        bufs: (0..BATCH).map(|_| responder.buffer()).collect(),
        recv_headers: MultiHeaders::preallocate(BATCH, None),
        send_headers: MultiHeaders::preallocate(BATCH, None),
        got: Vec::with_capacity(BATCH),
    };
    let result = run(&socket, ctx, &mut responder, &mut batch);
    responder.fold_into(&ctx.stats);
    result
}

fn run(
    socket: &UdpSocket,
    ctx: &ServerContext,
    responder: &mut Responder,
    batch: &mut Batch,
) -> io::Result<()> {
    let fd = socket.as_raw_fd();
    while !ctx.shutdown.is_requested() {
        match batch.receive(fd, MsgFlags::MSG_WAITFORONE) {
            Ok(()) => batch.answer(fd, responder),
            Err(e) => responder.recv_failed(e)?,
        }
    }
    // Shutdown: what the socket already holds, without waiting for more.
    let until = Instant::now() + DRAIN_TIME;
    let mut answered = 0;
    while answered < DRAIN_LIMIT && Instant::now() < until {
        match batch.receive(fd, MsgFlags::MSG_DONTWAIT) {
            Ok(()) => {
                answered += batch.got.len() as u64;
                batch.answer(fd, responder);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => responder.recv_failed(e)?,
        }
    }
    Ok(())
}

impl Batch {
    /// One `recvmmsg` into every buffer: at least one datagram (`MSG_WAITFORONE`: then
    /// only those already queued) or an error. `got` lists what came.
    fn receive(&mut self, fd: RawFd, flags: MsgFlags) -> io::Result<()> {
        self.got.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|buf| [IoSliceMut::new(buf)])
            .collect();
        let received = recvmmsg(fd, &mut self.recv_headers, slices.iter_mut(), flags, None)?;
        for msg in received {
            let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
            // `RUST_LOG=trace`: one line per datagram, as the other udp models.
            tracing::trace!(
                from = %msg
                    .address
                    .as_ref()
                    .and_then(socket_addr)
                    .map_or_else(|| "?".to_string(), |a| a.to_string()),
                len = msg.bytes,
                truncated,
                "datagram"
            );
            self.got.push((msg.bytes, msg.address, truncated));
        }
        tracing::trace!(datagrams = self.got.len(), "batch");
        Ok(())
    }

    /// Answers the batch in `got`: the replies of every datagram not dropped, sent with
    /// as few `sendmmsg` calls as the kernel allows (one, unless a reply fails).
    fn answer(&mut self, fd: RawFd, responder: &mut Responder) {
        let mut replies: Vec<Cow<'_, [u8]>> = Vec::with_capacity(self.got.len());
        let mut addrs: Vec<Option<SockaddrStorage>> = Vec::with_capacity(self.got.len());
        for (buf, &(len, from, truncated)) in self.bufs.iter().zip(&self.got) {
            // `len` is the datagram's bytes in the buffer, never more than the buffer.
            let datagram = &buf[..len.min(buf.len())];
            if let Some(reply) = responder.answer(datagram, truncated) {
                replies.push(reply);
                addrs.push(from);
            }
        }
        let slices: Vec<[IoSlice<'_>; 1]> = replies.iter().map(|r| [IoSlice::new(r)]).collect();
        let mut from = 0;
        // Each call sends at least one reply or fails on one, so this ends.
        while from < slices.len() {
            let sent = sendmmsg(
                fd,
                &mut self.send_headers,
                &slices[from..],
                &addrs[from..],
                [] as [ControlMessage<'_>; 0],
                MsgFlags::empty(),
            );
            match sent {
                Ok(results) => {
                    let before = from;
                    for msg in results {
                        responder.record_send(&Ok(msg.bytes));
                        from += 1;
                    }
                    if from == before {
                        // Nothing sent and no error: do not spin; count the one in front.
                        responder.record_send(&Err(io::Error::from(Errno::EIO)));
                        from += 1;
                    }
                }
                Err(errno) => {
                    responder.record_send(&Err(io::Error::from(errno)));
                    from += 1;
                }
            }
        }
    }
}
