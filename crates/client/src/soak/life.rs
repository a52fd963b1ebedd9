//! One connection's life: connect, send a random number of frames in random pieces with
//! a few pipelined, verify every reply as it arrives, close, and account for every byte.
//!
//! The writer runs on its own thread so that a large pipelined frame can never deadlock
//! against its own echo (the server blocks writing the echo until someone reads it).
//! A bounded channel carries each frame's identity from the writer to the reader, which
//! is also what bounds the frames in flight.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use echolab_proto::{encode_frame, Reply, ReplyDecoder};

use super::checksum::Checksum;
use super::rng::Rng;
use super::{shape, SoakConfig};
use crate::load::payload;
use crate::{Client, ClientConfig, ClientError};

/// What one life (or many, summed) amounted to.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) connections: u64,
    pub(crate) messages: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) mismatches: u64,
    pub(crate) checksum_mismatches: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
}

impl Tally {
    pub(crate) fn add(&mut self, other: &Tally) {
        self.connections += other.connections;
        self.messages += other.messages;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.mismatches += other.mismatches;
        self.checksum_mismatches += other.checksum_mismatches;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    pub(crate) fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// The identity of a frame in flight: the reader regenerates its payload to compare.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    len: usize,
}

/// Runs one life of connection `id` and adds its outcome to `tally`.
pub(crate) fn run(
    config: &SoakConfig,
    id: u32,
    rng: &mut Rng,
    stop: &AtomicBool,
    tally: &mut Tally,
) {
    let stream = match connect(config) {
        Ok(stream) => stream,
        Err(err) => {
            tally.error(kind_of_client_error(&err));
            // Do not spin against a server that refuses.
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
    };
    tally.connections += 1;
    let frames = shape::life_frames(rng);
    let window = rng.range(1..=config.depth.max(1));
    let mut writer_rng = rng.fork(1);
    let mut reader_rng = rng.fork(2);
    let (tx, rx) = mpsc::sync_channel(window - 1);
    let outcome = std::thread::scope(|scope| {
        let writer =
            scope.spawn(|| write_frames(config, &stream, id, frames, &mut writer_rng, stop, tx));
        let read = read_replies(config, &stream, id, &mut reader_rng, rx);
        if read.error.is_some() {
            // Unblock a writer stuck on a peer that stopped reading.
            let _ = stream.shutdown(Shutdown::Both);
        }
        let written = writer
            .join()
            .unwrap_or_else(|_| Written::failed("writer_panic"));
        (written, read)
    });
    let (written, read) = outcome;
    tally.messages += read.verified;
    tally.mismatches += read.mismatches;
    tally.bytes_sent += written.checksum.bytes();
    tally.bytes_received += read.checksum.bytes();
    // A writer failure explains the reader's (it shut the socket); count the first cause.
    match (written.error, read.error) {
        (Some(kind), _) | (None, Some(kind)) => tally.error(kind),
        (None, None) => {
            if written.checksum != read.checksum {
                tally.checksum_mismatches += 1;
            }
            if let Err(kind) = close(&stream, rng) {
                tally.error(kind);
            }
        }
    }
}

fn connect(config: &SoakConfig) -> Result<TcpStream, ClientError> {
    let client = Client::connect(&ClientConfig {
        auth_key: config.auth_key.clone(),
        timeout: config.timeout,
        ..ClientConfig::new(config.addr)
    })?;
    client
        .stream()
        .try_clone()
        .map_err(ClientError::io("cloning the socket"))
}

/// Half the lives half-close and wait for the server's EOF (its orderly close path);
/// the others just drop the socket (its EOF-on-read path).
fn close(stream: &TcpStream, rng: &mut Rng) -> Result<(), &'static str> {
    if rng.percent(50) {
        return Ok(());
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| kind_of_io(&e))?;
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Ok(0) => Ok(()),
        Ok(_) => Err("bytes_after_last_reply"),
        Err(e) => Err(kind_of_io(&e)),
    }
}

struct Written {
    checksum: Checksum,
    error: Option<&'static str>,
}

impl Written {
    fn failed(kind: &'static str) -> Written {
        Written {
            checksum: Checksum::default(),
            error: Some(kind),
        }
    }
}

