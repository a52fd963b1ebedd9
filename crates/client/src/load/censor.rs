//! Waits cut short: a message still unanswered when the run ends (or when its reply timed
//! out) has no round trip, only a wait so far, known to be at least that long. Leaving it
//! out would hide exactly the stalls the percentiles exist to show, so it is a sample,
//! *censored* at that instant, and counted as such.
//!
//! How many samples one stalled message stands for depends on the loop:
//!
//! - Open loop: one. Messages are sent on schedule whatever happened to the earlier
//!   ones, so a stalled connection already has every message it was due to send in
//!   flight (or dropped as `backlog`, each of which is a censored wait too, from its due
//!   time to the end).
//! - Closed loop and churn: many. A connection waits for its reply before it sends the
//!   next, so a client starved for the whole window (behind `iterative`, or the 96
//!   waiting for a pool of 4) has one message to show for it, against thousands from
//!   each client that was served: one sample would sit far beyond the 99th percentile,
//!   and a model that serves one client would read as the fastest. So the stalled
//!   message also stands for the messages it held back: one every mean round trip of the
//!   replies that did come, over the part of its wait inside the measured window, each
//!   with the wait it would have had by the censoring instant — HdrHistogram's
//!   correction for coordinated omission (`recordValueWithExpectedInterval`), applied to
//!   the waits that never ended. A wait shorter than a round trip held nothing back and
//!   stays one sample, so a fair run is unchanged.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Samples recorded per held-back run of messages at most: a stalled connection in a
/// long window stands for millions of messages, which are recorded in this many groups
/// (each at its middle value, weighted by its count) so the end of a run stays quick.
const MAX_GROUPS: u64 = 1_000;

/// Waits cut short, kept until the end of the run, when the round trip they are
/// measured against is known.
#[derive(Debug)]
pub(super) struct Censored {
    open_loop: bool,
    /// Open loop: every censored wait, one sample each.
    open: Histogram<u64>,
    /// Closed loop and churn: (the wait, the part of it inside the measured window).
    closed: Vec<(Duration, Duration)>,
    /// Messages whose wait was cut short.
    pub(super) waits: u64,
}

/// What the censored waits came to in the final histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct CensoredCount {
    /// Messages whose wait was cut short.
    pub(super) waits: u64,
    /// The samples they stand for (the waits, and in a closed loop the messages they
    /// held back).
    pub(super) samples: u64,
}

impl Censored {
    pub(super) fn new(open_loop: bool) -> Censored {
        Censored {
            open_loop,
            open: new_histogram(),
            closed: Vec::new(),
            waits: 0,
        }
    }

    /// A message waited `wait` with no reply, `in_window` of it inside the measured
    /// window.
    pub(super) fn add(&mut self, wait: Duration, in_window: Duration) {
        self.waits += 1;
        if self.open_loop {
            let _ = self.open.record(nanos(wait));
        } else {
            self.closed.push((wait, in_window));
        }
    }

    /// Adds another thread's censored waits.
    pub(super) fn merge(&mut self, other: Censored) {
        let _ = self.open.add(&other.open);
        self.closed.extend(other.closed);
        self.waits += other.waits;
    }

    /// Adds the censored samples to `answered`, whose replies set the closed loop's
    /// round trip.
    pub(super) fn fold_into(&self, answered: &mut Histogram<u64>) -> CensoredCount {
        let round_trip = (!answered.is_empty()).then(|| answered.mean() as u64);
        let mut samples = self.open.len();
        let _ = answered.add(&self.open);
        for &(wait, in_window) in &self.closed {
            let _ = answered.record(nanos(wait));
            samples += 1;
            if let Some(round_trip) = round_trip {
                samples += held_back(answered, wait, in_window, round_trip);
            }
        }
        CensoredCount {
            waits: self.waits,
            samples,
        }
    }
}

/// A latency histogram: 1 µs .. 100 s in nanoseconds, 3 significant digits.
pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// Nanoseconds, at least the histogram's 1 µs floor.
pub(super) fn nanos(d: Duration) -> u64 {
    (d.as_nanos().min(u64::MAX as u128) as u64).max(1_000)
}

