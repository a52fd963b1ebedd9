//! The work per message, done for real: the one executor of a `--work` spec that every
//! model calls — on its own thread, on its event loop, or on an [`Offload`](crate::Offload)
//! worker — and none re-implements.
//!
//! - `cpu:DUR` runs SplitMix64 rounds seeded by the message until the thread's CPU clock
//!   (`CLOCK_THREAD_CPUTIME_ID`, so time spent preempted by other processes does not
//!   count) has advanced DUR, reading it every ~2 µs of rounds; how many rounds make
//!   2 µs is measured once at start ([`Work::new`], best of three runs of about 5 ms).
//!   The result goes through [`std::hint::black_box`], so the compiler can remove none
//!   of it.
//! - `block:DUR` sleeps: the thread is held for DUR and uses no CPU, as in a disk read
//!   or a database call.
//!
//! Which message gets which work is [`WorkSpec::choose`]'s, from the payload alone.

use std::hint::black_box;
use std::time::Duration;

use echolab_proto::{Chosen, Handler, WorkKind, WorkSpec};
use nix::time::{clock_gettime, ClockId};
use thiserror::Error;

/// Each calibration run lasts about this long.
const CALIBRATION_RUN: Duration = Duration::from_millis(5);

/// Runs measured once the length is right; the fastest counts (the others were slowed
/// by an interrupt, a cold cache, a frequency change).
const CALIBRATION_RUNS: usize = 3;

/// How much computation runs between two reads of the thread's CPU clock (a syscall of
/// about a tenth of this).
const CHUNK: Duration = Duration::from_micros(2);

/// SplitMix64's increment.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Why the executor could not start.
#[derive(Debug, Error)]
pub enum WorkError {
    /// The thread's CPU clock could not be read, so `cpu` work cannot be calibrated.
    #[error("cannot read this thread's CPU clock to calibrate cpu work: {0}")]
    Clock(#[source] nix::Error),
    /// The thread's CPU clock did not advance over a calibration run.
    #[error(
        "calibrating cpu work: {rounds} rounds took no measurable CPU time on this thread's \
         CPU clock"
    )]
    Calibration {
        /// The rounds run.
        rounds: u64,
    },
}

/// A `--work` spec, ready to run: see the module docs.
#[derive(Debug, Clone)]
pub struct Work {
    spec: WorkSpec,
    /// SplitMix64 rounds per nanosecond of CPU on this machine (0 when the spec has no
    /// `cpu` item, which is then not calibrated).
    rounds_per_ns: f64,
}

impl Work {
    /// The executor for `spec`, calibrating `cpu` work first (about 20–50 ms, on the
    /// calling thread) when the spec has any.
    pub fn new(spec: WorkSpec) -> Result<Work, WorkError> {
        let rounds_per_ns = if spec.has_cpu() { calibrate()? } else { 0.0 };
        Ok(Work {
            spec,
            rounds_per_ns,
        })
    }

    /// The spec it runs.
    pub fn spec(&self) -> &WorkSpec {
        &self.spec
    }

    /// The calibration: SplitMix64 rounds per microsecond of CPU (0 without `cpu` work).
    pub fn rounds_per_us(&self) -> f64 {
        self.rounds_per_ns * 1000.0
    }

    /// Does the work for the message with this payload, on the calling thread, and
    /// says which it was.
    pub fn run(&self, payload: &[u8]) -> Chosen {
        let chosen = self.spec.choose(payload);
        match chosen.kind {
            WorkKind::Cpu => {
                black_box(self.burn_for(seed(payload), chosen.duration));
            }
            WorkKind::Block => std::thread::sleep(chosen.duration),
        }
        chosen
    }
}

impl Work {
    /// Rounds from `state` until this thread's CPU clock has advanced `duration`, in
    /// chunks of about [`CHUNK`] as calibrated. The clock, not the calibration alone,
    /// ends the work: a CPU that runs the rounds faster later than it did at the
    /// calibration (its hyperthread sibling gone idle, a higher clock) would otherwise
    /// make the work shorter than asked. Should the clock fail, the calibrated count
    /// stands in.
    fn burn_for(&self, mut state: u64, duration: Duration) -> u64 {
        let chunk = ((CHUNK.as_nanos() as f64 * self.rounds_per_ns) as u64).max(1);
        let Ok(start) = thread_cpu() else {
            let rounds = (duration.as_nanos() as f64 * self.rounds_per_ns) as u64;
            return burn(state, rounds);
        };
        let mut elapsed = Duration::ZERO;
        loop {
            // The last chunk is cut to what is left: a whole chunk past the duration
            // would add ~1 µs to every message, 10% of a `cpu:10us`.
            let left = duration.saturating_sub(elapsed);
            let rounds = ((left.as_nanos() as f64 * self.rounds_per_ns) as u64).clamp(1, chunk);
            state = burn(state, rounds);
            match thread_cpu() {
                Ok(now) => elapsed = now.saturating_sub(start),
                Err(_) => return state,
            }
            if elapsed >= duration {
                return state;
            }
        }
    }
}

