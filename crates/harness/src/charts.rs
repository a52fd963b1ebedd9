//! SVG charts of a run (plotters): throughput, p99 latency and server CPU per response
//! against connections, one line per model in one panel per family of models (so 17
//! models read as four small groups); memory per idle connection and CPU at rest as
//! bars; for the datagram models, loss and p99 latency against the offered rate.

mod axis;
mod palette;
mod panels;
mod work;

use std::path::{Path, PathBuf};

use echolab_registry::Family;
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::Shift;
use plotters::prelude::*;

use self::axis::{Axis, Unit};
use self::palette::{by_family, family_colour, family_of, title, Colours};
use self::panels::{Figure, Panel, Reference};

use crate::error::HarnessError;
use crate::scenario::Scenario;
use crate::summary::Summary;

/// One line: a model's points, each drawn as its cell's marks say.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// The model's label (a variant's too: `mio+offload4`).
    pub(crate) model: String,
    /// (x, y) in values, by x.
    pub(crate) points: Vec<(f64, f64)>,
    /// How each point is drawn.
    pub(crate) dots: Vec<Dot>,
}

/// How a point is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Dot {
    /// A filled dot: the server's figure.
    Plain,
    /// Hollow: the load generator was the limit in some repeat.
    ClientBound,
    /// A cross: the server's CPU per response was below half the kernel's floor.
    Suspect,
}

impl Dot {
    fn of(s: &Summary) -> Dot {
        if s.suspect_runs > 0 {
            Dot::Suspect
        } else if s.client_bound_runs > 0 {
            Dot::ClientBound
        } else {
            Dot::Plain
        }
    }
}