/// Records the messages a closed-loop wait of `wait` held back: one sent every
/// `round_trip` ns from the start of its wait inside the window, each waiting until the
/// censoring instant, down to one round trip (HdrHistogram's fill). Returns how many.
fn held_back(
    hist: &mut Histogram<u64>,
    wait: Duration,
    in_window: Duration,
    round_trip: u64,
) -> u64 {
    if round_trip == 0 {
        return 0;
    }
    let wait = nanos(wait);
    // The first held-back message went one round trip after the real one, and none
    // before the window opened.
    let top = wait.saturating_sub(round_trip).min(nanos(in_window));
    let n = top / round_trip;
    let group = n.div_ceil(MAX_GROUPS).max(1);
    let mut k = 0;
    while k < n {
        let count = group.min(n - k);
        let middle = top - (k + count / 2) * round_trip;
        let _ = hist.record_n(middle.max(1_000), count);
        k += count;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_starved_closed_loop_client_outweighs_the_served_one() {
        // One client served every 100 µs for a second: 10,000 replies. Another waited
        // the whole window (1.2 s from its send, 1 s of it in the window).
        let mut hist = new_histogram();
        hist.record_n(100_000, 10_000).unwrap();
        let mut censored = Censored::new(false);
        censored.add(1200 * MS, 1000 * MS);
        let count = censored.fold_into(&mut hist);
        assert_eq!(count.waits, 1);
        // The wait, and one held-back message per round trip of the window, less the
        // last (a wait shorter than one round trip holds nothing back); the round trip
        // is the histogram's mean, 100 µs to its 3 significant digits.
        assert!((9_980..=10_000).contains(&count.samples), "{count:?}");
        assert_eq!(hist.len(), 10_000 + count.samples);
        // Half the samples are the starved client's: the p99 is about the window, not
        // the served client's round trip.
        let p99 = hist.value_at_quantile(0.99);
        assert!(p99 > 950_000_000 && p99 < 1_010_000_000, "{p99}");
        let p25 = hist.value_at_quantile(0.25);
        assert!(p25 < 101_000, "{p25}");
    }

    #[test]
    fn a_wait_shorter_than_a_round_trip_is_one_sample() {
        // A fair run's last messages were simply in flight at the end.
        let mut hist = new_histogram();
        hist.record_n(100_000, 1_000).unwrap();
        let mut censored = Censored::new(false);
        censored.add(Duration::from_micros(60), Duration::from_micros(60));
        censored.add(Duration::from_micros(150), Duration::from_micros(150));
        let count = censored.fold_into(&mut hist);
        assert_eq!((count.waits, count.samples), (2, 2));
    }

    #[test]
    fn with_no_reply_at_all_each_wait_is_one_sample() {
        let mut hist = new_histogram();
        let mut censored = Censored::new(false);
        censored.add(500 * MS, 500 * MS);
        let count = censored.fold_into(&mut hist);
        assert_eq!((count.waits, count.samples), (1, 1));
        assert!(hist.value_at_quantile(0.5) >= 499_000_000);
    }

    #[test]
    fn open_loop_waits_are_one_sample_each() {
        let mut hist = new_histogram();
        hist.record_n(100_000, 100).unwrap();
        let mut censored = Censored::new(true);
        for _ in 0..50 {
            censored.add(800 * MS, 800 * MS);
        }
        let mut other = Censored::new(true);
        other.add(800 * MS, 800 * MS);
        censored.merge(other);
        let count = censored.fold_into(&mut hist);
        assert_eq!((count.waits, count.samples), (51, 51));
        assert_eq!(hist.len(), 151);
    }

    #[test]
    fn a_long_stall_is_recorded_in_bounded_groups_of_the_right_weight() {
        // 100 s of held-back messages every 10 µs: ten million, in at most 1,000 records.
        let mut hist = new_histogram();
        let n = held_back(&mut hist, 100 * 1000 * MS, 100 * 1000 * MS, 10_000);
        assert_eq!(n, 9_999_999);
        assert_eq!(hist.len(), n);
        let median = hist.value_at_quantile(0.5) as f64;
        assert!((median / 50e9 - 1.0).abs() < 0.01, "{median}");
    }
}
