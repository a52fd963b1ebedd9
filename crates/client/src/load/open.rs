//! The open loop's side of the event loop: sending what is due, waking in time for the
//! next due message, and charging unanswered messages for their wait.

use std::io;
use std::time::Instant;

use super::engine::{record_waits, Worker, TICK};
use super::Mode;

/// Messages one connection may have unanswered before further due messages are dropped
/// (and counted as `backlog` errors) instead of queueing without bound.
pub(super) const MAX_IN_FLIGHT: usize = 1024;

impl Worker<'_> {
    /// When the loop must wake next: the earliest open-loop send or churn retry (the
    /// alarm is set for it, to the microsecond), at most one tick away (reply timeouts
    /// and the clock are checked on every wake), and no later than the end.
    pub(super) fn wait_until(&mut self, now: Instant) -> io::Result<Instant> {
        let tick = (now + TICK).min(self.phases.end);
        match self.wakeups.next() {
            Some(due) if due <= now => Ok(now),
            Some(due) if due < tick => {
                self.wakeups.arm(due, now)?;
                Ok(due)
            }
            _ => Ok(tick),
        }
    }

    /// Work driven by the clock rather than by I/O, for the connections now due: sends
    /// (open loop) and reconnects (churn).
    pub(super) fn on_clock(&mut self, now: Instant) {
        while let Some(conn) = self.wakeups.pop_due(now) {
            match self.mode {
                Mode::Open(_) => {
                    let c = &mut self.conns[conn];
                    c.wake_queued = false;
                    // A connection that failed sends no more; one still in its handshake
                    // is queued again once the challenge is answered.
                    if c.open && !c.awaiting_nonce {
                        self.fill_pipeline(conn, now);
                    }
                }
                Mode::Churn => self.retry_if_due(conn, now),
                Mode::Closed => {}
            }
        }
    }

    /// A message still unanswered when the run ends waited at least from its due (open
    /// loop) or send (closed loop, churn) time until the end; leaving it out would hide
    /// exactly the stalls the percentiles exist to show (coordinated omission in the open
    /// loop; a client starved for the whole run behind an `iterative` server in the
    /// closed loop, whose one message would otherwise never appear at all).
    /// A connection that failed is counted among the errors instead (a timed-out one
    /// was charged when it timed out): its messages met an error, not a slow server.
    pub(super) fn record_unanswered(&mut self) {
        let end = self.phases.end;
        for c in self.conns.iter().filter(|c| c.open) {
            record_waits(&mut self.histogram, &c.in_flight, end);
        }
    }
}
