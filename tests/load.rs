//! `echolab load` against real servers: replies verified, errors counted by kind, and
//! fairness telling a one-at-a-time server from a concurrent one; connection churn
//! against every registered model. Most tests load one server, `threads`, as *a*
//! server to test the load generator against; the starvation tests take whichever
//! model serves one client at a time.

mod support;

use std::process::Command;
use std::time::Duration;

use echolab_registry::{Model, Runs, MODELS};
use support::suite::{self, case, test, Case, Test};
use support::ServerGuard;

const CASES: &[Case] = &[case(
    "churn_runs_cycles_without_errors",
    churn_runs_cycles_without_errors,
)];

const TESTS: &[Test] = &[
    test(
        "concurrent_server_serves_every_connection_without_errors",
        concurrent_server_serves_every_connection_without_errors,
    ),
    test(
        "in_turn_server_starves_all_but_one_connection",
        in_turn_server_starves_all_but_one_connection,
    ),
    test(
        "protocol_mismatch_is_counted_not_hidden",
        protocol_mismatch_is_counted_not_hidden,
    ),
    test(
        "authenticated_load_runs_the_handshake",
        authenticated_load_runs_the_handshake,
    ),
    // Asserts the rate it reached: alone, so that no neighbour takes its CPU.
    test(
        "open_loop_sends_at_the_target_rate",
        open_loop_sends_at_the_target_rate,
    )
    .alone(),
    test(
        "open_loop_does_not_hide_a_starving_server",
        open_loop_does_not_hide_a_starving_server,
    ),
    test(
        "authenticated_churn_handshakes_every_connection",
        authenticated_churn_handshakes_every_connection,
    ),
    test(
        "churn_counts_refused_connects_and_retries_without_spinning",
        churn_counts_refused_connects_and_retries_without_spinning,
    ),
    test(
        "refused_connections_are_errors_not_latency",
        refused_connections_are_errors_not_latency,
    ),
    test(
        "replies_larger_than_one_read_are_drained_and_verified",
        replies_larger_than_one_read_are_drained_and_verified,
    ),
    test(
        "a_corrupted_raw_echo_is_counted_as_a_mismatch",
        a_corrupted_raw_echo_is_counted_as_a_mismatch,
    ),
];

fn main() {
    suite::run_timed(CASES, TESTS)
}

/// A registered model that serves one client at a time, to the end.
fn in_turn_model() -> &'static str {
    MODELS
        .iter()
        .find(|m| m.is_stream() && m.runs == Runs::InTurn)
        .expect("a registered model that serves clients in turn")
        .name
}

fn load_json(server: &ServerGuard, extra: &[&str]) -> serde_json::Value {
    load_output(server, extra).0
}

/// The report and what was printed on stderr.
fn load_output(server: &ServerGuard, extra: &[&str]) -> (serde_json::Value, String) {
    let (report, stderr, success) = load_run(server, extra);
    assert!(success, "{stderr}");
    (report, stderr)
}

/// The report, stderr and whether the run exited 0, whatever it measured.
fn load_run(server: &ServerGuard, extra: &[&str]) -> (serde_json::Value, String, bool) {
    let args = [&["--warmup", "0.2", "--duration", "1"][..], extra].concat();
    support::load_run(server.addr, &args)
}

/// A run that got no reply printed its report, then failed in one line.
fn assert_measured_nothing(stderr: &str, success: bool, expected: &str) {
    assert!(!success, "a run with no reply exited 0: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("the run measured nothing") && stderr.contains(expected),
        "{stderr}"
    );
}

fn total_errors(report: &serde_json::Value) -> u64 {
    report["errors"]
        .as_object()
        .expect("errors object")
        .values()
        .filter_map(|v| v.as_u64())
        .sum()
}

fn concurrent_server_serves_every_connection_without_errors() {
    let mut server = ServerGuard::start("threads", &[]);
    let report = load_json(&server, &["--conns", "8", "--size", "512", "--depth", "2"]);
    assert_eq!(total_errors(&report), 0, "{report}");
    // The run ends cleanly: it collects what is owed before closing, so the server saw
    // eight clean closes and no reset (with replies in flight at close it counted `io`
    // errors, and a benchmark's server counters meant nothing).
    let (_, _, stats) = server.terminate(Duration::from_secs(5));
    let stats = stats.expect("the server's stats line");
    assert_eq!(stats.stats.errors.get("io"), Some(&0), "{stats:?}");
    assert_eq!(stats.stats.closed.get("peer_closed"), Some(&8), "{stats:?}");
    // The generator's own CPU is reported.
    let client_cpu = report["client_cpu_user_s"].as_f64().unwrap_or(0.0)
        + report["client_cpu_sys_s"].as_f64().unwrap_or(0.0);
    assert!(client_cpu > 0.0, "{report}");
    assert!(report["responses"].as_u64() > Some(100), "{report}");
    assert!(report["fairness"]["min"].as_u64() > Some(0), "{report}");
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(report["latency_us"][key].as_f64() > Some(0.0), "{report}");
    }
    assert!(report["mib_per_sec"].as_f64() > Some(0.0), "{report}");
    // Served evenly: the messages in flight at the end are a few samples of thousands.
    let n = |key: &str| report[key].as_u64().unwrap_or(u64::MAX);
    assert!(n("censored_waits") <= 16, "{report}");
    assert!(
        n("censored_samples") * 100 < n("latency_samples"),
        "{report}"
    );
}

