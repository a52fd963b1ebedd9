//! The UDP load generator: a few threads, each a mio loop over its share of the client
//! sockets, every reply verified.
//!
//! A datagram carries its own identity: its first 8 bytes are its sequence number on
//! its socket, the rest is the payload for (socket, sequence) from the same generator
//! the TCP load uses. So a reply is checked byte for byte against what was sent, and it
//! can be told apart from every other: a reply to a datagram already answered is
//! *duplicated*; one that overtook the reply to an earlier datagram is *reordered* (and
//! still a response); one whose bytes are no datagram this socket sent — cut, altered,
//! or another socket's (misrouted) — is *corrupted*; one that comes after the reply
//! timeout is *late* (its datagram was already counted *lost*). A datagram with no
//! reply within the timeout is *lost*.
//!
//! Each socket keeps a window of the datagrams it sent within the last reply timeout
//! (a slot each: when, and whether answered), so the classification costs one index.
//! Closed loop: each socket keeps `depth` datagrams awaiting a reply, and sends the next
//! when one is answered or given up on. Open loop (`rate`): datagrams are sent on a
//! fixed schedule whatever happened to the earlier ones, and latency counts from the
//! intended send time (the TCP load's `Schedule` and its microsecond alarm).
//!
//! After the measured interval the generator stops sending and waits, at most one reply
//! timeout, for the replies still owed, so the last datagrams are not counted lost for
//! want of time. The kernel's drop counters are read before and after
//! ([`super::KernelDrops`]).

mod config;
mod flow;
mod phases;
mod socket;
mod tally;
mod thread;

use std::collections::HashSet;
use std::io;
use std::net::UdpSocket;
use std::time::Instant;

use super::kernel::Snapshot;
use super::report::DatagramLoadReport;
use crate::error::ClientError;
use crate::load::report::{fairness, latency, per_sec};
use crate::load::threads::join_all;
use crate::load::LoadMode;
use phases::Phases;
use socket::{open_socket, recv_buffer_bytes};
use tally::Tally;
use thread::run_thread;

pub use config::DatagramLoadConfig;

/// Bytes of a datagram's sequence number, at its start: the smallest `--size` a run
/// can verify.
pub const MIN_SIZE: usize = 8;
/// The largest payload of an IPv4 UDP datagram.
pub const MAX_SIZE: usize = 65_507;
/// Most receives, or open-loop sends, per socket per wake before the loop looks at the
/// others again.
const PER_WAKE: usize = 1024;

/// Runs the load and reports. Loss and every other misbehaviour are counted, never
/// fatal; only a configuration that cannot run, or a socket that cannot be made, is an
/// error.
pub fn run(config: &DatagramLoadConfig) -> Result<DatagramLoadReport, ClientError> {
    config.check()?;
    let sockets = (0..config.sockets)
        .map(|_| open_socket(config.addr))
        .collect::<io::Result<Vec<UdpSocket>>>()
        .map_err(|source| ClientError::Connect {
            addr: config.addr,
            source,
        })?;
    let ports: HashSet<u16> = sockets
        .iter()
        .filter_map(|s| s.local_addr().ok())
        .map(|a| a.port())
        .collect();
    // All the client's sockets are made alike: the first one's buffer is every one's.
    let recv_buffer_bytes = sockets.first().and_then(recv_buffer_bytes);
    let before = Snapshot::take(config.addr.port(), &ports);
    let start = Instant::now();
    let phases = Phases {
        start,
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let threads = config.threads.min(sockets.len());
    let results: Vec<io::Result<Tally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mine: Vec<(u32, &UdpSocket)> = sockets
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % threads == t)
                    .map(|(i, s)| (i as u32, s))
                    .collect();
                let phases = &phases;
                scope.spawn(move || run_thread(config, mine, phases))
            })
            .collect();
        join_all(handles)
    });
    let mut total = Tally::new();
    for result in results {
        let tally = result.map_err(|source| ClientError::Io {
            context: "running the load",
            source,
        })?;
        total.merge(&tally);
    }
    // Read while the client's sockets are still open: their drops are in the table.
    let kernel = Snapshot::take(config.addr.port(), &ports).since(&before);
    let responses_per_sec = per_sec(total.responses, config.duration);
    Ok(DatagramLoadReport {
        mode: if config.rate.is_some() {
            LoadMode::Open
        } else {
            LoadMode::Closed
        },
        target_rate: config.rate,
        sockets: config.sockets,
        size: config.size,
        depth: config.depth,
        sent: total.sent,
        sent_per_sec: per_sec(total.sent, config.duration),
        responses: total.responses,
        seconds: config.duration.as_secs_f64(),
        responses_per_sec,
        mib_per_sec: responses_per_sec * config.size as f64 / (1024.0 * 1024.0),
        latency_us: latency(&total.histogram),
        lost: total.lost,
        loss_pct: if total.sent > 0 {
            total.lost as f64 * 100.0 / total.sent as f64
        } else {
            0.0
        },
        duplicated: total.duplicated,
        reordered: total.reordered,
        corrupted: total.corrupted,
        late: total.late,
        unsent: total.unsent,
        refused: total.refused,
        fairness: fairness(&total.per_socket),
        kernel,
        recv_buffer_bytes,
        client_cpu_user_s: total.cpu.0.as_secs_f64(),
        client_cpu_sys_s: total.cpu.1.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;

    #[test]
    fn sizes_that_cannot_carry_a_sequence_number_are_refused() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        for size in [0, 7, MAX_SIZE + 1] {
            let config = DatagramLoadConfig {
                size,
                ..DatagramLoadConfig::new(addr)
            };
            let err = run(&config).unwrap_err();
            assert!(std::error::Error::source(&err)
                .unwrap()
                .to_string()
                .contains("--size"));
        }
    }

    #[test]
    fn a_rate_that_is_not_a_positive_number_is_refused() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let config = DatagramLoadConfig {
            rate: Some(0.0),
            ..DatagramLoadConfig::new(addr)
        };
        let err = run(&config).unwrap_err();
        assert!(std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("--rate"));
    }

    #[test]
    fn a_run_against_an_echo_thread_verifies_every_reply() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut buf = [0u8; 2048];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok((n, from)) = server.recv_from(&mut buf) {
                        let _ = server.send_to(&buf[..n], from);
                    }
                }
            });
            for rate in [None, Some(2000.0)] {
                let config = DatagramLoadConfig {
                    sockets: 3,
                    threads: 2,
                    duration: Duration::from_millis(300),
                    warmup: Duration::from_millis(100),
                    rate,
                    ..DatagramLoadConfig::new(addr)
                };
                let report = run(&config).unwrap();
                assert!(report.responses > 0, "{report:?}");
                assert_eq!(report.corrupted + report.duplicated, 0, "{report:?}");
                assert_eq!(report.sent, report.responses + report.lost, "{report:?}");
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
}
