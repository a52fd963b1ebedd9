//! The server's CPU seconds inside a measured window, from readings of its process tree
//! taken while the window ran.
//!
//! A reading of a tree is not atomic. A `fork` server's children exit when the load's
//! connections close, which is at the window's end; a child reaped by its parent after
//! the parent's `cutime` was read and before the child's own `/proc` files were is in
//! neither, and a reading that straddles those exits comes out short by up to the CPU
//! of every child it missed — seconds, for a hundred clients. Each reading says how much
//! its root reaped meanwhile ([`TreeSample::reaped_while_read_secs`]), and the window is
//! bounded by the earliest and latest readings that are clean enough, the CPU between
//! them scaled to the window's length.
//!
//! [`TreeSample::reaped_while_read_secs`]: crate::procfs::TreeSample::reaped_while_read_secs

use std::time::Instant;

/// How uncertain, as a share of the CPU between them, two readings may be together and
/// still bound the window. A `fork` server under churn reaps a child or two during
/// every walk (a clock tick at most, against a second or more in the window); a walk
/// that straddles the end of a 100-client run can miss most of the window.
pub(crate) const MAX_UNCERTAIN_SHARE: f64 = 0.02;

/// One reading of the server's CPU.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuReading {
    /// When the reading started.
    pub(crate) at: Instant,
    /// CPU seconds of the whole tree, live and reaped.
    pub(crate) cpu_secs: f64,
    /// How much `cpu_secs` may be short by (children reaped while it was read).
    pub(crate) uncertain_secs: f64,
}

/// The server's CPU in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CpuWindow {
    /// CPU seconds, scaled to the window's length.
    pub(crate) cpu_secs: f64,
    /// How much `cpu_secs` may be off by, scaled alike: at most
    /// [`MAX_UNCERTAIN_SHARE`] of it, unless no two readings were clean enough.
    pub(crate) uncertain_secs: f64,
}

