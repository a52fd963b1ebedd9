//! Run against run: *is it faster than before, or is that noise?* Two runs of the same
//! plan are compared model by model and cell by cell — the ratio new/old of the
//! medians of throughput, p99 and responses per server CPU-second — with a verdict from
//! the repeats, not from the medians alone.
//!
//! The test is the Mann–Whitney rank-sum test, exact (every way of splitting the
//! pooled repeats into two groups is counted), two-sided. It assumes nothing about the
//! distribution of a shared machine's noise, only that repeats are independent. Its
//! power is what the repeats allow: with 3 against 3, the strongest evidence possible
//! — every new repeat beyond every old one — has p = 0.1, so that is the threshold;
//! more repeats give smaller p for the same separation. A metric is "changed" when the
//! groups separate that clearly *and* the medians differ by at least [`MIN_CHANGE`]; a
//! separated 1% is real but not worth a verdict on a noisy VM.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::error::HarnessError;
use crate::scenario::Cell;
use crate::summary::Spread;

/// The p-value at or below which the repeats count as separated.
pub(crate) const ALPHA: f64 = 0.1;
/// The smallest change of the medians that earns a verdict.
pub(crate) const MIN_CHANGE: f64 = 0.05;

/// One committed run, as read back from its `results.json`.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    /// Where it was read from.
    pub name: String,
    plan: Value,
    machine: Value,
    floor: Option<Value>,
    /// (model, cell label) -> the repeats' figures.
    samples: BTreeMap<(String, String), Repeats>,
}

#[derive(Debug, Clone, Default)]
struct Repeats {
    throughput: Vec<f64>,
    p99: Vec<f64>,
    per_cpu: Vec<f64>,
}

/// The metrics compared.
const METRICS: [(&str, bool); 3] = [
    // (name, whether higher is better)
    ("responses/s", true),
    ("p99", false),
    ("resp per CPU-s", true),
];

impl LoadedRun {
    /// Reads `dir/results.json` (a directory written by `echolab compare`).
    pub fn read(dir: &Path) -> Result<LoadedRun, HarnessError> {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path).map_err(HarnessError::read(&path))?;
        let json: Value = serde_json::from_str(&text).map_err(HarnessError::not_results(&path))?;
        LoadedRun::from_json(&dir.display().to_string(), &json)
    }

    /// The same from an already parsed results object.
    pub fn from_json(name: &str, json: &Value) -> Result<LoadedRun, HarnessError> {
        let measurements = json
            .get("measurements")
            .and_then(Value::as_array)
            .ok_or_else(|| HarnessError::Plan(format!("{name}: no measurements")))?;
        let mut samples: BTreeMap<(String, String), Repeats> = BTreeMap::new();
        for m in measurements {
            let model = m.get("model").and_then(Value::as_str);
            let (Some(model), Some(cell)) = (model, m.get("cell").and_then(cell_label)) else {
                continue;
            };
            let number = |key: &str| m.get(key).and_then(Value::as_f64);
            let repeats = samples.entry((model.to_string(), cell)).or_default();
            repeats.throughput.extend(number("responses_per_sec"));
            repeats.p99.extend(number("p99_us"));
            repeats.per_cpu.extend(number("responses_per_cpu_sec"));
        }
        Ok(LoadedRun {
            name: name.to_string(),
            plan: json.get("plan").cloned().unwrap_or(Value::Null),
            machine: json.get("machine").cloned().unwrap_or(Value::Null),
            floor: json.get("floor").cloned().filter(|f| !f.is_null()),
            samples,
        })
    }
}

/// The cell's label as the tables write it (`Cell::label`: a udp cell's rate keeps
/// its cells apart); `None` for a cell this build cannot read (a scenario it lacks).
fn cell_label(cell: &Value) -> Option<String> {
    serde_json::from_value::<Cell>(cell.clone())
        .ok()
        .map(|c| c.label())
}

