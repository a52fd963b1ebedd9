use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use echolab_client::Client;
use echolab_proto::Protocol;

use super::ClientArgs;

#[derive(Debug, Args)]
pub(crate) struct EchoArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Messages to send, one frame each. With none, read lines from stdin at a `>> `
    /// prompt, like the course's clients.
    messages: Vec<String>,
}

pub(crate) fn run(args: EchoArgs) -> Result<ExitCode> {
    let config = args.client.client_config()?;
    let mut client = Client::connect(&config)?;
    if !args.messages.is_empty() {
        for message in &args.messages {
            let reply = client.echo(message.as_bytes())?;
            println!("{}", String::from_utf8_lossy(&reply));
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
        // Framed: the line without its newline is one message. Raw: the bytes as typed.
        let message = match config.protocol {
            Protocol::Framed => line.trim_end_matches(['\r', '\n']),
            Protocol::Raw => line.as_str(),
        };
        let reply = client.echo(message.as_bytes())?;
        let text = String::from_utf8_lossy(&reply);
        println!("{}", text.trim_end_matches(['\r', '\n']));
    }
}
