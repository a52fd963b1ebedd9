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
use crate::cpu::ThreadCpu;

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
    let mut cpu = ThreadCpu::new(phases.measure_from, phases.end);
    loop {
        let now = Instant::now();
        cpu.observe(now);
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
    cpu.observe(phases.end.max(Instant::now()));
    let mut tally = worker.finish();
    tally.cpu = cpu.window();
    Ok(tally)
}
