//! One run of one cell on one model: a fresh server, the load, the server's cost.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use echolab_client::datagram::{self, DatagramLoadConfig, DatagramLoadReport};
use echolab_client::load::{self, LoadConfig, LoadReport};
use echolab_proto::WorkSpec;
use serde::Serialize;

use crate::agents::run_agents;
use crate::error::HarnessError;
use crate::floor_cost::{floor_for, FloorCost};
use crate::host::Hosts;
use crate::marks::{self, ClientLoad, Marks};
use crate::sampler::{Probe, Sampler, Window};
use crate::scenario::{Cell, Scenario};
use crate::server::ServerProcess;
use crate::variant::Variant;
use echolab_client::load::agent::AgentReport;

/// How long the idle crowd gets to be accepted before memory is read.
const IDLE_SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The crowd is settled when the count of held connections has not grown for this long
/// (plus a counting pause): a model that takes no more (`iterative`, `prefork`) has
/// stopped for good, while a fork per connection gains every few milliseconds.
pub(crate) const IDLE_NO_PROGRESS: Duration = Duration::from_millis(500);
/// How long after its end a run collects replies still owed: a reply from a server
/// that is alive comes in milliseconds even at 1,000 connections, and a starved
/// client's never comes, however long it is waited for (the load generator's own
/// default is half a second, spent by every starved run).
pub(crate) const HARNESS_COLLECT_OWED: Duration = Duration::from_millis(200);
/// Per-connect limit for the idle crowd (a model that stops accepting leaves the rest
/// in the backlog, or in SYN retries once the backlog is full).
const IDLE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The `udp` scenario: a datagram with no reply for this long is lost. Over loopback a
/// reply comes in microseconds, or in milliseconds from a backed-up queue; this is
/// long past both, and short enough that a run ends soon after its window.
pub(crate) const UDP_REPLY_TIMEOUT: Duration = Duration::from_millis(500);

/// How a run that could not be made is marked.
const COULD_NOT_RUN: &str = "could not run";

