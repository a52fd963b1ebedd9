//! Connection set-up and tear-down: the initial connect, and churn's
//! connect / echo once / close / reconnect cycle.

use std::io;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::engine::{ErrorKind, Worker};
use super::Mode;

/// How long a churn slot waits after a failed connect (or other error) before trying
/// again: failures are retried, never spun on.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(10);

impl Worker<'_> {
    /// Opens slot `conn`'s connection (non-blocking) and queues its first messages. A
    /// failed connect is counted; only failing to register with the poller is fatal.
    pub(super) fn connect(&mut self, conn: usize) -> io::Result<()> {
        match TcpStream::connect(self.config.addr) {
            Ok(mut stream) => {
                // Messages are written whole: Nagle would hold a small one back while an
                // earlier one is unacknowledged (at `--depth` > 1), adding latency that
                // belongs to neither the server nor the network.
                let _ = stream.set_nodelay(true);
                self.registry.register(
                    &mut stream,
                    Token(conn),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                let c = &mut self.conns[conn];
                c.stream = Some(stream);
                c.open = true;
                let now = Instant::now();
                c.connected_at = now;
                if !c.awaiting_nonce {
                    self.fill_pipeline(conn, now);
                }
            }
            Err(_) => {
                self.errors[ErrorKind::Connect as usize] += 1;
                if self.mode == Mode::Churn {
                    self.retry_later(conn);
                }
            }
        }
        Ok(())
    }

    /// Drops slot `conn`'s stream (closing it) and forgets its I/O state.
    pub(super) fn close(&mut self, conn: usize) {
        let awaiting_nonce = self.config.auth_key.is_some();
        let c = &mut self.conns[conn];
        if let Some(mut stream) = c.stream.take() {
            let _ = self.registry.deregister(&mut stream);
        }
        c.open = false;
        c.reset(awaiting_nonce);
    }

    /// A churn cycle is done: close, and reconnect at once (unless the run is over).
    pub(super) fn recycle(&mut self, conn: usize) {
        self.close(conn);
        if Instant::now() < self.phases.end {
            // A registration failure leaves the slot to retry after the pause.
            if self.connect(conn).is_err() {
                self.errors[ErrorKind::Io as usize] += 1;
                self.retry_later(conn);
            }
        }
    }

    /// Schedules slot `conn`'s reconnect after the pause.
    pub(super) fn retry_later(&mut self, conn: usize) {
        let at = Instant::now() + RETRY_PAUSE;
        self.conns[conn].retry_at = Some(at);
        self.wakeups.at(at, conn);
    }

    /// Reconnects churn slot `conn` if its pause is over (a slot that reconnected
    /// and failed again since has a later time and waits for that one).
    pub(super) fn retry_if_due(&mut self, conn: usize, now: Instant) {
        if self.conns[conn].retry_at.is_some_and(|at| at <= now) {
            self.conns[conn].retry_at = None;
            self.recycle(conn);
        }
    }
}
