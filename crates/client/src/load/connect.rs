//! Opening a connection, the same in every mode: a non-blocking connect, registered
//! with the thread's poller.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// How long a churn slot waits after a failed connect (or other error) before trying
/// again: failures are retried, never spun on.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Starts connecting to `addr` (or takes `ready`, a socket connected before the run)
/// and registers the socket as `token`. `Ok(None)`: the connect failed at once, which
/// the run counts; an error: the poller refused the socket, which ends the thread.
pub(super) fn open(
    addr: SocketAddr,
    ready: Option<std::net::TcpStream>,
    registry: &Registry,
    token: Token,
) -> io::Result<Option<TcpStream>> {
    let connected = match ready {
        Some(stream) => stream
            .set_nonblocking(true)
            .map(|()| TcpStream::from_std(stream)),
        None => TcpStream::connect(addr),
    };
    let Ok(mut stream) = connected else {
        return Ok(None);
    };
    // Messages are written whole: Nagle would hold a small one back while an earlier
    // one is unacknowledged (at `--depth` > 1), adding latency that belongs to neither
    // the server nor the network.
    let _ = stream.set_nodelay(true);
    registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(Some(stream))
}
