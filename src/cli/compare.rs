use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use echolab_client::load;
use echolab_harness::{
    diff_runs, marked_cells, measure_floor_costs, redraw_charts, render_diff, run_plan,
    say_duration, summarize, terminal_table, write_run, Floor, Host, Hosts, LoadedRun, Machine,
    Pin, Plan, RunResults, Scenario, Topology,
};
use echolab_proto::WorkSpec;
use echolab_registry as models;

use super::args::parse_duration;
use super::fd_limit::raise_descriptor_limit;
use super::find_model;

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Models to run, comma-separated (default: every registered model).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    models: Vec<String>,
    /// Scenarios to run, comma-separated: latency, throughput, churn, idle, crowd (one
    /// client beside 0/100/1,000 idle connections), rest (1,000 idle, no traffic), work
    /// (handler work per message, swept load) for the stream models; udp (open-loop
    /// datagrams at rising rates) for the datagram models [default: one cell per
    /// question — latency, throughput at 10 and 100 connections, churn, idle, one UDP
    /// rate — or every scenario but work with --full].
    #[arg(long, value_delimiter = ',', value_name = "S")]
    scenario: Vec<String>,
    /// Where the server and the load generator run: `same` (both on CPU 0), `split`
    /// (server on CPU 0, client on CPU 1) or `none` (left to the scheduler). Recorded
    /// in the results.
    #[arg(long, default_value = "none", value_name = "PLACEMENT")]
    pin: String,
    /// Runs of each cell; the tables show the median and the min–max.
    #[arg(long, default_value_t = 3, value_name = "K")]
    repeat: usize,
    /// The whole matrix (connections 1..1000 x 64 B..64 KiB, 5,000 idle connections,
    /// crowd, rest, UDP rates 10k..200k/s, 3 s cells) instead of the default cells
    /// (estimated at the start of each run).
    #[arg(long)]
    full: bool,
    /// Measured time per run, e.g. 2s or 500ms (default: 750ms, or 3s with --full).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up per run (default: 250ms, or 1s with --full).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Work per message on every server, in every cell (the `serve --work` spec, e.g.
    /// `cpu:20us`); the load generator classes replies by it. The `work` scenario
    /// (`--scenario work`) runs its own specs.
    #[arg(long, value_name = "SPEC")]
    work: Option<WorkSpec>,
    /// Where the run's directory is written.
    #[arg(long, default_value = "results", value_name = "DIR")]
    out: PathBuf,
    /// Print the table only; write no files.
    #[arg(long)]
    no_write: bool,
    /// After the run, compare it with this earlier run (a results/<run> directory):
    /// per model and cell the ratio new/old of throughput, p99 and responses per server
    /// CPU-second, with a verdict from the repeats. The plans must be the same.
    #[arg(long, value_name = "DIR")]
    baseline: Option<PathBuf>,
    /// Draw a committed run's charts again from its results.json (after the charts
    /// changed), without running anything.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["baseline", "diff"])]
    redraw: Option<PathBuf>,
    /// Start each server through this command prefix (`ssh user@host`, `ip netns exec
    /// NS`, `docker exec CTR`): it is measured by its own snapshots (over its stdin),
    /// not from this host's /proc. See docs/benchmarking.md, "Across hosts".
    #[arg(long, value_name = "PREFIX")]
    server_host: Option<String>,
    /// Run the load from an `echolab load --agent` started through this prefix; once
    /// per agent. Connections and rate are split among the agents, and their latency
    /// histograms merged.
    #[arg(long, value_name = "PREFIX")]
    client_host: Vec<String>,
    /// The `echolab` binary on the other hosts [default: this one's path].
    #[arg(long, value_name = "PATH")]
    remote_bin: Option<PathBuf>,
    /// The address the server binds on its host, which the load connects to
    /// [default: 127.0.0.1].
    #[arg(long, value_name = "IP")]
    server_addr: Option<std::net::IpAddr>,
    /// Compare two committed runs, OLD then NEW, without running anything.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], conflicts_with = "baseline")]
    diff: Vec<PathBuf>,
}

/// Prints `new` against `old`.
fn print_diff(old: &LoadedRun, new: &LoadedRun) -> Result<()> {
    let diff = diff_runs(old, new).context("cannot compare the runs")?;
    print!("{}", render_diff(&diff, &old.name, &new.name));
    Ok(())
}

