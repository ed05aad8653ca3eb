//! Histograms: binning values ([`histogram_bins`]) and drawing the bins
//! as adjacent bars over a numeric axis.

use super::format::{format_tick, format_value, plain_number};
use super::plot::{Plot, ValueAxis, XAxis};
use super::scale::{Ticks, clamp_magnitude, next_nice_step, nice_step, nice_ticks, ticks_within};
use super::svg::{Doc, Mark, Shape, colour_class};
use super::{Bin, Unit};

/// `histogram_bins` makes at most this many bins, whatever is asked.
pub const MAX_BINS: usize = 10_000;

/// Splits values into equal bins of a nice width (1, 2 or 5 × 10^k)
/// covering the finite values' range.
///
/// There are at most `max_bins` bins (at least one, and at most
/// [`MAX_BINS`]); each counts the values in `[lo, hi)`, the last one also
/// its `hi`, which is then the largest value when that falls on a bin
/// edge. Values that are not finite are ignored; without any finite value
/// there are no bins. When all values are equal there is one bin of a
/// nice width starting at (or just below) the value. Bins have no links.
#[must_use]
pub fn histogram_bins(values: &[f64], max_bins: usize) -> Vec<Bin> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let Some((min, max)) = finite.clone().fold(None, |acc: Option<(f64, f64)>, v| {
        Some(acc.map_or((v, v), |(a, b)| (a.min(v), b.max(v))))
    }) else {
        return Vec::new();
    };
    let max_bins = max_bins.clamp(1, MAX_BINS);
    let edges = bin_edges(min, max, max_bins);
    let mut counts = vec![0u64; edges.count];
    for v in finite {
        if let Some(c) = counts.get_mut(edges.index(v)) {
            *c += 1;
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| Bin {
            lo: edges.edge(i),
            hi: edges.edge(i + 1),
            count,
            link: None,
        })
        .collect()
}

/// Equal bins from `start`, `width` wide.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Edges {
    start: f64,
    width: f64,
    count: usize,
    /// The last bin's upper edge when it is not `start + count × width`
    /// (which would overflow).
    end: Option<f64>,
}

impl Edges {
    fn edge(&self, i: usize) -> f64 {
        match (i, self.end) {
            (0, _) => self.start,
            (i, Some(end)) if i >= self.count => end,
            _ => self.start + i as f64 * self.width,
        }
    }

    /// The bin of a value within the bins' range (the last bin holds its
    /// upper edge).
    fn index(&self, v: f64) -> usize {
        let last = self.count.saturating_sub(1);
        let guess = ((v - self.start) / self.width).floor();
        // Saturating conversion; NaN (a zero width) gives bin 0.
        let mut i = if guess > 0.0 {
            (guess as usize).min(last)
        } else {
            0
        };
        // Floating point can put a value next to an edge in the wrong bin.
        if i > 0 && v < self.edge(i) {
            i -= 1;
        } else if i < last && v >= self.edge(i + 1) {
            i += 1;
        }
        i
    }
}

fn bin_edges(min: f64, max: f64, max_bins: usize) -> Edges {
    if min == max {
        let width = nice_step(min.abs().max(1.0) / 10.0).unwrap_or(1.0);
        let start = (min / width).floor() * width;
        let (start, width) = if start.is_finite() && start <= min && min < start + width {
            (start, width)
        } else {
            (min, 0.0)
        };
        return Edges {
            start,
            width,
            count: 1,
            end: None,
        };
    }
    let span = max - min;
    // Equal bins that are not nice: for ranges too wide (or too narrow)
    // for nice steps.
    let plain = Edges {
        start: min,
        width: max / max_bins as f64 - min / max_bins as f64,
        count: max_bins,
        end: Some(max),
    };
    if !span.is_finite() {
        return plain;
    }
    let mut width = nice_step(span / max_bins as f64);
    while let Some(w) = width {
        let start = (min / w).floor() * w;
        let count = bins_needed((max - start) / w);
        if count.is_finite() && count <= max_bins as f64 {
            return Edges {
                start,
                width: w,
                // A whole number from 1 to `max_bins`.
                count: count as usize,
                end: None,
            };
        }
        width = next_nice_step(w);
    }
    plain
}

