//! What every datagram (UDP) model shares: one receive call that reports truncation,
//! the answer step with its counters, the blocking loop, and the shutdown drain.
//!
//! A UDP server has no accept and no connection: one socket receives every client's
//! datagrams, each with its sender's address, and answers each with one `sendto` to
//! that address. So a datagram model differs from another only in how it waits for the
//! socket and how many datagrams it moves per call; the answer itself is
//! [`DatagramRules::answer`] (in `echolab-proto`), identical for every model.

use std::borrow::Cow;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use echolab_proto::{Answer, DatagramRules};
use nix::sys::socket::{recvmsg, MsgFlags, SockaddrStorage};

use crate::{DatagramCounts, ServerConfig, ServerContext, ServerStats, Work, NO_DEADLINE_WAIT};

/// The longest one blocking `sendto` waits for room in the send buffer before the reply
/// is dropped (counted as `send_queue_full`). Over loopback a UDP send hands the
/// datagram straight to the receiver, so it almost never waits at all.
pub const SEND_WAIT: Duration = Duration::from_millis(200);

/// At shutdown, at most this many datagrams already received are answered (and for at
/// most [`DRAIN_TIME`]): clients that keep sending cannot hold the server open.
pub const DRAIN_LIMIT: u64 = 65_536;
/// See [`DRAIN_LIMIT`].
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Records `socket`'s receive buffer (`SO_RCVBUF`) in the server's stats, so its stats
/// line says how much the kernel holds for it before dropping: every datagram model
/// calls this once for each socket it receives on.
pub fn record_recv_buffer(socket: &UdpSocket, stats: &ServerStats) {
    if let Ok(bytes) = socket2::SockRef::from(socket).recv_buffer_size() {
        stats.record_recv_buffer(bytes as u64);
    }
}

/// One datagram as the kernel delivered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes in the buffer (at most the buffer's length).
    pub len: usize,
    /// The sender, where the answer goes.
    pub from: SocketAddr,
    /// The datagram was longer than the buffer: the kernel dropped the rest and said so
    /// with `MSG_TRUNC`.
    pub truncated: bool,
}

/// Receives one datagram into `buf` with `recvmsg(2)`, which (unlike `recv_from`)
/// returns the message flags, and with them `MSG_TRUNC`: a datagram longer than the
/// buffer is cut, and the rest is gone. Errors are the call's (`WouldBlock` on a
/// non-blocking socket with nothing queued, `Interrupted` on a signal).
pub fn recv_datagram(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, None, MsgFlags::empty())?;
    let from =
        msg.address.as_ref().and_then(socket_addr).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "a datagram with no sender")
        })?;
    let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    // `RUST_LOG=trace`: one line per datagram, as the stream models' blocking reads.
    tracing::trace!(%from, len = msg.bytes, truncated, "datagram");
    Ok(Received {
        len: msg.bytes,
        from,
        truncated,
    })
}

/// The sender of a received datagram as a std address (`None` for a family UDP does
/// not use).
pub fn socket_addr(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    storage.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// Whether a failed receive or send concerns one datagram or one peer only (an ICMP
/// error the kernel reported on the socket, a full device queue), so the loop counts it
/// and goes on; anything else ends the model with the error.
pub(crate) fn concerns_one_datagram(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionRefused
            | ConnectionReset
            | HostUnreachable
            | NetworkUnreachable
            | AddrNotAvailable
            | PermissionDenied
            | OutOfMemory
            | InvalidData
    ) || matches!(
        err.raw_os_error(),
        Some(libc::ENOBUFS | libc::EMSGSIZE | libc::EHOSTDOWN)
    )
}

