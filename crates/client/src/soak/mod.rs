//! The traffic of `echolab soak`: many connections for a long time with random frame
//! sizes, random write pieces and pauses, random read sizes, a few frames pipelined, and
//! connections closed and reopened all along — every byte verified twice: frame by frame
//! against a regenerated payload, and by a running checksum per direction per connection.
//!
//! Against a healthy server on loopback nothing is expected to fail, so every mismatch
//! and every error of any kind counts against it. The server's memory and descriptors
//! are the harness's business (`echolab_harness::soak`), which samples them through the
//! hook [`run`] calls while the load is on.

mod checksum;
mod config;
mod life;
mod receive;
mod report;
mod rng;
mod send;
mod shape;
mod tally;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use config::{SoakConfig, MAX_CONNS};
pub use report::SoakTraffic;

use crate::failure::FailureKind;
use rng::Rng;
use tally::Tally;

/// Runs the traffic to the end of `duration` and reports it. `under_load` is called
/// once the warm-up is over, then about once a second, and a last time just before the
/// connections start closing — the moments to sample the server. Failures of single
/// connections are counted in the report, never returned.
pub fn run(config: &SoakConfig, mut under_load: impl FnMut()) -> SoakTraffic {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let end = started + config.duration;
    let warm = started + config.warmup.min(config.duration / 2);
    let mut seeds = Rng::new(config.seed);
    let conns = config.conns.min(MAX_CONNS);
    let slot_rngs: Vec<Rng> = (0..conns).map(|slot| seeds.fork(slot as u64)).collect();
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
                under_load();
                next_sample = now + Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(50).min(end - now));
        }
        under_load();
        stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for slot in slots {
            match slot.join() {
                Ok(tally) => total.add(&tally),
                Err(_) => total.error(FailureKind::SlotPanic),
            }
        }
        total
    });
    SoakTraffic::new(config, conns, &tally, started.elapsed().as_secs_f64())
}

/// One connection slot: lives back to back until `stop`.
fn run_slot(config: &SoakConfig, slot: usize, mut rng: Rng, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let mut generation: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        // Unique per life, so a reply crossing to another connection cannot verify.
        let id = ((slot as u32) << 20) | (generation & 0xf_ffff);
        generation = generation.wrapping_add(1);
        life::run(config, id, &mut rng, stop, &mut tally);
    }
    tally
}
