//! The conformance suite: the same protocol tests against every model in the registry,
//! each through the real `echolab serve` binary. A model added to `crates/registry` is
//! tested here with no other edit. Run one model with `cargo test --test conformance --
//! threads::` or one case across models with `-- sticky`.

mod support;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use echolab_proto::{Reply, DEFAULT_MAX_FRAME};
use echolab_registry::Model;
use support::suite::{self, case, case_where, concurrent_case, Case};
use support::*;

const CASES: &[Case] = &[
    case("frame_sizes_0_to_1mib", frame_sizes_0_to_1mib),
    case(
        "frame_dribbled_one_byte_per_write",
        frame_dribbled_one_byte_per_write,
    ),
    case(
        "pipelined_200_frames_in_one_write",
        pipelined_200_frames_in_one_write,
    ),
    case(
        "sticky_hello_feng_stay_two_frames",
        sticky_hello_feng_stay_two_frames,
    ),
    case(
        "oversize_header_echoes_earlier_frames_then_notice",
        oversize_header_echoes_earlier_frames_then_notice,
    ),
    case("all_ones_header_gets_notice", all_ones_header_gets_notice),
    case(
        "half_close_after_three_frames",
        half_close_after_three_frames,
    ),
    case(
        "truncated_frame_then_close_next_client_served",
        truncated_frame_then_close_next_client_served,
    ),
    case(
        "reset_mid_frame_next_client_served",
        reset_mid_frame_next_client_served,
    ),
    case(
        "two_1mib_frames_before_reading",
        two_1mib_frames_before_reading,
    ),
    case("raw_mode_utf8_lines", raw_mode_utf8_lines),
    case("raw_mode_4mib_stream", raw_mode_4mib_stream),
    case("auth_right_key", auth_right_key),
    case("auth_wrong_key_gets_notice", auth_wrong_key_gets_notice),
    case(
        "auth_silent_client_closed_at_deadline",
        auth_silent_client_closed_at_deadline,
    ),
    case(
        "auth_key_file_readable_by_others_refused",
        auth_key_file_readable_by_others_refused,
    ),
    case(
        "idle_client_closed_then_next_served",
        idle_client_closed_then_next_served,
    ),
    case(
        "sigterm_mid_conversation_delivers_replies",
        sigterm_mid_conversation_delivers_replies,
    ),
    case("restart_on_same_port", restart_on_same_port),
    concurrent_case("sixteen_interleaved_clients", sixteen_interleaved_clients),
    concurrent_case(
        "max_conns_refuses_with_server_busy",
        max_conns_refuses_with_server_busy,
    ),
    // Only a model with a descriptor limit by nature (select's FD_SETSIZE) has a wall.
    case_where(
        "descriptor_past_the_natural_limit_refused_cleanly",
        |m| m.natural_limit.is_some(),
        descriptor_past_the_natural_limit_refused_cleanly,
    )
    .alone(),
    // A model that never blocks burns CPU at rest by design: nothing to assert.
    case_where(
        "idle_connections_cost_no_wakeups",
        |m| !m.busy_waits,
        idle_connections_cost_no_wakeups,
    ),
    // Only a model that serves one client at a time makes the second wait.
    Case {
        needs_concurrency: Some(false),
        ..case(
            "second_client_waits_for_the_first",
            second_client_waits_for_the_first,
        )
    },
];

fn main() {
    suite::run_over_models(CASES)
}

fn frame_sizes_0_to_1mib(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut client = server.client();
    let max = DEFAULT_MAX_FRAME as usize;
    for (i, size) in [
        0,
        1,
        3,
        4,
        5,
        255,
        1000,
        4096,
        65_535,
        65_536,
        65_537,
        300_000,
        max - 1,
        max,
    ]
    .into_iter()
    .enumerate()
    {
        let payload = pattern(size, i as u8);
        let reply = client.echo(&payload).expect("echo");
        assert_eq!(reply.len(), size, "{}: size {size}", model.name);
        assert!(reply == payload, "{}: {size}-byte echo differs", model.name);
    }
}

