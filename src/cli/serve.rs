use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use echolab_proto::FrameLimit;
use echolab_proto::{Protocol, SessionConfig, WorkMode, WorkSpec, DEFAULT_MAX_FRAME};
use echolab_registry::Model;
use echolab_server::{
    control, Listen, ResourceUsage, ServerConfig, ServerContext, Shutdown, StatsLine, Work,
    DEFAULT_BACKLOG,
};

use super::args::{parse_duration, ProtocolArg, ServiceArg, DEFAULT_ADDR};
use super::fd_limit::raise_descriptor_limit;
use super::{find_model, UsageError};
use crate::key_file::load_key_file;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The model to run (see `echolab models`).
    model: String,
    /// Address to listen on, e.g. 127.0.0.1:0 (port 0: the kernel chooses, and the first
    /// line printed names the port). By default the fixed loopback port that `echo`,
    /// `ping` and `load` also default to.
    #[arg(long, default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Wire protocol of the TCP models [default: framed]. The UDP models take no
    /// framing: a datagram is one message (`raw` is accepted, `framed` refused).
    #[arg(long, value_enum)]
    protocol: Option<ProtocolArg>,
    /// What to answer with: echo, or (UDP models) RFC 867 daytime.
    #[arg(long, value_enum, default_value_t)]
    service: ServiceArg,
    /// Largest frame payload accepted, in bytes (framed protocol; UDP models: the
    /// largest datagram answered, a longer one is dropped and counted).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME)]
    max_frame: u32,
    /// Require the HMAC-SHA256 handshake with the key in this file (at least 16 bytes,
    /// not readable by group or others).
    #[arg(long, value_name = "PATH")]
    auth_key_file: Option<PathBuf>,
    /// How long a client has to answer the challenge (e.g. 5s).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Close a connection that moves no bytes for this long (e.g. 60s; 0: never).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// A frame must be complete this long after its first byte (e.g. 30s; 0: no limit).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    frame_timeout: Duration,
    /// Most connections served at once; past it framed clients get `server busy`
    /// [default: 10000].
    #[arg(long, value_name = "N")]
    max_conns: Option<usize>,
    /// Worker threads, for models with a fixed set (default: number of CPUs).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Listen backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BACKLOG)]
    backlog: i32,
    /// Work per message, done after a frame (a datagram, for the UDP models) is complete
    /// and before its reply is queued: `cpu:20us` (real computation until the
    /// thread's CPU clock has advanced 20 µs), `block:1ms` (a blocking call: the thread sleeps), `cpu:exp:50us`
    /// (exponential with that mean), or a mix such as `cpu:10us,1%block:5ms`; at most
    /// 10s per message. The bytes on the wire do not change. Framed TCP and UDP only.
    #[arg(long, value_name = "SPEC")]
    work: Option<WorkSpec>,
    /// Event-loop models: hand each message's work to N worker threads and write the
    /// reply when it comes back (half-sync/half-async), instead of doing it on the loop
    /// and stalling every connection it holds. Replies stay in order per connection.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024), requires = "work")]
    offload: Option<u16>,
    /// Run on CPU N only (as `taskset -c N` would): `echolab compare --pin` places the
    /// server with it.
    #[arg(long, value_name = "N")]
    cpu: Option<usize>,
    /// Stop, as on SIGTERM, when process PID (this server's parent) exits: `echolab
    /// compare` and `soak` pass their own, so killing them leaves no server behind.
    #[arg(long, value_name = "PID")]
    parent_pid: Option<i32>,
    /// Stop, as on SIGTERM, when stdin ends: `echolab compare --server-host` starts the
    /// server through a command prefix (`ssh host`) and stops it by closing the pipe,
    /// which also stops it if the harness or the connection dies. Without it, the end
    /// of stdin only ends the `snapshot` requests.
    #[arg(long)]
    stop_on_eof: bool,
    /// Answer a `snapshot` line on stdin with one JSON line: the stats, and the CPU,
    /// memory, threads, processes and descriptors of the server's process tree, read
    /// from its own `/proc` (how `echolab compare --server-host` measures a server on
    /// another host). Off by default: it costs a thread (a process model answers in
    /// its own loop instead), and a thread counts against a process limit.
    #[arg(long)]
    snapshots: bool,
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl ServeArgs {
    /// Refuses `--workers 0` (exit 2), before anything is calibrated or bound.
    fn check_workers(&self) -> Result<(), UsageError> {
        if self.workers == Some(0) {
            return Err(UsageError("--workers must be at least 1".into()));
        }
        Ok(())
    }

    /// Refuses `--work` and `--offload` where they mean nothing, in one line (exit 2).
    fn check_work(&self, model: &Model) -> Result<(), UsageError> {
        let name = model.name;
        if self.work.is_some() && model.is_stream() && self.protocol == Some(ProtocolArg::Raw) {
            return Err(UsageError(
                "--work is per message, and raw TCP (RFC 862) has no messages, only a byte \
                 stream: use the framed protocol (the default)"
                    .into(),
            ));
        }
        if self.offload.is_some() && !model.takes_offload() {
            let offloading: Vec<&str> = echolab_registry::MODELS
                .iter()
                .filter(|m| m.takes_offload())
                .map(|m| m.name)
                .collect();
            return Err(UsageError(format!(
                "model {name} does not take --offload: it does each message's work on the \
                 thread or process that serves the connection by nature; the event loops \
                 that offload are: {}",
                offloading.join(", ")
            )));
        }
        Ok(())
    }

    /// Refuses what `model`'s transport cannot do, with the reason.
    fn check_transport(&self, model: &Model) -> Result<()> {
        let name = model.name;
        if model.is_stream() {
            if self.service != ServiceArg::Echo {
                bail!(
                    "--service daytime is served by the UDP models only (model {name} serves \
                     the echo protocol over TCP)"
                );
            }
            return Ok(());
        }
        if self.protocol == Some(ProtocolArg::Framed) {
            bail!(
                "model {name} serves UDP datagrams, which need no framing: a datagram keeps \
                 its boundaries, so there is no length header (leave out --protocol; see \
                 docs/protocol.md)"
            );
        }
        if self.auth_key_file.is_some() {
            bail!(
                "model {name} serves UDP, which has no connection to authenticate: there is \
                 no handshake over UDP, so --auth-key-file does not apply (see docs/protocol.md)"
            );
        }
        Ok(())
    }

    fn server_config(&self, model: &Model) -> Result<ServerConfig> {
        let auth_key = self
            .auth_key_file
            .as_deref()
            .map(load_key_file)
            .transpose()?
            .map(Arc::new);
        // Calibrated once, here, before any connection: `cpu` work takes its duration
        // of this machine's CPU.
        let work = self
            .work
            .clone()
            .map(Work::new)
            .transpose()
            .context("--work")?
            .map(Arc::new);
        let offload = self.offload.map(usize::from);
        let work_mode = match (&work, offload) {
            (None, _) => WorkMode::None,
            (Some(_), Some(_)) => WorkMode::Offload,
            (Some(work), None) => WorkMode::Inline(work.clone()),
        };
        Ok(ServerConfig {
            session: SessionConfig {
                // A datagram server answers datagrams as they are: no framing.
                protocol: if model.is_stream() {
                    self.protocol.unwrap_or_default().into()
                } else {
                    Protocol::Raw
                },
                max_frame: FrameLimit::new(self.max_frame).context("--max-frame")?,
                auth_key,
                handshake_timeout: self.handshake_timeout,
                idle_timeout: nonzero(self.idle_timeout),
                frame_timeout: nonzero(self.frame_timeout),
                work: work_mode,
                ..SessionConfig::default()
            },
            max_conns: self.max_conns.unwrap_or(ServerConfig::default().max_conns),
            workers: self.workers,
            service: self.service.into(),
            work,
            offload,
        })
    }
}

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    let model = find_model(&args.model)?;
    args.check_workers()?;
    args.check_work(model)?;
    args.check_transport(model)?;
    let config = args.server_config(model)?;
    if let Some(warning) = raise_descriptor_limit(config.max_conns as u64, "--max-conns") {
        // Only worth a word when asked for: the default is a ceiling, not a plan.
        if args.max_conns.is_some() {
            eprintln!("warning: {warning}");
        }
    }
    if let Some(cpu) = args.cpu {
        // Before any thread exists: every thread the model starts inherits it.
        echolab_harness::pin_this_thread(cpu)
            .with_context(|| format!("cannot pin to CPU {cpu}"))?;
    }
    let shutdown = Shutdown::new().context("cannot create the shutdown pipe")?;
    shutdown
        .install_signal_handlers()
        .context("cannot install signal handlers")?;
    if let Some(parent) = args.parent_pid {
        exit_with_parent(parent)?;
    }
    let ctx = ServerContext::new(config, shutdown);
    // `snapshot` on stdin: the server measures itself, for a harness that cannot read
    // its `/proc` (a server on another host). A forking parent must stay
    // single-threaded, so it answers in its own loop; every other model gets a thread.
    // Requests are read only once `listening on` is out, so that it stays the first line.
    if args.snapshots || args.stop_on_eof {
        control::install(control::answer_snapshots(
            model.name.to_string(),
            Arc::clone(&ctx.stats),
        ));
    }
    if args.stop_on_eof {
        let shutdown = ctx.shutdown.clone();
        control::on_end(Box::new(move || shutdown.request()));
    }
    let reader_thread = (args.snapshots || args.stop_on_eof) && !model.forks();
    // The harness and the tests wait for exactly this line, printed once the model has
    // bound every listener it needs.
    let listen = Listen::new(
        args.addr,
        args.backlog,
        Box::new(move |local| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "listening on {local}");
            let _ = stdout.flush();
            drop(stdout);
            if reader_thread {
                if let Err(e) = control::spawn_reader() {
                    eprintln!("warning: no snapshots: cannot start the stdin reader: {e}");
                }
            }
        }),
    );
    (model.serve)(&listen, &ctx).with_context(|| format!("model {} failed", model.name))?;
    let line = StatsLine {
        model: model.name.to_string(),
        stats: ctx.stats.snapshot(),
        rusage: ResourceUsage::of_self_and_children(),
    };
    let line = serde_json::to_string(&line).context("cannot write the stats line")?;
    // Whoever started the server may be gone (a killed harness, `--parent-pid`): a stats
    // line nobody reads is no reason to fail a clean shutdown.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    Ok(ExitCode::SUCCESS)
}

