use std::process::ExitCode;

use anyhow::Result;
use echolab::models::MODELS;

pub(crate) fn run() -> Result<ExitCode> {
    let width = MODELS.iter().map(|m| m.name.len()).max().unwrap_or(0);
    for model in MODELS {
        println!("{:width$}  {}", model.name, model.summary);
    }
    Ok(ExitCode::SUCCESS)
}
