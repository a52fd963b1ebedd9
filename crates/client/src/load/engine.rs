//! One mio event loop per generator thread, each driving its share of the connections.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use echolab_proto::Protocol;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Poll};

use super::report::{self, LoadReport, ERROR_KINDS};
use super::schedule::Schedule;
use super::wakeups::{Wakeups, ALARM};
use super::{progress, LoadConfig, Mode};
use crate::payload;
use crate::ClientError;

/// How often the loop wakes with nothing to do, to check reply timeouts and the clock.
pub(super) const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
pub(super) enum ErrorKind {
    Mismatch,
    Notice,
    ShortRead,
    Reset,
    Timeout,
    Connect,
    Io,
    Backlog,
}

pub(super) struct Phases {
    pub(super) measure_from: Instant,
    pub(super) end: Instant,
}

pub(super) struct Conn {
    pub(super) id: u32,
    /// `None` between a churn cycle's close (or failed connect) and its reconnect.
    pub(super) stream: Option<TcpStream>,
    pub(super) connected_at: Instant,
    pub(super) first_reply: Option<Duration>,
    /// Bytes of the server's challenge still to come (0: no handshake pending).
    pub(super) nonce: Vec<u8>,
    pub(super) awaiting_nonce: bool,
    pub(super) out: Vec<u8>,
    out_pos: usize,
    /// The start of a reply still arriving (whole replies are verified where they were
    /// read and never land here).
    pub(super) input: Vec<u8>,
    next_seq: u64,
    /// (sequence number, time it was sent, or due to be sent in the open loop).
    pub(super) in_flight: VecDeque<(u64, Instant)>,
    pub(super) measured: u64,
    pub(super) open: bool,
    /// Open loop: when each message is due.
    pub(super) schedule: Option<Schedule>,
    /// Churn: when to reconnect after a failure.
    pub(super) retry_at: Option<Instant>,
    /// Open loop: the connection's next due message is in the wake-up queue.
    pub(super) wake_queued: bool,
}

impl Conn {
    fn new(id: u32, awaiting_nonce: bool, schedule: Option<Schedule>) -> Conn {
        Conn {
            id,
            stream: None,
            connected_at: Instant::now(),
            first_reply: None,
            nonce: Vec::new(),
            awaiting_nonce,
            out: Vec::new(),
            out_pos: 0,
            input: Vec::new(),
            next_seq: 0,
            in_flight: VecDeque::new(),
            measured: 0,
            open: false,
            schedule,
            retry_at: None,
            wake_queued: false,
        }
    }

    /// Forgets the connection's I/O state before it reconnects (churn).
    pub(super) fn reset(&mut self, awaiting_nonce: bool) {
        self.nonce.clear();
        self.awaiting_nonce = awaiting_nonce;
        self.out.clear();
        self.out_pos = 0;
        self.input.clear();
        self.in_flight.clear();
    }
}

struct ThreadResult {
    histogram: Histogram<u64>,
    counts: Vec<u64>,
    first_replies: Vec<Option<Duration>>,
    errors: [u64; ERROR_KINDS.len()],
}