fn in_turn_server_starves_all_but_one_connection() {
    let server = ServerGuard::start(in_turn_model(), &[]);
    let report = load_json(&server, &["--conns", "4", "--size", "64"]);
    assert_eq!(total_errors(&report), 0, "{report}");
    assert_eq!(report["fairness"]["min"].as_u64(), Some(0), "{report}");
    assert!(report["fairness"]["jain"].as_f64() < Some(0.5), "{report}");
    // The starved connections' one message each waited the whole run (1.2 s) unanswered:
    // the latency tail says so instead of showing only the served client's round trips.
    let max_us = report["latency_us"]["max"].as_f64().expect("max");
    assert!(
        max_us > 1_000_000.0,
        "starved clients missing from latency: {report}"
    );
    // And not only the tail: one served client's thousands of round trips would
    // otherwise bury three waits far past the 99th percentile, and a server that serves
    // one client would read as the fastest. Each starved client stands for the
    // messages it was held from sending, so the p99 is about the 1 s window.
    let n = |key: &str| report[key].as_u64().unwrap_or_default();
    // Three starved clients, and the served one's message in flight at the end.
    assert!((3..=4).contains(&n("censored_waits")), "{report}");
    assert!(
        n("censored_samples") * 2 > n("latency_samples"),
        "the starved clients' share of the samples: {report}"
    );
    let p99_us = report["latency_us"]["p99"].as_f64().expect("p99");
    assert!(
        (800_000.0..1_300_000.0).contains(&p99_us),
        "p99 {p99_us} µs is not about the 1 s window: {report}"
    );
}

fn protocol_mismatch_is_counted_not_hidden() {
    // Raw bytes to a framed server: the first 4 payload bytes read as a huge header, so
    // the server answers with a notice and closes; a raw client sees a short reply.
    let server = ServerGuard::start("threads", &["--max-frame", "1000"]);
    let (report, stderr, success) = load_run(
        &server,
        &["--conns", "2", "--size", "64", "--protocol", "raw"],
    );
    assert_eq!(report["errors"]["short_read"].as_u64(), Some(2), "{report}");
    assert_eq!(report["responses"].as_u64(), Some(0), "{report}");
    assert_measured_nothing(&stderr, success, "short_read 2");
}

fn authenticated_load_runs_the_handshake() {
    let key = support::KeyFile::new(b"a-shared-secret-of-32-bytes-long");
    let server = ServerGuard::start("threads", &["--auth-key-file", key.path_str()]);
    let report = load_json(
        &server,
        &[
            "--conns",
            "4",
            "--size",
            "100",
            "--auth-key-file",
            key.path_str(),
        ],
    );
    assert_eq!(total_errors(&report), 0, "{report}");
    assert!(report["responses"].as_u64() > Some(0), "{report}");
}

fn open_loop_sends_at_the_target_rate() {
    let server = ServerGuard::start("threads", &[]);
    let (report, stderr) =
        load_output(&server, &["--conns", "4", "--size", "64", "--rate", "2000"]);
    // The run lasts past the first progress tick, but stderr is a pipe: no progress.
    assert_eq!(stderr, "", "progress printed to a non-terminal");
    assert_eq!(report["mode"], "open", "{report}");
    assert_eq!(report["target_rate"].as_f64(), Some(2000.0), "{report}");
    assert_eq!(total_errors(&report), 0, "{report}");
    let responses = report["responses"].as_u64().expect("responses") as f64;
    let expected = 2000.0 * report["seconds"].as_f64().expect("seconds");
    assert!(
        (responses - expected).abs() <= expected * 0.25,
        "{responses} responses, expected about {expected}: {report}"
    );
}

fn open_loop_does_not_hide_a_starving_server() {
    // A model that serves in turn serves one connection at a time: the other three send
    // on schedule and wait. Their unanswered messages are charged from their intended send times (or time
    // out), so the stall shows; a closed loop would just send less.
    let server = ServerGuard::start(in_turn_model(), &[]);
    let report = load_json(&server, &["--conns", "4", "--size", "64", "--rate", "400"]);
    assert_eq!(report["mode"], "open", "{report}");
    let p99_us = report["latency_us"]["p99"].as_f64().expect("p99");
    assert!(
        p99_us > 100_000.0 || total_errors(&report) > 0,
        "starvation hidden: {report}"
    );
}

