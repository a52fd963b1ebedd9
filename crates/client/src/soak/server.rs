//! The server under soak as a child process: `echolab serve MODEL --addr 127.0.0.1:0`
//! started by the caller's command, its `listening on ADDR` line read, SIGTERM at the
//! end and its JSON stats line collected; killed and reaped if dropped early, so a
//! failed soak never leaves a server behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use thiserror::Error;

/// What can go wrong running the server.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The command could not be started.
    #[error("cannot start the server")]
    Spawn(#[source] std::io::Error),
    /// No `listening on ADDR` line in time.
    #[error("the server printed no `listening on` line within {0:?}")]
    NoAddress(Duration),
    /// The first line was something else.
    #[error("unexpected first line from the server: {0:?}")]
    BadAddress(String),
    /// The server did not stop after SIGTERM.
    #[error("the server was still running {0:?} after SIGTERM")]
    NoExit(Duration),
    /// Signalling or waiting failed.
    #[error("cannot signal or wait for the server")]
    Wait(#[source] std::io::Error),
}

/// A running server child. Dropping it kills (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    lines: Receiver<String>,
}

/// How the server ended.
#[derive(Debug)]
pub struct ServerExit {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its last stdout line (the JSON stats), if it printed one.
    pub stats_line: Option<String>,
}

impl ServerProcess {
    /// Spawns `command` (stdout piped, stderr inherited) and waits up to `limit` for the
    /// `listening on ADDR` line.
    pub fn spawn(mut command: Command, limit: Duration) -> Result<ServerProcess, ServerError> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(ServerError::Spawn)?;
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let first = server
            .lines
            .recv_timeout(limit)
            .map_err(|_| ServerError::NoAddress(limit))?;
        server.addr = first
            .strip_prefix("listening on ")
            .and_then(|addr| addr.trim().parse().ok())
            .ok_or(ServerError::BadAddress(first))?;
        Ok(server)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit and the stats line.
    pub fn terminate(mut self, limit: Duration) -> Result<ServerExit, ServerError> {
        let pid = i32::try_from(self.child.id())
            .map_err(|_| ServerError::Wait(std::io::Error::other("pid out of range")))?;
        kill(Pid::from_raw(pid), Signal::SIGTERM)
            .map_err(|errno| ServerError::Wait(errno.into()))?;
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(ServerError::Wait)? {
                break status;
            }
            if Instant::now() >= deadline {
                return Err(ServerError::NoExit(limit));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF, which follows the exit.
        let stats_line = self.lines.recv_timeout(Duration::from_secs(2)).ok();
        Ok(ServerExit { status, stats_line })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already reaped after `terminate`: both calls then fail harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