/// Whether a receive ended without a datagram and without trouble: the socket is empty
/// (non-blocking, or the receive timeout passed) or a signal arrived, so the loop only
/// looks at the shutdown flag again.
pub(crate) fn is_wait_over(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// One loop's answering: the rules, and counters kept locally and folded into the
/// server's stats once, when the loop ends (so the per-datagram path touches no shared
/// cache line, whichever thread runs it).
#[derive(Debug)]
pub struct Responder {
    rules: DatagramRules,
    /// `--work`: done per datagram answered, on the thread that answers it.
    work: Option<Arc<Work>>,
    counts: DatagramCounts,
    bytes_in: u64,
    bytes_out: u64,
}

impl Responder {
    /// A responder for `config`'s service and size limit.
    pub fn new(config: &ServerConfig) -> Responder {
        Responder {
            rules: config.datagram_rules(),
            work: config.work.clone(),
            counts: DatagramCounts::default(),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// A receive buffer for one datagram: exactly the largest datagram answered, so
    /// one byte more comes back with `MSG_TRUNC`.
    pub fn buffer(&self) -> Vec<u8> {
        vec![0; self.rules.max_len()]
    }

    /// Counts one received datagram and returns what to send back, or `None` when it
    /// is dropped (counted by why).
    pub fn answer<'a>(&mut self, datagram: &'a [u8], truncated: bool) -> Option<Cow<'a, [u8]>> {
        self.counts.received += 1;
        self.bytes_in += datagram.len() as u64;
        let answer = match &self.work {
            Some(work) => self
                .rules
                .answer_with(&**work, datagram, truncated, SystemTime::now),
            None => self.rules.answer(datagram, truncated, SystemTime::now),
        };
        match answer {
            Answer::Reply(reply) => Some(reply),
            Answer::Drop(_) => {
                self.counts.truncated += 1;
                None
            }
        }
    }

    /// `--offload`: counts one received datagram as [`Responder::answer`] does, but
    /// neither works on it nor answers it: the datagram, owned, to hand to the pool when
    /// it will be answered, `None` when it is dropped (counted).
    pub fn take_for_work(&mut self, datagram: &[u8], truncated: bool) -> Option<Vec<u8>> {
        self.counts.received += 1;
        self.bytes_in += datagram.len() as u64;
        if self.rules.dropped(datagram.len(), truncated).is_some() {
            self.counts.truncated += 1;
            return None;
        }
        Some(datagram.to_vec())
    }

    /// The answer to a datagram from [`Responder::take_for_work`], its work done
    /// elsewhere (`None` only for one the rules drop, which that never hands out).
    pub fn answer_worked<'a>(&self, datagram: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match self.rules.answer(datagram, false, SystemTime::now) {
            Answer::Reply(reply) => Some(reply),
            Answer::Drop(_) => None,
        }
    }

    /// Counts how one reply's send went: sent, dropped for want of room (`WouldBlock`,
    /// or a blocking send's timeout), or refused.
    pub fn record_send(&mut self, result: &io::Result<usize>) {
        match result {
            Ok(n) => {
                self.counts.answered += 1;
                self.bytes_out += *n as u64;
            }
            Err(e) if is_wait_over(e) => self.counts.send_queue_full += 1,
            Err(_) => self.counts.send_errors += 1,
        }
    }

    /// A reply dropped because the model's queue of replies owed was full.
    pub fn record_queue_full(&mut self) {
        self.counts.send_queue_full += 1;
    }

    /// Sorts a failed receive: `Ok` to go on (the wait is over, or the error was one
    /// datagram's or one peer's, counted), `Err` to stop serving.
    pub fn recv_failed(&mut self, err: io::Error) -> io::Result<()> {
        if is_wait_over(&err) {
            return Ok(());
        }
        if concerns_one_datagram(&err) {
            self.counts.recv_errors += 1;
            return Ok(());
        }
        Err(err)
    }

    /// Receives one datagram, answers it with one `sendto`, and counts both; `Ok` also
    /// when there was nothing to receive (see [`Responder::recv_failed`]).
    pub fn serve_one(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
        let received = recv_datagram(socket, buf)?;
        if let Some(reply) = self.answer(&buf[..received.len], received.truncated) {
            let sent = socket.send_to(&reply, received.from);
            self.record_send(&sent);
        }
        Ok(received)
    }

    /// The counts so far.
    pub fn counts(&self) -> &DatagramCounts {
        &self.counts
    }

    /// Folds the counts into the server's stats; the responder starts again from zero.
    pub fn fold_into(&mut self, stats: &ServerStats) {
        stats.record_datagrams(&self.counts, self.bytes_in, self.bytes_out);
        self.counts = DatagramCounts::default();
        (self.bytes_in, self.bytes_out) = (0, 0);
    }
}

/// The blocking datagram loop, the course's UDP server: `recvfrom` (here `recvmsg`, for
/// `MSG_TRUNC`) waits for the next datagram from anyone, `sendto` answers it, repeat.
/// Two syscalls per datagram, no readiness call. The thread registers in
/// `ctx.blocked`, so shutdown reaches its blocked receive as `EINTR` (the receive
/// timeout makes the call interruptible; see [`crate::Interrupter`], which the model
/// starts); it then answers what has already arrived ([`drain`]) and returns. Its
/// socket's receive buffer goes into the stats ([`record_recv_buffer`]).
pub fn serve_datagrams(socket: &UdpSocket, ctx: &ServerContext) -> io::Result<()> {
    record_recv_buffer(socket, &ctx.stats);
    let mut responder = Responder::new(&ctx.config);
    let mut buf = responder.buffer();
    let _registration = ctx.blocked.register();
    socket.set_read_timeout(Some(NO_DEADLINE_WAIT))?;
    socket.set_write_timeout(Some(SEND_WAIT))?;
    let result = loop {
        if ctx.shutdown.is_requested() {
            break drain(socket, &mut responder, &mut buf);
        }
        if let Err(err) = responder.serve_one(socket, &mut buf) {
            if let Err(fatal) = responder.recv_failed(err) {
                break Err(fatal);
            }
        }
    };
    responder.fold_into(&ctx.stats);
    result
}