fn churn_runs_cycles_without_errors(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let report = load_json(&server, &["--conns", "4", "--size", "64", "--churn"]);
    assert_eq!(report["mode"], "churn", "{report}");
    assert!(report["target_rate"].is_null(), "{report}");
    assert_eq!(total_errors(&report), 0, "{report}");
    assert!(report["responses"].as_u64() > Some(10), "{report}");
    assert!(
        report["connections_per_sec"].as_f64() > Some(0.0),
        "{report}"
    );
}

fn authenticated_churn_handshakes_every_connection() {
    let key = support::KeyFile::new(b"a-shared-secret-of-32-bytes-long");
    let server = ServerGuard::start("threads", &["--auth-key-file", key.path_str()]);
    let report = load_json(
        &server,
        &["--conns", "2", "--churn", "--auth-key-file", key.path_str()],
    );
    assert_eq!(total_errors(&report), 0, "{report}");
    assert!(report["responses"].as_u64() > Some(10), "{report}");
}

fn churn_counts_refused_connects_and_retries_without_spinning() {
    // Every connect is refused.
    let addr = support::refused_addr();
    let output = Command::new(env!("CARGO_BIN_EXE_echolab"))
        .args(["load", "--addr", &addr.to_string(), "--json", "--churn"])
        .args(["--conns", "2", "--warmup", "0", "--duration", "0.5"])
        .output()
        .expect("run echolab load");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_measured_nothing(&stderr, output.status.success(), "connect");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let refused = report["errors"]["connect"].as_u64().expect("connect count");
    // Each slot retries after a pause (10 ms): about 50 per slot here, never thousands.
    assert!(refused > 0 && refused <= 200, "{report}");
    assert_eq!(report["responses"].as_u64(), Some(0), "{report}");
}

fn refused_connections_are_errors_not_latency() {
    // Nothing listens: the messages queued for these connections were never sent, so they
    // are counted as connect errors and charged no latency. The run measured nothing, and
    // says so: it prints its report, then fails in one line.
    let addr = support::refused_addr();
    let output = Command::new(env!("CARGO_BIN_EXE_echolab"))
        .args(["load", "--addr", &addr.to_string(), "--conns", "3"])
        .args(["--warmup", "0", "--duration", "0.3"])
        .output()
        .expect("run echolab load");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("latency us: no samples"), "{text}");
    assert!(text.contains("errors: connect 3"), "{text}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_measured_nothing(&stderr, output.status.success(), "connect 3");
    assert!(
        stderr.starts_with(
            "echolab: error: the run measured nothing: no reply verified in its 0.3 s window"
        ),
        "{stderr}"
    );
}

fn replies_larger_than_one_read_are_drained_and_verified() {
    // Replies several times the generator's 64 KiB read buffer, on one connection: each
    // takes many reads, and the bytes left in the socket after a full read raise no new
    // event, so a generator that stopped reading early would stall for good here.
    let server = ServerGuard::start("threads", &[]);
    let report = load_json(
        &server,
        &["--conns", "1", "--size", "300000", "--depth", "2"],
    );
    assert_eq!(total_errors(&report), 0, "{report}");
    assert!(report["responses"].as_u64() > Some(20), "{report}");
}

fn a_corrupted_raw_echo_is_counted_as_a_mismatch() {
    // A raw echo server that flips one bit in the 11th 64-byte reply: the generator must
    // verify ten replies, catch the eleventh and end the connection, not count it.
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    const CORRUPT_AT: usize = 64 * 10 + 5;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut peer, _) = listener.accept().expect("accept");
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        peer.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut echoed = 0;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let n = match peer.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if (echoed..echoed + n).contains(&CORRUPT_AT) {
                buf[CORRUPT_AT - echoed] ^= 0x01;
            }
            echoed += n;
            if peer.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        echoed
    });
    let output = Command::new(env!("CARGO_BIN_EXE_echolab"))
        .args([
            "load",
            "--addr",
            &addr.to_string(),
            "--json",
            "--protocol",
            "raw",
        ])
        .args([
            "--conns",
            "1",
            "--size",
            "64",
            "--warmup",
            "0",
            "--duration",
            "1",
        ])
        .output()
        .expect("run echolab load");
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["errors"]["mismatch"].as_u64(), Some(1), "{report}");
    assert_eq!(total_errors(&report), 1, "{report}");
    assert_eq!(report["responses"].as_u64(), Some(10), "{report}");
    let echoed = server.join().expect("echo thread");
    assert!(
        echoed > CORRUPT_AT,
        "the corrupted reply was sent: {echoed} bytes"
    );
}
