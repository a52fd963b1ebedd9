//! The scenarios and the matrix of cells they expand to.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;
use crate::variant::{work_variants, Variant};
use crate::work::{WorkPreset, WORK_CONNS, WORK_SIZE};

/// A named preset workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// One connection, 64 B, one message in flight: the round trip.
    Latency,
    /// Connections x payload sizes, closed loop.
    Throughput,
    /// A new connection per message: accept and teardown cost.
    Churn,
    /// Thousands of idle connections held open while one client pings: memory per
    /// connection, and whether an idle crowd slows the active client.
    Idle,
    /// One client pinging beside a growing idle crowd (0, 100, 1,000, ...): what each
    /// wait costs as the descriptors it must consider grow — flat for epoll, growing for
    /// `select(2)`, `poll(2)` and a busy loop.
    Crowd,
    /// An idle crowd and no traffic at all: what the server burns doing nothing (a busy
    /// loop's spinning, the blocking models' timeout ticks).
    Rest,
    /// UDP, the datagram models only: a few client sockets offering datagrams at a set
    /// rate (open loop), rising until the server loses some; loss, latency and server
    /// CPU per reply at each rate.
    Udp,
    /// The server does work per message (`--work`: CPU, a blocking call, a long-tail
    /// mix): an open-loop sweep of offered load and a closed loop, on 100 connections,
    /// with the event loops inline and offloaded (see the `work` module). Run only when
    /// asked for (`--scenario work`).
    Work,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 8] = [
        Scenario::Latency,
        Scenario::Throughput,
        Scenario::Churn,
        Scenario::Idle,
        Scenario::Crowd,
        Scenario::Rest,
        Scenario::Udp,
        Scenario::Work,
    ];

    /// Whether `--full` with no `--scenario` runs it: every scenario but `work`, whose
    /// sweep of three kinds of work over every model and its variants takes a quarter of
    /// an hour by itself. No wildcard arm: a new scenario must be placed.
    pub fn in_full(self) -> bool {
        match self {
            Scenario::Latency
            | Scenario::Throughput
            | Scenario::Churn
            | Scenario::Idle
            | Scenario::Crowd
            | Scenario::Rest
            | Scenario::Udp => true,
            Scenario::Work => false,
        }
    }

    /// Its lowercase name (CLI, files).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Latency => "latency",
            Scenario::Throughput => "throughput",
            Scenario::Churn => "churn",
            Scenario::Idle => "idle",
            Scenario::Crowd => "crowd",
            Scenario::Rest => "rest",
            Scenario::Udp => "udp",
            Scenario::Work => "work",
        }
    }

    /// Whether it drives the datagram (UDP) models; every other scenario drives the
    /// stream (TCP) ones.
    pub fn is_datagram(self) -> bool {
        self == Scenario::Udp
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Result<Scenario, HarnessError> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                HarnessError::Plan(format!(
                    "unknown scenario `{name}`; the scenarios are: {}",
                    names.join(", ")
                ))
            })
    }

    /// The cells this scenario runs: a sensible subset by default, the whole matrix
    /// with `full`.
    pub fn cells(self, full: bool) -> Vec<Cell> {
        let cell = |conns, size, idle| Cell {
            scenario: self,
            conns,
            size,
            idle_conns: idle,
            rate: None,
            work: None,
        };
        match self {
            Scenario::Latency => vec![cell(1, 64, 0)],
            Scenario::Throughput => {
                let (conns, sizes): (&[usize], &[usize]) = if full {
                    (&[1, 10, 100, 1000], &[64, 4096, 65536])
                } else {
                    (&[1, 10, 100], &[64, 4096])
                };
                sizes
                    .iter()
                    .flat_map(|&size| conns.iter().map(move |&c| (c, size)))
                    .map(|(c, size)| cell(c, size, 0))
                    .collect()
            }
            Scenario::Churn => vec![cell(10, 64, 0)],
            Scenario::Idle => vec![cell(1, 64, if full { 5000 } else { 1000 })],
            Scenario::Crowd => {
                let crowds: &[usize] = if full {
                    &[0, 100, 1000, 5000]
                } else {
                    &[0, 100, 1000]
                };
                crowds.iter().map(|&idle| cell(1, 64, idle)).collect()
            }
            Scenario::Rest => vec![cell(0, 64, 1000)],
            Scenario::Udp => {
                let rates: &[u64] = if full { UDP_RATES_FULL } else { UDP_RATES };
                [64, 1400]
                    .iter()
                    .flat_map(|&size| rates.iter().map(move |&rate| (size, rate)))
                    .map(|(size, rate)| Cell {
                        rate: Some(rate),
                        ..cell(UDP_SOCKETS, size, 0)
                    })
                    .collect()
            }
            Scenario::Work => WorkPreset::ALL
                .iter()
                .flat_map(|&preset| preset.rates().into_iter().map(move |r| (preset, r)))
                .map(|(preset, rate)| Cell {
                    rate,
                    work: Some(preset),
                    ..cell(WORK_CONNS, WORK_SIZE, 0)
                })
                .collect(),
        }
    }
}

