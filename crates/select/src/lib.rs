//! # select — one thread, `select(2)` over descriptor sets rebuilt every turn
//!
//! The oldest readiness call, and the one a socket course teaches first (Python's
//! `select.select`). The program keeps the list of descriptors it cares about; on every
//! turn it builds a read set and a write set (bitmaps of `FD_SETSIZE` = 1024 bits),
//! passes both to the kernel with the highest descriptor + 1, and gets back the same
//! bitmaps with only the ready bits left set. The kernel keeps nothing between calls,
//! so every call copies the sets in and out and walks every descriptor up to the
//! highest, whether it is busy or idle; the program then walks its list again to find
//! the set bits. Everything else — one step per ready connection, interest that follows
//! the session, deadlines, shutdown — is the shared level-triggered loop
//! ([`echolab_server::serve_level`]).
//!
//! **Syscalls.** Per connection: `accept4`, `setsockopt(TCP_NODELAY)`, and at the end
//! `close`: no registration call, since there is no kernel-side interest set. Per
//! message: one `select` (shared by everything ready at once, but costing O(highest
//! descriptor) in the kernel and O(connections) here to build and scan the sets), one
//! `read`, one `write`.
//!
//! **Where it waits.** Only in `select`, with a timeout equal to the earliest session
//! deadline.
//!
//! **What a connection costs.** A descriptor, a session, an entry in the watch list
//! and — on every turn, busy or not — its share of building, copying and scanning the
//! sets. That per-turn cost is what grows with an idle crowd: see the idle-crowd chart
//! in `docs/models/select.md`.
//!
//! **How it fails under load.** `FD_SETSIZE` is a hard wall: a descriptor of 1024 or
//! above cannot be put in an `fd_set` at all (`FD_SET` past the end is a buffer
//! overflow in C). A connection whose descriptor is that high is turned away with the
//! framed `server busy` notice and closed, while the connections below the wall are
//! served as before; the registry records the limit as this model's natural limit.
//! Below the wall, each turn costs more the more connections are open, idle or not.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use echolab_server::{serve_level, ListWaiter, Listen, Ready, ServerContext, WatchList};
use nix::errno::Errno;
use nix::sys::select::{select, FdSet, FD_SETSIZE};
use nix::sys::time::{TimeVal, TimeValLike};

/// The descriptor wall: `select(2)` cannot watch a descriptor at or above it.
pub const FD_LIMIT: usize = FD_SETSIZE;

/// Serves every client from one thread with a `select(2)` loop until shutdown, then
/// lets every session finish and returns.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    serve_level(listen, ctx, Select::default())
}

#[derive(Debug, Default)]
struct Select {
    watched: WatchList,
}

impl ListWaiter for Select {
    fn list(&mut self) -> &mut WatchList {
        &mut self.watched
    }

    fn can_watch(&self, fd: BorrowedFd<'_>) -> bool {
        usize::try_from(fd.as_raw_fd()).is_ok_and(|fd| fd < FD_LIMIT)
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        _idle: bool,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        // The whole lesson of select(2): both sets are rebuilt from scratch every turn.
        let mut readers = FdSet::new();
        let mut writers = FdSet::new();
        let mut highest: RawFd = -1;
        for watched in self.watched.entries() {
            let fd = borrow(watched.fd);
            if watched.interest.readable {
                readers.insert(fd);
            }
            if watched.interest.writable {
                writers.insert(fd);
            }
            highest = highest.max(watched.fd);
        }
        let mut timeval = timeout.map(to_timeval);
        match select(
            highest + 1,
            &mut readers,
            &mut writers,
            None,
            timeval.as_mut(),
        ) {
            Ok(_) => {}
            Err(Errno::EINTR) => return Ok(()),
            Err(errno) => return Err(errno.into()),
        }
        for watched in self.watched.entries() {
            let fd = borrow(watched.fd);
            let readable = watched.interest.readable && readers.contains(fd);
            let writable = watched.interest.writable && writers.contains(fd);
            if readable || writable {
                ready.push(Ready {
                    source: watched.source,
                    readable,
                    writable,
                });
            }
        }
        Ok(())
    }
}

/// A descriptor of the watch list, borrowed for the sets of one call.
fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: every descriptor in the watch list is open: the shared loop removes a
    // source from the waiter before it closes its descriptor, and the sets built from
    // it live only for one `select` call inside `wait`. Each is below FD_SETSIZE
    // (`add` refuses the rest), so `FdSet::insert` cannot go past the bitmap.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// A timeout rounded *up* to select's microseconds: rounding down would wake just
/// before a deadline, find nothing due, and spin until it is.
fn to_timeval(timeout: Duration) -> TimeVal {
    let micros = timeout.as_nanos().div_ceil(1_000);
    TimeVal::microseconds(i64::try_from(micros).unwrap_or(i64::MAX))
}
