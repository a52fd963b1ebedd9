//! What a soak runs: where, how many connections, how long, how hard.

use std::net::SocketAddr;
use std::time::Duration;

use echolab_proto::AuthKey;

/// What to soak and how hard.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The server (framed protocol).
    pub addr: SocketAddr,
    /// Its key, when it requires the handshake.
    pub auth_key: Option<AuthKey>,
    /// Connection slots; each connects, lives a random number of frames, closes, and
    /// reconnects until the end. At most 4096.
    pub conns: usize,
    /// How long to keep going.
    pub duration: Duration,
    /// Time under load before the first sample (allocators and buffers warm).
    pub warmup: Duration,
    /// Seeds every random choice.
    pub seed: u64,
    /// Largest frame payload sent, in bytes (must not exceed the server's `--max-frame`).
    pub max_size: usize,
    /// Most frames in flight on one connection (each life picks 1 to this many).
    pub depth: usize,
    /// Connect, read and write timeout on every socket.
    pub timeout: Duration,
}

impl SoakConfig {
    /// Defaults: 32 connections for 60 s after 5 s of warm-up, frames up to 256 KiB,
    /// up to 4 in flight, 10 s timeouts, seed 1.
    pub fn new(addr: SocketAddr) -> SoakConfig {
        SoakConfig {
            addr,
            auth_key: None,
            conns: 32,
            duration: Duration::from_secs(60),
            warmup: Duration::from_secs(5),
            seed: 1,
            max_size: 256 * 1024,
            depth: 4,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Most connection slots: a life's id keeps the slot in its top 12 bits.
pub const MAX_CONNS: usize = 4096;
