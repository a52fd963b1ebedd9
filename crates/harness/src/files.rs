//! A run on disk: `results/<date>-<host>/` with `results.csv` (one row per run),
//! `results.json` (everything), `README.md` (the tables and the machine) and the SVG
//! charts; `results/README.md` points at the latest run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cell::Measurement;
use crate::columns::{csv_columns, COLUMNS};
use crate::error::HarnessError;
use crate::floor::Floor;
use crate::floor_cost::FloorCost;
use crate::machine::Machine;
use crate::marked::marked_cells;
use crate::scenario::{Plan, Scenario};
use crate::summary::Summary;
use crate::topology::Topology;
use crate::{charts, table};

/// Everything one `echolab compare` produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResults {
    /// Where it ran.
    pub machine: Machine,
    /// What it ran.
    pub plan: Plan,
    /// Every run of every cell.
    pub measurements: Vec<Measurement>,
    /// Repeats folded.
    pub summaries: Vec<Summary>,
    /// The machine's loopback floor, measured before the run.
    pub floor: Option<Floor>,
    /// The kernel's floor CPU cost per response for each message of the plan, measured
    /// before the run: the guard behind the `suspect` mark.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kernel_floor: Vec<FloorCost>,
    /// Where the server and the load ran, when not all here (`--server-host`,
    /// `--client-host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology: Option<Topology>,
}

/// Writes the run under `results_root/<date>-<host>/` and updates
/// `results_root/README.md`; returns the run's directory.
pub fn write_run(results_root: &Path, run: &RunResults) -> Result<PathBuf, HarnessError> {
    let dir = results_root.join(run.dir_name());
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::write(&dir, e))?;
    write(&dir.join("results.csv"), &csv(&run.measurements))?;
    let json = serde_json::to_string_pretty(run).map_err(|e| HarnessError::write(&dir, e))?;
    write(&dir.join("results.json"), &(json + "\n"))?;
    let charts = charts::write_all(&dir, &run.summaries, run.machine.cores)?;
    write(&dir.join("README.md"), &run_readme(run, &charts))?;
    write(
        &results_root.join("README.md"),
        &index_readme(run, results_root, &run_dirs(results_root)),
    )?;
    Ok(dir)
}

/// Draws a committed run's charts again from its `results.json` (after the charts
/// changed), leaving its numbers as they are; returns the files written.
pub fn redraw_charts(dir: &Path) -> Result<Vec<PathBuf>, HarnessError> {
    let path = dir.join("results.json");
    let text = std::fs::read_to_string(&path).map_err(HarnessError::read(&path))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(HarnessError::not_results(&path))?;
    let summaries: Vec<Summary> = serde_json::from_value(json["summaries"].clone())
        .map_err(HarnessError::not_results(&path))?;
    // A run from before the machine was recorded: the 2-CPU VM of the first runs.
    let cpus = json["machine"]["cores"].as_u64().map_or(2, |n| n as usize);
    charts::write_all(dir, &summaries, cpus)
}

