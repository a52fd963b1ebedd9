use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use echolab_registry::{Transport, MODELS};

use super::args::TransportArg;

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    /// Print only the names, one per line (for scripts).
    #[arg(long)]
    names: bool,
    /// Only the models of this transport (tcp: the stream models, udp: the datagram
    /// ones).
    #[arg(long, value_enum)]
    transport: Option<TransportArg>,
}

pub(crate) fn run(args: ModelsArgs) -> Result<ExitCode> {
    let wanted = args.transport.map(|t| match t {
        TransportArg::Tcp => Transport::Stream,
        TransportArg::Udp => Transport::Datagram,
    });
    let models = MODELS
        .iter()
        .filter(|m| wanted.is_none_or(|t| m.transport == t));
    if args.names {
        for model in models {
            println!("{}", model.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = models
        .map(|m| {
            [
                m.name.to_string(),
                m.runs.label().to_string(),
                m.transport.label().to_string(),
                m.natural_limit
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                m.summary.to_string(),
            ]
        })
        .collect();
    let header = ["MODEL", "CONNECTIONS RUN", "TRANSPORT", "LIMIT", "SUMMARY"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let [a, b, c, d, e] = cells;
        let [wa, wb, wc, wd, _] = widths;
        println!("{a:wa$}  {b:wb$}  {c:wc$}  {d:>wd$}  {e}");
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    Ok(ExitCode::SUCCESS)
}
