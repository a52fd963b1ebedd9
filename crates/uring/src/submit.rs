//! Queuing requests: the accept, the shutdown poll, the offload pool's wake poll,
//! cancellations, and the one place an entry enters the submission ring (whose buffers
//! must outlive the request).

use std::io;
use std::os::fd::AsRawFd;

use io_uring::types::Fd;
use io_uring::{opcode, squeue};

use crate::ops::Op;
use crate::Loop;

impl Loop<'_> {
    pub(crate) fn arm_accept(&mut self) -> io::Result<()> {
        let Some(listener) = self.listening.listener() else {
            return Ok(());
        };
        if self.accept_armed || !self.listening.is_accepting() {
            return Ok(());
        }
        let accept = opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(Op::Accept.tag(0));
        self.accept_armed = true;
        // SAFETY: the accept points at no memory of ours (no address is asked for).
        unsafe { self.push(&accept) }
    }

    pub(crate) fn arm_waker(&mut self) -> io::Result<()> {
        let waker = self.ctx.shutdown.waker().as_raw_fd();
        let poll = opcode::PollAdd::new(Fd(waker), libc::POLLIN as u32)
            .build()
            .user_data(Op::Waker.tag(0));
        self.waker_armed = true;
        // SAFETY: the poll points at no memory of ours.
        unsafe { self.push(&poll) }
    }

    /// `--offload`: polls the pool's wake descriptor (one-shot, re-armed by
    /// `offload_woken`).
    pub(crate) fn arm_offload(&mut self) -> io::Result<()> {
        let Some(offload) = &mut self.offload else {
            return Ok(());
        };
        if offload.armed || offload.cancelled {
            return Ok(());
        }
        let poll = opcode::PollAdd::new(Fd(offload.wake.fd().as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(Op::Offload.tag(0));
        offload.armed = true;
        // SAFETY: the poll points at no memory of ours, and the kernel takes its own
        // reference to the descriptor (the drain cancels the poll, so none is left).
        unsafe { self.push(&poll) }
    }

    /// Cancels the poll on the pool's wake descriptor, once.
    pub(crate) fn disarm_offload(&mut self) -> io::Result<()> {
        let Some(offload) = &mut self.offload else {
            return Ok(());
        };
        if offload.cancelled {
            return Ok(());
        }
        offload.cancelled = true;
        if offload.armed {
            self.cancel(Op::Offload.tag(0))?;
        }
        Ok(())
    }

    /// Asks the kernel to cancel the request tagged `target`; its own completion (and
    /// the target's last one) come later.
    pub(crate) fn cancel(&mut self, target: u64) -> io::Result<()> {
        let cancel = opcode::AsyncCancel::new(target)
            .build()
            .user_data(Op::Cancel.tag(0));
        // SAFETY: a cancel points at no memory of ours.
        unsafe { self.push(&cancel) }
    }

    /// Queues `entry` for the next `io_uring_enter` (submitting early only if the
    /// submission ring is full).
    ///
    /// # Safety
    ///
    /// Every buffer `entry` points at must stay valid, and unmoved, until the request's
    /// last completion.
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: passed on from the caller.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.in_flight += 1;
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {
                    // The completion ring is full: make room by taking completions off
                    // it, to be handled in order by `complete_all`.
                    self.backlog.extend(self.ring.completion());
                }
                Err(e) => return Err(e),
            }
        }
    }
}
