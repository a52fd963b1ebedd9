//! What a server says about itself when asked (a `snapshot` line on its stdin, see
//! [`crate::control`]): the stats line as it would be printed now, plus what the
//! harness would otherwise read from `/proc` — CPU, memory, threads, processes and
//! descriptors of the server's whole process tree. A server on another host is measured
//! only this way; a measurement window is the difference of two snapshots.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::procfs;
use crate::work::thread_cpu;
use crate::{ResourceUsage, ServerStats, StatsLine};

/// CPU this process has spent taking snapshots, microseconds: the cost of being measured.
static SNAPSHOTS_CPU_US: AtomicU64 = AtomicU64::new(0);

/// One answer to `snapshot`: cumulative figures since the server started, so two of them
/// bound a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Which request this answers (1 for the first); also what marks the line as a
    /// snapshot rather than the stats line.
    pub snapshot: u64,
    /// Microseconds since the server started, on its own clock: the window's length as
    /// the server saw it.
    pub uptime_us: u64,
    /// The stats line as it would be printed now: the model, its counters (a `fork`
    /// child's only once it has exited and sent them), `rusage` of itself and its
    /// reaped children.
    #[serde(flatten)]
    pub line: StatsLine,
    /// CPU time, split by whose it is.
    pub cpu: CpuUse,
    /// Sum of `VmRSS` over the tree now, KiB.
    pub rss_kb: u64,
    /// The largest peak resident set of any one process, live or reaped, KiB.
    pub max_rss_kb: u64,
    /// Threads over the tree now.
    pub threads: u64,
    /// Processes in the tree now, the server included (a `fork` child that has exited
    /// but is not yet reaped included).
    pub processes: u64,
    /// Open descriptors over the tree now.
    pub fds: u64,
    /// Distinct sockets open in the tree now (listeners and connections, each once).
    pub sockets: u64,
}

/// A server's CPU time in microseconds: its own, its reaped children's, its live
/// children's — the three places a process tree's CPU can be, which `getrusage` alone
/// does not cover (a live child is in neither `RUSAGE_SELF` nor `RUSAGE_CHILDREN`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuUse {
    /// `RUSAGE_SELF` user time: every thread the server has had.
    pub self_user_us: u64,
    /// `RUSAGE_SELF` system time.
    pub self_system_us: u64,
    /// `RUSAGE_CHILDREN` user time: the children it has reaped.
    pub reaped_user_us: u64,
    /// `RUSAGE_CHILDREN` system time.
    pub reaped_system_us: u64,
    /// Live children (and their reaped children), user + system, from their
    /// `/proc/PID/task/*/schedstat` (nanoseconds on a CPU) or clock ticks, whichever is
    /// larger (the harness's reading of one process, [`procfs::sample_process`]).
    pub live_children_us: u64,
    /// Of the server's own CPU (`self_*`), what taking the snapshots before this one
    /// cost (this one's walk comes after its `self_*` reading, so it is in the next
    /// one's): the measurement's cost, not the model's. A harness reading
    /// `/proc` itself pays that on its own CPU; over snapshots the server would pay it,
    /// and a walk over a thousand children's files is not free. Zero in a snapshot from
    /// a server that did not count it.
    #[serde(default)]
    pub snapshots_us: u64,
}

impl CpuUse {
    /// Everything, microseconds.
    pub fn total_us(&self) -> u64 {
        self.self_user_us
            + self.self_system_us
            + self.reaped_user_us
            + self.reaped_system_us
            + self.live_children_us
    }

    /// Everything but what taking snapshots cost, microseconds: what the model spent.
    pub fn served_us(&self) -> u64 {
        self.total_us().saturating_sub(self.snapshots_us)
    }

    /// [`CpuUse::served_us`], seconds.
    pub fn secs(&self) -> f64 {
        self.served_us() as f64 / 1e6
    }
}

