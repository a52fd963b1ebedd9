//! One mio event loop per generator thread, each driving its share of the connections.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use echolab_proto::{Header, Protocol, HEADER_LEN, NONCE_LEN};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::payload;
use super::report::{self, LoadReport, ERROR_KINDS};
use super::LoadConfig;
use crate::ClientError;

/// How often the loop wakes with nothing to do, to check reply timeouts and the clock.
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
enum ErrorKind {
    Mismatch,
    Notice,
    ShortRead,
    Reset,
    Timeout,
    Connect,
    Io,
}

struct Phases {
    measure_from: Instant,
    end: Instant,
}

struct Conn {
    id: u32,
    stream: TcpStream,
    connected_at: Instant,
    first_reply: Option<Duration>,
    /// Bytes of the server's challenge still to come (0: no handshake pending).
    nonce: Vec<u8>,
    awaiting_nonce: bool,
    out: Vec<u8>,
    out_pos: usize,
    input: Vec<u8>,
    input_pos: usize,
    next_seq: u64,
    in_flight: VecDeque<(u64, Instant)>,
    measured: u64,
    open: bool,
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
    let threads = config.threads.min(config.conns);
    let start = Instant::now();
    let phases = Phases {
        measure_from: start + config.warmup,
        end: start + config.warmup + config.duration,
    };
    let results: Vec<io::Result<ThreadResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ids: Vec<u32> = (0..config.conns as u32)
                    .filter(|id| *id as usize % threads == t)
                    .collect();
                let phases = &phases;
                scope.spawn(move || run_thread(config, &ids, phases))
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
    Ok(LoadReport {
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
        depth: config.depth,
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 us .. 100 s in nanoseconds, 3 significant digits.
    Histogram::new_with_bounds(1_000, 100_000_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

struct Worker<'a> {
    config: &'a LoadConfig,
    phases: &'a Phases,
    conns: Vec<Conn>,
    histogram: Histogram<u64>,
    errors: [u64; ERROR_KINDS.len()],
    scratch: Vec<u8>,
}

fn run_thread(config: &LoadConfig, ids: &[u32], phases: &Phases) -> io::Result<ThreadResult> {
    let mut poll = Poll::new()?;
    let mut worker = Worker {
        config,
        phases,
        conns: Vec::with_capacity(ids.len()),
        histogram: new_histogram(),
        errors: [0; ERROR_KINDS.len()],
        scratch: vec![0; 64 * 1024],
    };
    let mut first_failed = Vec::new();
    for &id in ids {
        match TcpStream::connect(config.addr) {
            Ok(mut stream) => {
                let token = Token(worker.conns.len());
                poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                worker.conns.push(Conn {
                    id,
                    stream,
                    connected_at: Instant::now(),
                    first_reply: None,
                    nonce: Vec::new(),
                    awaiting_nonce: config.auth_key.is_some(),
                    out: Vec::new(),
                    out_pos: 0,
                    input: Vec::new(),
                    input_pos: 0,
                    next_seq: 0,
                    in_flight: VecDeque::new(),
                    measured: 0,
                    open: true,
                });
                let conn = worker.conns.len() - 1;
                if !worker.conns[conn].awaiting_nonce {
                    worker.fill_pipeline(conn);
                }
            }
            Err(_) => first_failed.push(id),
        }
    }
    worker.errors[ErrorKind::Connect as usize] += first_failed.len() as u64;
    let mut events = Events::with_capacity(1024);
    loop {
        let now = Instant::now();
        if now >= phases.end {
            break;
        }
        let timeout = (phases.end - now).min(TICK);
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            let conn = event.token().0;
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                worker.on_readable(conn);
            }
            worker.flush(conn);
        }
        worker.check_timeouts(Instant::now());
    }
    let mut counts: Vec<u64> = worker.conns.iter().map(|c| c.measured).collect();
    let mut first_replies: Vec<_> = worker.conns.iter().map(|c| c.first_reply).collect();
    // Connections that never connected still count, as starved ones.
    counts.extend(first_failed.iter().map(|_| 0));
    first_replies.extend(first_failed.iter().map(|_| None));
    Ok(ThreadResult {
        histogram: worker.histogram,
        counts,
        first_replies,
        errors: worker.errors,
    })
}

impl Worker<'_> {
    fn fail(&mut self, conn: usize, kind: ErrorKind) {
        let c = &mut self.conns[conn];
        if c.open {
            c.open = false;
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            self.errors[kind as usize] += 1;
        }
    }

