//! The work seam: between "a frame is complete" and "its reply is queued", the session
//! hands the message to a [`Handler`] — now, on the driver's thread ([`WorkMode::Inline`]),
//! or later, through the driver ([`WorkMode::Offload`]).
//!
//! Inline needs nothing from a model: a blocking model then works on its own thread or
//! process, and an event loop stalls every connection it holds while it works (the
//! lesson the comparison shows). Offload keeps complete frames waiting in the session,
//! in order; the driver takes one at a time per connection ([`Session::take_job`]),
//! has it worked on elsewhere (a pool), and gives it back ([`Session::complete_job`]),
//! which queues its reply. So:
//!
//! - replies stay in order, and no frame is lost or doubled: one job per connection is
//!   out at a time, and the frames behind it wait in the session;
//! - backpressure holds: waiting frames and the job out count as owed output for
//!   [`Session::wants_read`], against the high-water mark;
//! - the per-frame deadline is unchanged (it is about receiving a frame). While work is
//!   outstanding no idle or closing-linger deadline runs — the server, not the peer, is
//!   the one that is late — and they count again from the last reply queued;
//! - closing (peer EOF, shutdown, an error notice) with work outstanding: every whole
//!   frame received before still gets its reply, the notice follows the last one, then
//!   the FIN — today's order;
//! - [`Session::is_closed`] is never true while a job is out, so a driver never frees a
//!   connection's slot under a worker; a session abandoned meanwhile
//!   ([`Session::abandon`], a linger that ran out) drops the job when it comes back.
//!
//! Work applies to framed messages only: raw TCP has no messages, and a raw session
//! ignores the mode.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use super::{Phase, Session, RETAIN_CAPACITY};
use crate::frame::{Header, HEADER_LEN};
use crate::CloseReason;

/// The work done for one message. It never alters the bytes: the reply is the echo.
pub trait Handler: Send + Sync + fmt::Debug {
    /// Does the work for one message, given its payload (without the frame header).
    fn handle(&self, payload: &[u8]);
}

/// Where a session's per-message work runs.
#[derive(Clone, Debug, Default)]
pub enum WorkMode {
    /// No work: the echo alone.
    #[default]
    None,
    /// The session calls the handler itself, on the driver's thread, as each frame
    /// completes.
    Inline(Arc<dyn Handler>),
    /// The driver takes complete frames as [`Job`]s and gives them back when worked on.
    Offload,
}

/// One complete frame handed out for offloaded work; it goes back to the session it
/// came from with [`Session::complete_job`].
#[derive(Debug)]
pub struct Job {
    /// The whole frame, header included: the reply is these bytes.
    frame: Vec<u8>,
}

impl Job {
    /// The message's payload, for the handler.
    pub fn payload(&self) -> &[u8] {
        &self.frame[HEADER_LEN..]
    }
}

/// A session's work state: one pointer, null without work, because every byte of a
/// session is a byte per connection; a server with work pays one allocation per
/// connection.
#[derive(Debug)]
pub(super) struct Work(Option<Box<Mode>>);

#[derive(Debug)]
enum Mode {
    Inline(Arc<dyn Handler>),
    Offload(Queue),
}

/// Offloaded frames of one connection.
#[derive(Debug, Default)]
struct Queue {
    /// Complete frames (header and payload) not yet taken, oldest first, from `pos`:
    /// one buffer, so many small frames cost no allocation each.
    waiting: Vec<u8>,
    pos: usize,
    /// Bytes of the frame handed out as a job, while one is out.
    out: Option<usize>,
    /// A notice that must follow the replies still owed.
    notice: Vec<u8>,
}

impl Work {
    pub(super) fn new(mode: &WorkMode) -> Work {
        Work(match mode {
            WorkMode::None => None,
            WorkMode::Inline(handler) => Some(Box::new(Mode::Inline(Arc::clone(handler)))),
            WorkMode::Offload => Some(Box::new(Mode::Offload(Queue::default()))),
        })
    }

    pub(super) fn is_inline(&self) -> bool {
        matches!(self.0.as_deref(), Some(Mode::Inline(_)))
    }

    fn queue(&self) -> Option<&Queue> {
        match self.0.as_deref() {
            Some(Mode::Offload(queue)) => Some(queue),
            _ => None,
        }
    }

    fn queue_mut(&mut self) -> Option<&mut Queue> {
        match self.0.as_deref_mut() {
            Some(Mode::Offload(queue)) => Some(queue),
            _ => None,
        }
    }

    /// Whether frames wait or a job is out: replies are still to come.
    pub(super) fn is_outstanding(&self) -> bool {
        self.queue().is_some_and(Queue::is_outstanding)
    }

    /// Whether a job is out (the driver must keep the connection until it is back).
    pub(super) fn is_job_out(&self) -> bool {
        self.queue().is_some_and(|q| q.out.is_some())
    }

    /// Bytes whose replies are still to be queued, for backpressure.
    pub(super) fn owed(&self) -> usize {
        self.queue()
            .map_or(0, |q| q.waiting.len() - q.pos + q.out.unwrap_or(0))
    }

    pub(super) fn capacity(&self) -> usize {
        self.queue()
            .map_or(0, |q| q.waiting.capacity() + q.notice.capacity())
    }

