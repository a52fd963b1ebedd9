//! The line a server prints when it stops: one typed struct, written by `echolab serve`
//! and read back by the harness, the soak and the tests, so neither side names a field
//! by string.

use serde::{Deserialize, Serialize};

use crate::StatsSnapshot;

/// `echolab serve`'s last line on stdout: the model, its counters and the resources it
/// used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsLine {
    /// The model that served.
    pub model: String,
    /// Its counters, at the top level of the line.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
    /// Its own resource use and that of its reaped children.
    pub rusage: ResourceUsage,
}

impl StatsLine {
    /// Parses a line; `None` for anything else (a log line, a partial line).
    pub fn parse(line: &str) -> Option<StatsLine> {
        serde_json::from_str(line).ok()
    }
}

/// `getrusage` of the process plus its reaped children (a `fork` server's children
/// are gone by the time it stops; their CPU and context switches survive only here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// User CPU time, µs.
    pub user_us: u64,
    /// System CPU time, µs.
    pub system_us: u64,
    /// Largest resident set of the process or of any one reaped child, KiB.
    pub max_rss_kb: u64,
    /// Waits for a resource (a read, a lock): the thread gave up the CPU itself.
    pub voluntary_ctx_switches: u64,
    /// Preemptions: the scheduler took the CPU away.
    pub involuntary_ctx_switches: u64,
}

impl ResourceUsage {
    /// Reads `RUSAGE_SELF` and `RUSAGE_CHILDREN` now and adds them up (a failed read
    /// counts as zero: the figures are a report, not a reason to fail a shutdown).
    pub fn of_self_and_children() -> ResourceUsage {
        ResourceUsage::of_self().plus(&ResourceUsage::of_reaped_children())
    }

    /// `RUSAGE_SELF`: this process, every thread it has had included.
    pub fn of_self() -> ResourceUsage {
        Self::read(nix::sys::resource::UsageWho::RUSAGE_SELF)
    }

    /// `RUSAGE_CHILDREN`: the children this process has reaped (a live child is not in
    /// it yet).
    pub fn of_reaped_children() -> ResourceUsage {
        Self::read(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
    }

    fn read(who: nix::sys::resource::UsageWho) -> ResourceUsage {
        let Ok(usage) = nix::sys::resource::getrusage(who) else {
            return ResourceUsage::default();
        };
        let micros = |t: nix::sys::time::TimeVal| {
            let us = t.tv_sec() * 1_000_000 + t.tv_usec();
            u64::try_from(us).unwrap_or(0)
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        ResourceUsage {
            user_us: micros(usage.user_time()),
            system_us: micros(usage.system_time()),
            max_rss_kb: count(usage.max_rss()),
            voluntary_ctx_switches: count(usage.voluntary_context_switches()),
            involuntary_ctx_switches: count(usage.involuntary_context_switches()),
        }
    }

    /// Both together: times and switches added, the larger of the two peaks.
    pub fn plus(&self, other: &ResourceUsage) -> ResourceUsage {
        ResourceUsage {
            user_us: self.user_us + other.user_us,
            system_us: self.system_us + other.system_us,
            max_rss_kb: self.max_rss_kb.max(other.max_rss_kb),
            voluntary_ctx_switches: self.voluntary_ctx_switches + other.voluntary_ctx_switches,
            involuntary_ctx_switches: self.involuntary_ctx_switches
                + other.involuntary_ctx_switches,
        }
    }

    /// User plus system CPU, seconds.
    pub fn cpu_secs(&self) -> f64 {
        (self.user_us + self.system_us) as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerStats;

    #[test]
    fn a_line_reads_back_as_it_was_written() {
        let stats = ServerStats::default();
        stats.record_accept();
        let line = StatsLine {
            model: "mio".into(),
            stats: stats.snapshot(),
            rusage: ResourceUsage::of_self_and_children(),
        };
        let text = serde_json::to_string(&line).unwrap();
        // The counters sit at the top level, where scripts have always found them.
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["accepted"], 1);
        assert_eq!(json["model"], "mio");
        assert_eq!(StatsLine::parse(&text), Some(line));
        assert_eq!(StatsLine::parse("listening on 127.0.0.1:1"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let usage = ResourceUsage::of_self_and_children();
        assert!(usage.cpu_secs() > 0.0, "{usage:?}");
        assert!(usage.max_rss_kb > 0, "{usage:?}");
    }
}
