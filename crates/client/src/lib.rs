//! The one echolab client. [`Client`] is the blocking client behind `echolab echo` and
//! `echolab ping` and the test suites: both protocols and the HMAC handshake, every
//! socket with timeouts so nothing waits forever. [`load`] is the load generator behind
//! `echolab load` and the benchmark harness.

mod blocking;
mod error;
pub mod load;
pub mod soak;

pub use blocking::{Client, ClientConfig};
pub use error::ClientError;
