//! SVG charts of a run (plotters): throughput, p99 latency and server CPU per response
//! against connections, one line per model; memory per idle connection as bars; for the
//! datagram models, loss and p99 latency against the offered rate.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{Ranged, SegmentValue};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::HarnessError;
use crate::figures::short;
use crate::scenario::Scenario;
use crate::summary::Summary;

/// One line: a model's points, each drawn as its cell's marks say.
struct Series {
    model: String,
    points: Vec<(f64, f64)>,
    dots: Vec<Dot>,
}

/// How a point is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dot {
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
pub(crate) fn write_all(dir: &Path, summaries: &[Summary]) -> Result<Vec<PathBuf>, HarnessError> {
    let mut written = Vec::new();
    // One colour per model across every chart, in the order the models first appear.
    let mut models: Vec<&str> = Vec::new();
    for s in summaries {
        if !models.contains(&s.model.as_str()) {
            models.push(&s.model);
        }
    }
    let colour = |model: &str| {
        Palette99::pick(models.iter().position(|m| *m == model).unwrap_or(0)).to_rgba()
    };
    let mut sizes: Vec<usize> = summaries
        .iter()
        .filter(|s| s.cell.scenario == Scenario::Throughput)
        .map(|s| s.cell.size)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    type Metric = fn(&Summary) -> Option<f64>;
    let metrics: [(&str, &str, &str, Metric); 3] = [
        ("throughput", "responses/s", "Throughput", |s| {
            Some(s.responses_per_sec.median)
        }),
        ("p99", "p99 latency (µs)", "p99 latency", |s| {
            Some(s.p99_us.median)
        }),
        (
            "cpu-per-response",
            "server CPU µs per response",
            "Server CPU per response",
            |s| s.server_cpu_us_per_response.map(|c| c.median),
        ),
    ];
    for size in sizes {
        for (file, y_label, title, metric) in metrics {
            let in_cell =
                |s: &Summary| s.cell.scenario == Scenario::Throughput && s.cell.size == size;
            let series = series_by_model(summaries, in_cell, |s| s.cell.conns as f64, metric, true);
            if series.iter().all(|l| l.points.len() < 2) {
                continue;
            }
            let path = dir.join(format!("{file}-{size}B.svg"));
            let caption = format!("{title} vs connections, {size} B payload");
            line_chart(&path, &caption, y_label, &series, &colour)?;
            written.push(path);
        }
    }
    // The crowd: x is every connection the server holds (the active one + the idle),
    // so the first point, no crowd at all, still sits on a log axis.
    for (file, y_label, title, metric) in &metrics[1..] {
        let in_crowd = |s: &Summary| s.cell.scenario == Scenario::Crowd;
        let held = |s: &Summary| (s.cell.conns + s.cell.idle_conns) as f64;
        let series = series_by_model(summaries, in_crowd, held, *metric, true);
        if series.iter().all(|l| l.points.len() < 2) {
            continue;
        }
        let path = dir.join(format!("crowd-{file}.svg"));
        let caption = format!("{title} of one client vs connections held (1 active + idle)");
        line_chart(&path, &caption, y_label, &series, &colour)?;
        written.push(path);
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
        rate_chart(&path, &caption, &loss, &p99, &colour)?;
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
        bar_chart(&path, &caption, "% of one core", &at_rest, &colour)?;
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
            &colour,
        )?;
        written.push(path);
    }
    Ok(written)
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

