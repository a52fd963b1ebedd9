//! # poll — one thread, `poll(2)` over an array kept in step with the connections
//!
//! The call that replaced `select(2)` (Python's `select.poll`): instead of bitmaps
//! capped at 1024 descriptors, an array of `pollfd` records, one per descriptor, each
//! naming the descriptor and the events wanted, with the kernel filling in `revents`.
//! No descriptor limit and no rebuilding: the array lives across calls, an entry's
//! `events` changes when the session's interest does (`POLLOUT` only while output is
//! pending), and a closed connection's entry is replaced by the last one instead of
//! shifting the tail. But like `select`, the kernel keeps nothing between calls: every
//! call copies the whole array in, polls every descriptor in it, and copies it out, and
//! the program scans it for non-zero `revents`. Everything else is the shared
//! level-triggered loop ([`echolab_server::serve_level`]).
//!
//! **Syscalls.** Per connection: `accept4`, `setsockopt(TCP_NODELAY)`, and at the end
//! `close`: no registration call. Per message: one `poll` (shared by everything ready
//! at once, but O(connections) in the kernel and in the scan), one `read`, one `write`.
//!
//! **Where it waits.** Only in `poll`, with a timeout equal to the earliest session
//! deadline, rounded up to whole milliseconds (poll's unit).
//!
//! **What a connection costs.** A descriptor, a session, an 8-byte `pollfd` and — on
//! every turn, busy or not — its share of the copy and the scan: the cost that grows
//! with an idle crowd (see `docs/models/poll.md`).
//!
//! **How it fails under load.** No wall like select's, but a slope: with thousands of
//! idle connections every wakeup for one busy client walks them all. Past
//! `--max-conns`, framed clients get the `server busy` notice; out of descriptors the
//! listener leaves the array for the accept back-off.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use echolab_server::{
    serve_level, Interest, Listen, Ready, ServerContext, Source, Waiter, WatchList,
};

/// Serves every client from one thread with a `poll(2)` loop until shutdown, then lets
/// every session finish and returns.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    serve_level(listen, ctx, Poll::default())
}

/// The watch list, and the `pollfd` array the kernel reads, kept index for index: the
/// array must be contiguous `pollfd`s, so it lives beside the list rather than in it.
#[derive(Debug, Default)]
struct Poll {
    watched: WatchList,
    pollfds: Vec<libc::pollfd>,
}

fn events(interest: Interest) -> libc::c_short {
    let mut events = 0;
    if interest.readable {
        events |= libc::POLLIN;
    }
    if interest.writable {
        events |= libc::POLLOUT;
    }
    events
}

impl Waiter for Poll {
    fn add(&mut self, source: Source, fd: BorrowedFd<'_>, interest: Interest) -> io::Result<()> {
        self.remove(source, fd);
        self.watched.add(source, fd, interest);
        self.pollfds.push(libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
            events: events(interest),
            revents: 0,
        });
        Ok(())
    }

    fn modify(
        &mut self,
        source: Source,
        _fd: BorrowedFd<'_>,
        interest: Interest,
    ) -> io::Result<()> {
        let Some(at) = self.position(source) else {
            return Ok(());
        };
        self.watched.set_interest(source, interest);
        self.pollfds[at].events = events(interest);
        Ok(())
    }

    fn remove(&mut self, source: Source, _fd: BorrowedFd<'_>) {
        if let Some(at) = self.position(source) {
            // The list swaps its last entry into the hole; the array does the same.
            self.watched.remove(source);
            self.pollfds.swap_remove(at);
        }
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        _idle: bool,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        let millis = timeout.map_or(-1, |t| {
            // Rounded up: rounding down would wake just before a deadline and spin.
            i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
        });
        // SAFETY: the pointer and length describe `self.pollfds`, a live, initialised
        // array that nothing else touches during the call; the kernel writes only the
        // `revents` fields. Every descriptor in it is open: the shared loop removes a
        // source from the waiter before closing its descriptor.
        let n = unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                millis,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        let broken = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
        for (pollfd, watched) in self.pollfds.iter().zip(self.watched.entries()) {
            let revents = pollfd.revents;
            if revents == 0 {
                continue;
            }
            // A hang-up or an error is reported as readable: the next read says which.
            ready.push(Ready {
                source: watched.source,
                readable: revents & (libc::POLLIN | broken) != 0,
                writable: revents & (libc::POLLOUT | libc::POLLERR) != 0,
            });
        }
        Ok(())
    }
}

impl Poll {
    fn position(&self, source: Source) -> Option<usize> {
        self.watched.position(source)
    }
}