/// Bins needed for the maximum `widths` bin widths past the first bin's
/// start: the last bin holds its upper edge, so a maximum on an edge
/// needs no bin of its own.
fn bins_needed(widths: f64) -> f64 {
    let whole = widths.round();
    if (widths - whole).abs() < 1e-9 && whole >= 1.0 {
        whole
    } else {
        widths.floor() + 1.0
    }
}

/// Draws a histogram; `false` when no bin has finite bounds.
pub(crate) fn render(doc: &mut Doc, bins: &[Bin], unit: Unit) -> bool {
    let valid: Vec<(f64, f64, &Bin)> = bins
        .iter()
        .filter(|b| b.lo.is_finite() && b.hi.is_finite())
        .map(|b| {
            let (lo, hi) = (clamp_magnitude(b.lo), clamp_magnitude(b.hi));
            (lo.min(hi), lo.max(hi), b)
        })
        .collect();
    let Some((x_min, x_max)) = valid
        .iter()
        .fold(None, |acc: Option<(f64, f64)>, (lo, hi, _)| {
            Some(acc.map_or((*lo, *hi), |(a, b)| (a.min(*lo), b.max(*hi))))
        })
    else {
        return false;
    };
    let x_ticks = ticks_within(x_min, x_max, 6);
    let x_axis = XAxis::Linear {
        domain: (x_ticks.lo, x_ticks.hi),
        ticks: x_ticks
            .values
            .iter()
            .map(|&v| (v, format_tick(v, unit, x_ticks.step)))
            .collect(),
    };
    let most = valid.iter().map(|(_, _, b)| b.count).max().unwrap_or(0);
    let y_ticks = count_ticks(most as f64);
    let y_axis = ValueAxis::new(&y_ticks, |v, step| format_tick(v, Unit::Number, step));
    let plot = Plot::draw(doc, &x_axis, &y_axis, &[]);
    for (lo, hi, bin) in valid {
        let count = bin.count as f64;
        let (x0, x1) = bar_span(plot.x(lo), plot.x(hi));
        let (y0, y1) = (plot.y.map(0.0), plot.y.map(count));
        let shape = Shape::Rect {
            x: x0,
            y: y1,
            w: x1 - x0,
            h: y0 - y1,
        };
        let tip = format!(
            "{}–{}: {}",
            format_value(bin.lo, unit),
            format_value(bin.hi, unit),
            bin.count
        );
        let lo_text = plain_number(bin.lo);
        let mark = Mark::new(
            shape,
            format!("{} lh-bar", colour_class(0)),
            "",
            &lo_text,
            count,
        )
        .data("x-end", plain_number(bin.hi))
        .tooltip(tip)
        .link(bin.link.as_deref());
        doc.mark(&mark);
    }
    plot.finish(doc);
    true
}

/// A bin's bar across: a hairline gap between neighbours, at least 1 px.
fn bar_span(x0: f64, x1: f64) -> (f64, f64) {
    let (a, b) = (x0.min(x1), x0.max(x1));
    if b - a > 3.0 {
        (a + 0.5, b - 0.5)
    } else if b - a < 1.0 {
        let mid = f64::midpoint(a, b);
        (mid - 0.5, mid + 0.5)
    } else {
        (a, b)
    }
}

/// Ticks for counts: from 0, whole steps.
fn count_ticks(most: f64) -> Ticks {
    let ticks = nice_ticks(0.0, most.max(1.0), 5);
    if ticks.step >= 1.0 {
        return ticks;
    }
    let hi = most.max(1.0).ceil();
    Ticks {
        lo: 0.0,
        hi,
        step: 1.0,
        values: (0..=5).map(f64::from).take_while(|v| *v <= hi).collect(),
    }
}
