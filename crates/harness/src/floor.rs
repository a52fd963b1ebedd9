//! The machine's own floor: what a loopback round trip costs here before any model
//! adds anything. A trivial blocking echo (one `read`, one `write`) answers one
//! pinging client, first with both on one CPU, then on two. The two placements differ
//! by machine, and by several times between machines, so a run's absolute latencies
//! are read as multiples of their own machine's floor, not compared across machines;
//! each run records its floor (`results.json`'s `floor`, and its README).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use serde::Serialize;

use crate::error::HarnessError;

/// How long each placement pings.
pub(crate) const PING_FOR: Duration = Duration::from_millis(1500);
/// Bytes per ping: the latency cell's size.
const PING_SIZE: usize = 64;

/// One placement's round trips.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RoundTrip {
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Round trips measured.
    pub samples: usize,
}

/// The machine's loopback floor.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Floor {
    /// Client and echo on the same CPU (each hands the CPU to the other).
    pub same_cpu: RoundTrip,
    /// Client and echo on different CPUs (a cross-CPU wake-up each way); `None` on a
    /// one-CPU machine.
    pub cross_cpu: Option<RoundTrip>,
}

impl Floor {
    /// Measures the floor (about three seconds).
    pub fn measure() -> Result<Floor, HarnessError> {
        measure()
    }
}

fn measure() -> Result<Floor, HarnessError> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let same_cpu = round_trips(0, 0)?;
    let cross_cpu = if cpus > 1 {
        Some(round_trips(0, 1)?)
    } else {
        None
    };
    Ok(Floor {
        same_cpu,
        cross_cpu,
    })
}

/// Pings a trivial echo with the echo thread on CPU `echo_cpu` and the pinging thread
/// on `client_cpu`.
fn round_trips(echo_cpu: usize, client_cpu: usize) -> Result<RoundTrip, HarnessError> {
    let fail = |e: std::io::Error| HarnessError::Floor(e.to_string());
    let listener = TcpListener::bind("127.0.0.1:0").map_err(fail)?;
    let addr = listener.local_addr().map_err(fail)?;
    std::thread::scope(|scope| {
        let echo = scope.spawn(move || -> std::io::Result<()> {
            pin_this_thread(echo_cpu)?;
            let (mut stream, _) = listener.accept()?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut buf = [0u8; PING_SIZE];
            loop {
                match stream.read(&mut buf)? {
                    0 => return Ok(()),
                    n => stream.write_all(&buf[..n])?,
                }
            }
        });
        // On a thread of its own: pinning the calling thread would pin every server and
        // load thread the run starts after it.
        let client = scope
            .spawn(move || ping(addr, client_cpu))
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("ping panicked")));
        let echoed = echo
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("echo panicked")));
        let mut times = client.map_err(fail)?;
        echoed.map_err(fail)?;
        if times.is_empty() {
            return Err(HarnessError::Floor("no round trip completed".into()));
        }
        times.sort_unstable();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        Ok(RoundTrip {
            p50_us: at(0.5),
            p99_us: at(0.99),
            samples: times.len(),
        })
    })
}

fn ping(addr: std::net::SocketAddr, cpu: usize) -> std::io::Result<Vec<Duration>> {
    pin_this_thread(cpu)?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let message = [7u8; PING_SIZE];
    let mut reply = [0u8; PING_SIZE];
    let mut times = Vec::new();
    let until = Instant::now() + PING_FOR;
    // Bounded by time, and by count in case the clock misbehaves.
    while Instant::now() < until && times.len() < 1_000_000 {
        let sent = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut reply)?;
        times.push(sent.elapsed());
    }
    Ok(times)
}

/// How many CPUs the calling thread may run on (threads it spawns inherit that).
pub(crate) fn allowed_cpus() -> usize {
    nix::sched::sched_getaffinity(Pid::from_raw(0)).map_or(1, |set| {
        (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .count()
            .max(1)
    })
}

/// Pins the calling thread to `cpu`.
pub fn pin_this_thread(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(std::io::Error::from)?;
    // Pid 0: the calling thread.
    sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_measured_in_both_placements() {
        let before = allowed_cpus();
        let floor = measure().expect("floor");
        // The caller keeps every CPU it had: the servers and load it starts next inherit
        // its placement.
        assert_eq!(
            allowed_cpus(),
            before,
            "measuring the floor pinned the caller"
        );
        assert!(floor.same_cpu.samples > 100, "{floor:?}");
        assert!(floor.same_cpu.p50_us > 0.0 && floor.same_cpu.p50_us <= floor.same_cpu.p99_us);
        if let Some(cross) = floor.cross_cpu {
            assert!(cross.samples > 100, "{floor:?}");
        }
    }
}
