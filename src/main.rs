//! `echolab`: start any server model, talk to it, load it, compare the models.

#![forbid(unsafe_code)]
// The doc comments under src/cli/ are clap's `--help` text, read in a terminal, where
// `results/<run>` and `[::1]:7000` mean what they say; rustdoc would read them as HTML
// tags and intra-doc links.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod cli;
mod key_file;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs on demand only: `RUST_LOG=debug` shows each connection's life, `trace` each
    // loop turn and blocking call. Unset, no subscriber exists and logging costs nothing.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("echolab: error: {err:#}");
            if err.is::<cli::UsageError>() {
                ExitCode::from(cli::USAGE_EXIT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
