//! What a generator thread measured: round-trip latencies, failures by kind, and each
//! connection's share of the replies and its time to a first one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::classify::WorkClass;
use super::conn::Conn;
use crate::failure::FailureCounts;

pub(super) struct Tally {
    pub(super) histogram: Histogram<u64>,
    /// With `--work`: the same latencies split by the kind of work each message got
    /// ([`WorkClass`]), so a long tail's few slow messages cannot hide, or be hidden by,
    /// the fast ones.
    pub(super) by_class: [Histogram<u64>; 2],
    pub(super) failures: FailureCounts,
    /// Replies verified in the measured window, per connection (taken at the end).
    pub(super) counts: Vec<u64>,
    /// Time from connect to first verified reply, per connection (taken at the end).
    pub(super) first_replies: Vec<Option<Duration>>,
    /// The generator threads' own (user, system) CPU over the measured window.
    pub(super) cpu: (Duration, Duration),
}

fn new_histogram() -> Histogram<u64> {
    // 1 us .. 100 s in nanoseconds, 3 significant digits.
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            histogram: new_histogram(),
            by_class: [new_histogram(), new_histogram()],
            failures: FailureCounts::default(),
            counts: Vec::new(),
            first_replies: Vec::new(),
            cpu: (Duration::ZERO, Duration::ZERO),
        }
    }

    /// One message's latency, and its kind of work when the run knows the server's.
    pub(super) fn record(&mut self, latency: Duration, class: Option<WorkClass>) {
        let nanos = (latency.as_nanos().min(u64::MAX as u128) as u64).max(1_000);
        let _ = self.histogram.record(nanos);
        if let Some(class) = class {
            let _ = self.by_class[class as usize].record(nanos);
        }
    }

    /// Charges each message still in flight on connection `conn` with its wait until
    /// `until` (from its send, or its due time in the open loop); `classify` says what
    /// kind of work message `seq` of that connection got.
    pub(super) fn record_waits(
        &mut self,
        conn: u32,
        in_flight: &VecDeque<(u64, Instant)>,
        until: Instant,
        classify: &impl Fn(u32, u64) -> Option<WorkClass>,
    ) {
        for (seq, since) in in_flight {
            self.record(
                until.saturating_duration_since(*since),
                classify(conn, *seq),
            );
        }
    }

    /// The thread's last accounting, when the run ends at `end`.
    ///
    /// A message still unanswered waited at least from its due (open loop) or send
    /// (closed loop, churn) time until the end; leaving it out would hide exactly the
    /// stalls the percentiles exist to show (coordinated omission in the open loop; a
    /// client starved for the whole run behind an `iterative` server in the closed loop,
    /// whose one message would otherwise never appear at all). A connection that failed
    /// is counted among the errors instead (a timed-out one was charged when it timed
    /// out): its messages met an error, not a slow server.
    ///
    /// Connections that never connected still count, as starved ones.
    pub(super) fn settle(
        &mut self,
        conns: &[Conn],
        end: Instant,
        classify: &impl Fn(u32, u64) -> Option<WorkClass>,
    ) {
        for c in conns.iter().filter(|c| c.open) {
            self.record_waits(c.id, &c.in_flight, end, classify);
        }
        self.counts = conns.iter().map(|c| c.measured).collect();
        self.first_replies = conns.iter().map(|c| c.first_reply).collect();
    }

    /// Adds another thread's tally to this one.
    pub(super) fn merge(&mut self, other: Tally) {
        let _ = self.histogram.add(&other.histogram);
        for (mine, theirs) in self.by_class.iter_mut().zip(&other.by_class) {
            let _ = mine.add(theirs);
        }
        self.failures.merge(&other.failures);
        self.counts.extend(other.counts);
        self.first_replies.extend(other.first_replies);
        self.cpu = (self.cpu.0 + other.cpu.0, self.cpu.1 + other.cpu.1);
    }
}
