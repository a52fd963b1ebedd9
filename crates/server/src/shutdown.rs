use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// A "stop now" signal that every kind of model can wait on.
///
/// SIGINT and SIGTERM set a flag (checked by loops that are already awake) *and* write a
/// byte into a socket pair whose read end is never drained, so it stays readable from
/// then on: a blocking accept loop `poll(2)`s it beside the listener, a readiness loop
/// registers it like any other descriptor. No thread sleeps on a timer to notice.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    flag: Arc<AtomicBool>,
    read_end: UnixStream,
    write_end: UnixStream,
}

impl Shutdown {
    /// A shutdown handle that only [`Shutdown::request`] triggers.
    pub fn new() -> io::Result<Shutdown> {
        let (read_end, write_end) = UnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        write_end.set_nonblocking(true)?;
        Ok(Shutdown {
            inner: Arc::new(Inner {
                flag: Arc::new(AtomicBool::new(false)),
                read_end,
                write_end,
            }),
        })
    }

    /// Makes SIGINT and SIGTERM request shutdown (instead of killing the process).
    pub fn install_signal_handlers(&self) -> io::Result<()> {
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&self.inner.flag))?;
            signal_hook::low_level::pipe::register(signal, self.inner.write_end.try_clone()?)?;
        }
        Ok(())
    }

    /// Requests shutdown from code (tests, or a model that must stop).
    pub fn request(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        // A full buffer means a byte is already there; the end stays readable either way.
        let _ = io::Write::write(&mut &self.inner.write_end, &[1]);
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.inner.flag.load(Ordering::Relaxed)
    }

    /// A descriptor that becomes readable, and stays readable, once shutdown is requested.
    pub fn waker(&self) -> BorrowedFd<'_> {
        self.inner.read_end.as_fd()
    }
}

/// What [`wait_readable`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// The descriptor is readable (for a listener: a connection is waiting).
    Ready,
    /// Shutdown was requested.
    Shutdown,
    /// The timeout passed first.
    TimedOut,
}

/// Blocks until `fd` is readable, shutdown is requested, or `timeout` passes (`None`:
/// no timeout). One `poll(2)` on two descriptors.
pub(crate) fn wait_readable(
    fd: BorrowedFd<'_>,
    shutdown: &Shutdown,
    timeout: Option<Duration>,
) -> io::Result<Readiness> {
    if shutdown.is_requested() {
        return Ok(Readiness::Shutdown);
    }
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(t) => PollTimeout::try_from(t.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX),
    };
    loop {
        let mut fds = [
            PollFd::new(fd, PollFlags::POLLIN),
            PollFd::new(shutdown.waker(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(Readiness::TimedOut),
            Ok(_) => {
                let waker_ready = fds[1].revents().is_some_and(|r| !r.is_empty());
                if waker_ready || shutdown.is_requested() {
                    return Ok(Readiness::Shutdown);
                }
                return Ok(Readiness::Ready);
            }
            Err(nix::errno::Errno::EINTR) => {
                if shutdown.is_requested() {
                    return Ok(Readiness::Shutdown);
                }
            }
            Err(errno) => return Err(io::Error::from_raw_os_error(errno as i32)),
        }
    }
}

impl AsRawFd for Shutdown {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.inner.read_end.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn request_wakes_a_waiter_and_stays_visible() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let shutdown = Shutdown::new().unwrap();
        let waiter = {
            let shutdown = shutdown.clone();
            let fd = listener.try_clone().unwrap();
            std::thread::spawn(move || wait_readable(fd.as_fd(), &shutdown, None).unwrap())
        };
        std::thread::sleep(Duration::from_millis(50));
        shutdown.request();
        assert_eq!(waiter.join().unwrap(), Readiness::Shutdown);
        assert!(shutdown.is_requested());
    }

    #[test]
    fn times_out_and_sees_a_pending_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let shutdown = Shutdown::new().unwrap();
        let ready = wait_readable(listener.as_fd(), &shutdown, Some(Duration::from_millis(20)));
        assert_eq!(ready.unwrap(), Readiness::TimedOut);
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let ready = wait_readable(listener.as_fd(), &shutdown, Some(Duration::from_secs(5)));
        assert_eq!(ready.unwrap(), Readiness::Ready);
    }
}
