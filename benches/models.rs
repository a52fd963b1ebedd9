//! `cargo bench`: every registered model, side by side, on the same client work.
//!
//! Each model runs as a child process (`echolab serve MODEL --addr 127.0.0.1:0`),
//! started once per group outside the timed code (`iter_custom`) by the harness's
//! `ServerProcess`, and stopped on drop.
//! Every reply is checked. Groups:
//! - `round_trip`: one connection, 64 B frames, one at a time (latency).
//! - `throughput/CONNSxSIZE`: several blocking clients on their own threads, each
//!   echoing its share of the iterations (messages per second).
//! - `churn`: connect, one echo, close (connections per second).
//! - `datagram_round_trip`: the UDP models: one socket, 64 B datagrams, one at a time.
//!
//! Run one group with `cargo bench --bench models -- round_trip`; a quick pass with
//! `cargo bench --bench models -- --quick`. With `ECHOLAB_WORK=SPEC` (the `serve --work`
//! spec, e.g. `ECHOLAB_WORK=block:1ms cargo bench --bench models`) every server does
//! that work per message, and each group's name carries the spec, so criterion never
//! compares a run with work against one without.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use echolab_client::{Client, ClientConfig};
use echolab_harness::ServerProcess;
use echolab_registry::{Model, MODELS};

/// The harness's child-server guard (SIGTERM, then SIGKILL, on drop), plus a client.
struct Server(ServerProcess);

/// `ECHOLAB_WORK`, the work every server does per message (checked by the server,
/// which refuses a bad spec with the reason).
fn work() -> Option<String> {
    std::env::var("ECHOLAB_WORK").ok().filter(|w| !w.is_empty())
}

/// A group's name, with the work in it when there is some (`round_trip work=cpu-20us`:
/// criterion makes a directory of it, so no `:` or `,`).
fn group_name(name: &str) -> String {
    match work() {
        Some(work) => format!("{name} work={}", work.replace([':', ','], "-")),
        None => name.to_string(),
    }
}

impl Server {
    fn start(model: &str) -> Server {
        let binary = Path::new(env!("CARGO_BIN_EXE_echolab"));
        let args: Vec<String> = work()
            .map(|w| vec!["--work".to_string(), w])
            .unwrap_or_default();
        Server(ServerProcess::start(binary, model, &args).expect("start echolab serve"))
    }

    fn client(&self) -> Client {
        Client::connect(&ClientConfig {
            timeout: Duration::from_secs(10),
            ..ClientConfig::new(self.0.addr())
        })
        .expect("connect")
    }
}

fn echo_checked(client: &mut Client, payload: &[u8]) {
    let reply = client.echo(payload).expect("echo");
    assert!(reply == payload, "reply differs");
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group(group_name("round_trip"));
    group.throughput(Throughput::Elements(1));
    let payload = vec![42u8; 64];
    for model in MODELS.iter().filter(|m| m.is_stream()) {
        let server = Server::start(model.name);
        let mut client = server.client();
        group.bench_function(model.name, |b| {
            b.iter(|| echo_checked(&mut client, &payload))
        });
    }
    group.finish();
}

fn run_clients(server: &Server, conns: usize, size: usize, iters: u64) -> Duration {
    let clients: Vec<Client> = (0..conns).map(|_| server.client()).collect();
    let payload = vec![7u8; size];
    let per_client = iters.div_ceil(conns as u64);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for mut client in clients {
            let payload = &payload;
            // Each client leaves as soon as its share is done: with `pool`, clients
            // beyond the worker count wait in the queue until a worker frees up, and
            // that wait is part of what this group measures.
            scope.spawn(move || {
                for _ in 0..per_client {
                    echo_checked(&mut client, payload);
                }
            });
        }
    });
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    for (conns, size) in [(10usize, 64usize), (10, 4096)] {
        let mut group = c.benchmark_group(group_name(&format!("throughput/{conns}x{size}")));
        group.throughput(Throughput::Elements(1));
        group.sample_size(20);
        for model in MODELS
            .iter()
            .filter(|m: &&Model| m.is_stream() && m.concurrent())
        {
            let server = Server::start(model.name);
            group.bench_function(BenchmarkId::from_parameter(model.name), |b| {
                b.iter_custom(|iters| run_clients(&server, conns, size, iters))
            });
        }
        group.finish();
    }
}

fn churn(c: &mut Criterion) {
    let mut group = c.benchmark_group(group_name("churn"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for model in MODELS.iter().filter(|m| m.is_stream()) {
        let server = Server::start(model.name);
        group.bench_function(model.name, |b| {
            b.iter(|| {
                let mut client = server.client();
                echo_checked(&mut client, b"churn");
            })
        });
    }
    group.finish();
}

fn datagram_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group(group_name("datagram_round_trip"));
    group.throughput(Throughput::Elements(1));
    let payload = vec![42u8; 64];
    for model in MODELS.iter().filter(|m| !m.is_stream()) {
        let server = Server::start(model.name);
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
        socket
            .connect(server.0.addr())
            .expect("connect the client socket");
        // One datagram in flight over loopback is not lost; if one were, this fails
        // after the timeout rather than hanging.
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a receive timeout");
        let mut reply = vec![0u8; 128];
        group.bench_function(model.name, |b| {
            b.iter(|| {
                socket.send(&payload).expect("send");
                let n = socket.recv(&mut reply).expect("reply");
                assert!(reply[..n] == payload, "reply differs");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip, throughput, churn, datagram_round_trip);
criterion_main!(benches);
