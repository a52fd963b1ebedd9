//! What every echolab server model shares, so that a model crate holds only its model.
//!
//! - [`ServerConfig`]: the knobs of `echolab serve`.
//! - [`bind_listener`]: a listener with `SO_REUSEADDR` and a burst-sized backlog.
//! - [`Shutdown`]: SIGINT/SIGTERM turned into a flag and a readable descriptor, so both
//!   blocking and readiness models can wait for it.
//! - [`ServerStats`]: counters folded in once per connection, printed as JSON on exit.
//! - [`ServerContext`]: the three above, cheap to clone into threads.
//! - [`serve_blocking`]: the one read/echo/write loop that every blocking model runs;
//!   models differ only in who runs it (the accept loop, a process, a thread, a worker).
//! - [`new_session`], [`refuse_busy`], [`wait_readable`]: small pieces every model needs.
//! - [`Deadlines`], [`Slab`], [`read_available`], [`write_pending`]: what the
//!   single-threaded readiness loops (`poll`, `mio`) share — a timer heap with lazy
//!   invalidation, a generation-tagged connection slab, and drain-until-`WouldBlock`
//!   I/O between a session and a non-blocking socket.

mod accept;
mod blocking;
mod config;
mod context;
mod deadlines;
mod listener;
mod nonblocking;
mod shutdown;
mod stats;

pub use accept::{is_transient, Acceptor, ACCEPT_BACKOFF};
pub use blocking::{serve_blocking, BLOCKING_TICK};
pub use config::ServerConfig;
pub use context::{new_session, refuse_busy, ConnectionSlot, ServerContext};
pub use deadlines::{Deadlines, Expired, Slab};
pub use listener::{bind_listener, DEFAULT_BACKLOG};
pub use nonblocking::{read_available, write_pending, Drained};
pub use shutdown::{wait_readable, Readiness, Shutdown};
pub use stats::{ServerStats, StatsSnapshot};
