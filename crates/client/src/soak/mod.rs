//! The soak behind `echolab soak`: many connections for a long time with random frame
//! sizes, random write pieces and pauses, random read sizes, a few frames pipelined and
//! connections closed and reopened all along — every byte verified twice (frame by frame
//! against a regenerated payload, and a running checksum per direction per connection)
//! — while the server's resident memory and descriptors are sampled from `/proc`.
//!
//! Verdict: zero mismatched frames, zero checksum mismatches, zero errors of any kind
//! (against a healthy server on loopback nothing is expected to fail), and the server's
//! descriptors back to where they started once every connection is closed.

mod checksum;
mod life;
mod procfs;
mod report;
mod rng;
mod server;
mod shape;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use echolab_proto::AuthKey;

pub use report::SoakReport;
pub use server::{ServerError, ServerExit, ServerProcess};

use life::Tally;
use procfs::{tree_usage, TreeUsage};
use rng::Rng;

/// What to soak and how hard.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The server (framed protocol).
    pub addr: SocketAddr,
    /// Its key, when it requires the handshake.
    pub auth_key: Option<AuthKey>,
    /// Connection slots; each connects, lives a random number of frames, closes, and
    /// reconnects until the end.
    pub conns: usize,
    /// How long to keep going.
    pub duration: Duration,
    /// Time under load before the first memory sample (allocators and buffers warm).
    pub warmup: Duration,
    /// Seeds every random choice.
    pub seed: u64,
    /// Largest frame payload sent, in bytes (must not exceed the server's `--max-frame`).
    pub max_size: usize,
    /// Most frames in flight on one connection (each life picks 1 to this many).
    pub depth: usize,
    /// Connect, read and write timeout on every socket.
    pub timeout: Duration,
    /// The server's process, for memory and descriptor samples (`None`: traffic only).
    pub server_pid: Option<u32>,
    /// Descriptors the server may hold beyond its starting count once all is closed.
    pub fd_tolerance: u64,
}

impl SoakConfig {
    /// Defaults: 32 connections for 60 s after 5 s of warm-up, frames up to 256 KiB,
    /// up to 4 in flight, 10 s timeouts, seed 1, no `/proc` samples.
    pub fn new(addr: SocketAddr) -> SoakConfig {
        SoakConfig {
            addr,
            auth_key: None,
            conns: 32,
            duration: Duration::from_secs(60),
            warmup: Duration::from_secs(5),
            seed: 1,
            max_size: 256 * 1024,
            depth: 4,
            timeout: Duration::from_secs(10),
            server_pid: None,
            fd_tolerance: 2,
        }
    }
}

/// How long to wait, after the last connection closed, for the server to close its
/// side (a `fork` child exits, a readiness loop sees the EOF).
const SETTLE: Duration = Duration::from_secs(5);

/// Runs the soak to the end of `duration` and reports. Failures of single connections
/// are counted in the report, never returned; the caller reads the verdict from
/// [`SoakReport::failures`].
pub fn run(config: &SoakConfig) -> SoakReport {
    let probe = |pid: Option<u32>| pid.map(tree_usage);
    let idle_before = probe(config.server_pid);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let end = started + config.duration;
    let warm = started + config.warmup.min(config.duration / 2);
    let mut seeds = Rng::new(config.seed);
    let slot_rngs: Vec<Rng> = (0..config.conns)
        .map(|slot| seeds.fork(slot as u64))
        .collect();
    let mut loaded_start: Option<TreeUsage> = None;
    let mut loaded_end: Option<TreeUsage> = None;
    let mut rss_max_kb = 0;
    let tally = std::thread::scope(|scope| {
        let slots: Vec<_> = slot_rngs
            .into_iter()
            .enumerate()
            .map(|(slot, rng)| {
                let stop = &stop;
                scope.spawn(move || run_slot(config, slot, rng, stop))
            })
            .collect();
        let mut next_sample = warm;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if now >= next_sample {
                if let Some(usage) = probe(config.server_pid) {
                    rss_max_kb = rss_max_kb.max(usage.rss_kb);
                    loaded_start.get_or_insert(usage);
                    loaded_end = Some(usage);
                }
                next_sample = now + Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(50).min(end - now));
        }
        if let Some(usage) = probe(config.server_pid) {
            rss_max_kb = rss_max_kb.max(usage.rss_kb);
            loaded_end = Some(usage);
        }
        stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for slot in slots {
            match slot.join() {
                Ok(tally) => total.add(&tally),
                Err(_) => total.error("slot_panic"),
            }
        }
        total
    });
    let seconds = started.elapsed().as_secs_f64();
    let idle_after = config
        .server_pid
        .zip(idle_before)
        .map(|(pid, before)| settle(pid, before, config.fd_tolerance));
    SoakReport::new(
        config,
        &tally,
        seconds,
        idle_before,
        loaded_start,
        loaded_end,
        rss_max_kb,
        idle_after,
    )
}

/// One connection slot: lives back to back until `stop`.
fn run_slot(config: &SoakConfig, slot: usize, mut rng: Rng, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let mut generation: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        // Unique per life, so a reply crossing to another connection cannot verify.
        let id = (slot as u32) << 20 | (generation & 0xf_ffff);
        generation = generation.wrapping_add(1);
        life::run(config, id, &mut rng, stop, &mut tally);
    }
    tally
}

/// Waits until the server's descriptors are back within tolerance of `before` and any
/// extra processes are gone, or `SETTLE` passes; returns the last sample.
fn settle(pid: u32, before: TreeUsage, tolerance: u64) -> TreeUsage {
    let deadline = Instant::now() + SETTLE;
    loop {
        let usage = tree_usage(pid);
        let settled = usage.fds <= before.fds + tolerance && usage.processes <= before.processes;
        if settled || Instant::now() >= deadline {
            return usage;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
