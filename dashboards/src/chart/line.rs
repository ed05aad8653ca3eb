//! Line and area charts: a path per series (broken where a value is
//! missing), a filled area under it when asked (stacked on the series
//! before), and a small circle mark per point.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::categories::{Categories, XKey, tooltip};
use super::format::{format_plain_tick, format_tick, format_value, plain_number};
use super::plot::{Plot, ValueAxis, XAxis, series_entries};
use super::scale::{clamp_magnitude, nice_ticks, ticks_within};
use super::svg::{C, Doc, Mark, Shape, colour_class};
use super::time::{HOUR, human_time, rfc3339, time_ticks};
use super::{Point, Series, Unit, XValue};

/// What kind of x axis a line chart gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XKind {
    /// All x values are instants.
    Time,
    /// Numbers (instants mixed with numbers count as ms).
    Number,
    /// Any label makes every x a category.
    Category,
}

/// A point ready to draw.
#[derive(Debug, Clone, PartialEq)]
struct LinePoint<'a> {
    /// Position on the x axis (ms, number, or category index).
    pos: f64,
    /// Its own value.
    y: f64,
    /// Where its area starts (the series below it when stacked, else 0).
    base: f64,
    /// Where it is drawn (`base + y` when stacked).
    top: f64,
    data_x: String,
    tip_x: String,
    link: Option<&'a str>,
}

/// A series' points; `None` where a point has no value (a gap).
type LinePoints<'a> = Vec<Option<LinePoint<'a>>>;

/// Draws a line (or area) chart; `false` when there is nothing to draw.
pub(crate) fn render(
    doc: &mut Doc,
    series: &[Series],
    area: bool,
    stacked: bool,
    unit: Unit,
) -> bool {
    let kind = x_kind(series);
    let categories = match kind {
        XKind::Category => Categories::collect(series),
        _ => Categories::default(),
    };
    let lines: Vec<LinePoints<'_>> = prepare(series, kind, &categories, stacked);
    let Some((min, max)) = value_extent(&lines, area || stacked) else {
        return false;
    };
    let x_axis = match kind {
        XKind::Category => XAxis::Bands(categories.labels.clone()),
        XKind::Time => time_axis(series),
        XKind::Number => number_axis(&lines),
    };
    let y_ticks = nice_ticks(min, max, 5);
    let y_axis = ValueAxis::new(&y_ticks, |v, step| format_tick(v, unit, step));
    let entries = series_entries(series.iter().map(|s| s.name.as_str()));
    let plot = Plot::draw(doc, &x_axis, &y_axis, &entries);
    if area {
        for (i, points) in lines.iter().enumerate() {
            doc.path(
                &area_path(&plot, points),
                &format!("lh-area {}", colour_class(i)),
            );
        }
    }
    for (i, points) in lines.iter().enumerate() {
        doc.path(
            &line_path(&plot, points),
            &format!("lh-line {}", colour_class(i)),
        );
    }
    let radius = point_radius(&plot, &lines);
    for (i, (points, s)) in lines.iter().zip(series).enumerate() {
        for p in points.iter().flatten() {
            let shape = Shape::Circle {
                cx: plot.x(p.pos),
                cy: plot.y.map(p.top),
                r: radius,
            };
            let tip = tooltip(&s.name, &p.tip_x, &format_value(p.y, unit));
            let mark = Mark::new(
                shape,
                format!("{} lh-dot", colour_class(i)),
                &s.name,
                &p.data_x,
                p.y,
            )
            .tooltip(tip)
            .link(p.link);
            doc.mark(&mark);
        }
    }
    plot.finish(doc);
    true
}

fn x_kind(series: &[Series]) -> XKind {
    let mut kind = XKind::Time;
    let xs = series.iter().flat_map(|s| &s.points).map(|p| &p.x);
    for x in xs {
        match x {
            XValue::Category(_) => return XKind::Category,
            XValue::Number(_) => kind = XKind::Number,
            XValue::Time(_) => {}
        }
    }
    kind
}

