//! The random shape of the traffic: how large each frame is, how a write is cut into
//! pieces, how much each read asks for, how long a connection lives.

use std::time::Duration;

use super::rng::Rng;

/// Frame payload sizes biased to small, with occasional large ones up to `max`: most
/// real traffic is small, but the large frames are what exercise partial writes,
/// backpressure and buffer growth.
pub(crate) fn frame_size(rng: &mut Rng, max: usize) -> usize {
    let roll = rng.range(0..=99);
    let cap = |n: usize| n.min(max);
    match roll {
        0..=59 => rng.range(0..=cap(64)),
        60..=84 => rng.range(cap(65)..=cap(4096)),
        85..=96 => rng.range(cap(4097)..=cap(64 * 1024)),
        _ => rng.range(cap(64 * 1024 + 1)..=max),
    }
}

/// Where to cut `len` bytes of wire into separate `write` calls: whole, a few random
/// pieces, or the header dribbled a byte at a time (the server must reassemble a split
/// header as well as a split payload).
pub(crate) fn write_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    match rng.range(0..=99) {
        0..=49 => {}
        50..=84 => {
            let pieces = rng.range(1..=7);
            for _ in 0..pieces {
                cuts.push(rng.range(1..=len.max(1)));
            }
        }
        _ => cuts.extend(1..len.min(echolab_proto::HEADER_LEN + 1)),
    }
    cuts.retain(|&c| c > 0 && c < len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// An occasional short pause between pieces, so the server sees frames that arrive over
/// several readiness events rather than in one read.
pub(crate) fn pause(rng: &mut Rng) -> Option<Duration> {
    rng.percent(8)
        .then(|| Duration::from_micros(rng.range(50..=3000) as u64))
}

/// How many bytes the next `read` asks for: sometimes tiny, so replies are reassembled
/// from many reads.
pub(crate) fn read_size(rng: &mut Rng, buf_len: usize) -> usize {
    let size = match rng.range(0..=99) {
        0..=9 => rng.range(1..=16),
        10..=59 => rng.range(17..=4096),
        _ => rng.range(4097..=buf_len),
    };
    size.clamp(1, buf_len)
}

/// Frames one connection sends before it closes (churn: short lives are the common case,
/// so accept and close run often).
pub(crate) fn life_frames(rng: &mut Rng) -> u64 {
    (match rng.range(0..=99) {
        0..=49 => rng.range(1..=20),
        50..=89 => rng.range(21..=200),
        _ => rng.range(201..=1000),
    }) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_within_max_and_include_the_extremes() {
        let mut rng = Rng::new(1);
        let max = 256 * 1024;
        let sizes: Vec<usize> = (0..20_000).map(|_| frame_size(&mut rng, max)).collect();
        assert!(sizes.iter().all(|&s| s <= max));
        assert!(sizes.contains(&0));
        assert!(sizes.iter().any(|&s| s > 128 * 1024));
        let small = sizes.iter().filter(|&&s| s <= 64).count();
        assert!(small > sizes.len() / 2, "biased to small: {small}");
        let mut rng = Rng::new(2);
        assert!((0..100).all(|_| frame_size(&mut rng, 10) <= 10));
    }

    #[test]
    fn cuts_are_strictly_inside_the_write() {
        let mut rng = Rng::new(3);
        for len in [1, 4, 5, 100, 70_000] {
            for _ in 0..200 {
                let cuts = write_cuts(&mut rng, len);
                assert!(cuts.windows(2).all(|w| w[0] < w[1]));
                assert!(cuts.iter().all(|&c| c > 0 && c < len));
            }
        }
    }
}
