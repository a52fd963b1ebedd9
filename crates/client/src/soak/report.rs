//! The soak's outcome: the `--json` object, the summary, and the verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::life::Tally;
use super::procfs::TreeUsage;
use super::SoakConfig;

/// The outcome of a soak (the `--json` object). Memory and descriptor fields are `null`
/// when the server's process was not known.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Seed of every random choice; rerun with it to replay the traffic shape.
    pub seed: u64,
    /// Seconds the traffic ran.
    pub seconds: f64,
    /// Connection slots.
    pub conns: usize,
    /// Connections made over the run (churn).
    pub connections: u64,
    /// Replies verified byte for byte.
    pub messages: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Replies that differed from what was sent.
    pub mismatches: u64,
    /// Connections whose checksum of sent payload bytes differed from the checksum of
    /// received payload bytes.
    pub checksum_mismatches: u64,
    /// Failures by kind (`connect`, `timeout`, `reset`, `closed_early`, `notice`,
    /// `protocol`, `io`, ...); against a healthy server this is empty.
    pub errors: BTreeMap<String, u64>,
    /// Server RSS (kB, its whole process tree) after the warm-up, under load.
    pub rss_start_kb: Option<u64>,
    /// Server RSS at the end, still under load.
    pub rss_end_kb: Option<u64>,
    /// `rss_end_kb - rss_start_kb`.
    pub rss_drift_kb: Option<i64>,
    /// Largest RSS sampled (once a second after the warm-up).
    pub rss_max_kb: Option<u64>,
    /// Server descriptors (whole tree) before the first connection.
    pub fds_start: Option<u64>,
    /// Server descriptors after the last connection closed and the server settled.
    pub fds_end: Option<u64>,
    /// `fds_end - fds_start`.
    pub fd_drift: Option<i64>,
    /// The allowed `fd_drift`.
    pub fd_tolerance: u64,
}

impl SoakReport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: &SoakConfig,
        tally: &Tally,
        seconds: f64,
        idle_before: Option<TreeUsage>,
        loaded_start: Option<TreeUsage>,
        loaded_end: Option<TreeUsage>,
        rss_max_kb: u64,
        idle_after: Option<TreeUsage>,
    ) -> SoakReport {
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let rss_start_kb = loaded_start.map(|u| u.rss_kb);
        let rss_end_kb = loaded_end.map(|u| u.rss_kb);
        let fds_start = idle_before.map(|u| u.fds);
        let fds_end = idle_after.map(|u| u.fds);
        SoakReport {
            seed: config.seed,
            seconds,
            conns: config.conns,
            connections: tally.connections,
            messages: tally.messages,
            bytes_sent: tally.bytes_sent,
            bytes_received: tally.bytes_received,
            mismatches: tally.mismatches,
            checksum_mismatches: tally.checksum_mismatches,
            errors: tally
                .errors
                .iter()
                .map(|(kind, n)| ((*kind).to_string(), *n))
                .collect(),
            rss_start_kb,
            rss_end_kb,
            rss_drift_kb: rss_start_kb
                .zip(rss_end_kb)
                .map(|(start, end)| signed(end) - signed(start)),
            rss_max_kb: loaded_end.map(|_| rss_max_kb),
            fds_start,
            fds_end,
            fd_drift: fds_start
                .zip(fds_end)
                .map(|(start, end)| signed(end) - signed(start)),
            fd_tolerance: config.fd_tolerance,
        }
    }

    /// Why the soak failed, one short phrase each; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if self.mismatches > 0 {
            failures.push(format!("{} mismatched replies", self.mismatches));
        }
        if self.checksum_mismatches > 0 {
            failures.push(format!(
                "{} connections with a checksum mismatch",
                self.checksum_mismatches
            ));
        }
        let errors: u64 = self.errors.values().sum();
        if errors > 0 {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            failures.push(format!("{errors} errors ({})", kinds.join(", ")));
        }
        if self.messages == 0 {
            failures.push("no reply verified".to_string());
        }
        if let Some(drift) = self.fd_drift {
            if drift > i64::try_from(self.fd_tolerance).unwrap_or(i64::MAX) {
                failures.push(format!(
                    "server holds {drift} more descriptors than at the start (tolerance {})",
                    self.fd_tolerance
                ));
            }
        }
        failures
    }

    /// A human-readable summary, one fact per line.
    pub fn summary(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut out = String::new();
        let _ = writeln!(out, "seed          {}", self.seed);
        let _ = writeln!(
            out,
            "traffic       {:.1} s, {} slots, {} connections, {} replies verified ({:.0}/s)",
            self.seconds,
            self.conns,
            self.connections,
            self.messages,
            self.messages as f64 / self.seconds.max(1e-9)
        );
        let _ = writeln!(
            out,
            "bytes         {:.1} MiB sent, {:.1} MiB received",
            mib(self.bytes_sent),
            mib(self.bytes_received)
        );
        let _ = writeln!(
            out,
            "mismatches    {} replies, {} checksums",
            self.mismatches, self.checksum_mismatches
        );
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "errors        {}",
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            }
        );
        match (self.rss_start_kb, self.rss_end_kb, self.rss_drift_kb) {
            (Some(start), Some(end), Some(drift)) => {
                let _ = writeln!(
                    out,
                    "server rss    {start} kB after warm-up, {end} kB at the end ({drift:+} kB), max {} kB",
                    self.rss_max_kb.unwrap_or(end)
                );
            }
            _ => {
                let _ = writeln!(out, "server rss    not sampled");
            }
        }
        match (self.fds_start, self.fds_end, self.fd_drift) {
            (Some(start), Some(end), Some(drift)) => {
                let _ = writeln!(
                    out,
                    "server fds    {start} before, {end} after all closed ({drift:+}, tolerance {})",
                    self.fd_tolerance
                );
            }
            _ => {
                let _ = writeln!(out, "server fds    not sampled");
            }
        }
        let failures = self.failures();
        let _ = writeln!(
            out,
            "verdict       {}",
            if failures.is_empty() {
                "pass".to_string()
            } else {
                format!("FAIL: {}", failures.join("; "))
            }
        );
        out
    }
}
