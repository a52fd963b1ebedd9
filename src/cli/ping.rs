use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use echolab_client::datagram::UdpClient;
use echolab_client::Client;

use super::ClientArgs;

#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    #[command(flatten)]
    pub(super) client: ClientArgs,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Round trips to time.
    #[arg(long, default_value_t = 1000)]
    count: u32,
}

pub(crate) fn run(args: PingArgs) -> Result<ExitCode> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if args.client.udp()? {
        return ping_udp(&args, args.client.addr, args.client.timeout());
    }
    let config = args.client.client_config()?;
    let mut client = Client::connect(&config)?;
    let mut payload: Vec<u8> = (0..args.size).map(|i| (i % 251) as u8).collect();
    let mut samples = Vec::with_capacity(args.count as usize);
    for seq in 0..args.count {
        // Vary the payload so a server that replays an old reply is caught.
        if let Some(first) = payload.first_mut() {
            *first = seq as u8;
        }
        let start = Instant::now();
        let reply = client.echo(&payload)?;
        samples.push(start.elapsed());
        if reply != payload {
            bail!("reply {seq} differs from the message sent");
        }
    }
    println!(
        "{} round trips of {} bytes to {}: {}",
        args.count,
        args.size,
        config.addr,
        percentiles(&mut samples)
    );
    Ok(ExitCode::SUCCESS)
}

/// `min, p50, p99, max` of the samples.
fn percentiles(samples: &mut [Duration]) -> String {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    format!(
        "min {:.1} us, p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        us(samples[0]),
        us(at(0.5)),
        us(at(0.99)),
        us(samples[samples.len() - 1]),
    )
}

/// UDP: one datagram at a time, each waited for up to `--timeout`; a datagram with no
/// reply by then is lost, counted, and the ping goes on.
fn ping_udp(args: &PingArgs, addr: std::net::SocketAddr, timeout: Duration) -> Result<ExitCode> {
    let mut client = UdpClient::connect(addr, timeout)?;
    let mut outcome = client.ping(args.size, args.count)?;
    let lost = outcome.lost;
    let stray = if outcome.stray > 0 {
        format!(", {} stray replies", outcome.stray)
    } else {
        String::new()
    };
    let times = if outcome.samples.is_empty() {
        "no replies".to_string()
    } else {
        percentiles(&mut outcome.samples)
    };
    println!(
        "{} UDP datagrams of {} bytes to {addr}: {} answered, {lost} lost ({:.1}%){stray}: {times}",
        args.count,
        args.size,
        args.count - lost,
        f64::from(lost) * 100.0 / f64::from(args.count),
    );
    if outcome.samples.is_empty() {
        bail!(
            "no datagram was answered within {:.1} s",
            timeout.as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
