//! A load agent's report, and the merge of several into one run's figures.
//!
//! Across hosts the load comes from several `echolab load --agent` processes, each with
//! a share of the connections and of the offered rate (as mutilate splits it). Each
//! sends its whole latency histogram (HdrHistogram V2, deflate-compressed, base64), and
//! the merged figures take their percentiles from the sum of the histograms: averaging
//! two agents' p99s is not the p99 of the run.

use std::collections::BTreeMap;

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::report::{self, Fairness, LatencyUs, LoadMode, LoadReport};

/// A load agent's report that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Its histogram does not encode or decode, or two do not add.
    #[error("load agent histogram: {0}")]
    Histogram(String),
    /// There was no report to merge.
    #[error("no load agent reported")]
    NoAgents,
}

/// What one agent prints (`echolab load --agent`, one JSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// `closed`, `open` or `churn`.
    pub mode: LoadMode,
    /// Verified responses in the measured window.
    pub responses: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// The agent's connections.
    pub conns: usize,
    /// Payload bytes.
    pub size: usize,
    /// In-flight messages per connection.
    pub depth: usize,
    /// Its generator threads.
    pub threads: usize,
    /// Its share of the offered rate (open loop).
    pub target_rate: Option<f64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Its own fairness over its connections.
    pub fairness: Fairness,
    /// Its own percentiles (for reading one agent; the run's come from the merge).
    pub latency_us: LatencyUs,
    /// Messages unanswered at its window's end (see [`LoadReport::censored_waits`]).
    #[serde(default)]
    pub censored_waits: u64,
    /// The samples they stand for in its histogram.
    #[serde(default)]
    pub censored_samples: u64,
    /// Its generator threads' user CPU in the window, seconds.
    pub client_cpu_user_s: f64,
    /// Their system CPU.
    pub client_cpu_sys_s: f64,
    /// Every latency sample, nanoseconds: HdrHistogram V2, deflate, base64.
    pub histogram: String,
}

impl AgentReport {
    /// The report of a run with `threads` generator threads, and its histogram.
    pub fn new(
        report: &LoadReport,
        histogram: &Histogram<u64>,
        threads: usize,
    ) -> Result<AgentReport, AgentError> {
        Ok(AgentReport {
            mode: report.mode,
            responses: report.responses,
            seconds: report.seconds,
            conns: report.conns,
            size: report.size,
            depth: report.depth,
            threads,
            target_rate: report.target_rate,
            errors: report.errors.clone(),
            fairness: report.fairness.clone(),
            latency_us: report.latency_us.clone(),
            censored_waits: report.censored_waits,
            censored_samples: report.censored_samples,
            client_cpu_user_s: report.client_cpu_user_s,
            client_cpu_sys_s: report.client_cpu_sys_s,
            histogram: encode(histogram)?,
        })
    }

    /// Its histogram, decoded.
    pub fn histogram(&self) -> Result<Histogram<u64>, AgentError> {
        decode(&self.histogram)
    }

    /// The share of its threads' CPU it used in the window: near 1, the agent, not the
    /// server, was the limit.
    pub fn cpu_share(&self) -> f64 {
        let capacity = self.seconds * self.threads.max(1) as f64;
        if capacity > 0.0 {
            (self.client_cpu_user_s + self.client_cpu_sys_s) / capacity
        } else {
            0.0
        }
    }
}

/// A histogram as HdrHistogram's V2 format, deflate-compressed, in base64.
pub fn encode(histogram: &Histogram<u64>) -> Result<String, AgentError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|e| AgentError::Histogram(format!("cannot serialize the histogram: {e:?}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The histogram [`encode`] wrote.
pub fn decode(text: &str) -> Result<Histogram<u64>, AgentError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| AgentError::Histogram(format!("histogram is not base64: {e}")))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| AgentError::Histogram(format!("histogram does not decode: {e:?}")))
}