/// Writes every chart the summaries can fill into `dir`; returns the files written.
/// `cpus` is the run's machine's: the M/D/c bound of the work charts.
pub(crate) fn write_all(
    dir: &Path,
    summaries: &[Summary],
    cpus: usize,
) -> Result<Vec<PathBuf>, HarnessError> {
    let mut written = Vec::new();
    // One colour per model across every chart, by its place in its family.
    let colours = Colours::new(summaries.iter().map(|s| s.model.as_str()));
    let mut sizes: Vec<usize> = summaries
        .iter()
        .filter(|s| s.cell.scenario == Scenario::Throughput)
        .map(|s| s.cell.size)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    type Metric = fn(&Summary) -> Option<f64>;
    let metrics: [(&str, Unit, &str, &str, Metric); 3] = [
        (
            "throughput",
            Unit::Count,
            "responses/s",
            "Throughput",
            |s| Some(s.responses_per_sec.median),
        ),
        ("p99", Unit::Micros, "p99 latency", "p99 latency", |s| {
            Some(s.p99_us.median)
        }),
        (
            "cpu-per-response",
            Unit::Micros,
            "server CPU per response",
            "Server CPU per response",
            |s| s.server_cpu_us_per_response.map(|c| c.median),
        ),
    ];
    for size in sizes {
        for (file, unit, y_desc, title, metric) in metrics {
            let in_cell =
                |s: &Summary| s.cell.scenario == Scenario::Throughput && s.cell.size == size;
            let series = series_by_model(summaries, in_cell, |s| s.cell.conns as f64, metric, true);
            let path = dir.join(format!("{file}-{size}B.svg"));
            let caption = format!("{title} vs connections, {size} B payload");
            let axes = (unit, "connections (log)", y_desc);
            if family_chart(&path, &caption, axes, series, &colours)? {
                written.push(path);
            }
        }
    }
    // The crowd: x is every connection the server holds (the active one + the idle),
    // so the first point, no crowd at all, still sits on a log axis.
    for (file, unit, y_desc, title, metric) in &metrics[1..] {
        let in_crowd = |s: &Summary| s.cell.scenario == Scenario::Crowd;
        let held = |s: &Summary| (s.cell.conns + s.cell.idle_conns) as f64;
        let series = series_by_model(summaries, in_crowd, held, *metric, true);
        let path = dir.join(format!("crowd-{file}.svg"));
        let caption = format!("{title} of one client vs connections held (1 active + idle)");
        let axes = (*unit, "connections held (log)", *y_desc);
        if family_chart(&path, &caption, axes, series, &colours)? {
            written.push(path);
        }
    }
    // UDP: what each offered rate cost, per datagram size.
    let mut udp_sizes: Vec<usize> = summaries
        .iter()
        .filter(|s| s.cell.scenario == Scenario::Udp)
        .map(|s| s.cell.size)
        .collect();
    udp_sizes.sort_unstable();
    udp_sizes.dedup();
    for size in udp_sizes {
        let in_cell = |s: &Summary| s.cell.scenario == Scenario::Udp && s.cell.size == size;
        let rate = |s: &Summary| s.cell.rate.unwrap_or(0) as f64;
        // Loss is often zero: a linear axis, where zero has a place.
        let loss = series_by_model(
            summaries,
            in_cell,
            rate,
            |s| Some(s.loss_pct?.median),
            false,
        );
        let p99 = series_by_model(summaries, in_cell, rate, |s| Some(s.p99_us.median), true);
        if loss.iter().all(|l| l.points.len() < 2) {
            continue;
        }
        let path = dir.join(format!("udp-{size}B.svg"));
        let caption = format!("UDP, {size} B datagrams: loss and p99 latency vs offered rate");
        rate_chart(&path, &caption, loss, p99, &colours)?;
        written.push(path);
    }
    let at_rest: Vec<(String, f64)> = summaries
        .iter()
        .filter(|s| s.cell.scenario == Scenario::Rest && !s.measured_nothing())
        .map(|s| (s.model.clone(), s.server_cpu_share.median * 100.0))
        .collect();
    if !at_rest.is_empty() {
        let path = dir.join("cpu-at-rest.svg");
        let idle = summaries
            .iter()
            .find(|s| s.cell.scenario == Scenario::Rest)
            .map_or(0, |s| s.cell.idle_conns);
        let caption = format!("Server CPU with {idle} idle connections and no traffic");
        bar_chart(&path, &caption, "% of one core", &at_rest)?;
        written.push(path);
    }
    let memory: Vec<(String, f64)> = summaries
        .iter()
        .filter(|s| s.cell.scenario == Scenario::Idle)
        // A model that held only a few of the crowd (`iterative` holds one) has no
        // per-connection figure worth a bar: one connection's noise divided by one.
        .filter(|s| s.idle_held.unwrap_or(0) * 2 >= s.cell.idle_conns as u64)
        .filter_map(|s| Some((s.model.clone(), s.memory_per_conn_kb?.median)))
        .collect();
    if !memory.is_empty() {
        let path = dir.join("memory-per-connection.svg");
        bar_chart(
            &path,
            "Server memory (PSS) per idle connection",
            "KiB",
            &memory,
        )?;
        written.push(path);
    }
    written.extend(work::write(dir, summaries, &colours, cpus)?);
    Ok(written)
}

/// A figure with one panel per family over a log x axis and a shared log y axis (so
/// heights compare across panels); `false` (nothing written) when no line has two
/// points.
fn family_chart(
    path: &Path,
    caption: &str,
    (unit, x_desc, y_desc): (Unit, &str, &str),
    series: Vec<Series>,
    colours: &Colours,
) -> Result<bool, HarnessError> {
    if series.iter().all(|l| l.points.len() < 2) {
        return Ok(false);
    }
    let points = || series.iter().flat_map(|l| l.points.iter());
    let (Some(x), Some(mut y)) = (
        Axis::log(Unit::Count, points().map(|p| p.0)),
        Axis::log(unit, points().map(|p| p.1)),
    ) else {
        return Ok(false);
    };
    if unit == Unit::Micros {
        y = y.reaching(1.0);
    }
    let panels = panels_by_family(series, |_| Vec::new(), y, &format!("{y_desc} (log)"));
    let figure = Figure {
        caption: caption.to_string(),
        note: None,
        x,
        x_desc: x_desc.to_string(),
        colours,
        panel_height: panel_height(panels.len()),
    };
    panels::draw(path, &figure, &panels)?;
    Ok(true)
}

