use std::net::SocketAddr;

use echolab_proto::SessionConfig;

use crate::DEFAULT_BACKLOG;

/// Everything `echolab serve` can be told, shared by every model.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The per-connection protocol rules (identical for every model).
    pub session: SessionConfig,
    /// Most connections served at once; past it, framed clients get `server busy`.
    pub max_conns: usize,
    /// Worker threads, for models that have a fixed set of them (`None`: one per CPU).
    pub workers: Option<usize>,
    /// The listen backlog: how many completed handshakes the kernel queues for `accept`.
    pub backlog: i32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            session: SessionConfig::default(),
            max_conns: 10_000,
            workers: None,
            backlog: DEFAULT_BACKLOG,
        }
    }
}

impl ServerConfig {
    /// The worker count to use: the configured one, or the number of CPUs.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(usize::from)
                    .unwrap_or(2)
            })
            .max(1)
    }
}
