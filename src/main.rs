//! `echolab`: start any server model, talk to it, load it, compare the models.

mod cli;
mod key_file;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("echolab: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
