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

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::kernel::Snapshot;
use super::report::DatagramLoadReport;
use crate::cpu::ThreadCpu;
use crate::error::ClientError;
use crate::load::report::{fairness, latency, per_sec};
use crate::load::schedule::Schedule;
use crate::load::threads::join_all;
use crate::load::wakeups::{Wakeups, ALARM};
use crate::load::LoadMode;
use crate::payload;

/// Bytes of a datagram's sequence number, at its start: the smallest `--size` a run
/// can verify.
pub const MIN_SIZE: usize = 8;
/// The largest payload of an IPv4 UDP datagram.
pub const MAX_SIZE: usize = 65_507;
/// Most datagrams one socket tracks at once (its sends within one reply timeout);
/// past it the oldest is given up on, as lost.
const MAX_WINDOW: usize = 1 << 20;
/// Most receives, or open-loop sends, per socket per wake before the loop looks at the
/// others again.
const PER_WAKE: usize = 1024;
/// The loop wakes at least this often (reply timeouts, the end of the run).
const TICK: Duration = Duration::from_millis(50);

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

    fn check(&self) -> Result<(), ClientError> {
        let invalid = |what: String| ClientError::Io {
            context: "invalid load configuration",
            source: io::Error::new(io::ErrorKind::InvalidInput, what),
        };
        if self.sockets == 0 || self.depth == 0 || self.threads == 0 {
            return Err(invalid(
                "--conns (sockets), --depth and --threads must be at least 1".into(),
            ));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(invalid(format!(
                "--size must be {MIN_SIZE}..={MAX_SIZE} over UDP: each datagram carries its \
                 {MIN_SIZE}-byte sequence number, and one datagram holds at most {MAX_SIZE} bytes"
            )));
        }
        if self.reply_timeout.is_zero() {
            return Err(invalid("the reply timeout must be more than 0".into()));
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(invalid("--rate must be a positive number".into()));
            }
        }
        Ok(())
    }
}

/// The instants every thread runs by.
#[derive(Debug, Clone, Copy)]
struct Phases {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Phases {
    fn measured(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.end
    }
}

/// What one thread counted.
struct Tally {
    histogram: Histogram<u64>,
    sent: u64,
    responses: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    corrupted: u64,
    late: u64,
    unsent: u64,
    refused: u64,
    /// Responses in the measured window, per socket (taken at the end).
    per_socket: Vec<u64>,
    /// The generator threads' own (user, system) CPU over the measured window.
    cpu: (Duration, Duration),
}

impl Tally {
    fn new() -> Tally {
        Tally {
            // 1 us .. 100 s in nanoseconds, 3 significant digits (as the TCP load).
            histogram: Histogram::new_with_bounds(1_000, 100_000_000_000, 3)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
            sent: 0,
            responses: 0,
            lost: 0,
            duplicated: 0,
            reordered: 0,
            corrupted: 0,
            late: 0,
            unsent: 0,
            refused: 0,
            per_socket: Vec::new(),
            cpu: (Duration::ZERO, Duration::ZERO),
        }
    }

    fn merge(&mut self, other: &Tally) {
        let _ = self.histogram.add(&other.histogram);
        self.sent += other.sent;
        self.responses += other.responses;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.corrupted += other.corrupted;
        self.late += other.late;
        self.unsent += other.unsent;
        self.refused += other.refused;
        self.per_socket.extend(&other.per_socket);
        self.cpu = (self.cpu.0 + other.cpu.0, self.cpu.1 + other.cpu.1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Awaited,
    Answered,
    /// The send failed: nothing to wait for.
    NotSent,
}

/// One datagram sent: when it was due (latency counts from then: in the open loop the
/// intended time, so a client or server that falls behind is charged for it), when it
/// really went (the reply timeout counts from then: a generator that cannot keep up
/// with its schedule must not count its own lateness as loss), and what came of it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: Instant,
    sent: Instant,
    state: State,
}

/// One client socket and the datagrams it sent within the last reply timeout.
struct Flow<'s> {
    id: u32,
    socket: &'s UdpSocket,
    /// The sequence number of `window[0]`.
    base: u64,
    window: VecDeque<Slot>,
    /// Datagrams awaiting a reply.
    awaited: usize,
    /// The highest sequence number answered so far.
    highest: Option<u64>,
    schedule: Option<Schedule>,
    /// Edge-triggered: set by an event, cleared by `WouldBlock`.
    readable: bool,
    /// Responses in the measured window.
    responses: u64,
}

impl Flow<'_> {
    fn next_seq(&self) -> u64 {
        self.base + self.window.len() as u64
    }

