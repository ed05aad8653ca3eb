//! Pies and donuts: slices clockwise from 12 o'clock in the order given,
//! with a legend.

use std::f64::consts::{PI, TAU};
use std::fmt::Write as _;

use super::format::format_value;
use super::layout::{Area, Entry, RIGHT_PAD, TOP_PAD, draw_legend, legend};
use super::scale::clamp_magnitude;
use super::svg::{Anchor, C, Doc, Mark, Shape, colour_class};
use super::{Slice, Unit};

/// A donut's hole, as a share of its radius.
const DONUT_HOLE: f64 = 0.55;

/// A slice this close to the whole pie is drawn as a full disc (an arc
/// from a point to itself draws nothing).
const WHOLE: f64 = 1.0 - 1e-9;

/// Draws a pie (or donut); `false` when no slice has a positive value.
pub(crate) fn render(doc: &mut Doc, slices: &[Slice], donut: bool, unit: Unit) -> bool {
    let valid: Vec<(usize, &Slice)> = slices
        .iter()
        .enumerate()
        .filter(|(_, s)| s.value.is_finite() && s.value > 0.0)
        .collect();
    // Shares are computed on values scaled by the largest, so that sums
    // of huge values stay finite.
    let largest = valid
        .iter()
        .map(|(_, s)| clamp_magnitude(s.value))
        .fold(0.0, f64::max);
    if largest <= 0.0 {
        return false;
    }
    let total: f64 = valid
        .iter()
        .map(|(_, s)| clamp_magnitude(s.value) / largest)
        .sum();
    let entries: Vec<Entry> = valid
        .iter()
        .map(|(i, s)| Entry {
            name: s.label.clone(),
            colour: *i,
        })
        .collect();
    let legend = legend(&entries, doc.width(), doc.height());
    let area = Area::new(
        RIGHT_PAD,
        TOP_PAD,
        doc.width() - RIGHT_PAD - legend.right,
        doc.height() - TOP_PAD - legend.bottom,
    );
    let disc = Disc {
        cx: area.left + area.width() / 2.0,
        cy: area.top + area.height() / 2.0,
        r: (area.width().min(area.height()) / 2.0 - 4.0).max(8.0),
        hole: if donut { DONUT_HOLE } else { 0.0 },
    };
    let mut start = 0.0;
    for (i, slice) in valid {
        let share = clamp_magnitude(slice.value) / largest / total;
        let end = start + share * TAU;
        let d = if share >= WHOLE {
            disc.whole()
        } else {
            disc.sector(start, end)
        };
        start = end;
        let tip = format!(
            "{}: {} ({})",
            slice.label,
            format_value(slice.value, unit),
            format_value(share, Unit::Percent)
        );
        let class = format!("{} lh-slice", colour_class(i));
        let mark = Mark::new(
            Shape::Path(d),
            class,
            &slice.label,
            &slice.label,
            slice.value,
        )
        .tooltip(tip)
        .link(slice.link.as_deref());
        doc.mark(&mark);
    }
    if donut {
        let total_value: f64 = slices
            .iter()
            .filter(|s| s.value.is_finite() && s.value > 0.0)
            .map(|s| s.value)
            .sum();
        doc.text(
            (disc.cx, disc.cy + 5.0),
            Anchor::Middle,
            "lh-total",
            &format_value(total_value, unit),
        );
    }
    draw_legend(doc, &legend);
    true
}

/// The circle a pie is drawn in.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Disc {
    cx: f64,
    cy: f64,
    r: f64,
    /// The hole's radius as a share of `r` (0: a pie).
    hole: f64,
}

impl Disc {
    /// The point at `angle` (radians clockwise from 12 o'clock) on a
    /// circle of radius `r`.
    fn at(&self, angle: f64, r: f64) -> (C, C) {
        (C(self.cx + r * angle.sin()), C(self.cy - r * angle.cos()))
    }

    /// A slice from `a0` to `a1` (radians clockwise from 12 o'clock).
    fn sector(&self, a0: f64, a1: f64) -> String {
        let large = u8::from(a1 - a0 > PI);
        let (r, inner) = (self.r, self.r * self.hole);
        let (x0, y0) = self.at(a0, r);
        let (x1, y1) = self.at(a1, r);
        let mut d = String::new();
        // Writing into a String cannot fail.
        if self.hole > 0.0 {
            let (ix1, iy1) = self.at(a1, inner);
            let (ix0, iy0) = self.at(a0, inner);
            let (r, inner) = (C(r), C(inner));
            let _ = write!(
                d,
                "M{x0},{y0}A{r},{r} 0 {large} 1 {x1},{y1}L{ix1},{iy1}A{inner},{inner} 0 {large} 0 {ix0},{iy0}Z"
            );
        } else {
            let (cx, cy, r) = (C(self.cx), C(self.cy), C(r));
            let _ = write!(d, "M{cx},{cy}L{x0},{y0}A{r},{r} 0 {large} 1 {x1},{y1}Z");
        }
        d
    }

    /// The whole disc (or ring): two half circles, the hole drawn the
    /// other way round.
    fn whole(&self) -> String {
        let mut d = circle(self.cx, self.cy, self.r, true);
        if self.hole > 0.0 {
            d.push_str(&circle(self.cx, self.cy, self.r * self.hole, false));
        }
        d
    }
}

/// A full circle as a path of two arcs.
fn circle(cx: f64, cy: f64, r: f64, clockwise: bool) -> String {
    let sweep = u8::from(clockwise);
    let (x, top, bottom, r) = (C(cx), C(cy - r), C(cy + r), C(r));
    format!("M{x},{top}A{r},{r} 0 1 {sweep} {x},{bottom}A{r},{r} 0 1 {sweep} {x},{top}Z")
}
