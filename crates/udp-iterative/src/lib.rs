//! # udp-iterative — one blocking socket, `recvfrom` / `sendto` in a loop
//!
//! The course's UDP echo server: bind one socket, then forever `recvfrom` (wait for a
//! datagram from anyone, learn who sent it) and `sendto` (answer that sender). There is
//! no `accept` and no connection: every client's datagrams arrive on the same socket,
//! each carrying its sender's address, so one thread serves every client in turn, one
//! datagram at a time — and, unlike the TCP `iterative`, no client can hold it: the
//! next datagram is served the moment this one is answered.
//!
//! **Syscalls.** None per client. Per datagram: one `recvmsg` (`recvfrom` with the
//! message flags, to see `MSG_TRUNC`) and one `sendto`. No readiness call.
//!
//! **Where it waits.** In `recvmsg`, on the one socket. Datagrams that arrive meanwhile
//! wait in the socket's receive buffer (sized by `net.core.rmem_default`).
//!
//! **What a client costs.** Nothing: no descriptor, no buffer, no state. A 64 KiB receive
//! buffer (one datagram's worth, the `--max-frame` limit) is reused for every datagram.
//!
//! **How it fails under load.** There is no backpressure in UDP: when datagrams arrive
//! faster than one thread answers them, the receive buffer fills and the kernel drops
//! the rest, silently (counted as `RcvbufErrors` in `/proc/net/snmp` and in the socket's
//! `drops` column of `/proc/net/udp`); clients see loss, not slowness. A datagram larger
//! than `--max-frame` comes back with `MSG_TRUNC` and is dropped and counted
//! (`datagrams.truncated` in the stats line), never echoed cut short.
//!
//! **Shutdown.** The blocked `recvmsg` is interrupted (`EINTR`) by the
//! [`echolab_server::Interrupter`], which wakes on the shutdown descriptor; the loop then
//! answers the datagrams already queued on the socket ([`echolab_server::drain`]) and
//! returns. At rest nothing wakes: no timer ticks.

#![forbid(unsafe_code)]

use std::io;

use echolab_server::{serve_datagrams, Interrupter, Listen, ServerContext};

/// Answers datagrams one after another until shutdown.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Started before the bind announces the server: every descriptor it opens exists
    // by the time a client (or the harness counting sockets) sees `listening on`.
    // The one thread blocks in `recvmsg`; the interrupter wakes it there on shutdown.
    let _interrupter = Interrupter::start(&ctx.shutdown, &ctx.blocked)?;
    let socket = listen.bind_udp()?;
    serve_datagrams(&socket, ctx)
}
