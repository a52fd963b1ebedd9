//! The fuzz target for the protocol core, as high-count property tests (`cargo fuzz`
//! needs a nightly toolchain; these run on stable, in every `cargo test`).
//!
//! A [`Session`] is driven the way every server model drives it — input only while it
//! [`Session::wants_read`], partial writes, deadlines that fire late, end of stream,
//! shutdown — with arbitrary bytes in arbitrary chunks under arbitrary limits, and must
//! never panic, never hold more memory than its limits allow (whatever the volume of
//! input), and never echo anything once it has started closing (except the replies of
//! offloaded frames received before). Well-formed frames in any chunking, with any
//! partial writes — and with their work offloaded and completed at any point — must come
//! back byte for byte. The client's [`ReplyDecoder`] gets arbitrary bytes too.
//!
//! Each property runs `ECHOLAB_FUZZ_CASES` cases (default 256, sized for CI: a few
//! seconds in a debug build). A long run, e.g. overnight:
//!
//! ```sh
//! ECHOLAB_FUZZ_CASES=10000000 cargo test --release -p echolab-proto --test fuzz_session
//! ```
//!
//! A failure prints the minimal input proptest shrank it to, and proptest stores its
//! seed in `fuzz_session.proptest-regressions` beside this file, so that every later run
//! replays it first; commit that file. The one committed seed is the case that caught
//! a session with its backpressure removed (`wants_read` always true).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab_proto::{
    encode_frame, AuthKey, FrameLimit, Handler, Job, Protocol, Reply, ReplyDecoder, Session,
    SessionConfig, WorkMode, HEADER_LEN, MAX_NOTICE_LEN, NONCE_LEN,
};
use proptest::prelude::*;

