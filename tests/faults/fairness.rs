//! Case 12 of issue 6, fairness under a hog: one client sends maximum-size (1 MiB)
//! frames as fast as the server takes them, and reads the echoes, while 20 clients ping
//! (64 bytes, one every 10 ms). The pingers' p99 round trip must stay under 50 ms.
//!
//! For `poll` and `mio` this is the edge-triggered (and level-triggered) fairness
//! question: one thread serves everyone, so the hog must not be drained to `WouldBlock`
//! while the others wait (`mio` caps reads per connection per turn and keeps a ready
//! list). `threads`, `fork` and `pool` give every client a thread or process of its
//! own (`pool` here with 32 workers), so the kernel scheduler keeps them fair.
//! `iterative` cannot serve a pinger while the hog is connected — its documented
//! head-of-line blocking, asserted by `writer_that_never_reads` and the conformance
//! suite — so this case does not run for it.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echolab_client::Client;
use echolab_registry::Model;

use super::{assert_alive, start};
use crate::support::{frames, pattern};

const PINGERS: usize = 20;
const PING_FOR: Duration = Duration::from_millis(1500);
const PING_EVERY: Duration = Duration::from_millis(10);
const P99_LIMIT: Duration = Duration::from_millis(50);

pub(crate) fn pingers_p99_under_a_max_frame_hog(model: &Model) {
    let mut server = start(model, &["--max-frame", "1048576", "--workers", "32"]);
    let hog = server.connect();
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let writer = {
        let (mut stream, stop) = (hog.try_clone().expect("clone"), stop.clone());
        let frame = frames(&[&pattern(1 << 20, 12)]);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if stream.write_all(&frame).is_err() {
                    break;
                }
            }
        })
    };
    let reader = {
        let (mut stream, echoed) = (hog.try_clone().expect("clone"), echoed.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                echoed.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    let flowing = crate::support::proc::wait_until(Duration::from_secs(10), || {
        echoed.load(Ordering::Relaxed) >= 2 << 20
    });
    assert!(flowing, "{}: the hog's echo did not start", model.name);
    let mut clients: Vec<Client> = (0..PINGERS).map(|_| server.client()).collect();
    let echoed_before = echoed.load(Ordering::Relaxed);
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let pingers: Vec<_> = clients
            .iter_mut()
            .enumerate()
            .map(|(i, client)| {
                scope.spawn(move || {
                    let payload = pattern(64, i as u8);
                    let until = Instant::now() + PING_FOR;
                    let mut took = Vec::new();
                    while Instant::now() < until {
                        let sent = Instant::now();
                        let reply = client.echo(&payload).expect("ping answered");
                        took.push(sent.elapsed());
                        assert!(reply == payload, "ping {i}: echo differs");
                        std::thread::sleep(PING_EVERY);
                    }
                    took
                })
            })
            .collect();
        pingers
            .into_iter()
            .flat_map(|p| p.join().expect("pinger"))
            .collect()
    });
    let hog_moved = echoed.load(Ordering::Relaxed) - echoed_before;
    stop.store(true, Ordering::Relaxed);
    // Wakes the hog's writer and reader at once (their clones share the socket).
    let _ = hog.shutdown(std::net::Shutdown::Both);
    writer.join().expect("writer");
    reader.join().expect("reader");
    latencies.sort_unstable();
    let p99 = latencies[latencies.len() * 99 / 100];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "{}: {} pings, p50 {:?}, p99 {p99:?}, max {max:?}; the hog moved {} MiB meanwhile",
        model.name,
        latencies.len(),
        latencies[latencies.len() / 2],
        hog_moved >> 20
    );
    assert!(
        latencies.len() >= PINGERS * 10,
        "{}: only {} pings in {PING_FOR:?}",
        model.name,
        latencies.len()
    );
    assert!(
        hog_moved >= 4 << 20,
        "{}: the hog moved only {hog_moved} bytes while the others pinged",
        model.name
    );
    assert!(
        p99 < P99_LIMIT,
        "{}: pingers' p99 {p99:?} (max {max:?}) beside a max-frame hog",
        model.name
    );
    assert_alive(&mut server);
}