    /// Queues messages until `depth` are in flight (closed loop), unless the run is over.
    fn fill_pipeline(&mut self, conn: usize) {
        let now = Instant::now();
        if now >= self.phases.end {
            return;
        }
        let size = self.config.size;
        let framed = self.config.protocol == Protocol::Framed;
        let c = &mut self.conns[conn];
        while c.in_flight.len() < self.config.depth {
            let seq = c.next_seq;
            c.next_seq += 1;
            if framed {
                // `size` was checked against the frame limit in `run`.
                c.out.extend_from_slice(&(size as u32).to_be_bytes());
            }
            let start = c.out.len();
            c.out.resize(start + size, 0);
            payload::fill(&mut c.out[start..], c.id, seq);
            c.in_flight.push_back((seq, now));
        }
        self.flush(conn);
    }

    fn flush(&mut self, conn: usize) {
        let c = &mut self.conns[conn];
        while c.open && c.out_pos < c.out.len() {
            match c.stream.write(&c.out[c.out_pos..]) {
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

    fn on_readable(&mut self, conn: usize) {
        loop {
            let c = &mut self.conns[conn];
            if !c.open {
                return;
            }
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    let kind = if c.in_flight.is_empty() && c.input.len() == c.input_pos {
                        ErrorKind::Reset
                    } else {
                        ErrorKind::ShortRead
                    };
                    return self.fail(conn, kind);
                }
                Ok(n) => {
                    if c.input_pos == c.input.len() {
                        c.input.clear();
                        c.input_pos = 0;
                    }
                    c.input.extend_from_slice(&self.scratch[..n]);
                    self.process_input(conn);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(conn, classify(&e)),
            }
        }
    }

    fn process_input(&mut self, conn: usize) {
        let size = self.config.size;
        let framed = self.config.protocol == Protocol::Framed;
        let mut completed = 0usize;
        loop {
            let c = &mut self.conns[conn];
            if !c.open {
                return;
            }
            let rest = &c.input[c.input_pos..];
            if c.awaiting_nonce {
                let take = (NONCE_LEN - c.nonce.len()).min(rest.len());
                c.nonce.extend_from_slice(&rest[..take]);
                c.input_pos += take;
                if c.nonce.len() < NONCE_LEN {
                    return;
                }
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&c.nonce);
                c.awaiting_nonce = false;
                if let Some(key) = &self.config.auth_key {
                    c.out.extend_from_slice(&key.respond(&nonce));
                }
                self.fill_pipeline(conn);
                continue;
            }
            let header_len = if framed { HEADER_LEN } else { 0 };
            if rest.len() < header_len {
                break;
            }
            if framed {
                let header = Header::parse([rest[0], rest[1], rest[2], rest[3]]);
                match header {
                    Header::Notice(_) => return self.fail(conn, ErrorKind::Notice),
                    Header::Frame(len) if len as usize != size => {
                        return self.fail(conn, ErrorKind::Mismatch)
                    }
                    Header::Frame(_) => {}
                }
            }
            if rest.len() < header_len + size {
                break;
            }
            let Some((seq, sent)) = c.in_flight.pop_front() else {
                // A reply nobody asked for.
                return self.fail(conn, ErrorKind::Mismatch);
            };
            let body = &rest[header_len..header_len + size];
            if !payload::matches(body, c.id, seq) {
                return self.fail(conn, ErrorKind::Mismatch);
            }
            c.input_pos += header_len + size;
            let now = Instant::now();
            if c.first_reply.is_none() {
                c.first_reply = Some(now - c.connected_at);
            }
            if now >= self.phases.measure_from && now < self.phases.end {
                c.measured += 1;
                let nanos = (now - sent).as_nanos().min(u64::MAX as u128) as u64;
                let _ = self.histogram.record(nanos.max(1_000));
            }
            completed += 1;
        }
        if completed > 0 {
            self.fill_pipeline(conn);
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
                self.fail(conn, ErrorKind::Timeout);
            }
        }
    }
}

fn classify(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ErrorKind::Reset,
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotConnected => ErrorKind::Connect,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Io,
    }
}
