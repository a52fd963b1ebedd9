//! The UDP side of the client: [`UdpClient`] behind `echolab echo --transport udp` and
//! `echolab ping --transport udp`, and [`load`] behind `echolab load --transport udp`.
//!
//! A UDP client sends a datagram and hopes. Nothing tells it that the datagram, or the
//! reply, was lost: the only sign is silence. So every wait here has a deadline, a
//! reply that comes after its deadline is recognised as stale rather than taken for the
//! next one, and a run counts what it lost instead of failing on it. The socket is
//! `connect`ed to the server, so the kernel delivers only the server's datagrams to it,
//! and an ICMP "port unreachable" (nothing listening) comes back as a clear error.

mod kernel;
pub mod load;
mod report;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::error::ClientError;

pub use kernel::{socket_drops_on_port, KernelDrops};
pub use load::{run as run_load, DatagramLoadConfig};
pub use report::DatagramLoadReport;

/// The largest reply a UDP client reads: a datagram cannot be longer.
const RECV_BUFFER: usize = 65_536;

/// A UDP socket connected to one server.
#[derive(Debug)]
pub struct UdpClient {
    socket: UdpSocket,
    addr: SocketAddr,
    timeout: Duration,
    buf: Vec<u8>,
}

/// What `ping` measured.
#[derive(Debug, Clone, Default)]
pub struct PingOutcome {
    /// Round trips of the datagrams answered, in the order sent.
    pub samples: Vec<Duration>,
    /// Datagrams with no reply within the timeout.
    pub lost: u32,
    /// Replies that matched no datagram awaited (late answers to lost ones, duplicates,
    /// or corrupt bytes).
    pub stray: u32,
}

impl UdpClient {
    /// A socket on an ephemeral port of the server's address family, connected to
    /// `addr`; every wait is bounded by `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<UdpClient, ClientError> {
        let any = if addr.is_ipv6() {
            SocketAddr::from(([0u16; 8], 0))
        } else {
            SocketAddr::from(([0u8; 4], 0))
        };
        let socket = UdpSocket::bind(any)
            .and_then(|s| s.connect(addr).map(|()| s))
            .map_err(|source| ClientError::Connect { addr, source })?;
        Ok(UdpClient {
            socket,
            addr,
            timeout,
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// Sends one datagram.
    pub fn send(&self, datagram: &[u8]) -> Result<(), ClientError> {
        self.socket
            .send(datagram)
            .map(drop)
            .map_err(|e| self.error("sending the datagram", e))
    }

    /// The next datagram from the server, or `None` if none comes before `deadline`.
    pub fn recv_until(&mut self, deadline: Instant) -> Result<Option<&[u8]>, ClientError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(ClientError::io("setting the receive timeout"))?;
            match self.socket.recv(&mut self.buf) {
                Ok(n) => return Ok(Some(&self.buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(self.error("waiting for the reply", e)),
            }
        }
    }

    /// Sends `message` as one datagram and returns the reply: the first datagram from
    /// the server within the timeout. One try; no reply is a timeout error.
    pub fn echo(&mut self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.send(message)?;
        let deadline = Instant::now() + self.timeout;
        match self.recv_until(deadline)? {
            Some(reply) => Ok(reply.to_vec()),
            None => Err(ClientError::Io {
                context: "waiting for the reply (UDP: the datagram or its reply may be lost)",
                source: io::Error::new(io::ErrorKind::TimedOut, "timed out"),
            }),
        }
    }

    /// `count` datagrams of `size` bytes, one at a time, each waited for up to the
    /// timeout. Each datagram is different (its sequence number in its first bytes), so
    /// a late reply to an earlier one is not taken for the current one's.
    pub fn ping(&mut self, size: usize, count: u32) -> Result<PingOutcome, ClientError> {
        let mut outcome = PingOutcome::default();
        let mut payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        for seq in 0..count {
            let tag = u64::from(seq).to_le_bytes();
            let n = tag.len().min(payload.len());
            payload[..n].copy_from_slice(&tag[..n]);
            let start = Instant::now();
            self.send(&payload)?;
            let deadline = start + self.timeout;
            loop {
                match self.recv_until(deadline)? {
                    None => {
                        outcome.lost += 1;
                        break;
                    }
                    Some(reply) if reply == payload.as_slice() => {
                        outcome.samples.push(start.elapsed());
                        break;
                    }
                    Some(_) => outcome.stray += 1,
                }
            }
        }
        Ok(outcome)
    }

    /// The socket, for tests that need to misbehave on purpose.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// A failed call, said plainly: on a connected UDP socket, "connection refused" is
    /// the kernel passing on an ICMP port-unreachable: nothing listens there.
    fn error(&self, context: &'static str, err: io::Error) -> ClientError {
        if err.kind() == io::ErrorKind::ConnectionRefused {
            return ClientError::Connect {
                addr: self.addr,
                source: io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "nothing is listening on that UDP port (ICMP port unreachable)",
                ),
            };
        }
        ClientError::io(context)(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> (UdpSocket, std::thread::JoinHandle<()>) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = server.try_clone().unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            // Answers every datagram but the second, which it "loses".
            for i in 0.. {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    return;
                };
                if &buf[..n] == b"stop" {
                    return;
                }
                if i != 1 {
                    socket.send_to(&buf[..n], from).unwrap();
                }
            }
        });
        (server, handle)
    }

    #[test]
    fn ping_counts_a_lost_datagram_and_goes_on() {
        let (server, handle) = echo_server();
        let mut client =
            UdpClient::connect(server.local_addr().unwrap(), Duration::from_millis(300)).unwrap();
        let outcome = client.ping(16, 4).unwrap();
        assert_eq!((outcome.samples.len(), outcome.lost), (3, 1));
        assert_eq!(client.echo(b"hello").unwrap(), b"hello");
        client.send(b"stop").unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_a_clear_error() {
        let free = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let mut client = UdpClient::connect(addr, Duration::from_secs(2)).unwrap();
        let err = client.echo(b"anyone?").unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("nothing is listening"), "{source}");
    }
}
