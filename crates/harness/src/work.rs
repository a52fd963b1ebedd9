//! The `work` scenario: what happens when the handler *does something* per message.
//!
//! Each preset is a `--work` spec the server runs per message ([`WorkPreset`]). Its cells
//! offer an open-loop load of [`LOAD_FRACTIONS`] of one CPU's capacity for that work
//! (`1 / mean service time`), on [`WORK_CONNS`] connections, plus one closed-loop cell on
//! the same connections: the most the model answers. From the sweep the headline is the
//! **capacity at an SLO** — the highest offered rate whose p99 stays under
//! [`SLO_SERVICE_TIMES`] times the mean service time — and the reference curves are the
//! queueing bounds: the mean response time of an M/D/1 queue (one loop) and of an
//! M/D/c queue (c CPUs or workers), which no model beats on average.

use std::time::Duration;

use echolab_proto::WorkSpec;
use serde::{Deserialize, Serialize};

/// A `--work` spec the `work` scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkPreset {
    /// `cpu:20us`: computation per message; one loop's ceiling is 50k/s.
    Cpu20us,
    /// `cpu:50us`: heavier computation; where two loops on two CPUs should nearly
    /// double one (the reactors-vs-mio goal).
    Cpu50us,
    /// `block:1ms`: a blocking call per message (a disk read, a database call); an
    /// inline event loop's ceiling is 1,000/s.
    Block1ms,
    /// `cpu:10us,1%block:5ms`: brpc's long tail — 1% of messages block for 5 ms.
    LongTail,
}

impl WorkPreset {
    /// Every preset, in report order.
    pub const ALL: [WorkPreset; 4] = [
        WorkPreset::Cpu20us,
        WorkPreset::Cpu50us,
        WorkPreset::Block1ms,
        WorkPreset::LongTail,
    ];

    /// The `--work` spec, as the server takes it.
    pub fn spec_text(self) -> &'static str {
        match self {
            WorkPreset::Cpu20us => "cpu:20us",
            WorkPreset::Cpu50us => "cpu:50us",
            WorkPreset::Block1ms => "block:1ms",
            WorkPreset::LongTail => "cpu:10us,1%block:5ms",
        }
    }

    /// The parsed spec.
    pub fn spec(self) -> WorkSpec {
        self.spec_text()
            .parse()
            .unwrap_or_else(|e| unreachable!("preset spec {} is valid: {e}", self.spec_text()))
    }

    /// Mean service time per message.
    pub fn mean_service(self) -> Duration {
        self.spec().mean_service_time()
    }

    /// One worker's capacity: messages per second when it does nothing else.
    pub fn one_worker_capacity(self) -> f64 {
        1.0 / self.mean_service().as_secs_f64()
    }

    /// Whether its messages come in kinds of different cost (a mix), so that the fast
    /// messages' latency is reported apart.
    pub fn has_slow_kind(self) -> bool {
        self.spec().slow_fraction() > 0.0
    }

    /// Whether some of its messages block (a pool sized for blocking calls is its
    /// question).
    pub fn blocks(self) -> bool {
        self.spec().mean_block_time() > Duration::ZERO
    }

    /// Whether the open-loop sweep runs for it (the `cpu:50us` preset is there for its
    /// closed-loop cell only: the reactors-vs-mio ratio).
    fn sweeps(self) -> bool {
        self != WorkPreset::Cpu50us
    }

    /// The cells of the scenario for this preset: the sweep, then the closed loop.
    pub(crate) fn rates(self) -> Vec<Option<u64>> {
        let mut rates: Vec<Option<u64>> = Vec::new();
        if self.sweeps() {
            let capacity = self.one_worker_capacity();
            rates.extend(
                LOAD_FRACTIONS
                    .iter()
                    .map(|f| Some((capacity * f).round().max(1.0) as u64)),
            );
        }
        rates.push(None);
        rates
    }
}

/// Connections in every `work` cell: enough that a loop has many clients to stall, and
/// that a blocking model needs a thread or process per client.
pub(crate) const WORK_CONNS: usize = 100;

/// Payload bytes in every `work` cell: the work, not the copy, is the cost.
pub(crate) const WORK_SIZE: usize = 64;

/// Offered load as fractions of one worker's capacity, from light to past saturation.
pub(crate) const LOAD_FRACTIONS: &[f64] = &[0.1, 0.5, 0.8, 1.0, 1.3];

/// The SLO of the headline: p99 under this many mean service times.
pub(crate) const SLO_SERVICE_TIMES: f64 = 10.0;

