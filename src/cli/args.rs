//! Flags shared by several subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use echolab_client::ClientConfig;
use echolab_proto::{Protocol, DEFAULT_MAX_FRAME};

use crate::key_file::load_key_file;

/// `--protocol` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum ProtocolArg {
    /// 4-byte big-endian length, then the payload; errors come back as notices.
    #[default]
    Framed,
    /// RFC 862 echo: bytes back as they arrive, no framing.
    Raw,
}

impl From<ProtocolArg> for Protocol {
    fn from(arg: ProtocolArg) -> Protocol {
        match arg {
            ProtocolArg::Framed => Protocol::Framed,
            ProtocolArg::Raw => Protocol::Raw,
        }
    }
}

/// Parses a number of seconds such as `5` or `0.25`.
pub(crate) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{text}` is not a valid duration"))
}

/// How the client commands reach a server.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Server address, e.g. 127.0.0.1:7000 or [::1]:7000.
    #[arg(long)]
    pub(crate) addr: SocketAddr,
    /// The protocol the server speaks.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) protocol: ProtocolArg,
    /// File holding the shared key, when the server requires the handshake.
    #[arg(long, value_name = "PATH")]
    pub(crate) auth_key_file: Option<PathBuf>,
    /// Give up on any connect, read or write after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub(crate) timeout: Duration,
}

impl ClientArgs {
    pub(crate) fn client_config(&self) -> Result<ClientConfig> {
        let auth_key = self
            .auth_key_file
            .as_deref()
            .map(load_key_file)
            .transpose()?;
        Ok(ClientConfig {
            addr: self.addr,
            protocol: self.protocol.into(),
            auth_key,
            timeout: self.timeout,
            max_frame: DEFAULT_MAX_FRAME,
        })
    }
}
