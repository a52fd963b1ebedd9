//! The binary as a user meets it: help, the model list, and errors a user can cause —
//! each one clear line on stderr and a non-zero exit, never a panic.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use echolab_registry::MODELS;
use nix::sys::signal::Signal;
use support::{proc, KillOnDrop, ServerGuard};

fn echolab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_echolab"))
        .args(args)
        .output()
        .expect("run echolab")
}

fn assert_clean_failure(output: &Output, expected: &str) {
    assert!(!output.status.success(), "expected failure");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(expected), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "stderr: {stderr}");
}

#[test]
fn models_lists_every_registered_model() {
    let output = echolab(&["models"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for model in MODELS {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(model.name) && l.contains(model.summary)),
            "{stdout}"
        );
    }
}

#[test]
fn unknown_model_names_the_real_ones() {
    let output = echolab(&["serve", "nosuch", "--addr", "127.0.0.1:0"]);
    assert_clean_failure(&output, "unknown model `nosuch`");
    assert_clean_failure(&output, MODELS[0].name);
}

#[test]
fn connection_refused_is_one_clear_line() {
    let addr = support::refused_addr().to_string();
    let output = echolab(&["echo", "--addr", &addr, "hello"]);
    assert_clean_failure(&output, "cannot connect");
    assert_eq!(String::from_utf8_lossy(&output.stderr).lines().count(), 1);
}

#[test]
fn a_load_where_nothing_listens_fails_in_one_line() {
    // The user's own mistake, a wrong port: every connect is refused. The report says so
    // and the exit status too, so a script cannot take zero responses/s for a result.
    let addr = support::refused_addr().to_string();
    let output = echolab(&[
        "load",
        "--addr",
        &addr,
        "--warmup",
        "0",
        "--duration",
        "0.2",
    ]);
    assert_clean_failure(&output, "the run measured nothing");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("errors: connect 50"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("errors: connect 50"), "{stdout}");
}

#[test]
fn bad_flag_value_is_rejected_by_the_parser() {
    let output = echolab(&[
        "serve",
        "threads",
        "--addr",
        "127.0.0.1:0",
        "--max-frame",
        "lots",
    ]);
    assert_clean_failure(&output, "--max-frame");
}

#[test]
fn zero_workers_is_a_usage_error_before_anything_starts() {
    let output = echolab(&["serve", "pool", "--addr", "127.0.0.1:0", "--workers", "0"]);
    assert_clean_failure(&output, "--workers must be at least 1");
    assert_eq!(output.status.code(), Some(2), "a usage error exits 2");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening on"),
        "refused before it bound"
    );
}

#[test]
fn too_short_key_is_refused() {
    let key = support::KeyFile::with_mode(b"0123456789abcdef", 0o600);
    std::fs::write(&key.path, b"short").expect("rewrite key");
    let output = echolab(&[
        "serve",
        "threads",
        "--addr",
        "127.0.0.1:0",
        "--auth-key-file",
        key.path_str(),
    ]);
    assert_clean_failure(&output, "at least 16");
}