/// One metric of one (model, cell), new against old.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// New median / old median.
    pub ratio: f64,
    /// The exact two-sided Mann–Whitney p-value of the repeats.
    pub p: f64,
    /// Separated beyond the noise and by at least [`MIN_CHANGE`]: `Some(true)` better,
    /// `Some(false)` worse; `None` within noise.
    pub verdict: Option<bool>,
}

/// The comparison of two runs.
#[derive(Debug, Clone)]
pub struct RunDiff {
    /// (model, cell label, [throughput, p99, per-CPU] changes; `None` where a side has
    /// no figure).
    pub rows: Vec<(String, String, [Option<Change>; 3])>,
    /// Reasons to read the ratios with care: different machines or floors, models in
    /// only one run.
    pub warnings: Vec<String>,
}

/// Compares `new` against `old`. Refuses runs whose plans differ (other cells, other
/// durations): their ratios would compare different experiments.
pub fn diff(old: &LoadedRun, new: &LoadedRun) -> Result<RunDiff, HarnessError> {
    for key in ["cells", "duration", "warmup", "pin"] {
        let (a, b) = (old.plan.get(key), new.plan.get(key));
        // A key older runs did not record (`pin`) is the default.
        let missing_is_default =
            key == "pin" && [a, b].iter().all(|v| v.is_none_or(|v| v == "none"));
        if a != b && !missing_is_default {
            let show = |v: Option<&Value>| match v {
                Some(Value::Array(cells)) => format!("{} cells", cells.len()),
                Some(v) => v.to_string(),
                None => "-".into(),
            };
            return Err(HarnessError::Plan(format!(
                "the runs' plans differ in `{key}` ({} vs {}): run the new one with the old one's \
                 flags (see its README's command)",
                show(a),
                show(b)
            )));
        }
    }
    let mut warnings = Vec::new();
    for key in ["cpu", "cores", "kernel", "host"] {
        let (a, b) = (old.machine.get(key), new.machine.get(key));
        if a != b {
            warnings.push(format!(
                "different machines: {key} {} vs {}",
                a.map_or("-".into(), Value::to_string),
                b.map_or("-".into(), Value::to_string)
            ));
        }
    }
    match (&old.floor, &new.floor) {
        (Some(a), Some(b)) => {
            let p50 = |f: &Value| f.pointer("/cross_cpu/p50_us").and_then(Value::as_f64);
            if let (Some(a), Some(b)) = (p50(a), p50(b)) {
                if (b / a - 1.0).abs() > 0.25 {
                    warnings.push(format!(
                        "the loopback floor moved: cross-CPU p50 {a:.1} µs vs {b:.1} µs"
                    ));
                }
            }
        }
        (None, None) => {}
        _ => warnings.push("only one run recorded the machine's loopback floor".into()),
    }
    let mut rows = Vec::new();
    for ((model, cell), new_repeats) in &new.samples {
        let Some(old_repeats) = old.samples.get(&(model.clone(), cell.clone())) else {
            warnings.push(format!("{model} {cell}: only in the new run"));
            continue;
        };
        let pairs = [
            (&old_repeats.throughput, &new_repeats.throughput),
            (&old_repeats.p99, &new_repeats.p99),
            (&old_repeats.per_cpu, &new_repeats.per_cpu),
        ];
        let changes = [0, 1, 2].map(|i| change(pairs[i].0, pairs[i].1, METRICS[i].1));
        rows.push((model.clone(), cell.clone(), changes));
    }
    for (model, cell) in old.samples.keys() {
        if !new.samples.contains_key(&(model.clone(), cell.clone())) {
            warnings.push(format!("{model} {cell}: only in the old run"));
        }
    }
    Ok(RunDiff { rows, warnings })
}

