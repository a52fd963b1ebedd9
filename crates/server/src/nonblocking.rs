//! Moving bytes between a [`Session`] and a non-blocking socket until one side stops.

use std::io::{self, Read, Write};
use std::time::Instant;

use echolab_proto::Session;

/// The size of the one read buffer a model keeps (per loop, per thread): a full
/// loopback segment train in one `read`, and the same for every model so none gets
/// more data per syscall than another.
pub const READ_BUFFER: usize = 64 * 1024;

/// Why a [`read_available`] or `write_pending` loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The session wants no more (input, or output to write).
    Session,
    /// The socket returned `WouldBlock`.
    WouldBlock,
    /// The peer closed its side (reads only); the session has been told.
    Eof,
}

impl Drained {
    /// Whether the socket itself ran dry, so an edge-triggered loop must wait for the
    /// next event before trying again.
    pub fn socket_exhausted(self) -> bool {
        self != Drained::Session
    }
}

/// Reads into the session until it wants no more input, the peer closes, or the socket
/// has nothing more right now. Used at shutdown: take in what has already arrived,
/// without waiting for more.
pub fn read_available<S: Read>(
    stream: &mut S,
    session: &mut Session,
    buf: &mut [u8],
) -> io::Result<Drained> {
    while session.wants_read() {
        match stream.read(buf) {
            Ok(0) => {
                session.handle_eof(Instant::now());
                return Ok(Drained::Eof);
            }
            Ok(n) => session.handle_input(&buf[..n], Instant::now()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Drained::WouldBlock),
            Err(e) => return Err(e),
        }
    }
    Ok(Drained::Session)
}

/// Writes the session's output until it is empty or the socket is full; `now` is the
/// caller's clock (a loop reads it once per turn).
pub(crate) fn write_pending<S: Write>(
    stream: &mut S,
    session: &mut Session,
    now: Instant,
) -> io::Result<Drained> {
    while session.wants_write() {
        match stream.write(session.output()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => session.consume_output(n, now),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Drained::WouldBlock),
            Err(e) => return Err(e),
        }
    }
    Ok(Drained::Session)
}
