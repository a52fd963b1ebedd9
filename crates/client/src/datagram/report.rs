//! The outcome of a UDP load run.

use serde::Serialize;

use super::kernel::KernelDrops;
use crate::load::{Fairness, LatencyUs, LoadMode};

/// The outcome of `echolab load --transport udp` (its `--json` object).
#[derive(Debug, Clone, Serialize)]
pub struct DatagramLoadReport {
    /// `closed` (`depth` in flight per socket) or `open` (`--rate`); never `churn`.
    pub mode: LoadMode,
    /// The offered rate in datagrams per second (open loop), `null` otherwise.
    pub target_rate: Option<f64>,
    /// Client sockets.
    pub sockets: usize,
    /// Payload bytes per datagram.
    pub size: usize,
    /// Datagrams in flight per socket (closed loop).
    pub depth: usize,
    /// Datagrams sent in the measured interval.
    pub sent: u64,
    /// `sent` per second: the rate really offered (below `target_rate` when the
    /// generator could not keep up with its schedule).
    pub sent_per_sec: f64,
    /// Verified replies to them.
    pub responses: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Verified replies per second.
    pub responses_per_sec: f64,
    /// Payload MiB per second echoed (one direction).
    pub mib_per_sec: f64,
    /// Round trip of the replies (open loop: from each datagram's intended send time).
    pub latency_us: LatencyUs,
    /// Datagrams sent with no reply within the reply timeout.
    pub lost: u64,
    /// `lost` as a percentage of `sent`.
    pub loss_pct: f64,
    /// Replies to a datagram already answered.
    pub duplicated: u64,
    /// Replies that came after the reply to a later datagram of the same socket
    /// (counted among the responses too: a UDP reply may overtake another).
    pub reordered: u64,
    /// Replies whose bytes are not any datagram this socket sent (wrong length, wrong
    /// bytes, or another socket's datagram: misrouted).
    pub corrupted: u64,
    /// Replies that came after the reply timeout (their datagram is counted lost).
    pub late: u64,
    /// Datagrams the client could not send at all (its own send buffer full, or an
    /// ICMP error reported on the socket): never offered, so not lost.
    pub unsent: u64,
    /// ICMP port-unreachable reports (nothing listening on the server's port).
    pub refused: u64,
    /// How evenly the sockets were answered (a `SO_REUSEPORT` server hashes each
    /// socket to one of its threads).
    pub fairness: Fairness,
    /// The kernel's drop counters for the run: where lost datagrams went.
    pub kernel: KernelDrops,
    /// `SO_RCVBUF` of the client's sockets, as `getsockopt` reports it (the system's
    /// default, `net.core.rmem_default`, unless something set it): the bytes of
    /// replies, each counted with its kernel overhead, a socket holds before the
    /// kernel drops the next (`kernel.client_socket_drops`). `None` if it could not
    /// be read.
    pub recv_buffer_bytes: Option<u64>,
    /// The generator threads' own user CPU seconds in the measured window (as the TCP
    /// load's).
    pub client_cpu_user_s: f64,
    /// The generator threads' own system CPU seconds in the measured window.
    pub client_cpu_sys_s: f64,
}

impl DatagramLoadReport {
    /// A short human-readable summary (what `echolab load --transport udp` prints).
    pub fn summary(&self) -> String {
        let mode = match self.target_rate {
            Some(rate) => format!("open loop at {rate:.0} datagrams/s: "),
            None => format!("closed loop, depth {}: ", self.depth),
        };
        let l = &self.latency_us;
        let latency = if self.responses == 0 {
            "latency us: no replies".to_string()
        } else {
            format!(
                "latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                l.p50, l.p90, l.p99, l.p999, l.max
            )
        };
        format!(
            "UDP {mode}{} sockets x {} B: {} sent ({:.0}/s), {} responses in {:.1} s = {:.0} responses/s, {:.2} MiB/s\n\
             {latency}\n\
             lost {} ({:.3}%), duplicated {}, reordered {}, corrupted {}, late {}, unsent {}, refused {}\n\
             {}; client receive buffer (SO_RCVBUF) {} B per socket\n",
            self.sockets,
            self.size,
            self.sent,
            self.sent_per_sec,
            self.responses,
            self.seconds,
            self.responses_per_sec,
            self.mib_per_sec,
            self.lost,
            self.loss_pct,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.late,
            self.unsent,
            self.refused,
            self.kernel.line(),
            self.recv_buffer_bytes
                .map_or("?".to_string(), |n| n.to_string()),
        )
    }
}