/// The corner where the legend box hides the fewest points: `place` puts each point on
/// the plotting area as fractions of its width and height from the lower left (so
/// whatever the axes, log or linear), and the box is taken to cover a quarter of the
/// width and a band of height that grows with the number of lines.
fn emptiest_corner(
    series: &[Series],
    place: impl Fn(f64, f64) -> (f64, f64),
) -> SeriesLabelPosition {
    let box_w = 0.28;
    let box_h = (0.06 * series.len() as f64 + 0.04).min(0.9);
    let covered = |left: bool, top: bool| {
        series
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|(x, y)| {
                let (fx, fy) = place(*x, *y);
                let in_x = if left { fx <= box_w } else { fx >= 1.0 - box_w };
                let in_y = if top { fy >= 1.0 - box_h } else { fy <= box_h };
                in_x && in_y
            })
            .count()
    };
    [
        (SeriesLabelPosition::UpperLeft, true, true),
        (SeriesLabelPosition::UpperRight, false, true),
        (SeriesLabelPosition::LowerRight, false, false),
        (SeriesLabelPosition::LowerLeft, true, false),
    ]
    .into_iter()
    .min_by_key(|(_, left, top)| covered(*left, *top))
    .map_or(SeriesLabelPosition::UpperLeft, |(corner, _, _)| corner)
}

/// A white 860x500 SVG canvas.
fn canvas(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>, HarnessError> {
    let root = SVGBackend::new(path, (860, 500)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| HarnessError::write(path, e))?;
    Ok(root)
}

/// Every chart's caption, margin and label areas.
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

fn line_chart(
    path: &Path,
    caption: &str,
    y_label: &str,
    series: &[Series],
    colour: &dyn Fn(&str) -> RGBAColor,
) -> Result<(), HarnessError> {
    let fail = |e: &dyn std::fmt::Display| HarnessError::write(path, e);
    let points = series.iter().flat_map(|l| l.points.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::MAX, 0.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    // The legend gets a column of its own to the right: with a dozen models no corner
    // of the plot is free of points.
    let root = SVGBackend::new(path, (860 + LEGEND_WIDTH, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (plot, legend) = root.split_horizontally(860);
    side_legend(&legend, series, colour).map_err(|e| fail(&e))?;
    let mut chart = framed(&plot, caption)
        .build_cartesian_2d(
            (0.7f64..x_max * 1.4).log_scale(),
            (y_min / 2.0..y_max * 2.0).log_scale(),
        )
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("connections (log)")
        .y_desc(format!("{y_label} (log)"))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| short(*y))
        .draw()
        .map_err(|e| fail(&e))?;
    draw_lines(&mut chart, series, colour, path, false)?;
    root.present().map_err(|e| fail(&e))
}

/// Width of the legend column beside a line chart.
const LEGEND_WIDTH: u32 = 140;

/// One line of colour and a name per model, top to bottom, in a column of its own.
fn side_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    series: &[Series],
    colour: &dyn Fn(&str) -> RGBAColor,
) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
    for (i, model) in series.iter().map(|l| &l.model).enumerate() {
        let y = 60 + 20 * i as i32;
        let color = colour(model);
        area.draw(&PathElement::new(
            vec![(8, y), (32, y)],
            color.stroke_width(2),
        ))?;
        area.draw(&Text::new(model.as_str(), (40, y - 7), ("sans-serif", 14)))?;
    }
    // What a marked point means, under the models, when the chart has one.
    let mut y = 60 + 20 * series.len() as i32 + 10;
    let grey = BLACK.mix(0.7);
    for (dot, what) in [
        (Dot::ClientBound, "client-bound"),
        (Dot::Suspect, "suspect"),
    ] {
        if !series.iter().any(|l| l.dots.contains(&dot)) {
            continue;
        }
        match dot {
            Dot::Suspect => area.draw(&Cross::new((20, y), 6, grey.stroke_width(3)))?,
            _ => area.draw(&Circle::new((20, y), 4, grey.stroke_width(2)))?,
        }
        area.draw(&Text::new(what, (40, y - 7), ("sans-serif", 14)))?;
        y += 20;
    }
    Ok(())
}

/// One line with dots per model, and the legend, on any pair of axes.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: &[Series],
    colour: &dyn Fn(&str) -> RGBAColor,
    path: &Path,
    legend_inside: bool,
) -> Result<(), HarnessError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let fail = |e: &dyn std::fmt::Display| HarnessError::write(path, e);
    for line in series {
        let color = colour(&line.model);
        chart
            .draw_series(LineSeries::new(line.points.clone(), color.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(line.model.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        let dots = line.points.iter().zip(&line.dots);
        chart
            .draw_series(
                dots.clone()
                    .filter(|(_, d)| **d != Dot::Suspect)
                    .map(|(p, d)| {
                        // A client-bound point is hollow: white inside, the line's colour around.
                        let style = match d {
                            Dot::ClientBound => color.stroke_width(2),
                            _ => color.filled(),
                        };
                        Circle::new(*p, 4, style)
                    }),
            )
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(
                dots.filter(|(_, d)| **d == Dot::Suspect)
                    .map(|(p, _)| Cross::new(*p, 6, color.stroke_width(3))),
            )
            .map_err(|e| fail(&e))?;
    }
    if !legend_inside {
        return Ok(());
    }
    // Where each point lands in the plotting area's pixels (y grows downwards there).
    let (px, py) = chart.plotting_area().get_pixel_range();
    let (width, height) = (
        f64::from((px.end - px.start).max(1)),
        f64::from((py.end - py.start).max(1)),
    );
    let corner = emptiest_corner(series, |x, y| {
        let (bx, by) = chart.backend_coord(&(x, y));
        (
            f64::from(bx - px.start) / width,
            f64::from(py.end - by) / height,
        )
    });
    chart
        .configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.6))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))
}