/// The cells of the plan with no flags: one per question the README asks, so that
/// the whole registry answers in minutes. What does one round trip cost (latency,
/// 1 x 64 B)? How many responses, at what server CPU, with 10 and with 100 clients
/// (throughput, 64 B)? What does a connection cost to open and close (churn)? What does
/// an idle connection cost in memory, and does an idle crowd slow the one active client
/// (idle, 1,000 held)? And for the datagram models, one offered rate. `--full`, or
/// `--scenario`, has the rest.
pub fn default_cells() -> Vec<Cell> {
    let cell = |scenario, conns, idle_conns, rate| Cell {
        scenario,
        conns,
        size: 64,
        idle_conns,
        rate,
        work: None,
    };
    vec![
        cell(Scenario::Latency, 1, 0, None),
        cell(Scenario::Throughput, 10, 0, None),
        cell(Scenario::Throughput, 100, 0, None),
        cell(Scenario::Churn, 10, 0, None),
        cell(Scenario::Idle, 1, 1000, None),
        cell(Scenario::Udp, UDP_SOCKETS, 0, Some(UDP_DEFAULT_RATE)),
    ]
}

/// The `udp` cell of the plan with no flags: a rate every datagram model answers on
/// the 2-core VM, with the client on the same cores.
pub(crate) const UDP_DEFAULT_RATE: u64 = 50_000;

/// Measured time per run, without `--full`: long enough for ten thousand round trips
/// on one connection, short enough that the plan with no flags runs in minutes.
pub(crate) const DEFAULT_DURATION: Duration = Duration::from_millis(750);
/// Warm-up per run, without `--full`: connections made, threads spawned, caches warm.
pub(crate) const DEFAULT_WARMUP: Duration = Duration::from_millis(250);

/// Client sockets in the `udp` scenario (each its own source port, so a
/// `SO_REUSEPORT` model spreads them).
pub(crate) const UDP_SOCKETS: usize = 4;
/// Offered rates of the `udp` scenario's default run, datagrams per second: from a rate
/// every model answers to one past where the one-thread models lose datagrams (measured
/// on the 2-core VM of results/, where the client shares the cores).
pub(crate) const UDP_RATES: &[u64] = &[25_000, 50_000, 100_000];
/// The same, `--full`.
pub(crate) const UDP_RATES_FULL: &[u64] =
    &[10_000, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000];

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One point of the matrix: a scenario at one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cell {
    /// Which preset.
    pub scenario: Scenario,
    /// Active (load-generating) connections.
    pub conns: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Idle connections held open beside the active ones.
    pub idle_conns: usize,
    /// Offered messages per second, in total (the open loop of the `udp` and `work`
    /// scenarios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// The server's work per message (the `work` scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<WorkPreset>,
}

impl Cell {
    /// A short label: `throughput 100x4096`, `idle 5000+1x64`, `udp 4x64 @ 100k/s`.
    pub fn label(&self) -> String {
        if let Some(work) = self.work {
            let rate = self
                .rate
                .map(|r| format!(" @ {}/s", crate::figures::short(r as f64)))
                .unwrap_or_default();
            format!(
                "{} {} {}x{}{rate}",
                self.scenario,
                work.spec_text(),
                self.conns,
                self.size
            )
        } else if let Some(rate) = self.rate {
            format!(
                "{} {}x{} @ {}/s",
                self.scenario,
                self.conns,
                self.size,
                crate::figures::short(rate as f64)
            )
        } else if self.conns == 0 {
            format!("{} {} idle", self.scenario, self.idle_conns)
        } else if self.idle_conns > 0 {
            format!(
                "{} {}+{}x{}",
                self.scenario, self.idle_conns, self.conns, self.size
            )
        } else {
            format!("{} {}x{}", self.scenario, self.conns, self.size)
        }
    }
}

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Model names, in order.
    pub models: Vec<String>,
    /// The cells, in order.
    pub cells: Vec<Cell>,
    /// Runs of each cell.
    pub repeat: usize,
    /// Measured time per cell.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Load before measuring, per cell.
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
    /// The whole matrix (`--full`) rather than the default subset.
    pub full: bool,
    /// Where the server and the client run.
    pub pin: Pin,
    /// `compare --work SPEC`: the work every server does per message in every cell
    /// (the `work` scenario's cells name their own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work: Option<String>,
}

