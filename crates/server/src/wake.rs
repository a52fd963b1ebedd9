//! A descriptor another thread can make readable: how the `--offload` pool tells a loop
//! that waits only on descriptors that jobs came back (the level-triggered loop watches
//! it whatever its call; `uring` polls it with a request in its ring). A socket pair,
//! like [`Shutdown`](crate::Shutdown)'s, rather than an eventfd: the same one syscall
//! per wake and per drain, and no `unsafe` around a raw descriptor. The pool coalesces
//! wakes ([`OffloadPort`](crate::OffloadPort)), so at most a byte or two wait in it.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// See the module docs.
#[derive(Debug)]
pub struct WakeFd {
    read_end: UnixStream,
    write_end: UnixStream,
}

impl WakeFd {
    /// A wake descriptor, not yet readable.
    pub fn new() -> io::Result<WakeFd> {
        let (read_end, write_end) = UnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        write_end.set_nonblocking(true)?;
        Ok(WakeFd {
            read_end,
            write_end,
        })
    }

    /// Makes the descriptor readable (from any thread).
    pub fn wake(&self) {
        // A full buffer means bytes already wait: the descriptor is readable either way.
        let _ = (&self.write_end).write(&[1]);
    }

    /// Makes it unreadable again: a level-triggered wait would report it forever. Call
    /// it *before* taking what the wake was for, so a wake that comes in between is
    /// kept for the next wait, not read away.
    pub fn clear(&self) {
        let mut sink = [0u8; 64];
        loop {
            match (&self.read_end).read(&mut sink) {
                // Less than the buffer: nothing is left (a stream socket).
                Ok(n) if n == sink.len() => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return,
            }
        }
    }

    /// The descriptor to wait on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read_end.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    fn readable(wake: &WakeFd) -> bool {
        let mut fds = [PollFd::new(wake.fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).expect("poll") == 1
    }

    #[test]
    fn a_wake_makes_it_readable_until_cleared() {
        let wake = WakeFd::new().expect("socket pair");
        assert!(!readable(&wake), "not readable before a wake");
        for _ in 0..200 {
            wake.wake();
        }
        assert!(readable(&wake));
        wake.clear();
        assert!(!readable(&wake), "every byte read away");
        wake.clear();
        assert!(!readable(&wake), "clearing twice does not block");
    }

    #[test]
    fn a_wake_from_another_thread_is_seen() {
        let wake = std::sync::Arc::new(WakeFd::new().expect("socket pair"));
        let remote = std::sync::Arc::clone(&wake);
        std::thread::spawn(move || remote.wake())
            .join()
            .expect("waker thread");
        let mut fds = [PollFd::new(wake.fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(Duration::from_secs(5)).expect("timeout");
        assert_eq!(poll(&mut fds, timeout).expect("poll"), 1);
    }
}
