//! The load generator behind `echolab load`: an event-driven (mio) engine over a few
//! threads, so 1 or 10,000 connections cost the generator about the same, and so the
//! generator is not the bottleneck it measures.
//!
//! Closed loop: each connection keeps `depth` messages in flight and sends the next as
//! soon as a reply arrives. Every reply is verified byte for byte; latency goes into an
//! HDR histogram; per-connection counts give the fairness index (a starved client under
//! `iterative` or a saturated pool shows up as a low Jain index and a zero minimum).
//!
//! Open loop (`rate`): messages are sent when due on a fixed schedule, whether or not
//! earlier ones were answered, and latency counts from the intended send time; a queue
//! of due times and a timerfd alarm wake the loop on time to the microsecond, looking
//! only at the connections that are due.
//! Churn: each connection slot connects, echoes once, closes and reconnects.
//!
//! The files stack one way: `threads` runs one `event_loop` per thread, which hands
//! readiness to `receive` and the clock to `worker`; `receive` reads, checks replies
//! with `verify` and tells `worker` what came of them; `worker` runs each connection's
//! life with `connect`, `send` and `conn`, counting into `tally`; `finish` turns the
//! threads' tallies into the `report`.

pub mod agent;
mod censor;
mod classify;
pub(crate) mod config;
mod conn;
mod connect;
mod connected;
mod event_loop;
mod finish;
mod progress;
mod receive;
pub(crate) mod report;
pub(crate) mod schedule;
mod send;
mod tally;
pub(crate) mod threads;
mod verify;
pub(crate) mod wakeups;
mod worker;

pub use config::{default_threads, LoadConfig, COLLECT_OWED};
pub use connected::Connected;
pub use report::{Fairness, LatencyUs, LoadMode, LoadReport};
pub use threads::{run, run_keeping_histogram};
