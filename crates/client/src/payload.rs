//! Payloads that identify themselves: each one is a pure function of (connection,
//! sequence number, size), so a reply is verified byte for byte by regenerating it, and
//! a reply delivered to the wrong connection or out of order cannot pass.
//!
//! Word `i` of a payload is `mix(base + (i + 1) * GAMMA)`: the SplitMix64 sequence
//! seeded by (connection, sequence). Each word depends only on its index, so the CPU
//! computes several at once, and a reply is compared a word at a time, with no copy.

/// SplitMix64's increment (also the soak's generator, `soak::rng`).
pub(crate) const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Fills `out` with the payload for message `seq` on connection `conn`.
pub(crate) fn fill(out: &mut [u8], conn: u32, seq: u64) {
    let base = seed(conn, seq);
    let mut chunks = out.chunks_exact_mut(8);
    let mut index = 0;
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(base, index).to_le_bytes());
        index += 1;
    }
    let tail = chunks.into_remainder();
    let last = word(base, index).to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
}

/// Whether `reply` is exactly the payload for (`conn`, `seq`).
pub(crate) fn matches(reply: &[u8], conn: u32, seq: u64) -> bool {
    let base = seed(conn, seq);
    let mut chunks = reply.chunks_exact(8);
    // OR-ing the differences (rather than stopping at the first) keeps the loop free of
    // branches; a mismatch is the rare case.
    let mut difference = 0;
    let mut index = 0;
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        difference |= u64::from_le_bytes(bytes) ^ word(base, index);
        index += 1;
    }
    let tail = chunks.remainder();
    difference == 0 && tail == &word(base, index).to_le_bytes()[..tail.len()]
}

fn seed(conn: u32, seq: u64) -> u64 {
    mix(((conn as u64) << 40) ^ seq)
}

fn word(base: u64, index: u64) -> u64 {
    mix(base.wrapping_add(index.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// SplitMix64's finaliser: every output bit depends on every input bit.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_verifies_only_for_its_own_connection_and_sequence() {
        for size in [0, 1, 7, 8, 9, 64, 513] {
            let mut buf = vec![0; size];
            fill(&mut buf, 3, 17);
            assert!(matches(&buf, 3, 17));
            if size > 0 {
                assert!(!matches(&buf, 3, 18));
                assert!(!matches(&buf, 4, 17));
                for at in [0, size / 2, size - 1] {
                    let mut corrupt = buf.clone();
                    corrupt[at] ^= 1;
                    assert!(!matches(&corrupt, 3, 17), "size {size}, byte {at}");
                }
            }
        }
    }

    #[test]
    fn consecutive_payload_words_differ() {
        let mut buf = vec![0; 64];
        fill(&mut buf, 0, 0);
        let words: Vec<&[u8]> = buf.chunks(8).collect();
        for pair in words.windows(2) {
            assert_ne!(pair[0], pair[1]);
        }
    }
}
