//! Repeats folded into one row per model and cell: the median with its min–max spread.

use serde::{Deserialize, Serialize};

use crate::cell::Measurement;
use crate::figures::short;
use crate::marks::Marks;
use crate::scenario::Cell;

/// Median and range of one figure over the repeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median (the lower middle value for an even count, so it is a value that was seen).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// `12.3k (11.9k–12.8k)`: the median, then the range, each in three significant figures.
impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}–{})",
            short(self.median),
            short(self.min),
            short(self.max)
        )
    }
}

impl Spread {
    /// The spread of `values`; `None` if there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread {
            median: v[(v.len() - 1) / 2],
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// One model on one cell, over its repeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The model.
    pub model: String,
    /// The cell.
    pub cell: Cell,
    /// Repeats folded in.
    pub runs: usize,
    /// Responses per second.
    pub responses_per_sec: Spread,
    /// p50 latency, microseconds.
    pub p50_us: Spread,
    /// p99 latency, microseconds.
    pub p99_us: Spread,
    /// The `work` scenario: p99 of the messages that got the cheapest work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_fast_us: Option<Spread>,
    /// The `work` scenario's long-tail mix: p99 of the dearer messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_slow_us: Option<Spread>,
    /// Share of the latency samples that are censored waits, %.
    #[serde(default)]
    pub censored_pct: Option<Spread>,
    /// Server CPU microseconds per response.
    pub server_cpu_us_per_response: Option<Spread>,
    /// Server CPU seconds per second of the window (1.0: one whole core).
    pub server_cpu_share: Spread,
    /// Responses per server CPU-second.
    pub responses_per_cpu_sec: Option<Spread>,
    /// Peak RSS of the server tree, KiB.
    pub peak_rss_kb: Spread,
    /// Most threads.
    pub peak_threads: u64,
    /// Most processes.
    pub peak_processes: u64,
    /// Context switches over the server's life (voluntary + involuntary), median.
    pub ctx_switches: Option<Spread>,
    /// Jain's index, median.
    pub jain: Spread,
    /// Idle scenario: PSS per held connection, KiB.
    pub memory_per_conn_kb: Option<Spread>,
    /// Idle scenario: connections held (fewest over the repeats).
    pub idle_held: Option<u64>,
    /// `udp` scenario: datagrams lost, % of those sent.
    pub loss_pct: Option<Spread>,
    /// Each repeat's verdict, distinct, joined (empty when all were clean).
    pub note: String,
    /// Repeats that measured nothing (no reply, or could not run): the figures are
    /// those of the other repeats, or zeros if there were none.
    #[serde(default)]
    pub failed_runs: usize,
    /// Repeats with no error on either side (the generator's or the server's counts)
    /// and a clean exit: what the `work` scenario's capacity at an SLO asks of a rate.
    #[serde(default)]
    pub clean_runs: usize,
    /// Repeats where the load generator was the limit.
    #[serde(default)]
    pub client_bound_runs: usize,
    /// Repeats whose server CPU per response was below half the kernel's floor.
    #[serde(default)]
    pub suspect_runs: usize,
    /// Why, from the first repeat with each mark.
    #[serde(default, flatten)]
    pub marks: Marks,
}

impl Summary {
    /// Whether no repeat measured anything: the cell has no figure to chart.
    pub fn measured_nothing(&self) -> bool {
        self.failed_runs >= self.runs
    }
}

