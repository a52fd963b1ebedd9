//! The end of a run: every thread's tally, merged, made into the report.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::classify::WorkClass;
use super::config::{LoadConfig, Mode};
use super::report::{self, LoadMode, LoadReport};
use super::tally::Tally;
use crate::failure::FailureKind;

/// The report, and the histogram its percentiles came from: the replies' round trips
/// with the censored waits folded in (what a load agent sends to be merged).
pub(super) fn report(config: &LoadConfig, tally: &Tally) -> (LoadReport, Histogram<u64>) {
    let responses: u64 = tally.counts.iter().sum();
    let responses_per_sec = report::per_sec(responses, config.duration);
    let mut firsts: Vec<Duration> = tally.first_replies.iter().flatten().copied().collect();
    firsts.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mode = config.mode();
    let mut latency = tally.histogram.clone();
    let censored = tally.censored.fold_into(&mut latency);
    let report = LoadReport {
        mode: match mode {
            Mode::Closed => LoadMode::Closed,
            Mode::Open(_) => LoadMode::Open,
            Mode::Churn => LoadMode::Churn,
        },
        target_rate: config.rate.filter(|_| matches!(mode, Mode::Open(_))),
        connections_per_sec: (mode == Mode::Churn).then_some(responses_per_sec),
        responses,
        seconds: config.duration.as_secs_f64(),
        responses_per_sec,
        mib_per_sec: responses_per_sec * config.size as f64 / (1024.0 * 1024.0),
        latency_us: report::latency(&latency),
        latency_samples: latency.len(),
        latency_us_fast: config
            .work
            .as_ref()
            .map(|_| report::latency(&tally.by_class[WorkClass::Fast as usize])),
        latency_us_slow: config
            .work
            .as_ref()
            .filter(|_| !tally.by_class[WorkClass::Slow as usize].is_empty())
            .map(|_| report::latency(&tally.by_class[WorkClass::Slow as usize])),
        slow_samples: config
            .work
            .as_ref()
            .map(|_| tally.by_class[WorkClass::Slow as usize].len()),
        censored_waits: censored.waits,
        censored_samples: censored.samples,
        errors: tally.failures.by_name(FailureKind::LOAD),
        fairness: report::fairness(&tally.counts),
        first_reply_us_p50: firsts.get(firsts.len() / 2).map(|d| us(*d)).unwrap_or(0.0),
        // A connection that never got a reply has no time to compare.
        first_reply_us_max: if firsts.len() == tally.first_replies.len() {
            firsts.last().map(|d| us(*d))
        } else {
            None
        },
        conns: config.conns,
        size: config.size,
        depth: if mode == Mode::Churn { 1 } else { config.depth },
        client_cpu_user_s: tally.cpu.0.as_secs_f64(),
        client_cpu_sys_s: tally.cpu.1.as_secs_f64(),
    };
    (report, latency)
}
