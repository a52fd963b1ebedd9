//! Case 10 of issue 6, out of threads or processes: the server runs as an unprivileged
//! user under `prlimit --nproc=4` (the limit counts every task of that user; root
//! ignores it), so it may have at most 4 tasks: its main thread and 3 more.
//!
//! What each model does with 6 clients at once:
//! - `threads` and `fork` start a task per client: `fork` serves 3 clients, `threads` 2
//!   (its shutdown interrupter is the 4th task), and the next `spawn`/`fork` fails
//!   (EAGAIN), so the rest get the `server busy` notice and a close; the server keeps
//!   serving, and once the served clients leave, their threads or processes are gone
//!   and new clients are served again.
//! - `pool` starts its workers once: 2 of `--workers 8` start (beside the main thread
//!   and the interrupter), and it serves with those; the other clients wait in the
//!   queue and are served as workers free up.
//! - `iterative`, `poll` and `mio` start no task per client and are unaffected:
//!   `iterative` serves one client at a time as always, the readiness loops all 6.
//! - `tokio` builds its runtime with the 3 worker threads that can start (beside the
//!   main thread, which runs the accept loop); its tasks are not tied to a thread, so
//!   all 6 are served.
//! - `prefork` forks its workers before any client: 3 of `--workers 8` start (the
//!   parent retries the rest and keeps failing), each serves one client, and the other
//!   3 clients wait in the backlog until a worker is free — nobody is refused.
//! - `reactors` starts its loops before any client: 3 of `--workers 8` loop threads
//!   start beside the main thread's loop, the listeners of the 4 that could not start
//!   are closed, and every loop serves any number of clients, so all 6 are served.
//!
//! The server runs as a user id of its own (`setpriv --reuid`), different for every
//! model and test process, so that no other process counts against the limit.
//! Where that is impossible (not root, no `prlimit` or `setpriv`), [`unprivileged_user`]
//! says why, and the suite lists the case's trials as ignored.

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use echolab_registry::{Model, Runs, MODELS};

use super::{prlimit, start_under};
use crate::support::pending::{self, Outcome, PendingClient};
use crate::support::{frames, pattern, proc, ServerGuard};

const NPROC: usize = 4;
const CLIENTS: usize = 6;
const SERVED_WITHIN: Duration = Duration::from_secs(2);

/// Of [`CLIENTS`] clients at once: how many are served and how many refused while the
/// process limit holds (see the module doc).
fn expected(model: &Model) -> (usize, usize) {
    let extra_tasks = NPROC - 1;
    // A threaded blocking model also runs the shutdown interrupter, one task fewer for
    // clients; a forking parent runs none (it must stay single-threaded).
    let thread_tasks = extra_tasks - 1;
    match model.runs {
        Runs::ThreadEach => (thread_tasks, CLIENTS - thread_tasks),
        Runs::ProcessEach => (extra_tasks, CLIENTS - extra_tasks),
        Runs::WorkerThreads => (thread_tasks, 0),
        Runs::InTurn => (1, 0),
        // A readiness loop: one task serves everyone.
        Runs::EventLoop => (CLIENTS, 0),
        // Processes started before any client, one client each: as many served as
        // started, the rest wait.
        Runs::WorkerProcesses => (extra_tasks.min(CLIENTS), 0),
        // Loops started before any client (however few): each serves everyone it gets,
        // and the listeners of loops that never started are closed, so nobody waits.
        Runs::SeveralLoops => (CLIENTS, 0),
        // A runtime starts its worker threads before any client too (as many as can
        // start), but a task is not tied to one: the workers that did start (one is
        // enough) run every connection's task, as one event loop would.
        Runs::Runtime => (CLIENTS, 0),
    }
}

/// A user id nobody else uses: per model and per test process.
fn private_uid(model: &Model) -> u32 {
    let index = MODELS
        .iter()
        .position(|m| m.name == model.name)
        .expect("registered") as u32;
    first_private_uid() + index
}

/// The first of this test process's user ids, room for 256 models after it.
fn first_private_uid() -> u32 {
    200_000 + (std::process::id() % 100_000) * 256
}

