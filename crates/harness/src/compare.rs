//! The whole matrix: every model on every cell, repeats interleaved so that a noisy
//! minute on a shared machine lands on all models rather than on one.

use std::io::IsTerminal;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cell::{run_cell, Measurement, RunSettings};
use crate::error::HarnessError;
use crate::floor_cost::FloorCost;
use crate::host::Hosts;
use crate::scenario::Plan;

/// Runs `plan`, calling `log` with a line for each failed run (a model that cannot start
/// is reported and skipped, not fatal to the other models). When stderr is not a
/// terminal there is no progress bar, so a line goes there as each cell starts: a long
/// run in the background says in its log where it is.
///
/// `floors` is the kernel's floor cost per response for the plan's messages
/// ([`crate::measure_floor_costs`]): a run whose server CPU per response falls below half
/// of it is marked measurement suspect.
pub fn run_plan(
    plan: &Plan,
    binary: &Path,
    threads: usize,
    floors: &[FloorCost],
    hosts: &Hosts,
    mut log: impl FnMut(&str),
) -> Result<Vec<Measurement>, HarnessError> {
    let settings = RunSettings {
        binary,
        duration: plan.duration,
        warmup: plan.warmup,
        threads,
        server_cpu: plan.pin.server_cpu(),
        work: plan
            .work
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| HarnessError::Plan(format!("--work: {e}")))?,
        hosts,
    };
    if let Some(cpu) = plan.pin.client_cpu() {
        // The generator threads are spawned from this one and inherit its CPU.
        crate::floor::pin_this_thread(cpu)
            .map_err(|e| HarnessError::Plan(format!("cannot pin the client to CPU {cpu}: {e}")))?;
    }
    let progress = progress_bar(plan.runs() as u64);
    let plain = progress.is_hidden();
    let started = std::time::Instant::now();
    let mut measurements = Vec::with_capacity(plan.runs());
    for repeat in 0..plan.repeat {
        for cell in &plan.cells {
            if plain && plan.models.iter().any(|m| plan.fits(m, cell)) {
                eprintln!(
                    "echolab compare: run {}/{}: {} (repeat {}/{}), {:.0} s in",
                    progress.position() + 1,
                    plan.runs(),
                    cell.label(),
                    repeat + 1,
                    plan.repeat,
                    started.elapsed().as_secs_f64()
                );
            }
            for model in plan.models.iter().filter(|m| plan.fits(m, cell)) {
                progress.set_message(format!("{model} {} (repeat {})", cell.label(), repeat + 1));
                match run_cell(&settings, model, *cell, repeat) {
                    Ok(mut m) => {
                        m.mark_suspect(floors);
                        measurements.push(m);
                    }
                    Err(e @ (HarnessError::Load(_) | HarnessError::Agent(_))) => return Err(e),
                    Err(e) => {
                        progress.suspend(|| log(&format!("{model} {}: {e}", cell.label())));
                        measurements.push(Measurement::could_not_run(model, *cell, repeat, &e));
                    }
                }
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    Ok(measurements)
}

fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
