//! One client socket's window of datagrams in flight, and the classification of each
//! reply against it (the kinds are those of the module doc of [`super`]).

use std::collections::VecDeque;
use std::io;
use std::net::UdpSocket;
use std::time::Instant;

use super::phases::Phases;
use super::tally::Tally;
use super::{MIN_SIZE, PER_WAKE};
use crate::load::schedule::Schedule;
use crate::payload;

/// Most datagrams one socket tracks at once (its sends within one reply timeout);
/// past it the oldest is given up on, as lost.
const MAX_WINDOW: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Awaited,
    Answered,
    /// The send failed: nothing to wait for.
    NotSent,
}

/// One datagram sent: when it was due (latency counts from then: in the open loop the
/// intended time, so a client or server that falls behind is charged for it), when it
/// really went (the reply timeout counts from then: a generator that cannot keep up
/// with its schedule must not count its own lateness as loss), and what came of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    at: Instant,
    sent: Instant,
    state: State,
}

/// One client socket and the datagrams it sent within the last reply timeout.
pub(super) struct Flow<'s> {
    pub(super) id: u32,
    pub(super) socket: &'s UdpSocket,
    /// The sequence number of `window[0]`.
    pub(super) base: u64,
    pub(super) window: VecDeque<Slot>,
    /// Datagrams awaiting a reply.
    pub(super) awaited: usize,
    /// The highest sequence number answered so far.
    pub(super) highest: Option<u64>,
    pub(super) schedule: Option<Schedule>,
    /// Edge-triggered: set by an event, cleared by `WouldBlock`.
    pub(super) readable: bool,
    /// Responses in the measured window.
    pub(super) responses: u64,
}

