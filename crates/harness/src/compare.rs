//! The whole matrix: every model on every cell, repeats interleaved so that a noisy
//! minute on a shared machine lands on all models rather than on one.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cell::{run_cell, Measurement, RunSettings};
use crate::error::HarnessError;
use crate::estimate::say;
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
        crate::floor::pin_this_thread(cpu).map_err(|source| HarnessError::Pin { cpu, source })?;
    }
    let progress = progress_bar(plan.runs() as u64);
    let plain = progress.is_hidden();
    let cpus = crate::floor::allowed_cpus();
    let mut left = TimeLeft::new(plan.runs_estimate(cpus));
    let mut measurements = Vec::with_capacity(plan.runs());
    for repeat in 0..plan.repeat {
        for cell in &plan.cells {
            if plain && plan.models.iter().any(|m| plan.fits(m, cell)) {
                eprintln!(
                    "echolab compare: run {}/{}: {} (repeat {}/{}), {:.0} s in, about {} left",
                    progress.position() + 1,
                    plan.runs(),
                    cell.label(),
                    repeat + 1,
                    plan.repeat,
                    left.started.elapsed().as_secs_f64(),
                    say(left.left())
                );
            }
            for model in plan.models.iter().filter(|m| plan.fits(m, cell)) {
                progress.set_message(format!(
                    "about {} left; {model} {} (repeat {})",
                    say(left.left()),
                    cell.label(),
                    repeat + 1
                ));
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
                left.done(plan.run_estimate(model, cell, cpus));
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
        // Our own time left in the message: the bar's would take every run as equal, and
        // an idle crowd's run is not.
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The time a run has left: the estimate of the runs not yet made, scaled by how the
/// runs made so far compared with their estimate (a busy machine runs slower than the
/// figures the estimate was made from, a remote one perhaps faster).
struct TimeLeft {
    started: Instant,
    total: Duration,
    done: Duration,
}

impl TimeLeft {
    fn new(total: Duration) -> TimeLeft {
        TimeLeft {
            started: Instant::now(),
            total,
            done: Duration::ZERO,
        }
    }

    /// One more run made, estimated at `estimate`.
    fn done(&mut self, estimate: Duration) {
        self.done += estimate;
    }

    fn left(&self) -> Duration {
        remaining(self.total, self.done, self.started.elapsed())
    }
}

/// Of `total` estimated, `done` is made in `elapsed`: what is left at that pace (the
/// pace bounded to between half and three times the estimate's, so one slow first run
/// does not promise an hour).
fn remaining(total: Duration, done: Duration, elapsed: Duration) -> Duration {
    let rest = total.saturating_sub(done);
    if done.is_zero() {
        return rest;
    }
    let pace = (elapsed.as_secs_f64() / done.as_secs_f64()).clamp(0.5, 3.0);
    rest.mul_f64(pace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_follows_the_pace_of_the_runs_made() {
        let s = Duration::from_secs;
        assert_eq!(remaining(s(100), s(0), s(0)), s(100));
        // On pace.
        assert_eq!(remaining(s(100), s(50), s(50)), s(50));
        // Twice as slow as estimated: the rest will be too.
        assert_eq!(remaining(s(100), s(50), s(100)), s(100));
        // A first run far off the estimate moves it at most threefold.
        assert_eq!(remaining(s(100), s(1), s(60)), s(297));
        assert_eq!(remaining(s(100), s(100), s(130)), s(0));
    }
}
