//! Where a run's pieces ran: the harness, the server and each load agent, each host's
//! CPUs and kernel (asked of the `echolab` there: `echolab machine --json`), and the
//! floor between the client host and the server host — what one connection's round trip
//! costs there at all, with the simplest server. Every run across hosts records it, as a
//! local run records its machine and loopback floor.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use echolab_client::load::{self, LoadConfig};
use serde::{Deserialize, Serialize};

use crate::agents::run_agents;
use crate::error::HarnessError;
use crate::host::{Host, Hosts};
use crate::machine::Machine;
use crate::server::{forward_lines, ServerProcess};

/// How long a host has to say what it is.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// One host as `echolab machine --json` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name.
    pub host: String,
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs available to `echolab` there (after `taskset`, say).
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// The `echolab` version there.
    pub version: String,
}

impl HostInfo {
    /// This host.
    pub fn detect() -> HostInfo {
        let m = Machine::detect();
        HostInfo {
            host: m.host,
            cpu: m.cpu,
            cores: m.cores,
            kernel: m.kernel,
            memory_mib: m.memory_mib,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The host behind `host`'s prefix, asked with `echolab machine --json`.
    pub fn of(host: &Host) -> Result<HostInfo, HarnessError> {
        let fail = |why: String| HarnessError::Agent(format!("host `{}`: {why}", host.prefix));
        let mut child = host
            .command(&["machine", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail(format!("cannot run `echolab machine` there: {e}")))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("no stdout pipe".into()));
        };
        let line = forward_lines(stdout).recv_timeout(ASK_TIMEOUT);
        let _ = child.kill();
        let status = child.wait();
        let line = line.map_err(|_| {
            fail(format!(
                "`echolab machine --json` said nothing ({}; its stderr is above)",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            ))
        })?;
        serde_json::from_str(&line).map_err(|e| fail(format!("unreadable answer {line:?}: {e}")))
    }
}

/// One piece of the run and where it ran.
#[derive(Debug, Clone, Serialize)]
pub struct Placed {
    /// The command prefix (empty: this process, on the harness's host).
    pub prefix: String,
    /// That host.
    pub host: HostInfo,
}

/// The round trip between the client host and the server host.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HostFloor {
    /// Median, µs: one connection, 64 B, to `iterative` (a blocking echo).
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

/// Where a run ran.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// The harness's own host.
    pub harness: HostInfo,
    /// The server's.
    pub server: Placed,
    /// Each load agent's (one entry, the harness's host, when the load ran in-process).
    pub clients: Vec<Placed>,
    /// The address the server bound.
    pub server_ip: String,
    /// The floor between the (first) client host and the server host.
    pub floor: HostFloor,
}

impl Topology {
    /// Asks every host what it is and measures the floor between them.
    pub fn detect(hosts: &Hosts, binary: &std::path::Path) -> Result<Topology, HarnessError> {
        let harness = HostInfo::detect();
        let place = |host: Option<&Host>| -> Result<Placed, HarnessError> {
            Ok(match host {
                Some(host) => Placed {
                    prefix: host.prefix.clone(),
                    host: HostInfo::of(host)?,
                },
                None => Placed {
                    prefix: String::new(),
                    host: harness.clone(),
                },
            })
        };
        let server = place(hosts.server.as_ref())?;
        let clients = if hosts.clients.is_empty() {
            vec![place(None)?]
        } else {
            hosts
                .clients
                .iter()
                .map(|h| place(Some(h)))
                .collect::<Result<_, _>>()?
        };
        Ok(Topology {
            harness,
            server,
            clients,
            server_ip: hosts.server_ip.to_string(),
            floor: floor(hosts, binary)?,
        })
    }

    /// The results README's section.
    pub fn section(&self) -> String {
        let mut out = String::from(
            "## Topology\n\n| runs | through | host | CPUs | kernel |\n|---|---|---|---:|---|\n",
        );
        let mut row = |what: &str, p: &Placed| {
            let through = if p.prefix.is_empty() {
                "(the harness)".to_string()
            } else {
                format!("`{}`", p.prefix)
            };
            let _ = writeln!(
                out,
                "| {what} | {through} | {} ({}) | {} | {} |",
                p.host.host, p.host.cpu, p.host.cores, p.host.kernel
            );
        };
        row("server", &self.server);
        for (i, c) in self.clients.iter().enumerate() {
            row(&format!("load {}", i + 1), c);
        }
        let _ = writeln!(
            out,
            "\nServer at {}; floor between the client and server hosts (one connection, 64 B, \
             `iterative`): p50 {:.1} µs, p99 {:.1} µs.\n",
            self.server_ip, self.floor.p50_us, self.floor.p99_us
        );
        out
    }
}

/// One connection's round trip from the (first) client host to the server host.
fn floor(hosts: &Hosts, binary: &std::path::Path) -> Result<HostFloor, HarnessError> {
    let server = match &hosts.server {
        Some(host) => {
            let addr = SocketAddr::new(hosts.server_ip, 0).to_string();
            ServerProcess::start_on(host, "iterative", &addr, &[])?
        }
        None => ServerProcess::start(binary, "iterative", &[])?,
    };
    let config = LoadConfig {
        conns: 1,
        threads: 1,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        ..LoadConfig::new(server.addr())
    };
    let report = match hosts.clients.first() {
        Some(client) => run_agents(std::slice::from_ref(client), &config)?.merged,
        None => load::run(&config)?,
    };
    server.stop();
    Ok(HostFloor {
        p50_us: report.latency_us.p50,
        p99_us: report.latency_us.p99,
    })
}