/// Worker threads an event loop hands its work to in the scenario's offload variant.
pub(crate) const OFFLOAD_THREADS: usize = 4;

/// Mean response time (waiting + service) of an M/D/c queue — Poisson arrivals at
/// `rate`, a fixed service time, `servers` servers — in µs; `None` at or past
/// saturation. Exact for one server (Pollaczek–Khinchine); for several, half the M/M/c
/// wait (Erlang C), the usual approximation for deterministic service.
pub fn md_c_mean_us(rate: f64, service: Duration, servers: usize) -> Option<f64> {
    let s = service.as_secs_f64();
    let c = servers.max(1) as f64;
    let load = rate * s;
    let rho = load / c;
    if !(0.0..1.0).contains(&rho) {
        return None;
    }
    let wait = if servers <= 1 {
        rho * s / (2.0 * (1.0 - rho))
    } else {
        erlang_c(servers, load) * s / (c - load) / 2.0
    };
    Some((wait + s) * 1e6)
}

/// Erlang's C: the probability that an arrival waits, with `servers` servers and
/// `load` = rate × service time (< servers).
fn erlang_c(servers: usize, load: f64) -> f64 {
    // Σ_{k<c} a^k/k! and a^c/c!, built term by term so nothing overflows.
    let mut term = 1.0;
    let mut below = 0.0;
    for k in 0..servers {
        below += term;
        term *= load / (k + 1) as f64;
    }
    let c = servers as f64;
    let top = term * c / (c - load);
    top / (below + top)
}

/// The capacity at the SLO: the highest offered rate among `points` (offered rate, p99
/// in µs, clean) whose p99 is under [`SLO_SERVICE_TIMES`] mean service times, on a
/// run with no errors; `None` if none is.
pub(crate) fn capacity_at_slo(points: &[(f64, f64, bool)], service: Duration) -> Option<f64> {
    let bound_us = SLO_SERVICE_TIMES * service.as_secs_f64() * 1e6;
    points
        .iter()
        .filter(|(_, p99, clean)| *clean && *p99 <= bound_us)
        .map(|(rate, _, _)| *rate)
        .max_by(f64::total_cmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_have_the_service_times_their_names_say() {
        assert_eq!(
            WorkPreset::Cpu20us.mean_service(),
            Duration::from_micros(20)
        );
        assert_eq!(WorkPreset::Block1ms.one_worker_capacity().round(), 1000.0);
        // 99% x 10 us + 1% x 5 ms.
        let tail = WorkPreset::LongTail.mean_service().as_secs_f64() * 1e6;
        assert!((tail - 59.9).abs() < 0.01, "{tail}");
        for preset in WorkPreset::ALL {
            assert_eq!(preset.spec().to_string(), preset.spec_text());
        }
    }

    #[test]
    fn a_sweep_runs_from_light_load_to_past_saturation_then_closed() {
        let rates = WorkPreset::Block1ms.rates();
        assert_eq!(
            rates,
            vec![
                Some(100),
                Some(500),
                Some(800),
                Some(1000),
                Some(1300),
                None
            ]
        );
        assert_eq!(WorkPreset::Cpu50us.rates(), vec![None]);
    }

    #[test]
    fn md1_is_pollaczek_khinchine_and_more_servers_wait_less() {
        let s = Duration::from_micros(100);
        // rho = 0.5: wait = 0.5 * 100 / (2 * 0.5) = 50 us, plus 100 us of service.
        let one = md_c_mean_us(5_000.0, s, 1).unwrap();
        assert!((one - 150.0).abs() < 1e-6, "{one}");
        let two = md_c_mean_us(5_000.0, s, 2).unwrap();
        assert!(two < one && two > 100.0, "{two}");
        assert_eq!(md_c_mean_us(10_000.0, s, 1), None);
        assert!(md_c_mean_us(10_000.0, s, 2).is_some());
        // Erlang C with one server is rho itself.
        assert!((erlang_c(1, 0.3) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn capacity_is_the_highest_clean_rate_within_the_slo() {
        let s = Duration::from_micros(20); // SLO: 200 us
        let points = [
            (5_000.0, 40.0, true),
            (25_000.0, 120.0, true),
            (40_000.0, 150.0, false), // errors: not counted
            (50_000.0, 9_000.0, true),
        ];
        assert_eq!(capacity_at_slo(&points, s), Some(25_000.0));
        assert_eq!(capacity_at_slo(&points[3..], s), None);
    }
}
