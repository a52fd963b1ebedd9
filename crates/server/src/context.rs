use std::io::{self, Read, Write};
use std::net::{Shutdown as SocketShutdown, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use echolab_proto::{encode_notice, Handler, Protocol, Session, SessionConfig, NONCE_LEN};

use crate::{BlockedThreads, Offload, Offloadable, ServerConfig, ServerStats, Shutdown};

/// What a running model needs: its config, the shutdown signal and the stats. Cloning
/// is cheap (a few `Arc`s), so a model hands one to each thread it starts.
///
/// A model whose workers accept on their own (several loops, worker processes) gives
/// each worker [`ServerContext::for_worker`], so that every accept is also counted per
/// worker (`accepted_per_worker` in the stats line).
#[derive(Debug, Clone)]
pub struct ServerContext {
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// Set by SIGINT/SIGTERM.
    pub shutdown: Shutdown,
    /// Server-wide counters.
    pub stats: Arc<ServerStats>,
    /// Threads blocked serving a connection, for the [`crate::Interrupter`] to wake.
    pub blocked: Arc<BlockedThreads>,
    /// Which worker (loop or process) accepts with this context, if the model has
    /// several that accept on their own.
    pub worker: Option<usize>,
}

impl ServerContext {
    /// A context with fresh stats.
    pub fn new(config: ServerConfig, shutdown: Shutdown) -> ServerContext {
        ServerContext {
            config: Arc::new(config),
            shutdown,
            stats: Arc::new(ServerStats::default()),
            blocked: Arc::new(BlockedThreads::default()),
            worker: None,
        }
    }

    /// The worker pool of `--offload N` (`None` without it): an event-loop model starts
    /// it once, gives each loop a port, and finishes it after the loops have drained.
    /// `T` is what a job is: a session's frame ([`Job`](echolab_proto::Job)) for a
    /// stream model, a datagram for a datagram model.
    pub fn start_offload<T: Offloadable>(&self) -> io::Result<Option<Offload<T>>> {
        let (Some(workers), Some(work)) = (self.config.offload, &self.config.work) else {
            return Ok(None);
        };
        let handler: Arc<dyn Handler> = work.clone();
        Offload::start(workers, handler).map(Some)
    }

    /// The same context for worker `index`: its accepts are counted per worker too.
    pub fn for_worker(&self, index: usize) -> ServerContext {
        ServerContext {
            worker: Some(index),
            ..self.clone()
        }
    }

    /// The same context with counters of its own, for a forked child: the parent's
    /// counters, copied by `fork`, are the parent's to report; the child sends its own
    /// home when it exits.
    pub fn with_fresh_stats(&self) -> ServerContext {
        ServerContext {
            stats: Arc::new(ServerStats::default()),
            ..self.clone()
        }
    }

    /// Counts an accepted connection, and against this context's worker if it has one.
    pub(crate) fn record_accept(&self) {
        self.stats.record_accept();
        if let Some(index) = self.worker {
            self.stats.record_worker_accept(index);
        }
    }

    /// Claims one of the `--max-conns` slots, or `None` when the server is full. The
    /// slot is given back when the returned guard drops.
    pub fn try_admit(&self) -> Option<ConnectionSlot> {
        self.stats
            .try_enter(self.config.max_conns)
            .then(|| ConnectionSlot {
                stats: Arc::clone(&self.stats),
            })
    }
}

/// One of the `--max-conns` slots; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    stats: Arc<ServerStats>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.stats.leave();
    }
}

/// Starts a protocol session for a new connection, drawing the handshake nonce from the
/// OS's secure random source when authentication is on.
pub fn new_session(config: &SessionConfig, now: Instant) -> io::Result<Session> {
    let mut nonce = [0u8; NONCE_LEN];
    if config.auth_key.is_some() {
        getrandom::fill(&mut nonce).map_err(io::Error::other)?;
    }
    Ok(Session::new(config, now, nonce))
}

/// Turns away a connection the server has no room for: framed clients get the
/// `server busy` notice, raw clients a plain close. Never blocks: the notice is a few
/// bytes into an empty socket buffer, and anything the client already sent is read and
/// dropped so the close is a FIN, not a reset that could destroy the notice.
pub fn refuse_busy(stream: TcpStream, ctx: &ServerContext) {
    ctx.stats.record_refused();
    crate::log::refused(
        &stream,
        "server busy (--max-conns, or no thread, process or descriptor slot)",
    );
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    if ctx.config.session.protocol == Protocol::Framed {
        let mut notice = Vec::new();
        encode_notice("server busy", &mut notice);
        let _ = (&stream).write(&notice);
    }
    let _ = stream.shutdown(SocketShutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match (&stream).read(&mut sink) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}
