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
