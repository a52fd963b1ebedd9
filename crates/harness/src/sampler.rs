//! Watches the server's process tree while a cell runs: its CPU time exactly at the
//! start and end of the measured window, and the peaks of memory, threads and processes
//! between samples. A local server's tree is read from `/proc`; a server on another host
//! is asked for snapshots of itself, the same figures read by the server from its own
//! `/proc` ([`Probe`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::HashSet;

use crate::cpu_window::{cpu_in_window, CpuReading};
use crate::procfs::{self, sample_tree, TreeSample};
use crate::server::{Snapshots, SNAPSHOT_TIMEOUT};

/// Where the server's figures come from.
#[derive(Debug, Clone)]
pub(crate) enum Probe {
    /// A local process tree, read from `/proc` here.
    Proc(u32),
    /// The server's own snapshots (a server on another host).
    Snapshots(Snapshots),
}

impl Probe {
    /// One reading; `None` when the server is gone (or does not answer).
    fn read(&self) -> Option<TreeSample> {
        match self {
            Probe::Proc(pid) => sample_tree(*pid).ok(),
            Probe::Snapshots(snapshots) => {
                let s = snapshots.take(SNAPSHOT_TIMEOUT).ok()?;
                Some(TreeSample {
                    cpu_secs: s.cpu.secs(),
                    rss_kb: s.rss_kb,
                    threads: s.threads,
                    processes: s.processes,
                    peak_rss_kb: s.max_rss_kb,
                    // A process model answers in the loop that reaps: no child is
                    // reaped while its snapshot reads the tree.
                    reaped_while_read_secs: 0.0,
                })
            }
        }
    }
}

/// How often the peaks are sampled at most.
const PEAK_INTERVAL: Duration = Duration::from_millis(200);
/// Sampling may take at most this share of one core: reading five thousand forked
/// children's `/proc` files takes a good part of a second, time taken from the client
/// and the server being measured, so a big tree is sampled less often.
const MAX_SAMPLING_SHARE: u32 = 10;

/// What the sampler saw.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    /// Server CPU seconds spent inside the measured window.
    pub(crate) cpu_secs: f64,
    /// How much `cpu_secs` may be off by: children reaped while the readings that bound
    /// the window were taken (see `cpu_window`).
    pub(crate) cpu_uncertain_secs: f64,
    /// Largest tree RSS seen, KiB.
    pub(crate) peak_rss_kb: u64,
    /// Most threads seen in the tree.
    pub(crate) peak_threads: u64,
    /// Most processes seen in the tree.
    pub(crate) peak_processes: u64,
}

/// The sockets a server holds, to count the new ones.
#[derive(Debug, Clone)]
pub(crate) enum Sockets {
    /// A local tree's socket inodes.
    Inodes(HashSet<u64>),
    /// A remote server's count of distinct sockets.
    Count(u64),
}

impl Sockets {
    /// How many more than `before`.
    pub(crate) fn new_since(&self, before: &Sockets) -> u64 {
        match (self, before) {
            (Sockets::Inodes(now), Sockets::Inodes(then)) => now.difference(then).count() as u64,
            (Sockets::Count(now), Sockets::Count(then)) => now.saturating_sub(*then),
            _ => 0,
        }
    }
}

impl Probe {
    /// The sockets the server holds and its memory: PSS of a local tree (each shared
    /// page divided among the processes that map it), RSS of a remote one, KiB.
    pub(crate) fn sockets_and_memory(&self) -> (Sockets, u64) {
        match self {
            Probe::Proc(pid) => (
                Sockets::Inodes(procfs::socket_inodes(*pid)),
                procfs::pss_kb(*pid),
            ),
            Probe::Snapshots(snapshots) => match snapshots.take(SNAPSHOT_TIMEOUT) {
                Ok(s) => (Sockets::Count(s.sockets), s.rss_kb),
                Err(_) => (Sockets::Count(0), 0),
            },
        }
    }
}

/// A sampler thread over `[from, to]`; [`Sampler::finish`] returns what it saw.
#[derive(Debug)]
pub(crate) struct Sampler {
    handle: JoinHandle<Window>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    /// Starts sampling the server until `to` (or until stopped).
    pub(crate) fn start(probe: Probe, from: Instant, to: Instant) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || watch(&probe, from, to, &flag));
        Sampler { handle, stop }
    }

    /// Waits for the window to close (or stops early) and returns the figures.
    pub(crate) fn finish(self) -> Window {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

impl Window {
    fn observe(&mut self, sample: TreeSample) {
        self.peak_rss_kb = self.peak_rss_kb.max(sample.rss_kb);
        self.peak_threads = self.peak_threads.max(sample.threads);
        self.peak_processes = self.peak_processes.max(sample.processes);
    }
}

fn watch(probe: &Probe, from: Instant, to: Instant, stop: &AtomicBool) -> Window {
    let mut window = Window::default();
    let mut readings = Vec::new();
    let mut slowest = Duration::ZERO;
    // No reading before the window opens: `cpu_in_window` uses none, and the load is
    // connecting then. A server on another host answers a snapshot in its own loop,
    // and a `fork` parent walking a thousand children's `/proc` for one leaves the
    // load's connection in its backlog meanwhile — for most of a short window.
    std::thread::sleep(from.saturating_duration_since(Instant::now()));
    // The window's last reading is taken a little before its end: a walk over a big
    // tree takes tens of milliseconds, and the load's connections close right after the
    // end. A walk that still straddles the children exiting (it woke late, or ran
    // slower than the ones before) says how much it may have missed, and
    // `cpu_in_window` then bounds the window by the reading before it.
    loop {
        let now = Instant::now();
        let stopping = stop.load(Ordering::Relaxed);
        let Some(sample) = probe.read() else { break };
        let cost = now.elapsed();
        slowest = slowest.max(cost);
        window.observe(sample);
        readings.push(CpuReading {
            at: now,
            cpu_secs: sample.cpu_secs,
            uncertain_secs: sample.reaped_while_read_secs,
        });
        let guard = (slowest * 2).min((to - from) / 4);
        let end = to.checked_sub(guard).unwrap_or(to).max(from);
        if now >= end || stopping {
            break;
        }
        // Wake at the next peak sample, but exactly at the window's end.
        let next = (now + PEAK_INTERVAL.max(cost * MAX_SAMPLING_SHARE)).min(end);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    if let Some(cpu) = cpu_in_window(&readings, from, to) {
        window.cpu_secs = cpu.cpu_secs;
        window.cpu_uncertain_secs = cpu.uncertain_secs;
    }
    window
}
