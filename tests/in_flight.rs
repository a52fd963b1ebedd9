//! Connections closed with I/O still in flight, against every one-thread event loop
//! (`Runs::EventLoop`: the readiness loops and `uring`). For a completion model this is
//! where buffer lifetimes bite: a send the kernel is still reading from, a receive the
//! kernel may still fill, on a connection the loop has decided to close. It must cancel
//! them and close the descriptor and free the buffers only once their completions are
//! in. For a readiness model the same clients exercise closing with bytes in both
//! socket buffers.
//!
//! What is asserted, per model, through the real `echolab serve` binary:
//! - nothing is echoed twice or out of order: every byte a client got back is exactly
//!   a prefix of what it sent (each client sends a position-numbered stream of its own,
//!   so a repeated, dropped or foreign chunk shows);
//! - nothing leaks: the server's descriptors (`/proc/PID/fd`) return to the baseline,
//!   and the stats line's `kernel_held` (what a completion model still had lent the
//!   kernel when it stopped: provided buffers, requests) is all zero;
//! - the server still serves, and stops cleanly on SIGTERM with a stuck client.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use echolab_registry::{Model, Runs};
use support::suite::{self, case_where, Case};
use support::*;

const CASES: &[Case] = &[case_where(
    "closed_with_io_in_flight_leaks_nothing_echoes_once",
    runs_one_loop,
    closed_with_io_in_flight_leaks_nothing_echoes_once,
)];

fn main() {
    suite::run_over_models(CASES)
}

fn runs_one_loop(model: &Model) -> bool {
    model.runs == Runs::EventLoop
}

/// `len` bytes of big-endian 32-bit words counting up from `seed << 24`: no two
/// positions of one stream, and no two streams, carry the same word.
fn numbered(len: usize, seed: u8) -> Vec<u8> {
    (0..len.div_ceil(4) as u32)
        .flat_map(|i| (i | (u32::from(seed) << 24)).to_be_bytes())
        .take(len)
        .collect()
}

/// A client's view of one conversation: what it sent, what came back.
struct Outcome {
    what: &'static str,
    sent: Vec<u8>,
    got: Vec<u8>,
}

impl Outcome {
    /// The conversation once its writer thread has ended.
    fn after(what: &'static str, writer: JoinHandle<()>, sent: Vec<u8>, got: Vec<u8>) -> Outcome {
        let _ = writer.join();
        Outcome { what, sent, got }
    }
}

/// Reads until the server closes or resets, or `limit` passes.
fn read_all(stream: &mut TcpStream, got: &mut Vec<u8>, limit: Duration) {
    let until = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    while Instant::now() < until {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// Writes `data` from a thread with a write timeout; the thread ends when all is
/// written, the timeout passes with the server not reading, or the connection breaks.
fn write_until_stuck(stream: &TcpStream, data: Vec<u8>) -> JoinHandle<()> {
    let mut writer = stream.try_clone().expect("clone");
    writer
        .set_write_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    std::thread::spawn(move || {
        let _ = writer.write_all(&data);
    })
}

fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(stream);
}

/// Sends 2 MiB without reading (the server's send stalls on a full socket, and its
/// receive stops at the high-water mark), reads a little, then resets.
fn reset_mid_stream(server: &ServerGuard, seed: u8) -> Outcome {
    let sent = numbered(2 << 20, seed);
    let mut stream = server.connect();
    let writer = write_until_stuck(&stream, sent.clone());
    std::thread::sleep(Duration::from_millis(300));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 10_000];
    if let Ok(n) = stream.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
    }
    reset(stream);
    Outcome::after("reset mid-stream", writer, sent, got)
}

/// Sends 1 MiB while reading about half of the echo, then closes with the rest unread.
fn close_half_read(server: &ServerGuard, seed: u8) -> Outcome {
    let sent = numbered(1 << 20, seed);
    let mut stream = server.connect();
    let writer = write_until_stuck(&stream, sent.clone());
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < sent.len() / 2 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    drop(stream);
    Outcome::after("closed half-read", writer, sent, got)
}

/// Sends 4 MiB and reads nothing until the server gives up on it (`--idle-timeout`:
/// nothing moves, so it closes, waits out its linger with a send stalled in the
/// kernel, and abandons it), then reads what arrived.
fn abandoned_by_the_server(server: &ServerGuard, seed: u8) -> JoinHandle<Outcome> {
    let sent = numbered(4 << 20, seed);
    let mut stream = server.connect();
    std::thread::spawn(move || {
        let writer = write_until_stuck(&stream, sent.clone());
        std::thread::sleep(Duration::from_secs(4));
        let mut got = Vec::new();
        read_all(&mut stream, &mut got, Duration::from_secs(5));
        Outcome::after("abandoned by the server", writer, sent, got)
    })
}

