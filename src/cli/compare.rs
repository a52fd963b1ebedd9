use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use echolab::models;
use echolab_client::load;
use echolab_harness::{
    run_plan, summarize, terminal_table, write_run, Machine, Plan, RunResults, Scenario,
};

use super::args::parse_secs;
use super::fd_limit::raise_descriptor_limit;
use super::find_model;

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Models to run, comma-separated (default: every registered model).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    models: Vec<String>,
    /// Scenarios to run, comma-separated: latency, throughput, churn, idle, crowd, rest
    /// (the stream models), udp (the datagram models) (default: all).
    #[arg(long, value_delimiter = ',', value_name = "S")]
    scenario: Vec<String>,
    /// Runs of each cell; the tables show the median and the min–max.
    #[arg(long, default_value_t = 3, value_name = "K")]
    repeat: usize,
    /// The whole matrix (connections 1..1000 x 64 B..64 KiB, 5,000 idle connections,
    /// 3 s cells) instead of the ~5-minute default subset.
    #[arg(long)]
    full: bool,
    /// Measured seconds per run (default: 1, or 3 with --full).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
    /// Warm-up seconds per run (default: 0.5, or 1 with --full).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    warmup: Option<Duration>,
    /// Where the run's directory is written.
    #[arg(long, default_value = "results", value_name = "DIR")]
    out: PathBuf,
    /// Print the table only; write no files.
    #[arg(long)]
    no_write: bool,
}

pub(crate) fn run(args: CompareArgs) -> Result<ExitCode> {
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
    for name in &plan.models {
        let model = find_model(name)?;
        if let Some(limit) = model.natural_limit {
            plan.descriptor_limits.insert(name.clone(), limit);
        }
        if !model.is_stream() {
            plan.datagram_models.insert(name.clone());
        }
    }
    if plan.runs() == 0 {
        bail!(
            "nothing to run: the udp scenario is for the datagram models (udp-…), every \
             other scenario for the stream models"
        );
    }
    plan.repeat = args.repeat;
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
    let machine = Machine::detect();
    eprintln!(
        "echolab compare: {} models x {} cells x {} repeats = {} runs of {:.1} s + {:.1} s warm-up",
        plan.models_run(),
        plan.cells.len(),
        plan.repeat,
        plan.runs(),
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64()
    );
    let measurements = run_plan(&plan, &binary, load::default_threads(), |line| {
        eprintln!("warning: {line}")
    })
    .context("benchmark run failed")?;
    if measurements.is_empty() {
        return Err(anyhow!("no run completed; see the warnings above"));
    }
    let summaries = summarize(&measurements);
    print!("{}", terminal_table(&summaries));
    if !args.no_write {
        let run = RunResults {
            machine,
            plan,
            measurements,
            summaries,
        };
        let dir = write_run(&args.out, &run).context("cannot write the results")?;
        println!("\nwrote {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
