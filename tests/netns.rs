//! Across hosts for real, on one machine: `scripts/netns.sh` makes a server host and two
//! client hosts in network namespaces, joined by veths and a bridge, the server pinned to
//! CPU 1 and the agents to CPU 0. `echolab compare` reaches them through `ip netns exec`
//! and through a real `ssh` into the server namespace, and writes what a local run
//! writes, plus the topology. Needs root: ignored, with the reason, where it is missing.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::netns::{self, Netns};
use support::runs::{self, TempDir};
use support::suite::{self, test, Test};
use support::ServerGuard;

const TESTS: &[Test] = &[
    test(
        "netns_sh_is_idempotent_and_cleans_up_after_a_failed_command",
        netns_sh_is_idempotent_and_cleans_up_after_a_failed_command,
    )
    .needs(netns::available),
    // Each of these measures: alone.
    test(
        "a_namespaced_compare_writes_a_local_runs_files_and_the_topology",
        a_namespaced_compare_writes_a_local_runs_files_and_the_topology,
    )
    .needs(netns::available)
    .alone(),
    test(
        "compare_reaches_the_server_through_ssh",
        compare_reaches_the_server_through_ssh,
    )
    .needs(netns::ssh_available)
    .alone(),
    test("link_rate_caps_64k_echoes", link_rate_caps_64k_echoes)
        .needs(netns::tbf_available)
        .alone(),
];

fn main() {
    suite::run_timed(&[], TESTS)
}

const COMPARE_LIMIT: Duration = Duration::from_secs(180);

fn namespaces(name: &str) -> Vec<String> {
    ["sw", "srv", "c1", "c2"]
        .iter()
        .map(|h| format!("{name}-{h}"))
        .filter(|ns| netns::exists(ns))
        .collect()
}

/// `up` twice leaves one set, `down` twice is quiet, and `run` removes the set when its
/// command fails, with the command's status.
fn netns_sh_is_idempotent_and_cleans_up_after_a_failed_command() {
    let name = format!("elt{}-idem", std::process::id());
    for _ in 0..2 {
        let up = netns::netns_sh("up", &name, &[]);
        assert!(up.status.success(), "{up:?}");
        assert_eq!(namespaces(&name).len(), 4);
    }
    for _ in 0..2 {
        let down = netns::netns_sh("down", &name, &[]);
        assert!(down.status.success(), "{down:?}");
        assert_eq!(namespaces(&name), Vec::<String>::new());
    }
    // The command sees the set (its server namespace exists), then fails.
    let check = "test -e /run/netns/$(echo \"$NETNS_SERVER\" | cut -d' ' -f4) && exit 3";
    let run = netns::netns_sh("run", &name, &["--", "sh", "-c", check]);
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    assert_eq!(namespaces(&name), Vec::<String>::new());
}

/// A thread model and a process model, one to 100 connections. Not the idle scenario: a
/// snapshot walks the server's own `/proc`, and with 1,000 connections on its one CPU
/// (a debug build) that walk outlasted a 300 ms window (seen: window CPU 0, 9 replies).
const PLAN: &[&str] = &[
    "--models",
    "mio,fork",
    "--scenario",
    "latency,throughput",
    "--repeat",
    "1",
    "--duration",
    "300ms",
    "--warmup",
    "100ms",
];

/// `compare` run on the harness host of `set` with the server at `server`.
fn namespaced_compare(set: &Netns, out: &TempDir, server: &str, plan: &[&str]) {
    let mut args: Vec<&str> = plan.to_vec();
    args.extend(["--server-host", server, "--server-addr", &set.server_addr]);
    for client in &set.clients {
        args.extend(["--client-host", client]);
    }
    let harness: Vec<&str> = set.harness.split_whitespace().collect();
    runs::compare(&harness, out, &args, COMPARE_LIMIT);
}

/// Every cell measured by the server's own snapshots and loaded by the agents, and the
/// server stopped cleanly.
fn assert_measured_by_agents(json: &serde_json::Value) {
    for m in json["measurements"].as_array().expect("measurements") {
        assert!(m["responses"].as_u64().is_some_and(|n| n > 0), "{m}");
        assert!(
            m["server_cpu_secs"].as_f64().is_some_and(|c| c > 0.0),
            "{m}"
        );
        let conns = m["cell"]["conns"].as_u64().expect("conns") as usize;
        let agents = m["agent_cpu_shares"].as_array().map_or(0, Vec::len);
        assert_eq!(agents, conns.min(2), "{m}");
        assert_eq!(m["server_exit_clean"], true, "{m}");
    }
}

