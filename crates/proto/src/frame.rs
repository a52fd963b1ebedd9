//! The framed wire format: a 4-byte big-endian length, then that many payload bytes.
//!
//! This is the fix for TCP's "sticky packets": TCP delivers a byte stream, so two
//! `send("hello")`, `send("feng")` calls may arrive as one `recv` of `hellofeng`, or as
//! `hel` + `lofeng`. A fixed-length header says where each message ends.

use crate::ProtoError;

/// Bytes in a frame or notice header.
pub const HEADER_LEN: usize = 4;
/// The top bit of a header word marks an error notice rather than a frame.
pub const NOTICE_BIT: u32 = 0x8000_0000;
/// The longest notice text in bytes.
pub const MAX_NOTICE_LEN: usize = 1024;
/// The default largest frame payload a server accepts: 1 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;

/// A decoded header word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A data frame of this many payload bytes.
    Frame(u32),
    /// An error notice with this many bytes of UTF-8 text.
    Notice(u32),
}

impl Header {
    /// Decodes a 4-byte header word.
    pub fn parse(bytes: [u8; HEADER_LEN]) -> Header {
        let word = u32::from_be_bytes(bytes);
        if word & NOTICE_BIT != 0 {
            Header::Notice(word & !NOTICE_BIT)
        } else {
            Header::Frame(word)
        }
    }

    /// The header at the start of `bytes`, or `None` until all [`HEADER_LEN`] bytes of it
    /// are there (whatever follows is left alone).
    pub fn peek(bytes: &[u8]) -> Option<Header> {
        let word: [u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header::parse(word))
    }

    /// The header word as it was on the wire.
    pub fn word(self) -> u32 {
        match self {
            Header::Frame(len) => len,
            Header::Notice(len) => len | NOTICE_BIT,
        }
    }
}

/// Appends `payload` as one frame to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), ProtoError> {
    let max = (NOTICE_BIT - 1) as usize;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len & NOTICE_BIT == 0)
        .ok_or(ProtoError::PayloadTooLarge {
            len: payload.len(),
            max,
        })?;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends an error notice to `out`. Text past [`MAX_NOTICE_LEN`] bytes is cut at a
/// character boundary, so a notice is always valid UTF-8 and always within the limit.
pub fn encode_notice(text: &str, out: &mut Vec<u8>) {
    let mut end = text.len().min(MAX_NOTICE_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text.as_bytes()[..end];
    // `end <= MAX_NOTICE_LEN`, so the cast cannot truncate.
    let word = NOTICE_BIT | end as u32;
    out.extend_from_slice(&word.to_be_bytes());
    out.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_is_big_endian_length() {
        let mut out = Vec::new();
        encode_frame(b"hello", &mut out).unwrap();
        assert_eq!(out, b"\x00\x00\x00\x05hello");
        assert_eq!(Header::parse([0, 0, 0, 5]), Header::Frame(5));
        assert_eq!(Header::peek(&[0, 0, 0, 5, 0xff]), Some(Header::Frame(5)));
        assert_eq!(Header::peek(&[0x80, 0, 0, 7]), Some(Header::Notice(7)));
        assert_eq!(Header::peek(&[0, 0, 0]), None);
        assert_eq!(Header::peek(&[]), None);
    }

    #[test]
    fn notice_sets_top_bit_and_is_cut_at_a_char_boundary() {
        let mut out = Vec::new();
        encode_notice("server busy", &mut out);
        assert_eq!(&out[..4], &(NOTICE_BIT | 11).to_be_bytes());
        assert_eq!(&out[4..], b"server busy");

        let long = "é".repeat(MAX_NOTICE_LEN); // 2 bytes each
        let mut out = Vec::new();
        encode_notice(&long, &mut out);
        let Some(Header::Notice(n)) = Header::peek(&out) else {
            panic!("expected a notice header");
        };
        assert_eq!(n as usize, MAX_NOTICE_LEN);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    #[test]
    fn every_word_with_the_top_bit_is_a_notice() {
        assert_eq!(Header::parse([0xff; 4]), Header::Notice(0x7fff_ffff));
        assert_eq!(Header::parse([0x80, 0, 0, 0]), Header::Notice(0));
    }
}
