//! `echolab soak` through the real binary: it passes against every registered model
//! (a short soak each, several at once) with every reply verified and the server's
//! memory and descriptors reported, and it fails — non-zero exit, one clear line —
//! against a server that corrupts a byte or leaks a descriptor per connection (tiny
//! servers written here, so the checker is proven to catch what it claims to). Run one
//! model with `cargo test --test soak -- mio::`.

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use echolab_registry::Model;
use support::suite::{self, case, test, Case, Test};
use support::IO_TIMEOUT;

const CASES: &[Case] = &[case("soak_passes", soak_passes)];

const TESTS: &[Test] = &[
    test(
        "soak_passes_against_the_honest_test_server",
        soak_passes_against_the_honest_test_server,
    ),
    test("soak_detects_a_flipped_bit", soak_detects_a_flipped_bit),
    // It samples this very process tree, so no other trial may start or stop processes
    // (or open sockets) meanwhile.
    test(
        "soak_detects_a_leaked_descriptor",
        soak_detects_a_leaked_descriptor,
    )
    .alone(),
    test(
        "soak_against_nothing_fails_in_one_line",
        soak_against_nothing_fails_in_one_line,
    ),
];

fn main() {
    suite::run_timed(CASES, TESTS)
}

/// How long each model is soaked: long enough for churn (many connection lives per
/// slot) and a memory sample after the warm-up; `echolab soak` itself, or `.ci/run`
/// with `SOAK_SECS`, soaks for longer.
const MODEL_SOAK_SECS: f64 = 2.0;

