//! The datagram suite: the same UDP tests against every datagram model in the registry
//! (`transport: Datagram`), each through the real `echolab serve` binary, as the
//! conformance suite does for the stream models. A `udp-…` model added to
//! `crates/registry` is tested here with no other edit. Run one model with
//! `cargo test --test udp -- udp-mio::`.
//!
//! Every socket has a timeout and every loop a bound: a lost datagram fails a case (or,
//! where loss is the point, is counted), it never hangs one.

mod support;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use echolab_client::datagram::socket_drops_on_port;
use echolab_proto::{parse_daytime, MAX_UDP_PAYLOAD_V4};
use echolab_registry::Model;
use echolab_server::{DatagramCounts, StatsLine};
use nix::sys::signal::Signal;
use support::suite::{self, case, Case};
use support::{load_report, pattern, proc, ServerGuard, IO_TIMEOUT};

const CASES: &[Case] = &[
    case("sizes_0_1_1400_65507_echo_exactly", sizes_echo_exactly),
    case(
        "thousand_datagrams_from_ten_sockets_reach_their_senders",
        thousand_datagrams_from_ten_sockets_reach_their_senders,
    ),
    case(
        "oversize_datagram_dropped_counted_and_serving_goes_on",
        oversize_datagram_dropped_counted_and_serving_goes_on,
    ),
    // Stops the server and floods it: alone, so no neighbour's timing suffers.
    case(
        "burst_past_the_receive_buffer_loses_but_never_corrupts_or_misroutes",
        burst_past_the_receive_buffer_loses_but_never_corrupts_or_misroutes,
    )
    .alone(),
    case(
        "sigterm_answers_what_was_already_received_and_exits_0",
        sigterm_answers_what_was_already_received_and_exits_0,
    ),
    case(
        "daytime_answers_parse_as_a_date",
        daytime_answers_parse_as_a_date,
    ),
    case(
        "framed_and_auth_key_file_refused_with_a_clear_message",
        framed_and_auth_key_file_refused_with_a_clear_message,
    ),
    case(
        "load_verifies_every_reply_and_reports_the_kernel_counters",
        load_verifies_every_reply_and_reports_the_kernel_counters,
    ),
    case(
        "rust_log_trace_shows_each_datagram",
        rust_log_trace_shows_each_datagram,
    ),
];

fn main() {
    suite::run_over_datagram_models(CASES, &[])
}

/// How long a case waits to be sure no reply is coming.
const SILENCE: Duration = Duration::from_millis(300);

/// A client socket connected to the server, with the suite's timeout.
fn socket_to(server: &ServerGuard) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
    socket
        .connect(server.addr)
        .expect("connect the client socket");
    socket
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("receive timeout");
    socket
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("send timeout");
    socket
}

/// The next datagram within `limit`, or `None`.
fn recv_within(socket: &UdpSocket, limit: Duration) -> Option<Vec<u8>> {
    socket
        .set_read_timeout(Some(limit))
        .expect("receive timeout");
    let mut buf = vec![0u8; 65_536];
    let result = socket.recv(&mut buf);
    socket
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("receive timeout");
    match result {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("receive failed: {e}"),
    }
}

/// Sends `datagram` and expects exactly it back within the suite's timeout.
fn assert_echoed(socket: &UdpSocket, datagram: &[u8]) {
    socket.send(datagram).expect("send");
    let reply = recv_within(socket, IO_TIMEOUT)
        .unwrap_or_else(|| panic!("no reply to a {}-byte datagram", datagram.len()));
    assert!(
        reply == datagram,
        "a {}-byte datagram came back as {} bytes, or different",
        datagram.len(),
        reply.len()
    );
}

/// A datagram that names its sender and its place: socket, sequence, then a pattern
/// seeded by both, so a reply delivered to the wrong socket, or cut, or altered, fails.
fn tagged(socket: u16, seq: u32, len: usize) -> Vec<u8> {
    let mut bytes = pattern(len.max(6), (socket as u8) ^ (seq as u8));
    bytes[..2].copy_from_slice(&socket.to_le_bytes());
    bytes[2..6].copy_from_slice(&seq.to_le_bytes());
    bytes
}

/// The (socket, sequence) a reply claims, if its bytes are exactly that datagram's.
fn verify(reply: &[u8], len: usize) -> Option<(u16, u32)> {
    if reply.len() != len.max(6) {
        return None;
    }
    let socket = u16::from_le_bytes([reply[0], reply[1]]);
    let seq = u32::from_le_bytes([reply[2], reply[3], reply[4], reply[5]]);
    (reply == tagged(socket, seq, len).as_slice()).then_some((socket, seq))
}