fn frame_dribbled_one_byte_per_write(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut stream = server.connect();
    let payload = pattern(300, 7);
    for byte in frames(&[&payload]) {
        stream.write_all(&[byte]).expect("write one byte");
    }
    let replies = read_replies(&mut stream, 1);
    assert_eq!(expect_frame(&replies[0]), payload.as_slice());
}

fn pipelined_200_frames_in_one_write(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut stream = server.connect();
    let payloads: Vec<Vec<u8>> = (0..200).map(|i| pattern(i * 7 % 300, i as u8)).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    stream.write_all(&frames(&refs)).expect("write 200 frames");
    let replies = read_replies(&mut stream, 200);
    for (i, (reply, sent)) in replies.iter().zip(&payloads).enumerate() {
        assert_eq!(expect_frame(reply), sent.as_slice(), "frame {i}");
    }
}

fn sticky_hello_feng_stay_two_frames(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut stream = server.connect();
    stream
        .write_all(&frames(&[b"hello", b"feng"]))
        .expect("write");
    let replies = read_replies(&mut stream, 2);
    assert_eq!(
        replies,
        vec![
            Reply::Frame(b"hello".to_vec()),
            Reply::Frame(b"feng".to_vec())
        ]
    );
}

fn oversize_header_echoes_earlier_frames_then_notice(model: &Model) {
    let server = ServerGuard::start(model.name, &["--max-frame", "1000"]);
    let mut stream = server.connect();
    let mut wire = frames(&[b"first", &pattern(1000, 1)]);
    wire.extend_from_slice(&1001u32.to_be_bytes());
    wire.extend_from_slice(&[0; 64]);
    stream.write_all(&wire).expect("write");
    let (replies, end) = read_until_close(&mut stream);
    end.expect("clean close, not a reset");
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert_eq!(expect_frame(&replies[0]), b"first");
    assert_eq!(expect_frame(&replies[1]), pattern(1000, 1).as_slice());
    assert!(
        expect_notice(&replies[2]).contains("exceeds"),
        "{:?}",
        replies[2]
    );
}

fn all_ones_header_gets_notice(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut stream = server.connect();
    stream.write_all(&[0xff; 4]).expect("write");
    let (replies, end) = read_until_close(&mut stream);
    end.expect("clean close");
    assert_eq!(replies.len(), 1, "{replies:?}");
    expect_notice(&replies[0]);
}

fn half_close_after_three_frames(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut stream = server.connect();
    stream
        .write_all(&frames(&[b"one", b"two", b"three"]))
        .expect("write");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let (replies, end) = read_until_close(&mut stream);
    end.expect("EOF after the replies");
    let got: Vec<&[u8]> = replies.iter().map(expect_frame).collect();
    assert_eq!(got, vec![&b"one"[..], b"two", b"three"]);
}

fn assert_serves_next_client(server: &ServerGuard) {
    let mut client = server.client();
    assert_eq!(client.echo(b"next").expect("next client served"), b"next");
}

fn truncated_frame_then_close_next_client_served(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut stream = server.connect();
    let wire = frames(&[&pattern(100, 3)]);
    stream.write_all(&wire[..50]).expect("write half a frame");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let (replies, end) = read_until_close(&mut stream);
    end.expect("clean close");
    assert!(
        replies.is_empty(),
        "a partial frame must not be echoed: {replies:?}"
    );
    assert_serves_next_client(&server);
}

fn reset_mid_frame_next_client_served(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let stream = server.connect();
    let wire = frames(&[&pattern(100, 3)]);
    (&stream)
        .write_all(&wire[..50])
        .expect("write half a frame");
    // SO_LINGER 0: close() sends a reset instead of a FIN.
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(stream);
    assert_serves_next_client(&server);
}

fn two_1mib_frames_before_reading(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut stream = server.connect();
    let a = pattern(1 << 20, 1);
    let b = pattern(1 << 20, 2);
    // Written from this thread before any read: the server must keep reading while its
    // replies wait in the socket buffers, or both sides block (the timeout fails it).
    stream
        .write_all(&frames(&[&a, &b]))
        .expect("write 2 MiB without reading");
    let replies = read_replies(&mut stream, 2);
    assert!(expect_frame(&replies[0]) == a.as_slice());
    assert!(expect_frame(&replies[1]) == b.as_slice());
}

