//! The kernel's floor cost per response: the least CPU any server can spend answering one
//! message of a given size, because the kernel's own `recv` and `send` of it cost that
//! much. Measured by the harness itself, in one thread, before the run: a loopback pair
//! (TCP, or UDP for the datagram cells) passes a message of the size one way and back,
//! a few thousand times, and the thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) says what
//! that cost. Each round is two sends and two receives of the size; a server's share of
//! one round, one `recv` and one `send`, is half. No thread ever blocks, so no wake-up,
//! no poller and no scheduler is in the figure: it is the C-like minimum, below what
//! every model pays.
//!
//! A cell whose server CPU per response is far below this (`marks::suspect`) measured
//! something other than the server's work — CPU lost from the window, not saved.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};
use serde::{Deserialize, Serialize};

use crate::error::HarnessError;

/// Rounds per size at most: "a few thousand" is enough for a mean to hold still.
const ROUNDS: u32 = 4_000;
/// And at most this long per size, so 64 KiB messages on a slow machine stay quick.
pub(crate) const TIME_PER_SIZE: Duration = Duration::from_millis(300);
/// Tries of a non-blocking call that finds nothing to do before a round gives up: the
/// loopback delivers in the sender's own call, so a healthy round never needs many.
const MAX_SPINS: u32 = 1_000_000;

/// The floor for one transport and message size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FloorCost {
    /// Datagrams (UDP) rather than a stream (TCP).
    pub datagram: bool,
    /// Payload bytes.
    pub size: usize,
    /// CPU µs for one `recv` and one `send` of `size` bytes.
    pub cpu_us_per_response: f64,
    /// Rounds measured.
    pub rounds: u32,
}

/// The floor of each (datagram?, size) in `kinds`.
pub fn measure(kinds: &[(bool, usize)]) -> Result<Vec<FloorCost>, HarnessError> {
    kinds
        .iter()
        .map(|&(datagram, size)| {
            let measured = if datagram {
                udp_pair().and_then(|(a, b)| rounds(&mut Udp(a), &mut Udp(b), size))
            } else {
                tcp_pair().and_then(|(mut a, mut b)| rounds(&mut a, &mut b, size))
            };
            let (cpu, rounds) =
                measured.map_err(|e| HarnessError::Floor(format!("{size} B: {e}")))?;
            Ok(FloorCost {
                datagram,
                size,
                cpu_us_per_response: cpu.as_secs_f64() * 1e6 / f64::from(rounds) / 2.0,
                rounds,
            })
        })
        .collect()
}

/// The floor for a cell's messages, if it was measured.
pub(crate) fn floor_for(floors: &[FloorCost], datagram: bool, size: usize) -> Option<f64> {
    floors
        .iter()
        .find(|f| f.datagram == datagram && f.size == size)
        .map(|f| f.cpu_us_per_response)
}

fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let a = TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    for s in [&a, &b] {
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
    }
    Ok((a, b))
}

fn udp_pair() -> io::Result<(UdpSocket, UdpSocket)> {
    let a = UdpSocket::bind("127.0.0.1:0")?;
    let b = UdpSocket::bind("127.0.0.1:0")?;
    a.connect(b.local_addr()?)?;
    b.connect(a.local_addr()?)?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b))
}

/// A connected UDP socket read and written like a stream, one datagram per call.
struct Udp(UdpSocket);

impl Read for Udp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.recv(buf)
    }
}

impl Write for Udp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Passes `size` bytes from `a` to `b` and back until the rounds or the time run out;
/// returns the thread's CPU time for them and how many there were.
fn rounds(
    a: &mut (impl Read + Write),
    b: &mut (impl Read + Write),
    size: usize,
) -> io::Result<(Duration, u32)> {
    let message = vec![0x5a_u8; size];
    let mut buf = vec![0_u8; size.max(1)];
    // One round first, outside the clock: buffers allocated, the path warm.
    pass(a, b, &message, &mut buf)?;
    pass(b, a, &message, &mut buf)?;
    let until = Instant::now() + TIME_PER_SIZE;
    let start = thread_cpu()?;
    let mut done = 0;
    while done < ROUNDS && (done < 100 || Instant::now() < until) {
        pass(a, b, &message, &mut buf)?;
        pass(b, a, &message, &mut buf)?;
        done += 1;
    }
    Ok((thread_cpu()?.saturating_sub(start), done))
}

/// Writes `message` into `from` and reads it all out of `to`, interleaved, so a message
/// larger than the socket buffers still passes in one thread.
fn pass(
    from: &mut impl Write,
    to: &mut impl Read,
    message: &[u8],
    buf: &mut [u8],
) -> io::Result<()> {
    let (mut written, mut read, mut spins) = (0, 0, 0);
    while read < message.len() {
        if written < message.len() {
            match from.write(&message[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        match to.read(&mut buf[..message.len() - read]) {
            Ok(0) => return Err(io::Error::other("the loopback pair closed")),
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                spins += 1;
                if spins > MAX_SPINS {
                    return Err(io::Error::other("the loopback pair stopped passing bytes"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn thread_cpu() -> io::Result<Duration> {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_err(io::Error::from)?;
    Ok(Duration::from(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_measured_for_each_size_and_grows_with_it() {
        let floors = measure(&[(false, 64), (false, 65536), (true, 64)]).expect("floor");
        assert_eq!(floors.len(), 3);
        for f in &floors {
            assert!(f.rounds >= 100, "{f:?}");
            // A recv and a send cost something, and less than a millisecond.
            assert!(
                f.cpu_us_per_response > 0.05 && f.cpu_us_per_response < 1000.0,
                "{f:?}"
            );
        }
        // Copying 64 KiB each way costs more than 64 B does.
        assert!(
            floors[1].cpu_us_per_response > floors[0].cpu_us_per_response,
            "{floors:?}"
        );
        assert_eq!(
            floor_for(&floors, true, 64),
            Some(floors[2].cpu_us_per_response)
        );
        assert_eq!(floor_for(&floors, true, 4096), None);
    }
}
