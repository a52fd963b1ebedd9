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
use crate::support::{frames, pattern};

pub(crate) fn new_connects_refused_while_draining(model: &Model) {
    let mut server = start(model, &["--max-frame", "8388608"]);
    let mut stuck = server.connect();
    stuck
        .write_all(&frames(&[&pattern(6 << 20, 13)]))
        .expect("write a 6 MiB frame");
    // Let the server take the frame in and block on writing its echo.
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.wait_timeout(Duration::ZERO).is_none(),
        "{}: exited before the stuck client's linger ran out",
        model.name
    );
    let late = TcpStream::connect_timeout(&server.addr, Duration::from_secs(2));
    if model.concurrent() {
        match late {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            other => panic!(
                "{}: a connect during the drain was not refused: {other:?}",
                model.name
            ),
        }
    } else {
        let mut late = late.expect("iterative: the backlog takes the connect");
        late.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        late.write_all(&frames(&[b"late"])).expect("write");
        let mut byte = [0u8; 1];
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
    let status = server
        .wait_timeout(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}: still running 5 s after SIGTERM", model.name));
    let took = signalled.elapsed();
    assert!(status.success(), "{}: exit {status}", model.name);
    assert!(
        took < Duration::from_secs(4),
        "{}: exit {took:?} after SIGTERM with a 2 s linger",
        model.name
    );
    drop(stuck);
}
