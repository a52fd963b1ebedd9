//! What a generator thread measured: round-trip latencies, waits cut short, failures by
//! kind, and each connection's share of the replies and its time to a first one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::censor::{self, Censored};
use super::classify::WorkClass;
use super::conn::Conn;
use crate::failure::FailureCounts;

pub(super) struct Tally {
    /// Round trips of the replies that came.
    pub(super) histogram: Histogram<u64>,
    /// With `--work`: the same round trips split by the kind of work each message got
    /// ([`WorkClass`]), so a long tail's few slow messages cannot hide, or be hidden
    /// by, the fast ones. Censored waits are in the overall figures only.
    pub(super) by_class: [Histogram<u64>; 2],
    /// Waits with no reply, folded into the percentiles at the end.
    pub(super) censored: Censored,
    pub(super) failures: FailureCounts,
    /// Replies verified in the measured window, per connection (taken at the end).
    pub(super) counts: Vec<u64>,
    /// Time from connect to first verified reply, per connection (taken at the end).
    pub(super) first_replies: Vec<Option<Duration>>,
    /// The generator threads' own (user, system) CPU over the measured window.
    pub(super) cpu: (Duration, Duration),
}

impl Tally {
    /// `open_loop`: messages are sent on a schedule, not when replies come (see
    /// `censor` for why that decides what a censored wait stands for).
    pub(super) fn new(open_loop: bool) -> Tally {
        Tally {
            histogram: censor::new_histogram(),
            by_class: [censor::new_histogram(), censor::new_histogram()],
            censored: Censored::new(open_loop),
            failures: FailureCounts::default(),
            counts: Vec::new(),
            first_replies: Vec::new(),
            cpu: (Duration::ZERO, Duration::ZERO),
        }
    }

    /// One reply's round trip, and its kind of work when the run knows the server's.
    pub(super) fn record(&mut self, latency: Duration, class: Option<WorkClass>) {
        let nanos = censor::nanos(latency);
        let _ = self.histogram.record(nanos);
        if let Some(class) = class {
            let _ = self.by_class[class as usize].record(nanos);
        }
    }

    /// A message due or sent at `since` had no reply by `until`; `measure_from` opens the
    /// window.
    pub(super) fn censor(&mut self, since: Instant, until: Instant, measure_from: Instant) {
        self.censored.add(
            until.saturating_duration_since(since),
            until.saturating_duration_since(since.max(measure_from)),
        );
    }

    /// Censors each message still in flight at `until` (its wait from its send, or its
    /// due time in the open loop).
    pub(super) fn censor_waits(
        &mut self,
        in_flight: &VecDeque<(u64, Instant)>,
        until: Instant,
        measure_from: Instant,
    ) {
        for (_, since) in in_flight {
            self.censor(*since, until, measure_from);
        }
    }

    /// The thread's last accounting, when the run ends at `end`.
    ///
    /// A message still unanswered waited at least from its due (open loop) or send
    /// (closed loop, churn) time until the end: a censored sample (see `censor`). So
    /// does a connection still waiting for the server's challenge (it could not send
    /// yet): from when it connected. A connection that failed is counted among the
    /// errors instead (a timed-out one was censored when it timed out): its messages met
    /// an error, not a slow server.
    pub(super) fn settle(&mut self, conns: &[Conn], end: Instant, measure_from: Instant) {
        for c in conns.iter().filter(|c| c.live()) {
            if c.in_flight.is_empty() && c.awaiting_nonce {
                self.censor(c.connected_at, end, measure_from);
            }
            self.censor_waits(&c.in_flight, end, measure_from);
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
        self.censored.merge(other.censored);
        self.failures.merge(&other.failures);
        self.counts.extend(other.counts);
        self.first_replies.extend(other.first_replies);
        self.cpu = (self.cpu.0 + other.cpu.0, self.cpu.1 + other.cpu.1);
    }
}
