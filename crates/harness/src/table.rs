//! The comparison table, built once as rows of text and rendered twice: on the terminal
//! (comfy-table) and in the run's README (Markdown).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use crate::columns::table_columns;
use crate::scenario::Scenario;
use crate::summary::Summary;

/// Column headings for a scenario's table.
pub(crate) fn headers(scenario: Scenario) -> Vec<&'static str> {
    table_columns(scenario).map(|c| c.heading).collect()
}

/// One row per summary of `scenario`.
pub(crate) fn rows(summaries: &[Summary], scenario: Scenario) -> Vec<Vec<String>> {
    summaries
        .iter()
        .filter(|s| s.cell.scenario == scenario)
        .map(|s| table_columns(scenario).map(|c| (c.show)(s)).collect())
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
        for (i, column) in table_columns(scenario).enumerate() {
            if let (false, Some(cells)) = (column.words, table.column_mut(i)) {
                cells.set_cell_alignment(CellAlignment::Right);
            }
        }
        out.push_str(&format!("\n{scenario}\n{table}\n"));
    }
    let work = crate::work_table::rows(summaries);
    if !work.is_empty() {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(crate::work_table::headers());
        for row in work {
            table.add_row(row);
        }
        out.push_str(&format!("\nwork: the headline\n{table}\n"));
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
