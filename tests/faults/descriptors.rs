//! Case 7 of issue 6, out of descriptors: the server runs under `prlimit --nofile=64`
//! and 100 clients connect at once, each sending one frame.
//!
//! What each model does: `threads`, `pool`, `poll` and `mio` hold a descriptor per
//! accepted client, so `accept` fails (EMFILE) once about 55 are open; they back off
//! ([`echolab_server::ACCEPT_BACKOFF`]) instead of retrying at once, and the rest wait
//! in the listen backlog. `iterative` holds one client at a time and never runs out;
//! the others wait in the backlog just the same. `fork` never runs out either: the
//! parent closes its copy of each socket after the fork, and every child has a
//! descriptor table of its own; nor does `prefork`, whose workers each hold one client
//! in a table of their own while the rest wait in the backlog. `reactors`' loops share
//! the process's table and run out like `mio`. In every model the test then frees descriptors the
//! way a real server gets them back — the clients already served leave — and asserts
//! that the waiting clients are served within ~1 s, wave after wave, until all 100 are.

use std::io::Write;
use std::time::{Duration, Instant};

use echolab_registry::Model;

use super::start_under;
use crate::support::pending::{self, Outcome, PendingClient};
use crate::support::{frames, pattern, proc};

const CLIENTS: usize = 100;

/// How soon after descriptors free up the waiting clients must be served: the ~1 s of
/// the case, plus room for a loaded 2-core machine.
const SERVED_WITHIN: Duration = Duration::from_secs(2);

/// Whether `model` holds a descriptor per connection in the accepting process (see the
/// module doc). A model with processes never does: `fork`'s parent closes its copy of
/// each socket, and each of `prefork`'s workers holds one client in a descriptor table
/// of its own. Nor does one that accepts only what it serves (`iterative`, and workers
/// each blocking in `accept`): the rest wait in the backlog, holding no descriptor.
fn runs_out(model: &Model) -> bool {
    !model.accepts_when_free && !model.forks()
}

pub(crate) fn out_of_descriptors_backs_off_then_serves_the_queue(model: &Model) {
    let mut server = start_under(model, &["prlimit", "--nofile=64:64", "--"], &[]);
    let pid = server.pid();
    let mut clients: Vec<PendingClient> = (0..CLIENTS)
        .map(|i| {
            let payload = pattern(100 + i, i as u8);
            let mut stream = server.connect();
            stream.write_all(&frames(&[&payload])).expect("write");
            PendingClient::new(stream, payload)
        })
        .collect();
    // Let the server accept what it can and serve those.
    std::thread::sleep(Duration::from_millis(300));
    let cpu_before = proc::cpu_ms(pid);
    let measured = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let cpu_ms = proc::cpu_ms(pid).saturating_sub(cpu_before);
    let wall_ms = measured.elapsed().as_millis() as u64;
    pending::pump_until(&mut clients, Duration::ZERO, |_| true);
    pending::assert_none_broken(&clients, model.name);
    let served_first = pending::count(&clients, &Outcome::Served);
    eprintln!(
        "{}: {served_first} of {CLIENTS} served while out; {cpu_ms} ms CPU in {wall_ms} ms",
        model.name
    );
    assert!(
        model.busy_waits || cpu_ms * 20 < wall_ms,
        "{}: {cpu_ms} ms of CPU in {wall_ms} ms while out of descriptors (over 5% of a core)",
        model.name
    );
    if runs_out(model) {
        assert!(
            served_first < CLIENTS,
            "{}: all {CLIENTS} clients served under --nofile=64",
            model.name
        );
    }

    // Waves: the served clients leave, and the waiting ones take their descriptors.
    let (waves, slowest) = pending::serve_in_waves(clients, SERVED_WITHIN, model.name);
    eprintln!(
        "{}: the rest served in {waves} waves, slowest {slowest:?}",
        model.name
    );
    assert!(
        server.wait_timeout(Duration::ZERO).is_none(),
        "{}: the server died",
        model.name
    );
    let (status, _, stats) = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "{}: exit {status:?}", model.name);
    let stats = stats.expect("stats line");
    let accept_errors = stats.stats.errors.get("accept").copied().unwrap_or(0);
    assert_eq!(
        accept_errors > 0,
        runs_out(model),
        "{}: accept errors {accept_errors}: {stats:?}",
        model.name
    );
}
