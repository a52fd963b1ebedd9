use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use echolab_proto::{encode_frame, Session, SessionConfig, WorkMode, WorkSpec, NONCE_LEN};

use super::*;
use crate::Work;

const WAIT: Duration = Duration::from_secs(10);

fn work(spec: &str) -> Arc<dyn Handler> {
    Arc::new(Work::new(WorkSpec::parse(spec).unwrap()).unwrap())
}

/// A wake callback that counts its calls and unblocks the test's "loop".
fn counting_waker() -> (
    Arc<AtomicUsize>,
    impl Fn() + Send + Sync + 'static,
    crossbeam_channel::Receiver<()>,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = crossbeam_channel::unbounded();
    let counter = Arc::clone(&count);
    let wake = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let _ = tx.send(());
    };
    (count, wake, rx)
}

fn frames(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in payloads {
        encode_frame(p, &mut wire).unwrap();
    }
    wire
}

/// One event loop's connections, each with pipelined frames, driven to completion
/// through the pool the way a model will: submit every job a session offers, wait for
/// the wake, complete what came back, write the replies.
fn serve_through(pool: &Offload, conns: usize, per_conn: usize) -> usize {
    let (wakes, wake, woken) = counting_waker();
    let port = pool.port(wake);
    let now = Instant::now();
    let config = SessionConfig {
        work: WorkMode::Offload,
        ..SessionConfig::default()
    };
    let mut sessions = Vec::new();
    let mut wires = Vec::new();
    for c in 0..conns {
        let payloads: Vec<Vec<u8>> = (0..per_conn).map(|i| vec![c as u8; i * 7]).collect();
        let wire = frames(&payloads);
        let mut session = Session::new(&config, now, [0; NONCE_LEN]);
        session.handle_input(&wire, now);
        sessions.push(session);
        wires.push(wire);
    }
    let mut echoed = vec![Vec::new(); conns];
    let mut returned = 0;
    let deadline = Instant::now() + WAIT;
    while returned < conns * per_conn {
        for (key, session) in sessions.iter_mut().enumerate() {
            if let Some(job) = session.take_job() {
                port.submit(key, job).expect("the pool is running");
            }
        }
        woken
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("woken before the deadline");
        for (key, job) in port.completed() {
            sessions[key].complete_job(job, now);
            let n = sessions[key].output().len();
            echoed[key].extend_from_slice(sessions[key].output());
            sessions[key].consume_output(n, now);
            returned += 1;
        }
    }
    assert_eq!(echoed, wires, "every connection's replies, in order");
    let wakes = wakes.load(Ordering::SeqCst);
    assert!((1..=returned).contains(&wakes), "{wakes} wakes");
    wakes
}

#[test]
fn every_job_comes_back_to_its_key_in_order_and_wakes_the_loop() {
    let pool = Offload::start(3, work("cpu:20us,10%block:2ms")).unwrap();
    assert_eq!(pool.workers(), 3);
    serve_through(&pool, 8, 12);
    pool.finish();
}

#[test]
fn loops_sharing_a_pool_get_their_own_jobs_back() {
    let pool = Offload::start(2, work("block:1ms")).unwrap();
    std::thread::scope(|scope| {
        let loops: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| serve_through(&pool, 4, 5)))
            .collect();
        for handle in loops {
            handle.join().expect("a loop's replies in order");
        }
    });
}

#[test]
fn finishing_drains_the_queued_jobs_then_refuses_more() {
    let pool: Offload<Vec<u8>> = Offload::start(2, work("block:20ms")).unwrap();
    let (_, wake, _woken) = counting_waker();
    let port = pool.port(wake);
    let jobs = 10;
    for key in 0..jobs {
        port.submit(key, vec![key as u8]).unwrap();
    }
    let started = Instant::now();
    pool.finish();
    // Ten 20 ms sleeps on two threads: at least 100 ms of queue, all of it worked off.
    assert!(
        started.elapsed() >= Duration::from_millis(80),
        "{:?}",
        started.elapsed()
    );
    let mut keys: Vec<usize> = port
        .completed()
        .map(|(key, item)| {
            assert_eq!(item, vec![key as u8]);
            key
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..jobs).collect::<Vec<_>>());
    assert_eq!(
        port.submit(99, vec![1]),
        Err(vec![1]),
        "after finish, refused"
    );
}

#[test]
fn the_wake_is_coalesced_until_the_loop_takes_its_completions() {
    let pool: Offload<Vec<u8>> = Offload::start(1, work("cpu:1us")).unwrap();
    let (wakes, wake, woken) = counting_waker();
    let port = pool.port(wake);
    for key in 0..20 {
        port.submit(key, vec![]).unwrap();
    }
    // Nobody takes the completions: one wake for all of them.
    for _ in 0..1000 {
        if port.done.len() == 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(port.done.len(), 20);
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
    assert_eq!(port.completed().count(), 20);
    port.submit(0, vec![]).unwrap();
    woken.recv_timeout(WAIT).unwrap();
    woken.recv_timeout(WAIT).expect("re-armed by completed()");
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
}

#[derive(Debug)]
struct Panics;

impl Handler for Panics {
    fn handle(&self, _payload: &[u8]) {
        panic!("a handler bug");
    }
}

#[test]
fn a_panicking_handler_loses_no_job_and_no_worker() {
    let pool: Offload<Vec<u8>> = Offload::start(1, Arc::new(Panics)).unwrap();
    let (_, wake, woken) = counting_waker();
    let port = pool.port(wake);
    for key in 0..3 {
        port.submit(key, vec![]).unwrap();
    }
    let mut back = 0;
    while back < 3 {
        woken.recv_timeout(WAIT).expect("jobs come back");
        back += port.completed().count();
    }
}

#[test]
fn zero_workers_is_an_error_not_a_panic() {
    let err = Offload::<Vec<u8>>::start(0, work("cpu:1us")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}
