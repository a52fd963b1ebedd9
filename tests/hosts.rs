//! Past one machine: what the harness needs from a server and from load agents that it
//! did not start as its own children. A server measures itself (a `snapshot` line on its
//! stdin), and its figures agree with the harness's `/proc` reading; EOF on stdin never
//! stops a server. Load agents connect, wait at a barrier for `go`, and report
//! histograms that the harness merges; an agent that dies, or a host that cannot be
//! reached, is a clear error and never a hang.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use echolab_client::load::agent::AgentReport;
use echolab_client::load::{self, LoadConfig};
use echolab_harness::{procfs, run_agents, serve_args, Host, Snapshots, SNAPSHOT_TIMEOUT};
use echolab_registry::Model;
use echolab_server::Snapshot;
use support::runs::{self, TempDir};
use support::suite::{self, case, test, Case, Test};
use support::{expect_frame, frames, read_replies, KillOnDrop, ServerGuard, IO_TIMEOUT};

const CASES: &[Case] = &[
    // Measures CPU: alone, so that no neighbour's load lands in the window.
    case(
        "self_measured_cpu_agrees_with_proc",
        self_measured_cpu_agrees_with_proc,
    )
    .alone(),
    case("eof_on_stdin_keeps_serving", eof_on_stdin_keeps_serving),
];

const TESTS: &[Test] = &[
    // A crowd of children and a race with the parent's walk: alone.
    test(
        "a_fork_parent_accepts_before_it_answers_the_next_snapshot",
        a_fork_parent_accepts_before_it_answers_the_next_snapshot,
    )
    .alone(),
    test(
        "an_agent_sends_nothing_before_go",
        an_agent_sends_nothing_before_go,
    ),
    test(
        "two_agents_merge_into_one_run",
        two_agents_merge_into_one_run,
    ),
    test(
        "an_agent_that_dies_mid_run_is_a_clear_error",
        an_agent_that_dies_mid_run_is_a_clear_error,
    )
    .needs(has_timeout),
    test(
        "an_agent_that_cannot_reach_its_server_is_a_clear_error",
        an_agent_that_cannot_reach_its_server_is_a_clear_error,
    ),
    test(
        "an_unreachable_host_is_a_clear_error",
        an_unreachable_host_is_a_clear_error,
    )
    .needs(has_ssh),
    // Measures: alone.
    test(
        "compare_through_prefixes_writes_a_local_runs_files_and_the_topology",
        compare_through_prefixes_writes_a_local_runs_files_and_the_topology,
    )
    .alone(),
];

fn main() {
    suite::run_timed(CASES, TESTS)
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_echolab"))
}

fn has_program(program: &str) -> Result<(), String> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found
        .then_some(())
        .ok_or_else(|| format!("needs {program}"))
}

fn has_timeout() -> Result<(), String> {
    has_program("timeout")
}

fn has_ssh() -> Result<(), String> {
    has_program("ssh")
}

/// How far the server's own CPU figure may be from the harness's `/proc` reading.
const AGREEMENT: f64 = 0.05;