pub(crate) fn run(config: &LoadConfig) -> Result<LoadReport, ClientError> {
    let invalid = |what: &str| ClientError::Io {
        context: "invalid load configuration",
        source: io::Error::new(io::ErrorKind::InvalidInput, what.to_string()),
    };
    if config.conns == 0 || config.depth == 0 || config.threads == 0 {
        return Err(invalid("--conns, --depth and --threads must be at least 1"));
    }
    if config.size > (i32::MAX as usize) {
        return Err(invalid("--size is larger than a frame can carry"));
    }
    if let Some(rate) = config.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(invalid("--rate must be a positive number"));
        }
        if config.churn {
            return Err(invalid("--rate and --churn cannot be combined"));
        }
    }
    let threads = config.threads.min(config.conns);
    let start = Instant::now();
    let phases = Phases {
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let progress_count = AtomicU64::new(0);
    let results: Vec<io::Result<ThreadResult>> = std::thread::scope(|scope| {
        if config.progress {
            let count = &progress_count;
            scope.spawn(move || progress::report_until(start, phases.end, count));
        }
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ids: Vec<u32> = (0..config.conns as u32)
                    .filter(|id| *id as usize % threads == t)
                    .collect();
                let (phases, count) = (&phases, &progress_count);
                scope.spawn(move || run_thread(config, &ids, phases, start, count))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("generator thread panicked")))
            })
            .collect()
    });
    let mut histogram = new_histogram();
    let mut counts = Vec::new();
    let mut first_replies = Vec::new();
    let mut errors = [0u64; ERROR_KINDS.len()];
    for result in results {
        let result = result.map_err(|source| ClientError::Io {
            context: "running the load",
            source,
        })?;
        let _ = histogram.add(&result.histogram);
        counts.extend(result.counts);
        first_replies.extend(result.first_replies);
        for (total, n) in errors.iter_mut().zip(result.errors) {
            *total += n;
        }
    }
    let responses: u64 = counts.iter().sum();
    let mut firsts: Vec<Duration> = first_replies.iter().flatten().copied().collect();
    firsts.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mode = config.mode();
    Ok(LoadReport {
        mode: match mode {
            Mode::Closed => "closed",
            Mode::Open(_) => "open",
            Mode::Churn => "churn",
        },
        target_rate: config.rate.filter(|_| matches!(mode, Mode::Open(_))),
        connections_per_sec: (mode == Mode::Churn)
            .then(|| report::per_sec(responses, config.duration)),
        responses,
        seconds: config.duration.as_secs_f64(),
        responses_per_sec: report::per_sec(responses, config.duration),
        mib_per_sec: report::per_sec(responses, config.duration) * config.size as f64
            / (1024.0 * 1024.0),
        latency_us: report::latency(&histogram),
        errors: ERROR_KINDS
            .iter()
            .zip(errors)
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        fairness: report::fairness(&counts),
        first_reply_us_p50: firsts.get(firsts.len() / 2).map(|d| us(*d)).unwrap_or(0.0),
        first_reply_us_max: if firsts.len() == first_replies.len() {
            firsts.last().map(|d| us(*d))
        } else {
            None
        },
        conns: config.conns,
        size: config.size,
        depth: if mode == Mode::Churn { 1 } else { config.depth },
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 us .. 100 s in nanoseconds, 3 significant digits.
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

pub(super) struct Worker<'a> {
    pub(super) config: &'a LoadConfig,
    pub(super) mode: Mode,
    pub(super) phases: &'a Phases,
    pub(super) registry: mio::Registry,
    pub(super) conns: Vec<Conn>,
    pub(super) histogram: Histogram<u64>,
    pub(super) errors: [u64; ERROR_KINDS.len()],
    /// Where replies are read to, shared by the thread's connections.
    pub(super) read_buf: Vec<u8>,
    pub(super) progress: &'a AtomicU64,
    /// Reply timeouts are seconds long: scanning every connection for them once per
    /// tick is enough, rather than after every batch of events.
    next_timeout_check: Instant,
    /// Connections whose read turn was capped with bytes left: (connection, hung up).
    pub(super) unread: Vec<(usize, bool)>,
    /// Open-loop sends and churn retries, by time.
    pub(super) wakeups: Wakeups,
}

fn run_thread(
    config: &LoadConfig,
    ids: &[u32],
    phases: &Phases,
    start: Instant,
    progress: &AtomicU64,
) -> io::Result<ThreadResult> {
    let mut poll = Poll::new()?;
    let mode = config.mode();
    let mut worker = Worker {
        config,
        mode,
        phases,
        registry: poll.registry().try_clone()?,
        conns: Vec::with_capacity(ids.len()),
        histogram: new_histogram(),
        errors: [0; ERROR_KINDS.len()],
        read_buf: vec![0; 64 * 1024],
        progress,
        next_timeout_check: start,
        unread: Vec::new(),
        wakeups: Wakeups::new(poll.registry())?,
    };
    for &id in ids {
        let schedule = match mode {
            Mode::Open(rate) => {
                let phase = id as f64 / config.conns as f64;
                Some(Schedule::new(start, rate, phase))
            }
            _ => None,
        };
        worker
            .conns
            .push(Conn::new(id, config.auth_key.is_some(), schedule));
        let conn = worker.conns.len() - 1;
        worker.connect(conn)?;
    }
    let mut events = Events::with_capacity(1024);
    loop {
        let now = Instant::now();
        if now >= phases.end {
            break;
        }
        let timeout = if worker.unread.is_empty() {
            worker.wait_until(now)?.saturating_duration_since(now)
        } else {
            Duration::ZERO
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == ALARM {
                continue;
            }
            let conn = event.token().0;
            let ended = event.is_read_closed() || event.is_error();
            if event.is_readable() || ended {
                worker.on_readable(conn, ended);
            }
            worker.flush(conn);
        }
        worker.read_unread();
        let now = Instant::now();
        // After the end, what is unanswered is charged by `record_unanswered`, not
        // counted as a timeout.
        if now >= worker.next_timeout_check && now < phases.end {
            worker.check_timeouts(now);
            worker.next_timeout_check = now + TICK;
        }
        worker.on_clock(now);
    }
    worker.record_unanswered();
    // Connections that never connected still count, as starved ones.
    let counts: Vec<u64> = worker.conns.iter().map(|c| c.measured).collect();
    let first_replies: Vec<_> = worker.conns.iter().map(|c| c.first_reply).collect();
    Ok(ThreadResult {
        histogram: worker.histogram,
        counts,
        first_replies,
        errors: worker.errors,
    })
}

impl Worker<'_> {
    /// Counts an error and ends the connection (in churn, closes it and schedules a
    /// reconnect after a short pause).
    pub(super) fn fail(&mut self, conn: usize, kind: ErrorKind) {
        let c = &mut self.conns[conn];
        if c.open {
            c.open = false;
            if let Some(stream) = &c.stream {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            self.errors[kind as usize] += 1;
            if self.mode == Mode::Churn {
                self.close(conn);
                self.retry_later(conn);
            }
        }
    }

    /// Queues messages: until `depth` are in flight (closed loop, one in churn), or every
    /// message now due (open loop); nothing once the run is over.
    pub(super) fn fill_pipeline(&mut self, conn: usize, now: Instant) {
        if now >= self.phases.end {
            return;
        }
        let size = self.config.size;
        let framed = self.config.protocol == Protocol::Framed;
        let depth = match self.mode {
            Mode::Churn => 1,
            _ => self.config.depth,
        };
        let c = &mut self.conns[conn];
        if let Some(mut schedule) = c.schedule.take() {
            loop {
                let due = schedule.next_due();
                if due > now || due >= self.phases.end {
                    break;
                }
                schedule.advance();
                if c.in_flight.len() >= super::open::MAX_IN_FLIGHT {
                    self.errors[ErrorKind::Backlog as usize] += 1;
                    continue;
                }
                queue(c, size, framed, due);
            }
            if !c.wake_queued {
                c.wake_queued = true;
                self.wakeups.at(schedule.next_due(), conn);
            }
            c.schedule = Some(schedule);
        } else {
            while c.in_flight.len() < depth {
                queue(c, size, framed, now);
            }
        }
        self.flush(conn);
    }

    pub(super) fn flush(&mut self, conn: usize) {
        let c = &mut self.conns[conn];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        while c.open && c.out_pos < c.out.len() {
            match stream.write(&c.out[c.out_pos..]) {
                Ok(0) => return self.fail(conn, ErrorKind::Io),
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(conn, classify(&e)),
            }
        }
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        for conn in 0..self.conns.len() {
            let c = &self.conns[conn];
            let overdue = c
                .in_flight
                .front()
                .is_some_and(|(_, sent)| now.duration_since(*sent) > self.config.reply_timeout);
            if c.open && overdue {
                // The wait is the server's to answer for: keep it in the percentiles.
                if now >= self.phases.measure_from {
                    record_waits(&mut self.histogram, &c.in_flight, now);
                }
                self.fail(conn, ErrorKind::Timeout);
            }
        }
    }
}

/// Adds one message and its payload to the connection's output.
fn queue(c: &mut Conn, size: usize, framed: bool, at: Instant) {
    let seq = c.next_seq;
    c.next_seq += 1;
    if framed {
        // `size` was checked against the frame limit in `run`.
        c.out.extend_from_slice(&(size as u32).to_be_bytes());
    }
    let start = c.out.len();
    c.out.resize(start + size, 0);
    payload::fill(&mut c.out[start..], c.id, seq);
    c.in_flight.push_back((seq, at));
}

/// Charges each message still in flight with its wait until `until` (from its send, or
/// its due time in the open loop).
pub(super) fn record_waits(
    histogram: &mut Histogram<u64>,
    in_flight: &VecDeque<(u64, Instant)>,
    until: Instant,
) {
    for (_, since) in in_flight {
        record(histogram, until.saturating_duration_since(*since));
    }
}

pub(super) fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let nanos = latency.as_nanos().min(u64::MAX as u128) as u64;
    let _ = histogram.record(nanos.max(1_000));
}

pub(super) fn classify(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotConnected => ErrorKind::Connect,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Io,
    }
}
