//! Axes drawn on plain linear coordinates: a log axis plots its values' log10, so every
//! chart has one coordinate type, and the ticks (1-2-5 in each decade when few decades
//! show, else the decades) and their labels (µs, ms, s; k, M; %) are ours, not
//! plotters' "1.00M".

use std::ops::Range;

/// What an axis's numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// A count or a rate: `500`, `2k`, `1.5M`.
    Count,
    /// Microseconds, labelled in the unit that reads best: `20 µs`, `5 ms`, `1 s`.
    Micros,
    /// A percentage: `5%`.
    Percent,
}

/// One axis: its scale, its extent (in values) and its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Axis {
    /// Logarithmic (base 10).
    pub log: bool,
    /// The least value shown.
    pub lo: f64,
    /// The most.
    pub hi: f64,
    /// What the numbers are.
    pub unit: Unit,
}

/// The 1-2-5 steps of a decade: the values a reader finds on log paper.
const STEPS: [f64; 3] = [1.0, 2.0, 5.0];

/// At most this many decades shown, the 2s and 5s are labelled too.
const DECADES_FOR_STEPS: f64 = 3.0;

impl Axis {
    /// A log axis around the positive `values`, from a 1-2-5 value below the least to
    /// one above the most. `None` if no value is positive.
    pub(crate) fn log(unit: Unit, values: impl IntoIterator<Item = f64>) -> Option<Axis> {
        let (mut lo, mut hi) = (f64::MAX, 0.0f64);
        for v in values.into_iter().filter(|v| *v > 0.0 && v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi <= 0.0 {
            return None;
        }
        let lo = step_at_or_below(lo / 1.15);
        Some(Axis {
            log: true,
            lo,
            hi: step_at_or_above(hi * 1.15).max(lo * 10.0),
            unit,
        })
    }

    /// The same axis reaching down to `lo` at least: a latency axis of the models'
    /// charts shows 1 µs, where one event loop's round trip sits, so a reader sees how
    /// far above it each model is.
    pub(crate) fn reaching(self, lo: f64) -> Axis {
        let lo = self.lo.min(lo);
        Axis {
            lo,
            hi: self.hi.max(lo * 10.0),
            ..self
        }
    }

    /// A linear axis from zero to a round value past the largest of `values` (at least
    /// `floor`, so an all-zero figure still has an axis).
    pub(crate) fn from_zero(unit: Unit, values: impl IntoIterator<Item = f64>, floor: f64) -> Axis {
        let hi = values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(floor, f64::max);
        let step = nice_step(hi * 1.1 / 6.0);
        Axis {
            log: false,
            lo: 0.0,
            hi: (hi * 1.1 / step).ceil() * step,
            unit,
        }
    }

    /// Where `value` is drawn on the chart's linear coordinate.
    pub(crate) fn pos(&self, value: f64) -> f64 {
        if self.log {
            value.max(f64::MIN_POSITIVE).log10()
        } else {
            value
        }
    }

    /// The value drawn at `pos`.
    fn value(&self, pos: f64) -> f64 {
        if self.log {
            10f64.powf(pos)
        } else {
            pos
        }
    }

    /// The chart's coordinate range.
    pub(crate) fn range(&self) -> Range<f64> {
        self.pos(self.lo)..self.pos(self.hi)
    }

    /// Whether `value` lies on the axis.
    pub(crate) fn holds(&self, value: f64) -> bool {
        value >= self.lo && value <= self.hi && (!self.log || value > 0.0)
    }

    /// The labelled values: 1-2-5 or decades on a log axis, round steps on a linear one.
    pub(crate) fn ticks(&self) -> Vec<f64> {
        if !self.log {
            let step = nice_step((self.hi - self.lo) / 6.0);
            let first = (self.lo / step).ceil() as i64;
            let last = (self.hi / step).floor() as i64;
            return (first..=last).map(|k| k as f64 * step).collect();
        }
        let steps: &[f64] = if (self.hi / self.lo).log10() <= DECADES_FOR_STEPS {
            &STEPS
        } else {
            &STEPS[..1]
        };
        self.decade_multiples(steps)
    }

    /// The faint grid lines between the ticks: 1..9 of each decade on a log axis.
    pub(crate) fn light(&self) -> Vec<f64> {
        if !self.log {
            return Vec::new();
        }
        let all: Vec<f64> = (1..10).map(f64::from).collect();
        self.decade_multiples(&all)
    }

    /// `m × 10^k` for each `m` of `multiples`, within the axis.
    fn decade_multiples(&self, multiples: &[f64]) -> Vec<f64> {
        let first = self.lo.log10().floor() as i32;
        let last = self.hi.log10().ceil() as i32;
        (first..=last)
            .flat_map(|k| multiples.iter().map(move |m| m * 10f64.powi(k)))
            // Three significant figures: 10^k is not exact in binary.
            .map(round3)
            .filter(|v| *v >= self.lo * 0.999 && *v <= self.hi * 1.001)
            .collect()
    }

    /// The label at a chart coordinate.
    pub(crate) fn label_at(&self, pos: f64) -> String {
        self.label(round3(self.value(pos)))
    }

    /// A value as this axis labels it.
    pub(crate) fn label(&self, v: f64) -> String {
        match self.unit {
            Unit::Count if v.abs() >= 1e6 => format!("{}M", trim(v / 1e6)),
            Unit::Count if v.abs() >= 1e3 => format!("{}k", trim(v / 1e3)),
            Unit::Count => trim(v),
            Unit::Micros if v.abs() >= 1e6 => format!("{} s", trim(v / 1e6)),
            Unit::Micros if v.abs() >= 1e3 => format!("{} ms", trim(v / 1e3)),
            Unit::Micros => format!("{} µs", trim(v)),
            Unit::Percent => format!("{}%", trim(v)),
        }
    }
}

/// The largest 1-2-5 value at or below `v` (> 0).
fn step_at_or_below(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    let m = STEPS
        .iter()
        .rev()
        .find(|m| **m * decade <= v * 1.000_001)
        .copied()
        .unwrap_or(1.0);
    round3(m * decade)
}

/// The smallest 1-2-5 value at or above `v` (> 0).
fn step_at_or_above(v: f64) -> f64 {
    let decade = 10f64.powf(v.log10().floor());
    let m = STEPS
        .iter()
        .find(|m| **m * decade >= v * 0.999_999)
        .copied()
        .unwrap_or(10.0);
    round3(m * decade)
}

/// A round step (1-2-5 × 10^k) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    step_at_or_above(raw)
}

