//! The command line: one subcommand per file.

mod agent;
mod args;
mod compare;
mod echo;
mod fd_limit;
mod load;
mod machine;
mod models;
mod ping;
mod serve;
mod soak;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub(crate) use args::ClientArgs;

/// One echo protocol, many server concurrency models, one client and one benchmark.
#[derive(Debug, Parser)]
#[command(name = "echolab", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the registered server models and their properties.
    Models(models::ModelsArgs),
    /// Run a server model until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Send messages and print the echoes (interactive with no messages).
    Echo(echo::EchoArgs),
    /// Measure round-trip latency on one connection.
    Ping(ping::PingArgs),
    /// Drive a server with many connections; verify every reply; report throughput,
    /// latency percentiles and fairness.
    Load(load::LoadArgs),
    /// Benchmark every model side by side: each as a child server, the same load, the
    /// server's CPU and memory from /proc; writes results/<date>-<host>/.
    Compare(compare::CompareArgs),
    /// Describe this host (CPUs, kernel, memory); `--json` for a harness on another host.
    Machine(machine::MachineArgs),
    /// Soak a model for a long time: random sizes, chunking and churn, every byte
    /// verified; reports mismatches and the server's memory and descriptor drift.
    Soak(soak::SoakArgs),
}

/// A command line that asks for something the command cannot do (a flag the model does
/// not take, a combination that means nothing): reported in one line with exit status
/// 2, as clap reports a malformed one.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Exit status for a [`UsageError`], as clap's.
pub(crate) const USAGE_EXIT: u8 = 2;

/// The registered model called `name`, or an error that lists the real names.
pub(crate) fn find_model(name: &str) -> Result<&'static echolab_registry::Model> {
    echolab_registry::find(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown model `{name}`; the models are: {}",
            echolab_registry::names()
        )
    })
}

pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Models(args) => models::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Echo(args) => echo::run(args),
        Command::Ping(args) => ping::run(args),
        Command::Load(args) => load::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Soak(args) => soak::run(args),
        Command::Machine(args) => machine::run(args),
    }
}
