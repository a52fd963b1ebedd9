//! # reactors — one edge-triggered loop per CPU, each with its own listener
//!
//! `mio`'s loop, N times over: `--workers N` threads (default one per CPU), each running
//! [`echolab_mio::serve_on`] on a listening socket of its own. All N listeners are bound
//! to the same port with `SO_REUSEPORT` ([`Listen::bind_reuse_port_unannounced`]: the
//! port is announced once every loop runs), and the kernel, not the server, decides
//! which loop gets a new connection. No connection is shared between the loops — no
//! queue, no hand-off of sockets; the only shared state is the server's counters
//! (atomics, and a lock per accept for the per-loop count) — so each connection lives
//! and dies on the thread that accepted it. This is the shape of nginx's workers (with
//! `reuseport`), envoy's worker threads and seastar's shards.
//!
//! **Who gets a connection.** For TCP the kernel picks the listener from a hash of the
//! connection's 4-tuple (source and destination address and port, with a per-boot
//! secret), scaled onto the group's listeners: the same client port always lands on the
//! same loop, and the spread is only as even as the hash — a coin toss per connection.
//! With 100 connections over 2 loops the split is binomial: 50/50 on average, but 45/55
//! or worse about one time in three. The loops never rebalance: a loop that drew more
//! (or busier) connections stays busier for their whole lives, while its neighbour may
//! idle. The stats line's `accepted_per_worker` shows each loop's count (measured
//! splits: `docs/models/reactors.md`).
//!
//! **A listener that closes takes its queue with it.** Connections the kernel already
//! completed into one listener's accept queue belong to that listener: when it closes
//! (shutdown, or a loop that failed), they are reset, not handed to a sibling
//! (`net.ipv4.tcp_migrate_req=1`, off by default, would migrate them). New connections
//! are then hashed over the listeners that remain. Both are the kernel's behaviour; no test
//! here exercises them.
//!
//! **Syscalls.** Exactly `mio`'s, per loop: per connection `accept4`,
//! `setsockopt(TCP_NODELAY)`, `epoll_ctl(ADD)`, and at the end `epoll_ctl(DEL)` +
//! `close`; per message one `recvfrom`, one `sendto`, and one `epoll_wait` shared by
//! everything ready. Nothing crosses threads: no futex, no wake-up of another loop. But
//! each loop sees only its share of the ready connections, so under the same load it
//! runs dry and waits more often than one loop would: more `epoll_wait`s per message
//! than `mio`, and so more server CPU per response (measured: `docs/models/reactors.md`).
//!
//! **Where it waits.** Each loop in its own `epoll_wait`, over its own listener, its
//! own connections and the shared shutdown descriptor.
//!
//! **What a connection costs.** As in `mio`: a descriptor, a `Session` and a slab slot
//! in its loop. Each loop adds a thread (its stack, mostly untouched), an epoll
//! instance, a listener and one 64 KiB read buffer.
//!
//! **How it fails under load.** N cores instead of one — if the connections are spread
//! over the loops, and if the cores are free: on a machine whose cores the load
//! generator shares, the extra loop mostly competes with the client (measured against
//! `mio`: `docs/models/reactors.md`). Nothing moves a connection off a busy
//! loop, so a hot loop's clients wait while another core idles: the imbalance is the
//! price of sharing nothing. Out of descriptors, each loop backs off on its own (the
//! descriptor table is the process's).
//! A loop thread that cannot be started (process limit), or cannot open its epoll
//! instance (out of descriptors), is simply absent: its listener is closed before the
//! port is announced — which waits for every loop's set-up — and the kernel hashes over
//! the others; a loop that fails while serving stops every loop
//! ([`echolab_server::serve_each_socket`]).
//!
//! **Shutdown.** Every loop waits on the same shutdown descriptor, so SIGTERM wakes all
//! of them: each closes its own listener and drains its own connections, exactly as
//! `mio` does; `serve` returns once every loop has finished.

#![forbid(unsafe_code)]

use std::io;

use echolab_server::{serve_each_socket, Listen, ServerContext};

/// Serves on `ctx.config.worker_count()` edge-triggered loops, one per `SO_REUSEPORT`
/// listener, until shutdown; returns when every loop has drained. The calling thread
/// is loop 0; the port is announced once every loop runs.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    let listeners = listen.bind_reuse_port_unannounced(ctx.config.worker_count())?;
    let port = match listeners.first() {
        Some(first) => first.local_addr()?,
        None => return Ok(()),
    };
    // `--offload`: one pool for every loop, each loop with its own port to it.
    let pool = ctx.start_offload()?;
    let result = serve_each_socket(
        listeners,
        ctx,
        "echolab-loop",
        || listen.announce_bound(port),
        |listener, ctx, set_up| {
            echolab_mio::serve_on(listener, ctx, pool.as_ref(), || set_up.done())
        },
    );
    if let Some(pool) = pool {
        pool.finish();
    }
    result
}
