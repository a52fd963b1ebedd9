use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use echolab_client::datagram::{self, DatagramLoadConfig};
use echolab_client::load::{self, LoadConfig};
use echolab_proto::WorkSpec;

use super::args::parse_duration;
use super::fd_limit::raise_descriptor_limit;
use super::ClientArgs;

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    pub(super) client: ClientArgs,
    /// Concurrent connections (UDP: client sockets, each its own source port).
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Generator threads (default: 1 on a 2-core machine, otherwise half the CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Payload bytes per message (UDP: at least 8, the datagram's sequence number).
    #[arg(long, default_value_t = 512)]
    size: usize,
    /// Messages in flight per connection (closed loop; UDP: per socket, a message
    /// counted lost after `--timeout`, default 1s, with no reply).
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Measured time, e.g. 10s, 1m or 500ms (a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before measuring starts (e.g. 1s).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Open loop: send this many messages per second in total (split evenly across the
    /// connections) on a fixed schedule; latency counts from each intended send time.
    #[arg(long, value_name = "MSGS_PER_SEC", conflicts_with = "churn")]
    rate: Option<f64>,
    /// Churn: every connection slot connects, echoes once, closes and reconnects.
    #[arg(long)]
    churn: bool,
    /// The work the server was started with (its `--work SPEC`, e.g.
    /// `cpu:10us,1%block:5ms`): each reply is classed fast or slow by the same choice
    /// the server made from its payload, and the two kinds' latencies are reported apart
    /// (`latency_us_fast`, `latency_us_slow`). It changes nothing on the wire.
    #[arg(long, value_name = "SPEC")]
    work: Option<WorkSpec>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Run as one of several load agents that `echolab compare --client-host` starts:
    /// connect first, print `ready`, wait for a `go` line on stdin, run, and print one
    /// JSON line with the latency histogram (HdrHistogram V2, compressed, base64).
    #[arg(long)]
    agent: bool,
}

pub(crate) fn run(args: LoadArgs) -> Result<ExitCode> {
    if args.client.udp()? {
        if args.agent {
            bail!("--agent is for TCP: the datagram generator has no agent mode");
        }
        return run_udp(&args);
    }
    let client = args.client.client_config()?;
    let config = LoadConfig {
        protocol: client.protocol,
        auth_key: client.auth_key,
        conns: args.conns,
        threads: args.threads.unwrap_or_else(load::default_threads),
        size: args.size,
        depth: args.depth,
        duration: args.duration,
        warmup: args.warmup,
        reply_timeout: client.timeout,
        rate: args.rate,
        churn: args.churn,
        progress: std::io::stderr().is_terminal(),
        work: args.work.clone(),
        ..LoadConfig::new(client.addr)
    };
    if let Some(warning) = raise_descriptor_limit(config.conns as u64, "--conns") {
        eprintln!("warning: {warning}");
    }
    if args.agent {
        return super::agent::run(config, args.client.timeout());
    }
    let report = load::run(&config).context("load run failed")?;
    print_report(args.json, serde_json::to_string(&report), report.summary())?;
    let errors: Vec<String> = report
        .errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    measured_something(report.responses, report.seconds, &errors.join(", "))
}

/// A run with no verified reply in its window measured nothing: its figures (a rate of
/// zero, percentiles of nothing) are not a result, and a script must not take them for
/// one. The report is printed first, so what went wrong is there to read.
fn measured_something(responses: u64, seconds: f64, errors: &str) -> Result<ExitCode> {
    if responses > 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let why = if errors.is_empty() {
        String::new()
    } else {
        format!(" (errors: {errors})")
    };
    bail!("the run measured nothing: no reply verified in its {seconds:.1} s window{why}")
}

/// The report as one JSON object (`--json`), or its summary.
fn print_report(json: bool, object: serde_json::Result<String>, summary: String) -> Result<()> {
    if json {
        println!("{}", object?);
    } else {
        print!("{summary}");
    }
    Ok(())
}

/// UDP: the datagram load generator; every reply verified, loss and its kinds counted,
/// the kernel's drop counters for the run.
fn run_udp(args: &LoadArgs) -> Result<ExitCode> {
    if args.churn {
        bail!("--churn is for TCP: UDP has no connection to open and close");
    }
    if args.work.is_some() {
        bail!(
            "--work classes TCP replies only: the UDP generator reports every datagram \
             together (a UDP server started with --work still does the work)"
        );
    }
    let config = DatagramLoadConfig {
        sockets: args.conns,
        threads: args.threads.unwrap_or_else(load::default_threads),
        size: args.size,
        depth: args.depth,
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate,
        ..DatagramLoadConfig::new(args.client.addr)
    };
    let config = DatagramLoadConfig {
        reply_timeout: args.client.timeout.unwrap_or(config.reply_timeout),
        ..config
    };
    let report = datagram::run_load(&config).context("load run failed")?;
    print_report(args.json, serde_json::to_string(&report), report.summary())?;
    let errors = [
        ("lost", report.lost),
        ("refused", report.refused),
        ("unsent", report.unsent),
        ("corrupted", report.corrupted),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(kind, n)| format!("{kind} {n}"))
    .collect::<Vec<_>>()
    .join(", ");
    measured_something(report.responses, report.seconds, &errors)
}
