//! Past one machine: what the harness needs from a server and from load agents that it
//! did not start as its own children. A server measures itself (a `snapshot` line on its
//! stdin), and its figures agree with the harness's `/proc` reading; EOF on stdin never
//! stops a server.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use echolab_client::load::{self, LoadConfig};
use echolab_harness::{procfs, serve_args, Snapshots, SNAPSHOT_TIMEOUT};
use echolab_registry::Model;
use echolab_server::Snapshot;
use support::suite::{self, case, Case};
use support::ServerGuard;

const CASES: &[Case] = &[
    // Measures CPU: alone, so that no neighbour's load lands in the window.
    case(
        "self_measured_cpu_agrees_with_proc",
        self_measured_cpu_agrees_with_proc,
    )
    .alone(),
    case("eof_on_stdin_keeps_serving", eof_on_stdin_keeps_serving),
];

fn main() {
    suite::run_timed(CASES, &[])
}

/// How far the server's own CPU figure may be from the harness's `/proc` reading.
const AGREEMENT: f64 = 0.05;

/// Under a real load (connections held open for the whole window, so that neither
/// reading races a thread or child exiting), the CPU a server reports for itself over a
/// window agrees with the harness's `/proc` reading of its tree over the same window.
fn self_measured_cpu_agrees_with_proc(model: &Model) {
    let server = ServerGuard::start(model.name, &[]);
    let (pid, snapshots) = (server.pid(), server.snapshots());
    let config = LoadConfig {
        // One client for a server that serves one at a time: the rest would only wait.
        conns: if model.concurrent() { 8 } else { 1 },
        threads: 1,
        duration: Duration::from_millis(2500),
        warmup: Duration::ZERO,
        ..LoadConfig::new(server.addr)
    };
    let load = std::thread::spawn(move || load::run(&config));
    std::thread::sleep(Duration::from_millis(500));
    let (proc_a, self_a) = both_readings(pid, &snapshots);
    std::thread::sleep(Duration::from_millis(1500));
    let (proc_b, self_b) = both_readings(pid, &snapshots);
    let report = load
        .join()
        .expect("load thread")
        .expect("load runs against the server");
    assert!(report.responses > 0, "{}: no replies", model.name);
    let by_proc = proc_b - proc_a;
    let by_self = self_b.since(&self_a).cpu_secs;
    let off = (by_self - by_proc) / by_proc;
    eprintln!(
        "{}: server CPU over the window: /proc {by_proc:.4} s, self {by_self:.4} s ({:+.2}%), \
         {} processes",
        model.name,
        off * 100.0,
        self_b.processes
    );
    assert!(
        by_proc > 0.02,
        "{}: too little CPU to compare ({by_proc} s)",
        model.name
    );
    assert!(
        off.abs() <= AGREEMENT,
        "{}: self-measured {by_self:.4} s against /proc {by_proc:.4} s ({:+.2}%)",
        model.name,
        off * 100.0
    );
}

/// The harness's reading of the tree just before and just after a snapshot, averaged:
/// the snapshot was taken between the two.
fn both_readings(pid: u32, snapshots: &Snapshots) -> (f64, Snapshot) {
    let before = procfs::sample_tree(pid).expect("server alive").cpu_secs;
    let snapshot = snapshots.take(SNAPSHOT_TIMEOUT).expect("a snapshot");
    let after = procfs::sample_tree(pid).expect("server alive").cpu_secs;
    ((before + after) / 2.0, snapshot)
}

/// A server whose stdin is `/dev/null` (EOF at once, as a harness or a shell gives it)
/// keeps serving, and a process model's parent, which polls stdin in its loop, does not
/// spin on it.
fn eof_on_stdin_keeps_serving(model: &Model) {
    let binary = env!("CARGO_BIN_EXE_echolab");
    let mut command = Command::new("sh");
    command
        .args(["-c", "exec \"$@\" </dev/null", "sh", binary])
        .args(serve_args(model.name, "127.0.0.1:0"));
    let server = ServerGuard::spawn(model.name, command);
    let started = Instant::now();
    let cpu_before = procfs::sample_tree(server.pid()).expect("alive").cpu_secs;
    std::thread::sleep(Duration::from_millis(500));
    let mut client = server.client();
    assert_eq!(client.echo(b"still here").expect("echo"), b"still here");
    let cpu = procfs::sample_tree(server.pid()).expect("alive").cpu_secs - cpu_before;
    let share = cpu / started.elapsed().as_secs_f64();
    // A loop woken by a descriptor that stays readable at EOF would burn a whole core.
    if !model.busy_waits {
        assert!(share < 0.3, "{}: {share:.2} of a core at rest", model.name);
    }
}