impl Flow<'_> {
    fn next_seq(&self) -> u64 {
        self.base + self.window.len() as u64
    }

    /// Sends the next datagram, due (open loop) or sent (closed) at `at`.
    pub(super) fn send(
        &mut self,
        at: Instant,
        payload: &mut [u8],
        tally: &mut Tally,
        phases: &Phases,
    ) {
        let seq = self.next_seq();
        payload[..MIN_SIZE].copy_from_slice(&seq.to_le_bytes());
        payload::fill(&mut payload[MIN_SIZE..], self.id, seq);
        let measured = phases.measured(at);
        let state = match self.socket.send(payload) {
            Ok(_) => {
                self.awaited += 1;
                tally.sent += u64::from(measured);
                State::Awaited
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tally.refused += 1;
                State::NotSent
            }
            Err(_) => {
                tally.unsent += u64::from(measured);
                State::NotSent
            }
        };
        self.window.push_back(Slot {
            at,
            sent: Instant::now(),
            state,
        });
        if self.window.len() > MAX_WINDOW {
            self.give_up_front(tally, phases);
        }
    }

    /// Drops the oldest slot; if it was still awaited, it is lost.
    pub(super) fn give_up_front(&mut self, tally: &mut Tally, phases: &Phases) {
        if let Some(slot) = self.window.pop_front() {
            self.base += 1;
            if slot.state == State::Awaited {
                self.awaited -= 1;
                tally.lost += u64::from(phases.measured(slot.at));
            }
        }
    }

    /// Gives up on the datagrams sent at or before `cutoff` (one reply timeout ago).
    pub(super) fn expire(&mut self, cutoff: Instant, tally: &mut Tally, phases: &Phases) {
        while self.window.front().is_some_and(|slot| slot.sent <= cutoff) {
            self.give_up_front(tally, phases);
        }
    }

    /// Classifies one reply (see the module doc).
    pub(super) fn on_reply(
        &mut self,
        reply: &[u8],
        size: usize,
        now: Instant,
        tally: &mut Tally,
        phases: &Phases,
    ) {
        if reply.len() != size {
            tally.corrupted += 1;
            return;
        }
        let mut seq_bytes = [0u8; MIN_SIZE];
        seq_bytes.copy_from_slice(&reply[..MIN_SIZE]);
        let seq = u64::from_le_bytes(seq_bytes);
        if seq >= self.next_seq() || !payload::matches(&reply[MIN_SIZE..], self.id, seq) {
            tally.corrupted += 1;
            return;
        }
        let Some(index) = seq.checked_sub(self.base) else {
            tally.late += 1;
            return;
        };
        let slot = &mut self.window[index as usize];
        match slot.state {
            State::Answered => tally.duplicated += 1,
            State::NotSent => tally.corrupted += 1,
            State::Awaited => {
                slot.state = State::Answered;
                self.awaited -= 1;
                if self.highest.is_some_and(|h| seq < h) {
                    tally.reordered += 1;
                }
                self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
                if phases.measured(slot.at) {
                    tally.responses += 1;
                    self.responses += 1;
                    let nanos = now.saturating_duration_since(slot.at).as_nanos();
                    let _ = tally
                        .histogram
                        .record((nanos.min(u64::MAX as u128) as u64).max(1_000));
                }
            }
        }
    }

    /// Receives until `WouldBlock` (at most [`PER_WAKE`] datagrams).
    pub(super) fn receive(
        &mut self,
        buf: &mut [u8],
        size: usize,
        tally: &mut Tally,
        phases: &Phases,
    ) {
        for _ in 0..PER_WAKE {
            match self.socket.recv(buf) {
                Ok(n) => self.on_reply(&buf[..n], size, Instant::now(), tally, phases),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => tally.refused += 1,
                // Any other error is the socket's pending one, reported once; go on.
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    fn phases() -> Phases {
        let start = Instant::now();
        Phases {
            start,
            measure_from: start,
            end: start + Duration::from_secs(60),
        }
    }

    /// A reply as the server would echo datagram `seq` of socket `id`.
    fn reply(id: u32, seq: u64, size: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; size];
        bytes[..MIN_SIZE].copy_from_slice(&seq.to_le_bytes());
        payload::fill(&mut bytes[MIN_SIZE..], id, seq);
        bytes
    }

    #[test]
    fn replies_are_classified_one_by_one() {
        let phases = phases();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(sink.local_addr().unwrap()).unwrap();
        let mut flow = Flow {
            id: 3,
            socket: &socket,
            base: 0,
            window: VecDeque::new(),
            awaited: 0,
            highest: None,
            schedule: None,
            readable: false,
            responses: 0,
        };
        let mut tally = Tally::new();
        let mut payload = vec![0u8; 64];
        for _ in 0..4 {
            flow.send(Instant::now(), &mut payload, &mut tally, &phases);
        }
        assert_eq!((tally.sent, flow.awaited), (4, 4));
        let now = Instant::now();
        flow.on_reply(&reply(3, 1, 64), 64, now, &mut tally, &phases);
        flow.on_reply(&reply(3, 0, 64), 64, now, &mut tally, &phases); // overtaken
        flow.on_reply(&reply(3, 1, 64), 64, now, &mut tally, &phases); // again
        flow.on_reply(&reply(4, 2, 64), 64, now, &mut tally, &phases); // another socket's
        flow.on_reply(&reply(3, 2, 64)[..63], 64, now, &mut tally, &phases); // cut short
        flow.on_reply(&reply(3, 9, 64), 64, now, &mut tally, &phases); // never sent
        let mut flipped = reply(3, 3, 64);
        flipped[40] ^= 1;
        flow.on_reply(&flipped, 64, now, &mut tally, &phases);
        assert_eq!(tally.responses, 2);
        assert_eq!(tally.reordered, 1);
        assert_eq!(tally.duplicated, 1);
        assert_eq!(tally.corrupted, 4);
        // Datagrams 2 and 3 time out; a late reply to 2 is late, not a response.
        flow.expire(Instant::now(), &mut tally, &phases);
        assert_eq!((tally.lost, flow.awaited, flow.window.len()), (2, 0, 0));
        flow.on_reply(&reply(3, 2, 64), 64, Instant::now(), &mut tally, &phases);
        assert_eq!((tally.late, tally.responses), (1, 2));
    }
}