/// The CPU spent in `[from, to]`, from `readings` in the order they were taken: the
/// earliest reading at or after `from` and the latest after it that together are
/// uncertain by at most [`MAX_UNCERTAIN_SHARE`], their difference scaled from the time
/// between them to the window's length. With no such pair, the first and the last,
/// and their uncertainty says so. `None` with fewer than two readings in the window.
pub(crate) fn cpu_in_window(
    readings: &[CpuReading],
    from: Instant,
    to: Instant,
) -> Option<CpuWindow> {
    let inside: Vec<&CpuReading> = readings.iter().filter(|r| r.at >= from).collect();
    let clean = |start: &CpuReading, end: &CpuReading| {
        end.at > start.at
            && start.uncertain_secs + end.uncertain_secs
                <= MAX_UNCERTAIN_SHARE * (end.cpu_secs - start.cpu_secs).max(0.0)
    };
    let pair = inside
        .iter()
        .enumerate()
        .find_map(|(i, start)| {
            inside[i + 1..]
                .iter()
                .rev()
                .find(|end| clean(start, end))
                .map(|end| (*start, *end))
        })
        .or_else(|| Some((*inside.first()?, *inside.last()?)))?;
    let (start, end) = pair;
    let measured = end.at.checked_duration_since(start.at)?;
    if measured.is_zero() {
        return None;
    }
    let scale = to.saturating_duration_since(from).as_secs_f64() / measured.as_secs_f64();
    Some(CpuWindow {
        cpu_secs: ((end.cpu_secs - start.cpu_secs) * scale).max(0.0),
        uncertain_secs: (start.uncertain_secs + end.uncertain_secs) * scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reading(from: Instant, at_ms: u64, cpu_secs: f64, uncertain_secs: f64) -> CpuReading {
        CpuReading {
            at: from + Duration::from_millis(at_ms),
            cpu_secs,
            uncertain_secs,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_reading_that_straddled_the_children_exiting_is_not_the_end() {
        // The readings of a `fork` server with 100 clients over a 1 s window
        // at 100 x 64 B (2026-12-07, printed by a local debug build): steady until the
        // last walk, which began 11 ms before the end, ran 24 ms, and met 3 children
        // already reaped — their CPU in neither the parent's `cutime` it had read nor
        // their own files (the uncertainty here is about what they took with them).
        let from = Instant::now();
        let to = from + Duration::from_secs(1);
        let readings = [
            reading(from, 0, 0.8389, 0.0),
            reading(from, 200, 1.0362, 0.0),
            reading(from, 468, 1.3065, 0.0),
            reading(from, 705, 1.5232, 0.0),
            reading(from, 905, 1.7123, 0.0),
            reading(from, 980, 1.7823, 0.0),
            reading(from, 989, 1.7272, 0.05),
        ];
        let window = cpu_in_window(&readings, from, to).expect("a window");
        // From the reading at 0 to the one at 980 ms, scaled to 1 s.
        assert!(
            close(window.cpu_secs, (1.7823 - 0.8389) / 0.98),
            "{window:?}"
        );
        assert!(close(window.uncertain_secs, 0.0), "{window:?}");
    }

    #[test]
    fn a_walk_that_missed_most_children_loses_nothing() {
        // The committed full run's fork 100 x 4096 cell read 0.13 s of CPU in a 3 s
        // window: an end reading that lost most of the children. With the loss known,
        // the reading before it bounds the window.
        let from = Instant::now();
        let to = from + Duration::from_secs(3);
        let readings = [
            reading(from, 0, 0.85, 0.0),
            reading(from, 1_500, 2.10, 0.0),
            reading(from, 2_950, 3.30, 0.0),
            reading(from, 2_990, 0.98, 2.4),
        ];
        let window = cpu_in_window(&readings, from, to).expect("a window");
        assert!(
            close(window.cpu_secs, (3.30 - 0.85) * 3.0 / 2.95),
            "{window:?}"
        );
    }

    #[test]
    fn churn_reaps_a_little_during_every_walk_and_still_measures() {
        // Children come and go all the time: every walk sees a tick reaped, a small
        // share of the window's CPU, so first and last readings stand.
        let from = Instant::now();
        let to = from + Duration::from_secs(1);
        let readings: Vec<CpuReading> = (0..=5)
            .map(|i| reading(from, i * 200, 1.6 * i as f64 / 5.0, 0.01))
            .collect();
        let window = cpu_in_window(&readings, from, to).expect("a window");
        assert!(close(window.cpu_secs, 1.6), "{window:?}");
        assert!(close(window.uncertain_secs, 0.02), "{window:?}");
    }

    #[test]
    fn with_no_clean_pair_the_uncertainty_is_reported() {
        let from = Instant::now();
        let to = from + Duration::from_secs(1);
        let readings = [
            reading(from, 0, 1.0, 0.5),
            reading(from, 500, 1.5, 0.5),
            reading(from, 1_000, 2.0, 0.5),
        ];
        let window = cpu_in_window(&readings, from, to).expect("a window");
        assert!(close(window.cpu_secs, 1.0), "{window:?}");
        assert!(close(window.uncertain_secs, 1.0), "{window:?}");
    }

    #[test]
    fn readings_before_the_window_do_not_count_and_one_is_not_enough() {
        let from = Instant::now() + Duration::from_secs(1);
        let to = from + Duration::from_secs(1);
        let early = CpuReading {
            at: from - Duration::from_millis(500),
            cpu_secs: 0.0,
            uncertain_secs: 0.0,
        };
        assert_eq!(cpu_in_window(&[early], from, to), None);
        let one = reading(from, 0, 1.0, 0.0);
        assert_eq!(cpu_in_window(&[early, one], from, to), None);
        let idle = [early, one, reading(from, 1_000, 1.0, 0.0)];
        assert_eq!(
            cpu_in_window(&idle, from, to),
            Some(CpuWindow::default()),
            "a server at rest spent nothing"
        );
    }
}
