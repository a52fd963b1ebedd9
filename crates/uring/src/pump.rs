//! After any change to a connection, bring its requests in line with its session:
//! its next complete frame to the offload pool (`--offload`), one send in flight at a
//! time, a receive armed while the session wants to read, and every request cancelled
//! before a closing connection's descriptor is closed.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::opcode;
use io_uring::types::{Fd, Fixed};

use crate::in_flight::Recv;
use crate::ops::Op;
use crate::{buf_ring, Loop};

impl Loop<'_> {
    /// After any change to a connection: hand its next frame to the offload pool,
    /// queue its send, arm or cancel its receive as the session wants, send the FIN and keep the deadline current (the readiness
    /// core's settle); or, once it is closing, cancel what is in flight and close it
    /// when nothing is.
    pub(crate) fn pump(&mut self, index: usize, outcome: io::Result<()>) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(());
        };
        if outcome.is_err() {
            conn.wait.doomed = Some(true);
        } else if conn.session.is_closed() && conn.wait.doomed.is_none() {
            conn.wait.doomed = Some(false);
        }
        if let Some(io_error) = conn.wait.doomed {
            let cancel_recv = conn.wait.recv == Recv::Armed;
            let cancel_send = conn.wait.send.is_some() && !conn.wait.send_cancelled;
            if cancel_recv {
                conn.wait.recv = Recv::Cancelling;
            }
            if cancel_send {
                conn.wait.send_cancelled = true;
            }
            if conn.wait.is_quiet() {
                if conn.wait.fixed {
                    // Out of the table before the descriptor closes (the table holds a
                    // reference of its own) and before the slot is reused.
                    let _ = self
                        .ring
                        .submitter()
                        .register_files_update(index as u32, &[-1]);
                }
                self.conns.close(index, io_error, |_| {});
                return Ok(());
            }
            if cancel_recv {
                self.cancel(Op::Recv.tag(index))?;
            }
            if cancel_send {
                self.cancel(Op::Send.tag(index))?;
            }
            return Ok(());
        }
        if let Some(offload) = &self.offload {
            self.conns.offload_next(index, &offload.port);
        }
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(());
        };
        let fd = Fd(conn.stream.as_raw_fd());
        let fixed = conn.wait.fixed.then_some(Fixed(index as u32));
        if conn.wait.send.is_none() {
            if let Some(buf) = conn.session.take_transmit() {
                let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
                let send = match fixed {
                    Some(slot) => opcode::Send::new(slot, buf.as_ptr(), len),
                    None => opcode::Send::new(fd, buf.as_ptr(), len),
                };
                let send = send
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(Op::Send.tag(index));
                conn.wait.send = Some(buf);
                // SAFETY: the entry points at the heap buffer of the Vec now in
                // `conn.wait.send`; it is neither touched nor dropped until this send's
                // completion takes it back (`sent`), and the connection is not closed
                // while a send is in flight (`pump` waits for it to be quiet).
                unsafe { self.push(&send)? };
            }
        }
        let Some(conn) = self.conns.get_mut(index) else {
            return Ok(());
        };
        let wants_read = conn.session.wants_read() && !conn.wait.peer_done;
        match (wants_read, conn.wait.recv) {
            (true, Recv::Idle) => {
                conn.wait.recv = Recv::Armed;
                let recv = match fixed {
                    Some(slot) => opcode::RecvMulti::new(slot, buf_ring::GROUP),
                    None => opcode::RecvMulti::new(fd, buf_ring::GROUP),
                };
                let recv = recv.build().user_data(Op::Recv.tag(index));
                // SAFETY: the receive points at no memory of ours but the registered
                // buffer ring, which lives until the ring is closed after the last
                // receive has completed (`BufRing::close`).
                unsafe { self.push(&recv)? };
            }
            (false, Recv::Armed) => {
                // Backpressure (or the session stopped reading): stop the receive.
                conn.wait.recv = Recv::Cancelling;
                self.cancel(Op::Recv.tag(index))?;
            }
            _ => {}
        }
        self.conns.settle(index, Ok(()), |_| {});
        Ok(())
    }
}