/// The series' points with their positions, stacked when asked (each
/// point on the sum of the series before it at the same x).
fn prepare<'a>(
    series: &'a [Series],
    kind: XKind,
    categories: &Categories<'a>,
    stacked: bool,
) -> Vec<LinePoints<'a>> {
    let mut stack: HashMap<XKey<'a>, f64> = HashMap::new();
    let mut line_point = |p: &'a Point| {
        if !p.y.is_finite() {
            return None;
        }
        let key = XKey::of(&p.x)?;
        let (pos, data_x, tip_x) = place(kind, categories, &p.x)?;
        let y = clamp_magnitude(p.y);
        let base = if stacked {
            stack.get(&key).copied().unwrap_or(0.0)
        } else {
            0.0
        };
        let top = clamp_magnitude(base + y);
        if stacked {
            stack.insert(key, top);
        }
        Some(LinePoint {
            pos,
            y: p.y,
            base,
            top,
            data_x,
            tip_x,
            link: p.link.as_deref(),
        })
    };
    series
        .iter()
        .map(|s| s.points.iter().map(&mut line_point).collect())
        .collect()
}

/// Where an x value goes on the axis, its `data-x` and its tooltip text.
fn place(kind: XKind, categories: &Categories<'_>, x: &XValue) -> Option<(f64, String, String)> {
    match (kind, x) {
        (XKind::Category, x) => {
            let i = categories.position(x)?;
            let label = categories.labels.get(i)?.clone();
            let data_x = categories.data_x.get(i)?.clone();
            Some((i as f64, data_x, label))
        }
        (_, XValue::Time(t)) => Some((*t as f64, rfc3339(*t), human_time(*t))),
        (_, XValue::Number(v)) => Some((clamp_magnitude(*v), plain_number(*v), plain_number(*v))),
        (_, XValue::Category(_)) => None,
    }
}

/// The smallest and largest value drawn; with `filled`, the areas' bases
/// and zero too. `None` when no point has a value.
fn value_extent(lines: &[LinePoints<'_>], filled: bool) -> Option<(f64, f64)> {
    let mut extent: Option<(f64, f64)> = None;
    for p in lines.iter().flatten().flatten() {
        let (lo, hi) = if filled {
            (p.top.min(p.base).min(0.0), p.top.max(p.base).max(0.0))
        } else {
            (p.top, p.top)
        };
        extent = Some(match extent {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        });
    }
    extent
}

fn time_axis(series: &[Series]) -> XAxis {
    let times = series
        .iter()
        .flat_map(|s| &s.points)
        .filter(|p| p.y.is_finite())
        .filter_map(|p| match p.x {
            XValue::Time(t) => Some(t),
            _ => None,
        });
    let (min, max) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let (min, max) = if min >= max {
        (min.saturating_sub(HOUR), min.saturating_add(HOUR))
    } else {
        (min, max)
    };
    let ticks = time_ticks(min, max)
        .ticks
        .into_iter()
        .map(|(t, label)| (t as f64, label))
        .collect();
    XAxis::Linear {
        domain: (min as f64, max as f64),
        ticks,
    }
}

fn number_axis(lines: &[LinePoints<'_>]) -> XAxis {
    let (min, max) = lines
        .iter()
        .flatten()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.pos), b.max(p.pos))
        });
    let ticks = ticks_within(min, max, 6);
    XAxis::Linear {
        domain: (ticks.lo, ticks.hi),
        ticks: ticks
            .values
            .iter()
            .map(|&v| (v, format_plain_tick(v, ticks.step)))
            .collect(),
    }
}

/// The line through a series' points, a new subpath after each gap.
fn line_path(plot: &Plot, points: &[Option<LinePoint<'_>>]) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match p {
            Some(p) => {
                let cmd = if pen_down { 'L' } else { 'M' };
                // Writing into a String cannot fail.
                let _ = write!(d, "{cmd}{},{}", C(plot.x(p.pos)), C(plot.y.map(p.top)));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d
}

/// The area between a series' line and its base, one closed polygon per
/// run of points without gaps.
fn area_path(plot: &Plot, points: &[Option<LinePoint<'_>>]) -> String {
    let mut d = String::new();
    for run in points.split(Option::is_none) {
        let run: Vec<&LinePoint<'_>> = run.iter().flatten().collect();
        if run.is_empty() {
            continue;
        }
        for (i, p) in run.iter().enumerate() {
            let cmd = if i == 0 { 'M' } else { 'L' };
            // Writing into a String cannot fail.
            let _ = write!(d, "{cmd}{},{}", C(plot.x(p.pos)), C(plot.y.map(p.top)));
        }
        for p in run.iter().rev() {
            let _ = write!(d, "L{},{}", C(plot.x(p.pos)), C(plot.y.map(p.base)));
        }
        d.push('Z');
    }
    d
}

/// Points get smaller as they crowd: 3.5 px down to 1.5 px.
fn point_radius(plot: &Plot, lines: &[LinePoints<'_>]) -> f64 {
    let most = lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
    (plot.area.width() / most as f64 / 3.0).clamp(1.5, 3.5)
}
