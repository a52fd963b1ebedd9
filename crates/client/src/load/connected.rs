//! Connections made before a run starts: a load agent connects its share, says it is
//! ready, and only then, on `go`, starts the run, which takes each connection's first
//! socket from here instead of connecting. The barrier leaves connection set-up out of
//! every agent's run, and no agent sends before the others are connected.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::ClientError;

/// Sockets already connected, by the run's connection id. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Connected {
    streams: Arc<Mutex<HashMap<u32, TcpStream>>>,
}

impl Connected {
    /// Connects `count` sockets to `addr`, each within `timeout`; the first that fails
    /// fails them all (an agent that cannot reach its server has nothing to run).
    pub fn open(
        addr: SocketAddr,
        count: usize,
        timeout: Duration,
    ) -> Result<Connected, ClientError> {
        let mut streams = HashMap::with_capacity(count);
        for id in 0..count {
            let stream = TcpStream::connect_timeout(&addr, timeout)
                .map_err(|source| ClientError::Connect { addr, source })?;
            let _ = stream.set_nodelay(true);
            streams.insert(id as u32, stream);
        }
        Ok(Connected {
            streams: Arc::new(Mutex::new(streams)),
        })
    }

    /// How many are waiting to be taken.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Connection `id`'s socket, once: a churn slot's later connections are its own.
    pub(super) fn take(&self, id: u32) -> Option<TcpStream> {
        self.lock().remove(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, TcpStream>> {
        // A poisoned lock only means a generator thread panicked, which the run reports.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}
