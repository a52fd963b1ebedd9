//! One model as a child process: `echolab serve MODEL --addr 127.0.0.1:0 --parent-pid
//! HARNESS`, its address read from the `listening on` line, stopped with SIGTERM and its
//! stats line read back.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use echolab_server::StatsLine;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::HarnessError;

/// How long a server gets to print its address, and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// A server dropped unstopped (an error or a panic in the harness) gets less.
const DROP_GRACE: Duration = Duration::from_secs(2);

/// A running server. Dropped without [`ServerProcess::stop`], it gets SIGTERM and then,
/// after a grace period, SIGKILL: SIGTERM first so a `fork` parent takes its children
/// down with it instead of leaving them orphaned.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

/// What the server said about itself when it stopped.
#[derive(Debug, Clone, Default)]
pub struct ServerExit {
    /// Exited with status 0 within the stop timeout.
    pub clean: bool,
    /// Its stats line (`None` if it printed none).
    pub stats: Option<StatsLine>,
}

impl ServerProcess {
    /// Starts `binary serve model --addr 127.0.0.1:0 extra_args...` and waits for its
    /// address. The server stops by itself if this process dies — or if the thread that
    /// started it exits first: the kernel's parent-death signal follows the thread.
    pub fn start(binary: &Path, model: &str, extra_args: &[String]) -> Result<Self, HarnessError> {
        let mut command = Command::new(binary);
        command
            .args(serve_args(model, "127.0.0.1:0"))
            .args(extra_args);
        Self::start_command(model, command)
    }

    /// Starts a prepared command that runs `echolab serve` (see [`serve_args`]) — at
    /// another address, or behind a wrapper that `exec`s it (`prlimit ... --`), so that
    /// the process started is the server — and waits for its `listening on` line.
    pub fn start_command(model: &str, mut command: Command) -> Result<Self, HarnessError> {
        let fail = |reason: String| HarnessError::ServerStart {
            model: model.to_string(),
            reason,
        };
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail(format!("{program}: {e}")))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("no stdout pipe".into()));
        };
        let lines = forward_lines(stdout);
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let first = server
            .lines
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| fail("it printed no `listening on` line".into()))?;
        server.addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| fail(format!("unexpected first line {first:?}")))?;
        Ok(server)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id (the root of its process tree).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit and the stats line (SIGKILL after the timeout).
    pub fn stop(mut self) -> ServerExit {
        let mut exit = ServerExit {
            clean: self.terminate(STOP_TIMEOUT),
            ..ServerExit::default()
        };
        // The reader thread sees EOF once the process is gone; take its last JSON line.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            if let Some(stats) = StatsLine::parse(&line) {
                exit.stats = Some(stats);
            }
        }
        exit
    }

    /// Sends `signal` to the server process (the root of its tree).
    pub fn signal(&self, signal: Signal) -> nix::Result<()> {
        kill(Pid::from_raw(self.child.id() as i32), signal)
    }

    /// Waits up to `limit` for the process to exit, polling; its status, or `None` if it
    /// is still running then.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return None,
            }
        }
    }

    /// The server's next line on stdout after `listening on` (its stats line, once it
    /// stops), if one comes within `limit`.
    pub fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// SIGTERM, up to `grace` for the exit, then SIGKILL; reaps the process either way.
    /// Whether it exited by itself with status 0.
    fn terminate(&mut self, grace: Duration) -> bool {
        let _ = self.signal(Signal::SIGTERM);
        if let Some(status) = self.wait_timeout(grace) {
            return status.success();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(DROP_GRACE);
        }
    }
}

/// The arguments of `echolab serve` as the harness runs a model: `serve MODEL --addr
/// ADDR --parent-pid HARNESS` (options may follow).
pub fn serve_args(model: &str, addr: &str) -> [String; 6] {
    [
        "serve".into(),
        model.into(),
        "--addr".into(),
        addr.into(),
        // A harness killed outright (not by Ctrl-C to its process group) must not leave
        // the server running.
        "--parent-pid".into(),
        std::process::id().to_string(),
    ]
}

/// Reads a child's stdout on a thread, line by line, so a silent server cannot block
/// whoever waits for its lines (with `recv_timeout`).
pub fn forward_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
