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

/// Parses a duration as people write them for wrk, hyperfine or k6: `500ms`, `10s`,
/// `1.5m`, `2h`, `250us`, or a bare number of seconds (`5`, `0.25`) as before. One
/// parser behind every flag that takes a time.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!(
            "`{text}` is not a duration: write e.g. 500ms, 10s or 1m (a bare number is seconds)"
        )
    })?;
    let seconds_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}`; use ms, s, m or h (e.g. 500ms, 10s, 1m), or a bare number of seconds"
            ))
        }
    };
    Duration::try_from_secs_f64(value * seconds_per_unit)
        .map_err(|_| format!("`{text}` is not a valid duration"))
}

/// Where `serve` listens and `echo`, `ping` and `load` connect when `--addr` is not
/// given: one fixed, unprivileged loopback port, so that `echolab serve mio` in one
/// terminal and `echolab echo hello` in another find each other, and swapping the model
/// behind the client takes no flags. Tests never use it: they bind port 0.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:7007";

/// How the client commands reach a server.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Server address, e.g. 127.0.0.1:7000 or [::1]:7000; by default the address
    /// `echolab serve` listens on by default.
    #[arg(long, default_value = DEFAULT_ADDR)]
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
    /// Give up on any connect, read or write after this long (e.g. 500ms, 5s) [default:
    /// 5s; `load --transport udp`: 1s, after which a datagram with no reply counts lost].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) timeout: Option<Duration>,
}

/// `--timeout` when not given, for everything but the UDP load generator (whose reply
/// timeout defaults to the library's, as the harness uses it).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl ClientArgs {
    /// `--timeout`, or its default.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

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
            timeout: self.timeout(),
            max_frame: DEFAULT_MAX_FRAME,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("1m", ms(60_000)),
            ("1.5m", ms(90_000)),
            ("2h", ms(7_200_000)),
            ("250us", Duration::from_micros(250)),
            ("5", ms(5_000)),
            ("0.25", ms(250)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn a_bad_duration_says_what_is_wrong() {
        let err = parse_duration("10x").unwrap_err();
        assert!(
            err.contains("unknown unit `x`") && err.contains("500ms"),
            "{err}"
        );
        for bad in ["", "s", "-1s", "1e400", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
