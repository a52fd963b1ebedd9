//! Case 9 of issue 6: 2,000 simultaneous connects against `--max-conns 500`.
//!
//! All 2,000 connects are issued at once (non-blocking), and nothing is sent until the
//! server has answered what it can without input: each concurrent model admits exactly
//! 500 connections and turns the other 1,500 away with the `server busy` notice and a
//! clean close. Then every admitted client sends a frame and must get its echo. For
//! `iterative`, which admits one client at a time and leaves the rest in the backlog,
//! nobody is refused and the 2,000 are served one after another. Worker processes
//! (`prefork`, 16 of them here) are the same, 16 at a time: fewer than 500 can ever be
//! served at once, so the limit is never reached and the rest wait in the backlog,
//! untold, until a worker comes back to `accept`. No client may hang: the whole case is
//! bounded in time.

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use echolab_registry::Model;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Socket, Type};

use super::start;
use crate::support::pending::{Outcome, PendingClient};
use crate::support::{frames, pattern, proc};

const CLIENTS: usize = 2000;
const MAX_CONNS: usize = 500;
const PHASE_LIMIT: Duration = Duration::from_secs(30);

/// Starts a non-blocking connect.
fn start_connect(addr: std::net::SocketAddr) -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_nonblocking(true).expect("nonblocking");
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINPROGRESS as i32) => {}
        Err(e) => panic!("connect: {e}"),
    }
    socket
}

/// Waits until every socket has connected; panics on a failed or hung connect.
fn finish_connects(sockets: Vec<Socket>, model: &str) -> Vec<TcpStream> {
    let deadline = Instant::now() + PHASE_LIMIT;
    let mut connecting: Vec<Option<Socket>> = sockets.into_iter().map(Some).collect();
    let mut connected: Vec<Option<TcpStream>> = (0..connecting.len()).map(|_| None).collect();
    while connecting.iter().any(Option::is_some) {
        assert!(
            Instant::now() < deadline,
            "{model}: connects still pending after {PHASE_LIMIT:?}"
        );
        let waiting: Vec<usize> = (0..connecting.len())
            .filter(|&i| connecting[i].is_some())
            .collect();
        let ready: Vec<usize> = {
            let mut fds: Vec<PollFd<'_>> = waiting
                .iter()
                .filter_map(|&i| connecting[i].as_ref())
                .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLOUT))
                .collect();
            poll(&mut fds, PollTimeout::from(100u16)).expect("poll");
            fds.iter()
                .zip(&waiting)
                .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, &i)| i)
                .collect()
        };
        for i in ready {
            let socket = connecting[i].take().expect("still connecting");
            if let Some(e) = socket.take_error().expect("SO_ERROR") {
                panic!("{model}: connect {i} failed: {e}");
            }
            connected[i] = Some(socket.into());
        }
    }
    connected.into_iter().flatten().collect()
}

/// Waits for replies on every client still waiting until `done` holds; panics after
/// [`PHASE_LIMIT`]. Served and refused clients are closed as soon as they are, as
/// real clients leave.
fn pump(
    clients: &mut Vec<PendingClient>,
    finished: &mut Vec<Outcome>,
    model: &str,
    what: &str,
    done: impl Fn(&[Outcome]) -> bool,
) {
    let deadline = Instant::now() + PHASE_LIMIT;
    while !done(finished) {
        assert!(
            Instant::now() < deadline && !clients.is_empty(),
            "{model}: {what}: {} clients left waiting, outcomes so far: {} served, {} refused",
            clients.len(),
            finished.iter().filter(|o| **o == Outcome::Served).count(),
            finished.iter().filter(|o| **o == Outcome::Refused).count(),
        );
        let ready: Vec<usize> = {
            let mut fds: Vec<PollFd<'_>> = clients
                .iter()
                .map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN))
                .collect();
            poll(&mut fds, PollTimeout::from(100u16)).expect("poll");
            fds.iter()
                .enumerate()
                .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
                .map(|(i, _)| i)
                .collect()
        };
        for &i in ready.iter().rev() {
            clients[i].pump();
            match clients[i].outcome() {
                Outcome::Waiting => {}
                Outcome::Broken(how) => panic!("{model}: {what}: a client got {how}"),
                outcome => {
                    finished.push(outcome);
                    clients.swap_remove(i);
                }
            }
        }
    }
}

pub(crate) fn two_thousand_simultaneous_connects(model: &Model) {
    let wanted = CLIENTS as u64 + 1024;
    let limit = proc::raise_nofile(wanted);
    assert!(
        limit >= wanted,
        "the descriptor limit {limit} (hard) is below the {wanted} this case needs"
    );
    let max_conns = MAX_CONNS.to_string();
    let server = start(model, &["--max-conns", &max_conns, "--backlog", "4096"]);
    let started = Instant::now();
    let sockets: Vec<Socket> = (0..CLIENTS).map(|_| start_connect(server.addr)).collect();
    let streams = finish_connects(sockets, model.name);
    let mut clients: Vec<PendingClient> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| PendingClient::new(stream, pattern(64 + i % 50, i as u8)))
        .collect();
    let mut finished = Vec::new();
    // Models that accept only as many as they serve (one, or one per worker process)
    // never reach `--max-conns 500`: nobody is refused, the rest wait in the backlog.
    let refusals = if model.accepts_when_free {
        0
    } else {
        CLIENTS - MAX_CONNS
    };
    // Before anyone sends a byte: the server admits what it can and refuses the rest.
    pump(
        &mut clients,
        &mut finished,
        model.name,
        "refusals",
        |finished| finished.len() >= refusals,
    );
    assert!(
        finished.iter().all(|o| *o == Outcome::Refused) && finished.len() == refusals,
        "{}: before any request: {finished:?}",
        model.name
    );
    for client in &mut clients {
        let wire = frames(&[&client.expected]);
        (&client.stream).write_all(&wire).expect("write a frame");
    }
    pump(
        &mut clients,
        &mut finished,
        model.name,
        "echoes",
        |finished| finished.len() == CLIENTS,
    );
    let served = finished.iter().filter(|o| **o == Outcome::Served).count();
    eprintln!(
        "{}: {served} served, {} refused in {:?}",
        model.name,
        CLIENTS - served,
        started.elapsed()
    );
    assert_eq!(served, CLIENTS - refusals, "{}", model.name);
    // The slots come back as the server notices the clients' closes, a moment after.
    let mut last = Vec::new();
    let served_after = proc::wait_until(Duration::from_secs(5), || {
        let mut client = server.client();
        last = client.echo(b"after").unwrap_or_default();
        last == b"after"
    });
    assert!(
        served_after,
        "{}: not served after the storm: {last:?}",
        model.name
    );
}