    /// Sends the next datagram, due (open loop) or sent (closed) at `at`.
    fn send(&mut self, at: Instant, payload: &mut [u8], tally: &mut Tally, phases: &Phases) {
        let seq = self.next_seq();
        payload[..MIN_SIZE].copy_from_slice(&seq.to_le_bytes());
        payload::fill(&mut payload[MIN_SIZE..], self.id, seq);
        let measured = phases.measured(at);
        let state = match self.socket.send(payload) {
            Ok(_) => {
                self.awaited += 1;
                tally.sent += u64::from(measured);
                State::Awaited
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tally.refused += 1;
                State::NotSent
            }
            Err(_) => {
                tally.unsent += u64::from(measured);
                State::NotSent
            }
        };
        self.window.push_back(Slot {
            at,
            sent: Instant::now(),
            state,
        });
        if self.window.len() > MAX_WINDOW {
            self.give_up_front(tally, phases);
        }
    }

    /// Drops the oldest slot; if it was still awaited, it is lost.
    fn give_up_front(&mut self, tally: &mut Tally, phases: &Phases) {
        if let Some(slot) = self.window.pop_front() {
            self.base += 1;
            if slot.state == State::Awaited {
                self.awaited -= 1;
                tally.lost += u64::from(phases.measured(slot.at));
            }
        }
    }

    /// Gives up on the datagrams sent at or before `cutoff` (one reply timeout ago).
    fn expire(&mut self, cutoff: Instant, tally: &mut Tally, phases: &Phases) {
        while self.window.front().is_some_and(|slot| slot.sent <= cutoff) {
            self.give_up_front(tally, phases);
        }
    }

    /// Classifies one reply (see the module doc).
    fn on_reply(
        &mut self,
        reply: &[u8],
        size: usize,
        now: Instant,
        tally: &mut Tally,
        phases: &Phases,
    ) {
        if reply.len() != size {
            tally.corrupted += 1;
            return;
        }
        let mut seq_bytes = [0u8; MIN_SIZE];
        seq_bytes.copy_from_slice(&reply[..MIN_SIZE]);
        let seq = u64::from_le_bytes(seq_bytes);
        if seq >= self.next_seq() || !payload::matches(&reply[MIN_SIZE..], self.id, seq) {
            tally.corrupted += 1;
            return;
        }
        let Some(index) = seq.checked_sub(self.base) else {
            tally.late += 1;
            return;
        };
        let slot = &mut self.window[index as usize];
        match slot.state {
            State::Answered => tally.duplicated += 1,
            State::NotSent => tally.corrupted += 1,
            State::Awaited => {
                slot.state = State::Answered;
                self.awaited -= 1;
                if self.highest.is_some_and(|h| seq < h) {
                    tally.reordered += 1;
                }
                self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
                if phases.measured(slot.at) {
                    tally.responses += 1;
                    self.responses += 1;
                    let nanos = now.saturating_duration_since(slot.at).as_nanos();
                    let _ = tally
                        .histogram
                        .record((nanos.min(u64::MAX as u128) as u64).max(1_000));
                }
            }
        }
    }

