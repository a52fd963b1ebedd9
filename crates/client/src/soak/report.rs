//! What the soak's traffic amounted to, and what in it counts as a failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::config::SoakConfig;
use super::tally::Tally;

/// The traffic side of a soak (fields of the `--json` object).
#[derive(Debug, Clone, Serialize)]
pub struct SoakTraffic {
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
    /// Failures by [`FailureKind`](crate::FailureKind) name (`connect`, `timeout`,
    /// `reset`, `closed_early`, `notice`, `protocol`, `io`, `bytes_after_last_reply`,
    /// ...), only those that occurred; against a healthy server, empty.
    pub errors: BTreeMap<String, u64>,
}

impl SoakTraffic {
    pub(crate) fn new(config: &SoakConfig, conns: usize, tally: &Tally, seconds: f64) -> Self {
        SoakTraffic {
            seed: config.seed,
            seconds,
            conns,
            connections: tally.connections,
            messages: tally.messages,
            bytes_sent: tally.bytes_sent,
            bytes_received: tally.bytes_received,
            mismatches: tally.mismatches,
            checksum_mismatches: tally.checksum_mismatches,
            errors: tally.errors.by_name(&[]),
        }
    }

    /// Why the traffic failed, one short phrase each; empty when every byte came back.
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
            failures.push(format!("{errors} errors ({})", self.error_list()));
        }
        if self.messages == 0 {
            failures.push("no reply verified".to_string());
        }
        failures
    }

    fn error_list(&self) -> String {
        let kinds: Vec<String> = self
            .errors
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        kinds.join(", ")
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
        let errors = self.error_list();
        let _ = writeln!(
            out,
            "errors        {}",
            if errors.is_empty() { "none" } else { &errors }
        );
        out
    }
}
