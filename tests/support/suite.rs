//! The shared-suite pattern: a list of cases, each run once per registered model as a
//! trial named `MODEL::case`, so a model added to the registry is tested with no edit;
//! beside them, tests that run once (a tool against a server of their own).
//!
//! A case that needs what the machine may lack (a tool, a privilege) says so in
//! [`Case::needs`]; where it is missing, its trials are listed as *ignored*, with the
//! reason as their kind (`test [needs prlimit] fork::case ... ignored`), so the summary
//! counts them as ignored rather than as passed.

use std::sync::RwLock;

use echolab_registry::{Model, Transport, MODELS};
use libtest_mimic::{Arguments, Failed, Trial};

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
    /// What the machine must offer for the case to test anything, checked once when the
    /// trial list is built: `Err(why)` lists its trials as ignored with `why` as their
    /// kind. `--include-ignored` runs them anyway, and they fail with `why`.
    pub needs: fn() -> Result<(), String>,
}

impl Case {
    /// The same case, run with no other trial beside it.
    pub const fn alone(self) -> Case {
        Case {
            alone: true,
            ..self
        }
    }

    /// The same case, run only where `check` passes (ignored, with its reason, where
    /// it does not).
    pub const fn needs(self, check: fn() -> Result<(), String>) -> Case {
        Case {
            needs: check,
            ..self
        }
    }
}

/// A test that runs once, not per model.
pub struct Test {
    pub name: &'static str,
    pub run: fn(),
    /// As [`Case::alone`].
    pub alone: bool,
    /// As [`Case::needs`].
    pub needs: fn() -> Result<(), String>,
}

impl Test {
    /// The same test, run with no other trial beside it.
    pub const fn alone(self) -> Test {
        Test {
            alone: true,
            ..self
        }
    }

    /// The same test, run only where `check` passes (ignored, with its reason, where
    /// it does not).
    pub const fn needs(self, check: fn() -> Result<(), String>) -> Test {
        Test {
            needs: check,
            ..self
        }
    }
}

/// A test that runs once.
pub const fn test(name: &'static str, run: fn()) -> Test {
    Test {
        name,
        run,
        alone: false,
        needs: nothing,
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
        needs: nothing,
    }
}

fn every_model(_: &Model) -> bool {
    true
}

fn nothing() -> Result<(), String> {
    Ok(())
}

/// A case for models that serve clients concurrently.
pub const fn concurrent_case(name: &'static str, run: fn(&Model)) -> Case {
    Case {
        needs_concurrency: Some(true),
        ..case(name, run)
    }
}

/// A case for the models that have a property only.
pub const fn case_where(name: &'static str, applies: fn(&Model) -> bool, run: fn(&Model)) -> Case {
    Case {
        applies,
        ..case(name, run)
    }
}

/// A suite: cases over the registry's models of one transport, tests that run once, and
/// how many trials run at once.
pub struct Suite {
    pub cases: &'static [Case],
    /// The models the cases run over: every stream suite (conformance, faults, soak,
    /// load, the readiness and blocking suites) over the TCP models, the datagram suite
    /// over the UDP ones. The one place a suite chooses by transport.
    pub transport: Transport,
    pub tests: &'static [Test],
    /// Trials at once where `--test-threads` does not say: `None` for one per CPU;
    /// more for trials that mostly wait (a soak lasts its duration however many run).
    pub threads: Option<usize>,
}

/// Expands `cases` over the registry's stream models and runs them with libtest's
/// command line.
pub fn run_over_models(cases: &'static [Case]) -> ! {
    Suite {
        cases,
        transport: Transport::Stream,
        tests: &[],
        threads: None,
    }
    .run()
}

/// Expands `cases` over the registry's datagram (UDP) models, runs `tests` once.
pub fn run_over_datagram_models(cases: &'static [Case], tests: &'static [Test]) -> ! {
    Suite {
        cases,
        transport: Transport::Datagram,
        tests,
        threads: None,
    }
    .run()
}

/// Runs `tests`, each once: a suite about no model in particular (what the kernel
/// does, how the binary fails), with the same ignored-with-a-reason as the cases.
pub fn run_once(tests: &'static [Test]) -> ! {
    Suite {
        cases: &[],
        transport: Transport::Stream,
        tests,
        threads: None,
    }
    .run()
}

/// Runs `cases` over the registry and `tests` once, four trials at once where
/// `--test-threads` does not say: for suites whose trials each last a set time (a soak,
/// a load run) whatever runs beside them, so that more at once keeps the suite short as
/// models are added. A trial that asserts a rate or a latency runs alone.
pub fn run_timed(cases: &'static [Case], tests: &'static [Test]) -> ! {
    Suite {
        cases,
        transport: Transport::Stream,
        tests,
        threads: Some(4),
    }
    .run()
}

impl Suite {
    /// Builds the trial list and runs it with libtest's command line.
    pub fn run(&self) -> ! {
        let mut args = Arguments::from_args();
        if args.test_threads.is_none() {
            args.test_threads = self.threads;
        }
        let mut trials = Vec::new();
        for case in self.cases {
            let missing = (case.needs)().err();
            for model in MODELS.iter().filter(|m| m.transport == self.transport) {
                if case
                    .needs_concurrency
                    .is_some_and(|c| c != model.concurrent())
                {
                    continue;
                }
                if !(case.applies)(model) {
                    continue;
                }
                let run = case.run;
                let name = format!("{}::{}", model.name, case.name);
                trials.push(match &missing {
                    None => trial(name, case.alone, move || run(model)),
                    Some(why) => ignored(name, why),
                });
            }
        }
        for test in self.tests {
            let name = test.name.to_string();
            trials.push(match (test.needs)() {
                Ok(()) => trial(name, test.alone, test.run),
                Err(why) => ignored(name, &why),
            });
        }
        libtest_mimic::run(&args, trials).exit()
    }
}

fn trial(name: String, alone: bool, run: impl FnOnce() + Send + 'static) -> Trial {
    Trial::test(name, move || {
        // A poisoned lock only means another trial failed.
        let _exclusive = alone.then(|| RUNNING.write().unwrap_or_else(|e| e.into_inner()));
        let _shared = (!alone).then(|| RUNNING.read().unwrap_or_else(|e| e.into_inner()));
        run();
        Ok(())
    })
}

/// A trial that cannot test anything here: ignored, `why` shown as its kind; run
/// anyway (`--include-ignored`), it fails with `why`.
fn ignored(name: String, why: &str) -> Trial {
    let reason = why.to_string();
    Trial::test(name, move || Err(Failed::from(reason)))
        .with_ignored_flag(true)
        .with_kind(why)
}
