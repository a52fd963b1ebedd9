//! What a UDP load run is asked to do, and what it refuses before starting.

use std::net::SocketAddr;
use std::time::Duration;

use super::{MAX_SIZE, MIN_SIZE};
use crate::error::ClientError;
use crate::load::config::{check_rate, check_reply_timeout, invalid};

/// What to run.
#[derive(Debug, Clone)]
pub struct DatagramLoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Client sockets (each its own source port, so `udp-reuseport` spreads them).
    pub sockets: usize,
    /// Generator threads.
    pub threads: usize,
    /// Payload bytes per datagram, at least [`MIN_SIZE`].
    pub size: usize,
    /// Closed loop: datagrams awaiting a reply per socket.
    pub depth: usize,
    /// Measured time.
    pub duration: Duration,
    /// Time run before measuring.
    pub warmup: Duration,
    /// A datagram with no reply for this long is lost.
    pub reply_timeout: Duration,
    /// Open loop: datagrams per second in total, split evenly over the sockets
    /// (`None`: closed loop).
    pub rate: Option<f64>,
}

impl DatagramLoadConfig {
    /// Defaults: 4 sockets, 64 B, depth 1, closed loop, 5 s after 1 s of warm-up, 1 s
    /// reply timeout.
    pub fn new(addr: SocketAddr) -> DatagramLoadConfig {
        DatagramLoadConfig {
            addr,
            sockets: 4,
            threads: crate::load::default_threads(),
            size: 64,
            depth: 1,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            reply_timeout: Duration::from_secs(1),
            rate: None,
        }
    }

    pub(super) fn check(&self) -> Result<(), ClientError> {
        if self.sockets == 0 || self.depth == 0 || self.threads == 0 {
            return Err(invalid(
                "--conns (sockets), --depth and --threads must be at least 1",
            ));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(invalid(format!(
                "--size must be {MIN_SIZE}..={MAX_SIZE} over UDP: each datagram carries its \
                 {MIN_SIZE}-byte sequence number, and one datagram holds at most {MAX_SIZE} bytes"
            )));
        }
        check_reply_timeout(self.reply_timeout)?;
        check_rate(self.rate)
    }
}