/// Under a real load (connections held open for the whole window, so that neither
/// reading races a thread or child exiting), the CPU a server reports for itself over a
/// window agrees with the harness's `/proc` reading of its tree over the same window.
fn self_measured_cpu_agrees_with_proc(model: &Model) {
    let server = ServerGuard::start(model.name, &["--snapshots"]);
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

/// How many idle clients the `fork` parent holds while it is asked for snapshots: enough
/// that one snapshot (every child's `/proc` read) takes tens of milliseconds.
const CROWD: usize = 400;

/// A `fork` parent answers snapshots in the loop that accepts. A client that connects
/// while the parent reads its tree for one request, with the next request close behind,
/// is accepted before that next request is answered, so the answer counts it. (Answered
/// first, the requests held a client back by one whole walk over the tree after
/// another: the sampler asks again as soon as it has an answer, and through
/// `--server-host` the fork `idle 1000+1x64` cell measured nothing, its one client
/// accepted after a 400 ms window had closed.)
fn a_fork_parent_accepts_before_it_answers_the_next_snapshot() {
    let server = ServerGuard::start("fork", &["--snapshots"]);
    let snapshots = server.snapshots();
    let crowd: Vec<TcpStream> = (0..CROWD).map(|_| server.connect()).collect();
    // Until every client has its child, bounded in time.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (held, walk) = loop {
        let asked = Instant::now();
        let held = snapshots.take(SNAPSHOT_TIMEOUT).expect("a snapshot");
        let walk = asked.elapsed();
        let all = held.line.stats.accepted >= CROWD as u64 && held.processes > CROWD as u64;
        if all || Instant::now() > deadline {
            break (held, walk);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        held.line.stats.accepted == CROWD as u64 && held.processes > CROWD as u64,
        "the crowd was not all taken in: {held:?}"
    );
    // One request; a quarter into the walk it starts, a client connects (into the
    // backlog: the parent is walking) and the next request arrives.
    snapshots.ask().expect("ask");
    std::thread::sleep(walk / 4);
    let mut late = server.connect();
    late.write_all(&frames(&[b"late"])).expect("send");
    snapshots.ask().expect("ask again");
    let first = snapshots
        .answer(SNAPSHOT_TIMEOUT)
        .expect("the first answer");
    let second = snapshots
        .answer(SNAPSHOT_TIMEOUT)
        .expect("the second answer");
    let replies = read_replies(&mut late, 1);
    assert_eq!(expect_frame(&replies[0]), b"late");
    eprintln!(
        "fork with {CROWD} children: a snapshot took {walk:?}; the answers counted {} and {} \
         accepted",
        first.line.stats.accepted, second.line.stats.accepted
    );
    assert_eq!(
        second.line.stats.accepted,
        CROWD as u64 + 1,
        "the client that came during a walk was not accepted before the next request was \
         answered"
    );
    drop(crowd);
}

/// An agent connects its share, says `ready`, and sends nothing until `go`: the test is
/// its server (raw echo), and watches every connection stay silent before it.
fn an_agent_sends_nothing_before_go() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut agent = Command::new(binary())
        .args([
            "load",
            "--agent",
            "--protocol",
            "raw",
            "--conns",
            "2",
            "--size",
            "16",
        ])
        .args([
            "--addr",
            &addr.to_string(),
            "--duration",
            "300ms",
            "--warmup",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the agent");
    let _guard = KillOnDrop(agent.id());
    let mut streams: Vec<_> = (0..2)
        .map(|_| listener.accept().expect("the agent connects").0)
        .collect();
    let mut out = BufReader::new(agent.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read ready");
    assert_eq!(line.trim(), "ready");
    // Connected and ready: 400 ms of silence on every connection.
    for stream in &mut streams {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("traffic before go: {other:?}"),
        }
    }
    let echoes: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                let mut buf = [0u8; 4096];
                let mut echoed = 0;
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    echoed += n;
                }
                echoed
            })
        })
        .collect();
    let mut stdin = agent.stdin.take().expect("stdin");
    writeln!(stdin, "go").expect("say go");
    line.clear();
    out.read_line(&mut line).expect("read the report");
    let report: AgentReport = serde_json::from_str(&line).expect("a JSON report");
    assert!(report.responses > 0, "{report:?}");
    assert_eq!(report.conns, 2);
    assert!(report.histogram().expect("decodes").len() >= report.responses);
    assert!(agent.wait().expect("agent exits").success());
    let echoed: usize = echoes.into_iter().map(|h| h.join().expect("echo")).sum();
    assert!(echoed as u64 >= report.responses * 16);
}

fn agent_config(addr: std::net::SocketAddr, duration: Duration) -> LoadConfig {
    LoadConfig {
        conns: 4,
        threads: 1,
        duration,
        warmup: Duration::from_millis(100),
        ..LoadConfig::new(addr)
    }
}

/// Two local agents (an empty prefix) against one server: one run, with every
/// connection and response counted once.
fn two_agents_merge_into_one_run() {
    let server = ServerGuard::start("threads", &[]);
    let hosts = [Host::new("", binary()), Host::new("", binary())];
    let run = run_agents(
        &hosts,
        &agent_config(server.addr, Duration::from_millis(500)),
    )
    .expect("the agents run");
    assert_eq!(run.agents.len(), 2);
    assert_eq!(run.merged.conns, 4);
    let sum: u64 = run.agents.iter().map(|a| a.responses).sum();
    assert_eq!(run.merged.responses, sum);
    assert!(sum > 0);
    assert!(
        run.merged.errors.values().all(|&n| n == 0),
        "{:?}",
        run.merged.errors
    );
}

