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
//! Each benchmark warms up for [`WARM_UP`] and measures for [`MEASURE`] (criterion's
//! own defaults, 3 s and 5 s, made the whole suite a quarter of an hour); the suite
//! says at its start how many benchmarks it will run and an estimate of how long.
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

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use echolab_client::{Client, ClientConfig};
use echolab_harness::{say_duration, ServerProcess};
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

/// The `throughput` groups' cells: connections x payload bytes.
const THROUGHPUT_CELLS: [(usize, usize); 2] = [(10, 64), (10, 4096)];

/// The models `throughput` runs: those that serve several clients at once.
fn concurrent_stream_models() -> impl Iterator<Item = &'static Model> {
    MODELS.iter().filter(|m| m.is_stream() && m.concurrent())
}

fn throughput(c: &mut Criterion) {
    for (conns, size) in THROUGHPUT_CELLS {
        let mut group = c.benchmark_group(group_name(&format!("throughput/{conns}x{size}")));
        group.throughput(Throughput::Elements(1));
        group.sample_size(20);
        for model in concurrent_stream_models() {
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

/// Criterion's warm-up per benchmark: a server started outside the timed code needs
/// no more to reach its steady state.
const WARM_UP: Duration = Duration::from_secs(1);
/// Criterion's measurement per benchmark: a round trip is tens of microseconds, so
/// even two seconds sample each model tens of thousands of times.
const MEASURE: Duration = Duration::from_secs(2);

/// Bootstrap resamples per benchmark: criterion's 100,000 took most of each
/// benchmark's time, in the analysis and above all in plotting the resampled
/// distributions (8 of a benchmark's 14 s on the shared 2-core VM); ten thousand give
/// the same confidence intervals to the precision a comparison of models reads.
const RESAMPLES: usize = 10_000;

/// Criterion's analysis and plots per benchmark with [`RESAMPLES`], on the 2-core VM.
const ANALYSIS: Duration = Duration::from_secs(1);

/// Every benchmark this file defines, as criterion names them (`group/function`).
fn benchmark_ids() -> Vec<String> {
    let stream = || MODELS.iter().filter(|m| m.is_stream());
    let mut ids: Vec<String> = Vec::new();
    ids.extend(stream().map(|m| format!("{}/{}", group_name("round_trip"), m.name)));
    for (conns, size) in THROUGHPUT_CELLS {
        let group = group_name(&format!("throughput/{conns}x{size}"));
        ids.extend(concurrent_stream_models().map(|m| format!("{group}/{}", m.name)));
    }
    ids.extend(stream().map(|m| format!("{}/{}", group_name("churn"), m.name)));
    ids.extend(
        MODELS
            .iter()
            .filter(|m| !m.is_stream())
            .map(|m| format!("{}/{}", group_name("datagram_round_trip"), m.name)),
    );
    ids
}

/// The criterion flags that take a value (so the value is not the filter).
const FLAGS_WITH_VALUES: &[&str] = &[
    "--save-baseline",
    "-s",
    "--baseline",
    "-b",
    "--baseline-lenient",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--output-format",
    "--color",
    "-c",
    "--plotting-backend",
    "--format",
];

/// What a run of this suite with `args` will take: the benchmarks the filter keeps (a
/// substring of their ids: criterion's filter is a regex, so an estimate), each its
/// warm-up, measurement and analysis (`--quick`: no warm-up, and each stops once its
/// timings are steady, at the latest after about twice the measurement time).
fn announcement(args: &[String]) -> String {
    let seconds_of = |flag: &str, default: Duration| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1)?.parse::<f64>().ok())
            .map_or(default, Duration::from_secs_f64)
    };
    let (warm_up, measure) = (
        seconds_of("--warm-up-time", WARM_UP),
        seconds_of("--measurement-time", MEASURE),
    );
    let mut filter = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if FLAGS_WITH_VALUES.contains(&arg.as_str()) {
            rest.next();
        } else if !arg.starts_with('-') && filter.is_none() {
            filter = Some(arg.as_str());
        }
    }
    let n = benchmark_ids()
        .iter()
        .filter(|id| filter.is_none_or(|f| id.contains(f)))
        .count() as u32;
    if args.iter().any(|a| a == "--quick") {
        format!(
            "cargo bench --bench models --quick: {n} benchmarks, each measured until its \
             timings are steady (at most about {} s) then analysed: estimated at most {}",
            (measure * 2).as_secs(),
            say_duration((measure * 2 + ANALYSIS) * n)
        )
    } else {
        format!(
            "cargo bench --bench models: {n} benchmarks x ({} s warm-up + {} s measured + \
             about {} s of analysis): estimated {}",
            warm_up.as_secs_f64(),
            measure.as_secs_f64(),
            ANALYSIS.as_secs_f64(),
            say_duration((warm_up + measure + ANALYSIS) * n)
        )
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(WARM_UP)
        .measurement_time(MEASURE)
        .nresamples(RESAMPLES);
    targets = round_trip, throughput, churn, datagram_round_trip
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Run as a benchmark (not as a test by `cargo test --benches`, nor to list them).
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        eprintln!("{}", announcement(&args));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
