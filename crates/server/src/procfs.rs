//! The server's cost, read from `/proc`: CPU time, resident memory, threads, processes
//! and descriptors of a whole process tree (a `fork` server is a parent plus one child
//! per client, so every figure sums the tree). The harness reads a local server's tree
//! from outside; a server reads its own for a snapshot ([`crate::Snapshot`]), which is
//! how a server on another host is measured.

use std::collections::HashSet;
use std::fs;
use std::io;

use nix::unistd::{sysconf, SysconfVar};

/// One reading of a process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TreeSample {
    /// User + system CPU of every live process in the tree, plus the children the root
    /// has already reaped (`cutime`/`cstime`), in seconds.
    pub cpu_secs: f64,
    /// Sum of `VmRSS` over the tree, in KiB (counts pages shared after `fork` once per
    /// process; see [`pss_kb`] for the fair share).
    pub rss_kb: u64,
    /// Sum of `Threads` over the tree.
    pub threads: u64,
    /// Processes in the tree, the root included.
    pub processes: u64,
    /// The largest `VmHWM` (peak resident set) of any one process in the tree, KiB.
    pub peak_rss_kb: u64,
    /// CPU seconds of the children the root reaped while the tree was being read: each
    /// of them is in `cpu_secs` either live or not at all (reaped after the root was
    /// read, gone before its own turn), so `cpu_secs` may be short by up to this much.
    /// 0 in a tree where nothing exited meanwhile; each child's whole CPU (tens of
    /// milliseconds under load) when a `fork` server's clients close during the walk.
    pub reaped_while_read_secs: f64,
}

/// Reads the tree rooted at `root`. Fails only if the root itself is gone; a child that
/// exits while it is read is skipped, and what that may have left out is
/// [`TreeSample::reaped_while_read_secs`].
pub fn sample_tree(root: u32) -> io::Result<TreeSample> {
    let mut sample = TreeSample::default();
    // The walk is not atomic: a child reaped after the root's `cutime` was read and
    // before its own `/proc` files were is counted nowhere. The root's reaped CPU before
    // and after the walk bounds what such children can have taken with them.
    let reaped_before = reaped_secs(root)?;
    for (i, pid) in tree(root).iter().enumerate() {
        // The root's reaped children are in its cutime/cstime; a live child's own
        // children (there are none in echolab's models) would be in its.
        let one = match sample_process(*pid) {
            Ok(one) => one,
            Err(e) if i == 0 => return Err(e),
            Err(_) => continue,
        };
        sample.cpu_secs += one.cpu_secs;
        sample.rss_kb += one.rss_kb;
        sample.threads += one.threads;
        sample.processes += 1;
        sample.peak_rss_kb = sample.peak_rss_kb.max(one.peak_rss_kb);
    }
    // The root gone after the walk reaps nothing more: what it reaped until then counts.
    if let Ok(reaped_after) = reaped_secs(root) {
        sample.reaped_while_read_secs = (reaped_after - reaped_before).max(0.0);
    }
    Ok(sample)
}

/// Reads one process alone, its live children left out (a `fork` parent without the
/// children that hold the connections); its CPU still includes the children it reaped.
pub fn sample_process(pid: u32) -> io::Result<TreeSample> {
    let cpu_secs = cpu_secs(pid)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(TreeSample {
        cpu_secs,
        rss_kb: status_field(&status, "VmRSS:").unwrap_or(0),
        threads: status_field(&status, "Threads:").unwrap_or(0),
        processes: 1,
        peak_rss_kb: status_field(&status, "VmHWM:").unwrap_or(0),
        reaped_while_read_secs: 0.0,
    })
}

/// Proportional set size of the tree in KiB: each shared page is divided among the
/// processes that map it, so a thousand forked children are not counted a thousand
/// times for the parent's binary.
pub fn pss_kb(root: u32) -> u64 {
    tree(root)
        .iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|rollup| status_field(&rollup, "Pss:"))
        .sum()
}

/// Open descriptors over the tree.
pub fn fd_count(root: u32) -> u64 {
    tree(root).iter().map(|pid| descriptors(*pid).count).sum()
}

/// Distinct socket inodes open anywhere in the tree (a forked child's copy of the
/// listener is the same socket, so distinct inodes count connections once whatever the
/// model).
pub fn socket_inodes(root: u32) -> HashSet<u64> {
    tree(root)
        .iter()
        .flat_map(|pid| descriptors(*pid).socket_inodes)
        .collect()
}

/// One process's open descriptors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptors {
    /// How many are open.
    pub count: u64,
    /// The inodes of the sockets among them (one socket may be open twice).
    pub socket_inodes: Vec<u64>,
}

/// The open descriptors of `pid` from one listing of its `/proc/PID/fd`; none if it is
/// gone. (A walk over a tree reads each process's listing once for both figures.)
pub fn descriptors(pid: u32) -> Descriptors {
    let mut found = Descriptors::default();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return found;
    };
    for fd in fds.flatten() {
        found.count += 1;
        let Ok(target) = fs::read_link(fd.path()) else {
            continue;
        };
        if let Some(inode) = target
            .to_string_lossy()
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
        {
            found.socket_inodes.push(inode);
        }
    }
    found
}

