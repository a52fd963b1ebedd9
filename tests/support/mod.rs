//! What the shared test suites need: a server child process that is stopped on drop
//! (the harness's), sockets that never wait forever, and frame helpers.
//!
//! Every server runs as `echolab serve MODEL --addr 127.0.0.1:0` — the real binary,
//! as a user runs it — never inside the test process (fork() in a multi-threaded
//! test runner would be unsound, and it would not test what users run).

#![allow(dead_code, unreachable_pub)]

pub mod netns;
pub mod pending;
pub mod proc;
pub mod runs;
pub mod suite;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use echolab_client::{Client, ClientConfig};
use echolab_harness::{serve_args, ServerProcess};
use echolab_proto::{encode_frame, AuthKey, Reply, ReplyDecoder};
use echolab_server::StatsLine;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Every socket read or write in the suites gives up after this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `echolab serve` child: the harness's [`ServerProcess`] (SIGTERM on drop,
/// then SIGKILL after a grace period, reaped either way; `--parent-pid`, so a killed
/// test run leaves no server behind), with the suites' clients and assertions.
pub struct ServerGuard {
    process: ServerProcess,
    pub addr: SocketAddr,
    pub model: String,
}

impl ServerGuard {
    /// Starts `echolab serve MODEL --addr 127.0.0.1:0 EXTRA...` and waits for its
    /// `listening on` line.
    pub fn start(model: &str, extra: &[&str]) -> ServerGuard {
        Self::start_at(model, "127.0.0.1:0", extra)
    }

    pub fn start_at(model: &str, addr: &str, extra: &[&str]) -> ServerGuard {
        Self::start_under(model, addr, &[], extra)
    }

    /// Starts the server behind a wrapper command (`prlimit ... --`, `setpriv ...`),
    /// which must `exec` it so that the guard's pid is the server's.
    pub fn start_under(model: &str, addr: &str, wrapper: &[&str], extra: &[&str]) -> ServerGuard {
        let binary = env!("CARGO_BIN_EXE_echolab");
        let mut command = Command::new(wrapper.first().copied().unwrap_or(binary));
        if !wrapper.is_empty() {
            command.args(&wrapper[1..]).arg(binary);
        }
        command.args(serve_args(model, addr)).args(extra);
        Self::spawn(model, command)
    }

    /// Starts a prepared command that prints `listening on ADDR` first (a shell that
    /// starts the server, for a test of `--parent-pid`).
    pub fn spawn(model: &str, command: Command) -> ServerGuard {
        let process =
            ServerProcess::start_command(model, command).unwrap_or_else(|e| panic!("{e}"));
        ServerGuard {
            addr: process.addr(),
            process,
            model: model.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The way to ask the server for snapshots of itself (over its stdin).
    pub fn snapshots(&self) -> echolab_harness::Snapshots {
        self.process.snapshots()
    }

    pub fn signal(&self, signal: Signal) {
        self.process.signal(signal).expect("signal the server");
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; returns the status, how long
    /// it took, and the stats line (if printed).
    pub fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration, Option<StatsLine>) {
        let signalled = Instant::now();
        self.signal(Signal::SIGTERM);
        self.await_exit(signalled, limit)
    }

    /// The second half of [`ServerGuard::terminate`], for a test that signals, then
    /// does its own checks during the drain: waits for the exit until `limit` after
    /// `signalled` (panics if it is still running then); returns the status, how long
    /// after `signalled` it came, and the stats line (if printed).
    pub fn await_exit(
        &mut self,
        signalled: Instant,
        limit: Duration,
    ) -> (ExitStatus, Duration, Option<StatsLine>) {
        let left = limit.saturating_sub(signalled.elapsed());
        let status = self
            .wait_timeout(left)
            .unwrap_or_else(|| panic!("{}: still running {limit:?} after SIGTERM", self.model));
        let elapsed = signalled.elapsed();
        let stats = self
            .next_line(Duration::from_secs(2))
            .and_then(|line| StatsLine::parse(&line));
        (status, elapsed, stats)
    }

    /// The server's next line on stdout, if one comes within `limit`.
    pub fn next_line(&self, limit: Duration) -> Option<String> {
        self.process.next_line(limit)
    }

    /// Waits for the process to exit; `None` if it is still running at `limit`.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.process.wait_timeout(limit)
    }

    /// A blocking client with the suite's timeouts.
    pub fn client(&self) -> Client {
        Client::connect(&self.client_config()).expect("connect to the server")
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            timeout: IO_TIMEOUT,
            ..ClientConfig::new(self.addr)
        }
    }

    /// A raw TCP connection with the suite's timeouts.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }
}

/// Kills a process by PID when dropped (SIGKILL), for a process the test did not spawn
/// itself (a server started by a shell).
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0 as i32), Signal::SIGKILL);
    }
}

