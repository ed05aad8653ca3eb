//! Bar charts: one band per category, the series' bars side by side or
//! stacked (positive values up from zero, negative ones down), vertical
//! or horizontal.

use super::axis;
use super::categories::{Categories, tooltip};
use super::format::{format_tick, format_value};
use super::layout::{
    Area, Entry, Legend, RIGHT_PAD, TOP_PAD, draw_legend, left_margin, legend, longest,
    plan_left_labels,
};
use super::plot::{Plot, ValueAxis, XAxis, series_entries};
use super::scale::{Linear, clamp_magnitude, nice_ticks};
use super::svg::{Doc, FONT, Mark, Shape, colour_class};
use super::{Series, Unit};

/// Share of a band the bars of a category take (the rest is the gap
/// between categories).
const GROUP_SHARE: f64 = 0.8;

/// One bar: a series' value in a category, spanning `lo..hi` on the value
/// axis.
#[derive(Debug, Clone, PartialEq)]
struct Segment<'a> {
    series: usize,
    category: usize,
    lo: f64,
    hi: f64,
    y: f64,
    link: Option<&'a str>,
}

/// Where bars go across their band: offset from the band's start and
/// width, per series.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slots {
    band: f64,
    stacked: bool,
    series: usize,
}

impl Slots {
    fn place(&self, series: usize) -> (f64, f64) {
        let group = self.band * GROUP_SHARE;
        let start = (self.band - group) / 2.0;
        if self.stacked {
            (start, group)
        } else {
            let width = group / self.series.max(1) as f64;
            (start + series as f64 * width, width)
        }
    }
}

/// Draws a bar chart; `false` when there is nothing to draw.
pub(crate) fn render(
    doc: &mut Doc,
    series: &[Series],
    stacked: bool,
    horizontal: bool,
    unit: Unit,
) -> bool {
    let categories = Categories::collect(series);
    if categories.is_empty() {
        return false;
    }
    let segments = segments(series, &categories, stacked);
    let (min, max) = segments
        .iter()
        .fold((0.0f64, 0.0f64), |(a, b), s| (a.min(s.lo), b.max(s.hi)));
    let ticks = nice_ticks(min, max, 5);
    let values = ValueAxis::new(&ticks, |v, step| format_tick(v, unit, step));
    let entries = series_entries(series.iter().map(|s| s.name.as_str()));
    let draw = Drawer {
        series,
        categories: &categories,
        unit,
    };
    if horizontal {
        let frame = horizontal_frame(doc, &categories, &values, &entries);
        let (area, band) = (frame.area, frame.band);
        let slots = Slots {
            band,
            stacked,
            series: series.len(),
        };
        for s in &segments {
            let (offset, width) = slots.place(s.series);
            let top = area.top + s.category as f64 * band + offset;
            let (x0, x1) = (frame.scale.map(s.lo), frame.scale.map(s.hi));
            draw.bar(
                doc,
                s,
                Shape::Rect {
                    x: x0,
                    y: top,
                    w: x1 - x0,
                    h: width,
                },
            );
        }
        axis::frame(doc, &area);
        draw_legend(doc, &frame.legend);
    } else {
        let plot = Plot::draw(
            doc,
            &XAxis::Bands(categories.labels.clone()),
            &values,
            &entries,
        );
        let slots = Slots {
            band: plot.band(),
            stacked,
            series: series.len(),
        };
        for s in &segments {
            let (offset, width) = slots.place(s.series);
            let left = plot.area.left + s.category as f64 * slots.band + offset;
            let (y0, y1) = (plot.y.map(s.lo), plot.y.map(s.hi));
            draw.bar(
                doc,
                s,
                Shape::Rect {
                    x: left,
                    y: y1,
                    w: width,
                    h: y0 - y1,
                },
            );
        }
        plot.finish(doc);
    }
    true
}

/// Writes bar marks.
struct Drawer<'a> {
    series: &'a [Series],
    categories: &'a Categories<'a>,
    unit: Unit,
}

impl Drawer<'_> {
    fn bar(&self, doc: &mut Doc, s: &Segment<'_>, shape: Shape) {
        let name = self.series.get(s.series).map_or("", |x| x.name.as_str());
        let data_x = self
            .categories
            .data_x
            .get(s.category)
            .map_or("", String::as_str);
        let label = self
            .categories
            .labels
            .get(s.category)
            .map_or("", String::as_str);
        let tip = tooltip(name, label, &format_value(s.y, self.unit));
        let class = format!("{} lh-bar", colour_class(s.series));
        let mark = Mark::new(shape, class, name, data_x, s.y)
            .tooltip(tip)
            .link(s.link);
        doc.mark(&mark);
    }
}

/// The bars of all series: from zero to the value, or stacked per
/// category (positive values above the positive ones before them,
/// negative ones below the negative ones).
fn segments<'a>(
    series: &'a [Series],
    categories: &Categories<'_>,
    stacked: bool,
) -> Vec<Segment<'a>> {
    let mut above = vec![0.0f64; categories.len()];
    let mut below = vec![0.0f64; categories.len()];
    let mut out = Vec::new();
    for (i, s) in series.iter().enumerate() {
        for p in s.points.iter().filter(|p| p.y.is_finite()) {
            let Some(category) = categories.position(&p.x) else {
                continue;
            };
            let y = clamp_magnitude(p.y);
            let (lo, hi) = match (stacked, y >= 0.0) {
                (false, true) => (0.0, y),
                (false, false) => (y, 0.0),
                (true, positive) => {
                    let stack = if positive { &mut above } else { &mut below };
                    let Some(base) = stack.get_mut(category) else {
                        continue;
                    };
                    let start = *base;
                    *base = clamp_magnitude(start + y);
                    (start.min(*base), start.max(*base))
                }
            };
            out.push(Segment {
                series: i,
                category,
                lo,
                hi,
                y: p.y,
                link: p.link.as_deref(),
            });
        }
    }
    out
}

/// The layout of horizontal bars.
#[derive(Debug, Clone, PartialEq)]
struct HorizontalFrame {
    area: Area,
    /// The value scale (across).
    scale: Linear,
    /// A category's band height.
    band: f64,
    legend: Legend,
}

/// Lays out and draws the frame of horizontal bars: categories down the
/// left, values along the bottom.
fn horizontal_frame(
    doc: &mut Doc,
    categories: &Categories<'_>,
    values: &ValueAxis,
    entries: &[Entry],
) -> HorizontalFrame {
    let (width, height) = (doc.width(), doc.height());
    let legend = legend(entries, width, height);
    let left = left_margin(longest(categories.labels.iter().map(String::as_str)), width);
    let area = Area::new(
        left,
        TOP_PAD,
        width - RIGHT_PAD - legend.right,
        height - FONT - 12.0 - legend.bottom,
    );
    let band = area.height() / categories.len().max(1) as f64;
    let scale = Linear::new(values.domain, (area.left, area.right));
    axis::bottom_values(doc, &area, &scale, &values.ticks);
    let plan = plan_left_labels(band, left);
    axis::left_bands(doc, &area, &categories.labels, &plan);
    HorizontalFrame {
        area,
        scale,
        band,
        legend,
    }
}