/// Everything measured in one run of one cell.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// The model.
    pub model: String,
    /// The cell.
    pub cell: Cell,
    /// Which repeat (0-based).
    pub repeat: usize,
    /// Verified responses in the measured window.
    pub responses: u64,
    /// Responses per second.
    pub responses_per_sec: f64,
    /// Payload MiB/s (one direction).
    pub mib_per_sec: f64,
    /// Round-trip latency percentiles, microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest.
    pub max_us: f64,
    /// The `work` scenario: p99 of the messages that got the spec's cheapest work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_fast_us: Option<f64>,
    /// The `work` scenario's long-tail mix: p99 of the dearer messages alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_slow_us: Option<f64>,
    /// Samples behind the percentiles.
    #[serde(default)]
    pub latency_samples: u64,
    /// Messages still unanswered when the window ended: samples of their wait so far
    /// (censored), the sign of a starved client.
    #[serde(default)]
    pub censored_waits: u64,
    /// The samples those waits stand for in the percentiles (in the closed loop, also
    /// the messages a stalled connection held back; see `echolab_client::load`).
    #[serde(default)]
    pub censored_samples: u64,
    /// Load-generator errors by kind (only the non-zero ones).
    pub errors: BTreeMap<String, u64>,
    /// Jain's fairness index over the active connections.
    pub jain: f64,
    /// Fewest responses any active connection got (0: a starved client).
    pub min_per_conn: u64,
    /// Server CPU seconds (user + system, whole tree) inside the measured window.
    pub server_cpu_secs: f64,
    /// How much `server_cpu_secs` may be off by: CPU of the children a `fork` server
    /// reaped while the readings that bound the window walked its tree (0 for a tree
    /// where nothing exited). Over 5% of the figure (`marks::UNCERTAIN_SHARE`), the cell
    /// is marked measurement suspect.
    #[serde(default)]
    pub server_cpu_uncertain_secs: f64,
    /// Server CPU seconds per second of the window: the share of one core it used
    /// (the rest scenario's figure: what it burns doing nothing).
    pub server_cpu_share: f64,
    /// Responses per server CPU-second (`None` if the server used no measurable CPU).
    pub responses_per_cpu_sec: Option<f64>,
    /// Largest RSS of the server's tree during the run, KiB.
    pub peak_rss_kb: u64,
    /// Most threads in the tree.
    pub peak_threads: u64,
    /// Most processes in the tree.
    pub peak_processes: u64,
    /// Voluntary context switches over the server's life (from its stats line).
    pub voluntary_ctx_switches: Option<u64>,
    /// Involuntary context switches over the server's life.
    pub involuntary_ctx_switches: Option<u64>,
    /// Idle scenario: connections the server actually held (new sockets in its tree).
    pub idle_held: Option<u64>,
    /// Idle scenario: proportional memory (PSS) per held connection, KiB.
    pub memory_per_conn_kb: Option<f64>,
    /// The server exited 0 after SIGTERM.
    pub server_exit_clean: bool,
    /// The load generator's own CPU seconds (user + system) in the measured window: a
    /// figure near the window's length means the client, not the server, was the limit.
    pub client_cpu_secs: f64,
    /// The CPU seconds the generator could have used in the window: its threads, or the
    /// CPUs it may run on if fewer, times the window (0: no load ran).
    #[serde(default)]
    pub client_cpu_limit_secs: f64,
    /// Why the figures are not the server's to read, if they are not: the generator was
    /// the limit, or the server's CPU per response is below the kernel's floor.
    #[serde(flatten)]
    pub marks: Marks,
    /// Errors the server counted, by kind (its stats line; only the non-zero ones): a
    /// clean benchmark run has none.
    pub server_errors: BTreeMap<String, u64>,
    /// The load agents' CPU, each as a share of its threads over the window (empty
    /// when the load ran in this process).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agent_cpu_shares: Vec<f64>,
    /// The `udp` scenario's own figures (empty in every other scenario); flattened,
    /// so `results.json` has them beside the others.
    #[serde(flatten)]
    pub udp: UdpFigures,
    /// Why the run measured nothing, if it did not: `no replies` (active connections,
    /// not one reply in the window), or the error that kept it from running. Its figures
    /// are then not a result: the tables mark it and the charts leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// What only a `udp` run measures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UdpFigures {
    /// The offered rate, datagrams per second.
    pub offered_rate: Option<f64>,
    /// Datagrams sent in the measured window.
    pub sent: Option<u64>,
    /// `sent` per second, the rate really offered (below `offered_rate` when the
    /// generator could not keep up).
    pub sent_per_sec: Option<f64>,
    /// Of those sent, how many got no reply within the reply timeout.
    pub lost: Option<u64>,
    /// `lost` as a percentage of `sent`.
    pub loss_pct: Option<f64>,
    /// Datagrams the kernel dropped at the server's sockets (their receive buffers were
    /// full), from `/proc/net/udp`, over the whole run (warm-up included).
    pub server_socket_drops: Option<u64>,
    /// Replies the kernel dropped at the client's sockets (their receive buffers were
    /// full: the generator fell behind reading), from `/proc/net/udp`, over the run.
    #[serde(default)]
    pub client_socket_drops: Option<u64>,
    /// `SO_RCVBUF` of the server's receiving socket, bytes (from its stats line).
    #[serde(default)]
    pub server_rcvbuf_bytes: Option<u64>,
    /// `SO_RCVBUF` of each of the client's sockets, bytes.
    #[serde(default)]
    pub client_rcvbuf_bytes: Option<u64>,
}

impl UdpFigures {
    fn of(report: &DatagramLoadReport, exit: &crate::server::ServerExit) -> UdpFigures {
        UdpFigures {
            offered_rate: report.target_rate,
            sent: Some(report.sent),
            sent_per_sec: Some(report.sent_per_sec),
            lost: Some(report.lost),
            loss_pct: Some(report.loss_pct),
            server_socket_drops: report.kernel.server_socket_drops,
            client_socket_drops: report.kernel.client_socket_drops,
            server_rcvbuf_bytes: exit
                .stats
                .as_ref()
                .and_then(|line| line.stats.recv_buffer_bytes),
            client_rcvbuf_bytes: report.recv_buffer_bytes,
        }
    }
}

