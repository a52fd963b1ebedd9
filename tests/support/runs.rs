//! `echolab compare` end to end for a test: a results directory that goes away, and a
//! run bounded in time.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::KillOnDrop;

/// A results directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("echolab-runs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The names of the files of the one run written under it.
    pub fn run_files(&self) -> (PathBuf, Vec<String>) {
        let runs: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .expect("results dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        let mut files: Vec<String> = std::fs::read_dir(&runs[0])
            .expect("run dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        (runs[0].clone(), files)
    }

    /// The run's results.json.
    pub fn results(&self) -> (PathBuf, serde_json::Value) {
        let (dir, _) = self.run_files();
        let text = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
        let json = serde_json::from_str(&text).expect("results.json parses");
        (dir, json)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `WRAPPER... echolab compare ARGS... --out DIR` (the wrapper execs it: `ip netns
/// exec NS`, or nothing) and asserts that it succeeded within `limit`.
pub fn compare(wrapper: &[&str], out: &TempDir, args: &[&str], limit: Duration) {
    let binary = env!("CARGO_BIN_EXE_echolab");
    let mut command = Command::new(wrapper.first().copied().unwrap_or(binary));
    if !wrapper.is_empty() {
        command.args(&wrapper[1..]).arg(binary);
    }
    command
        .arg("compare")
        .args(args)
        .arg("--out")
        .arg(&out.0)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = command.spawn().expect("run echolab compare");
    let _guard = KillOnDrop(child.id());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "echolab compare {args:?} ran past {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "echolab compare {wrapper:?} {args:?}: {status}"
    );
}
