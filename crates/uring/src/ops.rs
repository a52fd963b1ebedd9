//! What each request in flight is, as its `user_data`: the kind of request in the low
//! byte, the connection's slab index above it. A connection keeps its slab slot until
//! the last completion of every request it made has arrived, so an index in a
//! completion always names the connection that made the request.

/// The kinds of request the loop makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// The multishot accept on the listener.
    Accept,
    /// The one-shot poll on the shutdown descriptor.
    Waker,
    /// A connection's multishot receive.
    Recv,
    /// A connection's send of its owned output buffer.
    Send,
    /// A cancellation (its completion only says whether it found its target).
    Cancel,
    /// `--offload`: the one-shot poll on the pool's wake descriptor.
    Offload,
}

impl Op {
    const ALL: [Op; 6] = [
        Op::Accept,
        Op::Waker,
        Op::Recv,
        Op::Send,
        Op::Cancel,
        Op::Offload,
    ];

    /// The `user_data` of this request for the connection at `index` (0 when none).
    pub(crate) fn tag(self, index: usize) -> u64 {
        ((index as u64) << 8) | self as u64
    }

    /// The request and the connection index a completion's `user_data` names.
    pub(crate) fn untag(user_data: u64) -> Option<(Op, usize)> {
        let op = *Op::ALL.get((user_data & 0xff) as usize)?;
        Some((op, (user_data >> 8) as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for op in Op::ALL {
            for index in [0, 1, 255, 256, 1 << 40] {
                assert_eq!(Op::untag(op.tag(index)), Some((op, index)));
            }
        }
        assert_eq!(Op::untag(0xff), None);
    }
}
