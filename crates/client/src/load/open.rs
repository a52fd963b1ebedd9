//! The open loop's side of the event loop: sending what is due, waking in time for the
//! next due message, and charging unanswered messages for their wait.

use std::time::Instant;

use super::engine::{record, Worker, TICK};
use super::Mode;

/// Messages one connection may have unanswered before further due messages are dropped
/// (and counted as `backlog` errors) instead of queueing without bound.
pub(super) const MAX_IN_FLIGHT: usize = 1024;

impl Worker<'_> {
    /// When the loop must wake next: the earliest due message or churn retry, at most
    /// one tick away (reply timeouts and the clock are checked on every wake).
    pub(super) fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + TICK;
        for c in &self.conns {
            // A connection still in its handshake sends nothing yet: waking for its
            // overdue schedule would spin.
            if let Some(schedule) = c.schedule.as_ref().filter(|_| c.open && !c.awaiting_nonce) {
                wake = wake.min(schedule.next_due());
            }
            if let Some(at) = c.retry_at {
                wake = wake.min(at);
            }
        }
        wake
    }

    /// Work driven by the clock rather than by I/O: due sends and churn retries.
    pub(super) fn on_tick(&mut self, now: Instant) {
        match self.mode {
            Mode::Open(_) => {
                for conn in 0..self.conns.len() {
                    let c = &self.conns[conn];
                    if c.open && !c.awaiting_nonce {
                        self.fill_pipeline(conn);
                    }
                }
            }
            Mode::Churn => self.retry_due(now),
            Mode::Closed => {}
        }
    }

    /// A message still unanswered when the run ends waited at least from its due (open
    /// loop) or send (closed loop, churn) time until the end; leaving it out would hide
    /// exactly the stalls the percentiles exist to show (coordinated omission in the open
    /// loop; a client starved for the whole run behind an `iterative` server in the
    /// closed loop, whose one message would otherwise never appear at all).
    pub(super) fn record_unanswered(&mut self) {
        let end = self.phases.end;
        for c in &self.conns {
            for (_, due) in &c.in_flight {
                record(&mut self.histogram, end.saturating_duration_since(*due));
            }
        }
    }
}
