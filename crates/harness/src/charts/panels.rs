//! A figure of panels stacked over one x axis: one panel per family of models (or per
//! figure, as the UDP chart's loss and latency), each with its lines named at their
//! ends in a column beside it, its marks explained under the names, and any reference
//! curves (a queueing bound, an SLO) dashed in black with their names on the plot.

use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::Axis;
use super::palette::Colours;
use super::{Dot, Series};
use crate::error::HarnessError;

/// The figure's width in pixels, names column included.
const WIDTH: u32 = 1000;
/// The column of names right of each panel.
const NAMES_WIDTH: u32 = 170;
/// Least pixels between two names in the column.
const NAME_GAP: i32 = 16;

/// A dashed black curve that is not a model: a bound or a target.
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    /// Written on the plot at one end of the curve.
    pub label: String,
    /// Its points, in values; from the first past the top of the plot on, cut off.
    pub points: Vec<(f64, f64)>,
    /// Which end the label goes at.
    pub end: End,
}

/// Where a reference's label goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Above its first point, reading rightwards (a flat line).
    First,
    /// Left of its last point, ending there (a curve that rises out of the plot).
    Last,
}

/// One panel: its lines over their own y axis.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    /// Over the panel.
    pub title: String,
    /// One line per model.
    pub series: Vec<Series>,
    /// Its y axis (the same for every panel of a family figure, so heights compare).
    pub y: Axis,
    /// What the y axis reads.
    pub y_desc: String,
    /// Bounds and targets drawn beside the lines.
    pub references: Vec<Reference>,
}

/// The figure: its caption, the shared x axis, the colours of the run.
pub(crate) struct Figure<'a> {
    /// The title over every panel.
    pub caption: String,
    /// Lines under the title (what the dashed curves are, ...).
    pub note: Option<String>,
    /// The x axis of every panel.
    pub x: Axis,
    /// What it reads.
    pub x_desc: String,
    /// Each model's colour.
    pub colours: &'a Colours,
    /// Each panel's height in pixels.
    pub panel_height: u32,
}