fn raw_mode_utf8_lines(model: &Model) {
    let server = ServerGuard::start(model.name, &["--protocol", "raw"]);
    let mut stream = server.connect();
    for line in [
        "hello\n",
        "feng\n",
        "héllo wörld ✓ 你好\n",
        "\n",
        "no newline",
    ] {
        stream.write_all(line.as_bytes()).expect("write");
        assert_eq!(read_exactly(&mut stream, line.len()), line.as_bytes());
    }
}

fn raw_mode_4mib_stream(model: &Model) {
    let server = ServerGuard::start(model.name, &["--protocol", "raw"]);
    let mut stream = server.connect();
    let data = pattern(4 << 20, 9);
    let writer = write_in_background(&stream, data.clone());
    let echoed = read_exactly(&mut stream, data.len());
    writer.join().expect("writer thread").expect("write 4 MiB");
    assert!(echoed == data, "raw echo differs");
}

const KEY: &[u8] = b"a-shared-secret-of-32-bytes-long";

fn auth_right_key(model: &Model) {
    let key = KeyFile::new(KEY);
    let server = ServerGuard::start(model.name, &["--auth-key-file", key.path_str()]);
    let mut config = server.client_config();
    config.auth_key = Some(key.key.clone());
    let mut client = echolab_client::Client::connect(&config).expect("authenticated connect");
    assert_eq!(client.echo(b"after auth").expect("echo"), b"after auth");
}

fn auth_wrong_key_gets_notice(model: &Model) {
    let key = KeyFile::new(KEY);
    let server = ServerGuard::start(model.name, &["--auth-key-file", key.path_str()]);
    let mut config = server.client_config();
    config.auth_key =
        Some(echolab_proto::AuthKey::new(b"not-the-right-key-at-all".to_vec()).expect("key"));
    let mut client = echolab_client::Client::connect(&config).expect("tcp connect works");
    match client.echo(b"sneaky") {
        Err(echolab_client::ClientError::Notice(text)) => assert_eq!(text, "authentication failed"),
        other => panic!("expected the authentication notice, got {other:?}"),
    }
}

fn auth_silent_client_closed_at_deadline(model: &Model) {
    let key = KeyFile::new(KEY);
    let server = ServerGuard::start(
        model.name,
        &[
            "--auth-key-file",
            key.path_str(),
            "--handshake-timeout",
            "1",
        ],
    );
    let mut stream = server.connect();
    let start = Instant::now();
    let nonce = read_exactly(&mut stream, 32);
    assert_eq!(nonce.len(), 32);
    let (replies, _) = read_until_close(&mut stream);
    let elapsed = start.elapsed();
    assert_elapsed_within(elapsed, Duration::from_millis(900), Duration::from_secs(5));
    assert!(
        replies.iter().all(|r| matches!(r, Reply::Notice(_))),
        "{replies:?}"
    );
}

fn auth_key_file_readable_by_others_refused(model: &Model) {
    let key = KeyFile::with_mode(KEY, 0o644);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_echolab"))
        .args([
            "serve",
            model.name,
            "--addr",
            "127.0.0.1:0",
            "--auth-key-file",
            key.path_str(),
        ])
        .output()
        .expect("run echolab");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(
        !stderr.contains(std::str::from_utf8(KEY).expect("utf-8")),
        "key leaked: {stderr}"
    );
    assert!(output.stdout.is_empty(), "must not start listening");
}

fn idle_client_closed_then_next_served(model: &Model) {
    let server = ServerGuard::start(model.name, &["--idle-timeout", "1"]);
    let mut idle = server.connect();
    let start = Instant::now();
    let (replies, _) = read_until_close(&mut idle);
    let elapsed = start.elapsed();
    assert_elapsed_within(elapsed, Duration::from_millis(900), Duration::from_secs(5));
    assert!(
        matches!(&replies[..], [Reply::Notice(t)] if t.contains("idle")),
        "{replies:?}"
    );
    assert_serves_next_client(&server);
}

