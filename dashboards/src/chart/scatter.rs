//! Scatter plots: a circle per point on two numeric axes.

use super::categories::tooltip;
use super::format::{format_tick, format_value, plain_number};
use super::plot::{Plot, ValueAxis, XAxis, series_entries};
use super::scale::{clamp_magnitude, nice_ticks};
use super::svg::{Doc, Mark, Shape, colour_class};
use super::{ScatterSeries, Unit};

/// Radius of a scatter point.
const RADIUS: f64 = 3.5;

/// Draws a scatter plot; `false` when no point has both coordinates.
pub(crate) fn render(doc: &mut Doc, series: &[ScatterSeries], x_unit: Unit, y_unit: Unit) -> bool {
    let valid = || {
        series.iter().enumerate().flat_map(|(i, s)| {
            s.points
                .iter()
                .filter(|p| p.x.is_finite() && p.y.is_finite())
                .map(move |p| (i, s, p))
        })
    };
    let Some(((x_min, x_max), (y_min, y_max))) = extent(valid().map(|(_, _, p)| (p.x, p.y))) else {
        return false;
    };
    let x_ticks = nice_ticks(x_min, x_max, 6);
    let x_axis = XAxis::Linear {
        domain: (x_ticks.lo, x_ticks.hi),
        ticks: x_ticks
            .values
            .iter()
            .map(|&v| (v, format_tick(v, x_unit, x_ticks.step)))
            .collect(),
    };
    let y_ticks = nice_ticks(y_min, y_max, 5);
    let y_axis = ValueAxis::new(&y_ticks, |v, step| format_tick(v, y_unit, step));
    let entries = series_entries(series.iter().map(|s| s.name.as_str()));
    let plot = Plot::draw(doc, &x_axis, &y_axis, &entries);
    for (i, s, p) in valid() {
        let shape = Shape::Circle {
            cx: plot.x(clamp_magnitude(p.x)),
            cy: plot.y.map(clamp_magnitude(p.y)),
            r: RADIUS,
        };
        let x_text = plain_number(p.x);
        let tip = tooltip(
            &s.name,
            &format_value(p.x, x_unit),
            &format_value(p.y, y_unit),
        );
        let mark = Mark::new(
            shape,
            format!("{} lh-dot", colour_class(i)),
            &s.name,
            &x_text,
            p.y,
        )
        .tooltip(tip)
        .link(p.link.as_deref());
        doc.mark(&mark);
    }
    plot.finish(doc);
    true
}

/// The x and y ranges of points; `None` without points.
fn extent(points: impl Iterator<Item = (f64, f64)>) -> Option<((f64, f64), (f64, f64))> {
    points.fold(None, |acc, (x, y)| {
        let (x, y) = (clamp_magnitude(x), clamp_magnitude(y));
        Some(match acc {
            None => ((x, x), (y, y)),
            Some(((x0, x1), (y0, y1))) => ((x0.min(x), x1.max(x)), (y0.min(y), y1.max(y))),
        })
    })
}
