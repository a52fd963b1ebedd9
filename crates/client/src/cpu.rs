//! A generator thread's own CPU time over the measured window (`RUSAGE_THREAD`), so a
//! user can see when the generator, not the server, is the limit. Both load generators
//! (TCP and UDP) take it the same way.

use std::time::{Duration, Instant};

/// Two readings of the calling thread's CPU time: the first once the window has begun,
/// the second once it has ended.
#[derive(Debug)]
pub(crate) struct ThreadCpu {
    measure_from: Instant,
    end: Instant,
    at_start: Option<(Duration, Duration)>,
    at_end: Option<(Duration, Duration)>,
}

impl ThreadCpu {
    /// For a window from `measure_from` to `end`.
    pub(crate) fn new(measure_from: Instant, end: Instant) -> ThreadCpu {
        ThreadCpu {
            measure_from,
            end,
            at_start: None,
            at_end: None,
        }
    }

    /// Called on every turn of the thread's loop: reads the clock the first time `now`
    /// is past each edge of the window.
    pub(crate) fn observe(&mut self, now: Instant) {
        if self.at_start.is_none() && now >= self.measure_from {
            self.at_start = thread_cpu();
        }
        if self.at_end.is_none() && now >= self.end {
            self.at_end = thread_cpu();
        }
    }

    /// (user, system) spent in the window; zero if it was not seen.
    pub(crate) fn window(&self) -> (Duration, Duration) {
        match (self.at_start, self.at_end) {
            (Some((u0, s0)), Some((u1, s1))) => (u1.saturating_sub(u0), s1.saturating_sub(s0)),
            _ => (Duration::ZERO, Duration::ZERO),
        }
    }
}

fn thread_cpu() -> Option<(Duration, Duration)> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_THREAD).ok()?;
    let duration = |t: nix::sys::time::TimeVal| {
        Duration::from_micros((t.tv_sec() as u64) * 1_000_000 + t.tv_usec() as u64)
    };
    Some((duration(usage.user_time()), duration(usage.system_time())))
}
