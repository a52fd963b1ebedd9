//! What the suites read of a server from `/proc`, through the harness's readers
//! ([`echolab_harness::procfs`]), plus the test process's own descriptor limit.

use std::time::{Duration, Instant};

use echolab_harness::procfs;

// Not every suite uses every reader.
#[allow(unused_imports)]
pub use echolab_harness::procfs::{children, fd_count, state};

/// `VmRSS` of `pid` alone (not its children) in kB; 0 if the process is gone.
pub fn rss_kb(pid: u32) -> u64 {
    procfs::sample_process(pid).map_or(0, |sample| sample.rss_kb)
}

/// CPU time of the server's whole tree in ms (a forking server's children included,
/// and the children it has reaped); 0 if it is gone.
pub fn cpu_ms(pid: u32) -> u64 {
    procfs::sample_tree(pid).map_or(0, |sample| (sample.cpu_secs * 1000.0).round() as u64)
}

/// Every thread of every process in the tree of `pid`: what counts against a process
/// limit (`RLIMIT_NPROC`); 0 if it is gone.
pub fn task_count(pid: u32) -> usize {
    procfs::sample_tree(pid).map_or(0, |sample| sample.threads as usize)
}

/// How many children of `pid` are zombies (exited, not reaped).
pub fn zombies(pid: u32) -> usize {
    children(pid)
        .into_iter()
        .filter(|&child| state(child) == Some('Z'))
        .count()
}

/// Whether every thread of `pid` is stopped (state `T`, as after SIGSTOP); false if it
/// is gone.
pub fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        let tid = task.file_name().to_str().and_then(|t| t.parse().ok());
        tid.and_then(state) == Some('T')
    })
}

/// Connections waiting to be accepted on the TCP listeners bound to `port` (the
/// `rx_queue` of a listening socket in `/proc/net/tcp` and `tcp6` is its accept queue);
/// 0 where neither table can be read.
pub fn listen_queue(port: u16) -> u64 {
    const LISTEN: &str = "0A";
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16);
                    let queues = fields.get(4)?.split_once(':')?;
                    let queued = u64::from_str_radix(queues.1, 16).ok()?;
                    (local.ok()? == port && *fields.get(3)? == LISTEN).then_some(queued)
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Raises this process's soft descriptor limit towards `wanted` (never past the hard
/// limit); returns the soft limit now in force. Servers started afterwards inherit it.
pub fn raise_nofile(wanted: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft >= wanted {
        return soft;
    }
    let target = wanted.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).expect("setrlimit");
    target
}
