//! Tests of what only some blocking models promise, each chosen by property: a model
//! that forks leaves no zombie children and no orphan after SIGTERM; fixed workers that
//! each serve one connection make a client wait for a free one; worker threads fed by a
//! queue bound it by `--max-conns`. Servers run as child processes (`echolab serve`);
//! nothing here forks inside the test process.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use echolab::models::{Model, Runs};
use echolab_proto::Reply;
use support::suite::{self, case_where, Case};
use support::*;

const CASES: &[Case] = &[
    // Only a model that forks has children to reap, and to take down at shutdown.
    case_where(
        "leaves_no_zombies_and_no_orphans",
        Model::forks,
        leaves_no_zombies_and_no_orphans,
    ),
    // Only fixed workers that each serve one connection at a time make a client wait
    // for a free one (several event loops serve it at once).
    case_where(
        "third_client_waits_for_a_free_worker",
        one_connection_per_worker,
        third_client_waits_for_a_free_worker,
    ),
    // Only worker threads are fed by a queue of the server's own, bounded by
    // `--max-conns`.
    case_where(
        "queue_is_bounded_by_max_conns",
        |model| model.runs == Runs::WorkerThreads,
        queue_is_bounded_by_max_conns,
    ),
];

fn main() {
    suite::run_over_models(CASES)
}

fn one_connection_per_worker(model: &Model) -> bool {
    matches!(model.runs, Runs::WorkerThreads | Runs::WorkerProcesses)
}

/// Two processes stay in a forking server with two clients held: one per client for a
/// model that forks a process per connection, and its two workers (`--workers 2`) for
/// one with a fixed set.
const HELD: usize = 2;

fn leaves_no_zombies_and_no_orphans(model: &Model) {
    let workers = HELD.to_string();
    let extra: &[&str] = if model.takes_workers() {
        &["--workers", &workers]
    } else {
        &[]
    };
    let mut server = ServerGuard::start(model.name, extra);
    for i in 0..200u32 {
        let mut stream = server.connect();
        let payload = format!("short {i}");
        stream
            .write_all(&frames(&[payload.as_bytes()]))
            .expect("write");
        assert_eq!(
            expect_frame(&read_replies(&mut stream, 1)[0]),
            payload.as_bytes()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let zombies = proc::zombies(server.pid());
        if zombies == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {zombies} zombie children 3 s after 200 short connections",
            model.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Two clients stay connected through SIGTERM: their processes must be gone after.
    let mut held: Vec<_> = (0..HELD).map(|_| server.connect()).collect();
    for stream in &mut held {
        stream.write_all(&frames(&[b"held"])).expect("write");
        assert_eq!(expect_frame(&read_replies(stream, 1)[0]), b"held");
    }
    let live: Vec<u32> = proc::children(server.pid())
        .into_iter()
        .filter(|&child| proc::state(child) != Some('Z'))
        .collect();
    assert_eq!(
        live.len(),
        HELD,
        "{}: a process per held client or worker: {live:?}",
        model.name
    );
    let (status, _, stats) = server.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    for stream in &mut held {
        let (_, end) = read_until_close(stream);
        end.expect("clean close at shutdown");
    }
    for pid in live {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{}: child {pid} outlived the server",
            model.name
        );
    }
    let stats = stats.expect("JSON stats line on exit");
    assert_eq!(stats["frames"].as_u64(), Some(202), "{stats}");
    assert_eq!(stats["accepted"].as_u64(), Some(202), "{stats}");
}

fn third_client_waits_for_a_free_worker(model: &Model) {
    let server = ServerGuard::start(model.name, &["--workers", "2"]);
    let mut a = server.client();
    let mut b = server.client();
    assert_eq!(a.echo(b"a").expect("a served"), b"a");
    assert_eq!(b.echo(b"b").expect("b served"), b"b");
    let mut c = server.connect();
    c.write_all(&frames(&[b"c"])).expect("write");
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let waited = c.read(&mut byte);
    assert!(
        waited.is_err(),
        "{}: both workers are busy, yet the third client was answered: {waited:?}",
        model.name
    );
    drop(a);
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    assert_eq!(expect_frame(&read_replies(&mut c, 1)[0]), b"c");
    assert_eq!(b.echo(b"b2").expect("b still served"), b"b2");
}

fn queue_is_bounded_by_max_conns(model: &Model) {
    let server = ServerGuard::start(model.name, &["--workers", "1", "--max-conns", "2"]);
    let mut first = server.client();
    assert_eq!(first.echo(b"first").expect("first served"), b"first");
    let mut second = server.connect();
    second.write_all(&frames(&[b"second"])).expect("write");
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let waited = second.read(&mut byte);
    assert!(
        waited.is_err(),
        "{}: second should be queued: {waited:?}",
        model.name
    );
    let mut third = server.connect();
    let (replies, _) = read_until_close(&mut third);
    assert!(
        matches!(&replies[..], [Reply::Notice(t)] if t == "server busy"),
        "{}: {replies:?}",
        model.name
    );
    drop(first);
    second.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    assert_eq!(expect_frame(&read_replies(&mut second, 1)[0]), b"second");
}