fn change(old: &[f64], new: &[f64], higher_is_better: bool) -> Option<Change> {
    let (a, b) = (median(old)?, median(new)?);
    if a <= 0.0 {
        return None;
    }
    let ratio = b / a;
    let p = mann_whitney_p(old, new);
    let verdict = (p <= ALPHA && (ratio - 1.0).abs() >= MIN_CHANGE)
        .then_some((ratio > 1.0) == higher_is_better);
    Some(Change { ratio, p, verdict })
}

/// The median the tables print for the same repeats.
fn median(values: &[f64]) -> Option<f64> {
    Spread::of(values.iter().copied()).map(|s| s.median)
}

/// The exact two-sided p-value of the Mann–Whitney U statistic: the share of all ways
/// to split the pooled values into groups of these sizes whose U is at least as far
/// from its mean as the observed one (ties count half). For more than 12 values in all
/// the count is too large to enumerate and the normal approximation is used.
pub(crate) fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return 1.0;
    }
    let u = |xs: &[f64], ys: &[f64]| -> f64 {
        xs.iter()
            .map(|x| {
                ys.iter()
                    .map(|y| match x.total_cmp(y) {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal => 0.5,
                        std::cmp::Ordering::Less => 0.0,
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let mean = (n * m) as f64 / 2.0;
    let observed = (u(a, b) - mean).abs();
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    if n + m > 12 {
        let sd = ((n * m * (n + m + 1)) as f64 / 12.0).sqrt();
        let z = (observed - 0.5).max(0.0) / sd;
        return (2.0 * (1.0 - normal_cdf(z))).min(1.0);
    }
    // Every subset of n of the pooled indices, as a bit mask.
    let total = n + m;
    let (mut extreme, mut all) = (0u64, 0u64);
    for mask in 0u32..(1 << total) {
        if mask.count_ones() as usize != n {
            continue;
        }
        let (xs, ys): (Vec<f64>, Vec<f64>) = {
            let (mut xs, mut ys) = (Vec::new(), Vec::new());
            for (i, v) in pooled.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    xs.push(*v);
                } else {
                    ys.push(*v);
                }
            }
            (xs, ys)
        };
        all += 1;
        if (u(&xs, &ys) - mean).abs() >= observed - 1e-9 {
            extreme += 1;
        }
    }
    extreme as f64 / all as f64
}

fn normal_cdf(z: f64) -> f64 {
    // Abramowitz–Stegun 7.1.26, plenty for a verdict.
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs() / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(z * z) / 2.0).exp();
    0.5 * (1.0 + erf.copysign(z))
}

/// The comparison as a table for the terminal (and Markdown).
pub fn render(diff: &RunDiff, old: &str, new: &str) -> String {
    let mut out = format!(
        "new {new} against old {old}: ratio new/old of the medians; verdict from the repeats \
         (exact Mann–Whitney, changed when p <= {ALPHA} and the medians differ by >= {:.0}%)\n\n",
        MIN_CHANGE * 100.0
    );
    for warning in &diff.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    if !diff.warnings.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "| model | cell | {} | {} | {} |\n|---|---|---|---|---|",
        METRICS[0].0, METRICS[1].0, METRICS[2].0
    );
    for (model, cell, changes) in &diff.rows {
        let cells: Vec<String> = changes
            .iter()
            .map(|c| match c {
                None => "–".to_string(),
                Some(c) => format!(
                    "{:.2}x {}",
                    c.ratio,
                    match c.verdict {
                        None => "within noise",
                        Some(true) => "BETTER",
                        Some(false) => "WORSE",
                    }
                ),
            })
            .collect();
        let _ = writeln!(out, "| {model} | {cell} | {} |", cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::error::Error as _;

    #[test]
    fn a_results_file_that_cannot_be_read_or_parsed_says_which_and_why() {
        let dir = std::env::temp_dir().join(format!("echolab-baseline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        match LoadedRun::read(&dir) {
            Err(HarnessError::Read { path, source }) => {
                assert_eq!(path, dir.join("results.json"));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("a missing file: {other:?}"),
        }
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        std::fs::write(dir.join("results.json"), "not json").expect("a temporary file");
        let err = LoadedRun::read(&dir).expect_err("not JSON");
        assert!(
            matches!(&err, HarnessError::NotResults { path, .. } if path.ends_with("results.json")),
            "{err:?}"
        );
        assert!(
            err.source().is_some(),
            "the parse error is kept as the source"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run of `model` on one throughput cell whose repeats made `throughput`.
    fn run(name: &str, throughput: &[f64]) -> LoadedRun {
        let cell = json!({"scenario": "throughput", "conns": 10, "size": 64, "idle_conns": 0});
        let measurements: Vec<Value> = throughput
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({"model": "mio", "cell": cell, "repeat": i, "responses_per_sec": t,
                       "p99_us": 50.0 + i as f64, "responses_per_cpu_sec": t * 2.0})
            })
            .collect();
        let json = json!({
            "plan": {"cells": [cell], "duration": 1.0, "warmup": 0.5},
            "machine": {"cpu": "x", "cores": 2, "kernel": "k", "host": "h"},
            "measurements": measurements,
        });
        LoadedRun::from_json(name, &json).unwrap()
    }

    #[test]
    fn a_run_compared_with_itself_is_within_noise() {
        let a = run("a", &[100_000.0, 104_000.0, 97_000.0]);
        let d = diff(&a, &a).unwrap();
        assert_eq!(d.rows.len(), 1);
        for change in d.rows[0].2.iter().flatten() {
            assert_eq!(change.verdict, None, "{change:?}");
            assert!((change.ratio - 1.0).abs() < 1e-9);
        }
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn thirty_percent_slower_in_every_repeat_is_flagged() {
        let old = run("old", &[100_000.0, 104_000.0, 97_000.0]);
        let new = run("new", &[70_000.0, 72_800.0, 67_900.0]);
        let d = diff(&old, &new).unwrap();
        let throughput = d.rows[0].2[0].clone().unwrap();
        assert_eq!(throughput.verdict, Some(false), "{throughput:?}");
        assert!((throughput.ratio - 0.7).abs() < 0.01);
        assert!(
            (throughput.p - 0.1).abs() < 1e-9,
            "3 vs 3 fully separated: p = 0.1"
        );
        assert!(render(&d, "old", "new").contains("WORSE"));
    }

    #[test]
    fn overlapping_repeats_are_noise_even_when_the_medians_move() {
        let old = run("old", &[100_000.0, 80_000.0, 120_000.0]);
        let new = run("new", &[90_000.0, 110_000.0, 75_000.0]);
        let throughput = diff(&old, &new).unwrap().rows[0].2[0].clone().unwrap();
        assert_eq!(throughput.verdict, None, "{throughput:?}");
    }

    #[test]
    fn runs_of_different_plans_are_refused() {
        let old = run("old", &[1.0, 2.0, 3.0]);
        let mut new = run("new", &[1.0, 2.0, 3.0]);
        new.plan["duration"] = json!(3.0);
        let err = diff(&old, &new).unwrap_err().to_string();
        assert!(err.contains("duration"), "{err}");
    }

    #[test]
    fn labels_read_back_as_the_tables_write_them() {
        use crate::scenario::Scenario;
        for scenario in Scenario::ALL {
            for cell in scenario.cells(true) {
                let json = serde_json::to_value(cell).unwrap();
                assert_eq!(cell_label(&json), Some(cell.label()), "{json}");
            }
        }
    }

    #[test]
    fn exact_p_values_match_the_tables() {
        // 3 vs 3 fully separated: 2 of the 20 splits are as extreme.
        assert!((mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]) - 0.1).abs() < 1e-9);
        // 5 vs 5 fully separated: 2 / C(10,5) = 2/252.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p - 2.0 / 252.0).abs() < 1e-9, "{p}");
        assert_eq!(mann_whitney_p(&[1.0, 1.0], &[1.0, 1.0]), 1.0);
    }
}
