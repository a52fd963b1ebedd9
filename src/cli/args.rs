//! Flags shared by several subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use echolab_client::ClientConfig;
use echolab_proto::{Protocol, Service, DEFAULT_MAX_FRAME};

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

/// `--transport` on the client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum TransportArg {
    /// TCP: a connection, a byte stream (the stream models).
    #[default]
    Tcp,
    /// UDP: one datagram per message, no connection (the `udp-*` models).
    Udp,
}

/// `--service` on `echolab serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum ServiceArg {
    /// RFC 862: every message back to its sender.
    #[default]
    Echo,
    /// RFC 867 (UDP models): any datagram gets the current date and time as text.
    Daytime,
}

impl From<ServiceArg> for Service {
    fn from(arg: ServiceArg) -> Service {
        match arg {
            ServiceArg::Echo => Service::Echo,
            ServiceArg::Daytime => Service::Daytime,
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
    /// The transport: TCP (the stream models) or UDP (the `udp-*` models).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) transport: TransportArg,
    /// The protocol the server speaks over TCP [default: framed] (UDP: none needed, a
    /// datagram is one message).
    #[arg(long, value_enum)]
    pub(crate) protocol: Option<ProtocolArg>,
    /// File holding the shared key, when the server requires the handshake.
    #[arg(long, value_name = "PATH")]
    pub(crate) auth_key_file: Option<PathBuf>,
    /// Give up on any connect, read or write after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    pub(crate) timeout: Duration,
}

impl ClientArgs {
    /// Whether the command talks UDP; refuses the TCP-only flags with UDP.
    pub(crate) fn udp(&self) -> Result<bool> {
        if self.transport != TransportArg::Udp {
            return Ok(false);
        }
        if self.protocol == Some(ProtocolArg::Framed) {
            bail!(
                "--protocol framed is for TCP: over UDP each datagram is one message, so \
                 there is no length header (see docs/protocol.md)"
            );
        }
        if self.auth_key_file.is_some() {
            bail!(
                "--auth-key-file is for TCP: there is no handshake over UDP, which has no \
                 connection to authenticate (see docs/protocol.md)"
            );
        }
        Ok(true)
    }

    pub(crate) fn client_config(&self) -> Result<ClientConfig> {
        let auth_key = self
            .auth_key_file
            .as_deref()
            .map(load_key_file)
            .transpose()?;
        Ok(ClientConfig {
            addr: self.addr,
            protocol: self.protocol.unwrap_or_default().into(),
            auth_key,
            timeout: self.timeout,
            max_frame: DEFAULT_MAX_FRAME,
        })
    }
}
