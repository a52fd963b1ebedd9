//! Every column of the results, described once: `results.csv`, the comparison tables (the
//! run's README and the terminal) and the README's legend are all read off [`COLUMNS`], so
//! they cannot drift apart. A new metric is its field in `Measurement` (and in `Summary`
//! with its fold, if the tables show it) plus one entry here.

use crate::cell::Measurement;
use crate::figures::short;
use crate::scenario::Scenario;
use crate::summary::{Spread, Summary};

/// One column: what it means, and how it reads in the CSV, the tables, or both.
#[derive(Clone, Copy)]
pub(crate) struct Column {
    /// How to read it: its line in the README's legend.
    pub(crate) about: &'static str,
    /// Its place in `results.csv`, one row per run.
    pub(crate) csv: Option<InCsv>,
    /// Its place in the comparison tables, one row per model and cell.
    pub(crate) table: Option<InTable>,
}

/// A column of `results.csv`.
#[derive(Clone, Copy)]
pub(crate) struct InCsv {
    /// The header, which readers of the committed runs look columns up by.
    pub(crate) header: &'static str,
    /// How one run reads; empty for a figure the run does not have.
    pub(crate) show: fn(&Measurement) -> String,
}

/// A column of the comparison tables.
#[derive(Clone, Copy)]
pub(crate) struct InTable {
    /// The heading.
    pub(crate) heading: &'static str,
    /// How one model's repeats of one cell read.
    pub(crate) show: fn(&Summary) -> String,
    /// Left-aligned on the terminal, as words are (figures line up on the right).
    pub(crate) words: bool,
    /// Only this scenario's table has the column.
    pub(crate) only: Option<Scenario>,
}

impl InTable {
    /// Whether `scenario`'s table has the column.
    pub(crate) fn is_in(&self, scenario: Scenario) -> bool {
        self.only.is_none() || self.only == Some(scenario)
    }
}

impl Column {
    /// A column of `results.csv`.
    const fn csv(header: &'static str, show: fn(&Measurement) -> String) -> Column {
        Column {
            about: "",
            csv: Some(InCsv { header, show }),
            table: None,
        }
    }

    /// A column of the tables only.
    const fn table(heading: &'static str, show: fn(&Summary) -> String) -> Column {
        Column {
            about: "",
            csv: None,
            table: None,
        }
        .in_table(heading, show)
    }

    /// The same metric in the tables too.
    const fn in_table(self, heading: &'static str, show: fn(&Summary) -> String) -> Column {
        Column {
            table: Some(InTable {
                heading,
                show,
                words: false,
                only: None,
            }),
            ..self
        }
    }

    /// Left-aligned in the terminal's table.
    const fn words(self) -> Column {
        match self.table {
            Some(t) => Column {
                table: Some(InTable { words: true, ..t }),
                ..self
            },
            None => panic!("words() is for a column of the tables"),
        }
    }

    /// Only in `scenario`'s table.
    const fn only(self, scenario: Scenario) -> Column {
        match self.table {
            Some(t) => Column {
                table: Some(InTable {
                    only: Some(scenario),
                    ..t
                }),
                ..self
            },
            None => panic!("only() is for a column of the tables"),
        }
    }

    const fn about(self, about: &'static str) -> Column {
        Column { about, ..self }
    }
}

