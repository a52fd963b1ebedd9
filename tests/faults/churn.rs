//! Case 11 of issue 6, connection churn: 1,000 short connections leave nothing behind
//! (no zombie, no descriptor), in every model; and for `fork`, signals arriving in the
//! middle of a 50 MiB echo (a SIGCHLD storm) lose nothing.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab::models::Model;
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

pub(crate) fn thousand_short_connections_leave_nothing(model: &Model) {
    let mut server = start(model, &[]);
    let pid = server.pid();
    assert_serves_next_client(&server);
    std::thread::sleep(Duration::from_millis(300));
    let baseline = proc::fd_count(pid);
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
        proc::fd_count(pid) <= baseline && proc::children(pid).is_empty()
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
    let children = proc::children(pid);
    let [echo_child] = children[..] else {
        panic!("{}: expected one child, found {children:?}", model.name);
    };
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
                if kill(Pid::from_raw(echo_child as i32), Signal::SIGCHLD).is_err() {
                    break;
                }
                signals.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    // Real SIGCHLDs at the parent: other children exiting while the echo runs.
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
    let reaped = proc::wait_until(Duration::from_secs(3), || proc::children(pid).is_empty());
    assert!(
        reaped,
        "{}: children left: {:?}",
        model.name,
        proc::children(pid)
    );
    assert_alive(&mut server);
}