/// Cases per property: `ECHOLAB_FUZZ_CASES`, or a default sized for CI.
fn cases() -> u32 {
    std::env::var("ECHOLAB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Buffers the session keeps below this size after use (its `RETAIN_CAPACITY`); two of
/// them (input and output) may stay allocated on an idle connection.
const RETAINED: usize = 64 * 1024;
/// The servers' read buffer: the most one `handle_input` call gets.
const LARGEST_FILL: usize = 64 * 1024;

/// One thing that happens to a connection.
#[derive(Debug, Clone)]
enum Op {
    /// Arbitrary bytes arrive.
    Bytes(Vec<u8>),
    /// A frame header announcing `len` bytes arrives.
    Header(u32),
    /// `len` copies of one byte arrive: volume without generating it byte by byte.
    Fill(u8, usize),
    /// The driver writes at most this many bytes of the pending output.
    Write(usize),
    /// Time passes and the driver applies deadlines.
    Advance(Duration),
    /// The peer closes its sending side.
    Eof,
    /// The server starts shutting down.
    Shutdown,
    /// The driver takes a job for offloaded work, if one waits and none is out.
    TakeJob,
    /// The job out comes back from the worker.
    CompleteJob,
    /// The driver's read or write failed.
    Abandon,
}

/// Inline work that counts the messages it is given.
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Handler for Counter {
    fn handle(&self, _payload: &[u8]) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn op(max_frame: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Op::Bytes),
        2 => prop_oneof![0..=max_frame.saturating_add(2), any::<u32>()].prop_map(Op::Header),
        3 => (any::<u8>(), 0..LARGEST_FILL).prop_map(|(b, n)| Op::Fill(b, n)),
        3 => (0usize..70_000).prop_map(Op::Write),
        1 => (0u64..3000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
        1 => Just(Op::Eof),
        1 => Just(Op::Shutdown),
        2 => Just(Op::TakeJob),
        2 => Just(Op::CompleteJob),
        1 => Just(Op::Abandon),
    ]
}

/// No work, inline work (counted), or offloaded work.
fn work_mode() -> impl Strategy<Value = WorkMode> {
    prop_oneof![
        Just(WorkMode::None),
        Just(WorkMode::Offload),
        Just(()).prop_map(|()| WorkMode::Inline(Arc::new(Counter::default()))),
    ]
}

fn timeout() -> impl Strategy<Value = Option<Duration>> {
    prop::option::of((1u64..5000).prop_map(Duration::from_millis))
}

fn config() -> impl Strategy<Value = SessionConfig> {
    (
        prop_oneof![Just(Protocol::Framed), Just(Protocol::Raw)],
        prop_oneof![0u32..64, 0u32..20_000],
        any::<bool>(),
        (1u64..5000).prop_map(Duration::from_millis),
        timeout(),
        timeout(),
        1usize..100_000,
        work_mode(),
    )
        .prop_map(
            |(
                protocol,
                max_frame,
                auth,
                handshake_timeout,
                idle_timeout,
                frame_timeout,
                high_water,
                work,
            )| {
                SessionConfig {
                    protocol,
                    max_frame: FrameLimit::new(max_frame).expect("fuzzed limits are below 2^31"),
                    auth_key: auth.then(|| {
                        Arc::new(
                            AuthKey::new(b"fuzzing-key-of-32-bytes-exactly!".to_vec())
                                .expect("key long enough"),
                        )
                    }),
                    handshake_timeout,
                    idle_timeout,
                    frame_timeout,
                    high_water,
                    work,
                }
            },
        )
}

/// A config and what happens to the connection; one case in four, a peer that never
/// reads (no `Write` at all), so only backpressure can bound the session.
fn config_and_ops() -> impl Strategy<Value = (SessionConfig, Vec<Op>)> {
    (config(), prop::bool::weighted(0.25)).prop_flat_map(|(config, never_reads)| {
        let ops = prop::collection::vec(op(config.max_frame.get()), 0..80).prop_map(move |ops| {
            ops.into_iter()
                .filter(|op| !(never_reads && matches!(op, Op::Write(_))))
                .collect()
        });
        (Just(config), ops)
    })
}

/// The most a session may hold, from its limits alone: the output it may owe (below
/// the high-water mark when input was taken, plus what one chunk of input can complete:
/// the held frame, the chunk, a notice), the frame it is assembling, and the buffers it
/// keeps after use; doubled for `Vec` growth. Independent of how much input came.
fn memory_bound(config: &SessionConfig, chunk: usize) -> usize {
    let frame = config.max_frame.get() as usize + HEADER_LEN;
    let owed = config.high_water + frame + chunk + HEADER_LEN + MAX_NOTICE_LEN + NONCE_LEN;
    2 * (owed + frame) + 2 * RETAINED
}

/// A framed session (4 KiB frames, the given high-water mark and work) and the wire
/// bytes of `payloads` as frames, for the tests that feed one to the other.
fn echo_session(
    high_water: usize,
    work: WorkMode,
    payloads: &[Vec<u8>],
    now: Instant,
) -> (Session, Vec<u8>) {
    let config = SessionConfig {
        max_frame: FrameLimit::new(4096).expect("below 2^31"),
        high_water,
        work,
        ..SessionConfig::default()
    };
    let mut wire = Vec::new();
    for payload in payloads {
        encode_frame(payload, &mut wire).expect("small frames");
    }
    (Session::new(&config, now, [0; NONCE_LEN]), wire)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_input_any_chunking_never_panics_and_stays_bounded((config, ops) in config_and_ops()) {
        let mut now = Instant::now();
        let mut session = Session::new(&config, now, [7; NONCE_LEN]);
        let bound = memory_bound(&config, LARGEST_FILL);
        let mut fed = 0usize;
        let mut fill = Vec::new();
        let mut job: Option<Job> = None;
        for op in &ops {
            let closing = session.close_reason().is_some();
            let owed = session.output().len();
            match op {
                Op::Bytes(bytes) if session.wants_read() => session.handle_input(bytes, now),
                Op::Header(len) if session.wants_read() => {
                    session.handle_input(&len.to_be_bytes(), now)
                }
                Op::Fill(byte, len) if session.wants_read() => {
                    fill.clear();
                    fill.resize(*len, *byte);
                    session.handle_input(&fill, now);
                }
                Op::Bytes(_) | Op::Header(_) | Op::Fill(..) => {}
                Op::Write(n) => {
                    let n = (*n).min(session.output().len());
                    session.consume_output(n, now);
                }
                Op::Advance(by) => {
                    now += *by;
                    session.handle_timeout(now);
                }
                Op::Eof => session.handle_eof(now),
                Op::Shutdown => session.begin_shutdown(now),
                Op::TakeJob => {
                    if job.is_none() {
                        job = session.take_job();
                    }
                }
                Op::CompleteJob => {
                    if let Some(done) = job.take() {
                        session.complete_job(done, now);
                    }
                }
                Op::Abandon => session.abandon(),
            }
            fed += match op {
                Op::Bytes(b) => b.len(),
                Op::Fill(_, n) => *n,
                Op::Header(_) => HEADER_LEN,
                _ => 0,
            };
            prop_assert!(
                session.buffered_capacity() <= bound,
                "holds {} bytes, bound {bound}, after {fed} bytes of input; op {op:?}",
                session.buffered_capacity()
            );
            // A job completed while closing queues the reply of a frame received before.
            if closing && !matches!(op, Op::CompleteJob) {
                prop_assert!(
                    session.output().len() <= owed,
                    "output grew from {owed} to {} after the session started closing",
                    session.output().len()
                );
            }
            if session.is_closed() {
                prop_assert!(!session.wants_read());
                prop_assert!(job.is_none(), "closed while a worker holds its job");
            }
            if job.is_some() {
                prop_assert!(!session.wants_job() && session.take_job().is_none());
            }
        }
    }

    #[test]
    fn frames_come_back_exactly_whatever_the_chunking_and_partial_writes(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..12),
        cuts in prop::collection::vec(0usize..5000, 1..40),
        writes in prop::collection::vec(1usize..5000, 1..40),
        high_water in 1usize..10_000,
    ) {
        let now = Instant::now();
        let (mut session, wire) = echo_session(high_water, WorkMode::None, &payloads, now);
        let mut chunks = Vec::new();
        let mut rest = &wire[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((cut % 700 + 1).min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        let mut echoed = Vec::new();
        let mut next_chunk = 0;
        let mut next_write = 0;
        // Like a driver: read while the session wants input, otherwise write.
        for _ in 0..100_000 {
            if next_chunk < chunks.len() && session.wants_read() {
                session.handle_input(chunks[next_chunk], now);
                next_chunk += 1;
            } else if session.wants_write() {
                let n = writes[next_write % writes.len()].min(session.output().len());
                next_write += 1;
                echoed.extend_from_slice(&session.output()[..n]);
                session.consume_output(n, now);
            } else {
                break;
            }
        }
        prop_assert_eq!(next_chunk, chunks.len(), "input left unread");
        prop_assert!(echoed == wire, "the echo differs from the input");
        prop_assert_eq!(session.stats().frames, payloads.len() as u64);
    }

    /// The owned-buffer path (io_uring): a taken buffer is in the kernel's hands while
    /// more input arrives, and its send may complete short. The echo must still come
    /// back whole and in order, and backpressure must hold with bytes in flight.
    #[test]
    fn owned_transmits_keep_order_across_short_sends_and_input_in_flight(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..12),
        cuts in prop::collection::vec(0usize..5000, 1..40),
        sends in prop::collection::vec(0usize..5000, 1..40),
        high_water in 1usize..10_000,
    ) {
        let now = Instant::now();
        let (mut session, wire) = echo_session(high_water, WorkMode::None, &payloads, now);
        let mut chunks = wire.chunks(cuts[0] % 700 + 1);
        let mut in_flight: Option<Vec<u8>> = None;
        let mut echoed = Vec::new();
        let mut next_send = 0;
        for turn in 0..100_000 {
            // Alternate: feed input while a buffer may be in flight, then complete it.
            let fed = turn % 2 == 0 && session.wants_read() && {
                match chunks.next() {
                    Some(chunk) => { session.handle_input(chunk, now); true }
                    None => false,
                }
            };
            if fed {
                continue;
            }
            if let Some(buf) = in_flight.take() {
                let sent = sends[next_send % sends.len()].min(buf.len());
                next_send += 1;
                echoed.extend_from_slice(&buf[..sent]);
                session.complete_transmit(buf, sent, now);
            } else if let Some(buf) = session.take_transmit() {
                prop_assert!(session.take_transmit().is_none(), "two buffers in flight");
                prop_assert!(!buf.is_empty());
                in_flight = Some(buf);
            } else if session.wants_read() && chunks.len() > 0 {
                continue;
            } else {
                break;
            }
        }
        prop_assert!(in_flight.is_none());
        prop_assert_eq!(chunks.len(), 0, "input left unread");
        prop_assert!(echoed == wire, "the echo differs from the input");
        prop_assert_eq!(session.stats().bytes_out, wire.len() as u64);
    }

    /// Offloaded work: jobs taken and completed at random points between reads and
    /// partial writes, and the peer's FIN, a shutdown, a failed socket (abandon) or
    /// nothing at a random point — work outstanding or not. Every frame received whole
    /// comes back, in order, once (then the shutdown's notice; after an abandon, a
    /// prefix of them); input is read only while what the session owes is below the
    /// high-water mark; the session is never closed while a job is out; inline work sees
    /// each payload once.
    #[test]
    fn worked_frames_come_back_in_order_whatever_the_timing(
        // Few large frames, or many small ones that one read completes by the dozen.
        payloads in prop_oneof![
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 0..12),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..200),
        ],
        chunk in 1usize..700,
        steps in prop::collection::vec(0u8..4, 1..200),
        writes in prop::collection::vec(1usize..5000, 1..40),
        high_water in 1usize..10_000,
        (end, end_at) in (0u8..4, 0usize..60),
        inline in any::<bool>(),
    ) {
        let now = Instant::now();
        let counter = Arc::new(Counter::default());
        let work = if inline { WorkMode::Inline(counter.clone()) } else { WorkMode::Offload };
        let (mut session, wire) = echo_session(high_water, work, &payloads, now);
        let largest = payloads.iter().map(Vec::len).max().unwrap_or(0);
        let mut chunks = wire.chunks(chunk);
        let mut job: Option<Job> = None;
        let mut echoed = Vec::new();
        let mut fed = 0;
        // Frames received whole when the end came (all of them if it never does).
        let mut whole = payloads.len();
        let mut ended = false;
        let mut next_write = 0;
        for turn in 0..100_000 {
            let can_progress = session.wants_job()
                || job.is_some()
                || session.wants_write()
                || (session.wants_read() && chunks.len() > 0);
            let stuck = !can_progress;
            if !ended && (turn == end_at || stuck) {
                ended = true;
                let mut offset = 0;
                whole = payloads
                    .iter()
                    .take_while(|p| { offset += HEADER_LEN + p.len(); offset <= fed })
                    .count();
                match end {
                    0 => session.handle_eof(now),
                    1 => session.begin_shutdown(now),
                    2 => whole = payloads.len(),
                    _ => session.abandon(),
                }
                continue;
            }
            prop_assert!(job.is_none() || !session.is_closed(), "closed under a worker");
            let progressed = match steps[turn % steps.len()] {
                0 if session.wants_read() && chunks.len() > 0 => {
                    // Received and not yet answered: owed output (below the mark) and
                    // at most one partial frame. Checked while open: a draining
                    // session reads and discards.
                    let owed = fed.saturating_sub(echoed.len());
                    prop_assert!(
                        ended || owed < high_water + HEADER_LEN + largest,
                        "reading with {owed} bytes owed, high-water mark {high_water}"
                    );
                    let bytes = chunks.next().unwrap_or_default();
                    session.handle_input(bytes, now);
                    fed += bytes.len();
                    true
                }
                1 if job.is_none() => {
                    job = session.take_job();
                    job.is_some()
                }
                2 => match job.take() {
                    Some(done) => { session.complete_job(done, now); true }
                    None => false,
                },
                3 if session.wants_write() => {
                    let n = writes[next_write % writes.len()].min(session.output().len());
                    next_write += 1;
                    echoed.extend_from_slice(&session.output()[..n]);
                    session.consume_output(n, now);
                    true
                }
                _ => false,
            };
            if progressed {
                continue;
            }
            // This turn's kind of step could not run: make whatever progress can be made.
            if let Some(done) = job.take() {
                session.complete_job(done, now);
            } else if let Some(taken) = session.take_job() {
                job = Some(taken);
            } else if session.wants_write() {
                let n = session.output().len();
                echoed.extend_from_slice(session.output());
                session.consume_output(n, now);
            } else if session.wants_read() && chunks.len() > 0 {
                let bytes = chunks.next().unwrap_or_default();
                session.handle_input(bytes, now);
                fed += bytes.len();
            } else if ended {
                break;
            }
        }
        prop_assert!(job.is_none() && !session.wants_job(), "work left undone");
        let mut decoder = ReplyDecoder::new(4096);
        decoder.feed(&echoed);
        let mut got = Vec::new();
        while let Ok(Some(reply)) = decoder.next_reply() {
            got.push(reply);
        }
        let mut expected: Vec<Reply> =
            payloads[..whole].iter().cloned().map(Reply::Frame).collect();
        if end == 1 {
            expected.push(Reply::Notice("server shutting down".into()));
        }
        if end == 3 {
            // Abandoned: what was written before is all the peer gets.
            prop_assert!(session.is_closed());
            prop_assert!(got.len() <= expected.len() && got[..] == expected[..got.len()]);
            return Ok(());
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(decoder.buffered(), 0);
        prop_assert_eq!(session.stats().frames, whole as u64);
        match end {
            0 => prop_assert!(session.is_closed()),
            1 => prop_assert!(session.is_write_finished()),
            _ => {
                prop_assert!(session.close_reason().is_none());
                prop_assert_eq!(chunks.len(), 0, "input left unread");
            }
        }
        let worked = counter.0.load(Ordering::Relaxed);
        prop_assert_eq!(worked, if inline { whole as u64 } else { 0 });
    }

    #[test]
    fn reply_decoder_takes_any_bytes_without_panic_or_unbounded_buffer(
        max_frame in 0u32..5000,
        chunks in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                any::<u32>().prop_map(|h| h.to_be_bytes().to_vec()),
            ],
            0..60,
        ),
    ) {
        let mut decoder = ReplyDecoder::new(max_frame);
        'feed: for chunk in &chunks {
            decoder.feed(chunk);
            loop {
                match decoder.next_reply() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    // A stream the client refuses to parse further.
                    Err(_) => break 'feed,
                }
            }
            // What is buffered is at most one incomplete reply plus the last chunk.
            let largest = (max_frame as usize).max(MAX_NOTICE_LEN) + HEADER_LEN;
            prop_assert!(decoder.buffered() <= largest + chunk.len());
        }
    }
}
