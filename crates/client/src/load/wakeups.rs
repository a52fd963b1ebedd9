//! The clock side of the event loop, built so 10 or 10,000 connections cost the loop
//! the same: a queue of (time, connection) wake-ups ordered by time, so each wake looks
//! only at the connections that are due (an open-loop send, a churn retry) instead of
//! scanning them all; and a timerfd alarm, so the loop wakes when the first one is due
//! to the microsecond. `epoll_wait` alone counts its timeout in whole milliseconds
//! (mio rounds up), which made every open-loop message up to 1 ms late and charged
//! that lateness to the server as latency.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// The alarm's token: connections use their index, which never reaches this.
pub(crate) const ALARM: Token = Token(usize::MAX);

/// How often the loop wakes with nothing to do, to check reply timeouts and the clock.
pub(super) const TICK: Duration = Duration::from_millis(50);

pub(crate) struct Wakeups {
    queue: BinaryHeap<Reverse<(Instant, usize)>>,
    alarm: TimerFd,
    armed_for: Option<Instant>,
}

impl Wakeups {
    /// An empty queue, and its alarm registered with the thread's poller as `ALARM`.
    pub(crate) fn new(registry: &Registry) -> io::Result<Wakeups> {
        let alarm = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        registry.register(
            &mut SourceFd(&alarm.as_fd().as_raw_fd()),
            ALARM,
            Interest::READABLE,
        )?;
        Ok(Wakeups {
            queue: BinaryHeap::new(),
            alarm,
            armed_for: None,
        })
    }

    /// When the loop must wake next: the earliest wake-up queued (the alarm is set for
    /// it, to the microsecond), at most one tick away (reply timeouts and the clock are
    /// checked on every wake), and no later than `end`.
    pub(crate) fn next_wake(&mut self, now: Instant, end: Instant) -> io::Result<Instant> {
        let tick = (now + TICK).min(end);
        match self.next() {
            Some(due) if due <= now => Ok(now),
            Some(due) if due < tick => {
                self.arm(due, now)?;
                Ok(due)
            }
            _ => Ok(tick),
        }
    }

    /// Wake for connection `conn` at `at`.
    pub(crate) fn at(&mut self, at: Instant, conn: usize) {
        self.queue.push(Reverse((at, conn)));
    }

    /// The earliest wake-up queued.
    fn next(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the next connection due by `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        match self.queue.peek() {
            Some(Reverse((at, _))) if *at <= now => self.queue.pop().map(|Reverse((_, c))| c),
            _ => None,
        }
    }

    /// Sets the alarm to go off at `at` (one `timerfd_settime`, skipped when it is already
    /// set for that instant). The expiry is never read back: the poller is
    /// edge-triggered, so each expiry raises its own event, and re-arming clears the count.
    fn arm(&mut self, at: Instant, now: Instant) -> io::Result<()> {
        if self.armed_for == Some(at) {
            return Ok(());
        }
        // A zero expiry would disarm the timer rather than fire it at once.
        let after = at
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        self.alarm.set(
            Expiration::OneShot(TimeSpec::from_duration(after)),
            TimerSetTimeFlags::empty(),
        )?;
        self.armed_for = Some(at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_come_due_in_time_order() {
        let poll = mio::Poll::new().unwrap();
        let mut wakeups = Wakeups::new(poll.registry()).unwrap();
        let t0 = Instant::now();
        wakeups.at(t0 + Duration::from_millis(3), 7);
        wakeups.at(t0 + Duration::from_millis(1), 2);
        wakeups.at(t0 + Duration::from_millis(2), 5);
        assert_eq!(wakeups.next(), Some(t0 + Duration::from_millis(1)));
        assert_eq!(wakeups.pop_due(t0), None);
        let later = t0 + Duration::from_millis(2);
        assert_eq!(wakeups.pop_due(later), Some(2));
        assert_eq!(wakeups.pop_due(later), Some(5));
        assert_eq!(wakeups.pop_due(later), None);
        assert_eq!(wakeups.next(), Some(t0 + Duration::from_millis(3)));
    }

    #[test]
    fn the_alarm_wakes_the_poller_sooner_than_a_millisecond() {
        let mut poll = mio::Poll::new().unwrap();
        let mut wakeups = Wakeups::new(poll.registry()).unwrap();
        let mut events = mio::Events::with_capacity(4);
        // Several tries: a loaded machine may deschedule this thread once, not every time.
        let best = (0..20)
            .map(|_| {
                let start = Instant::now();
                wakeups
                    .arm(start + Duration::from_micros(200), start)
                    .unwrap();
                poll.poll(&mut events, Some(Duration::from_secs(2)))
                    .unwrap();
                assert!(events.iter().any(|e| e.token() == ALARM));
                start.elapsed()
            })
            .min()
            .unwrap();
        assert!(best >= Duration::from_micros(200), "{best:?}");
        assert!(best < Duration::from_micros(900), "{best:?}");
    }
}
