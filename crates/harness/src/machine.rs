//! The machine a result was measured on: every result file carries it, because numbers
//! from a shared 2-core VM and from a 64-core server are not the same kind of number.

use std::process::Command;

use serde::Serialize;

use crate::procfs::status_field;

/// Where and how a run was made.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Host name.
    pub host: String,
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// `rustc --version`, or `unknown`.
    pub rustc: String,
    /// `git describe --always --dirty` of the checkout the binary sits in, else of the
    /// tree it was built from, or `unknown`.
    pub commit: String,
    /// UTC date and time the run started (`YYYY-MM-DDTHH:MM:SSZ`).
    pub started: String,
    /// The exact command line.
    pub command: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute load averages as the run started: other
    /// jobs on the machine show here before they show in the figures.
    pub load_average_start: String,
    /// The same as the run ended ([`Machine::finish`]).
    pub load_average_end: Option<String>,
    /// UTC date and time the run ended ([`Machine::finish`]).
    pub finished: Option<String>,
}

impl Machine {
    /// Reads this machine.
    pub fn detect() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        Machine {
            host: non_empty(read("/proc/sys/kernel/hostname").trim()),
            cpu: non_empty(
                cpuinfo
                    .lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(_, name)| name.trim())
                    .unwrap_or(""),
            ),
            cores: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1),
            kernel: non_empty(read("/proc/sys/kernel/osrelease").trim()),
            memory_mib: status_field(&meminfo, "MemTotal:").map_or(0, |kb| kb / 1024),
            rustc: command_output("rustc", &["--version"]),
            commit: commit(),
            started: utc_now(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            load_average_start: load_average(),
            load_average_end: None,
            finished: None,
        }
    }

    /// Records the end of the run: its time and the load averages then.
    pub fn finish(&mut self) {
        self.load_average_end = Some(load_average());
        self.finished = Some(utc_now());
    }

    /// `YYYY-MM-DD-host`, the results directory name.
    pub fn run_name(&self) -> String {
        format!(
            "{}-{}",
            &self.started[..10.min(self.started.len())],
            self.host
        )
    }
}

fn non_empty(s: &str) -> String {
    if s.is_empty() {
        "unknown".into()
    } else {
        s.to_string()
    }
}

/// The commit of the checkout the running binary sits in (`target/release/echolab`: the
/// tree as it is now, `-dirty` included), else the one it was built from (a copy run
/// elsewhere), else `unknown`. Never the current directory's: a run started from another
/// repository would record that repository's commit.
fn commit() -> String {
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.display().to_string()))
        .map(|dir| command_output("git", &["-C", &dir, "describe", "--always", "--dirty"]));
    match beside_binary {
        Some(commit) if commit != "unknown" => commit,
        _ => non_empty(env!("ECHOLAB_BUILD_COMMIT")),
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The first three fields of `/proc/loadavg` (`unknown` where it cannot be read).
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    non_empty(
        &text
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The current UTC time, formatted without a date library (civil-from-days).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_437_296), "2026-11-23T12:34:56Z");
    }

    #[test]
    fn detects_this_machine() {
        let m = Machine::detect();
        assert!(m.cores >= 1);
        assert_ne!(m.kernel, "unknown");
        assert!(m.run_name().len() > 11, "{}", m.run_name());
        let loads: Vec<f64> = m
            .load_average_start
            .split(' ')
            .map(|l| l.parse().expect("a load average is a number"))
            .collect();
        assert_eq!(loads.len(), 3, "{}", m.load_average_start);
        let mut m = m;
        m.finish();
        assert!(m
            .finished
            .as_deref()
            .is_some_and(|f| f >= m.started.as_str()));
        assert_eq!(
            m.load_average_end.as_deref().map(|l| l.split(' ').count()),
            Some(3)
        );
    }

    #[test]
    fn names_the_commit_built_from_wherever_the_binary_runs() {
        // Built inside a checkout (as here and in CI), the build baked its commit in: a
        // copy of the binary run outside any repository still names it.
        let built = env!("ECHOLAB_BUILD_COMMIT");
        if built.is_empty() {
            return; // built from a tarball: nothing to name, and `unknown` is the truth
        }
        // Not compared with each other: a commit made between the build and the run moves
        // the checkout's and not the built-in one.
        let now = commit();
        let names_a_commit = |c: &str| {
            let hash = c
                .trim_end_matches("-dirty")
                .rsplit("-g")
                .next()
                .unwrap_or("");
            hash.len() >= 7 && hash.chars().all(|h| h.is_ascii_hexdigit())
        };
        assert!(names_a_commit(&now), "run time: {now}");
        assert!(names_a_commit(built), "built in: {built}");
    }
}