/// The agents' reports as one run's: counts and CPU added, fairness over every
/// connection of every agent, percentiles from the merged histogram.
pub fn merge(agents: &[AgentReport]) -> Result<LoadReport, AgentError> {
    let Some(first) = agents.first() else {
        return Err(AgentError::NoAgents);
    };
    let mut histogram = first.histogram()?;
    for agent in &agents[1..] {
        histogram
            .add(agent.histogram()?)
            .map_err(|e| AgentError::Histogram(format!("histograms do not add: {e:?}")))?;
    }
    let responses: u64 = agents.iter().map(|a| a.responses).sum();
    let seconds = agents.iter().map(|a| a.seconds).fold(0.0, f64::max);
    let mut errors = BTreeMap::new();
    for agent in agents {
        for (kind, n) in &agent.errors {
            *errors.entry(kind.clone()).or_insert(0) += n;
        }
    }
    let responses_per_sec = if seconds > 0.0 {
        responses as f64 / seconds
    } else {
        0.0
    };
    let mode = first.mode;
    let rates: Vec<f64> = agents.iter().filter_map(|a| a.target_rate).collect();
    Ok(LoadReport {
        mode,
        target_rate: (!rates.is_empty()).then(|| rates.iter().sum()),
        connections_per_sec: (mode == LoadMode::Churn).then_some(responses_per_sec),
        responses,
        seconds,
        responses_per_sec,
        mib_per_sec: responses_per_sec * first.size as f64 / (1024.0 * 1024.0),
        latency_us: report::latency(&histogram),
        latency_samples: histogram.len(),
        censored_waits: agents.iter().map(|a| a.censored_waits).sum(),
        censored_samples: agents.iter().map(|a| a.censored_samples).sum(),
        // The agents send one histogram each, of every message together.
        latency_us_fast: None,
        latency_us_slow: None,
        slow_samples: None,
        errors,
        fairness: merged_fairness(agents),
        // Not sent by agents: a connection's time to its first reply stays with it.
        first_reply_us_p50: 0.0,
        first_reply_us_max: None,
        conns: agents.iter().map(|a| a.conns).sum(),
        size: first.size,
        depth: first.depth,
        client_cpu_user_s: agents.iter().map(|a| a.client_cpu_user_s).sum(),
        client_cpu_sys_s: agents.iter().map(|a| a.client_cpu_sys_s).sum(),
    })
}

/// Jain's index over every agent's connections, from each agent's index, connection
/// count and total: an agent's sum of squares is `total² / (conns × jain)`.
fn merged_fairness(agents: &[AgentReport]) -> Fairness {
    let (mut sum, mut squares, mut n) = (0.0, 0.0, 0.0);
    for a in agents {
        let total = a.responses as f64;
        sum += total;
        n += a.conns as f64;
        if a.fairness.jain > 0.0 && a.conns > 0 {
            squares += total * total / (a.conns as f64 * a.fairness.jain);
        }
    }
    Fairness {
        jain: if squares > 0.0 {
            sum * sum / (n * squares)
        } else {
            0.0
        },
        min: agents.iter().map(|a| a.fairness.min).min().unwrap_or(0),
        max: agents.iter().map(|a| a.fairness.max).max().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Histogram<u64> {
        Histogram::new_with_bounds(1_000, 100_000_000_000, 3).unwrap()
    }

    fn agent(histogram: &Histogram<u64>, counts: &[u64]) -> AgentReport {
        AgentReport {
            mode: LoadMode::Closed,
            responses: counts.iter().sum(),
            seconds: 1.0,
            conns: counts.len(),
            size: 64,
            depth: 1,
            threads: 1,
            target_rate: None,
            errors: BTreeMap::from([("timeout".to_string(), 1)]),
            fairness: report::fairness(counts),
            latency_us: report::latency(histogram),
            censored_waits: 0,
            censored_samples: 0,
            client_cpu_user_s: 0.25,
            client_cpu_sys_s: 0.25,
            histogram: encode(histogram).unwrap(),
        }
    }

    /// Percentiles of the merged agents are the percentiles of every sample in one
    /// histogram — and not the average of the agents' own, which the skewed split here
    /// would get wrong by far.
    #[test]
    fn merged_percentiles_are_those_of_all_samples() {
        let mut all = empty();
        let mut parts = [empty(), empty(), empty()];
        // A deterministic spread over 1 µs .. 50 ms, one agent with the slow tail.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..30_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let part = (i % 3) as usize;
            let base = if part == 2 { 5_000_000 } else { 1_000 };
            let value = base + x % (base * 9);
            all.record(value).unwrap();
            parts[part].record(value).unwrap();
        }
        let agents: Vec<AgentReport> = parts
            .iter()
            .map(|h| agent(h, &[h.len() / 2, h.len() - h.len() / 2]))
            .collect();
        let merged = merge(&agents).unwrap();
        assert_eq!(merged.latency_us, report::latency(&all));
        let averaged_p50 = agents.iter().map(|a| a.latency_us.p50).sum::<f64>() / 3.0;
        assert!(
            (averaged_p50 - merged.latency_us.p50).abs() > 100.0,
            "the test's split does not tell merging from averaging"
        );
        assert_eq!(merged.responses, 30_000);
        assert_eq!(merged.errors["timeout"], 3);
        assert_eq!(merged.conns, 6);
        assert!((merged.client_cpu_user_s - 0.75).abs() < 1e-9);
    }

    #[test]
    fn a_histogram_survives_the_wire() {
        let mut h = empty();
        for v in [1_000, 2_500, 1_000_000, 99_000_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
        assert!(decode("AAAA").is_err());
    }

    #[test]
    fn fairness_over_every_agents_connections() {
        let h = empty();
        let counts = [[10, 10], [10, 0]];
        let agents: Vec<AgentReport> = counts.iter().map(|c| agent(&h, c)).collect();
        let merged = merge(&agents).unwrap();
        let direct = report::fairness(&[10, 10, 10, 0]);
        assert!((merged.fairness.jain - direct.jain).abs() < 1e-9);
        assert_eq!((merged.fairness.min, merged.fairness.max), (0, 10));
    }
}