fn sigterm_mid_conversation_delivers_replies(model: &Model) {
    let mut server = ServerGuard::start(model.name, &[]);
    let mut stream = server.connect();
    stream.write_all(&frames(&[b"before"])).expect("write");
    assert_eq!(expect_frame(&read_replies(&mut stream, 1)[0]), b"before");
    let payloads: Vec<Vec<u8>> = (0..5).map(|i| pattern(10_000, i)).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    stream.write_all(&frames(&refs)).expect("write 5 frames");
    std::thread::sleep(Duration::from_millis(50));
    let (status, elapsed, stats) = server.terminate(Duration::from_secs(5));
    let (replies, end) = read_until_close(&mut stream);
    end.expect("clean close");
    assert!(status.success(), "{}: exit status {status}", model.name);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let echoed = frame_payloads(&replies);
    assert_eq!(
        echoed, refs,
        "every buffered frame is echoed before the close"
    );
    let stats = stats.expect("JSON stats line on exit");
    assert_eq!(stats.model, model.name);
    assert!(stats.stats.accepted >= 1, "{stats:?}");
    assert_eq!(stats.stats.frames, 6, "{stats:?}");
}

fn restart_on_same_port(model: &Model) {
    let mut first = ServerGuard::start(model.name, &[]);
    let addr = first.addr.to_string();
    {
        let mut client = first.client();
        assert_eq!(client.echo(b"one").expect("echo"), b"one");
    }
    let _ = first.terminate(Duration::from_secs(5));
    drop(first);
    // The server closed connections first, so they sit in TIME_WAIT on its port.
    let second = ServerGuard::start_at(model.name, &addr, &[]);
    assert_serves_next_client(&second);
}

