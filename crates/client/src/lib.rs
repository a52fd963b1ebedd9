//! The one echolab client. [`Client`] is the blocking client behind `echolab echo` and
//! `echolab ping` and the test suites: both protocols and the HMAC handshake, every
//! socket with timeouts so nothing waits forever.

mod blocking;
mod error;

pub use blocking::{Client, ClientConfig};
pub use error::ClientError;
