use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use echolab_client::datagram::UdpClient;
use echolab_client::{Client, ClientError};
use echolab_proto::Protocol;

use super::ClientArgs;

#[derive(Debug, Args)]
pub(crate) struct EchoArgs {
    #[command(flatten)]
    pub(super) client: ClientArgs,
    /// Messages to send, one frame (UDP: one datagram) each. With none, read lines from
    /// stdin at a `>> ` prompt, like the course's clients.
    messages: Vec<String>,
}

/// One client of either transport: a message in, its reply out.
enum Echoer {
    Tcp(Client),
    Udp(UdpClient),
}

impl Echoer {
    fn echo(&mut self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        match self {
            Echoer::Tcp(client) => client.echo(message),
            Echoer::Udp(client) => client.echo(message),
        }
    }
}

pub(crate) fn run(args: EchoArgs) -> Result<ExitCode> {
    let udp = args.client.udp()?;
    let config = args.client.client_config()?;
    let mut client = if udp {
        Echoer::Udp(UdpClient::connect(config.addr, config.timeout)?)
    } else {
        Echoer::Tcp(Client::connect(&config)?)
    };
    if !args.messages.is_empty() {
        for message in &args.messages {
            let reply = client.echo(message.as_bytes())?;
            // A daytime reply ends its line itself.
            println!(
                "{}",
                String::from_utf8_lossy(&reply).trim_end_matches(['\r', '\n'])
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut line = String::new();
    loop {
        write!(stdout, ">> ")?;
        stdout.flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line).context("reading stdin")? == 0 {
            println!();
            return Ok(ExitCode::SUCCESS);
        }
        // Framed and UDP: the line without its newline is one message. Raw: the bytes as
        // typed.
        let message = match config.protocol {
            _ if udp => line.trim_end_matches(['\r', '\n']),
            Protocol::Framed => line.trim_end_matches(['\r', '\n']),
            Protocol::Raw => line.as_str(),
        };
        let reply = client.echo(message.as_bytes())?;
        let text = String::from_utf8_lossy(&reply);
        println!("{}", text.trim_end_matches(['\r', '\n']));
    }
}