/// Two panels over one offered-rate axis: loss (%, linear) above, p99 latency (log)
/// below, one line per model.
fn rate_chart(
    path: &Path,
    caption: &str,
    loss: &[Series],
    p99: &[Series],
    colour: &dyn Fn(&str) -> RGBAColor,
) -> Result<(), HarnessError> {
    let fail = |e: &dyn std::fmt::Display| HarnessError::write(path, e);
    let all = || loss.iter().chain(p99).flat_map(|l| l.points.iter());
    let x_min = all().map(|p| p.0).fold(f64::MAX, f64::min).max(1.0);
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let x_range = || (x_min / 1.3..x_max * 1.3).log_scale();
    let loss_max = loss
        .iter()
        .flat_map(|l| l.points.iter())
        .map(|p| p.1)
        .fold(1.0, f64::max);
    let p99_of = || p99.iter().flat_map(|l| l.points.iter()).map(|p| p.1);
    let (p99_min, p99_max) = (
        p99_of().fold(f64::MAX, f64::min).min(1.0e9),
        p99_of().fold(1.0, f64::max),
    );
    let root = SVGBackend::new(path, (860, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root
        .titled(caption, ("sans-serif", 20))
        .map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(360);
    let panel = |area| {
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80);
        builder
    };
    let mut upper = panel(&top)
        .build_cartesian_2d(x_range(), 0f64..loss_max * 1.15)
        .map_err(|e| fail(&e))?;
    upper
        .configure_mesh()
        .x_desc("offered datagrams/s (log)")
        .y_desc("loss %")
        .x_label_formatter(&|x| short(*x))
        .draw()
        .map_err(|e| fail(&e))?;
    draw_lines(&mut upper, loss, colour, path, true)?;
    let mut lower = panel(&bottom)
        .build_cartesian_2d(x_range(), (p99_min / 2.0..p99_max * 2.0).log_scale())
        .map_err(|e| fail(&e))?;
    lower
        .configure_mesh()
        .x_desc("offered datagrams/s (log)")
        .y_desc("p99 latency µs (log)")
        .x_label_formatter(&|x| short(*x))
        .y_label_formatter(&|y| short(*y))
        .draw()
        .map_err(|e| fail(&e))?;
    draw_lines(&mut lower, p99, colour, path, true)?;
    root.present().map_err(|e| fail(&e))
}

fn bar_chart(
    path: &Path,
    caption: &str,
    y_label: &str,
    bars: &[(String, f64)],
    colour: &dyn Fn(&str) -> RGBAColor,
) -> Result<(), HarnessError> {
    let fail = |e: &dyn std::fmt::Display| HarnessError::write(path, e);
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
            let color = colour(model);
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
    root.present().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::summarize;
    use crate::summary::tests::run;

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
        let written = write_all(&dir, &summaries);
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
}
