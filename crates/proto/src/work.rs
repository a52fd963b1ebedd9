//! What a server does per message besides echoing it: a [`WorkSpec`], parsed from
//! `--work SPEC`, and the deterministic choice of each message's work. Pure: no clock,
//! no IO — the executor that burns CPU or blocks lives in `echolab-server`.
//!
//! # Grammar
//!
//! ```text
//! spec     = item *( "," item )
//! item     = [ share "%" ] kind ":" [ "exp:" ] duration
//! kind     = "cpu" | "block"
//! share    = decimal with at most two decimals, 0 < share <= 100   (e.g. 1, 0.5, 12.25)
//! duration = decimal unit, unit = "ns" | "us" | "µs" | "ms" | "s"  (e.g. 20us, 1.5ms)
//! ```
//!
//! - `cpu` is real computation over the message, calibrated to take the duration;
//!   `block` holds the thread without using CPU (a stand-in for a disk read or a
//!   database call).
//! - `exp:` makes the duration exponential with that mean; without it it is fixed.
//! - Durations are above 0, at most [`MAX_WORK`] (10 s), in whole nanoseconds (`min`
//!   and `h` are understood too, so that `block:2h` is refused as above the maximum).
//! - At most one item has no share and takes the rest (which must be above 0); if every
//!   item has one, the shares add up to exactly 100%.
//!
//! Examples: `cpu:20us`, `block:1ms`, `cpu:exp:50us`, `cpu:10us,1%block:5ms` (brpc's
//! long tail: 99% of messages cost 10 µs of CPU, 1% block for 5 ms).
//!
//! # The choice, reproducible by the client
//!
//! Which item a message gets, and its exponential draw, is a function of the payload
//! alone, so the load generator computes the same [`Chosen`] as the server and can
//! report the slow messages' latency apart from the fast ones'. The 64-bit hash:
//!
//! 1. FNV-1a 64 (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) over the
//!    payload's length as 8 little-endian bytes, then its first 64 bytes (or all of it,
//!    if shorter) — so classifying a 64 KiB payload costs no more than a small one;
//! 2. then SplitMix64's finaliser (`z ^= z >> 30; z *= 0xbf58476d1ce4e5b9;
//!    z ^= z >> 27; z *= 0x94d049bb133111eb; z ^= z >> 31`), so every bit depends on
//!    every input byte.
//!
//! The item is the first whose cumulative share, in basis points (1% = 100), exceeds
//! `hash % 10_000`. An exponential draw uses the next SplitMix64 output
//! (`finaliser(hash + 0x9e3779b97f4a7c15)`): its top 53 bits give `u` in (0, 1), and the
//! duration is `-mean * ln(u)`, capped at [`MAX_WORK`].
//!
//! Every zero-length payload gets the same choice (so does every payload with the same
//! length and first 64 bytes): a load that sends identical messages gets one kind only.
//! A message is *slow* when its item's mean is above the smallest item mean in the spec;
//! a one-item spec has no slow messages.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

mod parse;
#[cfg(test)]
mod tests;

pub use parse::WorkSpecError;

/// The longest work one message may ask for: a spec above it is refused, and an
/// exponential draw is capped at it.
pub const MAX_WORK: Duration = Duration::from_secs(10);

/// Basis points in 100%: shares are kept in hundredths of a percent.
const WHOLE: u32 = 10_000;

/// Bytes of a payload that its hash covers (besides its length).
const HASHED_PREFIX: usize = 64;

/// SplitMix64's increment, also the step to the second hash output.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// What a message's work does to the thread that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkKind {
    /// Real computation over the message, calibrated to take the duration.
    Cpu,
    /// A call that holds the thread for the duration and uses no CPU (a sleep).
    Block,
}

impl WorkKind {
    /// The name in a spec: `cpu` or `block`.
    pub fn name(self) -> &'static str {
        match self {
            WorkKind::Cpu => "cpu",
            WorkKind::Block => "block",
        }
    }
}

/// How an item's duration varies from message to message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// Always the mean.
    Fixed,
    /// Exponential with that mean (capped at [`MAX_WORK`]).
    Exp,
}

/// One comma-separated item of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkItem {
    kind: WorkKind,
    distribution: Distribution,
    mean: Duration,
    /// Share of messages in basis points (the rest, for the item that had none).
    basis_points: u32,
    /// Whether the spec gave the share (for printing it back as it was given).
    explicit: bool,
}

impl WorkItem {
    /// What the work does.
    pub fn kind(&self) -> WorkKind {
        self.kind
    }

    /// Fixed or exponential.
    pub fn distribution(&self) -> Distribution {
        self.distribution
    }

    /// The duration (the mean, for an exponential item).
    pub fn mean(&self) -> Duration {
        self.mean
    }

    /// The share of messages that get this item, in basis points (100 = 1%).
    pub fn basis_points(&self) -> u32 {
        self.basis_points
    }

    /// The share of messages that get this item, from 0 to 1.
    pub fn fraction(&self) -> f64 {
        f64::from(self.basis_points) / f64::from(WHOLE)
    }
}

/// The work per message: one or more items, each with its share of messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkSpec {
    items: Vec<WorkItem>,
}

/// The work one message gets: see the module docs for how it is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    /// Index of the item in the spec.
    pub item: usize,
    /// What the work does.
    pub kind: WorkKind,
    /// How long it takes (an exponential item's draw).
    pub duration: Duration,
    /// Whether the item's mean is above the smallest item mean in the spec: the long
    /// tail, whose latency is reported apart.
    pub slow: bool,
}

