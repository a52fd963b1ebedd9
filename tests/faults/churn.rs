//! Case 11 of issue 6, connection churn: 1,000 short connections leave nothing behind
//! (no zombie, no descriptor), in every model; and for the models with processes,
//! signals arriving in the middle of a 50 MiB echo (a SIGCHLD storm) lose nothing.
//!
//! Worker processes (`prefork`) are forked before any client and outlive every
//! connection: where a process per client must be gone after its client, a worker must
//! still be there — the same one, neither replaced nor a zombie.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab_registry::{Model, Runs};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{assert_alive, assert_serves_next_client, start};
use echolab_client::{Client, ClientConfig};

use crate::support::{frames, pattern, proc, read_exactly, write_in_background};

const SHORT_CONNECTIONS: usize = 1000;
const CHURN_THREADS: usize = 4;

/// One short connection: connect, one echo, close.
fn short_connection(config: &ClientConfig, i: usize) {
    let mut client = Client::connect(config).expect("connect");
    let payload = pattern(32, i as u8);
    assert!(
        client.echo(&payload).expect("short connection served") == payload,
        "short connection {i}: echo differs"
    );
}

/// The children that stay whatever the clients do: `prefork`'s workers (sorted), none
/// for every other model.
fn standing_children(model: &Model, pid: u32) -> Vec<u32> {
    if model.runs != Runs::WorkerProcesses {
        return Vec::new();
    }
    let mut workers = proc::children(pid);
    workers.sort_unstable();
    workers
}

fn children_sorted(pid: u32) -> Vec<u32> {
    let mut children = proc::children(pid);
    children.sort_unstable();
    children
}

pub(crate) fn thousand_short_connections_leave_nothing(model: &Model) {
    let mut server = start(model, &[]);
    let pid = server.pid();
    assert_serves_next_client(&server);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = proc::fd_count(pid);
    let standing = standing_children(model, pid);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..CHURN_THREADS {
            let config = server.client_config();
            scope.spawn(move || {
                for i in (t..SHORT_CONNECTIONS).step_by(CHURN_THREADS) {
                    short_connection(&config, i);
                }
            });
        }
    });
    let churned = started.elapsed();
    let settled = proc::wait_until(Duration::from_secs(3), || {
        proc::fd_count(pid) <= baseline
            && children_sorted(pid) == standing
            && proc::zombies(pid) == 0
    });
    eprintln!(
        "{}: {SHORT_CONNECTIONS} short connections in {churned:?}; then {} fds (baseline \
         {baseline}), {} children, {} zombies",
        model.name,
        proc::fd_count(pid),
        proc::children(pid).len(),
        proc::zombies(pid)
    );
    assert!(
        settled,
        "{}: after {SHORT_CONNECTIONS} short connections: {} fds (baseline {baseline}), \
         {} children of which {} zombies",
        model.name,
        proc::fd_count(pid),
        proc::children(pid).len(),
        proc::zombies(pid)
    );
    assert_alive(&mut server);
}

const ECHO_FRAMES: usize = 50;

pub(crate) fn sigchld_storm_during_50mib_echo(model: &Model) {
    let mut server = start(model, &[]);
    let pid = server.pid();
    let mut stream = server.connect();
    stream.write_all(&frames(&[b"hello"])).expect("write");
    assert_eq!(read_exactly(&mut stream, 9)[4..], *b"hello");
    // `fork`: the one child, serving the echo. Worker processes: every worker, the one
    // the kernel gave the echo to among them (which one is not visible from here).
    let standing = standing_children(model, pid);
    let targets = proc::children(pid);
    if model.runs == Runs::ProcessEach {
        assert_eq!(targets.len(), 1, "{}: expected one child", model.name);
    }
    assert!(
        !targets.is_empty(),
        "{}: no child serves the echo",
        model.name
    );
    // One 1 MiB pattern (generating 50 MiB byte by byte is slow in a debug build),
    // each copy stamped with its index so that no two frames are alike.
    let base = pattern(1 << 20, 11);
    let payloads: Vec<Vec<u8>> = (0..ECHO_FRAMES)
        .map(|i| {
            let mut payload = base.clone();
            payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
            payload
        })
        .collect();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let wire = frames(&refs);
    let stop = Arc::new(AtomicBool::new(false));
    let signals = Arc::new(AtomicUsize::new(0));
    let churned = Arc::new(AtomicUsize::new(0));
    // Signals straight at the child serving the echo: its reads and writes (with
    // socket timeouts, so never restarted by SA_RESTART) return EINTR.
    let signaller = {
        let (stop, signals) = (stop.clone(), signals.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let sent = targets
                    .iter()
                    .filter(|&&child| kill(Pid::from_raw(child as i32), Signal::SIGCHLD).is_ok())
                    .count();
                if sent == 0 {
                    break;
                }
                signals.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    // Real SIGCHLDs at the parent: other children exiting while the echo runs (worker
    // processes do not exit: for them, short connections served beside the echo).
    let churner = {
        let (stop, churned) = (stop.clone(), churned.clone());
        let config = server.client_config();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = churned.fetch_add(1, Ordering::Relaxed);
                short_connection(&config, n);
            }
        })
    };
    let started = Instant::now();
    let writer = write_in_background(&stream, wire.clone());
    let echoed = read_exactly(&mut stream, wire.len());
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer").expect("write 50 MiB");
    signaller.join().expect("signaller");
    churner.join().expect("churner");
    let (signals, churned) = (
        signals.load(Ordering::Relaxed),
        churned.load(Ordering::Relaxed),
    );
    eprintln!(
        "{}: 50 MiB echoed in {took:?} with {signals} SIGCHLD at the child and {churned} \
         children exiting",
        model.name
    );
    assert!(echoed == wire, "{}: the 50 MiB echo differs", model.name);
    assert!(
        signals >= 100 && churned >= 10,
        "{}: too little happened during the echo to prove anything ({signals} signals, \
         {churned} churned)",
        model.name
    );
    drop(stream);
    let reaped = proc::wait_until(Duration::from_secs(3), || {
        children_sorted(pid) == standing && proc::zombies(pid) == 0
    });
    assert!(
        reaped,
        "{}: children left: {:?}, standing workers {standing:?}",
        model.name,
        proc::children(pid)
    );
    assert_alive(&mut server);
}
