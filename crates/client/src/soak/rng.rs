//! A small seedable generator (splitmix64): the soak's sizes, chunking, pauses and
//! connection lifetimes all come from it, so one `--seed` replays the same traffic shape
//! (the timing, and so the interleaving, is the kernel's).

use std::ops::RangeInclusive;

use crate::payload;

/// splitmix64; not cryptographic, only reproducible and well mixed.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// An independent generator for `stream` (a connection slot, one side of a life).
    pub(crate) fn fork(&mut self, stream: u64) -> Rng {
        Rng::new(self.next_u64() ^ stream.wrapping_mul(0xa076_1d64_78bd_642f))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(payload::GAMMA);
        payload::mix(self.state)
    }

    /// Uniform in `range` (the modulo bias is irrelevant at these sizes).
    pub(crate) fn range(&mut self, range: RangeInclusive<usize>) -> usize {
        let (lo, hi) = (*range.start(), *range.end());
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as usize
    }

    /// True with probability `percent` / 100.
    pub(crate) fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_ranges_hold() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let mut c = Rng::new(8);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let v = a.range(3..=6);
            assert!((3..=6).contains(&v));
            seen[v - 3] = true;
        }
        assert!(
            seen.iter().all(|&s| s),
            "every value of a small range appears"
        );
        assert_eq!(a.range(5..=5), 5);
    }
}