impl Measurement {
    /// A run of `cell` that could not be made (its server did not start, ...): recorded,
    /// so the tables say so, rather than silently missing.
    pub fn could_not_run(model: &str, cell: Cell, repeat: usize, error: &HarnessError) -> Self {
        let exit = crate::server::ServerExit {
            clean: false,
            stats: None,
        };
        let measured = Measured {
            window: Window::default(),
            seconds: 0.0,
            idle: &IdleCrowd::default(),
            exit: &exit,
        };
        Measurement {
            failure: Some(format!("{COULD_NOT_RUN}: {error}")),
            ..measurement(model, cell, repeat, None, &measured)
        }
    }

    /// Whether the run measured something: a reply, or (no active connection) the
    /// server at rest.
    pub fn measured(&self) -> bool {
        self.failure.is_none()
    }

    /// Marks the run client-bound if the generator was the limit (`marks`).
    pub(crate) fn mark_client_bound(&mut self) {
        self.marks.client_bound = marks::client_bound(&ClientLoad {
            cpu_secs: self.client_cpu_secs,
            cpu_limit_secs: self.client_cpu_limit_secs,
            rate: self.udp.offered_rate.zip(self.udp.sent_per_sec),
        });
    }

    /// Marks the run measurement suspect if its server CPU per response is below half
    /// the kernel's floor for its messages, or its server CPU is uncertain by more than
    /// 5% (`marks`).
    pub(crate) fn mark_suspect(&mut self, floors: &[FloorCost]) {
        let floor = floor_for(floors, self.cell.scenario.is_datagram(), self.cell.size);
        let why: Vec<String> = [
            marks::suspect(self.server_cpu_us_per_response(), floor),
            marks::uncertain(self.server_cpu_secs, self.server_cpu_uncertain_secs),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.marks.suspect = (!why.is_empty()).then(|| why.join(", "));
    }

    /// Server CPU µs per response, if there were responses.
    pub fn server_cpu_us_per_response(&self) -> Option<f64> {
        (self.responses > 0).then(|| self.server_cpu_secs * 1e6 / self.responses as f64)
    }

    /// A short verdict for the table: empty when the run was clean.
    pub fn note(&self) -> String {
        let mut notes = Vec::new();
        if let Some(failure) = &self.failure {
            // A run that could not be made has nothing else to say.
            if failure.starts_with(COULD_NOT_RUN) {
                return failure.clone();
            }
            notes.push(failure.clone());
        } else if self.min_per_conn == 0 && self.cell.conns > 1 {
            notes.push("starved clients".to_string());
        }
        if let (Some(held), true) = (self.idle_held, self.cell.idle_conns > 0) {
            if held < self.cell.idle_conns as u64 {
                notes.push(format!("held {held}/{} idle", self.cell.idle_conns));
            }
        }
        let errors: u64 = self.errors.values().sum();
        if errors > 0 {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            notes.push(kinds.join(", "));
        }
        if let Some(why) = &self.marks.client_bound {
            notes.push(format!("client-bound: {why}"));
        }
        if let Some(why) = &self.marks.suspect {
            notes.push(format!("measurement suspect: {why}"));
        }
        if !self.server_errors.is_empty() {
            let kinds: Vec<String> = self
                .server_errors
                .iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            notes.push(format!("server errors {}", kinds.join(",")));
        }
        if !self.server_exit_clean {
            notes.push("unclean exit".to_string());
        }
        notes.join("; ")
    }
}

/// The knobs of one run.
#[derive(Debug, Clone)]
pub struct RunSettings<'a> {
    /// The `echolab` executable.
    pub binary: &'a Path,
    /// Measured time.
    pub duration: Duration,
    /// Load before measuring.
    pub warmup: Duration,
    /// Load-generator threads.
    pub threads: usize,
    /// The CPU the server is pinned to, if any.
    pub server_cpu: Option<usize>,
    /// `compare --work`: the work per message for every cell that does not name its own.
    pub work: Option<WorkSpec>,
    /// Where the server and the load run when not here.
    pub hosts: &'a Hosts,
}

