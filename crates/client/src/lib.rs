//! The one echolab client. [`Client`] is the blocking client behind `echolab echo` and
//! `echolab ping` and the test suites: both protocols and the HMAC handshake, every
//! socket with timeouts so nothing waits forever. [`load`] is the load generator behind
//! `echolab load` and the benchmark harness. [`soak`] is the traffic behind
//! `echolab soak`: random sizes, pieces and pauses over many short-lived connections,
//! every byte verified. Both count what goes wrong by [`FailureKind`]. [`datagram`] is
//! the UDP side: [`datagram::UdpClient`] (echo, ping with a loss count) and the UDP load
//! generator, which counts lost, duplicated, reordered and corrupted datagrams.

#![forbid(unsafe_code)]

mod blocking;
mod cpu;
pub mod datagram;
mod error;
mod failure;
pub mod load;
mod payload;
pub mod soak;

pub use blocking::{Client, ClientConfig};
pub use error::ClientError;
pub use failure::FailureKind;
