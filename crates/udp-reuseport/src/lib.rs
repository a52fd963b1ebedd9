//! # udp-reuseport — one socket per CPU, a thread each
//!
//! `udp-iterative` answers on one thread, so one core is its ceiling. Several threads
//! calling `recvfrom` on the *same* socket would share that socket's one receive queue
//! (and its lock); instead each thread binds its own socket to the same port with
//! `SO_REUSEPORT`, and the kernel spreads datagrams over the sockets by a hash of the
//! sender's address and port. One client's datagrams therefore always land on the same
//! socket, in order; many clients spread over all of them. `--workers` sets the number
//! of sockets and threads (default: one per CPU).
//!
//! This is the only sense in which a UDP server runs "a thread per client" — and it is
//! not per client: there is no connection to hand a thread, so threads are per socket,
//! a fixed set, whatever the number of clients.
//!
//! **Syscalls.** Per datagram, as `udp-iterative`: one `recvmsg`, one `sendto`, on the
//! thread whose socket the hash chose. Per worker, once: `socket`, `setsockopt
//! (SO_REUSEPORT)`, `bind`, a thread.
//!
//! **Where it waits.** Each thread in `recvmsg` on its own socket.
//!
//! **What a client costs.** Nothing, as for every datagram model; each worker holds its
//! own 64 KiB buffer and its socket's receive buffer.
//!
//! **How it fails under load.** As `udp-iterative`, per socket: the hash does not
//! balance load, it balances senders — a few heavy clients may share a socket while
//! another idles, and that socket's buffer overflows (kernel drops, `RcvbufErrors`)
//! while the others have room. With many clients it scales with cores.
//!
//! **Shutdown.** The [`echolab_server::Interrupter`] interrupts every blocked `recvmsg`;
//! each thread answers what its socket already holds and returns; the model returns
//! when all have.

#![forbid(unsafe_code)]

use std::io;

use echolab_server::{serve_datagrams, serve_each_socket, Interrupter, Listen, ServerContext};

/// Serves datagrams on one `SO_REUSEPORT` socket per worker, a thread each, until
/// shutdown. A socket whose thread cannot start is closed before the port is announced
/// (the kernel hashes nobody to it); a worker that fails while serving stops them all
/// (a model that silently lost a socket would drop its clients' share).
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Started before the server is announced: every descriptor it opens exists by the
    // time a client (or the harness counting sockets) sees `listening on`.
    let _interrupter = Interrupter::start(&ctx.shutdown, &ctx.blocked)?;
    let sockets = listen.bind_udp_reuse_port_unannounced(ctx.config.worker_count())?;
    let port = match sockets.first() {
        Some(first) => first.local_addr()?,
        None => return Ok(()),
    };
    serve_each_socket(
        sockets,
        ctx,
        "udp-reuseport",
        || listen.announce_bound(port),
        |socket, ctx, set_up| {
            // Nothing to set up: a blocking socket needs no more descriptors.
            set_up.done()?;
            serve_datagrams(&socket, ctx)
        },
    )
}