/// The `datagrams` object of the server's stats line.
fn datagram_stats(stats: &Option<StatsLine>, model: &Model) -> DatagramCounts {
    stats
        .as_ref()
        .map(|s| s.stats.datagrams)
        .unwrap_or_else(|| panic!("{}: no stats line", model.name))
}

/// Stops the server (SIGSTOP) until dropped (SIGCONT), so datagrams pile up in its
/// socket's receive buffer; waits until every thread has stopped.
struct Stopped<'a>(&'a ServerGuard);

impl<'a> Stopped<'a> {
    fn new(server: &'a ServerGuard) -> Stopped<'a> {
        server.signal(Signal::SIGSTOP);
        let pid = server.pid();
        let all_stopped = proc::wait_until(IO_TIMEOUT, || proc::all_threads_stopped(pid));
        assert!(all_stopped, "{}: not stopped after SIGSTOP", server.model);
        Stopped(server)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.signal(Signal::SIGCONT);
    }
}

/// The `drops` of the sockets bound to `port`: what the kernel discarded because their
/// receive buffers were full (0 where `/proc` cannot say).
fn socket_drops(port: u16) -> u64 {
    socket_drops_on_port(port).unwrap_or(0)
}

fn sizes_echo_exactly(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let socket = socket_to(&server);
    for size in [0, 1, 1400, MAX_UDP_PAYLOAD_V4] {
        assert_echoed(&socket, &pattern(size, size as u8));
    }
    // Message boundaries: two datagrams sent back to back are two replies, never one.
    socket.send(b"hello").expect("send");
    socket.send(b"feng").expect("send");
    assert_eq!(
        recv_within(&socket, IO_TIMEOUT).as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        recv_within(&socket, IO_TIMEOUT).as_deref(),
        Some(&b"feng"[..])
    );
}

fn thousand_datagrams_from_ten_sockets_reach_their_senders(model: &Model) {
    const SOCKETS: u16 = 10;
    const ROUNDS: u32 = 100;
    let server = ServerGuard::start(model.name, &[]);
    let sockets: Vec<UdpSocket> = (0..SOCKETS).map(|_| socket_to(&server)).collect();
    // Ten in flight at a time, one per socket: no receive buffer overflows, so every
    // datagram must be answered, and each to the socket that sent it.
    for seq in 0..ROUNDS {
        for (i, socket) in sockets.iter().enumerate() {
            socket.send(&tagged(i as u16, seq, 64)).expect("send");
        }
        for (i, socket) in sockets.iter().enumerate() {
            let reply = recv_within(socket, IO_TIMEOUT)
                .unwrap_or_else(|| panic!("{}: socket {i} got no reply to {seq}", model.name));
            assert_eq!(
                verify(&reply, 64),
                Some((i as u16, seq)),
                "{}: socket {i} got another datagram's reply",
                model.name
            );
        }
    }
}

fn oversize_datagram_dropped_counted_and_serving_goes_on(model: &Model) {
    let mut server = ServerGuard::start(model.name, &["--max-frame", "100"]);
    let socket = socket_to(&server);
    assert_echoed(&socket, &pattern(100, 1));
    for size in [101, 60_000] {
        socket.send(&pattern(size, 2)).expect("send");
        assert_eq!(
            recv_within(&socket, SILENCE),
            None,
            "{}: a {size}-byte datagram past --max-frame 100 was answered",
            model.name
        );
    }
    assert_echoed(&socket, b"still serving");
    let (status, _, stats) = server.terminate(IO_TIMEOUT);
    assert!(status.success(), "{}: exit {status:?}", model.name);
    let counts = datagram_stats(&stats, model);
    assert_eq!(counts.truncated, 2, "{counts:?}");
    assert_eq!(counts.answered, 2, "{counts:?}");
    assert_eq!(counts.received, 4, "{counts:?}");
}

fn burst_past_the_receive_buffer_loses_but_never_corrupts_or_misroutes(model: &Model) {
    const SOCKETS: u16 = 4;
    const PER_SOCKET: u32 = 500;
    const SIZE: usize = 1400;
    let server = ServerGuard::start(model.name, &[]);
    let port = server.addr.port();
    let sockets: Vec<UdpSocket> = (0..SOCKETS).map(|_| socket_to(&server)).collect();
    for socket in &sockets {
        // Room for every reply on the client's side, so what is lost is lost at the
        // server (the kernel caps this at rmem_max).
        let _ = socket2::SockRef::from(socket).set_recv_buffer_size(4 << 20);
    }
    let drops_before = socket_drops(port);
    {
        // 2,000 x 1,400 B = 2.8 MB at a stopped server: far past its receive buffer
        // (net.core.rmem_default, 208 KiB here), so the kernel must drop most of them.
        let _stopped = Stopped::new(&server);
        for seq in 0..PER_SOCKET {
            for (i, socket) in sockets.iter().enumerate() {
                socket.send(&tagged(i as u16, seq, SIZE)).expect("send");
            }
        }
    }
    let mut answered = 0;
    for (i, socket) in sockets.iter().enumerate() {
        let mut seen = HashSet::new();
        // Bounded: at most one reply per datagram sent, then silence.
        for _ in 0..=PER_SOCKET {
            let Some(reply) = recv_within(socket, Duration::from_secs(1)) else {
                break;
            };
            let (from, seq) = verify(&reply, SIZE)
                .unwrap_or_else(|| panic!("{}: a corrupted reply on socket {i}", model.name));
            assert_eq!(from, i as u16, "{}: misrouted reply", model.name);
            assert!(
                seq < PER_SOCKET,
                "{}: reply to a datagram never sent",
                model.name
            );
            assert!(seen.insert(seq), "{}: reply {seq} twice", model.name);
        }
        answered += seen.len() as u32;
    }
    let sent = u32::from(SOCKETS) * PER_SOCKET;
    assert!(
        answered > 0,
        "{}: nothing answered after the burst",
        model.name
    );
    assert!(
        answered < sent,
        "{}: all {sent} answered: the burst did not pass the receive buffer",
        model.name
    );
    // Where they went: the server's socket dropped them (or the kernel could not say).
    let dropped = socket_drops(port) - drops_before;
    assert!(
        dropped == 0 || dropped >= u64::from(sent - answered) / 2,
        "{}: {} lost, {dropped} counted by the server's socket",
        model.name,
        sent - answered
    );
    // And the server serves on.
    assert_echoed(&sockets[0], b"after the burst");
}

fn sigterm_answers_what_was_already_received_and_exits_0(model: &Model) {
    const SOCKETS: u16 = 5;
    const PER_SOCKET: u32 = 10;
    let mut server = ServerGuard::start(model.name, &[]);
    let sockets: Vec<UdpSocket> = (0..SOCKETS).map(|_| socket_to(&server)).collect();
    {
        // Queued while the server cannot run, then SIGTERM before it runs again: every
        // one of these datagrams was received (by the kernel) before the shutdown.
        let _stopped = Stopped::new(&server);
        for seq in 0..PER_SOCKET {
            for (i, socket) in sockets.iter().enumerate() {
                socket.send(&tagged(i as u16, seq, 64)).expect("send");
            }
        }
        server.signal(Signal::SIGTERM);
    }
    let resumed = Instant::now();
    let (status, took, stats) = server.await_exit(resumed, IO_TIMEOUT);
    assert!(status.success(), "{}: exit {status:?}", model.name);
    assert!(took < Duration::from_secs(5), "{}: slow exit", model.name);
    for (i, socket) in sockets.iter().enumerate() {
        for seq in 0..PER_SOCKET {
            let reply = recv_within(socket, Duration::from_secs(1)).unwrap_or_else(|| {
                panic!(
                    "{}: socket {i} got no reply to {seq} before the exit",
                    model.name
                )
            });
            assert_eq!(verify(&reply, 64), Some((i as u16, seq)), "{}", model.name);
        }
    }
    let counts = datagram_stats(&stats, model);
    let sent = u64::from(SOCKETS) * u64::from(PER_SOCKET);
    assert_eq!(counts.answered, sent, "{counts:?}");
}

fn daytime_answers_parse_as_a_date(model: &Model) {
    let server = ServerGuard::start(model.name, &["--service", "daytime"]);
    let socket = socket_to(&server);
    for datagram in [&b""[..], b"what time is it?"] {
        socket.send(datagram).expect("send");
        let reply = recv_within(&socket, IO_TIMEOUT).expect("a daytime reply");
        let text = String::from_utf8(reply).expect("daytime is text");
        let at = parse_daytime(&text).unwrap_or_else(|| panic!("not a date: {text:?}"));
        let skew = match at.duration_since(SystemTime::now()) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        assert!(skew < Duration::from_secs(10), "{text:?} is {skew:?} off");
    }
}

fn framed_and_auth_key_file_refused_with_a_clear_message(model: &Model) {
    let key = support::KeyFile::new(b"0123456789abcdef0123");
    for (extra, expected) in [
        (&["--protocol", "framed"][..], "no length header"),
        (
            &["--auth-key-file", key.path_str()][..],
            "no handshake over UDP",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_echolab"))
            .args(["serve", model.name, "--addr", "127.0.0.1:0"])
            .args(extra)
            .output()
            .expect("run echolab serve");
        assert!(
            !output.status.success(),
            "{}: {extra:?} accepted",
            model.name
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{}: {stderr}", model.name);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            output.stdout.is_empty(),
            "{}: it started listening",
            model.name
        );
    }
}

fn load_verifies_every_reply_and_reports_the_kernel_counters(model: &Model) {
    let mut server = ServerGuard::start(model.name, &[]);
    let (report, _) = load_report(
        server.addr,
        &[
            "--transport",
            "udp",
            "--conns",
            "4",
            "--depth",
            "4",
            "--size",
            "64",
            "--warmup",
            "100ms",
            "--duration",
            "500ms",
            "--timeout",
            "1s",
        ],
    );
    let n = |key: &str| report[key].as_u64().unwrap_or(u64::MAX);
    assert!(n("responses") > 0, "{report}");
    for key in ["corrupted", "duplicated"] {
        assert_eq!(n(key), 0, "{key}: {report}");
    }
    assert_eq!(n("sent"), n("responses") + n("lost"), "{report}");
    assert!(report["kernel"].get("rcvbuf_errors").is_some(), "{report}");
    // The generator's own CPU, as the TCP load reports it: it did some work.
    let cpu = |key: &str| report[key].as_f64().unwrap_or(-1.0);
    assert!(
        cpu("client_cpu_user_s") + cpu("client_cpu_sys_s") > 0.0,
        "{report}"
    );
    // Both ends say how much their sockets hold before the kernel drops: neither sets
    // SO_RCVBUF, so each has the system's default.
    assert!(
        report["kernel"].get("client_socket_drops").is_some(),
        "{report}"
    );
    let default = std::fs::read_to_string("/proc/sys/net/core/rmem_default")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let client = report["recv_buffer_bytes"].as_u64();
    let (status, _, stats) = server.terminate(IO_TIMEOUT);
    assert!(status.success(), "{}: exit {status:?}", model.name);
    let server_buffer = stats.as_ref().and_then(|s| s.stats.recv_buffer_bytes);
    for (side, bytes) in [("client", client), ("server", server_buffer)] {
        let bytes = bytes.unwrap_or_else(|| panic!("{}: no {side} SO_RCVBUF", model.name));
        assert!(bytes > 0, "{}: {side} SO_RCVBUF 0", model.name);
        if let Some(default) = default {
            assert_eq!(bytes, default, "{}: {side} SO_RCVBUF", model.name);
        }
    }
}

/// `RUST_LOG=trace` shows each datagram (its sender and length), as it shows each
/// blocking read of the stream models; the log goes to stderr, not into the stats line.
fn rust_log_trace_shows_each_datagram(model: &Model) {
    let log = std::env::temp_dir().join(format!(
        "echolab-udp-trace-{}-{}.log",
        std::process::id(),
        model.name
    ));
    let script = format!("RUST_LOG=trace exec \"$0\" \"$@\" 2>'{}'", log.display());
    let mut server =
        ServerGuard::start_under(model.name, "127.0.0.1:0", &["sh", "-c", &script], &[]);
    let socket = socket_to(&server);
    assert_echoed(&socket, b"trace me");
    let (status, _, stats) = server.terminate(IO_TIMEOUT);
    assert!(status.success(), "{}: exit {status:?}", model.name);
    assert!(stats.is_some(), "{}: no stats line on stdout", model.name);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let port = socket.local_addr().expect("local address").port();
    assert!(
        text.lines().any(|l| l.contains("datagram")
            && l.contains(&format!("127.0.0.1:{port}"))
            && l.contains("len=8")),
        "{}: no trace line for the datagram from port {port}:\n{text}",
        model.name
    );
}
