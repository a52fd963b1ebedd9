//! `echolab load --agent`: one of several load generators that a harness starts through
//! a command prefix (`ssh host`, `ip netns exec ns`) and drives over stdin and stdout.
//! It connects its share of the connections, prints `ready`, waits for one `go` line on
//! stdin (so that no agent sends before every agent is connected), runs, and prints one
//! JSON line: its report with its whole latency histogram, for the harness to merge.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use echolab_client::load::agent::AgentReport;
use echolab_client::load::{self, Connected, LoadConfig};

/// Runs `config` as an agent; `connect_timeout` bounds each connection made before
/// `ready`.
pub(crate) fn run(config: LoadConfig, connect_timeout: Duration) -> Result<ExitCode> {
    let connected =
        Connected::open(config.addr, config.conns, connect_timeout).with_context(|| {
            format!(
                "load agent: cannot connect its {} connections to {}",
                config.conns, config.addr
            )
        })?;
    say("ready")?;
    wait_for_go()?;
    let threads = config.threads.min(config.conns).max(1);
    let config = LoadConfig {
        connected,
        progress: false,
        ..config
    };
    let (report, histogram) = load::run_keeping_histogram(&config).context("load run failed")?;
    let report = AgentReport::new(&report, &histogram, threads)?;
    say(&serde_json::to_string(&report)?)?;
    Ok(ExitCode::SUCCESS)
}

fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("load agent: cannot write to stdout")
}

/// Blocks until one line arrives on stdin: `go` starts the run; anything else, or the
/// end of input (whoever started the agent is gone), ends the agent with the reason.
fn wait_for_go() -> Result<()> {
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("load agent: cannot read stdin")?;
    match line.trim() {
        "go" => Ok(()),
        _ if n == 0 => bail!("load agent: stdin ended before `go`: the harness went away"),
        other => bail!("load agent: expected `go` on stdin, got {other:?}"),
    }
}