/// Where the server and the load generator run (`echolab compare --pin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// Left to the scheduler.
    #[default]
    None,
    /// Both on CPU 0: every message is a hand-off on one CPU, no cross-CPU wake-up.
    Same,
    /// Server on CPU 0, client on CPU 1: every message crosses CPUs.
    Split,
}

impl Pin {
    /// The server's CPU, if pinned.
    pub fn server_cpu(self) -> Option<usize> {
        (self != Pin::None).then_some(0)
    }

    /// The load generator's CPU, if pinned.
    pub fn client_cpu(self) -> Option<usize> {
        match self {
            Pin::None => None,
            Pin::Same => Some(0),
            Pin::Split => Some(1),
        }
    }

    /// Every placement.
    pub const ALL: [Pin; 3] = [Pin::None, Pin::Same, Pin::Split];

    /// Its name, as `--pin` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Pin::None => "none",
            Pin::Same => "same",
            Pin::Split => "split",
        }
    }

    /// Parses `none`, `same` or `split`.
    pub fn parse(name: &str) -> Result<Pin, HarnessError> {
        Pin::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                HarnessError::Plan(format!(
                    "unknown placement `{name}`; --pin takes none, same or split"
                ))
            })
    }
}

/// Descriptors a server has open besides its connections (stdio, the listener, the
/// shutdown pipe, a poller), with room to spare.
const DESCRIPTOR_MARGIN: usize = 16;

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Plan {
    /// The plan for these models and scenarios: with none, the [`default_cells`], or
    /// every scenario but `work` with `full`.
    pub fn new(models: Vec<String>, scenarios: &[Scenario], full: bool) -> Plan {
        let cells: Vec<Cell> = match (scenarios.is_empty(), full) {
            (true, false) => default_cells(),
            (true, true) => Scenario::ALL
                .into_iter()
                .filter(|s| s.in_full())
                .flat_map(|s| s.cells(true))
                .collect(),
            (false, _) => scenarios.iter().flat_map(|s| s.cells(full)).collect(),
        };
        let mut models = models;
        if cells.iter().any(|c| c.scenario == Scenario::Work) {
            // Each model's variants right after it, so the tables read inline, offloaded.
            models = models
                .iter()
                .flat_map(|name| {
                    let variants = echolab_registry::find(name)
                        .map(work_variants)
                        .unwrap_or_default();
                    std::iter::once(name.clone()).chain(variants)
                })
                .collect();
        }
        Plan {
            models,
            cells,
            repeat: 3,
            duration: if full {
                Duration::from_secs(3)
            } else {
                DEFAULT_DURATION
            },
            warmup: if full {
                Duration::from_secs(1)
            } else {
                DEFAULT_WARMUP
            },
            full,
            pin: Pin::None,
            work: None,
        }
    }

    /// Whether `model` runs `cell`: a registered model, the cell of its transport (the
    /// datagram models run the `udp` cells and only those), within the descriptor limit
    /// it has by nature (select's FD_SETSIZE: past it a cell would only measure refusals).
    pub fn fits(&self, model: &str, cell: &Cell) -> bool {
        let variant = Variant::parse(model);
        if !variant.runs(cell.work) {
            return false;
        }
        let Some(model) = echolab_registry::find(variant.model) else {
            return false;
        };
        if cell.scenario.is_datagram() == model.is_stream() {
            return false;
        }
        model
            .natural_limit
            .is_none_or(|limit| cell.conns + cell.idle_conns + DESCRIPTOR_MARGIN <= limit)
    }

    /// The models with at least one cell to run (a stream model has none in a udp-only
    /// plan).
    pub fn models_run(&self) -> usize {
        self.models
            .iter()
            .filter(|m| self.cells.iter().any(|c| self.fits(m, c)))
            .count()
    }

    /// The messages the plan sends, (datagram?, payload bytes), each once: what the
    /// kernel's floor cost is measured for.
    pub fn message_kinds(&self) -> Vec<(bool, usize)> {
        let mut kinds: Vec<(bool, usize)> = self
            .cells
            .iter()
            .filter(|c| c.conns > 0 && self.models.iter().any(|m| self.fits(m, c)))
            .map(|c| (c.scenario.is_datagram(), c.size))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    /// Runs in total.
    pub fn runs(&self) -> usize {
        let pairs = self
            .models
            .iter()
            .flat_map(|m| self.cells.iter().filter(move |c| self.fits(m, c)))
            .count();
        pairs * self.repeat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_matrix_is_the_issue_matrix() {
        let cells = Scenario::Throughput.cells(true);
        assert_eq!(cells.len(), 12);
        for conns in [1, 10, 100, 1000] {
            for size in [64, 4096, 65536] {
                assert!(cells.iter().any(|c| c.conns == conns && c.size == size));
            }
        }
        assert_eq!(Scenario::Idle.cells(true)[0].idle_conns, 5000);
    }

    #[test]
    fn default_is_a_subset_of_full() {
        for s in Scenario::ALL {
            let full = s.cells(true);
            for cell in s.cells(false) {
                let same_shape = full
                    .iter()
                    .any(|f| f.conns == cell.conns && f.size == cell.size && f.rate == cell.rate);
                assert!(same_shape || s == Scenario::Idle, "{cell:?}");
            }
        }
    }

    #[test]
    fn the_default_plan_is_one_cell_per_question_from_the_scenarios_own() {
        let plan = Plan::new(vec!["mio".into(), "udp-mio".into()], &[], false);
        assert_eq!(plan.cells, default_cells());
        for cell in &plan.cells {
            assert!(
                cell.scenario.cells(false).contains(cell),
                "{} is not a cell of its scenario",
                cell.label()
            );
        }
        let labels: Vec<String> = plan.cells.iter().map(Cell::label).collect();
        assert_eq!(
            labels,
            [
                "latency 1x64",
                "throughput 10x64",
                "throughput 100x64",
                "churn 10x64",
                "idle 1000+1x64",
                "udp 4x64 @ 50.0k/s"
            ]
        );
        assert_eq!(
            (plan.duration, plan.warmup),
            (DEFAULT_DURATION, DEFAULT_WARMUP)
        );
        // --full: every scenario but work, each whole.
        let full = Plan::new(vec!["mio".into()], &[], true);
        assert!(full.cells.iter().any(|c| c.scenario == Scenario::Crowd));
        assert!(full.cells.iter().all(|c| c.scenario != Scenario::Work));
        assert_eq!(
            full.cells.len(),
            1 + 12 + 1 + 1 + 4 + 1 + 2 * UDP_RATES_FULL.len()
        );
        // Asked for by name, a scenario runs its own subset as before.
        let udp = Plan::new(vec!["udp-mio".into()], &[Scenario::Udp], false);
        assert_eq!(udp.cells.len(), 2 * UDP_RATES.len());
    }

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()).unwrap(), s);
        }
        let err = Scenario::parse("fast").unwrap_err().to_string();
        assert!(
            err.contains("latency, throughput, churn, idle, crowd, rest, udp, work"),
            "{err}"
        );
    }

    #[test]
    fn datagram_models_run_the_udp_cells_and_only_those() {
        let full: Vec<Scenario> = Scenario::ALL.into_iter().filter(|s| s.in_full()).collect();
        let plan = Plan::new(vec!["mio".into(), "udp-mio".into()], &full, false);
        let udp: Vec<&Cell> = plan
            .cells
            .iter()
            .filter(|c| c.scenario.is_datagram())
            .collect();
        assert_eq!(udp.len(), 2 * UDP_RATES.len());
        assert!(udp
            .iter()
            .all(|c| c.rate.is_some() && plan.fits("udp-mio", c)));
        assert!(udp.iter().all(|c| !plan.fits("mio", c)));
        let tcp = plan.cells.len() - udp.len();
        assert_eq!(plan.runs(), (tcp + udp.len()) * plan.repeat);
        assert_eq!(udp[0].label(), "udp 4x64 @ 25.0k/s");
        assert_eq!(plan.models_run(), 2);
        assert_eq!(
            plan.message_kinds(),
            [(false, 64), (false, 4096), (true, 64), (true, 1400)]
        );
        let udp_only = Plan {
            cells: udp.into_iter().copied().collect(),
            ..plan.clone()
        };
        assert_eq!(udp_only.models_run(), 1);
    }

    #[test]
    fn a_model_skips_the_cells_past_its_descriptor_limit() {
        let plan = Plan::new(
            vec!["select".into(), "mio".into()],
            &[Scenario::Crowd],
            true,
        );
        let crowd_5000 = plan.cells.iter().find(|c| c.idle_conns == 5000).unwrap();
        assert!(!plan.fits("select", crowd_5000));
        assert!(plan.fits("mio", crowd_5000));
        assert!(plan
            .cells
            .iter()
            .filter(|c| c.idle_conns <= 1000)
            .all(|c| plan.fits("select", c)));
        assert_eq!(plan.runs(), (4 + 3) * plan.repeat);
    }
}