/// Every column, in the order of `results.csv` and of the tables (each keeps the order of
/// the entries it has). The CSV's header and order are those of the committed runs in
/// `results/`: change them and old and new runs no longer line up.
pub(crate) const COLUMNS: &[Column] = &[
    Column::csv("model", |m| m.model.clone())
        .in_table("model", |s| s.model.clone())
        .words()
        .about("the concurrency model, as `echolab serve MODEL` names it"),
    Column::csv("scenario", |m| m.cell.scenario.to_string())
        .about("latency, throughput, churn, idle, crowd, rest, or udp (the datagram models)"),
    Column::csv("conns", |m| m.cell.conns.to_string())
        .about("active (load-generating) connections"),
    Column::csv("size", |m| m.cell.size.to_string()).about("payload bytes per message"),
    Column::csv("idle_conns", |m| m.cell.idle_conns.to_string())
        .about("connections held open beside the active ones, saying nothing"),
    Column::table("cell", |s| s.cell.label())
        .words()
        .about("scenario, connections x payload bytes, idle crowd first (`idle 1000+1x64`)"),
    Column::table("mark", mark)
        .words()
        .about("why the cell's figures are not the server's to read, with a count when only some repeats were: `measured nothing` (not one reply, or the run could not be made: the figures are not a result, and the charts leave the cell out); `SUSPECT` (measurement suspect: server CPU per response below half the kernel's floor cost of one recv and one send of the size, or server CPU whose readings may have missed more than 5% of it as children were reaped: CPU went missing from the window; a cross on the charts); `client-bound` (the load generator used at least 90% of the CPU it could have, or an open loop sent under 95% of its target rate: the cell measured the client; a hollow point on the charts)"),
    Column::csv("repeat", |m| m.repeat.to_string()).about("which run of the cell, from 0"),
    Column::csv("responses", |m| m.responses.to_string())
        .about("verified replies in the measured window"),
    Column::csv("responses_per_sec", |m| {
        format!("{:.1}", m.responses_per_sec)
    })
    .in_table("responses/s (min–max)", |s| {
        s.responses_per_sec.to_string()
    })
    .about("verified replies per second (tables: median, min–max over the repeats)"),
    Column::csv("mib_per_sec", |m| format!("{:.3}", m.mib_per_sec))
        .about("payload MiB per second, one direction"),
    Column::csv("p50_us", |m| format!("{:.1}", m.p50_us))
        .in_table("p50 µs", |s| latency(s, s.p50_us))
        .about("median round trip, µs (–: nothing was served)"),
    Column::csv("p99_us", |m| format!("{:.1}", m.p99_us))
        .in_table("p99 µs", |s| latency(s, s.p99_us))
        .about("99th-percentile round trip, µs"),
    Column::table("censored %", |s| {
        or_dash(s.censored_pct, |x| {
            if x == 0.0 {
                "0".into()
            } else {
                format!("{x:.2}")
            }
        })
    })
    .about("share of the latency samples that are waits still unanswered when the window ended (a starved client's), counted at their length so far; in the closed loop a stalled connection also stands for the messages it held back, one per mean round trip. Much above 0, the percentiles are lower bounds"),
    Column::csv("p999_us", |m| format!("{:.1}", m.p999_us))
        .about("99.9th-percentile round trip, µs"),
    Column::csv("max_us", |m| format!("{:.1}", m.max_us)).about("slowest round trip, µs"),
    Column::csv("errors", |m| {
        let errors: Vec<String> = m.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
        errors.join(";")
    })
    .about("load-generator errors by kind, `kind=n;kind=n`"),
    Column::csv("jain", |m| format!("{:.4}", m.jain))
        .about("Jain's fairness index over the active connections"),
    Column::csv("min_per_conn", |m| m.min_per_conn.to_string())
        .about("fewest replies any active connection got (0: a starved client)"),
    Column::csv("server_cpu_secs", |m| format!("{:.4}", m.server_cpu_secs))
        .about("server user + system CPU seconds, whole process tree, in the measured window"),
    Column::table("server CPU µs/resp", |s| {
        or_dash(s.server_cpu_us_per_response, |x| format!("{x:.1}"))
    })
    .about("server CPU µs per reply, `server_cpu_secs` / `responses`"),
    Column::csv("responses_per_cpu_sec", |m| {
        decimals_3(m.responses_per_cpu_sec)
    })
    .in_table("resp per CPU-s", |s| {
        or_dash(s.responses_per_cpu_sec, short)
    })
    .about("replies per server CPU-second (empty or –: no measurable CPU)"),
    Column::csv("peak_rss_kb", |m| m.peak_rss_kb.to_string())
        .in_table("peak RSS MiB", |s| {
            format!("{:.1}", s.peak_rss_kb.median / 1024.0)
        })
        .about("most resident memory of the server's tree (KiB; MiB in the tables)"),
    Column::csv("peak_threads", |m| m.peak_threads.to_string())
        .about("most threads in the server's tree"),
    Column::csv("peak_processes", |m| m.peak_processes.to_string())
        .about("most processes in the server's tree"),
    Column::table("thr/proc", |s| {
        format!("{}/{}", s.peak_threads, s.peak_processes)
    })
    .about("most threads / processes in the server's tree (`fork`: one per connection)"),
    Column::csv("voluntary_ctx_switches", |m| {
        whole(m.voluntary_ctx_switches)
    })
    .about("times the server blocked (gave up the CPU), over its life in the run"),
    Column::csv("involuntary_ctx_switches", |m| {
        whole(m.involuntary_ctx_switches)
    })
    .about("times the server was preempted, over its life in the run"),
    Column::table("ctx sw", |s| or_dash(s.ctx_switches, short))
        .about("context switches, voluntary + involuntary, over the server's life in the run"),
    Column::table("Jain", |s| format!("{:.2}", s.jain.median))
        .about("the median `jain`: 1 is even, 1/conns is one connection served"),
    Column::csv("idle_held", |m| whole(m.idle_held))
        .in_table("idle held", |s| {
            s.idle_held.map_or("–".into(), |h| h.to_string())
        })
        .only(Scenario::Idle)
        .about("idle connections the server held (new sockets in its tree; tables: fewest)"),
    Column::csv("memory_per_conn_kb", |m| decimals_3(m.memory_per_conn_kb))
        .in_table("KiB/conn", |s| {
            or_dash(s.memory_per_conn_kb, |x| format!("{x:.1}"))
        })
        .only(Scenario::Idle)
        .about("server memory (PSS) per held idle connection, KiB"),
    Column::csv("server_exit_clean", |m| m.server_exit_clean.to_string())
        .about("the server exited 0 after SIGTERM"),
    Column::csv("client_cpu_secs", |m| format!("{:.4}", m.client_cpu_secs))
        .about("the load generator's own CPU seconds (user + system) in the window: near the window's length, the client was the limit"),
    Column::csv("server_errors", |m| {
        let errors: Vec<String> = m.server_errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
        errors.join(";")
    })
    .about("errors the server itself counted (its stats line), `kind=n;kind=n`: a clean run has none"),
    Column::csv("server_cpu_share", |m| format!("{:.4}", m.server_cpu_share))
        .in_table("server CPU %", |s| {
            format!("{:.1}", s.server_cpu_share.median * 100.0)
        })
        .only(Scenario::Rest)
        .about("server CPU seconds per second of the window (tables: % of one core); at rest, what doing nothing costs"),
    Column::csv("offered_rate", |m| decimals_0(m.udp.offered_rate))
        .about("udp: datagrams per second offered, in total (open loop; the cell's `@ rate`)"),
    Column::csv("sent", |m| whole(m.udp.sent))
        .about("udp: datagrams sent in the measured window"),
    Column::csv("sent_per_sec", |m| decimals_0(m.udp.sent_per_sec))
        .about("udp: `sent` per second, the rate really offered (a note says when the client fell short of `offered_rate`)"),
    Column::csv("lost", |m| whole(m.udp.lost))
        .about("udp: of those, datagrams with no reply within 0.5 s"),
    Column::csv("loss_pct", |m| decimals_3(m.udp.loss_pct))
        .in_table("loss %", |s| or_dash(s.loss_pct, |x| format!("{x:.2}")))
        .only(Scenario::Udp)
        .about("udp: datagrams lost, % of those sent (UDP has no backpressure: past what the server answers, the kernel drops)"),
    Column::csv("server_socket_drops", |m| whole(m.udp.server_socket_drops))
        .about("udp: datagrams the kernel dropped at the server's full receive buffers (`/proc/net/udp` drops; over the whole run, warm-up included)"),
    Column::csv("work", |m| {
        m.cell.work.map_or(String::new(), |w| w.spec_text().to_string())
    })
    .about("work: the server's `--work` spec per message"),
    Column::csv("rate", |m| m.cell.rate.map_or(String::new(), |r| r.to_string()))
        .about("work and udp: messages per second offered in total (open loop); empty: closed loop"),
    Column::csv("p99_fast_us", |m| decimals_1(m.p99_fast_us))
        .in_table("p99 fast µs", |s| or_dash(s.p99_fast_us, short))
        .only(Scenario::Work)
        .about("work: p99 of the messages that got the spec's cheapest work, µs (all of them for a one-kind spec)"),
    Column::csv("p99_slow_us", |m| decimals_1(m.p99_slow_us))
        .in_table("p99 slow µs", |s| or_dash(s.p99_slow_us, short))
        .only(Scenario::Work)
        .about("work: p99 of the dearer messages alone (the long-tail mix's 1% that block), µs"),
    Column::csv("latency_samples", |m| m.latency_samples.to_string())
        .about("samples behind the percentiles, censored ones included"),
    Column::csv("censored_waits", |m| m.censored_waits.to_string())
        .about("messages still unanswered when the window ended: each a sample of its wait so far"),
    Column::csv("censored_samples", |m| m.censored_samples.to_string())
        .about("the samples those waits stand for in the percentiles"),
    Column::csv("client_cpu_limit_secs", |m| {
        format!("{:.4}", m.client_cpu_limit_secs)
    })
    .about("the CPU seconds the load generator could have used: its threads (or the CPUs it may run on, if fewer) times the window"),
    Column::csv("client_bound", |m| {
        m.marks.client_bound.as_deref().unwrap_or_default().replace(',', ";")
    })
    .about("why the cell measured the client (`client_cpu_secs` at least 90% of `client_cpu_limit_secs`, or an open loop under 95% of its rate); empty when it did not"),
    Column::csv("suspect", |m| {
        m.marks.suspect.as_deref().unwrap_or_default().replace(',', ";")
    })
    .about("why the server's CPU per response cannot be right (below half the kernel's floor for the size, measured at the start of the run; or `server_cpu_uncertain_secs` over 5% of `server_cpu_secs`); empty when it can"),
    Column::csv("failure", |m| {
        m.failure.as_deref().unwrap_or_default().replace(',', ";")
    })
    .about("why the run measured nothing (`no replies`, or `could not run: ...`); empty when it measured"),
    Column::csv("client_socket_drops", |m| whole(m.udp.client_socket_drops))
        .about("udp: replies the kernel dropped at the client's full receive buffers (`/proc/net/udp` drops of its sockets): the generator fell behind reading, not the server"),
    Column::csv("server_rcvbuf_bytes", |m| whole(m.udp.server_rcvbuf_bytes))
        .about("udp: `SO_RCVBUF` of the server's socket (its stats line), bytes: datagrams, each counted with its kernel overhead, it holds before the kernel drops"),
    Column::csv("client_rcvbuf_bytes", |m| whole(m.udp.client_rcvbuf_bytes))
        .about("udp: `SO_RCVBUF` of each client socket, bytes"),
    Column::csv("server_cpu_uncertain_secs", |m| format!("{:.4}", m.server_cpu_uncertain_secs))
        .about("how much `server_cpu_secs` may be off by: CPU of the children a `fork` server reaped while the readings bounding the window walked its process tree (0 when nothing exited meanwhile)"),
    Column::table("note", |s| s.note.clone())
        .words()
        .about("any trouble: no replies, starved clients, idle not held, errors, an unclean exit"),
];

