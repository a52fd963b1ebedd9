//! The receiving side of a connection: reading, the auth challenge, and verifying and
//! counting each reply.
//!
//! The hot path costs one `read` per readiness event and no copy: whole replies are
//! verified in the buffer they were read into, and only the first bytes of a reply
//! still arriving are kept on the connection.

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::Instant;

use echolab_proto::{Header, Protocol, HEADER_LEN, NONCE_LEN};

use super::engine::{classify, record, ErrorKind, Worker};
use super::Mode;
use crate::payload;

/// Reads one connection gets before the others have their turn: a server that answers
/// as fast as the generator reads must not hold the thread on one connection.
const READS_PER_TURN: usize = 4;

#[derive(Debug, PartialEq)]
enum Turn {
    /// The socket is empty (or the connection is over).
    Done,
    /// Bytes may remain unread.
    Capped,
}

impl Worker<'_> {
    /// Reads what connection `conn` has received, at most `READS_PER_TURN` buffers of
    /// it. `ended`: the event reported a hang-up or an error, so read on until the end
    /// shows.
    pub(super) fn on_readable(&mut self, conn: usize, ended: bool) {
        let mut buf = std::mem::take(&mut self.read_buf);
        // Taken, not borrowed, so replies can be verified while `self` queues the next
        // messages; a re-entrant call would read into an empty buffer and see an end.
        debug_assert!(!buf.is_empty(), "on_readable re-entered");
        if self.read_replies(conn, &mut buf, ended) == Turn::Capped {
            self.unread.push((conn, ended));
        }
        self.read_buf = buf;
    }

    /// The connections whose turn was capped with bytes still unread get another turn.
    /// No new event would tell: the bytes already arrived.
    pub(super) fn read_unread(&mut self) {
        let unread = std::mem::take(&mut self.unread);
        for &(conn, ended) in &unread {
            self.on_readable(conn, ended);
            self.flush(conn);
        }
    }

    fn read_replies(&mut self, conn: usize, buf: &mut [u8], ended: bool) -> Turn {
        let mut reads = 0;
        loop {
            let c = &mut self.conns[conn];
            let Some(stream) = c.stream.as_mut().filter(|_| c.open) else {
                return Turn::Done;
            };
            if reads == READS_PER_TURN {
                return Turn::Capped;
            }
            let n = match stream.read(buf) {
                Ok(0) => {
                    let kind = if c.in_flight.is_empty() && c.input.is_empty() {
                        ErrorKind::Reset
                    } else {
                        ErrorKind::ShortRead
                    };
                    self.fail(conn, kind);
                    return Turn::Done;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Turn::Done,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.fail(conn, classify(&e));
                    return Turn::Done;
                }
            };
            reads += 1;
            if !self.take_input(conn, &buf[..n]) {
                return Turn::Done;
            }
            // A read that did not fill the buffer emptied the socket, and bytes arriving
            // later raise a new edge-triggered event (epoll reports every arrival), so
            // reading again now would only return `WouldBlock`: one wasted syscall per
            // message at depth 1. A hang-up raises no further event: read to the end.
            if n < buf.len() && !ended {
                return Turn::Done;
            }
        }
    }

    /// Passes bytes just read to `take_replies`, after the partial reply the connection
    /// held, and keeps whatever partial reply is left. `false`: the connection ended or
    /// (churn) was replaced, and what it had received is moot.
    fn take_input(&mut self, conn: usize, fresh: &[u8]) -> bool {
        if self.conns[conn].input.is_empty() {
            let Some(used) = self.take_replies(conn, fresh) else {
                return false;
            };
            self.conns[conn].input.extend_from_slice(&fresh[used..]);
            return true;
        }
        // Complete the held reply with only the bytes it lacks (every reply is one header
        // plus `size` bytes); the rest of the read is verified where it lies.
        let header_len = match self.config.protocol {
            Protocol::Framed => HEADER_LEN,
            Protocol::Raw => 0,
        };
        let mut held = std::mem::take(&mut self.conns[conn].input);
        let lacking = (header_len + self.config.size).saturating_sub(held.len());
        let (completing, rest) = fresh.split_at(lacking.min(fresh.len()));
        held.extend_from_slice(completing);
        let Some(used) = self.take_replies(conn, &held) else {
            return false;
        };
        if used < held.len() {
            // Still incomplete: the read ended inside it.
            self.conns[conn].input = held;
            return true;
        }
        held.clear();
        self.conns[conn].input = held;
        rest.is_empty() || self.take_input(conn, rest)
    }

    /// Verifies and counts the whole replies at the start of `data` (the connection's
    /// bytes in arrival order) and queues the next messages. Returns how many bytes it
    /// used; the rest begins a reply still arriving. `None`: the connection ended or was
    /// replaced.
    fn take_replies(&mut self, conn: usize, data: &[u8]) -> Option<usize> {
        // Every reply in `data` had arrived when it was read: one clock reading times them all.
        let now = Instant::now();
        let mut measured = 0;
        let used = self.verify_replies(conn, data, now, &mut measured);
        // Once per batch, not per reply: every generator thread writes this counter.
        self.progress.fetch_add(measured, Ordering::Relaxed);
        used
    }

    /// `take_replies`' work; `measured` counts the replies inside the measured window.
    fn verify_replies(
        &mut self,
        conn: usize,
        data: &[u8],
        now: Instant,
        measured: &mut u64,
    ) -> Option<usize> {
        let size = self.config.size;
        let framed = self.config.protocol == Protocol::Framed;
        let header_len = if framed { HEADER_LEN } else { 0 };
        let mut used = 0;
        let mut completed = 0usize;
        loop {
            let c = &mut self.conns[conn];
            if !c.open {
                return None;
            }
            let rest = &data[used..];
            if c.awaiting_nonce {
                let take = (NONCE_LEN - c.nonce.len()).min(rest.len());
                c.nonce.extend_from_slice(&rest[..take]);
                used += take;
                if c.nonce.len() < NONCE_LEN {
                    return Some(used);
                }
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&c.nonce);
                c.awaiting_nonce = false;
                if let Some(key) = &self.config.auth_key {
                    c.out.extend_from_slice(&key.respond(&nonce));
                }
                self.fill_pipeline(conn, now);
                continue;
            }
            if rest.len() < header_len {
                break;
            }
            if framed {
                match Header::parse([rest[0], rest[1], rest[2], rest[3]]) {
                    Header::Notice(_) => {
                        self.fail(conn, ErrorKind::Notice);
                        return None;
                    }
                    Header::Frame(len) if len as usize != size => {
                        self.fail(conn, ErrorKind::Mismatch);
                        return None;
                    }
                    Header::Frame(_) => {}
                }
            }
            if rest.len() < header_len + size {
                break;
            }
            let Some((seq, sent)) = c.in_flight.pop_front() else {
                // A reply nobody asked for.
                self.fail(conn, ErrorKind::Mismatch);
                return None;
            };
            if !payload::matches(&rest[header_len..header_len + size], c.id, seq) {
                self.fail(conn, ErrorKind::Mismatch);
                return None;
            }
            used += header_len + size;
            if c.first_reply.is_none() {
                c.first_reply = Some(now - c.connected_at);
            }
            if now >= self.phases.measure_from && now < self.phases.end {
                c.measured += 1;
                *measured += 1;
                record(&mut self.histogram, now.saturating_duration_since(sent));
            }
            completed += 1;
            if self.mode == Mode::Churn {
                // One verified echo per connection: close, and start the next cycle.
                self.recycle(conn);
                return None;
            }
        }
        if completed > 0 {
            self.fill_pipeline(conn, now);
        }
        Some(used)
    }
}
