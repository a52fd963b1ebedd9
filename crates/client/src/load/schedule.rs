//! The open-loop schedule: a connection's k-th message is due at
//! `start + (k + phase) / rate`, whatever happened to the messages before it. Latency is
//! measured from that intended time, so a stalled server is charged for every message it
//! delayed, not only the one it was stuck on (no coordinated omission).

use std::time::{Duration, Instant};

/// Intended send times for one connection.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    start: Instant,
    interval: f64,
    phase: f64,
    next: u64,
}

impl Schedule {
    /// `rate` messages per second from `start`; `phase` (0..1 of an interval) staggers
    /// connections so they do not all send in the same instant.
    pub(crate) fn new(start: Instant, rate: f64, phase: f64) -> Schedule {
        Schedule {
            start,
            interval: 1.0 / rate,
            phase,
            next: 0,
        }
    }

    /// When the next message is due.
    pub(crate) fn next_due(&self) -> Instant {
        self.start + Duration::from_secs_f64((self.next as f64 + self.phase) * self.interval)
    }

    /// The next message has been sent (or dropped).
    pub(crate) fn advance(&mut self) {
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_the_rate_not_the_replies() {
        let start = Instant::now();
        let mut s = Schedule::new(start, 100.0, 0.5);
        assert_eq!(s.next_due() - start, Duration::from_millis(5));
        for _ in 0..10 {
            s.advance();
        }
        assert_eq!(s.next_due() - start, Duration::from_millis(105));
    }
}