/// The columns of `results.csv`, in order.
pub(crate) fn csv_columns() -> impl Iterator<Item = &'static InCsv> {
    COLUMNS.iter().filter_map(|c| c.csv.as_ref())
}

/// The columns of `scenario`'s table, in order.
pub(crate) fn table_columns(scenario: Scenario) -> impl Iterator<Item = &'static InTable> {
    COLUMNS
        .iter()
        .filter_map(|c| c.table.as_ref())
        .filter(move |t| t.is_in(scenario))
}

/// The cell's marks, each with the share of repeats it holds for when not all.
fn mark(s: &Summary) -> String {
    let of_runs = |n: usize| {
        if n == s.runs {
            String::new()
        } else {
            format!(" {n}/{}", s.runs)
        }
    };
    let mut marks = Vec::new();
    if s.failed_runs > 0 {
        marks.push(format!("measured nothing{}", of_runs(s.failed_runs)));
    }
    if s.suspect_runs > 0 {
        marks.push(format!("SUSPECT{}", of_runs(s.suspect_runs)));
    }
    if s.client_bound_runs > 0 {
        marks.push(format!("client-bound{}", of_runs(s.client_bound_runs)));
    }
    marks.join(", ")
}

/// With no replies there is no latency to show, not a latency of zero.
fn latency(s: &Summary, latency: Spread) -> String {
    if s.responses_per_sec.max > 0.0 {
        short(latency.median)
    } else {
        "–".into()
    }
}

