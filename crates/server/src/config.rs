use std::sync::Arc;

use echolab_proto::{DatagramRules, Service, SessionConfig};

use crate::Work;

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
    /// What a datagram model answers with (echo or daytime); stream models serve echo.
    pub service: Service,
    /// `--work`: the work per message. The session runs it inline when `session.work`
    /// says so; an offloading loop hands it to `offload` worker threads; a datagram
    /// model runs it before each answer.
    pub work: Option<Arc<Work>>,
    /// `--offload N`: worker threads an event loop hands each message's work to
    /// (the session's work mode is then `Offload`).
    pub offload: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session: SessionConfig::default(),
            max_conns: 10_000,
            workers: None,
            service: Service::Echo,
            work: None,
            offload: None,
        }
    }
}

impl ServerConfig {
    /// The rules every datagram model answers by: the service, and the session's
    /// `--max-frame` as the largest datagram answered.
    pub fn datagram_rules(&self) -> DatagramRules {
        DatagramRules::new(self.service, self.session.max_frame)
    }

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

    /// How many workers to start when each accepts its own clients (`prefork`,
    /// `prethreaded`): [`ServerConfig::worker_count`], unless `--max-conns` caps how many
    /// may be served at once at or below it — then that many, plus one that turns the next
    /// client away with the busy notice (with every worker busy, a client would otherwise
    /// wait in the backlog unanswered).
    pub fn accepting_workers(&self) -> usize {
        let workers = self.worker_count();
        if self.max_conns <= workers {
            self.max_conns + 1
        } else {
            workers
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepting_workers_add_a_spare_only_when_max_conns_caps_them() {
        let config = |workers, max_conns| ServerConfig {
            workers: Some(workers),
            max_conns,
            ..ServerConfig::default()
        };
        assert_eq!(config(4, 100).accepting_workers(), 4);
        assert_eq!(config(4, 5).accepting_workers(), 4);
        // Every worker busy with max_conns clients: one more accepts only to refuse.
        assert_eq!(config(4, 4).accepting_workers(), 5);
        assert_eq!(config(4, 1).accepting_workers(), 2);
    }
}