fn sixteen_interleaved_clients(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
    let workers: Vec<_> = (0..16u8)
        .map(|id| {
            let config = server.client_config();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut client = echolab_client::Client::connect(&config).expect("connect");
                barrier.wait();
                for round in 0..50u8 {
                    let payload = pattern(
                        1 + (id as usize * 97 + round as usize * 13) % 5000,
                        id ^ round,
                    );
                    let reply = client.echo(&payload).expect("echo");
                    assert!(
                        reply == payload,
                        "client {id} round {round} got someone else's bytes"
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("client thread");
    }
}

fn max_conns_refuses_with_server_busy(model: &Model) {
    let server = ServerGuard::start(model.name, &["--max-conns", "2"]);
    let mut a = server.client();
    let mut b = server.client();
    assert_eq!(a.echo(b"a").expect("a admitted"), b"a");
    assert_eq!(b.echo(b"b").expect("b admitted"), b"b");
    let mut c = server.connect();
    let (replies, _) = read_until_close(&mut c);
    assert!(
        matches!(&replies[..], [Reply::Notice(t)] if t == "server busy"),
        "{replies:?}"
    );
    drop(a);
    // Once a leaves, its slot frees up (within a moment: the server sees the FIN).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = server.client();
        match d.echo(b"d") {
            Ok(reply) => {
                assert_eq!(reply, b"d");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "slot never freed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.echo(b"b2").expect("b still served"), b"b2");
}

fn second_client_waits_for_the_first(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let mut first = server.client();
    assert_eq!(first.echo(b"first").expect("first served"), b"first");
    let mut second = server.connect();
    second.write_all(&frames(&[b"second"])).expect("write");
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let waited = std::io::Read::read(&mut second, &mut byte);
    assert!(
        waited.is_err(),
        "a one-at-a-time server answered a second client: {waited:?}"
    );
    drop(first);
    second.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    // The byte we tried to read is still unread: the whole reply arrives now.
    assert_eq!(expect_frame(&read_replies(&mut second, 1)[0]), b"second");
}

/// Connections whose descriptor lands at or past the model's natural limit get the
/// framed busy notice and a clean close, never undefined behaviour or a crash, while
/// every connection below the wall keeps being served, and a descriptor freed below the
/// wall serves a new client again.
fn descriptor_past_the_natural_limit_refused_cleanly(model: &Model) {
    let limit = model.natural_limit.expect("selected by its limit");
    // Room for the wall plus the test's own sockets; the server inherits the limit.
    let nofile = proc::raise_nofile(2 * limit as u64 + 256);
    assert!(
        nofile > limit as u64 + 64,
        "descriptor limit {nofile} too low to reach the wall at {limit}"
    );
    let server = ServerGuard::start(model.name, &[]);
    let mut below = Vec::new();
    let mut refused = 0;
    // Bounded: the wall is at `limit`, so `limit + 20` connections must pass it.
    for i in 0..limit + 20 {
        let mut stream = server.connect();
        let payload = format!("client {i}");
        stream
            .write_all(&frames(&[payload.as_bytes()]))
            .expect("write");
        match &read_replies(&mut stream, 1)[..] {
            [Reply::Frame(p)] => {
                assert_eq!(p, payload.as_bytes(), "{}: echo of client {i}", model.name);
                assert_eq!(
                    refused, 0,
                    "{}: client {i} served past the wall",
                    model.name
                );
                below.push(stream);
            }
            [Reply::Notice(text)] => {
                assert_eq!(text, "server busy", "{}: client {i}", model.name);
                refused += 1;
            }
            other => panic!("{}: client {i}: {other:?}", model.name),
        }
    }
    assert!(refused >= 1, "{}: nobody refused at the wall", model.name);
    assert!(
        below.len() + 16 >= limit && below.len() < limit,
        "{}: {} served below a wall at {limit}",
        model.name,
        below.len()
    );
    // The connections below the wall are still served after the refusals.
    for (i, stream) in below.iter_mut().enumerate().step_by(97) {
        let payload = format!("again {i}");
        stream
            .write_all(&frames(&[payload.as_bytes()]))
            .expect("write");
        let replies = read_replies(stream, 1);
        assert_eq!(
            frame_payloads(&replies),
            [payload.as_bytes()],
            "{}",
            model.name
        );
    }
    // Free a few descriptors below the wall: a new client is served again (once the
    // server has seen those clients leave).
    below.truncate(below.len() - 8);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = server.connect();
        stream.write_all(&frames(&[b"after"])).expect("write");
        match &read_replies(&mut stream, 1)[..] {
            [Reply::Frame(p)] if p == b"after" => break,
            other => assert!(
                Instant::now() < deadline,
                "{}: no room below the wall after closing 8: {other:?}",
                model.name
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Idle clients must cost the server nothing until they speak or their idle deadline
/// comes: no per-connection timer. Counts the server tree's voluntary context switches
/// (each a wake-up) while 20 clients sit silent; a 500 ms per-connection tick would add
/// about 60 over the 1.5 s window.
fn idle_connections_cost_no_wakeups(model: &Model) {
    let mut args = vec!["--idle-timeout", "0"];
    if model.takes_workers() {
        // Enough workers that every client is being served, not queued.
        args.extend(["--workers", "20"]);
    }
    let server = ServerGuard::start(model.name, &args);
    let mut clients: Vec<_> = (0..20).map(|_| server.connect()).collect();
    // Each one served once, so every model has taken it on (a thread, a process, a
    // registration) before the count starts.
    for (i, stream) in clients
        .iter_mut()
        .enumerate()
        .take(if model.concurrent() { 20 } else { 1 })
    {
        let payload = format!("hello {i}");
        stream
            .write_all(&frames(&[payload.as_bytes()]))
            .expect("write");
        assert_eq!(
            frame_payloads(&read_replies(stream, 1)),
            [payload.as_bytes()]
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = echolab_harness::procfs::wakeups(server.pid());
    std::thread::sleep(Duration::from_millis(1500));
    let woken = echolab_harness::procfs::wakeups(server.pid()).saturating_sub(before);
    assert!(
        woken <= 10,
        "{}: {woken} wake-ups in 1.5 s with 20 idle clients",
        model.name
    );
}
