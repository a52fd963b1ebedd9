//! What lives amount to, summed: messages, bytes, mismatches, and failures by kind.

use crate::failure::{FailureCounts, FailureKind};

/// What one life (or many, summed) amounted to.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) connections: u64,
    pub(crate) messages: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) mismatches: u64,
    pub(crate) checksum_mismatches: u64,
    pub(crate) errors: FailureCounts,
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Tally) {
        self.connections += other.connections;
        self.messages += other.messages;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.mismatches += other.mismatches;
        self.checksum_mismatches += other.checksum_mismatches;
        self.errors.merge(&other.errors);
    }

    pub(crate) fn error(&mut self, kind: FailureKind) {
        self.errors.add(kind);
    }
}
