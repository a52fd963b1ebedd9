//! `echolab compare` end to end through the real binary: the models run as child
//! servers, the result files appear with the numbers the run measured, and what the
//! models really do shows in them (a server that serves clients in turn starves
//! concurrent clients and cannot serve an idle crowd; a readiness loop serves everyone).
//! The two models are chosen from the registry by those properties.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use echolab_registry::{Model, Runs, MODELS};

/// The first registered stream model that `matches` (the scenarios these tests read are
/// the TCP ones).
fn model_where(what: &str, matches: impl Fn(&Model) -> bool) -> &'static str {
    MODELS
        .iter()
        .find(|m| m.is_stream() && matches(m))
        .unwrap_or_else(|| panic!("no registered model {what}"))
        .name
}

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
    // One event loop with no connection limit of its own holds an idle crowd of 1,000.
    // It must also sleep when idle: the rows are checked for voluntary context switches.
    let event_loop = model_where("on one event loop without a limit", |m| {
        m.runs == Runs::EventLoop && m.natural_limit.is_none() && !m.busy_waits
    });
    let in_turn = model_where("serving in turn", |m| m.runs == Runs::InTurn);
    let models = format!("{event_loop},{in_turn}");
    let out = TempDir::new("files");
    let output = compare(
        &[
            "--models",
            &models,
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
    // Every cell of the event loop served every connection and cost the server
    // measurable CPU.
    for row in rows.iter().filter(|r| r["model"] == event_loop) {
        assert!(num(row, "responses") > 0.0, "{row:?}");
        assert!(num(row, "min_per_conn") > 0.0, "{row:?}");
        assert!(num(row, "server_cpu_secs") > 0.0, "{row:?}");
        assert!(num(row, "jain") > 0.8, "{row:?}");
    }
    // The model that serves in turn serves one client at a time: at 10 connections
    // nine starve.
    let starved = find(in_turn, "throughput", "10", "64");
    assert_eq!(num(starved, "min_per_conn"), 0.0, "{starved:?}");
    assert!(num(starved, "jain") < 0.2, "{starved:?}");
    // The nine waited the whole 0.4 s window: their waits are censored samples, and the
    // p99 says what a client of that server waits, about the window, not the one served
    // client's round trip. The starved model is not the fastest on the p99 chart.
    assert!(num(starved, "censored_waits") >= 9.0, "{starved:?}");
    assert!(
        num(starved, "censored_samples") * 2.0 > num(starved, "latency_samples"),
        "{starved:?}"
    );
    assert!(num(starved, "p99_us") > 300_000.0, "{starved:?}");
    let served = find(event_loop, "throughput", "10", "64");
    assert!(
        num(served, "p99_us") * 10.0 < num(starved, "p99_us"),
        "{served:?}\n{starved:?}"
    );
    // The idle crowd: the event loop holds all 1,000 and answers the active client; the
    // model that serves in turn is stuck in read() on the first idle client and answers
    // nobody.
    let loop_idle = find(event_loop, "idle", "1", "64");
    assert_eq!(num(loop_idle, "idle_held"), 1000.0, "{loop_idle:?}");
    assert!(num(loop_idle, "memory_per_conn_kb") > 0.0, "{loop_idle:?}");
    let in_turn_idle = find(in_turn, "idle", "1", "64");
    assert_eq!(num(in_turn_idle, "idle_held"), 1.0, "{in_turn_idle:?}");
    assert_eq!(num(in_turn_idle, "responses"), 0.0, "{in_turn_idle:?}");
    // That cell measured nothing, and says so in every file rather than as a figure.
    assert_eq!(in_turn_idle["failure"], "no replies", "{in_turn_idle:?}");
    assert!(rows
        .iter()
        .filter(|r| r["model"] == event_loop)
        .all(|r| r["failure"].is_empty()));

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["measurements"].as_array().unwrap().len(), 14);
    assert_eq!(json["summaries"].as_array().unwrap().len(), 14);
    for key in ["cpu", "cores", "kernel", "rustc", "commit", "command"] {
        assert!(!json["machine"][key].is_null(), "machine.{key}");
    }
    // The kernel's floor per response was measured for each message size of the plan,
    // and every row was judged against it and against the generator's CPU.
    let sizes: Vec<u64> = json["kernel_floor"]
        .as_array()
        .expect("kernel_floor")
        .iter()
        .map(|f| {
            assert!(f["cpu_us_per_response"].as_f64() > Some(0.0), "{f}");
            f["size"].as_u64().expect("size")
        })
        .collect();
    assert_eq!(sizes, [64, 4096]);
    for row in &rows {
        assert!(num(row, "client_cpu_limit_secs") > 0.0, "{row:?}");
    }
    let idle_summary = json["summaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["model"] == in_turn && s["cell"]["scenario"] == "idle")
        .expect("the idle summary");
    assert_eq!(idle_summary["failed_runs"], 1, "{idle_summary}");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("compare --models {models}")),
        "{readme}"
    );
    assert!(
        readme.contains(&format!(
            "| {in_turn} | idle 1000+1x64 | measured nothing |"
        )),
        "{readme}"
    );
    assert!(
        readme.contains("## The kernel's floor per response"),
        "{readme}"
    );
    assert!(
        readme.contains("## Marked cells") && readme.contains("cell is measured nothing**"),
        "{readme}"
    );
    assert!(
        readme.contains(&format!("| {event_loop} | throughput 100x4096 |")),
        "{readme}"
    );
    for chart in [
        "throughput-64B.svg",
        "p99-4096B.svg",
        "cpu-per-response-64B.svg",
        "memory-per-connection.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains(event_loop),
            "{chart}"
        );
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
fn a_run_that_measured_nothing_fails_in_one_line() {
    // The model that serves in turn is stuck in read() on the first idle client: the one
    // active client never gets a reply. A run of only that cell measured nothing; it
    // fails, and writes no results that could be read as figures.
    let in_turn = model_where("serving in turn", |m| m.runs == Runs::InTurn);
    let out = TempDir::new("nothing");
    let output = compare(
        &[
            "--models",
            in_turn,
            "--scenario",
            "idle",
            "--repeat",
            "1",
            "--duration",
            "0.2",
            "--warmup",
            "0.1",
            "--out",
            out.0.to_str().unwrap(),
        ],
        Duration::from_secs(90),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("the run measured nothing: none of its 1 runs got a reply")
            && last.contains(&format!("{in_turn} idle 1000+1x64: no replies")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let written = std::fs::read_dir(&out.0).expect("out dir").count();
    assert_eq!(
        written, 0,
        "results written for a run that measured nothing"
    );
}

#[test]
fn bad_arguments_are_one_clear_line() {
    // A registered model beside one that is not.
    let models = format!("{},nginx", MODELS[0].name);
    let cases: [(&[&str], &str); 3] = [
        (&["--models", &models], "unknown model `nginx`"),
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

#[test]
fn a_committed_run_diffed_with_itself_is_within_noise_and_other_plans_are_refused() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let run = root.join("2026-11-30-vm");
    let run = run.to_str().expect("utf-8 path");
    let output = compare(&["--diff", run, run], Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("| mio | latency 1x64 | 1.00x within noise"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("WORSE") && !stdout.contains("BETTER"),
        "{stdout}"
    );

    let udp = root.join("2026-11-30-vm-udp");
    let output = compare(
        &["--diff", run, udp.to_str().expect("utf-8 path")],
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{output:?}");
    assert!(
        stderr.contains("plans differ in `cells` (5 cells vs 6 cells)"),
        "{stderr}"
    );
}

#[test]
fn udp_scenario_runs_the_datagram_models_and_charts_loss_against_rate() {
    let datagram = model_where_datagram();
    let stream = model_where("of any kind", |_| true);
    let out = TempDir::new("udp");
    let output = compare(
        &[
            "--models",
            &format!("{datagram},{stream}"),
            "--scenario",
            "udp",
            "--repeat",
            "1",
            "--duration",
            "0.3",
            "--warmup",
            "0.1",
            "--out",
            out.0.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    // Not a terminal: no progress bar, so a line per cell says where the run is.
    assert!(
        stderr.contains("run 1/6: udp 4x64 @ 25.0k/s (repeat 1/1)"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("run 6/6: udp 4x1400 @ 100k/s"),
        "stderr: {stderr}"
    );
    let dir = only_run_dir(&out.0);
    let rows = csv_rows(&dir);
    // 2 sizes x 3 rates, the datagram model only: a stream model has no udp cell.
    assert_eq!(rows.len(), 6, "{rows:?}");
    for row in &rows {
        assert_eq!(row["model"], datagram, "{row:?}");
        assert_eq!(row["scenario"], "udp", "{row:?}");
        assert!(num(row, "offered_rate") > 0.0, "{row:?}");
        assert!(num(row, "sent") > 0.0, "{row:?}");
        // The generator's own CPU, recorded for udp cells as for every other.
        assert!(num(row, "client_cpu_secs") > 0.0, "{row:?}");
        let loss = num(row, "loss_pct");
        assert!((0.0..=100.0).contains(&loss), "{row:?}");
        // What the loss is to be read against: both ends' receive buffers and drops.
        assert!(num(row, "server_rcvbuf_bytes") > 0.0, "{row:?}");
        assert!(num(row, "client_rcvbuf_bytes") > 0.0, "{row:?}");
        assert!(num(row, "client_socket_drops") >= 0.0, "{row:?}");
        assert_eq!(row["server_exit_clean"], "true", "{row:?}");
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("| loss % |"), "{readme}");
    for chart in ["udp-64B.svg", "udp-1400B.svg"] {
        let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains(datagram), "{chart}");
        assert!(
            readme.contains(&format!("]({chart})")),
            "{chart} not linked"
        );
    }
    // A stream model alone has nothing to run in the udp scenario: one clear line.
    let output = compare(
        &["--models", stream, "--scenario", "udp", "--no-write"],
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("nothing to run"), "{stderr}");
}

#[test]
fn the_committed_udp_run_diffs_cell_by_cell_rates_kept_apart() {
    let run = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/2026-11-30-vm-udp");
    let run = run.to_str().expect("utf-8 path");
    let output = compare(&["--diff", run, run], Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    // 4 models x 2 sizes x 3 rates: a cell's rate is part of what it is.
    let rows = stdout.lines().filter(|l| l.starts_with("| udp-")).count();
    assert_eq!(rows, 24, "{stdout}");
    assert!(
        stdout.contains("| udp-iterative | udp 4x64 @ 25.0k/s | 1.00x within noise"),
        "{stdout}"
    );
}

/// The first registered datagram (UDP) model.
fn model_where_datagram() -> &'static str {
    MODELS
        .iter()
        .find(|m| !m.is_stream())
        .expect("a registered datagram model")
        .name
}
