//! The load generator behind `echolab load`: an event-driven (mio) engine over a few
//! threads, so 1 or 10,000 connections cost the generator about the same, and so the
//! generator is not the bottleneck it measures.
//!
//! Closed loop: each connection keeps `depth` messages in flight and sends the next as
//! soon as a reply arrives. Every reply is verified byte for byte; latency goes into an
//! HDR histogram; per-connection counts give the fairness index (a starved client under
//! `iterative` or a saturated pool shows up as a low Jain index and a zero minimum).
//!
//! Open loop (`rate`): messages are sent when due on a fixed schedule, whether or not
//! earlier ones were answered, and latency counts from the intended send time; a queue
//! of due times and a timerfd alarm wake the loop on time to the microsecond, looking
//! only at the connections that are due.
//! Churn: each connection slot connects, echoes once, closes and reconnects.

mod churn;
mod engine;
mod open;
mod progress;
mod replies;
mod report;
mod schedule;
mod wakeups;

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
    /// Open loop: messages per second in total, split evenly across connections
    /// (`None`: closed loop).
    pub rate: Option<f64>,
    /// Churn: connect, echo once, close, reconnect, on every connection slot.
    pub churn: bool,
    /// A per-second progress line on stderr (only ever printed to a terminal).
    pub progress: bool,
}

/// How the load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    /// `depth` in flight per connection, the next sent when a reply arrives.
    Closed,
    /// Sent on schedule at this many messages per second per connection.
    Open(f64),
    /// One echo per connection, then reconnect.
    Churn,
}

impl LoadConfig {
    pub(crate) fn mode(&self) -> Mode {
        match (self.churn, self.rate) {
            (true, _) => Mode::Churn,
            (false, Some(rate)) => Mode::Open(rate / self.conns.max(1) as f64),
            (false, None) => Mode::Closed,
        }
    }
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
            rate: None,
            churn: false,
            progress: false,
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
