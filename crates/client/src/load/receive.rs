//! The reading side of a generator thread: each ready connection's turn at reading,
//! the partial reply it holds between reads, and what verified replies set off.
//!
//! The hot path costs one `read` per readiness event and no copy: whole replies are
//! verified in the buffer they were read into, and only the first bytes of a reply
//! still arriving are kept on the connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use echolab_proto::AuthKey;

use super::config::{LoadConfig, Phases};
use super::verify::{self, Verifier};
use super::worker::Worker;

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

pub(super) struct Receiver<'a> {
    auth_key: Option<&'a AuthKey>,
    verifier: Verifier,
    /// Where replies are read to, shared by the thread's connections.
    buf: Vec<u8>,
    /// Connections whose read turn was capped with bytes left: (connection, hung up).
    unread: Vec<(usize, bool)>,
    progress: &'a AtomicU64,
}

impl<'a> Receiver<'a> {
    pub(super) fn new(config: &'a LoadConfig, phases: &Phases, progress: &'a AtomicU64) -> Self {
        Receiver {
            auth_key: config.auth_key.as_ref(),
            verifier: Verifier::new(config, phases),
            buf: vec![0; 64 * 1024],
            unread: Vec::new(),
            progress,
        }
    }

    /// Some connection's turn was capped: the loop must not wait for an event.
    pub(super) fn pending(&self) -> bool {
        !self.unread.is_empty()
    }

    /// Reads what connection `conn` has received, at most `READS_PER_TURN` buffers of
    /// it. `ended`: the event reported a hang-up or an error, so read on until the end
    /// shows.
    pub(super) fn on_readable(&mut self, worker: &mut Worker<'_>, conn: usize, ended: bool) {
        // Taken, not borrowed, so the turn can use the rest of `self` while reading.
        let mut buf = std::mem::take(&mut self.buf);
        if self.read_replies(worker, conn, &mut buf, ended) == Turn::Capped {
            self.unread.push((conn, ended));
        }
        self.buf = buf;
    }

    /// The connections whose turn was capped with bytes still unread get another turn.
    /// No new event would tell: the bytes already arrived.
    pub(super) fn read_unread(&mut self, worker: &mut Worker<'_>) {
        let unread = std::mem::take(&mut self.unread);
        for &(conn, ended) in &unread {
            self.on_readable(worker, conn, ended);
            worker.flush(conn);
        }
    }

    fn read_replies(
        &self,
        worker: &mut Worker<'_>,
        conn: usize,
        buf: &mut [u8],
        ended: bool,
    ) -> Turn {
        let mut reads = 0;
        while worker.conns[conn].live() {
            if reads == READS_PER_TURN {
                return Turn::Capped;
            }
            let n = match worker.conns[conn].read_into(buf) {
                Ok(Some(n)) => n,
                Ok(None) => return Turn::Done,
                Err(kind) => {
                    worker.fail(conn, kind);
                    return Turn::Done;
                }
            };
            reads += 1;
            if !self.take_input(worker, conn, &buf[..n]) {
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
        Turn::Done
    }

    /// Passes bytes just read to `take_replies`, after the partial reply the connection
    /// held, and keeps whatever partial reply is left. `false`: the connection ended or
    /// (churn) was replaced, and what it had received is moot.
    fn take_input(&self, worker: &mut Worker<'_>, conn: usize, mut fresh: &[u8]) -> bool {
        if !worker.conns[conn].input.is_empty() {
            // Complete the held reply with only the bytes it lacks; the rest of the read
            // is verified where it lies.
            let mut held = std::mem::take(&mut worker.conns[conn].input);
            let lacking = self.verifier.reply_len().saturating_sub(held.len());
            let (completing, rest) = fresh.split_at(lacking.min(fresh.len()));
            held.extend_from_slice(completing);
            let Some(used) = self.take_replies(worker, conn, &held) else {
                return false;
            };
            // Still incomplete: the read ended inside it.
            let incomplete = used < held.len();
            if !incomplete {
                held.clear();
            }
            worker.conns[conn].input = held;
            if incomplete || rest.is_empty() {
                return true;
            }
            fresh = rest;
        }
        let Some(used) = self.take_replies(worker, conn, fresh) else {
            return false;
        };
        worker.conns[conn].input.extend_from_slice(&fresh[used..]);
        true
    }

    /// Takes the challenge and the whole replies at the start of `data` (the
    /// connection's bytes in arrival order) and has the next messages sent. Returns how
    /// many bytes it used; the rest begins a reply still arriving. `None`: the
    /// connection ended or was replaced.
    fn take_replies(&self, worker: &mut Worker<'_>, conn: usize, data: &[u8]) -> Option<usize> {
        // Every reply in `data` had arrived when it was read: one clock reading times them all.
        let now = Instant::now();
        if !worker.conns[conn].open {
            return None;
        }
        let mut used = 0;
        if worker.conns[conn].awaiting_nonce {
            used = verify::answer_challenge(&mut worker.conns[conn], data, self.auth_key);
            if worker.conns[conn].awaiting_nonce {
                return Some(used);
            }
            worker.fill_pipeline(conn, now);
            if !worker.conns[conn].open {
                return None;
            }
        }
        let c = &mut worker.conns[conn];
        let verified = self
            .verifier
            .verify(c, &data[used..], now, &mut worker.tally);
        // Once per batch, not per reply: every generator thread writes this counter.
        self.progress
            .fetch_add(verified.measured, Ordering::Relaxed);
        if let Some(kind) = verified.failure {
            worker.fail(conn, kind);
            return None;
        }
        if verified.replies > 0 && !worker.on_replies(conn, now) {
            return None;
        }
        Some(used + verified.used)
    }
}
