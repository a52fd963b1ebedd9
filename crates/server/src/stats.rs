use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use echolab_proto::{CloseReason, Session};
use serde::{Deserialize, Serialize};

/// Server-wide counters. Connections fold their counts in once, when they end, so the
/// per-message path touches no shared cache line.
#[derive(Debug, Default)]
pub struct ServerStats {
    accepted: AtomicU64,
    refused_busy: AtomicU64,
    active: AtomicU64,
    active_peak: AtomicU64,
    frames: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    closes: [AtomicU64; CloseReason::ALL.len()],
    io_errors: AtomicU64,
    accept_errors: AtomicU64,
    datagrams: [AtomicU64; DatagramCounts::FIELDS],
    kernel_held: Mutex<BTreeMap<String, u64>>,
    /// Accepts by worker index (a loop of `reactors`, a process of `prefork`): grown on
    /// demand; touched once per accept, never per message.
    accepted_per_worker: Mutex<Vec<u64>>,
    /// Datagram models: the largest `SO_RCVBUF` of their sockets (0: none recorded).
    recv_buffer_bytes: AtomicU64,
}

/// What the datagram models did, datagram by datagram (all zero for stream models).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatagramCounts {
    /// Datagrams received, answered or not.
    pub received: u64,
    /// Replies sent.
    pub answered: u64,
    /// Dropped unanswered: larger than `--max-frame`, cut short by the receive buffer
    /// (`MSG_TRUNC`).
    pub truncated: u64,
    /// Replies dropped because the socket's send buffer, and the model's queue of
    /// replies owed behind it, were full.
    pub send_queue_full: u64,
    /// Replies the kernel refused (`sendto` failed for another reason).
    pub send_errors: u64,
    /// Receive calls that failed (an ICMP error reported on the socket, say).
    pub recv_errors: u64,
}

impl DatagramCounts {
    const FIELDS: usize = 6;

    fn to_array(self) -> [u64; Self::FIELDS] {
        [
            self.received,
            self.answered,
            self.truncated,
            self.send_queue_full,
            self.send_errors,
            self.recv_errors,
        ]
    }

    fn from_array(a: [u64; Self::FIELDS]) -> DatagramCounts {
        let [received, answered, truncated, send_queue_full, send_errors, recv_errors] = a;
        DatagramCounts {
            received,
            answered,
            truncated,
            send_queue_full,
            send_errors,
            recv_errors,
        }
    }

    /// Whether nothing was counted (a stream model's stats line leaves them out).
    pub fn is_zero(&self) -> bool {
        *self == DatagramCounts::default()
    }
}

/// A point-in-time copy of [`ServerStats`], as printed in the JSON stats line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused because the server was at `--max-conns` (or out of threads,
    /// processes or workers).
    pub refused_busy: u64,
    /// Most connections served at once.
    pub active_peak: u64,
    /// Frames echoed.
    pub frames: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// How connections ended, by reason.
    pub closed: BTreeMap<String, u64>,
    /// Errors by kind: protocol violations, timeouts, I/O errors, accept errors.
    pub errors: BTreeMap<String, u64>,
    /// Datagram models: datagrams received, answered and dropped, by why (left out of
    /// the line when all are zero, as for every stream model).
    #[serde(default, skip_serializing_if = "DatagramCounts::is_zero")]
    pub datagrams: DatagramCounts,
    /// What a completion model had lent the kernel and not got back when it stopped
    /// (provided buffers, operations in flight), by name: all zero after a clean stop.
    /// Absent for models that lend the kernel nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kernel_held: BTreeMap<String, u64>,
    /// Connections accepted by each worker, for models whose workers accept on their
    /// own (`reactors`' loops, each on its own `SO_REUSEPORT` listener; `prefork`'s
    /// processes on a shared one): how evenly the kernel spread them. Left out of the
    /// JSON for models with one accepting loop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_per_worker: Vec<u64>,
    /// Datagram models: `SO_RCVBUF` of the receiving socket (the largest, with several),
    /// as `getsockopt` reports it: how many bytes of datagrams, each counted with its
    /// kernel overhead, wait for the server before the kernel drops the next. Absent
    /// for stream models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_buffer_bytes: Option<u64>,
}

