//! The reading half of a life: replies reassembled from randomly sized reads, each
//! compared with the payload regenerated from the identity the writer announced, and
//! every byte folded into the received checksum.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError};

use echolab_proto::{Reply, ReplyDecoder};

use super::checksum::Checksum;
use super::config::SoakConfig;
use super::rng::Rng;
use super::send::Sent;
use super::shape;
use crate::failure::FailureKind;
use crate::payload;

pub(crate) struct Received {
    pub(crate) checksum: Checksum,
    pub(crate) verified: u64,
    pub(crate) mismatches: u64,
    pub(crate) error: Option<FailureKind>,
}

pub(crate) fn read_replies(
    config: &SoakConfig,
    stream: &TcpStream,
    id: u32,
    rng: &mut Rng,
    rx: Receiver<Sent>,
) -> Received {
    let mut read = Received {
        checksum: Checksum::default(),
        verified: 0,
        mismatches: 0,
        error: None,
    };
    let mut decoder = ReplyDecoder::new(u32::try_from(config.max_size).unwrap_or(u32::MAX));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let sent = match rx.recv_timeout(config.timeout) {
            Ok(sent) => sent,
            Err(RecvTimeoutError::Disconnected) => return read,
            Err(RecvTimeoutError::Timeout) => {
                read.error = Some(FailureKind::WriterStalled);
                return read;
            }
        };
        let reply = match next_reply(stream, &mut decoder, &mut buf, rng) {
            Ok(reply) => reply,
            Err(kind) => {
                read.error = Some(kind);
                return read;
            }
        };
        let payload = match reply {
            Reply::Frame(payload) => payload,
            Reply::Notice(_) => {
                read.error = Some(FailureKind::Notice);
                return read;
            }
        };
        read.checksum.update(&payload);
        if payload.len() == sent.len && payload::matches(&payload, id, sent.seq ^ config.seed) {
            read.verified += 1;
        } else {
            read.mismatches += 1;
        }
    }
}

/// Reads (in randomly sized reads) until the decoder has a whole reply.
fn next_reply(
    stream: &TcpStream,
    decoder: &mut ReplyDecoder,
    buf: &mut [u8],
    rng: &mut Rng,
) -> Result<Reply, FailureKind> {
    loop {
        if let Some(reply) = decoder.next_reply().map_err(|_| FailureKind::Protocol)? {
            return Ok(reply);
        }
        let want = shape::read_size(rng, buf.len());
        match (&*stream).read(&mut buf[..want]) {
            Ok(0) => return Err(FailureKind::ClosedEarly),
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(FailureKind::from_io(&e)),
        }
    }
}
