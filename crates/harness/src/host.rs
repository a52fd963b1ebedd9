//! Another host, reached through a command prefix: `ssh user@b`, `ip netns exec ns`,
//! `docker exec ctr`, `kubectl exec pod --`. The harness starts `echolab` there by
//! running the prefix's words, then the `echolab` binary's path on that host, then the
//! subcommand — no daemon of its own; whatever the prefix runs forwards stdin and
//! stdout, which is all the harness needs (see [`crate::ServerProcess`]).

use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;

/// One host: how to run a command there, and where `echolab` is on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// The prefix as given (`ssh user@b`).
    pub prefix: String,
    /// The `echolab` binary on that host.
    pub bin: PathBuf,
}

impl Host {
    /// A host reached through `prefix` (split at whitespace; quoting is for the
    /// remote side's shell, as with `ssh`), with `echolab` at `bin` there.
    pub fn new(prefix: &str, bin: PathBuf) -> Host {
        Host {
            prefix: prefix.trim().to_string(),
            bin,
        }
    }

    /// `PREFIX... BIN args...`; an empty prefix runs `bin` here.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut words = self.prefix.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(&self.bin);
                command
            }
            None => Command::new(&self.bin),
        };
        command.args(args);
        command
    }
}

/// Where a run's server and load generators are, when not in this process's hands.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// The server's host (`None`: a child of this process, measured from `/proc`).
    pub server: Option<Host>,
    /// The load agents' hosts, one agent each (empty: the load runs in this process).
    pub clients: Vec<Host>,
    /// The address the server binds and the load connects to.
    pub server_ip: std::net::IpAddr,
}

impl Default for Hosts {
    fn default() -> Hosts {
        Hosts {
            server: None,
            clients: Vec::new(),
            server_ip: std::net::IpAddr::from([127, 0, 0, 1]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_comes_before_the_binary_and_its_arguments() {
        let host = Host::new(" ip netns exec el-a ", PathBuf::from("/usr/bin/echolab"));
        let command = host.command(&["machine", "--json"]);
        assert_eq!(command.get_program(), "ip");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            [
                "netns",
                "exec",
                "el-a",
                "/usr/bin/echolab",
                "machine",
                "--json"
            ]
        );
        let local = Host::new("", PathBuf::from("/bin/echolab")).command(&["models"]);
        assert_eq!(local.get_program(), "/bin/echolab");
    }
}
