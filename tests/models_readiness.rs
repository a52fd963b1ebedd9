//! Tests specific to the readiness-loop models (`poll`, `mio`): many clients on one
//! thread, fairness under a streaming client, and running out of descriptors without
//! spinning. Each runs the real `echolab serve` binary, as the conformance suite does.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

const MODELS: [&str; 2] = ["poll", "mio"];

/// Raises the soft descriptor limit towards `wanted` (never past the hard limit);
/// returns the soft limit now in force.
fn raise_nofile(wanted: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= wanted {
        return soft;
    }
    let target = wanted.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).expect("setrlimit");
    target
}

fn distinct_payload(i: usize) -> Vec<u8> {
    let mut payload = format!("client-{i}:").into_bytes();
    payload.extend(pattern(16 + i % 97, i as u8));
    payload
}

#[test]
fn thousand_concurrent_round_trips() {
    // The test process and the server (which inherits the limit) each need a
    // descriptor per connection, plus a margin.
    let limit = raise_nofile(2048);
    let count = if limit >= 1100 { 1000 } else { 900 };
    for model in MODELS {
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
}

#[test]
fn small_round_trips_complete_while_another_client_streams() {
    const STREAM: usize = 64 << 20;
    const CHUNK: usize = 1 << 20;
    for model in MODELS {
        let server = ServerGuard::start(model, &["--protocol", "raw"]);

        // The streaming client: one thread writes 64 MiB, another reads the echo back.
        let streamer = server.connect();
        let received = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let mut stream = streamer.try_clone().expect("clone");
            std::thread::spawn(move || {
                let chunk = pattern(CHUNK, 9);
                for _ in 0..STREAM / CHUNK {
                    stream.write_all(&chunk)?;
                }
                Ok::<(), std::io::Error>(())
            })
        };
        let reader = {
            let mut stream = streamer.try_clone().expect("clone");
            let received = Arc::clone(&received);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0usize;
                while total < STREAM {
                    let n = stream.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    total += n;
                    received.store(total as u64, Ordering::Relaxed);
                }
                done.store(true, Ordering::Relaxed);
                Ok::<usize, std::io::Error>(total)
            })
        };

        // Wait until the stream is flowing (bounded).
        let wait = Instant::now();
        while received.load(Ordering::Relaxed) < CHUNK as u64
            && wait.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            received.load(Ordering::Relaxed) >= CHUNK as u64,
            "{model}: the stream did not start"
        );

        let mut small = server.connect();
        let started = Instant::now();
        let mut during_stream = 0;
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
            if !done.load(Ordering::Relaxed) {
                during_stream += 1;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(20));

        writer
            .join()
            .expect("writer thread")
            .expect("stream written");
        let total = reader.join().expect("reader thread").expect("stream read");
        assert_eq!(total, STREAM, "{model}: stream echo incomplete");
        eprintln!(
            "{model}: 50 round trips (slowest {slowest:?}), {during_stream} while 64 MiB streamed"
        );
        assert!(
            during_stream > 0,
            "{model}: the stream ended before any round trip"
        );
    }
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

#[test]
fn out_of_descriptors_backs_off_without_spinning_then_recovers() {
    let have_prlimit = Command::new("which")
        .arg("prlimit")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_prlimit {
        eprintln!("prlimit (util-linux) not found: skipping");
        return;
    }
    let hz = clock_ticks_per_second();
    for model in MODELS {
        let mut command = Command::new("prlimit");
        command.args(["--nofile=32:32", "--", env!("CARGO_BIN_EXE_echolab")]);
        command.args(["serve", model, "--addr", "127.0.0.1:0"]);
        let mut server = ServerGuard::spawn(model, command);

        // More connections than the server has descriptors: the rest wait in the
        // backlog and every accept for them fails with EMFILE.
        let clients: Vec<TcpStream> = (0..40).map(|_| server.connect()).collect();
        std::thread::sleep(Duration::from_millis(300));

        let before = cpu_ticks(server.pid());
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let ticks = cpu_ticks(server.pid()) - before;
        let share = ticks as f64 / hz as f64 / t.elapsed().as_secs_f64();
        eprintln!(
            "{model}: {ticks} ticks in {:?} while out of descriptors",
            t.elapsed()
        );
        assert!(
            share < 0.20,
            "{model}: {:.0}% of a core while out of descriptors",
            share * 100.0
        );

        drop(clients);
        let t = Instant::now();
        let mut stream = server.connect();
        stream
            .write_all(&frames(&[b"after emfile"]))
            .expect("write");
        let replies = read_replies(&mut stream, 1);
        assert_eq!(expect_frame(&replies[0]), b"after emfile");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{model}: new client served only after {:?}",
            t.elapsed()
        );
        drop(stream);

        let (status, _, stats) = server.terminate(Duration::from_secs(10));
        assert!(status.success(), "{model}: exit {status:?}");
        let stats = stats.expect("stats line");
        let accept_errors = stats["errors"]["accept"].as_u64().unwrap_or(0);
        assert!(
            accept_errors > 0,
            "{model}: no accept errors recorded: {stats}"
        );
    }
}
