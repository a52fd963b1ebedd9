//! A running checksum of one direction of one connection: every payload byte sent is
//! folded into one, every payload byte received into another, and the two must agree
//! when the connection ends. It is independent of the frame-by-frame comparison, so a
//! bug in how replies are matched to requests cannot hide a lost or altered byte.

/// FNV-1a over a byte stream, plus its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checksum {
    hash: u64,
    bytes: u64,
}

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum {
            hash: 0xcbf2_9ce4_8422_2325,
            bytes: 0,
        }
    }
}

impl Checksum {
    pub(crate) fn update(&mut self, data: &[u8]) {
        for &byte in data {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.bytes += data.len() as u64;
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_does_not_matter_but_a_flipped_bit_does() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = Checksum::default();
        whole.update(&data);
        let mut pieces = Checksum::default();
        for piece in data.chunks(13) {
            pieces.update(piece);
        }
        assert_eq!(whole, pieces);
        let mut flipped = data.clone();
        flipped[500] ^= 0x10;
        let mut other = Checksum::default();
        other.update(&flipped);
        assert_ne!(whole, other);
        assert_eq!(whole.bytes(), 1000);
    }
}
