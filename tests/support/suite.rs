//! The shared-suite pattern: a list of cases, each run once per registered model as a
//! trial named `MODEL::case`, so a model added to the registry is tested with no edit.

use std::sync::RwLock;

use echolab::models::{Model, MODELS};
use libtest_mimic::{Arguments, Trial};

/// One test case of a suite.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Model),
    /// `Some(true)`: only for models that serve clients concurrently; `Some(false)`:
    /// only for those that do not; `None`: every model.
    pub needs_concurrency: Option<bool>,
    /// Only for models with this property (a case about a mechanism that only such
    /// models have; the case list says why). Chosen by property, never by name, so a
    /// new model of the same shape gets the case with no edit.
    pub applies: fn(&Model) -> bool,
    /// Runs with no other trial beside it: for cases that assert a latency bound, which
    /// a CPU-heavy neighbour on a 2-core machine would break, and for the CPU-heavy
    /// cases themselves.
    pub alone: bool,
}

impl Case {
    /// The same case, run with no other trial beside it.
    pub const fn alone(self) -> Case {
        Case {
            alone: true,
            ..self
        }
    }
}

/// Held shared by every trial, exclusively by a trial that runs alone.
static RUNNING: RwLock<()> = RwLock::new(());

/// A case for every model.
pub const fn case(name: &'static str, run: fn(&Model)) -> Case {
    Case {
        name,
        run,
        needs_concurrency: None,
        applies: every_model,
        alone: false,
    }
}

fn every_model(_: &Model) -> bool {
    true
}

/// A case for models that serve clients concurrently.
pub const fn concurrent_case(name: &'static str, run: fn(&Model)) -> Case {
    Case {
        name,
        run,
        needs_concurrency: Some(true),
        applies: every_model,
        alone: false,
    }
}

/// A case for the models that have a property only.
pub const fn case_where(name: &'static str, applies: fn(&Model) -> bool, run: fn(&Model)) -> Case {
    Case {
        name,
        run,
        needs_concurrency: None,
        applies,
        alone: false,
    }
}

/// Expands `cases` over the registry and runs them with libtest's command line.
pub fn run_over_models(cases: &'static [Case]) -> ! {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for model in MODELS {
        for case in cases {
            if case
                .needs_concurrency
                .is_some_and(|c| c != model.concurrent())
            {
                continue;
            }
            if !(case.applies)(model) {
                continue;
            }
            let (run, alone) = (case.run, case.alone);
            trials.push(Trial::test(
                format!("{}::{}", model.name, case.name),
                move || {
                    // A poisoned lock only means another trial failed.
                    let _exclusive =
                        alone.then(|| RUNNING.write().unwrap_or_else(|e| e.into_inner()));
                    let _shared =
                        (!alone).then(|| RUNNING.read().unwrap_or_else(|e| e.into_inner()));
                    run(model);
                    Ok(())
                },
            ));
        }
    }
    libtest_mimic::run(&args, trials).exit()
}