/// Asks the kernel for SIGTERM when the parent exits (`PR_SET_PDEATHSIG`; a `fork`
/// model's children do not inherit it, and the parent's shutdown takes them down). A
/// parent that died before the request is caught by `getppid` no longer being it.
fn exit_with_parent(parent: i32) -> Result<()> {
    use nix::sys::signal::{raise, Signal};
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .context("cannot ask for a signal when the parent exits")?;
    if nix::unistd::getppid().as_raw() != parent {
        raise(Signal::SIGTERM).context("cannot stop after the parent exited")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    #[test]
    fn serve_without_addr_listens_on_the_default_address() {
        let cli = Cli::try_parse_from(["echolab", "serve", "mio"]).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve: {cli:?}");
        };
        let default: SocketAddr = DEFAULT_ADDR.parse().expect("the default parses");
        assert_eq!(args.addr, default);
        // Loopback and unprivileged: reachable only from this machine, bindable by anyone.
        assert!(
            default.ip().is_loopback() && default.port() > 1024,
            "{default}"
        );
    }

    #[test]
    fn every_client_command_defaults_to_the_address_serve_listens_on() {
        let default: SocketAddr = DEFAULT_ADDR.parse().expect("the default parses");
        for argv in [
            &["echolab", "echo", "hello"][..],
            &["echolab", "ping"],
            &["echolab", "load"],
        ] {
            let cli = Cli::try_parse_from(argv).expect("parses");
            let addr = match cli.command {
                Command::Echo(args) => args.client.addr,
                Command::Ping(args) => args.client.addr,
                Command::Load(args) => args.client.addr,
                other => panic!("{argv:?} parsed as {other:?}"),
            };
            assert_eq!(addr, default, "{argv:?}");
        }
    }

    #[test]
    fn an_explicit_addr_still_wins() {
        let cli = Cli::try_parse_from(["echolab", "serve", "mio", "--addr", "127.0.0.1:0"])
            .expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve: {cli:?}");
        };
        assert_eq!(args.addr.port(), 0);
    }
}