/// The series split into one panel per family, titled by it, in the families' order;
/// `references` gives each panel its bounds.
fn panels_by_family(
    series: Vec<Series>,
    references: impl Fn(Option<Family>) -> Vec<Reference>,
    y: Axis,
    y_desc: &str,
) -> Vec<Panel> {
    let labels: Vec<String> = series.iter().map(|l| l.model.clone()).collect();
    let mut series: Vec<Option<Series>> = series.into_iter().map(Some).collect();
    by_family(labels.iter().map(String::as_str))
        .into_iter()
        .map(|(family, members)| Panel {
            title: title(family).to_string(),
            series: members
                .iter()
                .filter_map(|m| {
                    let i = labels.iter().position(|l| l == m)?;
                    series[i].take()
                })
                .collect(),
            y,
            y_desc: y_desc.to_string(),
            references: references(family),
        })
        .collect()
}

/// Panels shrink a little as they multiply, so a figure stays on a screen.
fn panel_height(panels: usize) -> u32 {
    if panels >= 3 {
        300
    } else {
        340
    }
}

/// One line per model through the summaries `select` picks, at `x(summary)`; for a
/// `log` axis, points at zero are left out.
fn series_by_model(
    summaries: &[Summary],
    select: impl Fn(&Summary) -> bool,
    x: fn(&Summary) -> f64,
    metric: fn(&Summary) -> Option<f64>,
    log: bool,
) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    // A cell that measured nothing has zeros, not figures: no point at all.
    for s in summaries
        .iter()
        .filter(|s| select(s) && !s.measured_nothing())
    {
        // A log axis cannot show zero: a model with no replies in a cell has no point.
        let Some(y) = metric(s).filter(|y| *y > 0.0 || (!log && *y >= 0.0)) else {
            continue;
        };
        let (point, dot) = ((x(s), y), Dot::of(s));
        match series.iter_mut().find(|l| l.model == s.model) {
            Some(line) => {
                line.points.push(point);
                line.dots.push(dot);
            }
            None => series.push(Series {
                model: s.model.clone(),
                points: vec![point],
                dots: vec![dot],
            }),
        }
    }
    for line in &mut series {
        let mut pairs: Vec<((f64, f64), Dot)> = line
            .points
            .iter()
            .copied()
            .zip(line.dots.iter().copied())
            .collect();
        pairs.sort_by(|a, b| a.0 .0.total_cmp(&b.0 .0));
        (line.points, line.dots) = pairs.into_iter().unzip();
    }
    series
}

/// Two panels over one offered-rate axis: loss (%, linear) above, p99 latency (log)
/// below, one line per model.
fn rate_chart(
    path: &Path,
    caption: &str,
    loss: Vec<Series>,
    p99: Vec<Series>,
    colours: &Colours,
) -> Result<(), HarnessError> {
    let rates = || {
        loss.iter()
            .chain(&p99)
            .flat_map(|l| l.points.iter().map(|p| p.0))
    };
    let Some(x) = Axis::log(Unit::Count, rates()) else {
        return Ok(());
    };
    let loss_axis = Axis::from_zero(
        Unit::Percent,
        loss.iter().flat_map(|l| l.points.iter().map(|p| p.1)),
        1.0,
    );
    let p99_axis = Axis::log(
        Unit::Micros,
        p99.iter().flat_map(|l| l.points.iter().map(|p| p.1)),
    )
    .map(|a| a.reaching(1.0));
    let mut panels = vec![Panel {
        title: "datagrams lost".to_string(),
        series: loss,
        y: loss_axis,
        y_desc: "loss, % of sent".to_string(),
        references: Vec::new(),
    }];
    if let Some(y) = p99_axis {
        panels.push(Panel {
            title: "p99 latency of those answered".to_string(),
            series: p99,
            y,
            y_desc: "p99 latency (log)".to_string(),
            references: Vec::new(),
        });
    }
    let figure = Figure {
        caption: caption.to_string(),
        note: None,
        x,
        x_desc: "offered datagrams/s (log)".to_string(),
        colours,
        panel_height: 340,
    };
    panels::draw(path, &figure, &panels)
}

/// A white 860x500 SVG canvas.
fn canvas(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>, HarnessError> {
    let root = SVGBackend::new(path, (860, 500)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| HarnessError::write(path, e))?;
    Ok(root)
}

/// Every bar chart's caption, margin and label areas.
fn framed<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80);
    builder
}

