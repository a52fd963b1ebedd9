//! The client side of the framed protocol: turns the server's byte stream back into
//! replies (frames and notices), however the stream was split.

use crate::frame::{Header, HEADER_LEN, MAX_NOTICE_LEN};
use crate::ProtoError;

/// One message from a framed server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An echoed frame's payload.
    Frame(Vec<u8>),
    /// An error notice; the server closes the connection after it.
    Notice(String),
}

/// Reassembles replies from arbitrarily split input.
#[derive(Debug)]
pub struct ReplyDecoder {
    buf: Vec<u8>,
    pos: usize,
    max_frame: u32,
}

impl ReplyDecoder {
    /// A decoder that refuses replies longer than `max_frame` bytes, so a misbehaving
    /// server cannot make the client allocate without bound.
    pub fn new(max_frame: u32) -> ReplyDecoder {
        ReplyDecoder {
            buf: Vec::new(),
            pos: 0,
            max_frame,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        // Drop what was already returned, so a long stream whose reads always end
        // mid-reply does not grow the buffer forever.
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as a reply.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete reply, or `None` until more bytes arrive.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtoError> {
        let rest = &self.buf[self.pos..];
        let Some(header) = Header::peek(rest) else {
            return Ok(None);
        };
        let len = match header {
            Header::Frame(len) if len > self.max_frame => {
                return Err(ProtoError::FrameTooLarge {
                    len,
                    max: self.max_frame,
                })
            }
            Header::Notice(len) if len as usize > MAX_NOTICE_LEN => {
                return Err(ProtoError::NoticeTooLong {
                    len,
                    max: MAX_NOTICE_LEN,
                })
            }
            Header::Frame(len) | Header::Notice(len) => len as usize,
        };
        if rest.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let body = &rest[HEADER_LEN..HEADER_LEN + len];
        let reply = match header {
            Header::Frame(_) => Reply::Frame(body.to_vec()),
            Header::Notice(_) => Reply::Notice(String::from_utf8_lossy(body).into_owned()),
        };
        self.pos += HEADER_LEN + len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        Ok(Some(reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_frame, encode_notice};

    #[test]
    fn decodes_split_frames_and_notices() {
        let mut wire = Vec::new();
        encode_frame(b"hello", &mut wire).unwrap();
        encode_frame(b"", &mut wire).unwrap();
        encode_notice("bye", &mut wire);
        let mut decoder = ReplyDecoder::new(1024);
        let mut replies = Vec::new();
        for byte in &wire {
            decoder.feed(std::slice::from_ref(byte));
            while let Some(reply) = decoder.next_reply().unwrap() {
                replies.push(reply);
            }
        }
        assert_eq!(
            replies,
            vec![
                Reply::Frame(b"hello".to_vec()),
                Reply::Frame(Vec::new()),
                Reply::Notice("bye".into())
            ]
        );
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn buffer_stays_bounded_when_reads_always_end_mid_reply() {
        let mut wire = Vec::new();
        for _ in 0..10_000 {
            encode_frame(&[1; 10], &mut wire).unwrap();
        }
        let mut decoder = ReplyDecoder::new(1024);
        let mut count = 0;
        // One byte first, then reply-sized reads: every read ends one byte into the next
        // reply, so the buffer is never fully consumed.
        decoder.feed(&wire[..1]);
        for chunk in wire[1..].chunks(14) {
            decoder.feed(chunk);
            while decoder.next_reply().unwrap().is_some() {
                count += 1;
            }
            assert!(
                decoder.buf.capacity() < 1024,
                "buffer grew to {}",
                decoder.buf.capacity()
            );
        }
        assert_eq!(count, 10_000);
    }

    #[test]
    fn refuses_replies_above_its_limit() {
        let mut decoder = ReplyDecoder::new(10);
        decoder.feed(&11u32.to_be_bytes());
        assert_eq!(
            decoder.next_reply(),
            Err(ProtoError::FrameTooLarge { len: 11, max: 10 })
        );
        let mut decoder = ReplyDecoder::new(10);
        decoder.feed(&(0x8000_0000u32 | 5000).to_be_bytes());
        assert!(matches!(
            decoder.next_reply(),
            Err(ProtoError::NoticeTooLong { .. })
        ));
    }
}
