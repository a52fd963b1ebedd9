//! One connection's state, and the reads and writes on its socket.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::schedule::Schedule;
use crate::failure::FailureKind;

pub(super) struct Conn {
    /// Seeds the connection's payloads, so a reply that crossed to another connection
    /// cannot verify.
    pub(super) id: u32,
    /// `None` between a churn cycle's close (or failed connect) and its reconnect.
    pub(super) stream: Option<TcpStream>,
    pub(super) connected_at: Instant,
    pub(super) first_reply: Option<Duration>,
    /// The server's handshake challenge as far as it has arrived: a random nonce of
    /// `NONCE_LEN` bytes, to be answered with its HMAC under the key before any message
    /// is sent. Collected here because it may arrive split across reads.
    pub(super) nonce: Vec<u8>,
    /// The challenge is not fully answered yet (`--auth-key-file` only).
    pub(super) awaiting_nonce: bool,
    pub(super) out: Vec<u8>,
    out_pos: usize,
    /// The start of a reply still arriving (whole replies are verified where they were
    /// read and never land here).
    pub(super) input: Vec<u8>,
    pub(super) next_seq: u64,
    /// (sequence number, time it was sent, or due to be sent in the open loop).
    pub(super) in_flight: VecDeque<(u64, Instant)>,
    pub(super) measured: u64,
    pub(super) open: bool,
    /// Open loop: when each message is due.
    pub(super) schedule: Option<Schedule>,
    /// Churn: when to reconnect after a failure.
    pub(super) retry_at: Option<Instant>,
    /// Open loop: the connection's next due message is in the wake-up queue.
    pub(super) wake_queued: bool,
}

impl Conn {
    pub(super) fn new(id: u32, awaiting_nonce: bool, schedule: Option<Schedule>) -> Conn {
        Conn {
            id,
            stream: None,
            connected_at: Instant::now(),
            first_reply: None,
            nonce: Vec::new(),
            awaiting_nonce,
            out: Vec::new(),
            out_pos: 0,
            input: Vec::new(),
            next_seq: 0,
            in_flight: VecDeque::new(),
            measured: 0,
            open: false,
            schedule,
            retry_at: None,
            wake_queued: false,
        }
    }

    /// Forgets the connection's I/O state before it reconnects (churn).
    pub(super) fn reset(&mut self, awaiting_nonce: bool) {
        self.nonce.clear();
        self.awaiting_nonce = awaiting_nonce;
        self.out.clear();
        self.out_pos = 0;
        self.input.clear();
        self.in_flight.clear();
    }

    /// Open, with a socket to read and write (a failed one keeps its socket until closed).
    pub(super) fn live(&self) -> bool {
        self.open && self.stream.is_some()
    }

    /// Writes what is queued until the socket takes no more.
    pub(super) fn write_out(&mut self) -> Result<(), FailureKind> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.open && self.out_pos < self.out.len() {
            match stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(FailureKind::Io),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FailureKind::from_connecting_io(&e)),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
    }

    /// One read into `buf`: `Some(n)` bytes, or `None` when the socket has nothing now.
    pub(super) fn read_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, FailureKind> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        loop {
            match stream.read(buf) {
                // With nothing owed the server simply ended the connection; with replies
                // owed, it cut them short.
                Ok(0) if self.in_flight.is_empty() && self.input.is_empty() => {
                    return Err(FailureKind::Reset)
                }
                Ok(0) => return Err(FailureKind::ShortRead),
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FailureKind::from_connecting_io(&e)),
            }
        }
    }

    /// The oldest message in flight has waited longer than `timeout`.
    pub(super) fn overdue(&self, now: Instant, timeout: Duration) -> bool {
        self.in_flight
            .front()
            .is_some_and(|(_, sent)| now.duration_since(*sent) > timeout)
    }
}
