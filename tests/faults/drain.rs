//! Case 13 of issue 6, the part `graceful_shutdown_under_load` leaves out: once SIGTERM
//! arrives, new connects are refused while the server drains what it owes. The drain
//! is held open by a client that sent a 6 MiB frame and reads nothing, so the server
//! waits out its shutdown linger (2 s) for it. Concurrent models close the listening
//! socket when shutdown begins, so a connect during the drain gets ECONNREFUSED.
//! `iterative` (bounded failure): it is inside the one connection's loop when the
//! signal comes and closes its listener only when that loop returns, so a connect
//! during the drain completes in the kernel's backlog, is never served, and is reset
//! when the server exits, within the same linger.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use echolab_registry::Model;
use nix::sys::signal::Signal;

use super::start;
use crate::support::{frames, pattern, proc, ServerGuard};

pub(crate) fn new_connects_refused_while_draining(model: &Model) {
    let mut server = start(model, &["--max-frame", "8388608"]);
    let mut stuck = server.connect();
    stuck
        .write_all(&frames(&[&pattern(6 << 20, 13)]))
        .expect("write a 6 MiB frame");
    // The echo has begun (and stalls: nothing reads it): the server holds the
    // connection, and the drain will wait out its linger for it.
    let mut byte = [0u8; 1];
    let echoing = stuck.peek(&mut byte);
    assert!(
        matches!(echoing, Ok(1)),
        "{}: no echo of the 6 MiB frame began: {echoing:?}",
        model.name
    );
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    if model.concurrent() {
        // Refused from the moment the drain closes the listener (the connects before
        // that are taken, and closed by the drain).
        let refused = proc::wait_until(DRAIN_SEEN, || {
            matches!(
                TcpStream::connect_timeout(&server.addr, DRAIN_SEEN),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused
            )
        });
        assert!(
            refused,
            "{}: connects still taken {DRAIN_SEEN:?} after SIGTERM",
            model.name
        );
        assert_still_draining(&mut server, model);
    } else {
        let late = TcpStream::connect_timeout(&server.addr, DRAIN_SEEN);
        assert_still_draining(&mut server, model);
        let mut late = late.expect("iterative: the backlog takes the connect");
        late.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        late.write_all(&frames(&[b"late"])).expect("write");
        match late.read(&mut byte) {
            // Closed or reset when the server exits, unserved.
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!(
                "iterative: a connect during the drain was served, or hung past the \
                 server's exit: {other:?}"
            ),
        }
    }
    let (status, took, _) = server.await_exit(signalled, Duration::from_secs(5));
    assert!(status.success(), "{}: exit {status}", model.name);
    assert!(
        took < Duration::from_secs(4),
        "{}: exit {took:?} after SIGTERM with a 2 s linger",
        model.name
    );
    drop(stuck);
}

/// Within this of SIGTERM (under the 2 s linger the stuck client holds the drain open
/// for), a concurrent model refuses connects.
const DRAIN_SEEN: Duration = Duration::from_secs(1);

/// The stuck client's linger has not run out: the server must still be running.
fn assert_still_draining(server: &mut ServerGuard, model: &Model) {
    assert!(
        server.wait_timeout(Duration::ZERO).is_none(),
        "{}: exited before the stuck client's linger ran out",
        model.name
    );
}