fn soak(args: &[&str]) -> (Output, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_echolab"))
        .args(["soak", "--json", "--timeout", "5"])
        .args(args)
        .output()
        .expect("run echolab soak");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON object ({e}); stdout {:?} stderr {:?}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

/// A short, seeded soak of one of this file's test servers (no pid: no /proc samples).
fn soak_test_server(server: &TestServer) -> (Output, serde_json::Value) {
    let addr = server.addr.to_string();
    soak(&[
        "--addr",
        &addr,
        "--duration",
        "2",
        "--conns",
        "4",
        "--seed",
        "5",
    ])
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn soak_passes(model: &Model) {
    let duration = MODEL_SOAK_SECS.to_string();
    let warmup = (MODEL_SOAK_SECS / 4.0).to_string();
    let model = model.name;
    let (output, report) = soak(&[
        "--model",
        model,
        "--duration",
        &duration,
        "--warmup",
        &warmup,
        "--conns",
        "8",
        "--seed",
        "1234",
    ]);
    assert!(
        output.status.success(),
        "{model}: {}\n{report}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("seed 1234"), "the seed is printed");
    assert_eq!(report["model"], model);
    assert_eq!(report["seed"], 1234);
    assert_eq!(report["passed"], true);
    assert_eq!(report["mismatches"], 0, "{report}");
    assert_eq!(report["checksum_mismatches"], 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    let messages = report["messages"].as_u64().expect("messages");
    assert!(messages > 100, "{report}");
    // Churn: far more connections than slots over the run.
    assert!(
        report["connections"].as_u64().expect("connections") > 8,
        "{report}"
    );
    let sent = report["bytes_sent"].as_u64().expect("bytes_sent");
    assert!(sent > 0);
    assert_eq!(report["bytes_received"].as_u64(), Some(sent));
    // The server agrees: it echoed exactly the frames the soak verified, plus the one
    // echo that precedes the descriptor baseline.
    assert_eq!(
        report["server"]["frames"].as_u64(),
        Some(messages + 1),
        "{report}"
    );
    let connections = report["connections"].as_u64().expect("connections");
    assert_eq!(report["server"]["accepted"].as_u64(), Some(connections + 1));
    for field in [
        "rss_start_kb",
        "rss_end_kb",
        "rss_max_kb",
        "fds_start",
        "fds_end",
    ] {
        assert!(
            report[field].as_u64().is_some_and(|v| v > 0),
            "{field}: {report}"
        );
    }
    let rss_drift = report["rss_end_kb"].as_i64().expect("rss_end_kb")
        - report["rss_start_kb"].as_i64().expect("rss_start_kb");
    assert_eq!(report["rss_drift_kb"].as_i64(), Some(rss_drift));
    assert_eq!(report["fd_drift"], 0, "{report}");
    assert!(
        report["seconds"]
            .as_f64()
            .is_some_and(|s| (MODEL_SOAK_SECS..MODEL_SOAK_SECS + 7.0).contains(&s)),
        "{report}"
    );
}

/// What the tiny test server does wrong, if anything.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// Flips one payload bit in every 50th non-empty frame.
    FlipBit,
    /// Opens `/dev/null` for every connection and never closes it.
    LeakDescriptor,
}

/// A framed echo server, thread per connection, in this process, stopped on drop.
struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(fault: Fault) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let leaked = Arc::new(Mutex::new(Vec::<File>::new()));
        let acceptor = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if fault == Fault::LeakDescriptor {
                                let file = File::open("/dev/null").expect("open /dev/null");
                                leaked.lock().expect("leak list").push(file);
                            }
                            let frames = frames.clone();
                            std::thread::spawn(move || echo_frames(stream, fault, &frames));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        TestServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn echo_frames(mut stream: TcpStream, fault: Fault, frames: &AtomicU64) {
    stream.set_nonblocking(false).expect("blocking");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut header = [0u8; 4];
    while stream.read_exact(&mut header).is_ok() {
        let len = u32::from_be_bytes(header) as usize;
        assert!(len <= 1 << 20, "the soak sends frames within the limit");
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).is_err() {
            return;
        }
        if fault == Fault::FlipBit && len > 0 && frames.fetch_add(1, Ordering::Relaxed) % 50 == 49 {
            payload[len / 2] ^= 0x04;
        }
        if stream
            .write_all(&header)
            .and_then(|()| stream.write_all(&payload))
            .is_err()
        {
            return;
        }
    }
}

fn soak_passes_against_the_honest_test_server() {
    // The control for the two tests below: the same server without its fault passes,
    // so their failures come from the fault and nothing else.
    let server = TestServer::start(Fault::None);
    let (output, report) = soak_test_server(&server);
    assert!(output.status.success(), "{}\n{report}", stderr(&output));
    assert_eq!(report["mismatches"], 0);
    assert!(
        report["messages"].as_u64().is_some_and(|m| m > 100),
        "{report}"
    );
    assert!(
        report["rss_start_kb"].is_null() && report["fds_start"].is_null(),
        "no pid: no samples"
    );
}

fn soak_detects_a_flipped_bit() {
    let server = TestServer::start(Fault::FlipBit);
    let (output, report) = soak_test_server(&server);
    assert!(!output.status.success(), "{report}");
    let mismatches = report["mismatches"].as_u64().expect("mismatches");
    assert!(mismatches > 0, "{report}");
    assert!(
        report["checksum_mismatches"]
            .as_u64()
            .is_some_and(|c| c > 0),
        "{report}"
    );
    assert_eq!(report["passed"], false);
    let err = stderr(&output);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("echolab: error: soak failed:"), "{err}");
    assert!(
        last.contains(&format!("{mismatches} mismatched replies")),
        "{err}"
    );
}

fn soak_detects_a_leaked_descriptor() {
    let server = TestServer::start(Fault::LeakDescriptor);
    let addr = server.addr.to_string();
    let pid = std::process::id().to_string();
    let (output, report) = soak(&[
        "--addr",
        &addr,
        "--server-pid",
        &pid,
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--conns",
        "4",
    ]);
    assert!(!output.status.success(), "{report}");
    assert_eq!(report["mismatches"], 0, "{report}");
    let connections = report["connections"].as_i64().expect("connections");
    let drift = report["fd_drift"]
        .as_i64()
        .expect("fd_drift sampled with --server-pid");
    assert!(
        drift >= connections - 2,
        "one leaked per connection: {report}"
    );
    assert!(
        stderr(&output).contains("more descriptors than at the start"),
        "{}",
        stderr(&output)
    );
}

fn soak_against_nothing_fails_in_one_line() {
    let addr = support::refused_addr().to_string();
    let (output, report) = soak(&["--addr", &addr, "--duration", "1", "--conns", "2"]);
    assert!(!output.status.success());
    assert_eq!(report["messages"], 0);
    assert!(
        report["errors"]["connect"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    let err = stderr(&output);
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.contains("no reply verified")),
        "{err}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_echolab"))
        .args(["soak", "--model", "nosuch", "--duration", "1"])
        .output()
        .expect("run echolab soak");
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("unknown model `nosuch`"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