/// Small writes echoed as they go, then a reset with a write just sent.
fn reset_after_a_write(server: &ServerGuard, seed: u8) -> Outcome {
    let sent = numbered(64 * 1024, seed);
    let mut stream = server.connect();
    let mut got = Vec::new();
    for chunk in sent[..32 * 1024].chunks(1000) {
        stream.write_all(chunk).expect("write");
        let mut echo = vec![0u8; chunk.len()];
        stream.read_exact(&mut echo).expect("echo");
        got.extend_from_slice(&echo);
    }
    let _ = stream.write_all(&sent[32 * 1024..]);
    reset(stream);
    Outcome {
        what: "reset after a write",
        sent,
        got,
    }
}

fn assert_prefix(model: &Model, i: usize, outcome: &Outcome) {
    let Outcome { what, sent, got } = outcome;
    assert!(
        got.len() <= sent.len(),
        "{}: client {i} ({what}) got {} bytes back, sent {}",
        model.name,
        got.len(),
        sent.len()
    );
    if let Some(at) = got.iter().zip(sent).position(|(g, s)| g != s) {
        panic!(
            "{}: client {i} ({what}): byte {at} of {} echoed differs from what was sent \
             there (a repeated, lost or foreign chunk)",
            model.name,
            got.len()
        );
    }
}

fn closed_with_io_in_flight_leaks_nothing_echoes_once(model: &Model) {
    let mut server = ServerGuard::start(model.name, &["--protocol", "raw", "--idle-timeout", "1"]);
    let pid = server.pid();
    let mut first = server.connect();
    first.write_all(b"first").expect("write");
    assert_eq!(read_exactly(&mut first, 5), b"first");
    drop(first);
    // Let the server close the first client's socket before taking the baseline.
    std::thread::sleep(Duration::from_millis(300));
    let baseline = proc::fd_count(pid);

    let mut outcomes = Vec::new();
    for round in 0..3u8 {
        let abandoned = abandoned_by_the_server(&server, round * 4 + 1);
        outcomes.push(reset_mid_stream(&server, round * 4 + 2));
        outcomes.push(close_half_read(&server, round * 4 + 3));
        outcomes.push(reset_after_a_write(&server, round * 4 + 4));
        outcomes.push(abandoned.join().expect("abandoned client"));
    }
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_prefix(model, i, outcome);
    }
    let abandoned_got: usize = outcomes
        .iter()
        .filter(|o| o.what == "abandoned by the server")
        .map(|o| o.got.len())
        .sum();
    assert!(
        abandoned_got > 0,
        "{}: the abandoned clients got no echo at all",
        model.name
    );

    let settled = proc::wait_until(Duration::from_secs(5), || proc::fd_count(pid) <= baseline);
    assert!(
        settled,
        "{}: {} descriptors after every client left, baseline {baseline}",
        model.name,
        proc::fd_count(pid)
    );
    let mut next = server.connect();
    next.write_all(b"next").expect("write");
    assert_eq!(read_exactly(&mut next, 4), b"next", "{}", model.name);
    drop(next);

    // Shutdown with a client stuck mid-echo: the server gives up on it after its
    // shutdown linger, cancelling what it has in flight, and exits cleanly.
    let stuck = server.connect();
    let writer = write_until_stuck(&stuck, numbered(4 << 20, 99));
    std::thread::sleep(Duration::from_millis(300));
    let (status, elapsed, stats) = server.terminate(Duration::from_secs(8));
    assert!(status.success(), "{}: exit {status}", model.name);
    assert!(
        elapsed < Duration::from_secs(6),
        "{}: {elapsed:?}",
        model.name
    );
    drop(stuck);
    let _ = writer.join();
    let stats = stats.expect("stats line");
    let held = &stats.stats.kernel_held;
    for (name, count) in held {
        assert_eq!(
            *count, 0,
            "{}: the kernel still held {count} {name} at exit: {stats:?}",
            model.name
        );
    }
    eprintln!(
        "{}: {} clients, fds back to {baseline}, kernel_held {held:?}",
        model.name,
        outcomes.len(),
    );
}