/// Draws `panels` under the caption into an SVG at `path`.
pub(crate) fn draw(path: &Path, figure: &Figure<'_>, panels: &[Panel]) -> Result<(), HarnessError> {
    let fail = |e: &dyn std::fmt::Display| HarnessError::write(path, e);
    // The note may run to several lines ('\n').
    let notes: Vec<&str> = figure
        .note
        .as_deref()
        .map_or(Vec::new(), |n| n.lines().collect());
    let head = 36 + 17 * notes.len() as u32;
    let height = head + figure.panel_height * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, body) = root.split_vertically(head);
    top.draw(&Text::new(
        figure.caption.as_str(),
        (12, 8),
        ("sans-serif", 20),
    ))
    .map_err(|e| fail(&e))?;
    for (i, line) in notes.into_iter().enumerate() {
        top.draw(&Text::new(
            line,
            (12, 34 + 17 * i as i32),
            ("sans-serif", 13).into_font().color(&BLACK.mix(0.75)),
        ))
        .map_err(|e| fail(&e))?;
    }
    let areas = body.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, figure, panel).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw_panel(area: &Area<'_>, figure: &Figure<'_>, panel: &Panel) -> DrawResult {
    let (plot, names) = area.split_horizontally(WIDTH - NAMES_WIDTH);
    let (x, y) = (&figure.x, &panel.y);
    let keyed = |axis: &Axis| {
        let pos = |values: Vec<f64>| values.into_iter().map(|v| axis.pos(v)).collect();
        Ticked {
            inner: axis.range().into(),
            bold: pos(axis.ticks()),
            light: pos(axis.light()),
        }
    };
    let mut chart = ChartBuilder::on(&plot)
        .caption(panel.title.as_str(), ("sans-serif", 16))
        .margin(8)
        .margin_right(16)
        .x_label_area_size(34)
        .y_label_area_size(72)
        .build_cartesian_2d(keyed(x), keyed(y))?;
    chart
        .configure_mesh()
        .x_desc(figure.x_desc.as_str())
        .y_desc(panel.y_desc.as_str())
        .x_label_formatter(&|p| x.label_at(*p))
        .y_label_formatter(&|p| y.label_at(*p))
        .bold_line_style(BLACK.mix(0.2))
        .light_line_style(BLACK.mix(0.06))
        .draw()?;
    let at = |(vx, vy): (f64, f64)| (x.pos(vx), y.pos(vy));
    for reference in &panel.references {
        // A bound that rises past the top stops there: its last point is on the plot.
        let points: Vec<(f64, f64)> = reference
            .points
            .iter()
            .copied()
            .skip_while(|(vx, _)| !x.holds(*vx))
            .take_while(|(vx, vy)| x.holds(*vx) && y.holds(*vy))
            .map(at)
            .collect();
        let (Some(&first), Some(&last)) = (points.first(), points.last()) else {
            continue;
        };
        chart.draw_series(DashedLineSeries::new(
            points,
            6,
            4,
            BLACK.mix(0.7).stroke_width(1),
        ))?;
        let font = ("sans-serif", 12).into_font().color(&BLACK.mix(0.8));
        let (anchor, offset, font) = match reference.end {
            End::First => (first, (4, -16), font),
            End::Last => (last, (-6, -14), font.pos(Pos::new(HPos::Right, VPos::Top))),
        };
        chart.draw_series(std::iter::once(
            EmptyElement::at(anchor) + Text::new(reference.label.clone(), offset, font),
        ))?;
    }
    for line in &panel.series {
        draw_line(&mut chart, line, figure.colours.of(&line.model), &at)?;
    }
    name_line_ends(&chart, &names, figure.colours, panel, &at)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, Ticked>>;

/// A linear coordinate with the ticks we chose: plotters' own `WithKeyPoints` over an
/// `f64` range keeps that range's format option, which leaves it without a label
/// formatter to configure.
#[derive(Clone)]
struct Ticked {
    inner: RangedCoordf64,
    /// Labelled, with a bold grid line.
    bold: Vec<f64>,
    /// A faint grid line.
    light: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// A model's line with a dot per point, drawn as its cell's marks say.
fn draw_line(
    chart: &mut Chart<'_, '_>,
    line: &Series,
    colour: RGBColor,
    at: &dyn Fn((f64, f64)) -> (f64, f64),
) -> DrawResult {
    let points: Vec<(f64, f64)> = line.points.iter().copied().map(at).collect();
    chart.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?;
    for (p, dot) in points.into_iter().zip(&line.dots) {
        match dot {
            Dot::Plain => {
                chart.draw_series(std::iter::once(Circle::new(p, 4, colour.filled())))?;
            }
            // Hollow: white inside, so the line does not fill it in.
            Dot::ClientBound => {
                chart.draw_series([
                    Circle::new(p, 5, WHITE.filled()),
                    Circle::new(p, 5, colour.stroke_width(2)),
                ])?;
            }
            Dot::Suspect => {
                chart.draw_series(std::iter::once(Cross::new(p, 6, colour.stroke_width(3))))?;
            }
        }
    }
    Ok(())
}

/// Each line's name in the column beside the plot, at the height where the line ends
/// (pushed apart where ends crowd), then what a marked point means if the panel has one.
fn name_line_ends(
    chart: &Chart<'_, '_>,
    names: &Area<'_>,
    colours: &Colours,
    panel: &Panel,
    at: &dyn Fn((f64, f64)) -> (f64, f64),
) -> DrawResult {
    let (_, top) = names.get_base_pixel();
    let (_, height) = names.dim_in_pixel();
    let (_, py) = chart.plotting_area().get_pixel_range();
    let ends: Vec<(&Series, i32)> = panel
        .series
        .iter()
        .filter_map(|line| {
            let last = line
                .points
                .iter()
                .copied()
                .max_by(|a, b| a.0.total_cmp(&b.0))?;
            Some((line, chart.backend_coord(&at(last)).1 - top))
        })
        .collect();
    let marks: Vec<(Dot, &str)> = [
        (Dot::ClientBound, "client-bound"),
        (Dot::Suspect, "suspect"),
    ]
    .into_iter()
    .filter(|(dot, _)| panel.series.iter().any(|l| l.dots.contains(dot)))
    .collect();
    // The marks' key takes the column's foot; the names keep above it.
    let key_top = height as i32 - 10 - NAME_GAP * marks.len() as i32;
    let wanted: Vec<i32> = ends.iter().map(|(_, y)| *y).collect();
    let placed = spread(
        &wanted,
        NAME_GAP,
        (py.start - top).max(NAME_GAP),
        (py.end - top).min(key_top - NAME_GAP),
    );
    for ((line, _), y) in ends.iter().zip(placed) {
        let colour = colours.of(&line.model);
        names.draw(&PathElement::new(
            vec![(6, y), (28, y)],
            colour.stroke_width(3),
        ))?;
        names.draw(&Text::new(
            line.model.as_str(),
            (34, y - 7),
            ("sans-serif", 13),
        ))?;
    }
    let grey = BLACK.mix(0.7);
    for (i, (dot, what)) in marks.into_iter().enumerate() {
        let y = key_top + NAME_GAP * i as i32 + NAME_GAP / 2;
        match dot {
            Dot::Suspect => names.draw(&Cross::new((17, y), 5, grey.stroke_width(3)))?,
            _ => names.draw(&Circle::new((17, y), 5, grey.stroke_width(2)))?,
        }
        names.draw(&Text::new(what, (34, y - 7), ("sans-serif", 13)))?;
    }
    Ok(())
}

/// Heights for names that want to sit at `wanted` (pixels, downwards), at least `gap`
/// apart, within `top..=bottom` as far as they fit, each as near its wish as that allows;
/// returned in the order of `wanted`.
pub(crate) fn spread(wanted: &[i32], gap: i32, top: i32, bottom: i32) -> Vec<i32> {
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by_key(|&i| (wanted[i], i));
    let mut ys: Vec<i32> = order.iter().map(|&i| wanted[i]).collect();
    // Down from the top: each at least a gap under the one above.
    let mut floor = top;
    for y in &mut ys {
        *y = (*y).max(floor);
        floor = *y + gap;
    }
    // Up from the bottom: each at least a gap over the one below.
    let mut ceiling = bottom;
    for y in ys.iter_mut().rev() {
        *y = (*y).min(ceiling);
        ceiling = *y - gap;
    }
    let mut out = vec![0; wanted.len()];
    for (slot, &i) in order.iter().enumerate() {
        out[i] = ys[slot];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_apart_near_their_lines_and_inside_the_column() {
        // Three lines ending at one height, one far below.
        let ys = spread(&[100, 100, 300, 101], 16, 20, 400);
        let mut sorted = ys.clone();
        sorted.sort_unstable();
        assert!(sorted.windows(2).all(|w| w[1] - w[0] >= 16), "{ys:?}");
        assert_eq!(ys[2], 300, "a lone end keeps its height");
        assert!(
            ys[0] < ys[1] && ys[1] < ys[3],
            "ties keep their order: {ys:?}"
        );
        // Crowded at the bottom: pushed up, not out.
        let ys = spread(&[395, 398, 399], 16, 20, 400);
        assert!(ys.iter().all(|y| *y <= 400) && ys.contains(&400), "{ys:?}");
        assert_eq!(spread(&[], 16, 0, 10), Vec::<i32>::new());
    }
}
