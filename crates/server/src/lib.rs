//! What every echolab server model shares, so that a model crate holds only its model:
//! how it waits, and who runs a connection. The seams, and what each is for:
//!
//! - **Binding** — [`Listen`]: the serve entry gets a bind spec, not a socket, so a
//!   model may bind one listener ([`Listen::bind`]) or one per loop or per process
//!   ([`Listen::bind_reuse_port`]; the first bind resolves port 0, the siblings reuse
//!   it). The bound address is announced once, when every listener is ready — or, after
//!   a `bind…_unannounced`, when the model calls [`Listen::announce`] (`prefork` forks
//!   its workers first, `reactors` starts its loops): that is the `listening on
//!   HOST:PORT` line the harness and tests wait for.
//! - **Accept** — [`accept_one`]: the one accept step (count it, sort transient errors
//!   from running out of descriptors, `TCP_NODELAY`, claim a `--max-conns` slot or send
//!   the busy notice; [`admit_accepted`] and [`accept_failed`] are its halves, for a
//!   model whose `accept` happens elsewhere, and [`admit_socket`] the bookkeeping for
//!   a socket a runtime owns). Blocking models wrap it in
//!   [`Acceptor`] (wait for a connection or shutdown); readiness loops in
//!   [`Listening`] (batches and the EMFILE back-off).
//! - **The blocking loop** — [`serve_blocking`]: one read/echo/write loop for every
//!   blocking model (iterative, threads, fork, pool); they differ only in who runs it.
//! - **The readiness core** — [`Conns`] and [`Conn`]: the connections of a
//!   single-threaded loop with their deadlines, the FIN, the close and the shutdown
//!   drain, shared by every model that waits for readiness (epoll in any mode,
//!   `poll(2)`, `select(2)`); each keeps only its wait call and its interest changes.
//!   [`run_event_loop`] is the turn of every one-thread loop (completions too): the
//!   shutdown gate, the wait, the deadline sweep, in that order.
//! - **Level-triggered loops** — [`serve_level`] with a [`Waiter`]: the loop of every
//!   model that waits level-triggered (epoll in level mode, `poll(2)`, `select(2)`, a
//!   busy loop); the model crate implements only the wait, and a waiter whose kernel
//!   call keeps no interest set keeps one in a [`WatchList`].
//! - **Session output** — the session (in `echolab-proto`) lends its output as a slice
//!   for `write` ([`Conn::flush`], [`serve_blocking`]), or hands it over as an owned buffer for
//!   completion IO, where the kernel holds it until the send completes.
//! - **Shutdown** — [`Shutdown`]: SIGINT/SIGTERM as a flag and a readable descriptor,
//!   so blocking and readiness models alike can wait for it.
//! - **Datagrams** — [`Listen::bind_udp`] / [`Listen::bind_udp_reuse_port`] bind UDP
//!   sockets with the same announce-once contract; [`recv_datagram`] receives with
//!   `MSG_TRUNC` reported; a [`Responder`] answers each datagram by the shared rules and
//!   counts what it sends and drops; [`serve_datagrams`] is the blocking
//!   `recvfrom`/`sendto` loop, [`drain`] answers what arrived before shutdown.
//! - **Stats** — [`ServerStats`]: counters folded in once per connection, printed as
//!   JSON on exit; [`ServerContext`] carries config, shutdown and stats into threads
//!   ([`ServerContext::for_worker`]: accepts also counted per loop or process).
//! - **Work** — [`Work`]: the one executor of a `--work` spec (calibrated CPU, a blocking
//!   call), a [`Handler`](echolab_proto::Handler) that a session runs inline per frame;
//!   [`Offload`]: the worker pool that event loops hand the work to instead
//!   (`--offload N`, half-sync/half-async), each loop through its own [`OffloadPort`]
//!   with a wake callback of its kind ([`WakeFd`] for a loop that waits only on
//!   descriptors).
//! - **Children** — [`Children`]: what a process model (`fork`, `prefork`) does with its
//!   processes: fork them from a single-threaded parent, supervise them in one wait
//!   ([`Children::wait`]: shutdown, SIGCHLD, their stats), and forward SIGTERM, wait,
//!   kill and reap at shutdown.
//! - **A thread per socket** — [`serve_each_socket`]: a `SO_REUSEPORT` group served a
//!   thread per socket (`reactors`, `udp-reuseport`), on all of them or none.
//! - **Snapshots** — [`control`]: requests on stdin (`snapshot`), answered on stdout
//!   with a [`Snapshot`] of the server's counters and of its process tree's CPU, memory
//!   and descriptors, read from its own `/proc` ([`procfs`]): how a server started
//!   through `ssh` or another command prefix is measured. A process model's parent
//!   polls stdin in its own loop ([`control::waker`]) instead of starting a thread.

mod accept;
mod blocking;
mod children;
mod config;
mod context;
pub mod control;
mod datagram;
mod deadlines;
mod each_socket;
mod event_loop;
mod interrupt;
mod level;
mod listener;
mod log;
mod nonblocking;
mod offload;
pub mod procfs;
mod readiness;
mod shutdown;
mod snapshot;
mod stats;
mod stats_line;
mod wake;
mod watch_list;
mod work;

// What a model crate, the harness or the binary calls. `Announce`, `BlockedThreads`,
// `Registration`, `ServerStats`, `StatsSnapshot` and `Watched` are named by no one
// outside, but they are the types of public fields, parameters and return values.
pub use accept::{
    accept_failed, accept_one, admit_accepted, admit_socket, sleep_or_shutdown, Accepted, Acceptor,
    SocketMode, ACCEPT_BACKOFF,
};
pub use blocking::{serve_blocking, NO_DEADLINE_WAIT};
pub use children::{ChildProcess, Children, Forked, Woken};
pub use config::ServerConfig;
pub use context::{new_session, refuse_busy, ConnectionSlot, ServerContext};
pub use datagram::{
    drain, record_recv_buffer, recv_datagram, serve_datagrams, socket_addr, Received, Responder,
    DRAIN_LIMIT, DRAIN_TIME, SEND_WAIT,
};
use deadlines::{Deadlines, Slab};
pub use each_socket::{serve_each_socket, SetUp};
pub use event_loop::{run_event_loop, EventLoop};
pub use interrupt::{BlockedThreads, Interrupter, Registration};
pub use level::{serve_level, Interest, Ready, Source, Waiter};
pub use listener::{Announce, Listen, DEFAULT_BACKLOG};
pub use log::closed as log_closed;
pub use nonblocking::{read_available, Drained, READ_BUFFER};
pub use offload::{Offload, OffloadPort, Offloadable};
pub use readiness::{AcceptStop, Conn, Conns, Listening, ReadOutcome};
pub use shutdown::Shutdown;
pub use snapshot::{CpuUse, Snapshot, SnapshotWindow};
pub use stats::{DatagramCounts, ServerStats, StatsSnapshot};
pub use stats_line::{ResourceUsage, StatsLine};
pub use wake::WakeFd;
pub use watch_list::{ListWaiter, WatchList, Watched};
pub use work::{Work, WorkError};
