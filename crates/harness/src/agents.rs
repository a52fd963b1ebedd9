//! Load agents on other hosts: `echolab load --agent` started through each host's
//! command prefix, each with its share of the connections and of the offered rate
//! (split in proportion to the connections, as mutilate splits it), held at a barrier
//! until every one has connected, then started together with one `go` line each. Their
//! histograms are merged ([`echolab_client::load::agent::merge`]).
//!
//! Nothing waits forever: an agent that never says `ready`, or ends without a report
//! (it died, its host went away), fails the run with its name and exit status, and
//! every agent still running is killed when the run is dropped.

use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use echolab_client::load::agent::{merge, AgentReport};
use echolab_client::load::{LoadConfig, LoadReport, COLLECT_OWED};

use crate::error::HarnessError;
use crate::host::Host;
use crate::server::forward_lines;

/// How long an agent has to start (through ssh, say) and connect its share.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past its run's end an agent has to report.
const REPORT_GRACE: Duration = Duration::from_secs(10);

/// What the agents measured, merged, and each one's own report.
#[derive(Debug, Clone)]
pub struct AgentsRun {
    /// The run's figures: counts added, percentiles from the merged histograms.
    pub merged: LoadReport,
    /// Each agent's report, in the order of the hosts.
    pub agents: Vec<AgentReport>,
}

struct Agent {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Its next line within `limit`; the reason in a sentence if none comes.
    fn line(&mut self, limit: Duration, waiting_for: &str) -> Result<String, HarnessError> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => Ok(line),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(HarnessError::Agent(format!(
                "{}: no {waiting_for} within {limit:?}",
                self.label
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.exit_status();
                Err(HarnessError::Agent(format!(
                    "{}: ended before its {waiting_for} ({status}; its stderr is above)",
                    self.label
                )))
            }
        }
    }

    fn exit_status(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("it {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        "it closed its output".into()
    }
}

/// `config.conns` split over `parts`: the first ones get one more when it does not
/// divide.
pub fn shares(conns: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| conns / parts + usize::from(i < conns % parts))
        .collect()
}

/// Runs `config`'s load from agents on `hosts` (only as many as there are connections)
/// and merges what they measured.
pub fn run_agents(hosts: &[Host], config: &LoadConfig) -> Result<AgentsRun, HarnessError> {
    let shares: Vec<usize> = shares(config.conns, hosts.len())
        .into_iter()
        .filter(|&n| n > 0)
        .collect();
    let mut agents = Vec::with_capacity(shares.len());
    for (i, (host, &conns)) in hosts.iter().zip(&shares).enumerate() {
        agents.push(start(i, host, config, conns)?);
    }
    for agent in &mut agents {
        let line = agent.line(READY_TIMEOUT, "`ready`")?;
        if line.trim() != "ready" {
            return Err(HarnessError::Agent(format!(
                "{}: said {line:?} instead of `ready`",
                agent.label
            )));
        }
    }
    // The barrier: every agent is connected; start them together.
    for agent in &mut agents {
        let said = match agent.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "go").and_then(|()| stdin.flush()),
            None => Ok(()),
        };
        if let Err(e) = said {
            return Err(HarnessError::Agent(format!(
                "{}: cannot say `go`: {e}",
                agent.label
            )));
        }
    }
    let deadline = Instant::now() + config.warmup + config.duration + COLLECT_OWED + REPORT_GRACE;
    let mut reports = Vec::with_capacity(agents.len());
    for agent in &mut agents {
        let limit = deadline.saturating_duration_since(Instant::now());
        let line = agent.line(limit, "report")?;
        let report: AgentReport = serde_json::from_str(&line).map_err(|e| {
            HarnessError::Agent(format!(
                "{}: unreadable report ({e}): {line:.200}",
                agent.label
            ))
        })?;
        reports.push(report);
    }
    let merged = merge(&reports).map_err(|e| HarnessError::Agent(e.to_string()))?;
    Ok(AgentsRun {
        merged,
        agents: reports,
    })
}

fn start(i: usize, host: &Host, config: &LoadConfig, conns: usize) -> Result<Agent, HarnessError> {
    let label = format!("load agent {} on `{}`", i + 1, host.prefix);
    let mut args: Vec<String> = vec![
        "load".into(),
        "--agent".into(),
        "--addr".into(),
        config.addr.to_string(),
        "--conns".into(),
        conns.to_string(),
        "--size".into(),
        config.size.to_string(),
        "--depth".into(),
        config.depth.to_string(),
        "--threads".into(),
        config.threads.min(conns).max(1).to_string(),
        "--duration".into(),
        format!("{}ms", config.duration.as_millis()),
        "--warmup".into(),
        format!("{}ms", config.warmup.as_millis()),
        "--timeout".into(),
        format!("{}ms", config.reply_timeout.as_millis()),
    ];
    if let Some(rate) = config.rate {
        // Each connection offers the same rate whichever agent holds it.
        args.push("--rate".into());
        args.push(format!("{}", rate * conns as f64 / config.conns as f64));
    }
    if config.churn {
        args.push("--churn".into());
    }
    let mut child = host
        .command(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| HarnessError::Agent(format!("{label}: cannot start it: {e}")))?;
    let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
    let Some(stdout) = stdout else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(HarnessError::Agent(format!("{label}: no stdout pipe")));
    };
    Ok(Agent {
        label,
        child,
        stdin,
        lines: forward_lines(stdout),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_shared_out_whole() {
        assert_eq!(shares(10, 2), [5, 5]);
        assert_eq!(shares(7, 3), [3, 2, 2]);
        assert_eq!(shares(1, 2), [1, 0]);
        assert_eq!(shares(0, 1), [0]);
    }
}
