//! The echolab protocol, sans-IO: everything every server model shares, with no sockets
//! and no clock inside.
//!
//! A model crate owns only *how it waits* for a socket to be ready and *who runs* the
//! connection. Everything else — framing (the course's "sticky packet" fix), limits, the
//! HMAC challenge-response, deadlines and backpressure — lives here, in [`Session`], so
//! that every model answers every byte identically and the benchmark compares only the
//! concurrency model.
//!
//! The shape follows quinn-proto and rustls: bytes go in with [`Session::handle_input`],
//! end-of-stream with [`Session::handle_eof`], time with [`Session::handle_timeout`];
//! bytes to send come out of [`Session::output`] and are acknowledged with
//! [`Session::consume_output`], so a partial `write` is the normal case, not an edge case.
//! [`Session::wants_read`], [`Session::wants_write`] and [`Session::is_closed`] tell the
//! driver what to wait for next.
//!
//! The client side ([`encode_frame`], [`ReplyDecoder`], [`AuthKey::respond`]) lives here
//! too, so the client and the server cannot disagree about the wire format.
//!
//! UDP has no stream to frame and no connection to hold state for: beside the session,
//! [`DatagramRules::answer`] answers one datagram at a time (echo or daytime), with the
//! session's size limit and no handshake.
//!
//! Work per message (`--work`): a [`WorkSpec`] says what each message costs (CPU, a
//! blocking call, a distribution, a long-tail mix) and which message gets what, from
//! its payload alone, so the client can tell the slow replies apart. Between "a frame
//! is complete" and "its reply is queued" the session hands the message to a
//! [`Handler`], inline or — [`WorkMode::Offload`] — through the driver as a [`Job`]
//! ([`Session::take_job`], [`Session::complete_job`]); replies stay in order either way.

#![forbid(unsafe_code)]

mod auth;
mod config;
mod datagram;
mod decoder;
mod error;
mod frame;
mod session;
mod work;

pub use auth::{AuthKey, MAC_LEN, MIN_KEY_LEN, NONCE_LEN};
pub use config::{FrameLimit, Protocol, SessionConfig, DEFAULT_HIGH_WATER};
pub use datagram::{
    daytime, parse_daytime, Answer, DatagramRules, Dropped, Service, MAX_DATAGRAM,
    MAX_UDP_PAYLOAD_V4,
};
pub use decoder::{Reply, ReplyDecoder};
pub use error::ProtoError;
pub use frame::{
    encode_frame, encode_notice, Header, DEFAULT_MAX_FRAME, HEADER_LEN, MAX_NOTICE_LEN, NOTICE_BIT,
};
pub use session::{CloseReason, Handler, Job, Session, SessionStats, WorkMode};
pub use work::{Chosen, Distribution, WorkItem, WorkKind, WorkSpec, WorkSpecError, MAX_WORK};