impl RunResults {
    /// `<date>-<host>`, with `-full` for the whole matrix so that a day's default run and
    /// full run on one machine do not overwrite each other.
    pub fn dir_name(&self) -> String {
        let base = self.machine.run_name();
        if self.plan.full {
            format!("{base}-full")
        } else {
            base
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), HarnessError> {
    std::fs::write(path, text).map_err(|e| HarnessError::write(path, e))
}

/// One row per run; optional figures are empty cells. No field can hold a comma except
/// `errors`, which is written `kind=n;kind=n`.
pub fn csv(measurements: &[Measurement]) -> String {
    let header: Vec<&str> = csv_columns().map(|c| c.header).collect();
    let mut out = header.join(",") + "\n";
    for m in measurements {
        let cells: Vec<String> = csv_columns().map(|c| (c.show)(m)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn run_readme(run: &RunResults, charts: &[PathBuf]) -> String {
    let m = &run.machine;
    let p = &run.plan;
    let mut out = format!("# echolab compare, {}\n\n", m.started);
    let _ = writeln!(
        out,
        "- machine: {} ({} logical CPUs, {} MiB), host `{}`",
        m.cpu, m.cores, m.memory_mib, m.host
    );
    let _ = writeln!(out, "- kernel {}, {}", m.kernel, m.rustc);
    let _ = writeln!(out, "- commit `{}`", m.commit);
    let _ = writeln!(out, "- command: `{}`", m.command);
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min): {} at the start, {} at the end{}",
        m.load_average_start,
        m.load_average_end.as_deref().unwrap_or("unknown"),
        m.finished
            .as_deref()
            .map(|end| format!(" ({end})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "- plan: {} models x {} cells x {} repeats, {:.1} s measured after {:.1} s warm-up per run{}\n",
        p.models_run(),
        p.cells.len(),
        p.repeat,
        p.duration.as_secs_f64(),
        p.warmup.as_secs_f64(),
        if p.full { " (full matrix)" } else { "" }
    );
    out.push_str(&floor_section(run));
    if let Some(topology) = &run.topology {
        out.push_str(&topology.section());
    }
    out.push_str(&kernel_floor_section(&run.kernel_floor));
    out.push_str(&marks_section(&run.summaries));
    out.push_str(
        "Each figure is the median over the repeats (min–max in brackets for throughput). The \
         client and the server share the machine's cores, so raw throughput partly measures the \
         scheduler; **responses per server CPU-second** (the server's own user+system time, whole \
         process tree, inside the measured window) separates the models where throughput cannot. \
         Files: `results.csv` (one row per run), `results.json` (everything, with the plan and the \
         machine).\n",
    );
    let mut tables = Vec::new();
    for scenario in Scenario::ALL {
        let rows = table::rows(&run.summaries, scenario);
        if rows.is_empty() {
            continue;
        }
        let _ = write!(out, "\n## {scenario}\n\n");
        out.push_str(&table::markdown(&table::headers(scenario), &rows));
        tables.push(scenario);
    }
    let work = crate::work_table::rows(&run.summaries);
    if !work.is_empty() {
        out.push_str("\n## work: the headline\n\n");
        let headers = crate::work_table::headers();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        out.push_str(&table::markdown(&headers, &work));
        out.push('\n');
        out.push_str(&crate::work_table::legend());
    }
    out.push_str(&legend(&tables));
    if !charts.is_empty() {
        out.push_str("\n## Charts\n\n");
        for chart in charts {
            if let Some(name) = chart.file_name().and_then(|n| n.to_str()) {
                let _ = writeln!(out, "![{name}]({name})\n");
            }
        }
    }
    out
}

/// How to read each column, off the same list that wrote them: the columns of the
/// `tables` written first, then what else `results.csv` has.
fn legend(tables: &[Scenario]) -> String {
    let mut out = String::from(
        "\n## How to read the columns\n\nThe tables' headings, with the `results.csv` column \
         in brackets where there is one:\n\n",
    );
    let mut csv_only = String::new();
    for column in COLUMNS {
        match (column.table, column.csv) {
            (Some(table), csv) if tables.iter().any(|s| table.is_in(*s)) => {
                let csv = csv.map_or(String::new(), |c| format!(" (`{}`)", c.header));
                let _ = writeln!(out, "- **{}**{csv}: {}", table.heading, column.about);
            }
            (_, Some(csv)) => {
                let _ = writeln!(csv_only, "- `{}`: {}", csv.header, column.about);
            }
            (_, None) => {}
        }
    }
    out + "\n`results.csv`, one row per run, also has:\n\n" + &csv_only
}

/// The run directories under `root` (those with a README), newest name first.
fn run_dirs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map(|dir| {
            dir.flatten()
                .filter(|e| e.path().join("README.md").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable_by(|a, b| b.cmp(a));
    names
}

/// The floor, and each model's one-connection latency as a multiple of it: the one
/// latency figure that may be set beside another machine's.
fn floor_section(run: &RunResults) -> String {
    let Some(floor) = run.floor else {
        return String::new();
    };
    let mut out = String::from(
        "## The machine's floor\n\nA trivial blocking echo pinged over loopback, 64 B, before the \
         run: what a round trip costs on this machine before any model adds to it.\n\n",
    );
    let _ = writeln!(
        out,
        "- same CPU: p50 {:.1} µs, p99 {:.1} µs",
        floor.same_cpu.p50_us, floor.same_cpu.p99_us
    );
    if let Some(cross) = floor.cross_cpu {
        let _ = writeln!(
            out,
            "- across CPUs: p50 {:.1} µs, p99 {:.1} µs",
            cross.p50_us, cross.p99_us
        );
    }
    let _ = writeln!(
        out,
        "- placement of this run: `--pin {}`\n",
        run.plan.pin.name()
    );
    let base = floor.cross_cpu.unwrap_or(floor.same_cpu).p50_us;
    let latency: Vec<&Summary> = run
        .summaries
        .iter()
        .filter(|s| s.cell.scenario == Scenario::Latency && s.responses_per_sec.max > 0.0)
        .collect();
    if !latency.is_empty() && base > 0.0 {
        out.push_str(
            "One connection's p50 (the latency cell) as a multiple of the cross-CPU floor \
             (same-CPU on a one-CPU machine):\n\n| model | p50 µs | × floor |\n|---|---:|---:|\n",
        );
        for s in latency {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.2} |",
                s.model,
                s.p50_us.median,
                s.p50_us.median / base
            );
        }
        out.push('\n');
    }
    out
}

/// The kernel's floor per response for each message of the plan.
fn kernel_floor_section(floors: &[FloorCost]) -> String {
    if floors.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "## The kernel's floor per response\n\nThe CPU of one `recv` and one `send` of each \
         message size over a loopback pair, measured in one thread before the run (no \
         wake-up, no poller: the least any server can spend per response). A cell whose \
         server CPU per response is below half of it is marked measurement suspect.\n\n\
         | transport | size | CPU µs per response | rounds |\n|---|---:|---:|---:|\n",
    );
    for f in floors {
        let transport = if f.datagram { "UDP" } else { "TCP" };
        let _ = writeln!(
            out,
            "| {transport} | {} B | {:.2} | {} |",
            f.size, f.cpu_us_per_response, f.rounds
        );
    }
    out + "\n"
}

/// How many cells are marked, why, and which.
fn marks_section(summaries: &[Summary]) -> String {
    let marked = marked_cells(summaries);
    let cells = summaries.len();
    if marked.is_empty() {
        return format!(
            "## Marked cells\n\nNone of the {cells} cells is marked: no client-bound cell, no \
             figure below the kernel's floor, none that measured nothing.\n\n"
        );
    }
    format!(
        "## Marked cells\n\nOf {cells} cells (model x cell), the `mark` column of the tables \
         flags these; on the charts a client-bound point is hollow and a suspect one a \
         cross.\n\n{marked}"
    )
}

fn index_readme(run: &RunResults, root: &Path, all_runs: &[String]) -> String {
    let latest = &run.machine;
    let name = run.dir_name();
    let mut out = format!(
        "# Results\n\nEach directory is one `echolab compare` run, named `<date>-<host>` \
         (`-full` for the whole matrix), with its machine, commit and exact command in its \
         README.\n\nLatest: [{name}]({name}/README.md) ({} on {}, {} logical CPUs).\n\n\
         Reproduce with `cargo run --release -- compare` (add `--full` for the whole matrix); \
         see [docs/benchmarking.md](../docs/benchmarking.md) for the method.\n\n## All runs\n\n",
        latest.started, latest.cpu, latest.cores
    );
    for dir in all_runs {
        out.push_str(&format!(
            "- [{dir}]({dir}/README.md){}\n",
            run_flags(root, dir)
        ));
    }
    out
}

/// What a run was asked for, from its results.json: `: compare --scenario udp`, so the
/// index tells a partial run from a whole one; empty when the file cannot say.
fn run_flags(root: &Path, dir: &str) -> String {
    let command = std::fs::read_to_string(root.join(dir).join("results.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|run| run["machine"]["command"].as_str().map(str::to_owned));
    match command.as_deref().and_then(|c| c.split_once(" compare")) {
        Some((_, flags)) if flags.trim().is_empty() => ": `compare` (the default plan)".into(),
        Some((_, flags)) => format!(": `compare {}`", flags.trim()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::summarize;
    use crate::summary::tests::run;

    /// A run of three models at 100 x 4 KiB, made by hand: `fork`'s server CPU per
    /// response is the committed full run's impossible 0.57 µs; `mio`'s generator used
    /// 97% of its one thread; `threads` is clean.
    fn hand_made_run() -> RunResults {
        let cell = Scenario::Throughput
            .cells(true)
            .into_iter()
            .find(|c| c.conns == 100 && c.size == 4096)
            .expect("a 100x4096 cell");
        let floors = [FloorCost {
            datagram: false,
            size: 4096,
            cpu_us_per_response: 4.0,
            rounds: 4000,
        }];
        let mut measurements = Vec::new();
        for (model, cpu_secs, client_cpu_secs) in [
            ("fork", 0.0057, 0.5),
            ("mio", 0.08, 2.91),
            ("threads", 0.11, 0.6),
        ] {
            let mut m = run(model, cell, 0, 10_000);
            m.server_cpu_secs = cpu_secs;
            m.client_cpu_secs = client_cpu_secs;
            m.client_cpu_limit_secs = 3.0;
            m.mark_client_bound();
            m.mark_suspect(&floors);
            measurements.push(m);
        }
        let mut plan = Plan::new(
            vec!["fork".into(), "mio".into(), "threads".into()],
            &[],
            true,
        );
        plan.cells = vec![cell];
        plan.repeat = 1;
        RunResults {
            machine: Machine::detect(),
            plan,
            summaries: summarize(&measurements),
            measurements,
            floor: None,
            kernel_floor: floors.to_vec(),
            topology: None,
        }
    }

    #[test]
    fn a_suspect_cell_is_caught_and_marked_everywhere() {
        let run = hand_made_run();
        let [fork, mio, threads] = &run.measurements[..] else {
            panic!("three measurements");
        };
        // 0.57 µs per response against a floor of 4.0 µs for a 4 KiB recv + send.
        let why = fork.marks.suspect.as_deref().expect("fork is suspect");
        assert!(why.contains("0.57 µs/response"), "{why}");
        assert!(fork.marks.client_bound.is_none());
        assert!(mio.marks.suspect.is_none() && threads.marks.suspect.is_none());
        assert!(mio.marks.client_bound.is_some() && threads.marks.client_bound.is_none());

        let readme = run_readme(&run, &[]);
        assert!(
            readme.contains("| fork | throughput 100x4096 | SUSPECT |"),
            "{readme}"
        );
        assert!(
            readme.contains("| mio | throughput 100x4096 | client-bound |"),
            "{readme}"
        );
        assert!(
            readme.contains("| threads | throughput 100x4096 |  |"),
            "{readme}"
        );
        assert!(
            readme.contains("**1 cell is measurement suspect**"),
            "{readme}"
        );
        assert!(
            readme.contains("- `fork` throughput 100x4096: server CPU 0.57"),
            "{readme}"
        );
        assert!(readme.contains("**1 cell is client-bound**"), "{readme}");
        assert!(readme.contains("- `mio` throughput 100x4096: the client used 97% of its CPU"));
        assert!(
            readme.contains("| TCP | 4096 B | 4.00 | 4000 |"),
            "{readme}"
        );
        let terminal = crate::table::terminal(&run.summaries);
        assert!(terminal.contains("SUSPECT") && terminal.contains("client-bound"));
        let json = serde_json::to_value(&run).expect("json");
        assert!(json["measurements"][0]["suspect"].is_string(), "{json}");
        assert!(json["summaries"][1]["client_bound"].is_string(), "{json}");
        assert_eq!(json["summaries"][0]["suspect_runs"], 1, "{json}");
        assert_eq!(json["kernel_floor"][0]["size"], 4096, "{json}");
        let csv = csv(&run.measurements);
        assert!(csv
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("below half the kernel")));
    }

    #[test]
    fn a_run_with_no_mark_says_so() {
        let mut run = hand_made_run();
        run.measurements.retain(|m| m.model == "threads");
        run.summaries = summarize(&run.measurements);
        let readme = run_readme(&run, &[]);
        assert!(readme.contains("None of the 1 cells is marked"), "{readme}");
    }

    #[test]
    fn the_legend_reads_the_tables_written_and_the_csv_keeps_the_rest() {
        let idle = legend(&[Scenario::Idle]);
        assert!(
            idle.contains("- **KiB/conn** (`memory_per_conn_kb`): "),
            "{idle}"
        );
        let latency = legend(&[Scenario::Latency]);
        assert!(!latency.contains("**KiB/conn**"), "{latency}");
        assert!(latency.contains("- `memory_per_conn_kb`: "), "{latency}");
        assert!(latency.contains("- **p50 µs** (`p50_us`): "), "{latency}");
    }
}