impl ServerStats {
    /// A connection was accepted.
    pub fn record_accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Worker `index` accepted a connection (counted besides [`ServerStats::record_accept`]).
    pub fn record_worker_accept(&self, index: usize) {
        let mut counts = lock(&self.accepted_per_worker);
        if counts.len() <= index {
            counts.resize(index + 1, 0);
        }
        counts[index] += 1;
    }

    /// Most connections served at once, as counted elsewhere (`prefork`'s processes
    /// share a counter of their own; each child's snapshot knows only itself).
    pub fn record_active_peak(&self, peak: u64) {
        self.active_peak.fetch_max(peak, Ordering::Relaxed);
    }

    /// A connection was refused for lack of capacity.
    pub fn record_refused(&self) {
        self.refused_busy.fetch_add(1, Ordering::Relaxed);
    }

    /// `accept` failed (EMFILE, ENOBUFS, ...).
    pub fn record_accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection started being served; returns false past `max` (and undoes itself).
    pub(crate) fn try_enter(&self, max: usize) -> bool {
        let now = self.active.fetch_add(1, Ordering::AcqRel) + 1;
        if now > max as u64 {
            self.active.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.active_peak.fetch_max(now, Ordering::Relaxed);
        true
    }

    pub(crate) fn leave(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    /// A completion model, as it stops: `count` of what it calls `name` (provided
    /// buffers, operations) is still held by the kernel. Printed in the stats line under
    /// `kernel_held`, so a test can check that nothing leaked.
    pub fn record_kernel_held(&self, name: &str, count: u64) {
        let mut held = self.kernel_held.lock().unwrap_or_else(|e| e.into_inner());
        *held.entry(name.to_string()).or_default() += count;
    }

    /// Connections being served right now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Acquire)
    }

    /// Folds in a finished session; `io_error` when the connection ended with an I/O
    /// error (a reset, say) rather than through the protocol.
    pub fn record_session(&self, session: &Session, io_error: bool) {
        let counts = session.stats();
        self.frames.fetch_add(counts.frames, Ordering::Relaxed);
        self.bytes_in.fetch_add(counts.bytes_in, Ordering::Relaxed);
        self.bytes_out
            .fetch_add(counts.bytes_out, Ordering::Relaxed);
        if io_error {
            self.io_errors.fetch_add(1, Ordering::Relaxed);
        } else if let Some(reason) = session.close_reason() {
            let index = CloseReason::ALL
                .iter()
                .position(|r| *r == reason)
                .unwrap_or_default();
            self.closes[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Folds in one datagram loop's counts (and its bytes), once, when the loop ends:
    /// the per-datagram path touches no shared counter.
    pub fn record_datagrams(&self, counts: &DatagramCounts, bytes_in: u64, bytes_out: u64) {
        for (total, n) in self.datagrams.iter().zip(counts.to_array()) {
            total.fetch_add(n, Ordering::Relaxed);
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// A datagram socket's receive buffer, `SO_RCVBUF` bytes.
    pub fn record_recv_buffer(&self, bytes: u64) {
        self.recv_buffer_bytes.fetch_max(bytes, Ordering::Relaxed);
    }

    /// Adds a snapshot taken elsewhere (a forked child's, whose counters die with it)
    /// to these counters. `active_peak` is not added: the caller counts its own.
    pub fn absorb(&self, other: &StatsSnapshot) {
        self.accepted.fetch_add(other.accepted, Ordering::Relaxed);
        self.refused_busy
            .fetch_add(other.refused_busy, Ordering::Relaxed);
        self.frames.fetch_add(other.frames, Ordering::Relaxed);
        self.bytes_in.fetch_add(other.bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(other.bytes_out, Ordering::Relaxed);
        for (reason, count) in CloseReason::ALL.iter().zip(&self.closes) {
            if let Some(n) = other.closed.get(reason.name()) {
                count.fetch_add(*n, Ordering::Relaxed);
            }
        }
        let error = |kind: &str| other.errors.get(kind).copied().unwrap_or_default();
        self.io_errors.fetch_add(error("io"), Ordering::Relaxed);
        self.accept_errors
            .fetch_add(error("accept"), Ordering::Relaxed);
        for (total, n) in self.datagrams.iter().zip(other.datagrams.to_array()) {
            total.fetch_add(n, Ordering::Relaxed);
        }
        for (name, count) in &other.kernel_held {
            self.record_kernel_held(name, *count);
        }
        if let Some(bytes) = other.recv_buffer_bytes {
            self.record_recv_buffer(bytes);
        }
        if !other.accepted_per_worker.is_empty() {
            let mut counts = lock(&self.accepted_per_worker);
            if counts.len() < other.accepted_per_worker.len() {
                counts.resize(other.accepted_per_worker.len(), 0);
            }
            for (count, n) in counts.iter_mut().zip(&other.accepted_per_worker) {
                *count += n;
            }
        }
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut closed = BTreeMap::new();
        let mut errors = BTreeMap::new();
        for (reason, count) in CloseReason::ALL.iter().zip(&self.closes) {
            let count = load(count);
            closed.insert(reason.name().to_string(), count);
            if reason.is_error() {
                errors.insert(reason.name().to_string(), count);
            }
        }
        errors.insert("io".to_string(), load(&self.io_errors));
        errors.insert("accept".to_string(), load(&self.accept_errors));
        StatsSnapshot {
            accepted: load(&self.accepted),
            refused_busy: load(&self.refused_busy),
            active_peak: load(&self.active_peak),
            frames: load(&self.frames),
            bytes_in: load(&self.bytes_in),
            bytes_out: load(&self.bytes_out),
            closed,
            errors,
            datagrams: DatagramCounts::from_array(self.datagrams.each_ref().map(load)),
            kernel_held: self
                .kernel_held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            accepted_per_worker: lock(&self.accepted_per_worker).clone(),
            recv_buffer_bytes: Some(load(&self.recv_buffer_bytes)).filter(|&n| n > 0),
        }
    }
}

/// The counts behind a lock nobody can leave inconsistent (a poisoned lock only means
/// another thread panicked between two plain additions).
fn lock(counts: &Mutex<Vec<u64>>) -> std::sync::MutexGuard<'_, Vec<u64>> {
    counts
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_adds_a_snapshot_taken_elsewhere() {
        let child = ServerStats::default();
        child.record_refused();
        child.record_accept_error();
        let mut snapshot = child.snapshot();
        snapshot.frames = 6;
        snapshot.bytes_in = 100;
        snapshot.bytes_out = 90;
        if let Some(first) = snapshot.closed.keys().next().cloned() {
            snapshot.closed.insert(first, 3);
        }
        let parent = ServerStats::default();
        parent.record_accept();
        parent.absorb(&snapshot);
        parent.absorb(&snapshot);
        let total = parent.snapshot();
        assert_eq!(total.accepted, 1);
        assert_eq!(total.refused_busy, 2);
        assert_eq!(total.frames, 12);
        assert_eq!(total.bytes_in, 200);
        assert_eq!(total.bytes_out, 180);
        assert_eq!(total.errors["accept"], 2);
        assert_eq!(total.closed.values().sum::<u64>(), 6);
        assert!(total.accepted_per_worker.is_empty());
    }

    #[test]
    fn per_worker_accepts_add_up_across_snapshots() {
        let parent = ServerStats::default();
        parent.record_worker_accept(0);
        let child = ServerStats::default();
        child.record_worker_accept(2);
        child.record_worker_accept(2);
        parent.absorb(&child.snapshot());
        assert_eq!(parent.snapshot().accepted_per_worker, vec![1, 0, 2]);
        let json = serde_json::to_value(parent.snapshot()).unwrap();
        assert_eq!(json["accepted_per_worker"], serde_json::json!([1, 0, 2]));
        // A model with one accepting loop prints no such field.
        let single = serde_json::to_value(ServerStats::default().snapshot()).unwrap();
        assert!(single.get("accepted_per_worker").is_none());
    }

    #[test]
    fn datagram_counts_fold_in_and_stay_out_of_a_stream_models_line() {
        let stats = ServerStats::default();
        let line = serde_json::to_value(stats.snapshot()).unwrap();
        assert!(line.get("datagrams").is_none(), "{line}");
        let counts = DatagramCounts {
            received: 5,
            answered: 3,
            truncated: 1,
            send_queue_full: 1,
            ..DatagramCounts::default()
        };
        stats.record_datagrams(&counts, 500, 300);
        stats.record_datagrams(&counts, 500, 300);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.datagrams.received, 10);
        assert_eq!(snapshot.datagrams.truncated, 2);
        assert_eq!((snapshot.bytes_in, snapshot.bytes_out), (1000, 600));
        let line = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(line["datagrams"]["send_queue_full"], 2);
        let back: StatsSnapshot = serde_json::from_value(line).unwrap();
        assert_eq!(back, snapshot);
    }
}
