//! `echolab compare` end to end through the real binary: the models run as child
//! servers, the result files appear with the numbers the run measured, and what the
//! models really do shows in them (an iterative server starves concurrent clients and
//! cannot serve an idle crowd; the readiness loop serves everyone).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A results directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "echolab-compare-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `echolab compare ARGS`, killed if it outlives `limit`.
fn compare(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echolab"))
        .arg("compare")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run echolab compare");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("echolab compare ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn only_run_dir(root: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("read results dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().expect("one dir")
}

fn csv_rows(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("results.csv")).expect("results.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("csv header").split(',').collect();
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{line}");
            header
                .iter()
                .zip(fields)
                .map(|(h, f)| (h.to_string(), f.to_string()))
                .collect()
        })
        .collect()
}

fn num(row: &std::collections::HashMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key}={:?}", row[key]))
}

#[test]
fn throughput_and_idle_write_every_file_with_measured_numbers() {
    let out = TempDir::new("files");
    let output = compare(
        &[
            "--models",
            "mio,iterative",
            "--scenario",
            "throughput,idle",
            "--repeat",
            "1",
            "--duration",
            "0.4",
            "--warmup",
            "0.1",
            "--out",
            out.0.to_str().unwrap(),
        ],
        Duration::from_secs(180),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stderr: {stderr}\nstdout: {stdout}"
    );
    assert!(
        stdout.contains("throughput") && stdout.contains("idle"),
        "{stdout}"
    );

    let dir = only_run_dir(&out.0);
    let rows = csv_rows(&dir);
    // 6 throughput cells + 1 idle cell, for each of the two models, one repeat.
    assert_eq!(rows.len(), 14, "{rows:?}");
    for row in &rows {
        assert_eq!(row["server_exit_clean"], "true", "{row:?}");
        assert!(num(row, "peak_rss_kb") > 0.0, "{row:?}");
        assert!(num(row, "voluntary_ctx_switches") > 0.0, "{row:?}");
    }
    let find = |model: &str, scenario: &str, conns: &str, size: &str| {
        rows.iter()
            .find(|r| {
                r["model"] == model
                    && r["scenario"] == scenario
                    && r["conns"] == conns
                    && r["size"] == size
            })
            .unwrap_or_else(|| panic!("no row {model} {scenario} {conns}x{size}"))
    };
    // Every mio cell served every connection and cost the server measurable CPU.
    for row in rows.iter().filter(|r| r["model"] == "mio") {
        assert!(num(row, "responses") > 0.0, "{row:?}");
        assert!(num(row, "min_per_conn") > 0.0, "{row:?}");
        assert!(num(row, "server_cpu_secs") > 0.0, "{row:?}");
        assert!(num(row, "jain") > 0.8, "{row:?}");
    }
    // iterative serves one client at a time: at 10 connections nine starve.
    let starved = find("iterative", "throughput", "10", "64");
    assert_eq!(num(starved, "min_per_conn"), 0.0, "{starved:?}");
    assert!(num(starved, "jain") < 0.2, "{starved:?}");
    // The idle crowd: mio holds all 1,000 and answers the active client; iterative is
    // stuck in read() on the first idle client and answers nobody.
    let mio_idle = find("mio", "idle", "1", "64");
    assert_eq!(num(mio_idle, "idle_held"), 1000.0, "{mio_idle:?}");
    assert!(num(mio_idle, "memory_per_conn_kb") > 0.0, "{mio_idle:?}");
    let iterative_idle = find("iterative", "idle", "1", "64");
    assert_eq!(num(iterative_idle, "idle_held"), 1.0, "{iterative_idle:?}");
    assert_eq!(num(iterative_idle, "responses"), 0.0, "{iterative_idle:?}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["measurements"].as_array().unwrap().len(), 14);
    assert_eq!(json["summaries"].as_array().unwrap().len(), 14);
    for key in ["cpu", "cores", "kernel", "rustc", "commit", "command"] {
        assert!(!json["machine"][key].is_null(), "machine.{key}");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("compare --models mio,iterative"),
        "{readme}"
    );
    assert!(readme.contains("| mio | throughput 100x4096 |"), "{readme}");
    for chart in [
        "throughput-64B.svg",
        "p99-4096B.svg",
        "cpu-per-response-64B.svg",
        "memory-per-connection.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("mio"), "{chart}");
        assert!(
            readme.contains(&format!("]({chart})")),
            "{chart} not linked"
        );
    }
    let index = std::fs::read_to_string(out.0.join("README.md")).unwrap();
    let name = dir.file_name().unwrap().to_str().unwrap();
    assert!(index.contains(&format!("]({name}/README.md)")), "{index}");
}

#[test]
fn bad_arguments_are_one_clear_line() {
    let cases: [(&[&str], &str); 3] = [
        (&["--models", "mio,nginx"], "unknown model `nginx`"),
        (&["--scenario", "fast"], "unknown scenario `fast`"),
        (&["--repeat", "0"], "--repeat must be at least 1"),
    ];
    for (args, expected) in cases {
        let output = compare(args, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
