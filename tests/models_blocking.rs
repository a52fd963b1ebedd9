//! Tests of what only some blocking models promise, each chosen by property: a model
//! that forks leaves no zombie children and no orphan after SIGTERM; fixed workers that
//! each serve one connection make a client wait for a free one; worker threads fed by a
//! queue bound it by `--max-conns`; worker processes forked up front count their
//! connections together, refuse past `--max-conns` with a spare worker, are replaced
//! when one dies and die with their parent. Servers run as child processes (`echolab
//! serve`); nothing here forks inside the test process.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use echolab_proto::Reply;
use echolab_registry::{Model, Runs};
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
        Model::one_client_per_worker,
        third_client_waits_for_a_free_worker,
    ),
    // Only worker threads that an acceptor feeds have a queue of the server's own,
    // bounded by `--max-conns` (workers that accept for themselves leave the rest in the
    // kernel's backlog).
    case_where(
        "queue_is_bounded_by_max_conns",
        |model| model.runs == Runs::WorkerThreads && !model.accepts_when_free,
        queue_is_bounded_by_max_conns,
    ),
    // Only worker processes keep counters apart (each child its own, sent home at
    // exit) while serving at the same time.
    case_where(
        "worker_processes_count_every_connection",
        worker_processes,
        worker_processes_count_every_connection,
    ),
    // Only worker processes forked up front have no accept loop of the server's own to
    // turn a client away: past `--max-conns` a spare worker does.
    case_where(
        "spare_worker_refuses_past_max_conns",
        worker_processes,
        spare_worker_refuses_past_max_conns,
    ),
    // Only worker processes are kept at strength by their parent, and outlive nothing.
    case_where(
        "killed_worker_replaced_and_workers_die_with_the_parent",
        worker_processes,
        killed_worker_replaced_and_workers_die_with_the_parent,
    ),
];

fn main() {
    suite::run_over_models(CASES)
}

fn worker_processes(model: &Model) -> bool {
    model.runs == Runs::WorkerProcesses
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
    assert_eq!(stats.stats.frames, 202, "{stats:?}");
    assert_eq!(stats.stats.accepted, 202, "{stats:?}");
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
    // Neither answered nor told anything (no busy notice, no close, no reset): it waits.
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "{}: both workers are busy, yet the third client heard something: {waited:?}",
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

/// The live (not zombie) children of `pid`, sorted.
fn live_children(pid: u32) -> Vec<u32> {
    let mut live: Vec<u32> = proc::children(pid)
        .into_iter()
        .filter(|&child| proc::state(child) != Some('Z'))
        .collect();
    live.sort_unstable();
    live
}

fn worker_processes_count_every_connection(model: &Model) {
    let mut server = ServerGuard::start(model.name, &["--workers", "2"]);
    // Forked before the `listening on` line.
    assert_eq!(live_children(server.pid()).len(), 2, "{}", model.name);
    {
        let mut a = server.client();
        let mut b = server.client();
        assert_eq!(a.echo(b"a").expect("a served"), b"a");
        assert_eq!(b.echo(b"b").expect("b served"), b"b");
    }
    let mut c = server.client();
    assert_eq!(c.echo(b"c").expect("c served"), b"c");
    drop(c);
    let (status, _, stats) = server.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    let stats = stats.expect("JSON stats line on exit");
    // Each worker's counters came home at its exit: every connection counted once, by
    // the worker that accepted it, and the peak across workers, not within one.
    let stats = stats.stats;
    assert_eq!(stats.accepted, 3, "{stats:?}");
    assert_eq!(stats.frames, 3, "{stats:?}");
    let per_worker = &stats.accepted_per_worker;
    assert_eq!(per_worker.iter().sum::<u64>(), 3, "{stats:?}");
    assert!(per_worker.len() <= 2, "{stats:?}");
    assert_eq!(stats.active_peak, 2, "{stats:?}");
}

fn spare_worker_refuses_past_max_conns(model: &Model) {
    let server = ServerGuard::start(model.name, &["--workers", "4", "--max-conns", "1"]);
    assert_eq!(
        live_children(server.pid()).len(),
        2,
        "{}: one worker to serve, one spare to refuse",
        model.name
    );
    let mut a = server.client();
    assert_eq!(a.echo(b"a").expect("a served"), b"a");
    let mut b = server.connect();
    let (replies, _) = read_until_close(&mut b);
    assert!(
        matches!(&replies[..], [Reply::Notice(t)] if t == "server busy"),
        "{}: {replies:?}",
        model.name
    );
    drop(a);
    // The seat comes back once the worker has seen its client leave.
    let served = proc::wait_until(Duration::from_secs(5), || {
        server.client().echo(b"again").is_ok_and(|r| r == b"again")
    });
    assert!(served, "{}: the seat never came back", model.name);
}

fn killed_worker_replaced_and_workers_die_with_the_parent(model: &Model) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let server = ServerGuard::start(model.name, &["--workers", "3"]);
    let pid = server.pid();
    let before = live_children(pid);
    assert_eq!(before.len(), 3, "{}: {before:?}", model.name);
    // A worker younger than a second is replaced a second after it was forked (the
    // crash-loop guard); let them age past it so the replacement is immediate.
    std::thread::sleep(Duration::from_millis(1100));
    let victim = before[0];
    kill(Pid::from_raw(victim as i32), Signal::SIGKILL).expect("kill a worker");
    let replaced = proc::wait_until(Duration::from_secs(1), || {
        let now = live_children(pid);
        now.len() == 3 && !now.contains(&victim)
    });
    assert!(
        replaced,
        "{}: worker {victim} not replaced: {:?}",
        model.name,
        live_children(pid)
    );
    for i in 0..6u8 {
        let mut client = server.client();
        assert_eq!(client.echo(&[i]).expect("served after the loss"), [i]);
    }
    // The parent dies without a chance to stop them: PR_SET_PDEATHSIG does.
    let workers = live_children(pid);
    server.signal(Signal::SIGKILL);
    let gone = proc::wait_until(Duration::from_secs(3), || {
        workers
            .iter()
            .all(|&w| matches!(proc::state(w), None | Some('Z')))
    });
    assert!(
        gone,
        "{}: workers {workers:?} outlived their parent",
        model.name
    );
}
