//! How long a plan takes, said before it runs and as it goes: each run's windows, plus
//! what a run costs around them. A server's start and stop are a constant per run; a
//! client that waits for a reply that never comes (a model that serves fewer clients
//! than the cell has) holds the run for the collection time after its end; a UDP run
//! past its rate's loss waits the reply timeout; the idle crowd's set-up and teardown
//! grow with what each connection costs the model (a process, a thread, or a slot in a
//! loop). The constants are the harness's own phase timings on the 2-core VM of
//! results/; an estimate only orders and paces the runs, so a machine that differs
//! makes it wrong, never a result.

use std::time::Duration;

use echolab_registry::{Model, Runs};

use crate::cell::{HARNESS_COLLECT_OWED, IDLE_NO_PROGRESS, UDP_REPLY_TIMEOUT};
use crate::scenario::{Cell, Plan, Scenario};
use crate::variant::Variant;

/// A server's start and stop, and the run's bookkeeping, with nothing held.
const RUN_OVERHEAD: Duration = Duration::from_millis(40);
/// Opening one idle connection from the harness.
const CONNECT: Duration = Duration::from_micros(60);
/// What one idle connection costs a model to take and, at the end, to let go: a fork
/// (1,000 took 1.3 s to be held and 0.18 s to stop), a thread (0.26 s and 0.1 s), a
/// slot in a loop or a runtime (0.03–0.15 s and 0.03–0.15 s).
fn per_idle_connection(model: &Model) -> Duration {
    match model.runs {
        Runs::ProcessEach => Duration::from_micros(1_450),
        Runs::ThreadEach | Runs::Runtime => Duration::from_micros(300),
        _ => Duration::from_micros(150),
    }
}

impl Plan {
    /// The whole plan on a machine with `cpus` CPUs: its set-up and every run.
    pub fn estimate(&self, cpus: usize) -> Duration {
        self.setup_estimate(cpus) + self.runs_estimate(cpus)
    }

    /// Every run, without the set-up.
    pub fn runs_estimate(&self, cpus: usize) -> Duration {
        let per_repeat: Duration = self
            .models
            .iter()
            .flat_map(|m| self.cells.iter().map(move |c| (m, c)))
            .filter(|(m, c)| self.fits(m, c))
            .map(|(m, c)| self.run_estimate(m, c, cpus))
            .sum();
        per_repeat * self.repeat as u32
    }

    /// What the run measures before its first cell: the loopback floor (on one CPU,
    /// and across two when there are), and the kernel's floor per message kind.
    pub fn setup_estimate(&self, cpus: usize) -> Duration {
        let placements = if cpus > 1 { 2 } else { 1 };
        crate::floor::PING_FOR * placements
            + crate::floor_cost::TIME_PER_SIZE * self.message_kinds().len() as u32
    }

    /// One run of `model` (a variant label too) on `cell`.
    pub fn run_estimate(&self, model: &str, cell: &Cell, cpus: usize) -> Duration {
        let mut run = self.warmup + self.duration + RUN_OVERHEAD;
        let Some(registered) = echolab_registry::find(Variant::parse(model).model) else {
            return run;
        };
        let workers = Variant::parse(model).workers.unwrap_or(cpus.max(1));
        let serves_at_once = match registered.runs {
            Runs::InTurn if registered.is_stream() => 1,
            _ if registered.one_client_per_worker() && registered.is_stream() => workers,
            _ => usize::MAX,
        };
        if cell.conns > 0 && cell.conns + cell.idle_conns > serves_at_once {
            run += HARNESS_COLLECT_OWED;
        }
        if cell.scenario == Scenario::Udp {
            // Counted as if some datagram were always lost: a UDP run waits for them.
            run += UDP_REPLY_TIMEOUT;
        }
        if cell.idle_conns > 0 {
            let idle = cell.idle_conns as u32;
            run += CONNECT * idle + per_idle_connection(registered) * idle;
            if registered.accepts_when_free {
                // It stops taking the crowd; the harness waits to see no progress.
                run += IDLE_NO_PROGRESS + Duration::from_millis(100);
            }
        }
        run
    }
}

/// `4 min 10 s`, `45 s`: a time a person plans around.
pub fn say(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// Whole minutes, rounded up: what the README promises.
pub fn minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_model() -> Vec<String> {
        echolab_registry::MODELS
            .iter()
            .map(|m| m.name.to_string())
            .collect()
    }

    #[test]
    fn the_default_plan_answers_in_five_minutes_on_two_cores() {
        let plan = Plan::new(every_model(), &[], false);
        let scenarios: Vec<Scenario> = plan.cells.iter().map(|c| c.scenario).collect();
        assert_eq!(
            scenarios,
            [
                Scenario::Latency,
                Scenario::Throughput,
                Scenario::Throughput,
                Scenario::Churn,
                Scenario::Idle,
                Scenario::Udp
            ]
        );
        assert_eq!(plan.repeat, 3);
        // Each stream model x 5 cells and each datagram model x 1, three times.
        let models = echolab_registry::MODELS;
        let stream = models.iter().filter(|m| m.is_stream()).count();
        assert_eq!(plan.runs(), (stream * 5 + (models.len() - stream)) * 3);
        let estimate = plan.estimate(2);
        assert!(estimate <= Duration::from_secs(300), "{}", say(estimate));
        assert!(estimate >= Duration::from_secs(180), "{}", say(estimate));
        // What the README says is what this says.
        let readme = include_str!("../../../README.md");
        let promise = format!("an estimated {} minutes", minutes(estimate));
        assert!(readme.contains(&promise), "README should say {promise:?}");
    }

    #[test]
    fn a_run_costs_its_windows_and_what_its_model_makes_it_wait() {
        let plan = Plan::new(every_model(), &[], false);
        let windows = plan.warmup + plan.duration;
        let cell = |scenario: Scenario, conns: usize| {
            *plan
                .cells
                .iter()
                .find(|c| c.scenario == scenario && c.conns == conns)
                .expect("a default cell")
        };
        let latency = cell(Scenario::Latency, 1);
        assert_eq!(
            plan.run_estimate("mio", &latency, 2),
            windows + RUN_OVERHEAD
        );
        // Nine clients of ten wait for replies that never come: the collection time.
        let ten = cell(Scenario::Throughput, 10);
        assert_eq!(
            plan.run_estimate("iterative", &ten, 2),
            windows + RUN_OVERHEAD + HARNESS_COLLECT_OWED
        );
        assert_eq!(
            plan.run_estimate("pool+workers100", &ten, 2),
            windows + RUN_OVERHEAD
        );
        // A fork per idle connection costs more than a slot in a loop.
        let idle = cell(Scenario::Idle, 1);
        assert!(plan.run_estimate("fork", &idle, 2) > plan.run_estimate("mio", &idle, 2));
        assert!(
            plan.run_estimate("prefork", &idle, 2)
                > windows + RUN_OVERHEAD + HARNESS_COLLECT_OWED + IDLE_NO_PROGRESS
        );
        let full = Plan::new(every_model(), &[], true);
        assert!(
            full.estimate(2) > Duration::from_secs(45 * 60),
            "{}",
            say(full.estimate(2))
        );
    }

    #[test]
    fn times_read_as_a_person_says_them() {
        assert_eq!(say(Duration::from_secs(45)), "45 s");
        assert_eq!(say(Duration::from_secs(240)), "4 min");
        assert_eq!(say(Duration::from_millis(250_400)), "4 min 10 s");
        assert_eq!(minutes(Duration::from_secs(241)), 5);
        assert_eq!(minutes(Duration::from_secs(240)), 4);
    }
}
