//! The names the load generator and the soak count failures by. They are the keys of
//! `LoadReport::errors` and `SoakTraffic::errors`, so the JSON, the printed summaries
//! and the harness's CSV all spell a failure the same way.

use std::collections::BTreeMap;
use std::io;

use crate::error::ClientError;

/// What went wrong on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A reply differed from the message sent, or came when none was owed.
    Mismatch,
    /// The server sent an error notice.
    Notice,
    /// The server closed the connection while replies were owed (load).
    ShortRead,
    /// The connection was reset, or closed by the server with nothing owed (load).
    Reset,
    /// A reply, read or write took longer than the timeout.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// Any other socket error.
    Io,
    /// An open-loop message dropped because its connection already had the maximum in
    /// flight.
    Backlog,
    /// The server closed the connection while a reply was awaited (soak).
    ClosedEarly,
    /// The server's bytes did not parse as replies.
    Protocol,
    /// The server sent bytes after the last reply, before closing (soak).
    BytesAfterLastReply,
    /// A frame larger than the protocol can carry (soak).
    FrameTooLarge,
    /// The writer announced nothing within the timeout (soak).
    WriterStalled,
    /// A connection's writer thread panicked (soak).
    WriterPanic,
    /// A connection slot's thread panicked (soak).
    SlotPanic,
}

impl FailureKind {
    /// Every kind, in declaration order (`ALL[k as usize] == k`).
    pub const ALL: [FailureKind; 15] = [
        FailureKind::Mismatch,
        FailureKind::Notice,
        FailureKind::ShortRead,
        FailureKind::Reset,
        FailureKind::Timeout,
        FailureKind::Connect,
        FailureKind::Io,
        FailureKind::Backlog,
        FailureKind::ClosedEarly,
        FailureKind::Protocol,
        FailureKind::BytesAfterLastReply,
        FailureKind::FrameTooLarge,
        FailureKind::WriterStalled,
        FailureKind::WriterPanic,
        FailureKind::SlotPanic,
    ];

    /// The kinds the load generator meets: its reports (`load --json`, an agent's
    /// report) list each one, zero or not, under these keys. Listed by name, not as a prefix of `ALL`, so
    /// reordering the enum cannot add a soak kind to every load report.
    pub(crate) const LOAD: &'static [FailureKind] = &[
        FailureKind::Mismatch,
        FailureKind::Notice,
        FailureKind::ShortRead,
        FailureKind::Reset,
        FailureKind::Timeout,
        FailureKind::Connect,
        FailureKind::Io,
        FailureKind::Backlog,
    ];

    /// The name reports use: a JSON key, and the word in the summaries.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Mismatch => "mismatch",
            FailureKind::Notice => "notice",
            FailureKind::ShortRead => "short_read",
            FailureKind::Reset => "reset",
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connect",
            FailureKind::Io => "io",
            FailureKind::Backlog => "backlog",
            FailureKind::ClosedEarly => "closed_early",
            FailureKind::Protocol => "protocol",
            FailureKind::BytesAfterLastReply => "bytes_after_last_reply",
            FailureKind::FrameTooLarge => "frame_too_large",
            FailureKind::WriterStalled => "writer_stalled",
            FailureKind::WriterPanic => "writer_panic",
            FailureKind::SlotPanic => "slot_panic",
        }
    }

    /// The kind of a failed read or write.
    pub fn from_io(err: &io::Error) -> FailureKind {
        match err.kind() {
            // A socket timeout surfaces from the kernel as EAGAIN.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => FailureKind::Timeout,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => FailureKind::Reset,
            _ => FailureKind::Io,
        }
    }

    /// [`FailureKind::from_io`] on a socket whose non-blocking connect may not have
    /// finished: a refused or never-made connection shows only on its first read or
    /// write, and is a failed connect, not an I/O error of a live connection.
    pub(crate) fn from_connecting_io(err: &io::Error) -> FailureKind {
        match err.kind() {
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotConnected => FailureKind::Connect,
            _ => FailureKind::from_io(err),
        }
    }

    /// The kind of a failed call on the blocking [`Client`](crate::Client).
    pub fn from_client_error(err: &ClientError) -> FailureKind {
        match err {
            ClientError::Connect { .. } => FailureKind::Connect,
            ClientError::Io { source, .. } => FailureKind::from_io(source),
            ClientError::Notice(_) => FailureKind::Notice,
            ClientError::Closed(_) => FailureKind::ClosedEarly,
            ClientError::Protocol(_) => FailureKind::Protocol,
        }
    }
}

/// How many failures of each kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FailureCounts([u64; FailureKind::ALL.len()]);

impl FailureCounts {
    pub(crate) fn add(&mut self, kind: FailureKind) {
        self.0[kind as usize] += 1;
    }

    pub(crate) fn merge(&mut self, other: &FailureCounts) {
        for (total, n) in self.0.iter_mut().zip(other.0) {
            *total += n;
        }
    }

    /// The counts by name: every kind in `always`, zero or not, and any other kind that
    /// occurred.
    pub(crate) fn by_name(&self, always: &[FailureKind]) -> BTreeMap<String, u64> {
        FailureKind::ALL
            .into_iter()
            .zip(self.0)
            .filter(|(kind, n)| *n > 0 || always.contains(kind))
            .map(|(kind, n)| (kind.name().to_string(), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_names_are_distinct() {
        for (i, kind) in FailureKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i);
        }
        let mut names: Vec<&str> = FailureKind::ALL.map(FailureKind::name).to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FailureKind::ALL.len());
    }

    #[test]
    fn load_lists_the_load_generators_kinds_by_name() {
        // The keys of the load and agent reports' `errors`: a change here is a change
        // to the report format, not a side effect of reordering the enum.
        let names: Vec<&str> = FailureKind::LOAD.iter().map(|k| k.name()).collect();
        let expected = [
            "mismatch",
            "notice",
            "short_read",
            "reset",
            "timeout",
            "connect",
            "io",
            "backlog",
        ];
        assert_eq!(names, expected);
        let counts = FailureCounts::default().by_name(FailureKind::LOAD);
        assert_eq!(counts.len(), expected.len());
        assert!(counts.values().all(|&n| n == 0));
    }

    #[test]
    fn counts_list_the_kinds_asked_for_and_those_that_occurred() {
        let mut counts = FailureCounts::default();
        counts.add(FailureKind::SlotPanic);
        let mut other = FailureCounts::default();
        other.add(FailureKind::SlotPanic);
        counts.merge(&other);
        let listed = counts.by_name(&[FailureKind::Connect]);
        let expected = [("connect".to_string(), 0), ("slot_panic".to_string(), 2)];
        assert_eq!(listed, BTreeMap::from(expected));
    }

    #[test]
    fn socket_errors_are_named_by_what_happened() {
        let kind = |k| FailureKind::from_io(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::WouldBlock), FailureKind::Timeout);
        assert_eq!(kind(io::ErrorKind::BrokenPipe), FailureKind::Reset);
        assert_eq!(kind(io::ErrorKind::ConnectionRefused), FailureKind::Io);
        let connecting = |k| FailureKind::from_connecting_io(&io::Error::from(k));
        assert_eq!(
            connecting(io::ErrorKind::ConnectionRefused),
            FailureKind::Connect
        );
        assert_eq!(connecting(io::ErrorKind::BrokenPipe), FailureKind::Reset);
        assert_eq!(kind(io::ErrorKind::PermissionDenied), FailureKind::Io);
    }
}
