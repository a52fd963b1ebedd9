//! When a cell's figures are not the server's to read, and why — decided from plain
//! numbers, so this module depends on nothing else in the harness.
//!
//! - **Client-bound.** The load generator shares the machine. When it used nearly all
//!   the CPU it could have (its threads times the window, or fewer if it was pinned to
//!   fewer CPUs), or an open-loop run could not even send the rate it was asked for, the
//!   cell measured the client: the server might have done more.
//! - **Measurement suspect.** No server answers a message for less CPU than the
//!   kernel's own `recv` and `send` of it (`floor_cost`). A cell below half of that floor
//!   lost CPU time from its window (a child process that exited unseen, a reading taken
//!   at the wrong moment): the figure is impossible, whatever it looks like. So is a
//!   figure whose readings may have missed more than [`UNCERTAIN_SHARE`] of it.

use serde::{Deserialize, Serialize};

/// The share of its CPU at which the generator counts as the limit.
pub(crate) const CLIENT_CPU_LIMIT: f64 = 0.90;
/// The share of its target rate an open-loop run must send to count as offering it.
pub(crate) const RATE_REACHED: f64 = 0.95;
/// The share of the kernel's floor below which server CPU per response is impossible.
pub(crate) const FLOOR_SHARE: f64 = 0.5;
/// The share of the server's CPU by which its reading may be uncertain (children reaped
/// while the tree was read) before the figure is not to be trusted.
pub(crate) const UNCERTAIN_SHARE: f64 = 0.05;

/// A cell's marks: each, when set, says why in a short phrase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Marks {
    /// The load generator, not the server, was the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_bound: Option<String>,
    /// The server's CPU per response is below half the kernel's floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspect: Option<String>,
}

/// What the load generator did in one run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClientLoad {
    /// Its CPU seconds (user + system) in the window.
    pub(crate) cpu_secs: f64,
    /// The CPU seconds it could have used: its threads, or the CPUs it may run on if
    /// fewer, times the window.
    pub(crate) cpu_limit_secs: f64,
    /// Open loop: the rate asked for, and the rate it sent, per second.
    pub(crate) rate: Option<(f64, f64)>,
}

/// Why the run measured the client, if it did.
pub(crate) fn client_bound(load: &ClientLoad) -> Option<String> {
    let mut why = Vec::new();
    if load.cpu_limit_secs > 0.0 && load.cpu_secs >= CLIENT_CPU_LIMIT * load.cpu_limit_secs {
        why.push(format!(
            "the client used {:.0}% of its CPU",
            load.cpu_secs * 100.0 / load.cpu_limit_secs
        ));
    }
    if let Some((target, sent)) = load.rate.filter(|(target, _)| *target > 0.0) {
        if sent < RATE_REACHED * target {
            why.push(format!(
                "the client sent {:.0}% of the target rate",
                sent * 100.0 / target
            ));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// Why the server's CPU per response (µs) cannot be right, if it cannot: below
/// [`FLOOR_SHARE`] of `floor_us`, the kernel's cost of one `recv` and one `send`.
pub(crate) fn suspect(cpu_us_per_response: Option<f64>, floor_us: Option<f64>) -> Option<String> {
    let (cpu, floor) = (cpu_us_per_response?, floor_us?);
    (floor > 0.0 && cpu < FLOOR_SHARE * floor).then(|| {
        format!("server CPU {cpu:.2} µs/response is below half the kernel's floor of {floor:.2} µs")
    })
}

/// Why the server's CPU cannot be trusted, if it cannot: the readings that bound the
/// window may have missed more than [`UNCERTAIN_SHARE`] of it (children reaped while
/// they were read, the `fork` server's clients closing as the window ended).
pub(crate) fn uncertain(cpu_secs: f64, uncertain_secs: f64) -> Option<String> {
    (uncertain_secs > UNCERTAIN_SHARE * cpu_secs).then(|| {
        format!(
            "server CPU {cpu_secs:.3} s uncertain by {uncertain_secs:.3} s (children reaped \
             while its process tree was read)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_near_its_cpu_is_the_limit() {
        let load = |cpu_secs, cpu_limit_secs| ClientLoad {
            cpu_secs,
            cpu_limit_secs,
            rate: None,
        };
        // One thread for 3 s: 2.8 s of CPU is 93%.
        let why = client_bound(&load(2.8, 3.0)).expect("client-bound");
        assert_eq!(why, "the client used 93% of its CPU");
        assert_eq!(client_bound(&load(2.6, 3.0)), None);
        // Pinned to one CPU with two threads: the limit is one CPU, so 0.95 s of 1 s is
        // the limit even though two threads could use 2 s.
        assert!(client_bound(&load(0.95, 1.0)).is_some());
        // Exactly at the line counts.
        assert!(client_bound(&load(0.9, 1.0)).is_some());
        // Nothing known about the limit: no mark.
        assert_eq!(client_bound(&load(5.0, 0.0)), None);
    }

    #[test]
    fn an_open_loop_short_of_its_rate_is_client_bound() {
        let load = |target, sent| ClientLoad {
            cpu_secs: 0.2,
            cpu_limit_secs: 1.0,
            rate: Some((target, sent)),
        };
        let why = client_bound(&load(100_000.0, 80_000.0)).expect("client-bound");
        assert_eq!(why, "the client sent 80% of the target rate");
        assert_eq!(client_bound(&load(100_000.0, 96_000.0)), None);
        let both = ClientLoad {
            cpu_secs: 0.99,
            ..load(100_000.0, 50_000.0)
        };
        assert_eq!(
            client_bound(&both).as_deref(),
            Some("the client used 99% of its CPU, the client sent 50% of the target rate")
        );
    }

    #[test]
    fn server_cpu_below_half_the_floor_is_suspect() {
        // The committed full run's fork 100x4096 cell: 0.57 µs per response, against a
        // 4 KiB recv + send that costs several µs.
        let why = suspect(Some(0.57), Some(4.0)).expect("suspect");
        assert!(
            why.contains("0.57 µs/response") && why.contains("4.00 µs"),
            "{why}"
        );
        assert_eq!(suspect(Some(2.1), Some(4.0)), None);
        assert_eq!(suspect(None, Some(4.0)), None);
        assert_eq!(suspect(Some(0.1), None), None);
    }

    #[test]
    fn server_cpu_uncertain_past_five_percent_is_suspect() {
        let why = uncertain(2.0, 0.5).expect("suspect");
        assert!(why.contains("2.000 s uncertain by 0.500 s"), "{why}");
        assert_eq!(uncertain(2.0, 0.1), None);
        assert_eq!(uncertain(0.0, 0.0), None, "a server at rest is not suspect");
    }
}
