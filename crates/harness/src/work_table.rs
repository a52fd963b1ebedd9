//! The `work` scenario's headline table: per model (and variant), the capacity at the
//! SLO for each swept kind of work, the most it answers in a closed loop, and the
//! long-tail mix's fast and slow p99 at half load — the figures the threads-vs-events
//! question is decided on, one row per design.

use crate::figures::short;
use crate::scenario::Scenario;
use crate::summary::Summary;
use crate::work::{capacity_at_slo, WorkPreset, SLO_SERVICE_TIMES};

/// The long-tail mix's p99s are read at this fraction of one worker's capacity.
const LONG_TAIL_LOAD: f64 = 0.5;

/// Headings of the headline table.
pub(crate) fn headers() -> Vec<String> {
    let mut headers = vec!["model".to_string()];
    for preset in WorkPreset::ALL {
        let spec = preset.spec_text();
        if preset.rates().len() > 1 {
            headers.push(format!("{spec} cap@SLO/s"));
        }
        headers.push(format!("{spec} closed resp/s"));
    }
    headers.push("long tail p99 fast µs @50%".to_string());
    headers.push("long tail p99 slow µs @50%".to_string());
    headers
}

/// One row per model that ran the `work` scenario, in run order.
pub(crate) fn rows(summaries: &[Summary]) -> Vec<Vec<String>> {
    let work: Vec<&Summary> = summaries
        .iter()
        .filter(|s| s.cell.scenario == Scenario::Work)
        .collect();
    let mut models: Vec<&str> = Vec::new();
    for s in &work {
        if !models.contains(&s.model.as_str()) {
            models.push(&s.model);
        }
    }
    models
        .into_iter()
        .map(|model| {
            let of = |preset: WorkPreset| -> Vec<&Summary> {
                work.iter()
                    .copied()
                    .filter(|s| s.model == model && s.cell.work == Some(preset))
                    .collect()
            };
            let mut row = vec![model.to_string()];
            for preset in WorkPreset::ALL {
                let cells = of(preset);
                if preset.rates().len() > 1 {
                    let points: Vec<(f64, f64, bool)> = cells
                        .iter()
                        .filter_map(|s| {
                            let rate = s.cell.rate? as f64;
                            let clean = s.failed_runs == 0 && s.clean_runs == s.runs;
                            // A mix's slow 1% alone sit above any SLO of its mean: the
                            // question is what they do to the others (brpc's framing).
                            // The fast messages' percentiles are of the replies that
                            // came: a cell whose clients starved (its censored waits are
                            // in the overall figures only) cannot count.
                            let starved = s.censored_pct.is_some_and(|c| c.median > 1.0);
                            let p99 = if preset.has_slow_kind() {
                                s.p99_fast_us?.median
                            } else {
                                s.p99_us.median
                            };
                            Some((rate, p99, clean && !(preset.has_slow_kind() && starved)))
                        })
                        .collect();
                    row.push(if points.is_empty() {
                        "–".to_string()
                    } else {
                        capacity_at_slo(&points, preset.mean_service())
                            .map_or("none".to_string(), short)
                    });
                }
                let closed = cells.iter().find(|s| s.cell.rate.is_none());
                row.push(closed.map_or("–".to_string(), |s| short(s.responses_per_sec.median)));
            }
            let half = (WorkPreset::LongTail.one_worker_capacity() * LONG_TAIL_LOAD).round();
            let at_half = of(WorkPreset::LongTail)
                .into_iter()
                .find(|s| s.cell.rate.is_some_and(|r| (r as f64 - half).abs() < 1.0));
            for p99 in [
                at_half.and_then(|s| s.p99_fast_us),
                at_half.and_then(|s| s.p99_slow_us),
            ] {
                row.push(p99.map_or("–".to_string(), |p| short(p.median)));
            }
            row
        })
        .collect()
}

/// What the headline's columns mean, for the README under the table.
pub(crate) fn legend() -> String {
    format!(
        "**cap@SLO/s**: the highest offered rate (open loop, {conns} connections) whose p99 \
         stayed under {slo}× the mean service time, every repeat with no error on either \
         side (none: not even the lightest load) — for the long-tail mix, the p99 of its fast \
         messages, since its 1% of 5 ms blocks alone sit above any such bound; **closed resp/s**: responses per second with \
         every connection waiting for its reply before sending the next (the most it \
         answers); **long tail p99 fast/slow**: the `{tail}` mix at {half:.0}% of one \
         worker's capacity, the 99% that compute and the 1% that block, each on its own.\n",
        conns = crate::work::WORK_CONNS,
        slo = SLO_SERVICE_TIMES,
        tail = WorkPreset::LongTail.spec_text(),
        half = LONG_TAIL_LOAD * 100.0,
    )
}