impl Snapshot {
    /// Reads this process and its tree now.
    ///
    /// The walk over live children and `RUSAGE_CHILDREN` cannot race a reap: a process
    /// model's parent reaps in the same loop that answers snapshots (see
    /// [`crate::control`]), so no child can move from "live" to "reaped" between the two
    /// readings and be counted twice or not at all. A child that has exited but is not
    /// reaped is still in `/proc` with its final times.
    pub fn take(model: &str, stats: &ServerStats, started: Instant, request: u64) -> Snapshot {
        let began = thread_cpu().ok();
        let own = ResourceUsage::of_self();
        let reaped = ResourceUsage::of_reaped_children();
        let me = std::process::id();
        let mut snapshot = Snapshot {
            snapshot: request,
            uptime_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            line: StatsLine {
                model: model.to_string(),
                stats: stats.snapshot(),
                rusage: own.plus(&reaped),
            },
            cpu: CpuUse {
                self_user_us: own.user_us,
                self_system_us: own.system_us,
                reaped_user_us: reaped.user_us,
                reaped_system_us: reaped.system_us,
                live_children_us: 0,
                snapshots_us: 0,
            },
            max_rss_kb: own.max_rss_kb.max(reaped.max_rss_kb),
            ..Snapshot::default()
        };
        // One walk over the tree, each process's files read once: a process model's
        // parent answers in its accept loop, so every file read for a thousand
        // children is time a client waits to be accepted.
        let mut sockets = HashSet::new();
        for (i, pid) in procfs::tree(me).into_iter().enumerate() {
            let Ok(one) = procfs::sample_process(pid) else {
                continue;
            };
            if i > 0 {
                snapshot.cpu.live_children_us += (one.cpu_secs * 1e6).round() as u64;
            }
            snapshot.rss_kb += one.rss_kb;
            snapshot.threads += one.threads;
            snapshot.processes += 1;
            snapshot.max_rss_kb = snapshot.max_rss_kb.max(one.peak_rss_kb);
            let descriptors = procfs::descriptors(pid);
            snapshot.fds += descriptors.count;
            sockets.extend(descriptors.socket_inodes);
        }
        snapshot.sockets = sockets.len() as u64;
        // `own` was read before this walk: its CPU shows in the next snapshot's `self_*`,
        // and so it is subtracted from the next one.
        let walked = match (began, thread_cpu()) {
            (Some(began), Ok(now)) => now.saturating_sub(began),
            _ => Duration::ZERO,
        };
        let walked_us = u64::try_from(walked.as_micros()).unwrap_or(u64::MAX);
        snapshot.cpu.snapshots_us = SNAPSHOTS_CPU_US.fetch_add(walked_us, Ordering::Relaxed);
        snapshot
    }

    /// Parses a line; `None` for anything else (the stats line, `listening on`).
    pub fn parse(line: &str) -> Option<Snapshot> {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        value.get("snapshot")?;
        serde_json::from_value(value).ok()
    }

    /// What happened between `earlier` and this one: CPU, context switches and
    /// counters as differences; the rest (memory, threads, descriptors) as they are now.
    pub fn since(&self, earlier: &Snapshot) -> SnapshotWindow {
        SnapshotWindow {
            seconds: self.uptime_us.saturating_sub(earlier.uptime_us) as f64 / 1e6,
            cpu_secs: self.cpu.served_us().saturating_sub(earlier.cpu.served_us()) as f64 / 1e6,
            voluntary_ctx_switches: self
                .line
                .rusage
                .voluntary_ctx_switches
                .saturating_sub(earlier.line.rusage.voluntary_ctx_switches),
            involuntary_ctx_switches: self
                .line
                .rusage
                .involuntary_ctx_switches
                .saturating_sub(earlier.line.rusage.involuntary_ctx_switches),
        }
    }
}

/// The difference of two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SnapshotWindow {
    /// The window's length on the server's clock.
    pub seconds: f64,
    /// Server CPU (user + system, whole tree) inside it.
    pub cpu_secs: f64,
    /// Voluntary context switches of the server and its reaped children inside it.
    pub voluntary_ctx_switches: u64,
    /// Involuntary ones.
    pub involuntary_ctx_switches: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_and_is_told_from_the_stats_line() {
        let stats = ServerStats::default();
        stats.record_accept();
        let snapshot = Snapshot::take("mio", &stats, Instant::now(), 1);
        assert!(snapshot.rss_kb > 0 && snapshot.threads >= 1 && snapshot.fds >= 3);
        // Another test of this binary may have a child running.
        assert!(snapshot.processes >= 1, "{snapshot:?}");
        assert!(snapshot.cpu.total_us() > 0);
        let next = Snapshot::take("mio", &stats, Instant::now(), 2);
        assert!(
            next.cpu.snapshots_us > snapshot.cpu.snapshots_us,
            "the first walk's own cost is counted in the next: {:?} then {:?}",
            snapshot.cpu,
            next.cpu
        );
        assert!(next.cpu.served_us() < next.cpu.total_us());
        let text = serde_json::to_string(&snapshot).unwrap();
        assert_eq!(Snapshot::parse(&text), Some(snapshot.clone()));
        // The counters sit at the top level, as in the stats line.
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["accepted"], 1);
        let line = serde_json::to_string(&snapshot.line).unwrap();
        assert_eq!(Snapshot::parse(&line), None);
        assert_eq!(Snapshot::parse("listening on 127.0.0.1:1"), None);
    }

    #[test]
    fn a_window_counts_the_cpu_spent_inside_it() {
        let stats = ServerStats::default();
        let started = Instant::now();
        let first = Snapshot::take("mio", &stats, started, 1);
        // Spin until this process has used 50 ms more CPU (however busy the machine),
        // bounded in time.
        let target = ResourceUsage::of_self().cpu_secs() + 0.05;
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let mut x = 0u64;
        while ResourceUsage::of_self().cpu_secs() < target && Instant::now() < deadline {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let second = Snapshot::take("mio", &stats, started, 2);
        let window = second.since(&first);
        assert!(window.seconds > 0.0, "{window:?}");
        assert!(window.cpu_secs >= 0.05, "{window:?}");
    }
}