    /// Holds `notice` until the replies still owed are queued; gives it back if none are.
    pub(super) fn defer_notice(&mut self, notice: Vec<u8>) -> Option<Vec<u8>> {
        match self.queue_mut() {
            Some(queue) if queue.is_outstanding() => {
                queue.notice = notice;
                None
            }
            _ => Some(notice),
        }
    }

    /// Forgets every frame still waiting and the deferred notice (the job out, if any,
    /// is dropped when it comes back).
    pub(super) fn discard(&mut self) {
        if let Some(queue) = self.queue_mut() {
            queue.waiting = Vec::new();
            queue.pos = 0;
            queue.notice = Vec::new();
        }
    }
}

impl Queue {
    fn is_outstanding(&self) -> bool {
        self.out.is_some() || self.pos < self.waiting.len()
    }

    /// Appends a complete frame: `held` (header and start) then `tail`.
    fn push(&mut self, held: &mut Vec<u8>, tail: &[u8]) {
        if self.pos == self.waiting.len() {
            // Nothing waits: the held buffer becomes the queue, no copy.
            self.waiting = std::mem::take(held);
            self.pos = 0;
        } else {
            self.waiting.extend_from_slice(held);
            held.clear();
        }
        self.waiting.extend_from_slice(tail);
    }

    /// Takes the oldest waiting frame out.
    fn pop(&mut self) -> Option<Vec<u8>> {
        let rest = &self.waiting[self.pos..];
        if rest.len() < HEADER_LEN {
            return None;
        }
        // Only whole frames are queued, each with a header below the frame limit.
        let len = Header::parse([rest[0], rest[1], rest[2], rest[3]]).word() as usize;
        let end = HEADER_LEN + len;
        let frame = if self.pos == 0 && end == self.waiting.len() {
            std::mem::take(&mut self.waiting)
        } else {
            let frame = rest[..end].to_vec();
            self.pos += end;
            frame
        };
        if self.pos == self.waiting.len() {
            self.waiting = Vec::new();
            self.pos = 0;
        } else if self.pos >= RETAIN_CAPACITY && self.pos * 2 >= self.waiting.len() {
            self.waiting.drain(..self.pos);
            self.pos = 0;
        }
        Some(frame)
    }
}

impl Session {
    /// Hands a complete frame — `self.held` (its header and first part) plus `tail` —
    /// to the work mode: `false` when its reply is now queued (no work, or inline work
    /// done), `true` when it waits for a job. Framed mode only.
    pub(super) fn work_on_frame(&mut self, tail: &[u8]) -> bool {
        match self.work.0.as_deref_mut() {
            None => false,
            Some(Mode::Inline(handler)) => {
                // The handler needs the payload in one piece.
                self.held.extend_from_slice(tail);
                handler.handle(&self.held[HEADER_LEN..]);
                false
            }
            Some(Mode::Offload(queue)) => {
                queue.push(&mut self.held, tail);
                true
            }
        }
    }

    /// Whether a job waits to be taken ([`Session::take_job`]): an offloading session
    /// with a complete frame waiting and no job out. A driver asks after each change.
    pub fn wants_job(&self) -> bool {
        !matches!(self.phase, Phase::Closed(_))
            && self
                .work
                .queue()
                .is_some_and(|q| q.out.is_none() && q.pos < q.waiting.len())
    }

    /// Takes the oldest complete frame for offloaded work. `None` unless
    /// [`Session::wants_job`]: one job per connection at a time keeps the replies in
    /// order. Until it comes back, its bytes count as owed, for backpressure and for
    /// closing.
    pub fn take_job(&mut self) -> Option<Job> {
        if !self.wants_job() {
            return None;
        }
        let queue = self.work.queue_mut()?;
        let frame = queue.pop()?;
        queue.out = Some(frame.len());
        Some(Job { frame })
    }

    /// A job from [`Session::take_job`] was worked on at `now`: queues its reply (and,
    /// after the last reply owed, a notice held back for it). A session that was
    /// abandoned meanwhile drops it; it is then [closed](Session::is_closed).
    pub fn complete_job(&mut self, job: Job, now: Instant) {
        let Some(queue) = self.work.queue_mut() else {
            return;
        };
        if queue.out.take().is_none() || matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        let notice = if queue.pos == queue.waiting.len() {
            std::mem::take(&mut queue.notice)
        } else {
            Vec::new()
        };
        if self.out_pos == self.out.len() {
            self.out = job.frame;
            self.out_pos = 0;
        } else {
            self.out.extend_from_slice(&job.frame);
        }
        self.out.extend_from_slice(&notice);
        self.stats.frames += 1;
        self.last_activity = now;
        self.finish_if_flushed(now);
    }

    /// The driver lost the connection (a read or write failed): drop everything owed.
    /// The session is [closed](Session::is_closed) at once, or, with a job out, when
    /// that job comes back — until then the driver keeps the connection's slot.
    pub fn abandon(&mut self) {
        if matches!(self.phase, Phase::Closed(_)) {
            return;
        }
        self.phase = Phase::Closed(CloseReason::Abandoned);
        self.held = Vec::new();
        self.handshake = None;
        self.frame_deadline = None;
        self.out = Vec::new();
        self.out_pos = 0;
        self.work.discard();
    }
}

#[cfg(test)]
mod tests;