/// The median, or `–` for a figure some repeat did not have.
fn or_dash(spread: Option<Spread>, show: fn(f64) -> String) -> String {
    spread.map_or("–".into(), |s| show(s.median))
}

fn decimals_3(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!("{x:.3}"))
}

fn decimals_1(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!("{x:.1}"))
}

fn decimals_0(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!("{x:.0}"))
}

fn whole(n: Option<u64>) -> String {
    n.map_or(String::new(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_header_extends_the_committed_runs_one() {
        // Runs before 2026-11-30 end at `server_exit_clean`; new columns go at the end so
        // old and new files line up column for column. (results/2026-11-30-vm-udp was
        // written before `client_cpu_secs` and `server_errors` existed: it has
        // `server_cpu_share` right after `server_exit_clean`, then the udp columns; its
        // results.json, which `--baseline`/`--diff` read, names every field.)
        let header: Vec<&str> = csv_columns().map(|c| c.header).collect();
        assert_eq!(
            header.join(","),
            "model,scenario,conns,size,idle_conns,repeat,responses,responses_per_sec,\
             mib_per_sec,p50_us,p99_us,p999_us,max_us,errors,jain,min_per_conn,\
             server_cpu_secs,responses_per_cpu_sec,peak_rss_kb,peak_threads,peak_processes,\
             voluntary_ctx_switches,involuntary_ctx_switches,idle_held,memory_per_conn_kb,\
             server_exit_clean,client_cpu_secs,server_errors,server_cpu_share,offered_rate,sent,\
             sent_per_sec,lost,loss_pct,server_socket_drops,work,rate,p99_fast_us,p99_slow_us,\
             latency_samples,censored_waits,censored_samples,client_cpu_limit_secs,client_bound,\
             suspect,failure,client_socket_drops,server_rcvbuf_bytes,client_rcvbuf_bytes,\
             server_cpu_uncertain_secs"
        );
    }

    #[test]
    fn a_row_reads_as_in_the_committed_runs() {
        // The first row of the 2026-11-23 default run (since replaced by
        // results/2026-11-30-vm-full), from its results.json.
        let m = Measurement {
            model: "iterative".into(),
            cell: Scenario::Latency.cells(false)[0],
            repeat: 0,
            responses: 38637,
            responses_per_sec: 38637.0,
            mib_per_sec: 2.35821533203125,
            p50_us: 25.087,
            p99_us: 46.079,
            p999_us: 74.751,
            max_us: 4018.175,
            p99_fast_us: None,
            p99_slow_us: None,
            latency_samples: 38637,
            censored_waits: 0,
            censored_samples: 0,
            errors: Default::default(),
            jain: 1.0,
            min_per_conn: 38637,
            server_cpu_secs: 0.55,
            server_cpu_uncertain_secs: 0.0,
            server_cpu_share: 0.55,
            responses_per_cpu_sec: Some(70249.0909090909),
            peak_rss_kb: 3616,
            peak_threads: 1,
            peak_processes: 1,
            voluntary_ctx_switches: Some(56551),
            involuntary_ctx_switches: Some(235),
            idle_held: None,
            memory_per_conn_kb: None,
            server_exit_clean: true,
            client_cpu_secs: 0.5,
            client_cpu_limit_secs: 1.0,
            marks: Default::default(),
            server_errors: Default::default(),
            agent_cpu_shares: Vec::new(),
            udp: Default::default(),
            failure: None,
        };
        let row: Vec<String> = csv_columns().map(|c| (c.show)(&m)).collect();
        assert_eq!(
            row.join(","),
            "iterative,latency,1,64,0,0,38637,38637.0,2.358,25.1,46.1,74.8,4018.2,,1.0000,38637,\
             0.5500,70249.091,3616,1,1,56551,235,,,true,0.5000,,0.5500,,,,,,,,,,,38637,0,0,1.0000,,,,,,,0.0000"
        );
    }

    #[test]
    fn idle_columns_are_only_in_the_idle_table() {
        let headings =
            |scenario| -> Vec<&str> { table_columns(scenario).map(|t| t.heading).collect() };
        assert!(headings(Scenario::Idle).contains(&"KiB/conn"));
        assert!(!headings(Scenario::Latency).contains(&"KiB/conn"));
        assert_eq!(headings(Scenario::Latency).last(), Some(&"note"));
    }

    #[test]
    fn loss_is_a_column_of_the_udp_table_only() {
        let headings =
            |scenario| -> Vec<&str> { table_columns(scenario).map(|t| t.heading).collect() };
        assert!(headings(Scenario::Udp).contains(&"loss %"));
        assert!(headings(Scenario::Udp).contains(&"server CPU µs/resp"));
        assert!(!headings(Scenario::Throughput).contains(&"loss %"));
    }

    #[test]
    fn every_column_shows_somewhere_and_says_how_to_read_it() {
        for c in COLUMNS {
            assert!(c.csv.is_some() || c.table.is_some());
            let name = (c.csv.map(|f| f.header), c.table.map(|t| t.heading));
            assert!(!c.about.is_empty(), "{name:?}");
        }
    }
}
