//! Micro-benchmarks of the sans-IO protocol core: the per-message work every model
//! shares, so it can be subtracted from the model comparisons.

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use echolab_proto::{encode_frame, Session, SessionConfig, NONCE_LEN};

fn session_echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/session_echo");
    for size in [64usize, 4096, 65_536] {
        // 64 frames per input, as a pipelining client would send them.
        let mut wire = Vec::new();
        for _ in 0..64 {
            encode_frame(&vec![7u8; size], &mut wire).expect("frame");
        }
        group.throughput(Throughput::Elements(64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, wire| {
            let config = SessionConfig::default();
            let now = Instant::now();
            let mut session = Session::new(&config, now, [0; NONCE_LEN]);
            b.iter(|| {
                session.handle_input(black_box(wire), now);
                let n = session.output().len();
                assert_eq!(n, wire.len());
                session.consume_output(n, now);
            });
        });
    }
    group.finish();
}

// A second of warm-up and two measured: a frame's handling is microseconds, and the
// whole of `cargo bench` stays within minutes (criterion's own 3 s + 5 s each did not).
criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2))
        .nresamples(10_000);
    targets = session_echo
}
criterion_main!(benches);