/// `v` in three significant figures.
fn round3(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// A number with no trailing zeros: `2`, `2.5`, `0.05`.
fn trim(v: f64) -> String {
    let text = format!("{:.2}", round3(v));
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_axis_is_labelled_down_to_one_microsecond() {
        let axis = Axis::log(Unit::Micros, [40.0, 9_000.0]).expect("positive values");
        assert_eq!(axis.lo, 20.0);
        let axis = axis.reaching(1.0);
        assert_eq!(axis.lo, 1.0);
        assert_eq!(axis.hi, 20_000.0);
        let labels: Vec<String> = axis.ticks().iter().map(|v| axis.label(*v)).collect();
        assert_eq!(labels, ["1 µs", "10 µs", "100 µs", "1 ms", "10 ms"]);
        // The faint lines fill each decade.
        assert!(axis.light().contains(&3.0) && axis.light().contains(&20_000.0));
    }

    #[test]
    fn few_decades_get_the_twos_and_fives() {
        let axis = Axis::log(Unit::Count, [1.0, 100.0]).expect("positive values");
        assert_eq!((axis.lo, axis.hi), (0.5, 200.0));
        let labels: Vec<String> = axis.ticks().iter().map(|v| axis.label(*v)).collect();
        assert_eq!(
            labels,
            ["0.5", "1", "2", "5", "10", "20", "50", "100", "200"]
        );
        let rates = Axis::log(Unit::Count, [25_000.0, 100_000.0]).expect("positive");
        assert_eq!(rates.label(rates.ticks()[0]), "20k");
        assert_eq!(rates.label(1.5e6), "1.5M");
    }

    #[test]
    fn a_linear_axis_starts_at_zero_with_round_steps() {
        let axis = Axis::from_zero(Unit::Count, [100.0, 1_300.0], 1.0);
        assert_eq!(axis.lo, 0.0);
        assert!(axis.hi >= 1_300.0 && axis.hi <= 1_600.0, "{axis:?}");
        let ticks = axis.ticks();
        assert_eq!(ticks[0], 0.0);
        assert_eq!(axis.label(ticks[1]), "500");
        let empty = Axis::from_zero(Unit::Percent, [0.0], 1.0);
        assert!(empty.hi >= 1.0 && empty.label(empty.ticks()[1]).ends_with('%'));
    }

    #[test]
    fn positions_round_trip_to_labels() {
        let axis = Axis::log(Unit::Micros, [1_500.0, 2_000_000.0]).expect("positive");
        assert_eq!(axis.lo, 1_000.0);
        assert_eq!(axis.label_at(axis.pos(1_000.0)), "1 ms");
        assert_eq!(axis.label_at(axis.pos(2_000_000.0)), "2 s");
        assert!(axis.holds(1_000.0) && !axis.holds(1e9));
        assert_eq!(Axis::log(Unit::Count, [0.0, -1.0]), None);
    }
}
