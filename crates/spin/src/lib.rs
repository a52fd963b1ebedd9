//! # spin — non-blocking sockets and no readiness call at all
//!
//! The first idea a course's non-blocking lesson suggests (`setblocking(False)` and a
//! loop): make every socket non-blocking and keep trying each one in turn — `accept`
//! on the listener, `read` on every connection that wants input, `write` on every one
//! with output pending — and let `EAGAIN` say "not now". It answers every byte
//! correctly, and it never waits: the asking *is* the waiting, so it burns CPU in
//! proportion to the connections it holds, busy or idle. That is the lesson that led
//! to `select(2)`: ask the kernel once which descriptors can make progress, instead of
//! asking each descriptor.
//!
//! **The compromise.** A loop that truly never sleeps would take a whole core from the
//! clients on a 2-core machine and could starve them into timeouts. So after a turn
//! that moved no byte and accepted nothing, it yields the CPU (`sched_yield`) for
//! [`YIELDS_BEFORE_NAP`] turns, and after that naps [`NAP`] per idle turn. A client's
//! first message after a quiet spell may therefore wait up to one nap; under traffic it
//! never naps. The docs page measures what the compromise costs while idle.
//!
//! **Syscalls.** Per connection: `accept4`, `setsockopt(TCP_NODELAY)`, `close`. Per
//! turn, busy or idle: one `accept4` (mostly `EAGAIN`), one `read` per connection that
//! wants input (mostly `EAGAIN`), one `write` per connection with output, and a
//! `sched_yield` or `nanosleep` when the turn found nothing. Per message: whatever turns
//! pass until it is read, then one `read` and one `write`.
//!
//! **Where it waits.** Nowhere in the kernel's readiness machinery; in `sched_yield`
//! and `nanosleep` only when idle.
//!
//! **What a connection costs.** A descriptor and a session, plus one failed `read` per
//! turn for as long as it is open — the cost the idle-CPU figure shows.
//!
//! **How it fails under load.** Every turn walks every connection, so with many idle
//! clients a busy one waits behind thousands of failed reads; CPU is spent whether or
//! not anyone talks. Everything else (deadlines, backpressure, shutdown) is the shared
//! level-triggered loop ([`echolab_server::serve_level`]): to it, this waiter reports
//! every descriptor as ready on every turn.

#![forbid(unsafe_code)]

use std::io;
use std::time::Duration;

use echolab_server::{serve_level, ListWaiter, Listen, Ready, ServerContext, WatchList};

/// Idle turns that only yield the CPU before the loop starts to nap.
pub const YIELDS_BEFORE_NAP: u32 = 16;
/// How long an idle turn naps once yielding found nothing to do.
pub const NAP: Duration = Duration::from_micros(200);

/// Serves every client from one thread by trying every socket in turn until shutdown,
/// then lets every session finish and returns.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    serve_level(listen, ctx, Spin::default())
}

#[derive(Debug, Default)]
struct Spin {
    watched: WatchList,
    idle_turns: u32,
}

impl ListWaiter for Spin {
    fn list(&mut self) -> &mut WatchList {
        &mut self.watched
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        idle: bool,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        if idle {
            self.idle_turns = self.idle_turns.saturating_add(1);
            if self.idle_turns <= YIELDS_BEFORE_NAP {
                std::thread::yield_now();
            } else {
                std::thread::sleep(timeout.map_or(NAP, |t| t.min(NAP)));
            }
        } else {
            self.idle_turns = 0;
        }
        // No question asked: everything is "ready", and `EAGAIN` answers for it.
        ready.extend(self.watched.entries().iter().map(|watched| Ready {
            source: watched.source,
            readable: watched.interest.readable,
            writable: watched.interest.writable,
        }));
        Ok(())
    }
}