/// A load agent whose threads used this share of their CPU or more was the limit.
pub const CLIENT_BOUND_SHARE: f64 = 0.9;

/// Runs `cell` once on `model`.
pub fn run_cell(
    settings: &RunSettings<'_>,
    model: &str,
    cell: Cell,
    repeat: usize,
) -> Result<Measurement, HarnessError> {
    let variant = Variant::parse(model);
    let mut server_args: Vec<String> = settings
        .server_cpu
        .map(|cpu| vec!["--cpu".to_string(), cpu.to_string()])
        .unwrap_or_default();
    server_args.extend(variant.server_args());
    let work = cell
        .work
        .map(|w| w.spec())
        .or_else(|| settings.work.clone());
    if let Some(work) = &work {
        server_args.extend(["--work".to_string(), work.to_string()]);
    }
    let hosts = settings.hosts;
    let server = match &hosts.server {
        Some(host) => {
            let addr = SocketAddr::new(hosts.server_ip, 0).to_string();
            ServerProcess::start_on(host, variant.model, &addr, &server_args)?
        }
        None => ServerProcess::start(settings.binary, variant.model, &server_args)?,
    };
    let pid = server.pid();
    // A server on another host is measured by its own snapshots.
    let probe = match hosts.server {
        Some(_) => Probe::Snapshots(server.snapshots()),
        None => Probe::Proc(pid),
    };
    let mut idle = IdleCrowd::default();
    if cell.idle_conns > 0 {
        idle = IdleCrowd::open(server.addr(), &probe, cell.idle_conns);
    }
    let config = LoadConfig {
        conns: cell.conns,
        size: cell.size,
        threads: settings.threads.min(cell.conns).max(1),
        duration: settings.duration,
        warmup: settings.warmup,
        // A client starved for the whole run is a result (fairness 0), not a timeout.
        reply_timeout: settings.duration + settings.warmup + Duration::from_secs(1),
        churn: cell.scenario == Scenario::Churn,
        rate: cell.rate.map(|r| r as f64),
        work,
        collect_owed: HARNESS_COLLECT_OWED,
        ..LoadConfig::new(server.addr())
    };
    let start = Instant::now();
    let sampler = Sampler::start(
        probe,
        start + config.warmup,
        start + config.warmup + config.duration,
    );
    // No active connection (the rest scenario): nothing to load, only time to watch.
    let mut udp = None;
    let mut agents = Vec::new();
    let report = if cell.conns == 0 {
        std::thread::sleep(config.warmup + config.duration);
        None
    } else if cell.scenario.is_datagram() {
        let udp_config = DatagramLoadConfig {
            sockets: cell.conns,
            threads: config.threads,
            size: cell.size,
            duration: config.duration,
            warmup: config.warmup,
            reply_timeout: UDP_REPLY_TIMEOUT,
            rate: cell.rate.map(|r| r as f64),
            ..DatagramLoadConfig::new(server.addr())
        };
        match datagram::run_load(&udp_config) {
            Ok(report) => {
                let common = as_load_report(&report);
                udp = Some(report);
                Some(Ok(common))
            }
            Err(e) => Some(Err(e)),
        }
    } else if !hosts.clients.is_empty() {
        match run_agents(&hosts.clients, &config) {
            Ok(run) => {
                agents = run.agents;
                Some(Ok(run.merged))
            }
            Err(e) => {
                sampler.finish();
                return Err(e);
            }
        }
    } else {
        Some(load::run(&config))
    };
    let window = sampler.finish();
    idle.streams.clear();
    let exit = server.stop();
    let report = report.transpose()?;
    let measured = Measured {
        window,
        seconds: settings.duration.as_secs_f64(),
        idle: &idle,
        exit: &exit,
    };
    let mut m = measurement(model, cell, repeat, report.as_ref(), &measured);
    m.udp = udp
        .as_ref()
        .map(|report| UdpFigures::of(report, &exit))
        .unwrap_or_default();
    if report.is_some() && agents.is_empty() {
        let cpus = config.threads.min(crate::floor::allowed_cpus());
        m.client_cpu_limit_secs = cpus as f64 * settings.duration.as_secs_f64();
        m.mark_client_bound();
    }
    m.agent_cpu_shares = agents.iter().map(AgentReport::cpu_share).collect();
    if let Some(busiest) = m
        .agent_cpu_shares
        .iter()
        .copied()
        .filter(|&share| share >= CLIENT_BOUND_SHARE)
        .max_by(f64::total_cmp)
    {
        m.marks.client_bound = Some(format!(
            "a load agent used {:.0}% of its threads' CPU",
            busiest * 100.0
        ));
    }
    Ok(m)
}

