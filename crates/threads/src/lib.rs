//! # threads — one OS thread per client
//!
//! The accept loop hands each connection to a new thread, which runs the shared
//! blocking loop until the client leaves. Blocking code stays simple (the thread
//! sleeps in `read`), and the kernel scheduler provides the concurrency.
//!
//! **Syscalls.** Per connection: `poll` + `accept4` in the acceptor, then `mmap` (the
//! thread's stack), `mprotect` (its guard page), `clone3`, and at exit `munmap` and a
//! `futex` wake. Per message: one `read` and one `write`, as in `iterative` — but each
//! message also costs a context switch into the thread that owns the socket.
//!
//! **Where it waits.** Each thread in its own `read`; the acceptor in `poll`.
//!
//! **What a connection costs.** A thread: a 256 KiB stack reservation (touched pages
//! only, a few KiB resident), a kernel task struct, and a scheduler entry. Memory and
//! context switches grow linearly with clients, idle or not.
//!
//! **How it fails under load.** Thousands of mostly idle clients mean thousands of
//! threads: memory per connection, scheduler overhead and — past `ulimit -u` or
//! `--max-conns` — refused clients. Past `--max-conns`, framed clients get the
//! `server busy` notice; a failed `spawn` (out of threads) refuses the same way
//! instead of killing the server.
//!
//! **Shutdown.** The acceptor stops and the listening socket closes (a client
//! connecting during the drain is refused, not left in the backlog); the
//! [`echolab_server::Interrupter`] signals every connection thread until it leaves (a
//! blocked `read` returns `EINTR`), each sends what it owes, and all are joined before
//! `serve` returns. Until shutdown an idle thread sleeps with no timer: an idle client
//! costs no wake-ups, however many there are.

#![forbid(unsafe_code)]

use std::io;
use std::thread::{self, JoinHandle};

use echolab_server::{refuse_busy, serve_blocking, Acceptor, Interrupter, Listen, ServerContext};

/// Each thread needs little stack: the read buffer lives on the heap.
const THREAD_STACK: usize = 256 * 1024;

/// Serves each client on its own thread until shutdown, then joins them all.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    // Started before the bind announces the server: every descriptor it opens exists
    // by the time a client (or the harness counting sockets) sees `listening on`.
    // Wakes the connection threads blocked on idle clients when shutdown comes; until
    // then they sleep with no timer.
    let interrupter = Interrupter::start(&ctx.shutdown, &ctx.blocked)?;
    let listener = listen.bind()?;
    let acceptor = Acceptor::new(&listener, ctx)?;
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while let Some((stream, slot)) = acceptor.next() {
        threads.retain(|t| !t.is_finished());
        // Keep a handle on the socket: if the spawn fails the closure (and the stream
        // it owns) is gone, and the client must still be told.
        let refusal_handle = stream.try_clone();
        let thread_ctx = ctx.clone();
        let spawned = thread::Builder::new()
            .name("echolab-conn".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let _slot = slot;
                serve_blocking(stream, &thread_ctx);
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(_) => {
                if let Ok(stream) = refusal_handle {
                    refuse_busy(stream, ctx);
                }
            }
        }
    }
    // Close the listening socket before the drain: a client that connects now is
    // refused at once instead of waiting in the backlog to be reset at exit.
    drop(listener);
    for thread in threads {
        let _ = thread.join();
    }
    drop(interrupter);
    Ok(())
}
