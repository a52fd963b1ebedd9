//! `echolab machine`: what this host is (CPUs, kernel, memory), for a harness on another
//! host that records where each piece of a run ran (`echolab compare --server-host`).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use echolab_harness::HostInfo;

#[derive(Debug, Args)]
pub(crate) struct MachineArgs {
    /// One JSON object (what the harness reads) instead of a line of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: MachineArgs) -> Result<ExitCode> {
    let info = HostInfo::detect();
    if args.json {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        println!(
            "{}: {} ({} CPUs), {} MiB, kernel {}, echolab {}",
            info.host, info.cpu, info.cores, info.memory_mib, info.kernel, info.version
        );
    }
    Ok(ExitCode::SUCCESS)
}
