//! The one accept step every model takes, and the blocking accept loop built on it.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::SockRef;

use crate::shutdown::{wait_readable, Readiness};
use crate::{refuse_busy, ConnectionSlot, ServerContext};

/// How long to stop accepting after `accept` fails for lack of resources (EMFILE,
/// ENFILE, ENOBUFS, ENOMEM): retrying at once would spin a core on an error that only
/// a closing connection can clear.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Whether an accepted socket is handed over blocking (for `read`/`write` models) or
/// non-blocking (for readiness and completion loops). Set by `accept4` itself, so it
/// costs no extra syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketMode {
    /// Blocking reads and writes.
    Blocking,
    /// `O_NONBLOCK`.
    NonBlocking,
}

/// What one [`accept_one`] came to.
#[derive(Debug)]
pub enum Accepted {
    /// A connection to serve, with its `--max-conns` slot.
    Connection(TcpStream, ConnectionSlot),
    /// A connection the server had no room for; it was told `server busy` and closed.
    Refused,
    /// The accept failed in a way the next one may not (the peer reset in the backlog,
    /// a signal): try again.
    Retry,
    /// No connection is waiting (the listener is non-blocking).
    Empty,
    /// Out of descriptors or memory: stop accepting for [`ACCEPT_BACKOFF`].
    BackOff,
}

/// Accepts one connection the way every model must: counts it (per worker too, when
/// the context has one), sets `TCP_NODELAY` (replies are small and latency matters:
/// Nagle would hold them back waiting for an ACK), claims a `--max-conns` slot or
/// turns the client away with the busy notice, and sorts failures into "try again",
/// "nothing there" and "back off".
pub fn accept_one(listener: &impl AsFd, ctx: &ServerContext, mode: SocketMode) -> Accepted {
    let flags = match mode {
        SocketMode::Blocking => libc::SOCK_CLOEXEC,
        SocketMode::NonBlocking => libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
    };
    match SockRef::from(listener).accept4(flags) {
        Ok((socket, _)) => admit_accepted(socket.into(), ctx),
        Err(e) => accept_failed(&e, ctx),
    }
}

/// The second half of [`accept_one`], for a socket the kernel accepted on its own (a
/// completion model's multishot accept): counts it (per worker too, when the context
/// has one), sets `TCP_NODELAY`, and claims a
/// `--max-conns` slot or turns the client away with the busy notice.
pub fn admit_accepted(stream: TcpStream, ctx: &ServerContext) -> Accepted {
    match admit_socket(&stream, ctx) {
        Some(slot) => Accepted::Connection(stream, slot),
        None => {
            refuse_busy(stream, ctx);
            Accepted::Refused
        }
    }
}

/// [`admit_accepted`] for a socket some runtime owns (tokio's `TcpListener::accept`
/// hands back a socket already registered with its epoll, so converting it to a std
/// socket and back would cost two `epoll_ctl` calls): counts it, sets `TCP_NODELAY`
/// and claims a `--max-conns` slot. `None` when the server is full: the caller then
/// turns the client away with [`refuse_busy`].
pub fn admit_socket(stream: &impl AsFd, ctx: &ServerContext) -> Option<ConnectionSlot> {
    ctx.record_accept();
    let _ = SockRef::from(stream).set_tcp_nodelay(true);
    let slot = ctx.try_admit();
    if slot.is_some() {
        crate::log::accepted(stream);
    }
    slot
}

/// Sorts a failed accept the way [`accept_one`] does, for a model whose accept failed
/// elsewhere (in a completion): nothing waiting, try again, or (counted as an accept
/// error) back off. Once shutdown is requested a failure is the listener going away
/// under the accept (`prefork`'s parent shuts the shared listener down, and a worker
/// waiting in `accept` gets EINVAL): nothing to count or back off from.
pub fn accept_failed(e: &io::Error, ctx: &ServerContext) -> Accepted {
    if e.kind() == io::ErrorKind::WouldBlock || ctx.shutdown.is_requested() {
        Accepted::Empty
    } else if accept_retryable(e) {
        Accepted::Retry
    } else {
        ctx.stats.record_accept_error();
        Accepted::BackOff
    }
}

/// Whether the next `accept` may well succeed at once after `e` (a signal, or a client
/// that gave up before it was accepted): retry it, without counting or backing off.
fn accept_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The accept loop of the blocking models: waits for a connection *or* shutdown with
/// one `poll(2)`, then takes one [`accept_one`] step.
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

    /// The next admitted connection (a blocking socket with `TCP_NODELAY`) and its slot,
    /// or `None` once shutdown is requested.
    pub fn next(&self) -> Option<(TcpStream, ConnectionSlot)> {
        loop {
            match wait_readable(self.listener.as_fd(), &self.ctx.shutdown, None) {
                Ok(Readiness::Shutdown) => return None,
                Ok(Readiness::Ready | Readiness::TimedOut) => {}
                // Back off in `wait_readable` so shutdown still wakes us at once.
                Err(_) if sleep_or_shutdown(self.ctx) => return None,
                Err(_) => {}
            }
            match accept_one(self.listener, self.ctx, SocketMode::Blocking) {
                Accepted::Connection(stream, slot) => return Some((stream, slot)),
                Accepted::Refused | Accepted::Retry | Accepted::Empty => {}
                Accepted::BackOff => {
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
pub fn sleep_or_shutdown(ctx: &ServerContext) -> bool {
    matches!(
        wait_readable(ctx.shutdown.waker(), &ctx.shutdown, Some(ACCEPT_BACKOFF)),
        Ok(Readiness::Shutdown) | Err(_)
    )
}
