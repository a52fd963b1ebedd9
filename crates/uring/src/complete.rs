//! What each completion means: a new connection, bytes received (or the peer's FIN,
//! or the end of a receive), a send done with its buffer; and, with `--offload`, the
//! pool's wake descriptor readable and the jobs it has given back.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use echolab_server::{accept_failed, admit_accepted, Accepted};
use io_uring::cqueue;

use crate::in_flight::{InFlight, Recv};
use crate::ops::Op;
use crate::{Loop, UringError};

impl Loop<'_> {
    /// A multishot accept completion: a new connection, or why there was none.
    pub(crate) fn accepted(&mut self, result: i32, more: bool) -> io::Result<()> {
        if !more {
            self.accept_armed = false;
            // The cancel at shutdown has landed: closing the listener now refuses new
            // connects (while the accept was armed, the kernel held it open).
            self.closing_listener = None;
        }
        if result >= 0 {
            self.accept_seen = true;
            // SAFETY: the kernel created this descriptor for us and names it only in
            // this completion; nothing else owns it.
            let stream = unsafe { std::net::TcpStream::from_raw_fd(result) };
            if self.conns.is_draining() {
                // Accepted in the moment before the cancel landed: not served.
                drop(stream);
            } else if let Accepted::Connection(stream, slot) = admit_accepted(stream, self.ctx) {
                let ring = &self.ring;
                let fixed_slots = self.fixed_slots;
                let index = self.conns.admit(stream, slot, |index, stream, _| {
                    let fixed = u32::try_from(index).is_ok_and(|i| i < fixed_slots)
                        && ring
                            .submitter()
                            .register_files_update(index as u32, &[stream.as_raw_fd()])
                            .is_ok();
                    Ok(InFlight {
                        fixed,
                        ..InFlight::default()
                    })
                });
                if let Some(index) = index {
                    self.pump(index, Ok(()))?;
                }
            }
        } else {
            let e = io::Error::from_raw_os_error(-result);
            if result == -libc::ECANCELED {
                return Ok(());
            }
            if result == -libc::EINVAL && !self.accept_seen {
                return Err(UringError::Refused {
                    what: "multishot accept",
                    since: "5.19",
                    source: e,
                }
                .into());
            }
            if let Accepted::BackOff = accept_failed(&e, self.ctx) {
                self.listening.pause(self.now);
                if more {
                    self.cancel(Op::Accept.tag(0))?;
                }
            }
        }
        if !more && self.listening.is_accepting() {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// A multishot receive completion: bytes in a provided buffer, the peer's FIN, or
    /// the end of the receive.
    pub(crate) fn received(
        &mut self,
        index: usize,
        cqe: &cqueue::Entry,
        more: bool,
    ) -> io::Result<()> {
        let result = cqe.result();
        let Some(conn) = self.conns.get_mut(index) else {
            if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                self.bufs.give_back(bid);
            }
            return Ok(());
        };
        if !more {
            conn.wait.recv = Recv::Idle;
        }
        let now = self.now;
        if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
            let filled = match self.bufs.filled(bid, result.max(0) as usize) {
                Ok(data) => {
                    if !data.is_empty() {
                        conn.session.handle_input(data, now);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            };
            self.recv_seen = true;
            self.bufs.give_back(bid);
            filled?;
        }
        let outcome = match result {
            n if n > 0 => Ok(()),
            0 => {
                conn.wait.peer_done = true;
                conn.session.handle_eof(now);
                Ok(())
            }
            e if e == -libc::ENOBUFS || e == -libc::ECANCELED => Ok(()),
            e if e == -libc::EINVAL && !self.recv_seen => {
                return Err(UringError::Refused {
                    what: "multishot receive with a provided-buffer ring",
                    since: "6.0",
                    source: io::Error::from_raw_os_error(-e),
                }
                .into());
            }
            e => {
                conn.wait.peer_done = true;
                Err(io::Error::from_raw_os_error(-e))
            }
        };
        self.pump(index, outcome)
    }

    /// A send completion: the kernel is done with the buffer.
    pub(crate) fn sent(&mut self, index: usize, result: i32) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(());
        };
        let Some(buf) = conn.wait.send.take() else {
            return Ok(());
        };
        conn.wait.send_cancelled = false;
        let now = self.now;
        let outcome = if result >= 0 {
            conn.session.complete_transmit(buf, result as usize, now);
            Ok(())
        } else {
            conn.session.complete_transmit(buf, 0, now);
            if result == -libc::ECANCELED {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(-result))
            }
        };
        self.pump(index, outcome)
    }

    /// The poll on the pool's wake descriptor completed: clear it and poll again, unless
    /// the drain is over (the jobs themselves are taken at the end of the turn).
    pub(crate) fn offload_woken(&mut self, result: i32) -> io::Result<()> {
        let Some(offload) = &mut self.offload else {
            return Ok(());
        };
        offload.armed = false;
        if result == -libc::ECANCELED || offload.cancelled {
            return Ok(());
        }
        offload.wake.clear();
        self.arm_offload()
    }

    /// `--offload`, every turn: the replies whose work is done go to their sessions,
    /// whose sends are queued (and next jobs handed over) by `pump`.
    pub(crate) fn take_offloaded(&mut self) -> io::Result<()> {
        let Some(offload) = &mut self.offload else {
            return Ok(());
        };
        let mut done = std::mem::take(&mut offload.done);
        done.extend(offload.port.completed());
        for (key, job) in done.drain(..) {
            if let Some(index) = self.conns.offload_done(key, job, self.now) {
                // An error here ends the loop: the jobs left in `done` go with it.
                self.pump(index, Ok(()))?;
            }
        }
        if let Some(offload) = &mut self.offload {
            offload.done = done;
        }
        Ok(())
    }
}
