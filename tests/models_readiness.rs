//! Tests specific to the models that multiplex connections on event loops (one loop, or
//! several), chosen by that property: many clients on one thread and fairness under a
//! streaming client; and with several loops, each loop's accepts counted. (Running out of descriptors without spinning is a case of the fault
//! suite, `tests/faults.rs`, for every model.) Each runs the real `echolab serve`
//! binary, as the conformance suite does.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab_registry::{Model, Runs};
use support::suite::{self, case_where, Case};
use support::*;

const CASES: &[Case] = &[
    case_where(
        "thousand_concurrent_round_trips",
        multiplexes,
        thousand_concurrent_round_trips,
    ),
    // Asserts a latency bound while 64 MiB streams: alone, so that no neighbour takes
    // the CPU it measures.
    case_where(
        "small_round_trips_complete_while_another_client_streams",
        multiplexes,
        small_round_trips_complete_while_another_client_streams,
    )
    .alone(),
    // Only several loops, each with its own listener, split the connections between
    // them.
    case_where(
        "loops_each_accept_their_share",
        |model| model.runs == Runs::SeveralLoops,
        loops_each_accept_their_share,
    ),
];

fn main() {
    suite::run_over_models(CASES)
}

/// Whether `model` serves its connections from event loops, many to a thread.
fn multiplexes(model: &Model) -> bool {
    matches!(model.runs, Runs::EventLoop | Runs::SeveralLoops)
}

fn distinct_payload(i: usize) -> Vec<u8> {
    let mut payload = format!("client-{i}:").into_bytes();
    payload.extend(pattern(16 + i % 97, i as u8));
    payload
}

fn thousand_concurrent_round_trips(model: &Model) {
    // The test process and the server (which inherits the limit) each need a
    // descriptor per connection, plus a margin; a model with a limit of its own below
    // that (select's FD_SETSIZE) gets as many as it takes.
    let limit = proc::raise_nofile(2048);
    let count = if limit >= 1100 { 1000 } else { 900 };
    let count = count.min(model.natural_limit.unwrap_or(usize::MAX));
    let model = model.name;
    let server = ServerGuard::start(model, &[]);
    let started = Instant::now();
    let mut streams: Vec<TcpStream> = (0..count).map(|_| server.connect()).collect();
    // Every connection is open before any sends: all are concurrent in the server.
    for (i, stream) in streams.iter_mut().enumerate() {
        stream
            .write_all(&frames(&[&distinct_payload(i)]))
            .unwrap_or_else(|e| panic!("{model}: write on connection {i}: {e}"));
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        let replies = read_replies(stream, 1);
        assert_eq!(
            expect_frame(&replies[0]),
            distinct_payload(i).as_slice(),
            "{model}: connection {i} got someone else's reply"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{model}: {count} round trips took {:?}",
        started.elapsed()
    );
    drop(streams);
}

fn small_round_trips_complete_while_another_client_streams(model: &Model) {
    const CHUNK: usize = 1 << 20;
    // The stream lasts until the round trips are over: it cannot end before them. Its
    // bounds only stop a broken run: this many chunks (4 GiB), or this long.
    const MAX_CHUNKS: usize = 4096;
    const MAX_STREAM_TIME: Duration = Duration::from_secs(60);
    let model = model.name;
    let server = ServerGuard::start(model, &["--protocol", "raw"]);

    // The streaming client: one thread writes until told to stop, another reads the
    // echo back.
    let streamer = server.connect();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut stream = streamer.try_clone().expect("clone");
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let chunk = pattern(CHUNK, 9);
            let started = Instant::now();
            let mut written = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if written / CHUNK >= MAX_CHUNKS || started.elapsed() >= MAX_STREAM_TIME {
                    return Err(std::io::Error::other(format!(
                        "the stream hit its bound ({written} bytes) before the round trips \
                         were over"
                    )));
                }
                stream.write_all(&chunk)?;
                written += CHUNK;
            }
            // Our FIN: the server echoes what it has and closes.
            stream.shutdown(std::net::Shutdown::Write)?;
            Ok::<usize, std::io::Error>(written)
        })
    };
    let reader = {
        let mut stream = streamer.try_clone().expect("clone");
        let received = Arc::clone(&received);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0usize;
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                total += n;
                received.store(total as u64, Ordering::Relaxed);
            }
            Ok::<usize, std::io::Error>(total)
        })
    };

    // Wait until the stream is flowing (bounded).
    let flowing = proc::wait_until(Duration::from_secs(10), || {
        received.load(Ordering::Relaxed) >= CHUNK as u64
    });
    assert!(flowing, "{model}: the stream did not start");

    let mut small = server.connect();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..50u8 {
        let payload = pattern(64, i);
        let t = Instant::now();
        small.write_all(&payload).expect("write 64 bytes");
        let echoed = read_exactly(&mut small, 64);
        let took = t.elapsed();
        assert_eq!(echoed, payload, "{model}: round trip {i}");
        assert!(
            took < Duration::from_secs(1),
            "{model}: round trip {i} took {took:?} while another client streamed"
        );
        slowest = slowest.max(took);
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    stop.store(true, Ordering::Relaxed);

    let written = writer
        .join()
        .expect("writer thread")
        .unwrap_or_else(|e| panic!("{model}: stream: {e}"));
    let total = reader.join().expect("reader thread").expect("stream read");
    assert_eq!(total, written, "{model}: stream echo incomplete");
    eprintln!(
        "{model}: 50 round trips (slowest {slowest:?}) while {} MiB streamed",
        written >> 20
    );
}

fn loops_each_accept_their_share(model: &Model) {
    let mut server = ServerGuard::start(model.name, &["--workers", "2"]);
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        threads, 2,
        "{}: loop 0 on the main thread, loop 1 on its own",
        model.name
    );
    let mut clients: Vec<_> = (0..100).map(|_| server.client()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let payload = distinct_payload(i);
        assert!(
            client.echo(&payload).expect("echo") == payload,
            "client {i}"
        );
    }
    drop(clients);
    let (status, _, stats) = server.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    let stats = stats.expect("JSON stats line on exit");
    let per_loop = stats.stats.accepted_per_worker.clone();
    eprintln!("{}: 100 connections over 2 loops: {per_loop:?}", model.name);
    assert_eq!(per_loop.len(), 2, "{stats:?}");
    assert_eq!(per_loop.iter().sum::<u64>(), 100, "{stats:?}");
    // A coin toss per connection: one loop with none has odds of 2 in 2^100.
    assert!(per_loop.iter().all(|&n| n > 0), "{stats:?}");
}
