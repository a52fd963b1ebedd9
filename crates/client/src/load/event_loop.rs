//! One generator thread: a mio event loop over its share of the connections, from the
//! start of the run to its end.

use std::io;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

use super::config::{LoadConfig, Phases};
use super::receive::Receiver;
use super::tally::Tally;
use super::wakeups::ALARM;
use super::worker::Worker;

/// Runs connections `ids` until the end and returns what they measured. Errors are the
/// poller's; a connection's own failures are counted, not returned.
pub(super) fn run(
    config: &LoadConfig,
    ids: &[u32],
    phases: &Phases,
    start: Instant,
    progress: &AtomicU64,
) -> io::Result<Tally> {
    let mut poll = Poll::new()?;
    let mut worker = Worker::new(config, phases, poll.registry(), start)?;
    let mut receiver = Receiver::new(config, phases, progress);
    for &id in ids {
        worker.add(id, start)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut cpu = ThreadCpu::default();
    loop {
        let now = Instant::now();
        cpu.observe(now, phases);
        if now >= phases.end && (worker.nothing_owed() || now >= phases.collect_until) {
            break;
        }
        let timeout = if receiver.pending() {
            Duration::ZERO
        } else if now >= phases.end {
            // Collecting what is owed: only replies can come.
            phases.collect_until.saturating_duration_since(now)
        } else {
            worker.next_wake(now)?.saturating_duration_since(now)
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            // The alarm only wakes the loop; `on_clock` does what fell due.
            if event.token() == ALARM {
                continue;
            }
            let conn = event.token().0;
            let ended = event.is_read_closed() || event.is_error();
            if event.is_readable() || ended {
                receiver.on_readable(&mut worker, conn, ended);
            }
            worker.flush(conn);
        }
        receiver.read_unread(&mut worker);
        worker.on_clock(Instant::now());
    }
    cpu.observe(phases.end.max(Instant::now()), phases);
    let mut tally = worker.finish();
    tally.cpu = cpu.window();
    Ok(tally)
}

/// This thread's own CPU time over the measured window (`RUSAGE_THREAD`), so a user
/// can see when the generator, not the server, is the limit.
#[derive(Debug, Default)]
struct ThreadCpu {
    at_start: Option<(Duration, Duration)>,
    at_end: Option<(Duration, Duration)>,
}

impl ThreadCpu {
    fn observe(&mut self, now: Instant, phases: &Phases) {
        if self.at_start.is_none() && now >= phases.measure_from {
            self.at_start = thread_cpu();
        }
        if self.at_end.is_none() && now >= phases.end {
            self.at_end = thread_cpu();
        }
    }

    /// (user, system) spent in the window; zero if it was not seen.
    fn window(&self) -> (Duration, Duration) {
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
