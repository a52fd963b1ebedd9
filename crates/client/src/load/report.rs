use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyUs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest seen.
    pub max: f64,
}

/// How evenly the connections were served.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Fairness {
    /// Jain's index over per-connection response counts: 1 when every connection got
    /// the same share, 1/n when one connection got everything.
    pub jain: f64,
    /// Fewest responses any connection got.
    pub min: u64,
    /// Most responses any connection got.
    pub max: u64,
}

/// How a run offered its load: the report's `mode`, spelled `closed`, `open` or `churn`
/// in its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// `depth` in flight per connection (or socket), the next sent when a reply arrives.
    Closed,
    /// Sent on schedule (`--rate`).
    Open,
    /// One echo per connection, then reconnect.
    Churn,
}

/// The outcome of a load run (the `--json` object).
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// How the load was offered.
    pub mode: LoadMode,
    /// The offered rate in messages per second (open loop), `null` otherwise.
    pub target_rate: Option<f64>,
    /// Completed connect + echo + close cycles per second (churn), `null` otherwise.
    pub connections_per_sec: Option<f64>,
    /// Verified responses in the measured interval.
    pub responses: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Responses per second.
    pub responses_per_sec: f64,
    /// Payload MiB per second echoed (one direction).
    pub mib_per_sec: f64,
    /// Round-trip latency, waits still unanswered at the window's end included.
    pub latency_us: LatencyUs,
    /// With `--work`: the latency of the replies to messages that got the spec's
    /// cheapest kind of work (every message, for a one-item spec), apart from the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us_fast: Option<LatencyUs>,
    /// With a mix such as `cpu:10us,1%block:5ms`: the latency of the replies to the
    /// dearer messages (`None` when none came).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us_slow: Option<LatencyUs>,
    /// Replies to messages of the dearer kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_samples: Option<u64>,
    /// Samples behind the percentiles.
    pub latency_samples: u64,
    /// Messages with no reply when the window ended (or when their reply timed out):
    /// each is a sample of the time it had waited, censored there — the true wait is
    /// longer. A starved client shows here.
    pub censored_waits: u64,
    /// The samples those waits stand for: in the open loop one each; in a closed loop
    /// also one per mean round trip of the replies that came, for the messages the
    /// stalled connection would have sent meanwhile (HdrHistogram's correction for
    /// coordinated omission). A large share of `latency_samples` means the percentiles
    /// are lower bounds.
    pub censored_samples: u64,
    /// Errors by [`FailureKind`](crate::FailureKind) name (`mismatch`, `notice`,
    /// `short_read`, `reset`, `timeout`, `connect`, `io`, `backlog`: an open-loop message
    /// dropped because its connection already had the maximum in flight); every kind is
    /// present, zero or not.
    pub errors: BTreeMap<String, u64>,
    /// Per-connection fairness.
    pub fairness: Fairness,
    /// Median time from connect to first verified reply, in microseconds.
    pub first_reply_us_p50: f64,
    /// Slowest time from connect to first verified reply (microseconds); `null` if some
    /// connection never got one.
    pub first_reply_us_max: Option<f64>,
    /// Connections asked for.
    pub conns: usize,
    /// Payload size.
    pub size: usize,
    /// In-flight messages per connection (closed loop; always 1 in churn).
    pub depth: usize,
    /// The generator threads' own user CPU seconds in the measured window.
    pub client_cpu_user_s: f64,
    /// The generator threads' own system CPU seconds in the measured window.
    pub client_cpu_sys_s: f64,
}

pub(crate) fn latency(hist: &Histogram<u64>) -> LatencyUs {
    let at = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    LatencyUs {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: hist.max() as f64 / 1000.0,
    }
}

pub(crate) fn fairness(counts: &[u64]) -> Fairness {
    if counts.is_empty() {
        return Fairness::default();
    }
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let squares: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    let jain = if squares == 0.0 {
        0.0
    } else {
        sum * sum / (counts.len() as f64 * squares)
    };
    Fairness {
        jain,
        min: counts.iter().copied().min().unwrap_or(0),
        max: counts.iter().copied().max().unwrap_or(0),
    }
}

pub(crate) fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

impl LoadReport {
    /// A short human-readable summary (what `echolab load` prints without `--json`).
    pub fn summary(&self) -> String {
        let errors: u64 = self.errors.values().sum();
        let mut text = match (self.target_rate, self.connections_per_sec) {
            (Some(rate), _) => format!("open loop at {rate:.0} messages/s: "),
            (_, Some(cps)) => format!("churn: {cps:.0} connections/s: "),
            _ => String::new(),
        };
        // The open loop's schedule, not a depth, sets how many messages are in flight.
        let depth = match self.target_rate {
            Some(_) => String::new(),
            None => format!(", depth {}", self.depth),
        };
        text += &format!(
            "{} conns x {} B{}: {} responses in {:.1} s = {:.0} responses/s, {:.2} MiB/s\n\
             {}\n\
             fairness: jain {:.3}  min {}  max {} responses per connection\n",
            self.conns,
            self.size,
            depth,
            self.responses,
            self.seconds,
            self.responses_per_sec,
            self.mib_per_sec,
            self.latency_line(),
            self.fairness.jain,
            self.fairness.min,
            self.fairness.max,
        );
        if self.censored_waits > 0 {
            text.push_str(&format!(
                "censored: {} messages unanswered at the end stand for {} of the {} samples \
                 ({:.1}%): those percentiles are lower bounds\n",
                self.censored_waits,
                self.censored_samples,
                self.latency_samples,
                self.censored_samples as f64 * 100.0 / self.latency_samples.max(1) as f64
            ));
        }
        if errors == 0 {
            text.push_str("errors: none\n");
        } else {
            let listed: Vec<String> = self
                .errors
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            text.push_str(&format!("errors: {}\n", listed.join(", ")));
        }
        text
    }

    /// Every sample is at least 1 µs, so a zero maximum means there were none (every
    /// connection failed): say so rather than print percentiles of nothing.
    fn latency_line(&self) -> String {
        let l = &self.latency_us;
        if l.max == 0.0 {
            return "latency us: no samples (no replies, no message left waiting)".to_string();
        }
        format!(
            "latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_spelled_as_the_reports_always_spelled_them() {
        let modes = [LoadMode::Closed, LoadMode::Open, LoadMode::Churn];
        let spelled: Vec<String> = modes
            .iter()
            .map(|m| serde_json::to_string(m).expect("a unit variant serializes"))
            .collect();
        assert_eq!(spelled, [r#""closed""#, r#""open""#, r#""churn""#]);
        for (mode, text) in modes.iter().zip(&spelled) {
            let back: LoadMode = serde_json::from_str(text).expect("its own spelling parses");
            assert_eq!(back, *mode);
        }
        assert!(serde_json::from_str::<LoadMode>(r#""burst""#).is_err());
    }

    #[test]
    fn jain_index_is_one_when_even_and_one_over_n_when_starved() {
        assert!((fairness(&[5, 5, 5, 5]).jain - 1.0).abs() < 1e-9);
        let starved = fairness(&[100, 0, 0, 0]);
        assert!((starved.jain - 0.25).abs() < 1e-9);
        assert_eq!((starved.min, starved.max), (0, 100));
    }
}