impl Handler for Work {
    fn handle(&self, payload: &[u8]) {
        self.run(payload);
    }
}

/// The rounds' starting state: the payload's length and first bytes, so the work is
/// about the message and cannot be computed ahead of it.
fn seed(payload: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    let n = payload.len().min(8);
    first[..n].copy_from_slice(&payload[..n]);
    u64::from_le_bytes(first) ^ (payload.len() as u64).rotate_left(32)
}

/// `rounds` SplitMix64 steps from `state`: a dependent chain of multiplies, so it runs
/// at the same speed on every call and cannot be vectorised or skipped.
fn burn(mut state: u64, rounds: u64) -> u64 {
    for _ in 0..black_box(rounds) {
        state = state.wrapping_add(GAMMA);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        state ^= z ^ (z >> 31);
    }
    state
}

/// This thread's CPU time so far.
pub(crate) fn thread_cpu() -> Result<Duration, WorkError> {
    let now = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_err(WorkError::Clock)?;
    Ok(Duration::from(now))
}

/// The thread CPU time `rounds` rounds take.
fn time_rounds(rounds: u64) -> Result<Duration, WorkError> {
    let start = thread_cpu()?;
    black_box(burn(black_box(rounds), rounds));
    Ok(thread_cpu()?.saturating_sub(start))
}

/// Rounds per nanosecond: grows a run until it lasts about [`CALIBRATION_RUN`], then
/// keeps the fastest of [`CALIBRATION_RUNS`] runs of that length.
fn calibrate() -> Result<f64, WorkError> {
    let mut rounds: u64 = 1 << 12;
    // Doubling from a few microseconds reaches a millisecond in about ten steps; one
    // run of a millisecond or more then says how many rounds make 5 ms.
    for _ in 0..40 {
        let took = time_rounds(rounds)?;
        if took >= CALIBRATION_RUN / 5 {
            let scale = CALIBRATION_RUN.as_nanos() as f64 / took.as_nanos() as f64;
            rounds = ((rounds as f64 * scale) as u64).max(1);
            break;
        }
        rounds = rounds.saturating_mul(2);
    }
    let mut fastest = Duration::MAX;
    for _ in 0..CALIBRATION_RUNS {
        fastest = fastest.min(time_rounds(rounds)?);
    }
    if fastest.is_zero() {
        return Err(WorkError::Calibration { rounds });
    }
    Ok(rounds as f64 / fastest.as_nanos() as f64)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn work(spec: &str) -> Work {
        Work::new(WorkSpec::parse(spec).unwrap()).unwrap()
    }

    /// The thread CPU and wall time one message's work takes.
    fn measure(work: &Work, payload: &[u8]) -> (Duration, Duration) {
        let (cpu, wall) = (thread_cpu().unwrap(), Instant::now());
        work.run(payload);
        (thread_cpu().unwrap() - cpu, wall.elapsed())
    }

    #[test]
    fn cpu_work_costs_its_duration_in_cpu_time() {
        let started = Instant::now();
        let work = work("cpu:2ms");
        let calibration = started.elapsed();
        assert!(work.rounds_per_us() > 0.0);
        for payload in [&b"one message"[..], &[7u8; 65_536], b""] {
            let (cpu, _) = measure(&work, payload);
            // Generous bounds: these check the calibration, not the machine's speed.
            assert!(
                cpu >= Duration::from_micros(1600),
                "cpu:2ms took {cpu:?} of CPU ({} rounds/us)",
                work.rounds_per_us()
            );
            assert!(
                cpu < Duration::from_millis(20),
                "cpu:2ms took {cpu:?} of CPU"
            );
        }
        // Calibration is a few short runs, not seconds (wall time: the machine is shared).
        assert!(calibration < Duration::from_secs(2), "took {calibration:?}");
    }

    #[test]
    fn block_work_holds_the_thread_without_cpu() {
        let work = work("block:20ms");
        assert_eq!(work.rounds_per_us(), 0.0, "no cpu item, no calibration");
        let (cpu, wall) = measure(&work, b"x");
        assert!(wall >= Duration::from_millis(20), "blocked {wall:?}");
        assert!(cpu < Duration::from_millis(5), "used {cpu:?} of CPU");
    }

    #[test]
    fn run_does_the_work_the_spec_chooses() {
        let work = work("cpu:1us,50%block:1us");
        for i in 0u32..64 {
            let payload = i.to_le_bytes();
            assert_eq!(work.run(&payload), work.spec().choose(&payload));
        }
    }

    #[test]
    fn the_rounds_depend_on_the_message() {
        assert_ne!(burn(seed(b"a"), 100), burn(seed(b"b"), 100));
        assert_ne!(seed(b""), seed(&[0]), "the length counts");
    }
}
