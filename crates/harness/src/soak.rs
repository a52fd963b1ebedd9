//! `echolab soak` around the one client's soak traffic: the server's whole process tree
//! sampled from `/proc` — descriptors while idle before the first connection and again
//! once the last one closed (a leak shows as drift; a `fork` child that never exits shows
//! too), resident memory under load after the warm-up, once a second, and at the end.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use echolab_client::soak::{self, SoakConfig, SoakTraffic};
use echolab_client::{Client, ClientConfig};
use serde::Serialize;

use crate::procfs::{fd_count, sample_tree};

/// How long, after the last connection closed, the server gets to close its side (a
/// `fork` child to exit, a readiness loop to see the EOF).
const SETTLE: Duration = Duration::from_secs(5);

/// A soak's outcome (the `--json` object). Server fields are `null` without a pid.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// What the connections saw.
    #[serde(flatten)]
    pub traffic: SoakTraffic,
    /// Server RSS (KiB, summed over its process tree) after the warm-up, under load.
    pub rss_start_kb: Option<u64>,
    /// Server RSS at the end, still under load.
    pub rss_end_kb: Option<u64>,
    /// `rss_end_kb - rss_start_kb`.
    pub rss_drift_kb: Option<i64>,
    /// Largest RSS sampled.
    pub rss_max_kb: Option<u64>,
    /// Server descriptors (whole tree) before the first connection.
    pub fds_start: Option<u64>,
    /// Server descriptors once every connection closed and the server settled.
    pub fds_end: Option<u64>,
    /// `fds_end - fds_start`.
    pub fd_drift: Option<i64>,
    /// The largest `fd_drift` that passes.
    pub fd_tolerance: u64,
}

/// Runs the soak traffic against `config.addr`, sampling the process tree of
/// `server_pid` when given.
pub fn run_soak(config: &SoakConfig, server_pid: Option<u32>, fd_tolerance: u64) -> SoakReport {
    let rss_kb = |pid: u32| sample_tree(pid).map(|sample| sample.rss_kb).ok();
    let idle_before = server_pid.map(|pid| idle_baseline(config, pid));
    let mut rss: Vec<u64> = Vec::new();
    let traffic = soak::run(config, || {
        if let Some(kb) = server_pid.and_then(rss_kb) {
            rss.push(kb);
        }
    });
    let fds_end = server_pid
        .zip(idle_before)
        .map(|(pid, (fds, procs))| settle(pid, fds, procs));
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rss_start_kb = rss.first().copied();
    let rss_end_kb = rss.last().copied();
    let fds_start = idle_before.map(|(fds, _)| fds);
    SoakReport {
        traffic,
        rss_start_kb,
        rss_end_kb,
        rss_drift_kb: rss_start_kb
            .zip(rss_end_kb)
            .map(|(start, end)| signed(end) - signed(start)),
        rss_max_kb: rss.iter().max().copied(),
        fds_start,
        fds_end,
        fd_drift: fds_start
            .zip(fds_end)
            .map(|(start, end)| signed(end) - signed(start)),
        fd_tolerance,
    }
}

/// The server's descriptors and processes at rest: after one echo (a server may finish
/// setting up only after its `listening on` line — the `fork` parent then opens its
/// SIGCHLD pipe and stats socket pair, 4 descriptors) and once the count has held still
/// for a moment. That echo is one more connection and frame in the server's stats.
fn idle_baseline(config: &SoakConfig, pid: u32) -> (u64, u64) {
    let probe = ClientConfig {
        auth_key: config.auth_key.clone(),
        timeout: config.timeout,
        ..ClientConfig::new(config.addr)
    };
    // A failure here shows up again, counted, in the traffic.
    if let Ok(mut client) = Client::connect(&probe) {
        let _ = client.echo(b"soak baseline");
    }
    let deadline = Instant::now() + SETTLE;
    let mut last = fd_count(pid);
    let mut steady = 0;
    while steady < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let now = fd_count(pid);
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
    }
    (last, processes(pid))
}

fn processes(pid: u32) -> u64 {
    sample_tree(pid).map_or(0, |sample| sample.processes)
}

/// Waits until the tree is back to at most `fds` descriptors in at most `procs`
/// processes, or `SETTLE` passes; returns the last descriptor count. It waits for the
/// baseline itself, not for the tolerance: a `threads` server closes a connection's
/// socket a moment after the client has gone, and stopping at "within tolerance" would
/// report that moment as drift.
fn settle(pid: u32, fds: u64, procs: u64) -> u64 {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now_fds = fd_count(pid);
        if (now_fds <= fds && processes(pid) <= procs) || Instant::now() >= deadline {
            return now_fds;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl SoakReport {
    /// Why the soak failed, one short phrase each; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = self.traffic.failures();
        if let Some(drift) = self.fd_drift {
            if drift > i64::try_from(self.fd_tolerance).unwrap_or(i64::MAX) {
                failures.push(format!(
                    "the server holds {drift} more descriptors than at the start (tolerance {})",
                    self.fd_tolerance
                ));
            }
        }
        failures
    }

    /// The traffic summary plus the server's memory and descriptors, one fact per line.
    /// No verdict: whoever stops the server knows the last failure (an unclean exit).
    pub fn summary(&self) -> String {
        let mut out = self.traffic.summary();
        match (self.rss_start_kb, self.rss_end_kb, self.rss_drift_kb) {
            (Some(start), Some(end), Some(drift)) => {
                let _ = writeln!(
                    out,
                    "server rss    {start} KiB after warm-up, {end} KiB at the end ({drift:+} KiB), max {} KiB",
                    self.rss_max_kb.unwrap_or(end)
                );
            }
            _ => out.push_str("server rss    not sampled\n"),
        }
        match (self.fds_start, self.fds_end, self.fd_drift) {
            (Some(start), Some(end), Some(drift)) => {
                let _ = writeln!(
                    out,
                    "server fds    {start} before, {end} after all closed ({drift:+}, tolerance {})",
                    self.fd_tolerance
                );
            }
            _ => out.push_str("server fds    not sampled\n"),
        }
        out
    }
}
