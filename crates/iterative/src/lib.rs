//! # iterative — one client at a time
//!
//! The first server in every sockets course: `accept`, serve that client until it
//! leaves, `accept` the next. There is no concurrency at all, which makes it the
//! baseline every other model is measured against.
//!
//! **Syscalls.** Per connection: `poll` (listener + shutdown pipe), `accept4`, three
//! `setsockopt`s (`TCP_NODELAY`, receive and send timeouts), `close`. Per message: one
//! `read` and one `write` — the cheapest possible, and the reason this model has the
//! best single-client latency.
//!
//! **Where it waits.** In `read` on the one client. Every other client waits in the
//! kernel's accept queue (the listen backlog): connected as far as TCP is concerned,
//! but not served.
//!
//! **What a connection costs.** Nothing extra: one socket and a 64 KiB read buffer,
//! reused.
//!
//! **How it fails under load.** Head-of-line blocking: a second client is not served
//! until the first one leaves, so with N clients the fairness index collapses to
//! about 1/N. A silent client would hold the server forever; `--idle-timeout` is
//! what frees it, and that bounded failure is what the tests assert.
//!
//! **Shutdown.** The accept `poll` wakes on the shutdown pipe; a client being served is
//! woken by the [`echolab_server::Interrupter`] (its blocked `read` returns `EINTR`),
//! gets its buffered replies, and is closed. Clients still in the backlog are never
//! served. At rest nothing wakes: no timer ticks.

#![forbid(unsafe_code)]

use std::io;

use echolab_server::{serve_blocking, Acceptor, Interrupter, Listen, ServerContext};

/// Serves clients one after another until shutdown.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Started before the bind announces the server: every descriptor it opens exists
    // by the time a client (or the harness counting sockets) sees `listening on`.
    // The one thread is either in the accept `poll` (which the shutdown pipe wakes) or
    // blocked on its client; the interrupter wakes it there.
    let _interrupter = Interrupter::start(&ctx.shutdown, &ctx.blocked)?;
    let listener = listen.bind()?;
    let acceptor = Acceptor::new(&listener, ctx)?;
    // With one client at a time the slot only matters for `--max-conns 0`.
    while let Some((stream, _slot)) = acceptor.next() {
        serve_blocking(stream, ctx);
    }
    Ok(())
}
