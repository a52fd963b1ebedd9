//! What a server says with `RUST_LOG=debug` (each connection's life) and
//! `RUST_LOG=trace` (each loop turn, each blocking read and write), so a learner can
//! watch a model work on a handful of connections. Off by default: with no subscriber
//! installed a `tracing` call site costs one cached check, and the peer address is
//! looked up only when the line will be written.

use std::os::fd::{AsFd, AsRawFd};

use socket2::SockRef;

use echolab_proto::Session;
use tracing::{debug, enabled, Level};

/// A connection was accepted and admitted.
pub(crate) fn accepted(stream: &impl AsFd) {
    if enabled!(Level::DEBUG) {
        debug!(peer = %peer(stream), fd = fd(stream), "accepted");
    }
}

/// A connection was turned away, and why.
pub(crate) fn refused(stream: &impl AsFd, why: &str) {
    if enabled!(Level::DEBUG) {
        debug!(peer = %peer(stream), why, "refused");
    }
}

/// A connection ended: why, and the bytes each way.
pub fn closed(stream: &impl AsFd, session: &Session, io_error: bool) {
    if enabled!(Level::DEBUG) {
        let stats = session.stats();
        let reason = session.close_reason().map_or("io error", |r| r.name());
        // No peer address: a peer that closed has none any more; the descriptor number
        // pairs this line with its `accepted` line.
        debug!(
            fd = fd(stream),
            reason = if io_error { "io error" } else { reason },
            bytes_in = stats.bytes_in,
            bytes_out = stats.bytes_out,
            frames = stats.frames,
            "closed"
        );
    }
}

fn peer(stream: &impl AsFd) -> String {
    SockRef::from(stream)
        .peer_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or_else(|| "(gone)".to_string(), |a| a.to_string())
}

fn fd(stream: &impl AsFd) -> i32 {
    stream.as_fd().as_raw_fd()
}