/// One server host and two agent hosts, each in its own namespace and on its own CPU:
/// the same files as the same plan run here, every cell measured, plus a topology that
/// says where each piece ran (one CPU each: taskset is seen from inside).
fn a_namespaced_compare_writes_a_local_runs_files_and_the_topology() {
    let set = Netns::up("cmp", &[]);
    let (local, spread) = (TempDir::new("netns-local"), TempDir::new("netns-spread"));
    runs::compare(&[], &local, PLAN, COMPARE_LIMIT);
    namespaced_compare(&set, &spread, &set.server, PLAN);
    let (_, local_files) = local.run_files();
    let (_, files) = spread.run_files();
    assert_eq!(files, local_files);
    let (dir, json) = spread.results();
    let topology = &json["topology"];
    assert_eq!(
        topology["server"]["prefix"],
        set.server.as_str(),
        "{topology}"
    );
    assert_eq!(
        topology["server_ip"],
        set.server_addr.as_str(),
        "{topology}"
    );
    let clients = topology["clients"].as_array().expect("clients");
    let prefixes: Vec<&str> = clients
        .iter()
        .filter_map(|c| c["prefix"].as_str())
        .collect();
    assert_eq!(prefixes, [&set.clients[0], &set.clients[1]]);
    for placed in clients.iter().chain([&topology["server"]]) {
        assert_eq!(placed["host"]["cores"], 1, "{placed}");
    }
    assert!(topology["floor"]["p50_us"]
        .as_f64()
        .is_some_and(|p| p > 0.0));
    assert_measured_by_agents(&json);
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README");
    assert!(
        readme.contains("## Topology") && readme.contains(&format!("`{}`", set.server)),
        "{readme}"
    );
}

/// The server started through a real `ssh` (Debian's sshd inside the server namespace,
/// a key made for this run): measured by its snapshots over the ssh channel, stopped by
/// closing it, and nothing of echolab left on the server host afterwards.
fn compare_reaches_the_server_through_ssh() {
    let set = Netns::up("ssh", &["--ssh"]);
    let ssh = set.ssh.clone().expect("up --ssh prints NETNS_SSH");
    assert!(ssh.starts_with("ssh "), "{ssh}");
    let out = TempDir::new("netns-ssh");
    let plan = [
        "--models",
        "mio,fork",
        "--scenario",
        "latency",
        "--repeat",
        "1",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
    ];
    namespaced_compare(&set, &out, &ssh, &plan);
    let (_, json) = out.results();
    assert_eq!(json["topology"]["server"]["prefix"], ssh.as_str());
    assert_eq!(json["topology"]["server"]["host"]["cores"], 1);
    assert_measured_by_agents(&json);
    // Each server ended when its ssh channel closed: only sshd is left over there.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = set
            .pids("srv")
            .into_iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
            .map(|comm| comm.trim().to_string())
            .filter(|comm| comm != "sshd")
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left on the server host: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--link-rate 100mbit` shapes both directions of every link: 64 KiB echoes across it
/// carry at most 100 Mbit/s of payload each way (unshaped, the veths carry many times
/// that), and not far below it.
fn link_rate_caps_64k_echoes() {
    let set = Netns::up("rate", &["--link-rate", "100mbit"]);
    let wrapper: Vec<&str> = set.server.split_whitespace().collect();
    let addr = format!("{}:0", set.server_addr);
    let server = ServerGuard::start_under("threads", &addr, &wrapper, &[]);
    let output = Netns::command(&set.clients[0], env!("CARGO_BIN_EXE_echolab"))
        .args(["load", "--addr", &server.addr.to_string(), "--json"])
        .args(["--conns", "4", "--size", "65536", "--duration", "2s"])
        .args(["--warmup", "500ms"])
        .stdin(Stdio::null())
        .output()
        .expect("run echolab load in a client namespace");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "echolab load: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object: {e}: {stderr}"));
    let mib = report["mib_per_sec"].as_f64().expect("mib_per_sec");
    // 100 Mbit/s is 11.9 MiB/s on the wire; headers take their share of it.
    let link = 100e6 / 8.0 / (1024.0 * 1024.0);
    eprintln!("64 KiB echoes over 100 Mbit/s links: {mib:.2} MiB/s of payload each way");
    assert!(
        mib <= link * 1.05,
        "{mib:.2} MiB/s through a {link:.2} MiB/s link"
    );
    assert!(
        mib >= link * 0.5,
        "{mib:.2} MiB/s: far below the {link:.2} MiB/s link"
    );
}
