use echolab_proto::SessionConfig;

/// Everything `echolab serve` can be told, shared by every model.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The per-connection protocol rules (identical for every model).
    pub session: SessionConfig,
    /// Most connections served at once; past it, framed clients get `server busy`.
    pub max_conns: usize,
    /// Workers (threads, loops or processes), for models that have a fixed set of them
    /// (`None`: one per CPU).
    pub workers: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session: SessionConfig::default(),
            max_conns: 10_000,
            workers: None,
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
