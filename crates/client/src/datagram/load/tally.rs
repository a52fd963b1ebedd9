//! What one generator thread counted, and the merge of every thread's count.

use std::time::Duration;

use hdrhistogram::Histogram;

/// What one thread counted.
pub(super) struct Tally {
    pub(super) histogram: Histogram<u64>,
    pub(super) sent: u64,
    pub(super) responses: u64,
    pub(super) lost: u64,
    pub(super) duplicated: u64,
    pub(super) reordered: u64,
    pub(super) corrupted: u64,
    pub(super) late: u64,
    pub(super) unsent: u64,
    pub(super) refused: u64,
    /// Responses in the measured window, per socket (taken at the end).
    pub(super) per_socket: Vec<u64>,
    /// The generator threads' own (user, system) CPU over the measured window.
    pub(super) cpu: (Duration, Duration),
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            // 1 us .. 100 s in nanoseconds, 3 significant digits (as the TCP load).
            histogram: Histogram::new_with_bounds(1_000, 100_000_000_000, 3)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
            sent: 0,
            responses: 0,
            lost: 0,
            duplicated: 0,
            reordered: 0,
            corrupted: 0,
            late: 0,
            unsent: 0,
            refused: 0,
            per_socket: Vec::new(),
            cpu: (Duration::ZERO, Duration::ZERO),
        }
    }

    pub(super) fn merge(&mut self, other: &Tally) {
        let _ = self.histogram.add(&other.histogram);
        self.sent += other.sent;
        self.responses += other.responses;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.corrupted += other.corrupted;
        self.late += other.late;
        self.unsent += other.unsent;
        self.refused += other.refused;
        self.per_socket.extend(&other.per_socket);
        self.cpu = (self.cpu.0 + other.cpu.0, self.cpu.1 + other.cpu.1);
    }
}
