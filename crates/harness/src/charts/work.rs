//! The `work` scenario's charts: for each swept kind of work, p99 against the offered
//! load, one panel per family, beside what queueing theory allows — the mean response
//! time of an M/D/1 queue (one loop doing the work) and of an M/D/c queue (c CPUs),
//! which no design's *mean* beats, so a p99 sits above them — and the SLO the headline
//! capacity is read at. For the long-tail mix, the fast messages' p99 as well: what the
//! 1% that block cost the 99% that do not.

use std::path::{Path, PathBuf};

use super::axis::{Axis, Unit};
use super::palette::Colours;
use super::panels::{self, End, Figure, Reference};
use super::{panel_height, panels_by_family, series_by_model, Series};
use crate::error::HarnessError;
use crate::scenario::Scenario;
use crate::summary::Summary;
use crate::work::{md_c_mean_us, WorkPreset, SLO_SERVICE_TIMES};

/// Writes the charts of every swept preset the summaries hold; returns the files.
pub(crate) fn write(
    dir: &Path,
    summaries: &[Summary],
    colours: &Colours,
    cpus: usize,
) -> Result<Vec<PathBuf>, HarnessError> {
    let mut written = Vec::new();
    for preset in WorkPreset::ALL {
        let swept = |s: &Summary| {
            s.cell.scenario == Scenario::Work
                && s.cell.work == Some(preset)
                && s.cell.rate.is_some()
        };
        let rate = |s: &Summary| s.cell.rate.unwrap_or(0) as f64;
        let all = series_by_model(summaries, swept, rate, |s| Some(s.p99_us.median), true);
        let path = dir.join(format!("work-p99-{}.svg", slug(preset)));
        let caption = format!(
            "p99 vs offered load, work {} per message (100 connections, open loop)",
            preset.spec_text()
        );
        if chart(&path, &caption, preset, all, colours, cpus)? {
            written.push(path);
        }
        if preset.spec().items().len() > 1 {
            let fast = series_by_model(
                summaries,
                swept,
                rate,
                |s| Some(s.p99_fast_us?.median),
                true,
            );
            let path = dir.join(format!("work-p99-fast-{}.svg", slug(preset)));
            let caption = format!(
                "p99 of the fast messages alone vs offered load, work {}",
                preset.spec_text()
            );
            if chart(&path, &caption, preset, fast, colours, cpus)? {
                written.push(path);
            }
        }
    }
    Ok(written)
}

/// A preset's part of a file name.
fn slug(preset: WorkPreset) -> &'static str {
    match preset {
        WorkPreset::Cpu20us => "cpu20us",
        WorkPreset::Cpu50us => "cpu50us",
        WorkPreset::Block1ms => "block1ms",
        WorkPreset::LongTail => "long-tail",
    }
}

/// One figure; `false` (nothing written) when no line has two points.
fn chart(
    path: &Path,
    caption: &str,
    preset: WorkPreset,
    series: Vec<Series>,
    colours: &Colours,
    cpus: usize,
) -> Result<bool, HarnessError> {
    if series.iter().all(|l| l.points.len() < 2) {
        return Ok(false);
    }
    let service = preset.mean_service();
    let service_us = service.as_secs_f64() * 1e6;
    let slo_us = SLO_SERVICE_TIMES * service_us;
    let capacity = preset.one_worker_capacity();
    let points = || series.iter().flat_map(|l| l.points.iter());
    // The whole sweep, and the SLO and the service time on the plot whatever the lines.
    let x = Axis::from_zero(Unit::Count, points().map(|p| p.0), capacity * 1.3);
    let Some(y) = Axis::log(
        Unit::Micros,
        points().map(|p| p.1).chain([service_us, slo_us]),
    ) else {
        return Ok(false);
    };
    let references = bounds(preset, cpus, &x);
    let panels = panels_by_family(series, |_| references.clone(), y, "p99 latency (log)");
    let figure = Figure {
        caption: caption.to_string(),
        note: Some(format!(
            "dashed curves: the mean response time of an M/D/1 queue (one loop) and an \
             M/D/{cpus} queue ({cpus} CPUs) at {} µs mean service, a bound no design's mean \
             beats (a p99 sits above it)\nflat dashed line: the SLO, p99 ≤ {}× the mean \
             service time",
            trim(service_us),
            SLO_SERVICE_TIMES
        )),
        x,
        x_desc: "offered responses/s".to_string(),
        colours,
        panel_height: panel_height(panels.len()),
    };
    panels::draw(path, &figure, &panels)?;
    Ok(true)
}

/// The reference curves of a preset's panels: M/D/1 and M/D/`cpus` mean response times
/// up to saturation, and the SLO across the plot.
pub(crate) fn bounds(preset: WorkPreset, cpus: usize, x: &Axis) -> Vec<Reference> {
    let service = preset.mean_service();
    let capacity = preset.one_worker_capacity();
    let curve = |servers: usize| -> Vec<(f64, f64)> {
        // Evenly in load, then closer and closer to saturation, where the curve turns up.
        let saturation = capacity * servers as f64;
        let loads = (0..100)
            .map(|i| f64::from(i) / 100.0)
            .chain((2..7).map(|k| 1.0 - 10f64.powi(-k)));
        loads
            .filter_map(|rho| {
                let rate = rho * saturation;
                Some((rate, md_c_mean_us(rate, service, servers)?))
            })
            .collect()
    };
    let slo_us = SLO_SERVICE_TIMES * service.as_secs_f64() * 1e6;
    let mut references = vec![Reference {
        label: "M/D/1 mean".to_string(),
        points: curve(1),
        end: End::Last,
    }];
    if cpus > 1 {
        references.push(Reference {
            label: format!("M/D/{cpus} mean"),
            points: curve(cpus),
            end: End::Last,
        });
    }
    references.push(Reference {
        label: format!(
            "SLO {}",
            Axis::log(Unit::Micros, [slo_us]).map_or_else(String::new, |a| a.label(slo_us))
        ),
        points: vec![(x.lo, slo_us), (x.hi, slo_us)],
        end: End::First,
    });
    references
}

/// A number with no trailing zeros.
fn trim(v: f64) -> String {
    let text = format!("{v:.1}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_rise_to_saturation_and_the_slo_is_ten_service_times() {
        let x = Axis::from_zero(Unit::Count, [1_300.0], 1.0);
        let refs = bounds(WorkPreset::Block1ms, 2, &x);
        let [one, two, slo] = &refs[..] else {
            panic!("three references: {refs:?}");
        };
        // At no load, the service time itself; near saturation (1,000/s), far above it.
        assert!(
            (one.points[0].1 - 1_000.0).abs() < 1e-6,
            "{:?}",
            one.points[0]
        );
        let (last_rate, last_us) = *one.points.last().expect("points");
        assert!(last_rate < 1_000.0 && last_rate > 999.0, "{last_rate}");
        assert!(last_us > 100_000.0, "{last_us}");
        // Two CPUs: the same load waits less, and the curve reaches twice as far.
        assert!(
            two.points[50].1
                < md_c_mean_us(two.points[50].0, WorkPreset::Block1ms.mean_service(), 1)
                    .unwrap_or(f64::MAX)
        );
        assert!(two.points.last().is_some_and(|p| p.0 > 1_999.0));
        assert_eq!(two.label, "M/D/2 mean");
        assert_eq!(slo.points, [(0.0, 10_000.0), (x.hi, 10_000.0)]);
        assert_eq!(slo.label, "SLO 10 ms");
        assert_eq!(bounds(WorkPreset::Cpu20us, 1, &x).len(), 2);
    }
}
