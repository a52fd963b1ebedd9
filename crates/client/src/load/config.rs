//! What a load run is asked to do, and the instants every thread runs by.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use echolab_proto::{AuthKey, Protocol, WorkSpec};

use super::connected::Connected;
use crate::error::ClientError;

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
    /// The work the server was started with (`--work`): each reply is classed fast or
    /// slow by the same choice the server made from its payload, and the two kinds'
    /// latencies are reported apart as well as together.
    pub work: Option<WorkSpec>,
    /// Sockets connected before the run (a load agent's, see [`Connected`]); the rest
    /// are connected when the run starts.
    pub connected: Connected,
    /// After the end, how long replies still owed are collected (at most the reply
    /// timeout): [`COLLECT_OWED`] by default; a harness running hundreds of short runs
    /// takes less, since a starved client's reply never comes however long it waits.
    pub collect_owed: Duration,
}

/// How the load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mode {
    /// `depth` in flight per connection, the next sent when a reply arrives.
    Closed,
    /// Sent on schedule at this many messages per second per connection.
    Open(f64),
    /// One echo per connection, then reconnect.
    Churn,
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
            work: None,
            connected: Connected::default(),
            collect_owed: COLLECT_OWED,
        }
    }

    pub(super) fn mode(&self) -> Mode {
        match (self.churn, self.rate) {
            (true, _) => Mode::Churn,
            (false, Some(rate)) => Mode::Open(rate / self.conns.max(1) as f64),
            (false, None) => Mode::Closed,
        }
    }

    /// Refuses what cannot run at all; everything else is the run's to measure.
    pub(super) fn check(&self) -> Result<(), ClientError> {
        if self.conns == 0 || self.depth == 0 || self.threads == 0 {
            return Err(invalid("--conns, --depth and --threads must be at least 1"));
        }
        if self.size > (i32::MAX as usize) {
            return Err(invalid("--size is larger than a frame can carry"));
        }
        check_reply_timeout(self.reply_timeout)?;
        check_rate(self.rate)?;
        if self.rate.is_some() && self.churn {
            return Err(invalid("--rate and --churn cannot be combined"));
        }
        Ok(())
    }
}

/// A configuration that cannot run, as both generators (TCP and UDP) refuse it.
pub(crate) fn invalid(what: impl Into<String>) -> ClientError {
    ClientError::Io {
        context: "invalid load configuration",
        source: io::Error::new(io::ErrorKind::InvalidInput, what.into()),
    }
}

/// A reply timeout of 0 would time every message out at its first check, in either
/// generator: refused, not measured.
pub(crate) fn check_reply_timeout(timeout: Duration) -> Result<(), ClientError> {
    if timeout.is_zero() {
        return Err(invalid("the reply timeout (--timeout) must be more than 0"));
    }
    Ok(())
}

/// An open-loop rate must be a positive number, in either generator.
pub(crate) fn check_rate(rate: Option<f64>) -> Result<(), ClientError> {
    match rate {
        Some(rate) if !(rate.is_finite() && rate > 0.0) => {
            Err(invalid("--rate must be a positive number"))
        }
        _ => Ok(()),
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

/// When the run measures and when it ends: the same instants for every thread.
pub(super) struct Phases {
    pub(super) measure_from: Instant,
    pub(super) end: Instant,
    /// After the end nothing more is sent; replies still owed are collected until
    /// this, so connections close with nothing in flight (a server sees a clean close,
    /// not a reset that its error counters would report).
    pub(super) collect_until: Instant,
}

/// The longest a run waits after its end for replies still owed.
pub const COLLECT_OWED: Duration = Duration::from_millis(500);

impl Phases {
    pub(super) fn new(config: &LoadConfig, start: Instant) -> Phases {
        let end = start + config.warmup + config.duration;
        Phases {
            measure_from: start + config.warmup,
            end,
            collect_until: end + config.collect_owed.min(config.reply_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(err: ClientError) -> String {
        std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    #[test]
    fn a_rate_must_be_a_positive_number() {
        assert!(check_rate(None).is_ok());
        assert!(check_rate(Some(0.5)).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = check_rate(Some(bad)).expect_err("not a positive number");
            assert!(refusal(err).contains("--rate"), "{bad}");
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let config = LoadConfig {
            rate: Some(-1.0),
            ..LoadConfig::new(addr)
        };
        assert!(refusal(config.check().expect_err("refused")).contains("--rate"));
        let churning = LoadConfig {
            rate: Some(10.0),
            churn: true,
            ..LoadConfig::new(addr)
        };
        assert!(refusal(churning.check().expect_err("refused")).contains("--churn"));
    }

    #[test]
    fn a_zero_reply_timeout_is_refused_by_both_generators() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let tcp = LoadConfig {
            reply_timeout: Duration::ZERO,
            ..LoadConfig::new(addr)
        };
        assert!(refusal(tcp.check().expect_err("refused")).contains("--timeout"));
        let udp = crate::datagram::DatagramLoadConfig {
            reply_timeout: Duration::ZERO,
            ..crate::datagram::DatagramLoadConfig::new(addr)
        };
        let refused = crate::datagram::run_load(&udp).expect_err("refused before any I/O");
        assert!(refusal(refused).contains("--timeout"));
    }
}
