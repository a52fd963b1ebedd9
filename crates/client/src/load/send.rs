//! What a connection sends: messages queued until `depth` are in flight (closed loop,
//! churn) or as they fall due (open loop), each carrying the payload its reply must
//! echo.

use std::time::Instant;

use echolab_proto::Protocol;

use super::config::LoadConfig;
use super::conn::Conn;
use super::tally::Tally;
use crate::failure::FailureKind;
use crate::payload;

/// Messages one connection may have unanswered before further due messages are dropped
/// (and counted as `backlog` errors) instead of queueing without bound.
pub(super) const MAX_IN_FLIGHT: usize = 1024;

/// Queues connection `c`'s messages for `now`: up to `depth` in flight, or, on a
/// schedule, every message due before `end`. Returns when to wake the connection for
/// its next due message, unless a wake-up for it is already queued.
pub(super) fn fill(
    c: &mut Conn,
    config: &LoadConfig,
    depth: usize,
    now: Instant,
    end: Instant,
    tally: &mut Tally,
) -> Option<Instant> {
    let framed = config.protocol == Protocol::Framed;
    let Some(mut schedule) = c.schedule.take() else {
        while c.in_flight.len() < depth {
            queue(c, config.size, framed, now);
        }
        return None;
    };
    loop {
        let due = schedule.next_due();
        if due > now || due >= end {
            break;
        }
        schedule.advance();
        if c.in_flight.len() >= MAX_IN_FLIGHT {
            // Never sent, so never answered: an error, and a wait from its due time that
            // lasts at least to the end (the open loop's censored samples stand for one
            // message each, so the window's part of it does not matter).
            tally.failures.add(FailureKind::Backlog);
            tally.censor(due, end, due);
            continue;
        }
        queue(c, config.size, framed, due);
    }
    let wake = (!c.wake_queued).then(|| schedule.next_due());
    c.wake_queued = true;
    c.schedule = Some(schedule);
    wake
}

/// Adds one message and its payload to the connection's output; `at` is when its wait
/// starts.
fn queue(c: &mut Conn, size: usize, framed: bool, at: Instant) {
    let seq = c.next_seq;
    c.next_seq += 1;
    if framed {
        // `size` was checked against the frame limit before the run started.
        c.out.extend_from_slice(&(size as u32).to_be_bytes());
    }
    let start = c.out.len();
    c.out.resize(start + size, 0);
    payload::fill(&mut c.out[start..], c.id, seq);
    c.in_flight.push_back((seq, at));
}
