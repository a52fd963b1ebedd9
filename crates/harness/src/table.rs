//! The comparison table, built once as rows of text and rendered twice: on the terminal
//! (comfy-table) and in the run's README (Markdown).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use crate::figures::{short, spread_text};
use crate::scenario::Scenario;
use crate::summary::Summary;

/// Column headings for a scenario's table.
pub(crate) fn headers(scenario: Scenario) -> Vec<&'static str> {
    let mut h = vec![
        "model",
        "cell",
        "responses/s (min–max)",
        "p50 µs",
        "p99 µs",
        "server CPU µs/resp",
        "resp per CPU-s",
        "peak RSS MiB",
        "thr/proc",
        "ctx sw",
        "Jain",
    ];
    if scenario == Scenario::Idle {
        h.extend(["idle held", "KiB/conn"]);
    }
    h.push("note");
    h
}

/// One row per summary of `scenario`.
pub(crate) fn rows(summaries: &[Summary], scenario: Scenario) -> Vec<Vec<String>> {
    summaries
        .iter()
        .filter(|s| s.cell.scenario == scenario)
        .map(|s| {
            // With no replies there is no latency to show, not a latency of zero.
            let served = s.responses_per_sec.max > 0.0;
            let latency = |x: f64| if served { short(x) } else { "–".into() };
            let mut row = vec![
                s.model.clone(),
                s.cell.label(),
                spread_text(&s.responses_per_sec),
                latency(s.p50_us.median),
                latency(s.p99_us.median),
                s.server_cpu_us_per_response
                    .map_or("–".into(), |c| format!("{:.1}", c.median)),
                s.responses_per_cpu_sec
                    .map_or("–".into(), |r| short(r.median)),
                format!("{:.1}", s.peak_rss_kb.median / 1024.0),
                format!("{}/{}", s.peak_threads, s.peak_processes),
                s.ctx_switches.map_or("–".into(), |c| short(c.median)),
                format!("{:.2}", s.jain.median),
            ];
            if scenario == Scenario::Idle {
                row.push(s.idle_held.map_or("–".into(), |h| h.to_string()));
                row.push(
                    s.memory_per_conn_kb
                        .map_or("–".into(), |m| format!("{:.1}", m.median)),
                );
            }
            row.push(s.note.clone());
            row
        })
        .collect()
}

/// The terminal rendering of every scenario that has rows.
pub fn terminal(summaries: &[Summary]) -> String {
    let mut out = String::new();
    for scenario in Scenario::ALL {
        let rows = rows(summaries, scenario);
        if rows.is_empty() {
            continue;
        }
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            // Fit the terminal's width by wrapping cells instead of breaking every line.
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(headers(scenario));
        for row in rows {
            table.add_row(row);
        }
        for i in 2..headers(scenario).len() - 1 {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
        out.push_str(&format!("\n{scenario}\n{table}\n"));
    }
    out
}

/// A Markdown table.
pub(crate) fn markdown(headers: &[&str], rows: &[Vec<String>]) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let mut out = format!("| {} |\n", headers.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(headers.len())));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escapes_pipes() {
        let md = markdown(&["a", "b"], &[vec!["x|y".into(), "z".into()]]);
        assert_eq!(md, "| a | b |\n|---|---|\n| x\\|y | z |\n");
    }
}
