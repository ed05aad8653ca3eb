//! The frame shared by charts with a value axis on the left and an x axis
//! along the bottom (lines, vertical bars, scatter plots, histograms):
//! margins sized for the labels, grid, axes and legend.

use super::axis::{self, Tick};
use super::layout::{
    Area, Entry, Legend, RIGHT_PAD, TOP_PAD, draw_legend, left_margin, legend, longest,
    plan_bottom_labels,
};
use super::scale::{Linear, Ticks};
use super::svg::{Doc, FONT};

/// The x axis of a plot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum XAxis {
    /// One band per category, labelled.
    Bands(Vec<String>),
    /// A linear axis (numbers, or instants in ms) over a domain.
    Linear {
        /// The values at the plot's left and right edges.
        domain: (f64, f64),
        /// Its ticks.
        ticks: Vec<Tick>,
    },
}

/// The value axis of a plot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValueAxis {
    /// The values at the plot's ends.
    pub(crate) domain: (f64, f64),
    /// Its ticks.
    pub(crate) ticks: Vec<Tick>,
}

impl ValueAxis {
    /// An axis over nice ticks, each labelled by `label(value, step)`.
    pub(crate) fn new(ticks: &Ticks, label: impl Fn(f64, f64) -> String) -> Self {
        Self {
            domain: (ticks.lo, ticks.hi),
            ticks: ticks
                .values
                .iter()
                .map(|&v| (v, label(v, ticks.step)))
                .collect(),
        }
    }
}

/// How the x axis maps onto the plot.
#[derive(Debug, Clone, Copy, PartialEq)]
enum XPlaced {
    Bands { band: f64 },
    Linear(Linear),
}

/// A laid-out plot whose grid and axes are drawn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plot {
    /// Where the data is drawn.
    pub(crate) area: Area,
    /// The value (y) scale.
    pub(crate) y: Linear,
    x: XPlaced,
    legend: Legend,
}

impl Plot {
    /// Lays the plot out (margins for the labels, space for the legend)
    /// and draws its grid and tick labels.
    pub(crate) fn draw(doc: &mut Doc, x: &XAxis, y: &ValueAxis, entries: &[Entry]) -> Self {
        let (width, height) = (doc.width(), doc.height());
        let left = left_margin(longest(y.ticks.iter().map(|(_, l)| l.as_str())), width);
        let legend = legend(entries, width, height);
        let right = width - RIGHT_PAD - legend.right;
        let (extent, plan) = match x {
            XAxis::Bands(labels) => {
                let band = (right - left).max(1.0) / labels.len().max(1) as f64;
                let plan = plan_bottom_labels(longest(labels.iter().map(String::as_str)), band);
                (plan.extent, Some(plan))
            }
            XAxis::Linear { .. } => (FONT + 12.0, None),
        };
        let area = Area::new(left, TOP_PAD, right, height - extent - legend.bottom);
        let y_scale = Linear::new(y.domain, (area.bottom, area.top));
        axis::left_values(doc, &area, &y_scale, &y.ticks);
        let placed = match (x, plan) {
            (XAxis::Bands(labels), Some(plan)) => {
                axis::bottom_bands(doc, &area, labels, &plan);
                XPlaced::Bands {
                    band: area.width() / labels.len().max(1) as f64,
                }
            }
            (XAxis::Bands(labels), None) => XPlaced::Bands {
                band: area.width() / labels.len().max(1) as f64,
            },
            (XAxis::Linear { domain, ticks }, _) => {
                let scale = Linear::new(*domain, (area.left, area.right));
                axis::bottom_values(doc, &area, &scale, ticks);
                XPlaced::Linear(scale)
            }
        };
        Self {
            area,
            y: y_scale,
            x: placed,
            legend,
        }
    }

    /// Where an x position is drawn: a band's centre for categories
    /// (`pos` is the category's index), else the linear scale's.
    pub(crate) fn x(&self, pos: f64) -> f64 {
        match self.x {
            XPlaced::Bands { band } => self.area.left + (pos + 0.5) * band,
            XPlaced::Linear(scale) => scale.map(pos),
        }
    }

    /// The width of a category's band (0 on a linear axis).
    pub(crate) fn band(&self) -> f64 {
        match self.x {
            XPlaced::Bands { band } => band,
            XPlaced::Linear(_) => 0.0,
        }
    }

    /// Draws the axis lines over the data, and the legend.
    pub(crate) fn finish(&self, doc: &mut Doc) {
        axis::frame(doc, &self.area);
        draw_legend(doc, &self.legend);
    }
}

/// Legend entries for series when there is more than one (unnamed ones
/// called `Series N`).
pub(crate) fn series_entries<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Vec<Entry> {
    if names.len() < 2 {
        return Vec::new();
    }
    names
        .enumerate()
        .map(|(i, name)| Entry {
            name: if name.is_empty() {
                format!("Series {}", i + 1)
            } else {
                name.to_owned()
            },
            colour: i,
        })
        .collect()
}
