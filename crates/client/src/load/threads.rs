//! A whole run: the generator threads (and the progress line) from start to end, and
//! what they measured merged into the report.

use std::io;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use hdrhistogram::Histogram;

use super::config::{LoadConfig, Mode, Phases};
use super::report::LoadReport;
use super::tally::Tally;
use super::{event_loop, finish, progress};
use crate::error::ClientError;

/// Runs the load and reports. Errors on individual connections are counted in the
/// report, never fatal; only a configuration that cannot run at all is an error.
pub fn run(config: &LoadConfig) -> Result<LoadReport, ClientError> {
    run_keeping_histogram(config).map(|(report, _)| report)
}

/// [`run`], and the latency histogram the report's percentiles came from (what a load
/// agent sends to the harness, which merges the agents' histograms).
pub fn run_keeping_histogram(
    config: &LoadConfig,
) -> Result<(LoadReport, Histogram<u64>), ClientError> {
    config.check()?;
    let threads = config.threads.min(config.conns);
    let start = Instant::now();
    let phases = Phases::new(config, start);
    let progress_count = AtomicU64::new(0);
    let results: Vec<io::Result<Tally>> = std::thread::scope(|scope| {
        if config.progress {
            let count = &progress_count;
            scope.spawn(move || progress::report_until(start, phases.end, count));
        }
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ids: Vec<u32> = (0..config.conns as u32)
                    .filter(|id| *id as usize % threads == t)
                    .collect();
                let (phases, count) = (&phases, &progress_count);
                scope.spawn(move || event_loop::run(config, &ids, phases, start, count))
            })
            .collect();
        join_all(handles)
    });
    let mut total = Tally::new(matches!(config.mode(), Mode::Open(_)));
    for result in results {
        total.merge(result.map_err(|source| ClientError::Io {
            context: "running the load",
            source,
        })?);
    }
    Ok(finish::report(config, &total))
}

/// Waits for every generator thread; a thread that panicked is an error like any other.
pub(crate) fn join_all<T>(
    handles: Vec<std::thread::ScopedJoinHandle<'_, io::Result<T>>>,
) -> Vec<io::Result<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(io::Error::other("generator thread panicked")))
        })
        .collect()
}
