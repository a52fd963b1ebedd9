use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use echolab_client::soak::{SoakConfig, MAX_CONNS};
use echolab_harness::{run_soak, ServerProcess};
use echolab_registry::Model;

use super::args::parse_duration;
use super::find_model;
use crate::key_file::load_key_file;

#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// Start this model as a child process (`echolab serve MODEL --addr 127.0.0.1:0`)
    /// and sample its memory and descriptors.
    #[arg(long, required_unless_present = "addr", conflicts_with = "addr")]
    model: Option<String>,
    /// Soak an already running framed server instead.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// With `--addr`: the server's pid, to sample its memory and descriptors.
    #[arg(long, requires = "addr", value_name = "PID")]
    server_pid: Option<u32>,
    /// Key file, when the server requires the handshake (passed on to `--model`).
    #[arg(long, value_name = "PATH")]
    auth_key_file: Option<PathBuf>,
    /// How long to soak (e.g. 60s, 10m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before the first memory sample (at most half the duration; e.g. 5s).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// Connection slots (default 32; 2 for a model that serves one client at a time,
    /// whose other clients wait in the backlog).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=MAX_CONNS as i64))]
    conns: Option<u16>,
    /// Largest frame payload, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    max_size: usize,
    /// Most frames in flight per connection.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    depth: u16,
    /// Seed of every random choice (default: from the clock; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Give up on any connect, read or write after this long (e.g. 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Descriptors the server may hold beyond its starting count once all is closed.
    #[arg(long, value_name = "N", default_value_t = 2)]
    fd_tolerance: u64,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: SoakArgs) -> Result<ExitCode> {
    let seed = args.seed.unwrap_or_else(clock_seed);
    let model = args.model.as_deref().map(find_model).transpose()?;
    if let Some(model) = model.filter(|m| !m.is_stream()) {
        bail!(
            "model {} serves UDP; the soak drives TCP connections (for UDP: `echolab load \
             --transport udp`, and the UDP suite, tests/udp.rs)",
            model.name
        );
    }
    let server = model.map(|model| start(model, &args)).transpose()?;
    eprintln!("soak: seed {seed}");
    let default_conns = match model {
        Some(model) if !model.concurrent() => 2,
        _ => 32,
    };
    let addr = match (&server, args.addr) {
        (Some(server), _) => server.addr(),
        (None, Some(addr)) => addr,
        (None, None) => bail!("give --model or --addr"),
    };
    let config = SoakConfig {
        auth_key: args
            .auth_key_file
            .as_deref()
            .map(load_key_file)
            .transpose()?,
        conns: args.conns.map_or(default_conns, usize::from),
        duration: args.duration,
        warmup: args.warmup,
        seed,
        max_size: args.max_size,
        depth: usize::from(args.depth),
        timeout: args.timeout,
        ..SoakConfig::new(addr)
    };
    let server_pid = server.as_ref().map(ServerProcess::pid).or(args.server_pid);
    let report = run_soak(&config, server_pid, args.fd_tolerance);
    let mut failures = report.failures();
    let mut stats = None;
    if let Some(server) = server {
        let exit = server.stop();
        if !exit.clean {
            failures.push("the server did not exit cleanly after SIGTERM".to_string());
        }
        stats = exit.stats;
    }
    if args.json {
        let mut object = serde_json::to_value(&report)?;
        if let Some(fields) = object.as_object_mut() {
            fields.insert("model".into(), args.model.clone().into());
            fields.insert("server".into(), serde_json::to_value(stats)?);
            fields.insert("passed".into(), failures.is_empty().into());
        }
        println!("{object}");
    } else {
        if let Some(model) = &args.model {
            println!("model         {model}");
        }
        print!("{}", report.summary());
        if let Some(stats) = &stats {
            println!("server stats  {}", serde_json::to_string(stats)?);
        }
        if failures.is_empty() {
            println!("verdict       pass");
        } else {
            println!("verdict       FAIL: {}", failures.join("; "));
        }
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow!("soak failed: {}", failures.join("; ")))
    }
}

fn start(model: &Model, args: &SoakArgs) -> Result<ServerProcess> {
    let exe = std::env::current_exe().context("cannot find the echolab binary")?;
    let mut extra = Vec::new();
    if args.max_size > echolab_proto::DEFAULT_MAX_FRAME as usize {
        extra.extend(["--max-frame".to_string(), args.max_size.to_string()]);
    }
    if let Some(path) = &args.auth_key_file {
        let path = path.to_str().context("the key file path is not UTF-8")?;
        extra.extend(["--auth-key-file".to_string(), path.to_string()]);
    }
    Ok(ServerProcess::start(&exe, model.name, &extra)?)
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}
