//! The loop's turn ([`EventLoop`]): one `io_uring_enter` that submits what the turn
//! queued and waits, then every completion in order, then (`--offload`) the jobs the
//! pool has given back; and the start of the drain.

use std::io;
use std::time::Instant;

use echolab_server::{Conns, EventLoop};
use io_uring::cqueue;
use io_uring::types::{SubmitArgs, Timespec};

use crate::in_flight::InFlight;
use crate::ops::Op;
use crate::{Loop, FINAL_WAIT};

impl EventLoop for Loop<'_> {
    type Wait = InFlight;

    fn conns(&mut self) -> &mut Conns<InFlight> {
        &mut self.conns
    }

    fn begin_shutdown(&mut self) -> io::Result<()> {
        self.begin_drain()
    }

    /// Every connection has closed; the requests cancelled for them may still be in
    /// the kernel: wait for their completions, up to [`FINAL_WAIT`].
    fn drained(&mut self) -> bool {
        if self.in_flight == 0 {
            return true;
        }
        let since = *self.quiet_since.get_or_insert_with(Instant::now);
        since.elapsed() >= FINAL_WAIT
    }

    fn wait_and_serve(&mut self) -> io::Result<Instant> {
        if self.conns.is_draining() && self.conns.is_empty() {
            // No connection is left to send a job: the poll for their return can go.
            self.disarm_offload()?;
        }
        self.wait()?;
        self.now = Instant::now();
        self.complete_all()?;
        // After the completions, whose offload poll (if any) cleared the wake
        // descriptor: a job back in between wakes the re-armed poll, not lost.
        self.take_offloaded()?;
        if self.listening.resume_if_due(self.now) {
            self.arm_accept()?;
        }
        Ok(self.now)
    }

    fn expired(&mut self, index: usize, _now: Instant) -> io::Result<()> {
        self.pump(index, Ok(()))
    }
}

impl Loop<'_> {
    /// Submits what this turn queued and waits for one completion, or the earliest
    /// deadline: one `io_uring_enter`.
    pub(crate) fn wait(&mut self) -> io::Result<()> {
        let deadline = self.conns.next_wakeup(&self.listening);
        let deadline = if self.conns.is_draining() && self.conns.is_empty() {
            Some(self.now + FINAL_WAIT)
        } else {
            deadline
        };
        let result = match deadline {
            None => self.ring.submit_and_wait(1),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let ts = Timespec::new()
                    .sec(left.as_secs())
                    .nsec(left.subsec_nanos());
                let args = SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                // Timed out, interrupted by a signal, or completions to reap first.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(e),
            },
        }
    }

    /// Runs every completion the kernel has posted, and those it posts meanwhile.
    pub(crate) fn complete_all(&mut self) -> io::Result<()> {
        self.backlog.extend(self.ring.completion());
        tracing::trace!(
            completions = self.backlog.len(),
            in_flight = self.in_flight,
            "turn"
        );
        while let Some(cqe) = self.backlog.pop_front() {
            self.complete(&cqe)?;
            if self.backlog.is_empty() {
                self.backlog.extend(self.ring.completion());
            }
        }
        Ok(())
    }

    pub(crate) fn complete(&mut self, cqe: &cqueue::Entry) -> io::Result<()> {
        let Some((op, index)) = Op::untag(cqe.user_data()) else {
            return Ok(());
        };
        let more = cqueue::more(cqe.flags());
        if !more {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        match op {
            Op::Accept => self.accepted(cqe.result(), more),
            Op::Waker => {
                // The flag is set before the descriptor becomes readable: `run` sees it.
                self.waker_armed = false;
                Ok(())
            }
            Op::Recv => self.received(index, cqe, more),
            Op::Send => self.sent(index, cqe.result()),
            Op::Cancel => Ok(()),
            Op::Offload => self.offload_woken(cqe.result()),
        }
    }

    pub(crate) fn begin_drain(&mut self) -> io::Result<()> {
        // Take in what has already arrived: a zero wait runs the kernel's pending
        // completions (the receives of bytes sent before the signal) before the
        // sessions stop reading.
        let ts = Timespec::new();
        match self
            .ring
            .submitter()
            .submit_with_args(1, &SubmitArgs::new().timespec(&ts))
        {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
        self.now = Instant::now();
        self.complete_all()?;
        if let Some(listener) = self.listening.close() {
            if self.accept_armed {
                self.cancel(Op::Accept.tag(0))?;
                self.closing_listener = Some(listener);
            }
        }
        if self.waker_armed {
            self.cancel(Op::Waker.tag(0))?;
        }
        for index in self.conns.indices() {
            if let Some(conn) = self.conns.get_mut(index) {
                conn.session.begin_shutdown(self.now);
                self.pump(index, Ok(()))?;
            }
        }
        Ok(())
    }
}