fn write_frames(
    config: &SoakConfig,
    stream: &TcpStream,
    id: u32,
    frames: u64,
    rng: &mut Rng,
    stop: &AtomicBool,
    tx: SyncSender<Sent>,
) -> Written {
    let mut checksum = Checksum::default();
    let mut wire = Vec::new();
    let mut body = Vec::new();
    for seq in 0..frames {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let len = shape::frame_size(rng, config.max_size);
        // Blocks while the window is full: this is the pipelining bound.
        if tx.send(Sent { seq, len }).is_err() {
            // The reader gave up and reported why.
            break;
        }
        body.resize(len, 0);
        payload::fill(&mut body, id, seq ^ config.seed);
        checksum.update(&body);
        wire.clear();
        if encode_frame(&body, &mut wire).is_err() {
            return Written::failed("frame_too_large");
        }
        if let Err(err) = write_in_pieces(stream, &wire, rng) {
            let _ = stream.shutdown(Shutdown::Both);
            return Written {
                checksum,
                error: Some(kind_of_io(&err)),
            };
        }
    }
    Written {
        checksum,
        error: None,
    }
}

fn write_in_pieces(stream: &TcpStream, wire: &[u8], rng: &mut Rng) -> io::Result<()> {
    let mut from = 0;
    let cuts = shape::write_cuts(rng, wire.len());
    for to in cuts.into_iter().chain(std::iter::once(wire.len())) {
        (&*stream).write_all(&wire[from..to])?;
        from = to;
        if let Some(pause) = shape::pause(rng) {
            std::thread::sleep(pause);
        }
    }
    Ok(())
}

struct Received {
    checksum: Checksum,
    verified: u64,
    mismatches: u64,
    error: Option<&'static str>,
}

fn read_replies(
    config: &SoakConfig,
    stream: &TcpStream,
    id: u32,
    rng: &mut Rng,
    rx: Receiver<Sent>,
) -> Received {
    let mut read = Received {
        checksum: Checksum::default(),
        verified: 0,
        mismatches: 0,
        error: None,
    };
    let mut decoder = ReplyDecoder::new(u32::try_from(config.max_size).unwrap_or(u32::MAX));
    let mut buf = vec![0u8; 64 * 1024];
    let mut expected = Vec::new();
    loop {
        let sent = match rx.recv_timeout(config.timeout) {
            Ok(sent) => sent,
            Err(RecvTimeoutError::Disconnected) => return read,
            Err(RecvTimeoutError::Timeout) => {
                read.error = Some("writer_stalled");
                return read;
            }
        };
        let reply = match next_reply(stream, &mut decoder, &mut buf, rng) {
            Ok(reply) => reply,
            Err(kind) => {
                read.error = Some(kind);
                return read;
            }
        };
        let payload = match reply {
            Reply::Frame(payload) => payload,
            Reply::Notice(_) => {
                read.error = Some("notice");
                return read;
            }
        };
        read.checksum.update(&payload);
        expected.resize(sent.len, 0);
        payload::fill(&mut expected, id, sent.seq ^ config.seed);
        if payload == expected {
            read.verified += 1;
        } else {
            read.mismatches += 1;
        }
    }
}

/// Reads (in randomly sized reads) until the decoder has a whole reply.
fn next_reply(
    stream: &TcpStream,
    decoder: &mut ReplyDecoder,
    buf: &mut [u8],
    rng: &mut Rng,
) -> Result<Reply, &'static str> {
    loop {
        if let Some(reply) = decoder.next_reply().map_err(|_| "protocol")? {
            return Ok(reply);
        }
        let want = shape::read_size(rng, buf.len());
        match (&*stream).read(&mut buf[..want]) {
            Ok(0) => return Err("closed_early"),
            Ok(n) => decoder.feed(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(kind_of_io(&e)),
        }
    }
}

fn kind_of_io(err: &io::Error) -> &'static str {
    match err.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "timeout",
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            "reset"
        }
        _ => "io",
    }
}

fn kind_of_client_error(err: &ClientError) -> &'static str {
    match err {
        ClientError::Connect { .. } => "connect",
        ClientError::Io { source, .. } => kind_of_io(source),
        ClientError::Notice(_) => "notice",
        ClientError::Closed(_) => "closed_early",
        ClientError::Protocol(_) => "protocol",
    }
}