/// A UDP run's figures in the shape every other scenario's run has, so the shared
/// columns read them the same way; what goes wrong besides loss (which has its own
/// columns) becomes the errors.
fn as_load_report(udp: &DatagramLoadReport) -> LoadReport {
    let errors = [
        ("corrupted", udp.corrupted),
        ("duplicated", udp.duplicated),
        ("late", udp.late),
        ("unsent", udp.unsent),
        ("refused", udp.refused),
    ]
    .into_iter()
    .map(|(kind, n)| (kind.to_string(), n))
    .collect();
    LoadReport {
        mode: udp.mode,
        target_rate: udp.target_rate,
        connections_per_sec: None,
        responses: udp.responses,
        seconds: udp.seconds,
        responses_per_sec: udp.responses_per_sec,
        mib_per_sec: udp.mib_per_sec,
        latency_us: udp.latency_us.clone(),
        latency_us_fast: None,
        latency_us_slow: None,
        slow_samples: None,
        // A datagram with no reply is lost (its own column), not a censored wait.
        latency_samples: udp.responses,
        censored_waits: 0,
        censored_samples: 0,
        errors,
        fairness: udp.fairness.clone(),
        first_reply_us_p50: 0.0,
        first_reply_us_max: None,
        conns: udp.sockets,
        size: udp.size,
        depth: udp.depth,
        client_cpu_user_s: udp.client_cpu_user_s,
        client_cpu_sys_s: udp.client_cpu_sys_s,
    }
}

/// What the harness saw of the server during one run.
struct Measured<'a> {
    window: Window,
    /// Length of the measured window.
    seconds: f64,
    idle: &'a IdleCrowd,
    exit: &'a crate::server::ServerExit,
}