/// An agent killed in the middle of its run: the run fails at once with which agent and
/// how it ended — no hang until some timeout far away.
fn an_agent_that_dies_mid_run_is_a_clear_error() {
    let server = ServerGuard::start("threads", &[]);
    let hosts = [
        Host::new("", binary()),
        Host::new("timeout -s KILL 1", binary()),
    ];
    let started = Instant::now();
    let err = run_agents(&hosts, &agent_config(server.addr, Duration::from_secs(4)))
        .expect_err("a dead agent fails the run")
        .to_string();
    assert!(
        err.contains("load agent 2 on `timeout -s KILL 1`")
            && err.contains("ended before its report"),
        "{err}"
    );
    assert!(err.contains("signal: 9"), "{err}");
    // The live agent ran its 4 s; the run must not wait for more than that and the grace.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

fn an_agent_that_cannot_reach_its_server_is_a_clear_error() {
    let hosts = [Host::new("", binary())];
    let addr = support::refused_addr();
    let err = run_agents(&hosts, &agent_config(addr, Duration::from_millis(300)))
        .expect_err("nothing to connect to")
        .to_string();
    assert!(
        err.contains("ended before its `ready`") && err.contains("exit status: 1"),
        "{err}"
    );
}

/// A host that cannot be reached (TEST-NET-1, RFC 5737: routed nowhere) through a real
/// `ssh`: ssh gives up after its connect timeout, and the run says which agent and how.
fn an_unreachable_host_is_a_clear_error() {
    let prefix = "ssh -o BatchMode=yes -o ConnectTimeout=2 -o StrictHostKeyChecking=no 192.0.2.1";
    let hosts = [Host::new(prefix, binary())];
    let started = Instant::now();
    let err = run_agents(
        &hosts,
        &agent_config(support::refused_addr(), Duration::from_millis(300)),
    )
    .expect_err("no such host")
    .to_string();
    assert!(
        err.contains("ssh -o BatchMode=yes") && err.contains("ended before its `ready`"),
        "{err}"
    );
    assert!(err.contains("exit status: 255"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

fn compare(out: &TempDir, hosts: &[&str]) {
    let plan = [
        "--models",
        "mio,fork",
        "--scenario",
        "latency,idle",
        "--repeat",
        "1",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
    ];
    let args: Vec<&str> = plan.iter().chain(hosts).copied().collect();
    runs::compare(&[], out, &args, Duration::from_secs(120));
}

/// The same plan run here and through command prefixes (`env`, which runs the command
/// as a prefix such as `ip netns exec NS` does): the same files, every cell measured
/// (the server's figures from its snapshots), plus the topology.
fn compare_through_prefixes_writes_a_local_runs_files_and_the_topology() {
    let (local, prefixed) = (TempDir::new("local"), TempDir::new("prefixed"));
    compare(&local, &[]);
    compare(
        &prefixed,
        &[
            "--server-host",
            "env",
            "--client-host",
            "env",
            "--client-host",
            "env",
        ],
    );
    let (_, local_files) = local.run_files();
    let (_, files) = prefixed.run_files();
    assert_eq!(files, local_files);
    let (dir, json) = prefixed.results();
    let topology = &json["topology"];
    assert_eq!(topology["server"]["prefix"], "env", "{topology}");
    assert_eq!(topology["clients"].as_array().map(Vec::len), Some(2));
    assert!(topology["floor"]["p50_us"]
        .as_f64()
        .is_some_and(|p| p > 0.0));
    assert!(topology["server"]["host"]["cores"]
        .as_u64()
        .is_some_and(|c| c >= 1));
    for m in json["measurements"].as_array().expect("measurements") {
        assert!(m["responses"].as_u64().is_some_and(|n| n > 0), "{m}");
        assert!(
            m["server_cpu_secs"].as_f64().is_some_and(|c| c > 0.0),
            "{m}"
        );
        assert!(m["peak_rss_kb"].as_u64().is_some_and(|c| c > 0), "{m}");
        // One agent per connection at most: the latency cell's one goes to one agent.
        let conns = m["cell"]["conns"].as_u64().expect("conns") as usize;
        let agents = m["agent_cpu_shares"].as_array().map_or(0, Vec::len);
        assert_eq!(agents, conns.min(2), "{m}");
        assert_eq!(m["server_exit_clean"], true, "{m}");
    }
    assert!(json["topology"].is_object());
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README");
    assert!(
        readme.contains("## Topology") && readme.contains("`env`"),
        "{readme}"
    );
}