/// Whether this process can run the server as a user of its own under a process limit
/// (the case's [`needs`](crate::support::suite::Case::needs)); the reason when it
/// cannot.
pub(crate) fn unprivileged_user() -> Result<(), String> {
    prlimit()?;
    let id = first_private_uid().to_string();
    let probe = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .args([env!("CARGO_BIN_EXE_echolab"), "models", "--names"])
        .output();
    match probe {
        Err(e) => Err(format!("needs setpriv (util-linux): {e}")),
        Ok(out) if !out.status.success() => Err(format!(
            "needs root to run the server as another user: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("setpriv failed")
        )),
        Ok(_) => Ok(()),
    }
}

fn connect_client(server: &ServerGuard, i: usize) -> PendingClient {
    let payload = pattern(50 + i, i as u8);
    let mut stream = server.connect();
    stream.write_all(&frames(&[&payload])).expect("write");
    PendingClient::new(stream, payload)
}

pub(crate) fn process_limit_refuses_then_recovers(model: &Model) {
    let id = private_uid(model).to_string();
    let nproc = format!("--nproc={NPROC}:{NPROC}");
    let wrapper = [
        "prlimit",
        &nproc,
        "--",
        "setpriv",
        "--reuid",
        &id,
        "--regid",
        &id,
        "--clear-groups",
        "--",
    ];
    let mut server = start_under(model, &wrapper, &["--workers", "8"]);
    let pid = server.pid();
    // What the server holds with no client: its main thread (and `pool`'s workers).
    std::thread::sleep(Duration::from_millis(200));
    let idle_tasks = proc::task_count(pid);
    let (served, refused) = expected(model);
    let mut clients: Vec<PendingClient> =
        (0..CLIENTS).map(|i| connect_client(&server, i)).collect();
    let settled = pending::pump_until(&mut clients, Duration::from_secs(3), |c| {
        pending::count(c, &Outcome::Served) >= served
            && pending::count(c, &Outcome::Refused) >= refused
    });
    pending::assert_none_broken(&clients, model.name);
    // Nobody beyond the limit is served a little later either.
    std::thread::sleep(Duration::from_millis(300));
    pending::pump_until(&mut clients, Duration::ZERO, |_| true);
    let got = (
        pending::count(&clients, &Outcome::Served),
        pending::count(&clients, &Outcome::Refused),
    );
    eprintln!(
        "{}: {} served, {} refused of {CLIENTS} under --nproc={NPROC} ({} tasks)",
        model.name,
        got.0,
        got.1,
        proc::task_count(pid)
    );
    assert!(
        settled && got == (served, refused),
        "{}: (served, refused) = {got:?}, expected {:?}",
        model.name,
        (served, refused)
    );
    assert!(
        proc::task_count(pid) <= NPROC,
        "{}: {} tasks under --nproc={NPROC}",
        model.name,
        proc::task_count(pid)
    );

    // The refused are gone; the served leave, and whoever waits is served in turn.
    clients.retain(|c| c.outcome() != Outcome::Refused);
    pending::serve_in_waves(clients, SERVED_WITHIN, model.name);

    // Recovered: once the tasks of the clients that left are gone, as many clients as
    // at first are served at once again.
    let recovered = proc::wait_until(Duration::from_secs(3), || {
        proc::task_count(pid) <= idle_tasks
    });
    assert!(
        recovered,
        "{}: {} tasks left after every client left, {idle_tasks} before any came",
        model.name,
        proc::task_count(pid)
    );
    let mut again: Vec<PendingClient> = (0..served).map(|i| connect_client(&server, i)).collect();
    let ok = pending::pump_until(&mut again, SERVED_WITHIN, |c| {
        pending::count(c, &Outcome::Served) == served
    });
    pending::assert_none_broken(&again, model.name);
    assert!(
        ok,
        "{}: after recovery only {} of {served} clients served",
        model.name,
        pending::count(&again, &Outcome::Served)
    );
    assert!(
        server.wait_timeout(Duration::ZERO).is_none(),
        "{}: the server died",
        model.name
    );
}
