//! Hosts in network namespaces for a test: the set that `scripts/netns.sh up` makes (a
//! server namespace, two client namespaces, a bridge between them), removed when the
//! guard drops, so a failing test leaves no namespace, veth or sshd behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The script that makes and removes the namespaces.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/netns.sh")
}

/// One set of namespaces, up until dropped.
pub struct Netns {
    /// The set's name: its namespaces are `NAME-srv`, `NAME-c1`, `NAME-c2`, `NAME-sw`.
    pub name: String,
    /// Where the harness runs (the first client host, the agents' CPU).
    pub harness: String,
    /// `--server-host` through `ip netns exec`.
    pub server: String,
    /// `--client-host` for each of the two agents.
    pub clients: [String; 2],
    /// The server host's address.
    pub server_addr: String,
    /// `--server-host` through a real ssh into the server namespace (`up --ssh`).
    pub ssh: Option<String>,
}

impl Netns {
    /// `scripts/netns.sh up --name elt<pid>-TAG EXTRA...`; panics with the script's
    /// stderr when it fails (it removes what it made).
    pub fn up(tag: &str, extra: &[&str]) -> Netns {
        let name = format!("elt{}-{tag}", std::process::id());
        let output = netns_sh("up", &name, extra);
        assert!(
            output.status.success(),
            "scripts/netns.sh up {extra:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let vars = String::from_utf8_lossy(&output.stdout).into_owned();
        let var = |key: &str| {
            vars.lines()
                .filter_map(|line| line.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim_matches('\'').to_string())
        };
        let need = |key: &str| var(key).unwrap_or_else(|| panic!("netns.sh up: no {key}: {vars}"));
        Netns {
            harness: need("NETNS_HARNESS"),
            server: need("NETNS_SERVER"),
            clients: [need("NETNS_CLIENT1"), need("NETNS_CLIENT2")],
            server_addr: need("NETNS_SERVER_ADDR"),
            ssh: var("NETNS_SSH"),
            name,
        }
    }

    /// The set's namespace for `host` (`srv`, `c1`, `c2`, `sw`).
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    /// A command run through `prefix` (one of this set's, split at whitespace as the
    /// harness splits it).
    pub fn command(prefix: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut words = prefix.split_whitespace();
        let mut command = Command::new(words.next().expect("a non-empty prefix"));
        command.args(words).arg(program);
        command
    }

    /// The processes in one of the set's namespaces.
    pub fn pids(&self, host: &str) -> Vec<u32> {
        let output = Command::new("ip")
            .args(["netns", "pids", &self.ns(host)])
            .output()
            .expect("run ip netns pids");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let output = netns_sh("down", &self.name, &[]);
        if !output.status.success() {
            eprintln!(
                "scripts/netns.sh down --name {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// Runs `scripts/netns.sh ACTION --name NAME EXTRA...`.
pub fn netns_sh(action: &str, name: &str, extra: &[&str]) -> Output {
    Command::new(script())
        .args([action, "--name", name])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/netns.sh")
}

/// Whether the namespace exists (`ip netns` keeps a file per name).
pub fn exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Whether this process runs as root (its effective uid, the second `Uid:` field).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What the namespaced tests need: root, iproute2 and taskset, a named network
/// namespace made and removed (as the script makes them), and two CPUs (server on CPU
/// 1, agents on CPU 0).
pub fn available() -> Result<(), String> {
    if !is_root() {
        return Err("needs root (network namespaces)".into());
    }
    for program in ["ip", "tc", "taskset"] {
        if !has(program) {
            return Err(format!("needs {program}"));
        }
    }
    if !in_a_probe_namespace("true") {
        return Err("needs network namespaces (`ip netns add` fails here)".into());
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return Err("needs 2 CPUs (server on CPU 1, agents on CPU 0)".into());
    }
    Ok(())
}

/// As [`available`], and tc's `tbf` qdisc (`--link-rate`).
pub fn tbf_available() -> Result<(), String> {
    available()?;
    let tbf = "tc qdisc add dev lo root tbf rate 1mbit burst 32kb latency 10ms";
    if !in_a_probe_namespace(tbf) {
        return Err("needs tc's tbf qdisc".into());
    }
    Ok(())
}

/// Whether `shell` succeeds in a namespace of its own, made for it and removed after.
fn in_a_probe_namespace(shell: &str) -> bool {
    let ns = format!("elt{}-probe", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &ns])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        return false;
    }
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns, "sh", "-c", shell])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    ok
}

/// As [`available`], and Debian's openssh-server and client.
pub fn ssh_available() -> Result<(), String> {
    available()?;
    if !Path::new("/usr/sbin/sshd").exists() {
        return Err("needs openssh-server (/usr/sbin/sshd)".into());
    }
    for program in ["ssh", "ssh-keygen"] {
        if !has(program) {
            return Err(format!("needs {program}"));
        }
    }
    Ok(())
}
