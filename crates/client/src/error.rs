use std::io;
use std::net::SocketAddr;

use thiserror::Error;

/// What can go wrong talking to an echolab server.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Reading or writing failed (including timeouts).
    #[error("{context}")]
    Io {
        /// What the client was doing.
        context: &'static str,
        /// Why it failed.
        source: io::Error,
    },
    /// The server sent an error notice (and will close the connection).
    #[error("server says: {0}")]
    Notice(String),
    /// The server closed the connection before the reply was complete.
    #[error("server closed the connection {0}")]
    Closed(&'static str),
    /// The server's bytes do not parse as replies.
    #[error("unexpected reply from the server; does it speak this protocol, and does it require --auth-key-file?")]
    Protocol(#[from] echolab_proto::ProtoError),
}

impl ClientError {
    /// Wraps an I/O error with what the client was doing. A socket timeout surfaces
    /// from the kernel as EAGAIN ("resource temporarily unavailable"); say what it is.
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> ClientError {
        move |source| {
            let source = match source.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    io::Error::new(io::ErrorKind::TimedOut, "timed out")
                }
                _ => source,
            };
            ClientError::Io { context, source }
        }
    }
}
