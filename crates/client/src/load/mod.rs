//! The load generator behind `echolab load`: an event-driven (mio) engine over a few
//! threads, so 1 or 10,000 connections cost the generator about the same, and so the
//! generator is not the bottleneck it measures.
//!
//! Closed loop: each connection keeps `depth` messages in flight and sends the next as
//! soon as a reply arrives. Every reply is verified byte for byte; latency goes into an
//! HDR histogram; per-connection counts give the fairness index (a starved client under
//! `iterative` or a saturated pool shows up as a low Jain index and a zero minimum).

mod engine;
mod payload;
mod report;

use std::net::SocketAddr;
use std::time::Duration;

use echolab_proto::{AuthKey, Protocol};

pub use report::{Fairness, LatencyUs, LoadReport};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its key, when it requires the handshake.
    pub auth_key: Option<AuthKey>,
    /// Concurrent connections.
    pub conns: usize,
    /// Generator threads (each runs its own event loop over its share of connections).
    pub threads: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Messages in flight per connection.
    pub depth: usize,
    /// Measured time.
    pub duration: Duration,
    /// Time run before measuring (connections made, caches and buffers warm).
    pub warmup: Duration,
    /// A message with no reply for this long counts as a timeout and ends its connection.
    pub reply_timeout: Duration,
}

impl LoadConfig {
    /// Defaults: framed, 1 connection, 64 B, depth 1, 5 s after 1 s of warm-up.
    pub fn new(addr: SocketAddr) -> LoadConfig {
        LoadConfig {
            addr,
            protocol: Protocol::Framed,
            auth_key: None,
            conns: 1,
            threads: default_threads(),
            size: 64,
            depth: 1,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            reply_timeout: Duration::from_secs(5),
        }
    }
}

/// One generator thread on a 2-core machine (the server needs the other core),
/// otherwise half the CPUs.
pub fn default_threads() -> usize {
    let cpus = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2);
    if cpus <= 2 {
        1
    } else {
        cpus / 2
    }
}

/// Runs the load and reports. Errors on individual connections are counted in the
/// report, never fatal; only a configuration that cannot run at all is an error.
pub fn run(config: &LoadConfig) -> Result<LoadReport, crate::ClientError> {
    engine::run(config)
}