    /// Receives until `WouldBlock` (at most [`PER_WAKE`] datagrams).
    fn receive(&mut self, buf: &mut [u8], size: usize, tally: &mut Tally, phases: &Phases) {
        for _ in 0..PER_WAKE {
            match self.socket.recv(buf) {
                Ok(n) => self.on_reply(&buf[..n], size, Instant::now(), tally, phases),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => tally.refused += 1,
                // Any other error is the socket's pending one, reported once; go on.
                Err(_) => {}
            }
        }
    }
}

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

/// A non-blocking socket connected to `addr`. Its receive buffer is the system's
/// default, as a user's would be: a bigger one would hold replies the generator has no
/// time to read, and they would come back late rather than be counted as dropped at the
/// client (`client_socket_drops`).
fn open_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let any = if addr.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0u8; 4], 0))
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// `SO_RCVBUF` of `socket`, as `getsockopt` reports it.
fn recv_buffer_bytes(socket: &UdpSocket) -> Option<u64> {
    nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::RcvBuf)
        .ok()
        .and_then(|n| u64::try_from(n).ok())
}

/// One generator thread over its sockets, from the start to the end of the run and its
/// wait for the last replies.
fn run_thread(
    config: &DatagramLoadConfig,
    sockets: Vec<(u32, &UdpSocket)>,
    phases: &Phases,
) -> io::Result<Tally> {
    let mut poll = Poll::new()?;
    let mut wakeups = Wakeups::new(poll.registry())?;
    let mut flows = Vec::with_capacity(sockets.len());
    let per_socket_rate = config.rate.map(|r| r / config.sockets as f64);
    for (index, (id, socket)) in sockets.into_iter().enumerate() {
        poll.registry().register(
            &mut SourceFd(&socket.as_raw_fd()),
            Token(index),
            Interest::READABLE,
        )?;
        // Open loop: staggered so the sockets do not all send in the same instant.
        let schedule = per_socket_rate
            .map(|rate| Schedule::new(phases.start, rate, f64::from(id) / config.sockets as f64));
        if let Some(schedule) = &schedule {
            wakeups.at(schedule.next_due(), index);
        }
        flows.push(Flow {
            id,
            socket,
            base: 0,
            window: VecDeque::new(),
            awaited: 0,
            highest: None,
            schedule,
            readable: true,
            responses: 0,
        });
    }
    let mut tally = Tally::new();
    let mut payload = vec![0u8; config.size];
    let mut buf = vec![0u8; super::RECV_BUFFER];
    let mut events = Events::with_capacity(256);
    let give_up_at = phases.end + config.reply_timeout;
    let mut cpu = ThreadCpu::new(phases.measure_from, phases.end);
    loop {
        let now = Instant::now();
        cpu.observe(now);
        let sending = now < phases.end;
        if !sending && (now >= give_up_at || flows.iter().all(|f| f.awaited == 0)) {
            break;
        }
        let wake = if sending && config.rate.is_some() {
            wakeups.next_wake(now, phases.end)?
        } else {
            (now + TICK).min(if sending { phases.end } else { give_up_at })
        };
        let timeout = if flows.iter().any(|f| f.readable) {
            Duration::ZERO
        } else {
            wake.saturating_duration_since(now)
        };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token() != ALARM {
                if let Some(flow) = flows.get_mut(event.token().0) {
                    flow.readable = true;
                }
            }
        }
        for flow in flows.iter_mut().filter(|f| f.readable) {
            flow.receive(&mut buf, config.size, &mut tally, phases);
        }
        let now = Instant::now();
        if let Some(cutoff) = now.checked_sub(config.reply_timeout) {
            for flow in &mut flows {
                flow.expire(cutoff, &mut tally, phases);
            }
        }
        if now >= phases.end {
            continue;
        }
        if config.rate.is_some() {
            // The sockets due now, each once: a socket behind its schedule sends at most
            // PER_WAKE and is queued again (due at once), but only after the loop has
            // read the replies waiting, so a generator that falls behind still reads.
            let mut due_now = Vec::new();
            while let Some(index) = wakeups.pop_due(now) {
                due_now.push(index);
            }
            for index in due_now {
                let flow = &mut flows[index];
                for _ in 0..PER_WAKE {
                    let Some(due) = flow.schedule.as_ref().map(Schedule::next_due) else {
                        break;
                    };
                    if due > now {
                        break;
                    }
                    flow.send(due, &mut payload, &mut tally, phases);
                    if let Some(schedule) = &mut flow.schedule {
                        schedule.advance();
                    }
                }
                if let Some(due) = flow.schedule.as_ref().map(Schedule::next_due) {
                    if due < phases.end {
                        wakeups.at(due, index);
                    }
                }
            }
        } else {
            // Closed loop: top each socket up to `depth` awaited (one try per missing
            // datagram, so a socket whose sends fail does not spin).
            for flow in &mut flows {
                for _ in flow.awaited..config.depth {
                    flow.send(now, &mut payload, &mut tally, phases);
                }
            }
        }
    }
    // What is still awaited after the wait is lost.
    for flow in &mut flows {
        while !flow.window.is_empty() {
            flow.give_up_front(&mut tally, phases);
        }
    }
    cpu.observe(phases.end.max(Instant::now()));
    tally.cpu = cpu.window();
    tally.per_socket = flows.iter().map(|f| f.responses).collect();
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases() -> Phases {
        let start = Instant::now();
        Phases {
            start,
            measure_from: start,
            end: start + Duration::from_secs(60),
        }
    }

    /// A reply as the server would echo datagram `seq` of socket `id`.
    fn reply(id: u32, seq: u64, size: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; size];
        bytes[..MIN_SIZE].copy_from_slice(&seq.to_le_bytes());
        payload::fill(&mut bytes[MIN_SIZE..], id, seq);
        bytes
    }

    #[test]
    fn replies_are_classified_one_by_one() {
        let phases = phases();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(sink.local_addr().unwrap()).unwrap();
        let mut flow = Flow {
            id: 3,
            socket: &socket,
            base: 0,
            window: VecDeque::new(),
            awaited: 0,
            highest: None,
            schedule: None,
            readable: false,
            responses: 0,
        };
        let mut tally = Tally::new();
        let mut payload = vec![0u8; 64];
        for _ in 0..4 {
            flow.send(Instant::now(), &mut payload, &mut tally, &phases);
        }
        assert_eq!((tally.sent, flow.awaited), (4, 4));
        let now = Instant::now();
        flow.on_reply(&reply(3, 1, 64), 64, now, &mut tally, &phases);
        flow.on_reply(&reply(3, 0, 64), 64, now, &mut tally, &phases); // overtaken
        flow.on_reply(&reply(3, 1, 64), 64, now, &mut tally, &phases); // again
        flow.on_reply(&reply(4, 2, 64), 64, now, &mut tally, &phases); // another socket's
        flow.on_reply(&reply(3, 2, 64)[..63], 64, now, &mut tally, &phases); // cut short
        flow.on_reply(&reply(3, 9, 64), 64, now, &mut tally, &phases); // never sent
        let mut flipped = reply(3, 3, 64);
        flipped[40] ^= 1;
        flow.on_reply(&flipped, 64, now, &mut tally, &phases);
        assert_eq!(tally.responses, 2);
        assert_eq!(tally.reordered, 1);
        assert_eq!(tally.duplicated, 1);
        assert_eq!(tally.corrupted, 4);
        // Datagrams 2 and 3 time out; a late reply to 2 is late, not a response.
        flow.expire(Instant::now(), &mut tally, &phases);
        assert_eq!((tally.lost, flow.awaited, flow.window.len()), (2, 0, 0));
        flow.on_reply(&reply(3, 2, 64), 64, Instant::now(), &mut tally, &phases);
        assert_eq!((tally.late, tally.responses), (1, 2));
    }

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
