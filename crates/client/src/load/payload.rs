//! Payloads that identify themselves: each one is a pure function of (connection,
//! sequence number, size), so a reply is verified byte for byte by regenerating it, and
//! a reply delivered to the wrong connection or out of order cannot pass.

/// Fills `out` with the payload for message `seq` on connection `conn`.
pub(crate) fn fill(out: &mut [u8], conn: u32, seq: u64) {
    let mut state = mix(((conn as u64) << 40) ^ seq);
    for chunk in out.chunks_mut(8) {
        state = mix(state);
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Whether `reply` is exactly the payload for (`conn`, `seq`).
pub(crate) fn matches(reply: &[u8], conn: u32, seq: u64) -> bool {
    let mut state = mix(((conn as u64) << 40) ^ seq);
    reply.chunks(8).all(|chunk| {
        state = mix(state);
        chunk == &state.to_le_bytes()[..chunk.len()]
    })
}

/// splitmix64: fast, and every output bit depends on every input bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
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
                buf[size - 1] ^= 1;
                assert!(!matches(&buf, 3, 17));
            }
        }
    }
}
