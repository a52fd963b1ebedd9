use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::{wait_readable, Readiness, ServerContext};

/// How long to stop accepting after `accept` fails for lack of resources (EMFILE,
/// ENFILE, ENOBUFS, ENOMEM): retrying at once would spin a core on an error that only
/// a closing connection can clear.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The accept loop every blocking model shares: waits for a connection *or* shutdown
/// with one `poll(2)`, retries transient failures, and backs off when out of
/// descriptors instead of spinning or dying.
#[derive(Debug)]
pub struct Acceptor<'a> {
    listener: &'a TcpListener,
    ctx: &'a ServerContext,
}

impl<'a> Acceptor<'a> {
    /// Prepares `listener` (non-blocking, so a connection that vanished between
    /// `poll` and `accept` cannot block the loop).
    pub fn new(listener: &'a TcpListener, ctx: &'a ServerContext) -> io::Result<Acceptor<'a>> {
        listener.set_nonblocking(true)?;
        Ok(Acceptor { listener, ctx })
    }

    /// The next connection (a blocking socket with `TCP_NODELAY`), or `None` once
    /// shutdown is requested.
    pub fn next(&self) -> Option<TcpStream> {
        let mut backoff = None;
        loop {
            match wait_readable(self.listener.as_fd(), &self.ctx.shutdown, backoff.take()) {
                Ok(Readiness::Shutdown) => return None,
                Ok(Readiness::TimedOut) => {}
                Ok(Readiness::Ready) => {}
                Err(_) => backoff = Some(ACCEPT_BACKOFF),
            }
            match self.listener.accept() {
                Ok((stream, _)) => {
                    self.ctx.stats.record_accept();
                    if stream.set_nonblocking(false).is_ok() {
                        // Replies are small and latency matters: do not let Nagle hold
                        // them back waiting for an ACK.
                        let _ = stream.set_nodelay(true);
                        return Some(stream);
                    }
                }
                Err(e) if is_transient(&e) => {}
                Err(_) => {
                    self.ctx.stats.record_accept_error();
                    // Back off in `wait_readable` so shutdown still wakes us at once.
                    if sleep_or_shutdown(self.ctx) {
                        return None;
                    }
                }
            }
        }
    }
}

/// Sleeps [`ACCEPT_BACKOFF`], waking early on shutdown; true when shutdown came. Polls
/// only the shutdown descriptor, so it needs no new descriptor while out of them.
fn sleep_or_shutdown(ctx: &ServerContext) -> bool {
    matches!(
        wait_readable(ctx.shutdown.waker(), &ctx.shutdown, Some(ACCEPT_BACKOFF)),
        Ok(Readiness::Shutdown) | Err(_)
    )
}

/// Errors after which the next `accept` may well succeed at once.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