pub(crate) fn run(args: CompareArgs) -> Result<ExitCode> {
    if let Some(dir) = &args.redraw {
        for chart in redraw_charts(dir).context("cannot redraw the charts")? {
            println!("wrote {}", chart.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let [old, new] = &args.diff[..] {
        print_diff(&LoadedRun::read(old)?, &LoadedRun::read(new)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Read first: a missing or unreadable baseline should stop the run before it starts.
    let baseline = args.baseline.as_deref().map(LoadedRun::read).transpose()?;
    let names: Vec<String> = if args.models.is_empty() {
        models::MODELS.iter().map(|m| m.name.to_string()).collect()
    } else {
        args.models.clone()
    };
    for name in &names {
        find_model(name)?;
    }
    let scenarios = args
        .scenario
        .iter()
        .map(|s| Scenario::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let mut plan = Plan::new(names, &scenarios, args.full);
    if plan.runs() == 0 {
        bail!(
            "nothing to run: the udp scenario is for the datagram models (udp-…), every \
             other scenario for the stream models"
        );
    }
    plan.repeat = args.repeat;
    plan.work = args.work.as_ref().map(ToString::to_string);
    plan.pin = Pin::parse(&args.pin)?;
    plan.duration = args.duration.unwrap_or(plan.duration);
    plan.warmup = args.warmup.unwrap_or(plan.warmup);
    if plan.duration.is_zero() {
        bail!("--duration must be more than 0");
    }
    // The idle scenario holds thousands of sockets in this process and in the server.
    let sockets = plan.cells.iter().map(|c| c.idle_conns + c.conns).max();
    if let Some(warning) = raise_descriptor_limit(sockets.unwrap_or(0) as u64, "this plan") {
        eprintln!("warning: {warning}");
    }
    let binary = std::env::current_exe().context("cannot find the echolab executable")?;
    let remote_bin = args.remote_bin.clone().unwrap_or_else(|| binary.clone());
    let hosts = Hosts {
        server: args
            .server_host
            .as_deref()
            .map(|prefix| Host::new(prefix, remote_bin.clone())),
        clients: args
            .client_host
            .iter()
            .map(|prefix| Host::new(prefix, remote_bin.clone()))
            .collect(),
        server_ip: args
            .server_addr
            .unwrap_or_else(|| Hosts::default().server_ip),
    };
    let mut machine = Machine::detect();
    eprintln!(
        "echolab compare: {} models x {} cells x {} repeats = {} runs of {} s + {} s warm-up: \
         estimated {} on {} CPUs{}",
        plan.models_run(),
        plan.cells.len(),
        plan.repeat,
        plan.runs(),
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        say_duration(plan.estimate(machine.cores)),
        machine.cores,
        if hosts.server.is_some() || !hosts.clients.is_empty() {
            " (for a local run)"
        } else {
            ""
        }
    );
    // First, before any load heats the machine: what a round trip costs here at all.
    let floor = Floor::measure().context("cannot measure the loopback floor")?;
    eprintln!(
        "echolab compare: loopback floor p50 {:.1} µs on one CPU{}",
        floor.same_cpu.p50_us,
        floor
            .cross_cpu
            .map(|c| format!(", {:.1} µs across CPUs", c.p50_us))
            .unwrap_or_default()
    );
    let topology = if hosts.server.is_some() || !hosts.clients.is_empty() {
        let topology = Topology::detect(&hosts, &binary).context("cannot reach the other hosts")?;
        eprintln!(
            "echolab compare: server on {} ({} CPUs), {} load host(s); floor between them p50 {:.1} µs",
            topology.server.host.host,
            topology.server.host.cores,
            topology.clients.len(),
            topology.floor.p50_us
        );
        Some(topology)
    } else {
        None
    };
    // The least a server can spend per response, for the guard on every cell's CPU.
    let kernel_floor = measure_floor_costs(&plan.message_kinds())
        .context("cannot measure the kernel's floor cost per response")?;
    let floors: Vec<String> = kernel_floor
        .iter()
        .map(|f| {
            let udp = if f.datagram { " UDP" } else { "" };
            format!("{} B{udp} {:.2} µs", f.size, f.cpu_us_per_response)
        })
        .collect();
    eprintln!(
        "echolab compare: kernel floor per response (one recv + one send): {}",
        floors.join(", ")
    );
    let measurements = run_plan(
        &plan,
        &binary,
        load::default_threads(),
        &kernel_floor,
        &hosts,
        |line| eprintln!("warning: {line}"),
    )
    .context("benchmark run failed")?;
    // Every run recorded, failed or not: a run where none measured anything is no result.
    if let Some(first) = measurements
        .first()
        .filter(|_| measurements.iter().all(|m| !m.measured()))
    {
        bail!(
            "the run measured nothing: none of its {} runs got a reply (first: {} {}: {})",
            measurements.len(),
            first.model,
            first.cell.label(),
            first.failure.as_deref().unwrap_or("no replies")
        );
    }
    let summaries = summarize(&measurements);
    print!("{}", terminal_table(&summaries));
    let marked = marked_cells(&summaries);
    if !marked.is_empty() {
        print!("\n{marked}");
    }
    machine.finish();
    let run = RunResults {
        machine,
        plan,
        measurements,
        summaries,
        floor: Some(floor),
        kernel_floor,
        topology,
    };
    let mut name = "this run".to_string();
    if !args.no_write {
        let dir = write_run(&args.out, &run).context("cannot write the results")?;
        println!("\nwrote {}", dir.display());
        name = dir.display().to_string();
    }
    if let Some(old) = baseline {
        let new = LoadedRun::from_json(&name, &serde_json::to_value(&run)?)?;
        println!();
        print_diff(&old, &new)?;
    }
    Ok(ExitCode::SUCCESS)
}
