//! One model as a child process: `echolab serve MODEL --addr 127.0.0.1:0 --parent-pid
//! HARNESS`, its address read from the `listening on` line, asked for snapshots of
//! itself on its stdin, stopped with SIGTERM and its stats line read back. Everything
//! crosses a pipe, so a server started through `ssh` or `ip netns exec` looks the same.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use echolab_server::{Snapshot, StatsLine};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::HarnessError;
use crate::host::Host;

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
    snapshots: Snapshots,
    /// Started through a command prefix: stopped by closing its stdin (`--stop-on-eof`),
    /// which reaches it through `ssh` where a signal to the local process would not.
    through_prefix: bool,
}

/// How long a server gets to answer a `snapshot` request.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The way to ask a running server for a [`Snapshot`] of itself: its stdin, and its
/// stdout's snapshot lines. Cloned into a sampler thread.
#[derive(Debug, Clone)]
pub struct Snapshots {
    pipe: Arc<Mutex<SnapshotPipe>>,
}

#[derive(Debug)]
struct SnapshotPipe {
    /// `None` once closed (to stop a server started with `--stop-on-eof`).
    stdin: Option<ChildStdin>,
    answers: mpsc::Receiver<Snapshot>,
}

impl Snapshots {
    /// Asks for a snapshot and waits up to `limit` for it.
    pub fn take(&self, limit: Duration) -> Result<Snapshot, HarnessError> {
        let mut pipe = self.lock();
        // The late answer to an earlier request that timed out is not this one's.
        while pipe.answers.try_recv().is_ok() {}
        pipe.ask()?;
        pipe.answer(limit)
    }

    /// Asks for a snapshot without waiting for it: with [`Snapshots::answer`], how a
    /// test keeps a request waiting in the server's stdin while it answers another.
    /// Answers come in the order asked.
    pub fn ask(&self) -> Result<(), HarnessError> {
        self.lock().ask()
    }

    /// The next answer to a request made with [`Snapshots::ask`], within `limit`.
    pub fn answer(&self, limit: Duration) -> Result<Snapshot, HarnessError> {
        self.lock().answer(limit)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SnapshotPipe> {
        // A poisoned lock only means another asker panicked; the pipe is still whole.
        self.pipe.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes the server's stdin.
    fn close(&self) {
        self.lock().stdin = None;
    }
}

impl SnapshotPipe {
    fn ask(&mut self) -> Result<(), HarnessError> {
        let asked = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "snapshot").and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("its stdin is closed")),
        };
        asked.map_err(|e| HarnessError::Snapshot(format!("cannot ask the server: {e}")))
    }

    fn answer(&self, limit: Duration) -> Result<Snapshot, HarnessError> {
        self.answers.recv_timeout(limit).map_err(|e| {
            HarnessError::Snapshot(match e {
                mpsc::RecvTimeoutError::Timeout => format!("no answer within {limit:?}"),
                mpsc::RecvTimeoutError::Disconnected => "the server's output ended".into(),
            })
        })
    }
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
    ///
    /// Its stdin is `/dev/null`: a local server is measured from `/proc`, and with no
    /// requests to read, a model that does not fork runs no reader thread (its thread
    /// count stays its model's own).
    pub fn start(binary: &Path, model: &str, extra_args: &[String]) -> Result<Self, HarnessError> {
        let mut command = Command::new(binary);
        command
            .args(serve_args(model, "127.0.0.1:0"))
            .args(extra_args);
        Self::spawn(model, command, Stdio::null())
    }

    /// Starts `echolab serve model --addr addr --stop-on-eof extra_args...` on `host`,
    /// through its command prefix, and waits for its address. It is stopped by closing
    /// its stdin, so it also stops if this process or the connection to the host dies.
    pub fn start_on(
        host: &Host,
        model: &str,
        addr: &str,
        extra_args: &[String],
    ) -> Result<Self, HarnessError> {
        let mut args: Vec<String> = vec![
            "serve".into(),
            model.into(),
            "--addr".into(),
            addr.into(),
            "--stop-on-eof".into(),
            "--snapshots".into(),
        ];
        args.extend_from_slice(extra_args);
        let mut server = Self::spawn(model, host.command(&args), Stdio::piped())?;
        server.through_prefix = true;
        Ok(server)
    }

    /// Starts a prepared command that runs `echolab serve` (see [`serve_args`]) — at
    /// another address, or behind a wrapper that `exec`s it (`prlimit ... --`), so that
    /// the process started is the server — and waits for its `listening on` line. Its
    /// stdin is a pipe, for [`ServerProcess::snapshots`].
    pub fn start_command(model: &str, command: Command) -> Result<Self, HarnessError> {
        Self::spawn(model, command, Stdio::piped())
    }

    fn spawn(model: &str, mut command: Command, stdin: Stdio) -> Result<Self, HarnessError> {
        let fail = |reason: String| HarnessError::ServerStart {
            model: model.to_string(),
            reason,
        };
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| fail(format!("{program}: {e}")))?;
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("no stdout pipe".into()));
        };
        let (lines, answers) = split_lines(stdout);
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
            snapshots: Snapshots {
                pipe: Arc::new(Mutex::new(SnapshotPipe { stdin, answers })),
            },
            through_prefix: false,
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

    /// The way to ask it for snapshots of itself.
    pub fn snapshots(&self) -> Snapshots {
        self.snapshots.clone()
    }

    /// Its process id (the root of its process tree).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (through a prefix: its stdin closed), then waits for the exit and the
    /// stats line (SIGKILL after the timeout).
    pub fn stop(mut self) -> ServerExit {
        let clean = if self.through_prefix {
            self.snapshots.close();
            match self.wait_timeout(STOP_TIMEOUT) {
                Some(status) => status.success(),
                None => {
                    self.terminate(DROP_GRACE);
                    false
                }
            }
        } else {
            self.terminate(STOP_TIMEOUT)
        };
        let mut exit = ServerExit {
            clean,
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
        if self.through_prefix {
            self.snapshots.close();
        }
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

/// Reads a server's stdout on a thread, like [`forward_lines`], with its snapshot lines
/// sent apart: a sampler asking for one must not take the stats line, nor a test its
/// snapshot.
fn split_lines(stdout: ChildStdout) -> (mpsc::Receiver<String>, mpsc::Receiver<Snapshot>) {
    let (line_tx, lines) = mpsc::channel();
    let (snapshot_tx, snapshots) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match Snapshot::parse(&line) {
                // Nobody asking for snapshots any more is no reason to stop reading.
                Some(snapshot) => {
                    let _ = snapshot_tx.send(snapshot);
                }
                None => {
                    if line_tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    (lines, snapshots)
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