fn measurement(
    model: &str,
    cell: Cell,
    repeat: usize,
    report: Option<&LoadReport>,
    measured: &Measured<'_>,
) -> Measurement {
    let Measured {
        window,
        seconds,
        idle,
        exit,
    } = *measured;
    let rusage = exit.stats.as_ref().map(|line| line.rusage);
    let responses = report.map_or(0, |r| r.responses);
    let latency = |f: fn(&LoadReport) -> f64| report.map_or(0.0, f);
    Measurement {
        model: model.to_string(),
        cell,
        repeat,
        responses,
        responses_per_sec: latency(|r| r.responses_per_sec),
        mib_per_sec: latency(|r| r.mib_per_sec),
        p50_us: latency(|r| r.latency_us.p50),
        p99_us: latency(|r| r.latency_us.p99),
        p999_us: latency(|r| r.latency_us.p999),
        max_us: latency(|r| r.latency_us.max),
        p99_fast_us: report
            .and_then(|r| r.latency_us_fast.as_ref())
            .map(|l| l.p99),
        p99_slow_us: report
            .and_then(|r| r.latency_us_slow.as_ref())
            .map(|l| l.p99),
        latency_samples: report.map_or(0, |r| r.latency_samples),
        censored_waits: report.map_or(0, |r| r.censored_waits),
        censored_samples: report.map_or(0, |r| r.censored_samples),
        errors: report
            .map(|r| {
                r.errors
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, n)| (k.clone(), *n))
                    .collect()
            })
            .unwrap_or_default(),
        // With no active connection there is nobody to be unfair to.
        jain: report.map_or(1.0, |r| r.fairness.jain),
        min_per_conn: report.map_or(0, |r| r.fairness.min),
        server_cpu_secs: window.cpu_secs,
        server_cpu_uncertain_secs: window.cpu_uncertain_secs,
        server_cpu_share: if seconds > 0.0 {
            window.cpu_secs / seconds
        } else {
            0.0
        },
        responses_per_cpu_sec: (window.cpu_secs > 0.0).then(|| responses as f64 / window.cpu_secs),
        peak_rss_kb: window.peak_rss_kb,
        peak_threads: window.peak_threads,
        peak_processes: window.peak_processes,
        voluntary_ctx_switches: rusage.map(|r| r.voluntary_ctx_switches),
        involuntary_ctx_switches: rusage.map(|r| r.involuntary_ctx_switches),
        idle_held: (cell.idle_conns > 0).then_some(idle.held),
        memory_per_conn_kb: idle.memory_per_conn_kb,
        server_exit_clean: exit.clean,
        client_cpu_secs: report.map_or(0.0, |r| r.client_cpu_user_s + r.client_cpu_sys_s),
        client_cpu_limit_secs: 0.0,
        marks: Marks::default(),
        server_errors: exit
            .stats
            .as_ref()
            .map(|line| {
                line.stats
                    .errors
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, n)| (k.clone(), *n))
                    .collect()
            })
            .unwrap_or_default(),
        agent_cpu_shares: Vec::new(),
        udp: UdpFigures::default(),
        failure: (cell.conns > 0 && responses == 0).then(|| "no replies".to_string()),
    }
}

/// The idle scenario's crowd: connections that connect and then say nothing.
#[derive(Debug, Default)]
struct IdleCrowd {
    streams: Vec<TcpStream>,
    held: u64,
    memory_per_conn_kb: Option<f64>,
}

impl IdleCrowd {
    /// Opens `n` connections, waits until the server holds them (or stops gaining), and
    /// measures the server's memory per connection held: PSS of a local tree, the RSS
    /// of a server on another host (from its snapshots, which do not read PSS: pages
    /// shared after `fork` count once per process there).
    fn open(addr: SocketAddr, probe: &Probe, n: usize) -> IdleCrowd {
        let (before_sockets, before_kb) = probe.sockets_and_memory();
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            match TcpStream::connect_timeout(&addr, IDLE_CONNECT_TIMEOUT) {
                Ok(s) => streams.push(s),
                // The model stopped accepting and the backlog is full: what it holds is
                // the result.
                Err(_) => break,
            }
        }
        let target = streams.len() as u64;
        let deadline = Instant::now() + IDLE_SETTLE_TIMEOUT;
        let mut held = 0;
        let mut last_change = Instant::now();
        while Instant::now() < deadline {
            let started = Instant::now();
            let now_held = probe.sockets_and_memory().0.new_since(&before_sockets);
            // Counting is costly for a big `fork` tree: keep it to a fifth of the time.
            let pause = Duration::from_millis(100).max(started.elapsed() * 4);
            if now_held != held {
                held = now_held;
                last_change = Instant::now();
            }
            // Settled: everything held, or no progress for a while (a model that
            // cannot take more, like `iterative`).
            if held >= target || last_change.elapsed() > IDLE_NO_PROGRESS + pause {
                break;
            }
            std::thread::sleep(pause);
        }
        let after_kb = probe.sockets_and_memory().1;
        let memory_per_conn_kb =
            (held > 0).then(|| after_kb.saturating_sub(before_kb) as f64 / held as f64);
        IdleCrowd {
            streams,
            held,
            memory_per_conn_kb,
        }
    }
}