/// One bar per model, grouped and coloured by family (a key at the top right).
fn bar_chart(
    path: &Path,
    caption: &str,
    y_label: &str,
    bars: &[(String, f64)],
) -> Result<(), HarnessError> {
    let fail = |e: &dyn std::fmt::Display| HarnessError::write(path, e);
    let mut bars = bars.to_vec();
    // A stable sort: within a family, the run's order.
    bars.sort_by_key(|(model, _)| {
        let family = family_of(model);
        Family::ALL
            .iter()
            .position(|f| Some(*f) == family)
            .unwrap_or(Family::ALL.len())
    });
    let bars = &bars[..];
    let y_max = bars.iter().map(|(_, v)| *v).fold(1.0f64, f64::max) * 1.15;
    let root = canvas(path)?;
    let mut chart = framed(&root, caption)
        // `a..b` segmented has a segment for every value up to `b` inclusive.
        .build_cartesian_2d((0..bars.len() - 1).into_segmented(), 0f64..y_max)
        .map_err(|e| fail(&e))?;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => bars.get(*i).map(|(m, _)| m.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len())
        .x_label_formatter(&label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (model, v))| {
            let color = family_colour(family_of(model));
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                color.filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            Text::new(
                format!("{v:.1}"),
                // Just above the bar's top.
                (SegmentValue::CenterOf(i), *v + y_max * 0.04),
                ("sans-serif", 14),
            )
        }))
        .map_err(|e| fail(&e))?;
    let mut families: Vec<Option<Family>> = bars.iter().map(|(m, _)| family_of(m)).collect();
    families.dedup();
    for (i, family) in families.into_iter().enumerate() {
        let y = 48 + 18 * i as i32;
        root.draw(&Rectangle::new(
            [(600, y - 5), (612, y + 5)],
            family_colour(family).filled(),
        ))
        .map_err(|e| fail(&e))?;
        root.draw(&Text::new(title(family), (618, y - 7), ("sans-serif", 13)))
            .map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Cell;
    use crate::summary::summarize;
    use crate::summary::tests::run;
    use crate::work::WorkPreset;

    #[test]
    fn a_cell_that_measured_nothing_is_no_point_on_a_chart() {
        let cells = Scenario::Throughput.cells(false);
        let runs: Vec<_> = cells[..3]
            .iter()
            .flat_map(|&cell| {
                // iterative got nothing at the second cell: its censored p99 is a wait,
                // not a round trip, and must not be drawn as one.
                let starved = cell.conns > 1 && cell.conns < 100;
                [
                    run("mio", cell, 0, 1000),
                    run("iterative", cell, 0, if starved { 0 } else { 1000 }),
                ]
            })
            .collect();
        let summaries = summarize(&runs);
        let series = series_by_model(
            &summaries,
            |_| true,
            |s| s.cell.conns as f64,
            |s| Some(s.p99_us.median),
            true,
        );
        let points = |model: &str| {
            let line = series.iter().find(|l| l.model == model).expect(model);
            line.points.iter().map(|p| p.0).collect::<Vec<_>>()
        };
        assert_eq!(points("mio"), [1.0, 10.0, 100.0]);
        assert_eq!(points("iterative"), [1.0, 100.0]);
    }

    #[test]
    fn marked_points_are_drawn_as_marked_and_the_legend_says_what_they_mean() {
        let cells = Scenario::Throughput.cells(false);
        let runs: Vec<_> = cells[..3]
            .iter()
            .flat_map(|&cell| {
                let mut fork = run("fork", cell, 0, 1000);
                let mut mio = run("mio", cell, 0, 1000);
                if cell.conns == 100 {
                    fork.marks.suspect = Some("below the floor".into());
                    mio.marks.client_bound = Some("the client used 99% of its CPU".into());
                }
                [fork, mio]
            })
            .collect();
        let summaries = summarize(&runs);
        let series = series_by_model(
            &summaries,
            |_| true,
            |s| s.cell.conns as f64,
            |s| Some(s.p99_us.median),
            true,
        );
        let dots = |model: &str| {
            series
                .iter()
                .find(|l| l.model == model)
                .expect(model)
                .dots
                .clone()
        };
        assert_eq!(dots("fork"), [Dot::Plain, Dot::Plain, Dot::Suspect]);
        assert_eq!(dots("mio"), [Dot::Plain, Dot::Plain, Dot::ClientBound]);
        let dir = std::env::temp_dir().join(format!("echolab-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let written = write_all(&dir, &summaries, 2);
        let svg = std::fs::read_to_string(dir.join("p99-64B.svg"));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(written.is_ok(), "{written:?}");
        let svg = svg.expect("p99 chart");
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(
            texts.contains(&"client-bound") && texts.contains(&"suspect"),
            "{svg}"
        );
    }

    /// The SVG's text lines, trimmed, in drawing order.
    fn texts(svg: &str) -> Vec<&str> {
        svg.lines().map(str::trim).collect()
    }

    #[test]
    fn each_family_gets_a_panel_with_its_models_named_in_it() {
        let cells: Vec<Cell> = Scenario::Throughput
            .cells(true)
            .into_iter()
            .filter(|c| c.size == 64)
            .collect();
        let models = ["mio", "fork", "uring", "threads", "select"];
        let runs: Vec<_> = cells
            .iter()
            .flat_map(|&cell| models.map(|m| run(m, cell, 0, 1000)))
            .collect();
        let summaries = summarize(&runs);
        let dir = std::env::temp_dir().join(format!("echolab-panels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let written = write_all(&dir, &summaries, 2);
        let svg = std::fs::read_to_string(dir.join("throughput-64B.svg"));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(written.is_ok(), "{written:?}");
        let svg = svg.expect("throughput chart");
        let texts = texts(&svg);
        let at = |text: &str| {
            texts
                .iter()
                .position(|t| *t == text)
                .unwrap_or_else(|| panic!("no {text:?} in {svg}"))
        };
        let blocking = at(Family::Blocking.label());
        let readiness = at(Family::ReadinessLoops.label());
        let completion = at(Family::CompletionAndRuntimes.label());
        assert!(blocking < readiness && readiness < completion);
        for model in ["fork", "threads"] {
            assert!((blocking..readiness).contains(&at(model)), "{model}");
        }
        for model in ["mio", "select"] {
            assert!((readiness..completion).contains(&at(model)), "{model}");
        }
        assert!(at("uring") > completion);
        assert!(!texts.contains(&Family::Datagram.label()));
        // Each name once: a line is named in its own panel only.
        assert_eq!(texts.iter().filter(|t| **t == "mio").count(), 1);
    }

    #[test]
    fn the_work_sweep_is_drawn_per_family_with_its_bounds_and_the_fast_messages_apart() {
        let models = ["threads", "mio", "mio+offload4"];
        let cells: Vec<Cell> = Scenario::Work
            .cells(false)
            .into_iter()
            .filter(|c| matches!(c.work, Some(WorkPreset::Block1ms | WorkPreset::LongTail)))
            .collect();
        let runs: Vec<_> = cells
            .iter()
            .flat_map(|&cell| {
                models.map(|m| {
                    let mut r = run(m, cell, 0, 1000);
                    if cell.work == Some(WorkPreset::LongTail) {
                        r.p99_fast_us = Some(30.0);
                        r.p99_slow_us = Some(6_000.0);
                    }
                    r
                })
            })
            .collect();
        let summaries = summarize(&runs);
        let dir = std::env::temp_dir().join(format!("echolab-work-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let written = write_all(&dir, &summaries, 2);
        let read = |name: &str| std::fs::read_to_string(dir.join(name));
        let (block, tail, fast, cpu) = (
            read("work-p99-block1ms.svg"),
            read("work-p99-long-tail.svg"),
            read("work-p99-fast-long-tail.svg"),
            read("work-p99-cpu20us.svg"),
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(written.is_ok(), "{written:?}");
        assert!(cpu.is_err(), "no cpu:20us cells, no chart");
        let block = block.expect("block:1ms chart");
        let texts = texts(&block);
        for expected in [
            "M/D/1 mean",
            "M/D/2 mean",
            "SLO 10 ms",
            "mio+offload4",
            Family::Blocking.label(),
            Family::ReadinessLoops.label(),
        ] {
            assert!(texts.contains(&expected), "{expected} in {block}");
        }
        // The bounds are drawn once per panel.
        assert_eq!(texts.iter().filter(|t| **t == "M/D/1 mean").count(), 2);
        assert!(tail.is_ok());
        assert!(fast
            .expect("fast messages' chart")
            .contains("fast messages"));
    }
}
