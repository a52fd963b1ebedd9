//! # polling — one thread, level-triggered epoll through the `polling` crate
//!
//! Every socket is non-blocking and registered with one poller. The loop asks the
//! kernel "which of these descriptors can make progress?", does one step of work on
//! each one that can, and asks again. Interest follows the session: a connection is
//! watched for *readable* only while [`Session::wants_read`] (so backpressure is simply
//! "stop asking") and for *writable* only while [`Session::wants_write`] (a socket
//! with room in its send buffer is writable almost always; asking for it needlessly
//! would wake the loop on every turn).
//!
//! Level-triggered means the kernel keeps reporting a descriptor for as long as it is
//! ready: the loop may do one `read` per connection per wakeup and trust that the rest
//! will be reported again. That makes fairness free and correctness easy, at the price
//! of more wakeups than edge-triggered (`mio`). On Linux the `polling` crate is epoll
//! underneath, the sockets registered in level mode; the crate's own bookkeeping (a
//! timerfd for the timeout and a notification descriptor, both re-armed around every
//! wait) adds calls of its own to each turn — see the syscall counts in
//! `docs/models/polling.md`. The loop itself is the shared level-triggered loop
//! ([`echolab_server::serve_level`]); this crate is only how it waits. The real
//! `poll(2)` and `select(2)` models (`poll`, `select`), whose cost grows with the
//! number of descriptors on every call, wait through the same loop.
//!
//! **Syscalls.** Per connection: `accept4`, `setsockopt(TCP_NODELAY)`,
//! `epoll_ctl(ADD)`, and at the end `epoll_ctl(DEL)` + `close`. Per message: one
//! `epoll_pwait` (shared by everything ready at once) with the crate's
//! `timerfd_settime` and `epoll_ctl(MOD)` re-arms around it, one `read`, one `write`
//! and — only when a reply does not fit the socket buffer — two `epoll_ctl(MOD)` to
//! watch for writable and to stop again.
//!
//! **Where it waits.** Only in `epoll_pwait`, with a timeout equal to the earliest
//! session deadline (a min-heap of deadlines with lazy invalidation, so a wakeup costs
//! O(log n) in timers, not a scan of every session).
//!
//! **What a connection costs.** A descriptor, a [`Session`] (a few hundred bytes plus
//! its buffers) and a slot in a `Vec`; no thread, no stack. One 64 KiB read buffer is
//! shared by the whole loop. Ten thousand idle clients cost memory for their sessions
//! and nothing per wakeup.
//!
//! **How it fails under load.** One core: the loop's throughput is the ceiling, and
//! any slow step (a large copy) delays every client. Past `--max-conns`, framed clients
//! get the `server busy` notice. Out of descriptors (EMFILE and friends), the listener
//! is removed from the poller for [`echolab_server::ACCEPT_BACKOFF`] — a level-triggered listener with
//! a pending connection would otherwise be reported on every call and spin a core —
//! while existing clients keep being served.
//!
//! **Shutdown.** The shutdown descriptor is registered like a socket. When it fires the
//! listener is dropped, every session takes in what has already arrived, is told to
//! [`Session::begin_shutdown`], and the loop keeps running until every session has
//! sent what it owes and closed (bounded by the sessions' own linger deadlines).
//!
//! [`Session`]: echolab_proto::Session
//! [`Session::wants_read`]: echolab_proto::Session::wants_read
//! [`Session::wants_write`]: echolab_proto::Session::wants_write
//! [`Session::begin_shutdown`]: echolab_proto::Session::begin_shutdown

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use echolab_server::{serve_level, Interest, Listen, Ready, ServerContext, Source, Waiter};
use polling::{Event, Events, PollMode, Poller};

/// Serves every client from one thread with level-triggered epoll until shutdown, then
/// lets every session finish and returns.
pub fn serve(listen: &Listen, ctx: &ServerContext) -> io::Result<()> {
    serve_level(
        listen,
        ctx,
        EpollLevel {
            poller: Poller::new()?,
            events: Events::new(),
        },
    )
}

/// Level-triggered epoll: the interest set lives in the kernel, changed by
/// `epoll_ctl`, and a wait returns only what is ready.
struct EpollLevel {
    poller: Poller,
    events: Events,
}

const LISTENER: usize = 0;
const WAKER: usize = 1;
/// `--offload`: the pool's wake descriptor.
const OFFLOAD: usize = 2;
/// Connection keys start here: key = connection index + `FIRST_CONN`.
const FIRST_CONN: usize = 3;

fn key(source: Source) -> usize {
    match source {
        Source::Listener => LISTENER,
        Source::Waker => WAKER,
        Source::Offload => OFFLOAD,
        Source::Conn(index) => index + FIRST_CONN,
    }
}

fn event(source: Source, interest: Interest) -> Event {
    Event::new(key(source), interest.readable, interest.writable)
}

impl Waiter for EpollLevel {
    fn add(&mut self, source: Source, fd: BorrowedFd<'_>, interest: Interest) -> io::Result<()> {
        // SAFETY: `polling` needs every added descriptor deleted before it is closed;
        // the shared loop calls `remove` for each source before closing it (see
        // `Waiter::add`), and the poller is dropped with the loop.
        unsafe {
            self.poller
                .add_with_mode(fd.as_raw_fd(), event(source, interest), PollMode::Level)
        }
    }

    fn modify(&mut self, source: Source, fd: BorrowedFd<'_>, interest: Interest) -> io::Result<()> {
        self.poller
            .modify_with_mode(fd, event(source, interest), PollMode::Level)
    }

    fn remove(&mut self, _source: Source, fd: BorrowedFd<'_>) {
        let _ = self.poller.delete(fd);
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        _idle: bool,
        ready: &mut Vec<Ready>,
    ) -> io::Result<()> {
        self.events.clear();
        self.poller.wait(&mut self.events, timeout)?;
        ready.extend(self.events.iter().map(|event| Ready {
            source: match event.key {
                LISTENER => Source::Listener,
                WAKER => Source::Waker,
                OFFLOAD => Source::Offload,
                key => Source::Conn(key - FIRST_CONN),
            },
            readable: event.readable,
            writable: event.writable,
        }));
        Ok(())
    }
}