/// Shutdown's last act: answers the datagrams already queued on the socket — received
/// by the kernel before the loop stopped — without waiting for more, at most
/// [`DRAIN_LIMIT`] of them or for [`DRAIN_TIME`]. The socket is left non-blocking.
pub fn drain(socket: &UdpSocket, responder: &mut Responder, buf: &mut [u8]) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let until = Instant::now() + DRAIN_TIME;
    for _ in 0..DRAIN_LIMIT {
        match responder.serve_one(socket, buf) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => responder.recv_failed(e)?,
        }
        if Instant::now() >= until {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use echolab_proto::{FrameLimit, Service};

    fn pair() -> (UdpSocket, UdpSocket) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server.local_addr().unwrap()).unwrap();
        for s in [&server, &client] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        (server, client)
    }

    fn config(limit: u32, service: Service) -> ServerConfig {
        let mut config = ServerConfig::default();
        config.session.max_frame = FrameLimit::new(limit).unwrap();
        config.service = service;
        config
    }

    #[test]
    fn recvmsg_reports_the_sender_and_truncation() {
        let (server, client) = pair();
        client.send(b"hello").unwrap();
        client.send(b"hello, world").unwrap();
        let mut buf = [0u8; 8];
        let first = recv_datagram(&server, &mut buf).unwrap();
        assert_eq!(first.from, client.local_addr().unwrap());
        assert_eq!((first.len, first.truncated), (5, false));
        let second = recv_datagram(&server, &mut buf).unwrap();
        assert_eq!((second.len, second.truncated), (8, true));
        assert_eq!(&buf, b"hello, w");
    }

    #[test]
    fn a_responder_echoes_drops_the_oversize_and_counts_both() {
        let (server, client) = pair();
        let mut responder = Responder::new(&config(4, Service::Echo));
        let mut buf = responder.buffer();
        assert_eq!(buf.len(), 4);
        for message in [&b"abcd"[..], b"abcde", b""] {
            client.send(message).unwrap();
            responder.serve_one(&server, &mut buf).unwrap();
        }
        let mut reply = [0u8; 16];
        assert_eq!(client.recv(&mut reply).unwrap(), 4);
        assert_eq!(&reply[..4], b"abcd");
        // The oversize datagram got nothing; the empty one got an empty reply.
        assert_eq!(client.recv(&mut reply).unwrap(), 0);
        let counts = *responder.counts();
        assert_eq!(
            (counts.received, counts.answered, counts.truncated),
            (3, 2, 1)
        );
        let stats = ServerStats::default();
        responder.fold_into(&stats);
        assert_eq!(stats.snapshot().bytes_out, 4);
        assert!(responder.counts().is_zero());
    }

    #[test]
    fn a_datagram_taken_for_work_is_counted_once_and_answered_later() {
        let mut responder = Responder::new(&config(4, Service::Echo));
        let taken = responder.take_for_work(b"abcd", false).expect("answered");
        assert!(
            responder.take_for_work(b"abcde", false).is_none(),
            "oversize"
        );
        assert!(responder.take_for_work(b"ab", true).is_none(), "truncated");
        assert_eq!(
            responder.answer_worked(&taken).as_deref(),
            Some(&b"abcd"[..]),
            "the echo, after the work"
        );
        let counts = *responder.counts();
        assert_eq!(
            (counts.received, counts.truncated, counts.answered),
            (3, 2, 0),
            "received counted when taken; answered only when sent"
        );
        let daytime = Responder::new(&config(64, Service::Daytime));
        let answer = daytime.answer_worked(b"what time is it").expect("answered");
        assert!(answer.ends_with(b"\r\n"), "{answer:?}");
    }

    #[test]
    fn drain_answers_what_is_queued_and_returns_when_empty() {
        let (server, client) = pair();
        for i in 0..10u8 {
            client.send(&[i]).unwrap();
        }
        let mut responder = Responder::new(&config(64, Service::Echo));
        let mut buf = responder.buffer();
        drain(&server, &mut responder, &mut buf).unwrap();
        assert_eq!(responder.counts().answered, 10);
        let mut reply = [0u8; 4];
        for i in 0..10u8 {
            assert_eq!(client.recv(&mut reply).unwrap(), 1);
            assert_eq!(reply[0], i);
        }
    }

    #[test]
    fn transient_errors_are_one_peers_and_the_rest_are_fatal() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let mut responder = Responder::new(&ServerConfig::default());
        assert!(responder.recv_failed(refused).is_ok());
        assert!(responder
            .recv_failed(io::Error::from(io::ErrorKind::Interrupted))
            .is_ok());
        assert_eq!(responder.counts().recv_errors, 1);
        let bad = io::Error::from_raw_os_error(libc::EBADF);
        assert!(responder.recv_failed(bad).is_err());
    }
}