/// Folds measurements into summaries, in the order their (model, cell) first appears.
pub fn summarize(measurements: &[Measurement]) -> Vec<Summary> {
    let mut keys: Vec<(String, Cell)> = Vec::new();
    for m in measurements {
        let key = (m.model.clone(), m.cell);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .filter_map(|(model, cell)| {
            let runs: Vec<&Measurement> = measurements
                .iter()
                .filter(|m| m.model == model && m.cell == cell)
                .collect();
            summarize_runs(model, cell, &runs)
        })
        .collect()
}

fn summarize_runs(model: String, cell: Cell, all_runs: &[&Measurement]) -> Option<Summary> {
    // A run that measured nothing has zeros, not figures: the others speak for the cell.
    let measured: Vec<&Measurement> = all_runs.iter().copied().filter(|m| m.measured()).collect();
    let runs = if measured.is_empty() {
        all_runs
    } else {
        &measured[..]
    };
    let spread = |f: &dyn Fn(&Measurement) -> f64| Spread::of(runs.iter().map(|m| f(m)));
    let optional = |f: &dyn Fn(&Measurement) -> Option<f64>| {
        let values: Vec<f64> = runs.iter().filter_map(|m| f(m)).collect();
        if values.len() == runs.len() {
            Spread::of(values)
        } else {
            None
        }
    };
    let mut notes: Vec<String> = Vec::new();
    for m in all_runs {
        let note = m.note();
        if !note.is_empty() && !notes.contains(&note) {
            notes.push(note);
        }
    }
    Some(Summary {
        responses_per_sec: spread(&|m| m.responses_per_sec)?,
        p50_us: spread(&|m| m.p50_us)?,
        p99_us: spread(&|m| m.p99_us)?,
        p99_fast_us: optional(&|m| m.p99_fast_us),
        p99_slow_us: optional(&|m| m.p99_slow_us),
        censored_pct: optional(&|m| {
            (m.latency_samples > 0)
                .then(|| m.censored_samples as f64 * 100.0 / m.latency_samples as f64)
        }),
        server_cpu_us_per_response: optional(&|m| m.server_cpu_us_per_response()),
        responses_per_cpu_sec: optional(&|m| m.responses_per_cpu_sec),
        server_cpu_share: spread(&|m| m.server_cpu_share)?,
        peak_rss_kb: spread(&|m| m.peak_rss_kb as f64)?,
        peak_threads: runs.iter().map(|m| m.peak_threads).max().unwrap_or(0),
        peak_processes: runs.iter().map(|m| m.peak_processes).max().unwrap_or(0),
        ctx_switches: optional(&|m| {
            Some((m.voluntary_ctx_switches? + m.involuntary_ctx_switches?) as f64)
        }),
        jain: spread(&|m| m.jain)?,
        memory_per_conn_kb: optional(&|m| m.memory_per_conn_kb),
        idle_held: runs.iter().filter_map(|m| m.idle_held).min(),
        loss_pct: optional(&|m| m.udp.loss_pct),
        note: notes.join(" | "),
        failed_runs: all_runs.len() - measured.len(),
        clean_runs: runs
            .iter()
            .filter(|m| {
                m.server_exit_clean
                    && m.errors.values().all(|&n| n == 0)
                    && m.server_errors.values().all(|&n| n == 0)
            })
            .count(),
        client_bound_runs: runs
            .iter()
            .filter(|m| m.marks.client_bound.is_some())
            .count(),
        suspect_runs: runs.iter().filter(|m| m.marks.suspect.is_some()).count(),
        marks: Marks {
            client_bound: runs.iter().find_map(|m| m.marks.client_bound.clone()),
            suspect: runs.iter().find_map(|m| m.marks.suspect.clone()),
        },
        runs: all_runs.len(),
        model,
        cell,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::HarnessError;
    use crate::scenario::Scenario;

    /// A made-up run of `model` on `cell` with `responses` replies in a 1 s window (none:
    /// a run that measured nothing), for tests of what is made of measurements.
    pub(crate) fn run(model: &str, cell: Cell, repeat: usize, responses: u64) -> Measurement {
        let mut m =
            Measurement::could_not_run(model, cell, repeat, &HarnessError::Plan("-".into()));
        m.failure = (responses == 0).then(|| "no replies".to_string());
        m.responses = responses;
        m.responses_per_sec = responses as f64;
        m.p50_us = 20.0;
        m.p99_us = 40.0;
        m.server_exit_clean = true;
        m
    }

    #[test]
    fn repeats_that_measured_nothing_are_counted_not_folded_in() {
        let cell = Scenario::Throughput.cells(false)[1];
        let runs = [
            run("mio", cell, 0, 1000),
            run("mio", cell, 1, 0),
            run("mio", cell, 2, 3000),
            run("iterative", cell, 0, 0),
            Measurement::could_not_run("uring", cell, 0, &HarnessError::Plan("no io_uring".into())),
        ];
        let summaries = summarize(&runs);
        let mio = &summaries[0];
        assert_eq!((mio.runs, mio.failed_runs), (3, 1));
        assert!(!mio.measured_nothing());
        // The median of the two that measured, not of 0, 1000 and 3000.
        assert_eq!(mio.responses_per_sec.min, 1000.0);
        assert_eq!(mio.responses_per_sec.max, 3000.0);
        assert!(mio.note.contains("no replies"), "{}", mio.note);
        let iterative = &summaries[1];
        assert!(iterative.measured_nothing());
        let uring = &summaries[2];
        assert!(uring.measured_nothing());
        assert_eq!(uring.note, "could not run: no io_uring");
    }

    #[test]
    fn median_of_odd_and_even_counts_is_a_seen_value() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 4.0));
        assert!(Spread::of(Vec::<f64>::new()).is_none());
        let s = Spread::of([f64::NAN, 5.0]).unwrap();
        assert_eq!(s.median, 5.0);
    }
}
