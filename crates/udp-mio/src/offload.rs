//! `--offload N` for datagrams: what goes to the pool is the datagram and the address
//! its reply goes to, so a job that comes back carries all its reply needs — there is
//! no connection to look up, and no order to keep between datagrams.

use std::net::SocketAddr;

use echolab_server::Offloadable;

/// A received datagram whose work is on the pool.
#[derive(Debug)]
pub(crate) struct Request {
    /// Its sender, where the reply goes.
    pub(crate) to: SocketAddr,
    /// The datagram, which the work is done on.
    pub(crate) datagram: Vec<u8>,
}

impl Offloadable for Request {
    fn payload(&self) -> &[u8] {
        &self.datagram
    }
}
