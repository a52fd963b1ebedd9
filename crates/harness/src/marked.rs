//! The run's marked cells, listed once for the terminal and the run's README: how many
//! cells measured the client, how many have an impossible figure, how many measured
//! nothing, and which.

use std::fmt::Write as _;

use crate::marks::{CLIENT_CPU_LIMIT, FLOOR_SHARE, RATE_REACHED, UNCERTAIN_SHARE};
use crate::summary::Summary;

/// A summary's line in a kind's list, if it has that mark.
type Listed = fn(&Summary) -> Option<String>;

/// A paragraph per kind of mark with its cells, as Markdown (it reads as plain text
/// too); empty when no cell is marked.
pub fn marked_cells(summaries: &[Summary]) -> String {
    let mut out = String::new();
    let kinds: [(&str, String, Listed); 3] = [
        (
            "measurement suspect",
            format!(
                "server CPU per response below {:.0}% of the kernel's floor cost of one recv \
                 and one send of the size (measured at the start of the run), or server CPU \
                 whose readings may have missed more than {:.0}% of it (children reaped \
                 while the process tree was read): CPU went missing from the window, so \
                 their CPU figures cannot be right",
                FLOOR_SHARE * 100.0,
                UNCERTAIN_SHARE * 100.0
            ),
            |s| (s.suspect_runs > 0).then(|| reason(s, s.suspect_runs, &s.marks.suspect)),
        ),
        (
            "client-bound",
            format!(
                "the load generator used at least {:.0}% of the CPU it could have (its \
                 threads, or the CPUs it may run on, times the window), or an open loop sent \
                 under {:.0}% of its target rate: these cells measured the client, and the \
                 server may have had more to give",
                CLIENT_CPU_LIMIT * 100.0,
                RATE_REACHED * 100.0
            ),
            |s| {
                (s.client_bound_runs > 0)
                    .then(|| reason(s, s.client_bound_runs, &s.marks.client_bound))
            },
        ),
        (
            "measured nothing",
            "not one reply in the window, or the run could not be made: no figure of \
             theirs is a result, and the charts leave them out"
                .to_string(),
            |s| (s.failed_runs > 0).then(|| reason(s, s.failed_runs, &Some(s.note.clone()))),
        ),
    ];
    for (name, why, marked) in kinds {
        let cells: Vec<String> = summaries.iter().filter_map(marked).collect();
        if cells.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "**{} {} {name}**: {why}.\n",
            cells.len(),
            if cells.len() == 1 {
                "cell is"
            } else {
                "cells are"
            }
        );
        for cell in cells {
            let _ = writeln!(out, "- {cell}");
        }
        out.push('\n');
    }
    out
}

/// `mio throughput 100x64 (2/3 repeats): why`.
fn reason(s: &Summary, runs: usize, why: &Option<String>) -> String {
    let repeats = if runs == s.runs {
        String::new()
    } else {
        format!(" ({runs}/{} repeats)", s.runs)
    };
    let why = why.as_deref().map_or(String::new(), |w| format!(": {w}"));
    format!("`{}` {}{repeats}{why}", s.model, s.cell.label())
}