impl WorkSpec {
    /// Parses a spec (the grammar is in the module docs).
    pub fn parse(spec: &str) -> Result<WorkSpec, WorkSpecError> {
        parse::spec(spec)
    }

    /// The items, in the order given.
    pub fn items(&self) -> &[WorkItem] {
        &self.items
    }

    /// The work for the message with this payload: the same on the server and the
    /// client, for the same bytes.
    pub fn choose(&self, payload: &[u8]) -> Chosen {
        let hash = payload_hash(payload);
        let pick = (hash % u64::from(WHOLE)) as u32;
        let mut below = 0;
        let index = self
            .items
            .iter()
            .position(|item| {
                below += item.basis_points;
                pick < below
            })
            // The shares add up to 100%, so some item is always found.
            .unwrap_or(self.items.len() - 1);
        let item = &self.items[index];
        let duration = match item.distribution {
            Distribution::Fixed => item.mean,
            Distribution::Exp => exponential(item.mean, hash),
        };
        Chosen {
            item: index,
            kind: item.kind,
            duration,
            slow: item.mean > self.smallest_mean(),
        }
    }

    /// The mean work per message, weighted by the shares (an exponential item counts at
    /// its mean; the cap at [`MAX_WORK`] trims it by a negligible amount below 1 s).
    pub fn mean_service_time(&self) -> Duration {
        self.mean_of(|_| true)
    }

    /// The mean CPU work per message (the `cpu` items' part of
    /// [`WorkSpec::mean_service_time`]).
    pub fn mean_cpu_time(&self) -> Duration {
        self.mean_of(|kind| kind == WorkKind::Cpu)
    }

    /// The mean blocking time per message (the `block` items' part).
    pub fn mean_block_time(&self) -> Duration {
        self.mean_of(|kind| kind == WorkKind::Block)
    }

    /// The share of messages that are slow, from 0 to 1 (0 for a one-item spec).
    pub fn slow_fraction(&self) -> f64 {
        let smallest = self.smallest_mean();
        self.items
            .iter()
            .filter(|item| item.mean > smallest)
            .map(WorkItem::fraction)
            .sum()
    }

    /// Whether any item does CPU work (only then does the executor calibrate).
    pub fn has_cpu(&self) -> bool {
        self.items.iter().any(|item| item.kind == WorkKind::Cpu)
    }

    fn mean_of(&self, kind: impl Fn(WorkKind) -> bool) -> Duration {
        let nanos: u128 = self
            .items
            .iter()
            .filter(|item| kind(item.kind))
            .map(|item| item.mean.as_nanos() * u128::from(item.basis_points))
            .sum();
        // At most 10 s in nanoseconds: fits a u64.
        Duration::from_nanos(u64::try_from(nanos / u128::from(WHOLE)).unwrap_or(u64::MAX))
    }

    fn smallest_mean(&self) -> Duration {
        self.items
            .iter()
            .map(|item| item.mean)
            .min()
            .unwrap_or_default()
    }
}

impl FromStr for WorkSpec {
    type Err = WorkSpecError;

    fn from_str(spec: &str) -> Result<WorkSpec, WorkSpecError> {
        WorkSpec::parse(spec)
    }
}

/// The canonical spec: items in the order given, shares where they were given, each
/// duration in the largest unit that holds it in whole numbers (`1.5ms` prints as
/// `1500us`). It parses back to an equal spec.
impl fmt::Display for WorkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if item.explicit {
                write!(f, "{}%", Percent(item.basis_points))?;
            }
            f.write_str(item.kind.name())?;
            f.write_str(":")?;
            if item.distribution == Distribution::Exp {
                f.write_str("exp:")?;
            }
            write_duration(f, item.mean)?;
        }
        Ok(())
    }
}

/// Basis points printed as a percentage with no trailing zeros: 100 → `1`, 50 → `0.5`.
pub(crate) struct Percent(pub(crate) u32);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, hundredths) = (self.0 / 100, self.0 % 100);
        match hundredths {
            0 => write!(f, "{whole}"),
            h if h % 10 == 0 => write!(f, "{whole}.{}", h / 10),
            h => write!(f, "{whole}.{h:02}"),
        }
    }
}

fn write_duration(f: &mut fmt::Formatter<'_>, duration: Duration) -> fmt::Result {
    let nanos = duration.as_nanos();
    let (value, unit) = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")]
        .into_iter()
        .find(|(per, _)| nanos.is_multiple_of(*per))
        .map_or((nanos, "ns"), |(per, unit)| (nanos / per, unit));
    write!(f, "{value}{unit}")
}

/// The payload's 64-bit hash (module docs): FNV-1a over the length and the first 64
/// bytes, then the SplitMix64 finaliser.
fn payload_hash(payload: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let len = (payload.len() as u64).to_le_bytes();
    let prefix = &payload[..payload.len().min(HASHED_PREFIX)];
    let fnv = len
        .iter()
        .chain(prefix)
        .fold(OFFSET, |h, &byte| (h ^ u64::from(byte)).wrapping_mul(PRIME));
    mix(fnv)
}

/// SplitMix64's finaliser: every output bit depends on every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An exponential draw with this mean from the hash's second output, capped at
/// [`MAX_WORK`].
fn exponential(mean: Duration, hash: u64) -> Duration {
    let bits = mix(hash.wrapping_add(GAMMA)) >> 11;
    // (bits + 0.5) / 2^53 lies strictly inside (0, 1): ln(u) is finite and negative.
    let u = (bits as f64 + 0.5) / (1u64 << 53) as f64;
    let nanos = -(mean.as_nanos() as f64) * u.ln();
    let cap = MAX_WORK.as_nanos() as f64;
    Duration::from_nanos(nanos.min(cap) as u64)
}