#[test]
fn echo_and_ping_talk_to_a_server() {
    let server = ServerGuard::start("threads", &[]);
    let addr = server.addr.to_string();
    let output = echolab(&["echo", "--addr", &addr, "hello", "feng"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hello\nfeng\n");

    let output = echolab(&["ping", "--addr", &addr, "--size", "64", "--count", "50"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("50 round trips of 64 bytes"), "{stdout}");
    assert!(stdout.contains("p99"), "{stdout}");
}

#[test]
fn frame_too_large_is_reported_not_panicked() {
    let server = ServerGuard::start("threads", &["--max-frame", "4"]);
    let addr = server.addr.to_string();
    let output = echolab(&["echo", "--addr", &addr, "too long"]);
    assert_clean_failure(&output, "exceeds the limit");
}

#[test]
fn a_server_with_parent_pid_stops_when_its_parent_is_killed() {
    // sh is the parent: it starts the server in the background, names itself ($$) as
    // the parent, and waits; the server's stdout is the pipe the guard reads.
    let mut command = Command::new("sh");
    command.args([
        "-c",
        r#""$0" serve mio --addr 127.0.0.1:0 --parent-pid $$ & wait"#,
        env!("CARGO_BIN_EXE_echolab"),
    ]);
    let parent = ServerGuard::spawn("mio", command);
    let servers = proc::children(parent.pid());
    assert_eq!(servers.len(), 1, "children of sh: {servers:?}");
    let _cleanup = KillOnDrop(servers[0]);
    parent.signal(Signal::SIGKILL);
    // SIGTERM from the kernel: the server shuts down as usual and prints its stats.
    let stats = parent
        .next_line(Duration::from_secs(5))
        .expect("no stats line: the server outlived its parent");
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats line is JSON");
    assert_eq!(stats["model"], "mio", "{stats}");
    assert!(
        proc::wait_until(Duration::from_secs(5), || matches!(
            proc::state(servers[0]),
            None | Some('Z')
        )),
        "server {} still running",
        servers[0]
    );
}

#[test]
fn a_server_whose_parent_is_already_gone_stops_at_once() {
    // This test process is the server's parent, not PID 1: as if the real parent had
    // died before the server could ask to be told.
    let mut command = Command::new(env!("CARGO_BIN_EXE_echolab"));
    command.args(["serve", "mio", "--addr", "127.0.0.1:0", "--parent-pid", "1"]);
    let mut server = ServerGuard::spawn("mio", command);
    let status = server.wait_timeout(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "server still running or failed: {status:?}"
    );
}

/// Everything `reader` yields until EOF, read on a helper thread so the test can bound
/// the wait.
fn read_to_end_in_background(mut reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

#[test]
fn a_server_orphaned_with_no_reader_for_its_stats_still_exits_cleanly() {
    // A killed harness takes the reader of the server's stdout with it. Here `head` reads
    // the `listening on` line and exits; sh, the parent, is then killed.
    let mut sh = Command::new("sh")
        .args([
            "-c",
            r#""$0" serve mio --addr 127.0.0.1:0 --parent-pid $$ | head -n 1"#,
            env!("CARGO_BIN_EXE_echolab"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    // If the test fails before it kills sh itself, sh must not outlive it (the server,
    // with `--parent-pid`, then stops on its own).
    let _sh_cleanup = KillOnDrop(sh.id());
    let mut stdout = BufReader::new(sh.stdout.take().expect("sh stdout"));
    let stderr = read_to_end_in_background(sh.stderr.take().expect("sh stderr"));
    // head exits after one line or at EOF, so this read cannot block for good.
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read head's line");
    assert!(first.starts_with("listening on"), "{first:?}");
    let servers: Vec<u32> = proc::children(sh.id())
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.starts_with("echolab"))
        })
        .collect();
    assert_eq!(servers.len(), 1, "servers under sh: {servers:?}");
    let _cleanup = KillOnDrop(servers[0]);
    sh.kill().expect("kill sh");
    let _ = sh.wait();
    // stderr reaches EOF once the server, its last writer, has exited.
    let stderr = stderr
        .recv_timeout(Duration::from_secs(10))
        .expect("the server outlived its parent");
    assert!(!stderr.contains("panicked"), "server stderr: {stderr}");
    assert!(stderr.is_empty(), "server stderr: {stderr}");
}

/// Serves one echo on `mio` with `RUST_LOG` set to `rust_log` (or unset), stops it with
/// SIGTERM, and returns everything it wrote to stderr.
fn server_stderr_around_one_echo(rust_log: Option<&str>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echolab"));
    command.args(["serve", "mio", "--addr", "127.0.0.1:0"]);
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let _cleanup = KillOnDrop(child.id());
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("listening line");
    let addr = first.trim().trim_start_matches("listening on ").to_string();
    let stderr = read_to_end_in_background(child.stderr.take().expect("stderr"));
    let output = echolab(&["echo", "--addr", &addr, "hello"]);
    assert!(output.status.success(), "{output:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let log = stderr
        .recv_timeout(Duration::from_secs(10))
        .expect("the server's stderr closes when it exits");
    let _ = child.wait();
    log
}

#[test]
fn rust_log_debug_shows_each_connection_s_life() {
    let log = server_stderr_around_one_echo(Some("debug"));
    assert!(
        log.contains("accepted") && log.contains("peer=127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains("closed")
            && log.contains("reason=\"peer_closed\"")
            && log.contains("bytes_in=9"),
        "{log}"
    );
}

#[test]
fn without_rust_log_a_server_logs_nothing() {
    let log = server_stderr_around_one_echo(None);
    assert!(log.is_empty(), "{log}");
}

/// `load --transport udp` against a socket that never answers: with no `--timeout` a
/// datagram counts lost after the library's 1 s (as in the harness), not the 5 s TCP
/// connect/read timeout; an explicit `--timeout` still rules.
#[test]
fn udp_load_counts_a_datagram_lost_after_one_second_by_default() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a silent socket");
    let addr = silent.local_addr().expect("local address").to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "load",
            "--transport",
            "udp",
            "--addr",
            &addr,
            "--conns",
            "1",
            "--rate",
            "20",
            "--duration",
            "200ms",
            "--warmup",
            "0s",
            "--json",
        ];
        args.extend_from_slice(extra);
        let started = std::time::Instant::now();
        let output = echolab(&args);
        // Nothing answered: the report is printed, then the run fails as one that
        // measured nothing.
        assert_clean_failure(&output, "the run measured nothing");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the report is JSON");
        (
            started.elapsed(),
            report["lost"].as_u64().expect("lost is counted"),
        )
    };
    let (elapsed, lost) = run(&[]);
    assert!(lost > 0, "nothing answered, so every datagram is lost");
    assert!(
        elapsed < Duration::from_secs(4),
        "the default reply timeout is 1 s, yet the run took {elapsed:?}"
    );
    let (elapsed, _) = run(&["--timeout", "2s"]);
    assert!(
        elapsed >= Duration::from_secs(2),
        "--timeout 2s waits 2 s for owed replies, the run took {elapsed:?}"
    );
}

#[test]
fn help_names_the_default_address_of_serve_and_the_clients() {
    // The first five minutes: `echolab serve mio` and `echolab echo hello` meet on one
    // address that no flag names, and `--help` says which. Only the help is read here:
    // tests never bind a fixed port.
    for command in ["serve", "echo", "ping", "load"] {
        let output = echolab(&[command, "--help"]);
        assert!(output.status.success(), "{command} --help failed");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("[default: 127.0.0.1:7007]"),
            "`echolab {command} --help` does not name the default address:\n{help}"
        );
    }
}
