//! What the soak reads about the server from `/proc`: resident memory and open
//! descriptors of the server and every process below it (a `fork` server's children
//! hold the connections, so the parent alone would hide a leak).

use std::fs;

/// One sample of a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TreeUsage {
    /// Sum of `VmRSS` over the tree, in kB.
    pub(crate) rss_kb: u64,
    /// Sum of entries in `/proc/PID/fd` over the tree.
    pub(crate) fds: u64,
    /// Processes in the tree (the root included); 0 when the root is gone.
    pub(crate) processes: u64,
}

/// Samples `root` and its descendants.
pub(crate) fn tree_usage(root: u32) -> TreeUsage {
    let mut usage = TreeUsage::default();
    for pid in tree(root) {
        let Some(rss_kb) = rss_kb(pid) else { continue };
        usage.rss_kb += rss_kb;
        usage.fds += fd_count(pid);
        usage.processes += 1;
    }
    usage
}

/// `root` followed by every descendant (parents found through `PPid`).
fn tree(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| Some((pid, parent_of(pid)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(pid, _)| pid),
        );
        next += 1;
    }
    found
}

fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .map(|rest| rest.trim().to_string())
}

fn parent_of(pid: u32) -> Option<u32> {
    status_field(pid, "PPid:")?.parse().ok()
}

/// `VmRSS` in kB; `None` when the process is gone (a zombie has no `VmRSS` line: it
/// holds no memory and no descriptors).
fn rss_kb(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn fd_count(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn sees_this_process_and_a_child_with_its_descriptors() {
        let me = std::process::id();
        let alone = tree_usage(me);
        assert!(alone.rss_kb > 0 && alone.fds > 0 && alone.processes >= 1);
        let mut child = Command::new("sleep")
            .arg("5")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let with_child = tree_usage(me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            with_child.processes > alone.processes,
            "{with_child:?} vs {alone:?}"
        );
        assert!(with_child.rss_kb > alone.rss_kb);
        assert_eq!(tree_usage(u32::MAX).processes, 0);
    }
}
