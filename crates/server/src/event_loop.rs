//! The turn every one-thread event loop takes, whatever it waits in (epoll through
//! `mio`, a level-triggered [`crate::Waiter`], io_uring completions). Its order is the
//! invariant: the shutdown drain begins as soon as it is asked for and before the next
//! wait; the loop returns only once the drain has begun and no connection is left; and
//! every wait is followed by the sweep of sessions whose deadline passed, at the turn's
//! one clock reading. A loop implements [`EventLoop`] for how it waits and what it does
//! with a connection; [`run_event_loop`] keeps the order.

use std::io;
use std::time::Instant;

use crate::Conns;

/// What a one-thread loop supplies to [`run_event_loop`].
pub trait EventLoop {
    /// What the loop keeps per connection (see [`crate::Conn`]).
    type Wait;

    /// The loop's connections (which also hold whether the drain has begun).
    fn conns(&mut self) -> &mut Conns<Self::Wait>;

    /// Shutdown was asked for: stop listening and tell every session, which then owes
    /// its replies and a notice. Called once, after [`Conns::begin_draining`] (a loop
    /// that sees the shutdown descriptor among its events calls both itself).
    fn begin_shutdown(&mut self) -> io::Result<()>;

    /// Draining with no connection left: whether the loop may return now. A loop that
    /// lent the kernel buffers waits (bounded) for their last completions first.
    fn drained(&mut self) -> bool {
        true
    }

    /// Waits once (up to the earliest deadline) and does what the wait reported;
    /// returns the turn's clock reading, which every deadline of the turn is set from.
    fn wait_and_serve(&mut self) -> io::Result<Instant>;

    /// The session at `index` has been told its deadline passed: write what it owes
    /// and settle it.
    fn expired(&mut self, index: usize, now: Instant) -> io::Result<()>;
}

/// Runs `lp` turn after turn until shutdown has drained every connection.
pub fn run_event_loop(lp: &mut impl EventLoop) -> io::Result<()> {
    loop {
        if lp.conns().drain_due() {
            lp.conns().begin_draining();
            lp.begin_shutdown()?;
        }
        if lp.conns().is_draining() && lp.conns().is_empty() && lp.drained() {
            return Ok(());
        }
        let now = lp.wait_and_serve()?;
        while let Some(index) = lp.conns().next_expired(now) {
            lp.expired(index, now)?;
        }
    }
}
