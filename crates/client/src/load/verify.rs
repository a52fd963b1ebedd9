//! Checking what a connection receives: the handshake's challenge, then whole replies,
//! each verified byte for byte against the payload it answers, and timed.

use std::time::Instant;

use echolab_proto::{AuthKey, Header, Protocol, HEADER_LEN, NONCE_LEN};

use super::classify::Classifier;
use super::config::{LoadConfig, Mode, Phases};
use super::conn::Conn;
use super::tally::Tally;
use crate::failure::FailureKind;
use crate::payload;

/// Collects the challenge from the start of `data` and, once it is whole, queues the
/// answer. Returns how many bytes it took.
pub(super) fn answer_challenge(c: &mut Conn, data: &[u8], key: Option<&AuthKey>) -> usize {
    let take = (NONCE_LEN - c.nonce.len()).min(data.len());
    c.nonce.extend_from_slice(&data[..take]);
    if c.nonce.len() == NONCE_LEN {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&c.nonce);
        c.awaiting_nonce = false;
        if let Some(key) = key {
            c.out.extend_from_slice(&key.respond(&nonce));
        }
    }
    take
}

/// What one call of [`Verifier::verify`] found.
#[derive(Default)]
pub(super) struct Verified {
    /// Bytes of the whole replies taken; the rest begins a reply still arriving.
    pub(super) used: usize,
    pub(super) replies: usize,
    /// Replies inside the measured window.
    pub(super) measured: u64,
    /// Why the connection must end, if it must.
    pub(super) failure: Option<FailureKind>,
}

impl Verified {
    fn failed(mut self, kind: FailureKind) -> Verified {
        self.failure = Some(kind);
        self
    }
}

/// What every reply of the run must be, and when one counts.
pub(super) struct Verifier {
    size: usize,
    framed: bool,
    measure_from: Instant,
    end: Instant,
    /// Churn: a connection's first verified reply ends its cycle, and whatever follows
    /// it is moot.
    one_each: bool,
    classifier: Classifier,
}

impl Verifier {
    pub(super) fn new(config: &LoadConfig, phases: &Phases) -> Verifier {
        Verifier {
            size: config.size,
            framed: config.protocol == Protocol::Framed,
            measure_from: phases.measure_from,
            end: phases.end,
            one_each: config.mode() == Mode::Churn,
            classifier: Classifier::new(config.work.clone()),
        }
    }

    fn header_len(&self) -> usize {
        if self.framed {
            HEADER_LEN
        } else {
            0
        }
    }

    /// Bytes in every reply: each echoes one message of the run's size.
    pub(super) fn reply_len(&self) -> usize {
        self.header_len() + self.size
    }

    /// Verifies and times the whole replies at the start of `data` (the connection's
    /// bytes in arrival order, all arrived by `now`), stopping at the first bad one.
    pub(super) fn verify(
        &self,
        c: &mut Conn,
        data: &[u8],
        now: Instant,
        tally: &mut Tally,
    ) -> Verified {
        let header_len = self.header_len();
        let mut verified = Verified::default();
        loop {
            let rest = &data[verified.used..];
            if rest.len() < header_len {
                break;
            }
            if self.framed {
                // Checked as soon as the header is in, before the payload arrives.
                match Header::peek(rest) {
                    Some(Header::Notice(_)) => return verified.failed(FailureKind::Notice),
                    Some(Header::Frame(len)) if len as usize != self.size => {
                        return verified.failed(FailureKind::Mismatch)
                    }
                    // `header_len` covers the header when framed: never `None` here.
                    Some(Header::Frame(_)) | None => {}
                }
            }
            if rest.len() < header_len + self.size {
                break;
            }
            let Some((seq, sent)) = c.in_flight.pop_front() else {
                // A reply nobody asked for.
                return verified.failed(FailureKind::Mismatch);
            };
            let reply = &rest[header_len..header_len + self.size];
            if !payload::matches(reply, c.id, seq) {
                return verified.failed(FailureKind::Mismatch);
            }
            verified.used += header_len + self.size;
            if c.first_reply.is_none() {
                c.first_reply = Some(now - c.connected_at);
            }
            if now >= self.measure_from && now < self.end {
                c.measured += 1;
                verified.measured += 1;
                tally.record(
                    now.saturating_duration_since(sent),
                    self.classifier.of_payload(reply),
                );
            } else if now >= self.end {
                // Collected after the end: not a response of the window, and like every
                // message still waiting when the window closed, a wait censored there
                // (the same sample whether its reply comes now or never).
                tally.censor(sent, self.end, self.measure_from);
            }
            verified.replies += 1;
            if self.one_each {
                break;
            }
        }
        verified
    }
}