/// `root` and every descendant, root first.
pub fn tree(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    let mut next = 0;
    // Bounded: a pid is visited once, and the kernel's pid space is finite.
    while next < pids.len() {
        let pid = pids[next];
        next += 1;
        pids.extend(children(pid));
    }
    pids
}

/// The children of `pid`, zombies not yet reaped included (from each of its tasks'
/// `children` file: a child belongs to the thread that forked it). Empty if `pid` is
/// gone.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Voluntary context switches of every thread of every process in the tree: each one a
/// wake-up after sleeping (on data, a timer, a timeout), the figure that shows whether
/// idle connections cost anything.
pub fn wakeups(root: u32) -> u64 {
    let mut total = 0;
    for pid in tree(root) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(status) = fs::read_to_string(task.path().join("status")) {
                total += status_field(&status, "voluntary_ctxt_switches:").unwrap_or(0);
            }
        }
    }
    total
}

/// The one-letter state of `pid` (`R`, `S`, `Z` for a zombie, ...); `None` if it is
/// gone.
pub fn state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat).ok()?.next()?.chars().next()
}

/// CPU seconds of one process, the larger of two readings that can each only fall
/// short: `utime + stime + cutime + cstime` (clock ticks, which count threads that have
/// exited, but which read a `fork` server's hundred children — each on a CPU a few
/// milliseconds a second, in bursts — up to 2x low in a one-second window), and its live
/// threads' time on a CPU from `schedstat` (exact nanoseconds, but a thread that exited
/// is gone from it) plus the reaped children (`cutime + cstime`).
fn cpu_secs(pid: u32) -> io::Result<f64> {
    let [utime, stime, cutime, cstime] = cpu_times(pid)?;
    let ticks = (utime + stime + cutime + cstime) as f64 / ticks_per_sec();
    let reaped = (cutime + cstime) as f64 / ticks_per_sec();
    let exact = threads_on_cpu_ns(pid).map_or(0.0, |ns| ns as f64 / 1e9 + reaped);
    Ok(ticks.max(exact))
}

/// CPU seconds of the children `pid` has reaped (`cutime + cstime`).
fn reaped_secs(pid: u32) -> io::Result<f64> {
    let [_, _, cutime, cstime] = cpu_times(pid)?;
    Ok((cutime + cstime) as f64 / ticks_per_sec())
}

/// Sum of the first `schedstat` field (nanoseconds on a CPU) over the process's threads;
/// `None` if the kernel has no `schedstat` (a thread that exits meanwhile is skipped).
fn threads_on_cpu_ns(pid: u32) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(text) = fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
        {
            total += ns;
            any = true;
        }
    }
    any.then_some(total)
}

/// `utime`, `stime`, `cutime` and `cstime` of one process, in clock ticks.
fn cpu_times(pid: u32) -> io::Result<[u64; 4]> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The first field is field 3 (state); utime..cstime are fields 14..17.
    let mut times = [0; 4];
    for (time, field) in times.iter_mut().zip(stat_fields(&stat)?.skip(11)) {
        *time = field.parse().unwrap_or(0);
    }
    Ok(times)
}

/// The fields of a `/proc/PID/stat` line from field 3 (the state) on: the command name
/// before them may contain spaces and parentheses, so they start after the last ')'.
fn stat_fields(stat: &str) -> io::Result<std::str::SplitWhitespace<'_>> {
    stat.rfind(')')
        .map(|i| stat[i + 1..].split_whitespace())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc stat"))
}

/// The first number after `key` in a `key: value` text such as /proc/PID/status or
/// /proc/meminfo.
pub fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn ticks_per_sec() -> f64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let sample = sample_tree(me).unwrap();
        assert!(sample.rss_kb > 0);
        assert!(sample.threads >= 1);
        assert!(sample.processes >= 1);
        assert!(fd_count(me) >= 3);
        assert!(pss_kb(me) > 0);
    }

    #[test]
    fn counts_a_child_and_its_cpu() {
        // A child that burns some CPU and then sleeps: once it sleeps its time is fixed,
        // and the tree's sum must include it on top of this process's own.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exec sleep 10",
            ])
            .spawn()
            .unwrap();
        let me = std::process::id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let sleeping = |pid: u32| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains("(sleep) S"))
        };
        while !sleeping(child.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let own_before = cpu_times(me).unwrap().iter().sum::<u64>() as f64 / ticks_per_sec();
        let sample = sample_tree(me).unwrap();
        let child_cpu = cpu_times(child.id()).unwrap().iter().sum::<u64>() as f64 / ticks_per_sec();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            sleeping_was_reached(deadline),
            "child never finished its loop"
        );
        assert!(sample.processes >= 2, "{sample:?}");
        assert!(child_cpu > 0.0, "the child's loop used no CPU?");
        assert!(
            sample.cpu_secs >= own_before + child_cpu - 1e-9,
            "{sample:?}: own {own_before} + child {child_cpu}"
        );
    }

    fn sleeping_was_reached(deadline: std::time::Instant) -> bool {
        std::time::Instant::now() < deadline
    }

    #[test]
    fn missing_root_is_an_error() {
        assert!(sample_tree(u32::MAX - 1).is_err());
    }
}
