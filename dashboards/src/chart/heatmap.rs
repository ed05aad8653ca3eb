//! Heat maps: a grid of cells coloured on a sequential scale from the
//! smallest value to the largest, with a small colour-scale legend.

use super::axis;
use super::format::format_value;
use super::layout::{
    Area, RIGHT_PAD, TOP_PAD, left_margin, longest, plan_bottom_labels, plan_left_labels,
};
use super::scale::clamp_magnitude;
use super::svg::{Anchor, Doc, Mark, Shape};
use super::{Cell, Unit};

/// The sequential scale's stops, low to high (yellow, teal, dark blue:
/// readable by colour-blind people, on light and dark backgrounds).
const STOPS: [(u8, u8, u8); 3] = [(0xff, 0xf3, 0xb2), (0x41, 0xb6, 0xc4), (0x25, 0x34, 0x94)];

/// Width kept on the right for the colour scale.
const SCALE_WIDTH: f64 = 64.0;
/// How many steps the colour scale shows.
const SCALE_STEPS: usize = 8;

/// Draws a heat map; `false` when no cell has a value inside the grid.
pub(crate) fn render(
    doc: &mut Doc,
    x: &[String],
    y: &[String],
    cells: &[Cell],
    unit: Unit,
) -> bool {
    let valid: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.x < x.len() && c.y < y.len() && c.value.is_finite())
        .collect();
    let Some((min, max)) = valid.iter().fold(None, |acc: Option<(f64, f64)>, c| {
        let v = clamp_magnitude(c.value);
        Some(acc.map_or((v, v), |(a, b)| (a.min(v), b.max(v))))
    }) else {
        return false;
    };
    let (width, height) = (doc.width(), doc.height());
    let left = left_margin(longest(y.iter().map(String::as_str)), width);
    let right = width - RIGHT_PAD - SCALE_WIDTH;
    let column = (right - left).max(1.0) / x.len() as f64;
    let x_plan = plan_bottom_labels(longest(x.iter().map(String::as_str)), column);
    let area = Area::new(left, TOP_PAD, right, height - x_plan.extent);
    let (column, row) = (
        area.width() / x.len() as f64,
        area.height() / y.len() as f64,
    );
    axis::bottom_bands(doc, &area, x, &x_plan);
    axis::left_bands(doc, &area, y, &plan_left_labels(row, left));
    for cell in valid {
        let (Some(x_label), Some(y_label)) = (x.get(cell.x), y.get(cell.y)) else {
            continue;
        };
        let shape = Shape::Rect {
            x: area.left + cell.x as f64 * column,
            y: area.top + cell.y as f64 * row,
            w: column,
            h: row,
        };
        let value = format_value(cell.value, unit);
        let fill = colour(share(clamp_magnitude(cell.value), min, max));
        let mark = Mark::new(shape, "lh-cell".to_owned(), y_label, x_label, cell.value)
            .style(format!("fill:{fill}"))
            .tooltip(format!("{y_label} · {x_label}: {value}"))
            .link(cell.link.as_deref());
        doc.mark(&mark);
    }
    colour_scale(doc, &area, (min, max), unit);
    true
}

/// Where `v` sits from `min` (0) to `max` (1); the middle when all are
/// equal.
fn share(v: f64, min: f64, max: f64) -> f64 {
    let span = max - min;
    if span > 0.0 && span.is_finite() {
        ((v - min) / span).clamp(0.0, 1.0)
    } else {
        0.5
    }
}

/// The scale's colour at `t` (0 to 1), as `#rrggbb`.
pub(crate) fn colour(t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let [low, middle, high] = STOPS;
    let (a, b, f) = if t < 0.5 {
        (low, middle, t * 2.0)
    } else {
        (middle, high, t * 2.0 - 1.0)
    };
    let mix = |p: u8, q: u8| (f64::from(p) + (f64::from(q) - f64::from(p)) * f).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// The colour scale right of the grid: steps from the largest value (top)
/// to the smallest, labelled with both.
fn colour_scale(doc: &mut Doc, area: &Area, (min, max): (f64, f64), unit: Unit) {
    let x = area.right + 14.0;
    let height = (area.height() * 0.6).clamp(40.0, 160.0);
    let step = height / SCALE_STEPS as f64;
    doc.open_group("lh-scale");
    for i in 0..SCALE_STEPS {
        let t = 1.0 - i as f64 / (SCALE_STEPS - 1) as f64;
        let style = format!("fill:{}", colour(t));
        let y = area.top + 12.0 + i as f64 * step;
        doc.rect((x, y, 12.0, step + 0.5), "lh-scale-step", Some(&style));
    }
    let label_x = x + 16.0;
    doc.text(
        (label_x, area.top + 8.0 + 12.0),
        Anchor::Start,
        "lh-tick",
        &format_value(max, unit),
    );
    doc.text(
        (label_x, area.top + 12.0 + height),
        Anchor::Start,
        "lh-tick",
        &format_value(min, unit),
    );
    doc.close_group();
}
