//! Building the runtime so that it starts, or fails with an error, whatever the thread
//! limit.
//!
//! tokio 1.54 starts every worker thread in `Builder::build`. If the OS refuses one
//! (`ulimit -u`: EAGAIN), it panics — and the unwinding then waits forever to join the
//! workers it did start, which nobody told to stop: a plain `#[tokio::main]` server
//! under a tight process limit hangs at start-up. So before building, [`build`] counts
//! how many threads can start right now and sizes the runtime to that, as `pool` serves
//! with the workers it could start.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

/// How long to wait for the probe threads to be gone from the kernel's count.
const PROBE_SETTLE: Duration = Duration::from_millis(200);

/// The multi-thread runtime with up to `wanted` worker threads (fewer when fewer can
/// start), its I/O and time drivers.
pub(crate) fn build(wanted: usize) -> io::Result<Runtime> {
    let workers = startable_threads(wanted);
    if workers == 0 {
        return Err(io::Error::other(
            "cannot start any worker thread for the tokio runtime (ulimit -u?)",
        ));
    }
    let build = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("echolab-tokio")
            .enable_io()
            .enable_time()
            .build()
    };
    // Should the limit tighten between the probe and the build, tokio panics (and may
    // hang, see the module doc); a panic that does unwind becomes an error here.
    catch_unwind(AssertUnwindSafe(build)).unwrap_or_else(|_| {
        Err(io::Error::other(
            "cannot start the tokio runtime's worker threads",
        ))
    })
}

/// How many of `wanted` threads can run at once now: starts them (with the default
/// stack, as tokio's workers), holds them until the last has started or one failed,
/// then lets them all finish and waits until the kernel no longer counts them.
fn startable_threads(wanted: usize) -> usize {
    let before = thread_count();
    let mut probes = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        let (hold, wait) = mpsc::channel::<()>();
        let spawned = thread::Builder::new()
            .name("echolab-probe".into())
            .spawn(move || {
                let _ = wait.recv();
            });
        match spawned {
            Ok(handle) => probes.push((hold, handle)),
            Err(_) => break,
        }
    }
    let started = probes.len();
    for (hold, handle) in probes {
        drop(hold);
        let _ = handle.join();
    }
    // `join` returns when the thread has run its last instruction; the kernel drops it
    // from the user's task count (and from /proc/self/task) a moment later.
    if let Some(before) = before {
        let until = Instant::now() + PROBE_SETTLE;
        while thread_count().is_some_and(|now| now > before) && Instant::now() < until {
            thread::sleep(Duration::from_millis(1));
        }
    }
    started
}

/// This process's threads, from `/proc/self/task`.
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(Iterator::count)
}
