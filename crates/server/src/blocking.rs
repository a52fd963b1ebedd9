use std::io::{self, Read, Write};
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::time::{Duration, Instant};

use echolab_proto::Session;

use crate::{new_session, read_available, ServerContext, READ_BUFFER};

/// How long a blocking `read`/`write` may wait when the session has no deadline at all
/// (`--idle-timeout 0` and nothing pending). A timeout is kept even then because a call
/// with `SO_RCVTIMEO`/`SO_SNDTIMEO` set returns `EINTR` on a signal instead of being
/// restarted, which is how shutdown reaches a blocked connection (see
/// [`crate::Interrupter`]); otherwise the wait ends at the session's next deadline, so
/// an idle connection wakes once per idle timeout, not on a tick.
pub const NO_DEADLINE_WAIT: Duration = Duration::from_secs(3600);

/// The longest one blocked `write` waits. A peer that reads slowly lets each call
/// write a little and return only when its timeout ends, and the idle deadline counts
/// from that return: a long wait would let a stalled writer hold the connection (and
/// `iterative`'s one thread) well past its deadline. A writer that waits is not idle, so
/// this costs nothing at rest.
const WRITE_WAIT: Duration = Duration::from_millis(500);

/// Serves one connection to the end with blocking `read`/`write` calls: the loop every
/// blocking model (iterative, fork, threads, pool) shares. Per message it costs one
/// `read` and one `write` (more when the message is larger than a socket buffer). The
/// thread registers in `ctx.blocked` while it serves, so shutdown can interrupt it.
///
/// The connection's outcome is folded into `ctx.stats`; an error here ends only this
/// connection, never the caller's accept loop.
pub fn serve_blocking(stream: TcpStream, ctx: &ServerContext) {
    let mut session = match new_session(&ctx.config.session, Instant::now()) {
        Ok(session) => session,
        Err(_) => return,
    };
    let _registration = ctx.blocked.register();
    let result = BlockingConnection::new(&stream).and_then(|mut conn| conn.run(&mut session, ctx));
    crate::log::closed(&stream, &session, result.is_err());
    ctx.stats.record_session(&session, result.is_err());
}

struct BlockingConnection<'a> {
    stream: &'a TcpStream,
    read_timeout: Duration,
    write_timeout: Duration,
}

impl<'a> BlockingConnection<'a> {
    fn new(stream: &'a TcpStream) -> io::Result<Self> {
        stream.set_read_timeout(Some(NO_DEADLINE_WAIT))?;
        stream.set_write_timeout(Some(WRITE_WAIT))?;
        Ok(BlockingConnection {
            stream,
            read_timeout: NO_DEADLINE_WAIT,
            write_timeout: WRITE_WAIT,
        })
    }

    fn run(&mut self, session: &mut Session, ctx: &ServerContext) -> io::Result<()> {
        let mut buf = vec![0u8; READ_BUFFER];
        let mut shutdown_seen = false;
        loop {
            self.flush(session, ctx, &mut shutdown_seen)?;
            if session.take_fin() {
                // Our FIN goes out after the last reply; the peer may still be sending,
                // so keep reading until its FIN (the session's draining phase).
                let _ = self.stream.shutdown(SocketShutdown::Write);
            }
            if session.is_closed() {
                return Ok(());
            }
            if !shutdown_seen && ctx.shutdown.is_requested() {
                shutdown_seen = true;
                self.read_what_has_arrived(session, &mut buf)?;
                session.begin_shutdown(Instant::now());
                continue;
            }
            self.adjust_read_timeout(session)?;
            let read = self.stream.read(&mut buf);
            tracing::trace!(?read, "read");
            match read {
                Ok(0) => session.handle_eof(Instant::now()),
                Ok(n) => session.handle_input(&buf[..n], Instant::now()),
                Err(e) if is_timeout(&e) => session.handle_timeout(Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes everything the session owes, waking at its deadlines (a peer that never
    /// reads is closed by them, not waited on forever) and on shutdown's signal.
    fn flush(
        &mut self,
        session: &mut Session,
        ctx: &ServerContext,
        shutdown_seen: &mut bool,
    ) -> io::Result<()> {
        while session.wants_write() {
            self.adjust_write_timeout(session)?;
            let written = self.stream.write(session.output());
            tracing::trace!(?written, "write");
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => session.consume_output(n, Instant::now()),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                    let now = Instant::now();
                    if !*shutdown_seen && ctx.shutdown.is_requested() {
                        *shutdown_seen = true;
                        session.begin_shutdown(now);
                    }
                    session.handle_timeout(now);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// At shutdown, takes in what the peer already sent (without waiting for more), so
    /// complete frames sitting in the socket buffer are still echoed.
    fn read_what_has_arrived(&mut self, session: &mut Session, buf: &mut [u8]) -> io::Result<()> {
        self.stream.set_nonblocking(true)?;
        let mut stream = self.stream;
        let drained = read_available(&mut stream, session, buf);
        self.stream.set_nonblocking(false)?;
        drained.map(drop)
    }

    /// Keeps the read timeout at the session's next deadline. Only a deadline that came
    /// nearer costs a `setsockopt`; one that moved later — the idle deadline after every
    /// message — is left alone until the wait ends early and finds nothing due, so the
    /// per-message path makes none.
    fn adjust_read_timeout(&mut self, session: &Session) -> io::Result<()> {
        let wanted = until_deadline(session, NO_DEADLINE_WAIT);
        if needs_change(wanted, self.read_timeout) {
            self.stream.set_read_timeout(Some(wanted))?;
            self.read_timeout = wanted;
        }
        Ok(())
    }

    /// The same for writes, never above [`WRITE_WAIT`].
    fn adjust_write_timeout(&mut self, session: &Session) -> io::Result<()> {
        let wanted = until_deadline(session, WRITE_WAIT);
        if needs_change(wanted, self.write_timeout) {
            self.stream.set_write_timeout(Some(wanted))?;
            self.write_timeout = wanted;
        }
        Ok(())
    }
}

/// Time until the session's next deadline, at most `longest` (and at least 1 ms: a zero
/// socket timeout means "wait forever").
fn until_deadline(session: &Session, longest: Duration) -> Duration {
    session
        .poll_timeout()
        .map_or(longest, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        })
        .clamp(Duration::from_millis(1), longest)
}

/// Whether a socket timeout of `current` must become `wanted`: when it would wake too
/// late, or so early that it would wake for nothing again and again.
fn needs_change(wanted: Duration, current: Duration) -> bool {
    wanted + Duration::from_millis(2) < current || wanted > current * 2
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
