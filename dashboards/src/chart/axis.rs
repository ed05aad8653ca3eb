//! Axes: grid lines, tick labels (thinned out when crowded) and the axis
//! lines of a plot.

use super::layout::{
    Area, BandLabels, char_count, chars_in, every_nth, longest, text_width, truncate,
};
use super::scale::Linear;
use super::svg::{Anchor, C, Doc, FONT};

/// A tick: where (in the axis's domain) and its label.
pub(crate) type Tick = (f64, String);

/// Draws a value axis on the left: a grid line across the plot per tick
/// (the zero line stronger), labels left of the plot.
pub(crate) fn left_values(doc: &mut Doc, area: &Area, scale: &Linear, ticks: &[Tick]) {
    let spacing = tick_spacing(scale, ticks);
    let every = every_nth(spacing, FONT + 2.0);
    doc.open_group("lh-y-axis");
    for (i, (v, label)) in ticks.iter().enumerate() {
        let y = scale.map(*v);
        if !within(y, area.top, area.bottom) {
            continue;
        }
        doc.line((area.left, y), (area.right, y), grid_class(*v));
        if i % every == 0 {
            doc.text((area.left - 6.0, y + 4.0), Anchor::End, "lh-tick", label);
        }
    }
    doc.close_group();
}

/// Draws a value (or time) axis along the bottom: a grid line up the plot
/// per tick, labels below it, one in so many when they would overlap.
pub(crate) fn bottom_values(doc: &mut Doc, area: &Area, scale: &Linear, ticks: &[Tick]) {
    let spacing = tick_spacing(scale, ticks);
    let widest = text_width(longest(ticks.iter().map(|(_, l)| l.as_str())));
    let every = every_nth(spacing, widest + 10.0);
    doc.open_group("lh-x-axis");
    for (i, (v, label)) in ticks.iter().enumerate() {
        let x = scale.map(*v);
        if !within(x, area.left, area.right) {
            continue;
        }
        doc.line((x, area.top), (x, area.bottom), grid_class(*v));
        if i % every == 0 {
            // Labels at the plot's ends are moved in to stay on the canvas.
            let half = text_width(char_count(label)) / 2.0;
            let x = x.min(doc.width() - half - 2.0).max(half + 2.0);
            doc.text(
                (x, area.bottom + FONT + 6.0),
                Anchor::Middle,
                "lh-tick",
                label,
            );
        }
    }
    doc.close_group();
}

/// Draws the labels of a category axis along the bottom, one per band
/// (or per so many bands), straight or turned as planned.
pub(crate) fn bottom_bands(doc: &mut Doc, area: &Area, labels: &[String], plan: &BandLabels) {
    if labels.is_empty() {
        return;
    }
    let band = area.width() / labels.len() as f64;
    doc.open_group("lh-x-axis");
    for (i, label) in labels.iter().enumerate().step_by(plan.every.max(1)) {
        let x = area.left + (i as f64 + 0.5) * band;
        if plan.rotate {
            // A label turned 45° reaches left of its anchor by 0.71 × its
            // length: cut it so that it stays on the canvas.
            let room = chars_in((x + 1.0) * std::f64::consts::SQRT_2);
            let text = truncate(label, plan.max_chars.min(room));
            doc.text_rotated((x + 3.0, area.bottom + 10.0), -45.0, "lh-tick", &text);
        } else {
            let text = truncate(label, plan.max_chars);
            doc.text(
                (x, area.bottom + FONT + 6.0),
                Anchor::Middle,
                "lh-tick",
                &text,
            );
        }
    }
    doc.close_group();
}

/// Draws the labels of a category axis down the left side.
pub(crate) fn left_bands(doc: &mut Doc, area: &Area, labels: &[String], plan: &BandLabels) {
    if labels.is_empty() {
        return;
    }
    let band = area.height() / labels.len() as f64;
    doc.open_group("lh-y-axis");
    for (i, label) in labels.iter().enumerate().step_by(plan.every.max(1)) {
        let y = area.top + (i as f64 + 0.5) * band + 4.0;
        let text = truncate(label, plan.max_chars);
        doc.text((area.left - 6.0, y), Anchor::End, "lh-tick", &text);
    }
    doc.close_group();
}

/// Draws the left and bottom axis lines.
pub(crate) fn frame(doc: &mut Doc, area: &Area) {
    let d = format!(
        "M{},{}V{}H{}",
        C(area.left),
        C(area.top),
        C(area.bottom),
        C(area.right)
    );
    doc.path(&d, "lh-axis");
}

/// Px between two neighbouring ticks.
fn tick_spacing(scale: &Linear, ticks: &[Tick]) -> f64 {
    match ticks {
        [(a, _), (b, _), ..] => (scale.map(*b) - scale.map(*a)).abs(),
        _ => f64::INFINITY,
    }
}

fn grid_class(v: f64) -> &'static str {
    if v == 0.0 { "lh-zero" } else { "lh-gridline" }
}

fn within(v: f64, a: f64, b: f64) -> bool {
    v >= a.min(b) - 0.5 && v <= a.max(b) + 0.5
}
