//! What the kernel does with a `SO_REUSEPORT` group, the ground `reactors` stands on:
//! it spreads connections over the listeners by a hash of the 4-tuple, and when one
//! listener closes, the connections waiting in *its* accept queue are reset — not
//! handed to a sibling — while new connections go to the listeners that remain.
//!
//! (`net.ipv4.tcp_migrate_req=1` would migrate them instead: where it is on, that case
//! is ignored, with the reason.) The groups are bound with the server's own
//! [`Listen::bind_reuse_port`]; no server process is started.

mod support;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};

use echolab_server::Listen;
use support::proc::{listen_queue, wait_until};
use support::suite::{self, test, Test};
use support::IO_TIMEOUT;

const TESTS: &[Test] = &[
    test(
        "connections_spread_over_the_group_by_their_4_tuple",
        connections_spread_over_the_group_by_their_4_tuple,
    ),
    test(
        "closing_a_listener_resets_its_queue_and_rehashes_new_connections",
        closing_a_listener_resets_its_queue_and_rehashes_new_connections,
    )
    .needs(requests_do_not_migrate),
];

fn main() {
    suite::run_once(TESTS)
}

const CLIENTS: usize = 40;

fn group(count: usize) -> (Vec<TcpListener>, SocketAddr) {
    let listen = Listen::new(SocketAddr::from(([127, 0, 0, 1], 0)), 128, Box::new(|_| {}));
    let listeners = listen
        .bind_reuse_port(count)
        .expect("bind a SO_REUSEPORT group");
    for listener in &listeners {
        listener.set_nonblocking(true).expect("nonblocking");
    }
    let addr = listeners[0].local_addr().expect("bound address");
    (listeners, addr)
}

/// Accepts everything waiting on `listener` now (kept open, as a loop keeps them).
fn accept_all(listener: &TcpListener) -> Vec<Accepted> {
    let mut accepted = Vec::new();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => accepted.push(Accepted {
                _stream: stream,
                peer,
            }),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return accepted,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

struct Accepted {
    _stream: TcpStream,
    peer: SocketAddr,
}

fn holds_port(accepted: &[Accepted], port: u16) -> bool {
    accepted.iter().any(|a| a.peer.port() == port)
}

fn requests_do_not_migrate() -> Result<(), String> {
    let on = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .is_ok_and(|v| v.trim() != "0");
    if on {
        Err("net.ipv4.tcp_migrate_req is on: queued requests migrate".to_string())
    } else {
        Ok(())
    }
}

/// `CLIENTS` connections to `addr`, returned once the kernel has queued every one of
/// them on the group's listeners (the handshake's last ACK has landed), bounded in
/// time.
fn connect_all(addr: SocketAddr) -> Vec<TcpStream> {
    let queued_before = listen_queue(addr.port());
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect"))
        .collect();
    let all_queued = wait_until(IO_TIMEOUT, || {
        listen_queue(addr.port()) >= queued_before + CLIENTS as u64
    });
    assert!(
        all_queued,
        "{} of {CLIENTS} connections queued",
        listen_queue(addr.port()) - queued_before
    );
    clients
}

fn connections_spread_over_the_group_by_their_4_tuple() {
    let (listeners, addr) = group(2);
    let clients = connect_all(addr);
    let a = accept_all(&listeners[0]);
    let b = accept_all(&listeners[1]);
    eprintln!(
        "{CLIENTS} connections: {} on listener 0, {} on listener 1",
        a.len(),
        b.len()
    );
    assert_eq!(
        a.len() + b.len(),
        CLIENTS,
        "every connection lands on one listener"
    );
    // A coin toss per connection: all 40 on one side has odds of 2 in 2^40.
    assert!(!a.is_empty() && !b.is_empty(), "{} / {}", a.len(), b.len());
    // Each client port went to exactly one listener.
    for client in &clients {
        let port = client.local_addr().expect("local").port();
        let on_a = holds_port(&a, port);
        let on_b = holds_port(&b, port);
        assert!(
            on_a ^ on_b,
            "client port {port}: on 0: {on_a}, on 1: {on_b}"
        );
    }
}

fn closing_a_listener_resets_its_queue_and_rehashes_new_connections() {
    let (mut listeners, addr) = group(2);
    let clients = connect_all(addr);
    // Listener 1 closes with its queue unaccepted, as a loop's listener does when the
    // loop stops. Every connection was queued before, so listener 0 holds exactly its
    // own share.
    drop(listeners.pop());
    let survivors = accept_all(&listeners[0]);
    let mut reset = 0;
    let mut served = 0;
    for client in &clients {
        let port = client.local_addr().expect("local").port();
        client.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        let mut read = || (&*client).read(&mut byte).map_err(|e| e.kind());
        if holds_port(&survivors, port) {
            // Accepted by listener 0 and still open: nothing to read yet.
            assert_eq!(read(), Err(ErrorKind::WouldBlock), "port {port}");
            served += 1;
        } else {
            // Queued on listener 1: its reset goes out as the listener closes; wait
            // for loopback to deliver it (bounded).
            // A reset is reported once: the read after it sees end-of-file.
            let mut last = None;
            let was_reset = wait_until(IO_TIMEOUT, || {
                let outcome = read();
                let reset = outcome == Err(ErrorKind::ConnectionReset);
                last = Some(outcome);
                reset
            });
            assert!(
                was_reset,
                "port {port}: neither accepted by listener 0 nor reset: {last:?}"
            );
            reset += 1;
        }
    }
    eprintln!("closed listener 1: {reset} queued connections reset, {served} on listener 0");
    assert_eq!(reset + served, CLIENTS);
    assert!(reset > 0, "nothing was queued on listener 1");
    assert_eq!(served, survivors.len());
    // New connections all go to the listener that is left.
    let later = connect_all(addr);
    let accepted = accept_all(&listeners[0]);
    assert_eq!(
        accepted.len(),
        later.len(),
        "new connections rehashed to listener 0"
    );
}