/// Runs `echolab load --addr ADDR --json ARGS...`, asserts that it succeeded, and
/// returns its JSON report and what it printed on stderr.
pub fn load_report(addr: SocketAddr, args: &[&str]) -> (serde_json::Value, String) {
    let (report, stderr, success) = load_run(addr, args);
    assert!(success, "echolab load {args:?}: {stderr}");
    (report, stderr)
}

/// Runs `echolab load --addr ADDR --json ARGS...` whatever it measures: its JSON report,
/// what it printed on stderr, and whether it exited 0.
pub fn load_run(addr: SocketAddr, args: &[&str]) -> (serde_json::Value, String, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_echolab"))
        .args(["load", "--addr", &addr.to_string(), "--json"])
        .args(args)
        .output()
        .expect("run echolab load");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("echolab load {args:?}: not one JSON object: {e}: {stderr}"));
    (report, stderr, output.status.success())
}

/// A loopback address nobody listens on: the port of a listener bound and dropped at once.
pub fn refused_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("probe a free port")
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// The frames for `payloads`, back to back.
pub fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    let mut wire = Vec::new();
    for payload in payloads {
        encode_frame(payload, &mut wire).expect("encode");
    }
    wire
}

/// Reads replies until `count` have arrived.
pub fn read_replies(stream: &mut TcpStream, count: usize) -> Vec<Reply> {
    let mut decoder = ReplyDecoder::new(u32::MAX >> 1);
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while replies.len() < count {
        while let Some(reply) = decoder.next_reply().expect("valid replies") {
            replies.push(reply);
        }
        if replies.len() >= count {
            break;
        }
        let n = stream.read(&mut buf).expect("read replies");
        assert!(
            n > 0,
            "server closed after {} of {count} replies",
            replies.len()
        );
        decoder.feed(&buf[..n]);
    }
    replies
}

/// Reads until the server closes; returns every reply and how the stream ended.
pub fn read_until_close(stream: &mut TcpStream) -> (Vec<Reply>, std::io::Result<()>) {
    let mut decoder = ReplyDecoder::new(u32::MAX >> 1);
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break (replies, Ok(())),
            Ok(n) => {
                decoder.feed(&buf[..n]);
                while let Some(reply) = decoder.next_reply().expect("valid replies") {
                    replies.push(reply);
                }
            }
            Err(e) => break (replies, Err(e)),
        }
    }
}

/// Reads exactly `n` bytes.
pub fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).expect("read_exact");
    buf
}

/// A payload of `len` bytes that differs at every position and per `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32) as u8)
        .collect()
}

/// A key file (mode 0600) in a fresh temporary directory, removed on drop.
pub struct KeyFile {
    dir: PathBuf,
    pub path: PathBuf,
    pub key: AuthKey,
}

impl KeyFile {
    pub fn new(bytes: &[u8]) -> KeyFile {
        Self::with_mode(bytes, 0o600)
    }

    pub fn with_mode(bytes: &[u8], mode: u32) -> KeyFile {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("echolab-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("key");
        std::fs::write(&path, bytes).expect("write key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let key = AuthKey::new(bytes.to_vec()).expect("test key long enough");
        KeyFile { dir, path, key }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes all of `data` to `stream` from a helper thread, so the caller can read the
/// echo at the same time (a raw echo of a large stream needs both directions moving).
pub fn write_in_background(
    stream: &TcpStream,
    data: Vec<u8>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    let mut writer = stream.try_clone().expect("clone stream");
    std::thread::spawn(move || writer.write_all(&data))
}

/// The payload of a frame reply; panics on a notice.
pub fn expect_frame(reply: &Reply) -> &[u8] {
    match reply {
        Reply::Frame(payload) => payload,
        Reply::Notice(text) => panic!("expected a frame, got notice {text:?}"),
    }
}

/// The text of a notice reply; panics on a frame.
pub fn expect_notice(reply: &Reply) -> &str {
    match reply {
        Reply::Notice(text) => text,
        Reply::Frame(p) => panic!("expected a notice, got a {}-byte frame", p.len()),
    }
}

/// Asserts that a deadline-driven close came neither early nor (much) late.
pub fn assert_elapsed_within(elapsed: Duration, min: Duration, max: Duration) {
    assert!(elapsed >= min, "closed too early: {elapsed:?} < {min:?}");
    assert!(elapsed < max, "closed too late: {elapsed:?} >= {max:?}");
}

/// The frame payloads among `replies`, notices skipped.
pub fn frame_payloads(replies: &[Reply]) -> Vec<&[u8]> {
    replies
        .iter()
        .filter_map(|r| match r {
            Reply::Frame(p) => Some(p.as_slice()),
            Reply::Notice(_) => None,
        })
        .collect()
}
