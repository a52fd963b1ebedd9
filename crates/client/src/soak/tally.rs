//! What lives amount to, summed: messages, bytes, mismatches, and failures by kind.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind};

use crate::ClientError;

/// What one life (or many, summed) amounted to.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) connections: u64,
    pub(crate) messages: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) mismatches: u64,
    pub(crate) checksum_mismatches: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Tally) {
        self.connections += other.connections;
        self.messages += other.messages;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.mismatches += other.mismatches;
        self.checksum_mismatches += other.checksum_mismatches;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    pub(crate) fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// The error kind of a socket failure.
pub(crate) fn kind_of_io(err: &io::Error) -> &'static str {
    match err.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "timeout",
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            "reset"
        }
        _ => "io",
    }
}

pub(crate) fn kind_of_client_error(err: &ClientError) -> &'static str {
    match err {
        ClientError::Connect { .. } => "connect",
        ClientError::Io { source, .. } => kind_of_io(source),
        ClientError::Notice(_) => "notice",
        ClientError::Closed(_) => "closed_early",
        ClientError::Protocol(_) => "protocol",
    }
}
