//! KPIs: one big number, and its change against the previous period.

use super::Unit;
use super::format::format_value;
use super::layout::char_count;
use super::svg::{Doc, Mark, Shape, colour_class};

/// Draws a KPI; `false` when it has no (finite) value.
pub(crate) fn render(
    doc: &mut Doc,
    value: Option<f64>,
    previous: Option<f64>,
    higher_is_better: bool,
    unit: Unit,
) -> bool {
    let Some(value) = value.filter(|v| v.is_finite()) else {
        return false;
    };
    let (width, height) = (doc.width(), doc.height());
    let text = format_value(value, unit);
    let size = value_font_size(&text, width, height);
    let previous = previous.filter(|p| p.is_finite() && *p != 0.0);
    let cx = width / 2.0;
    let baseline = if previous.is_some() {
        height / 2.0
    } else {
        height / 2.0 + size * 0.35
    };
    let mut tip = text.clone();
    let change = previous.map(|p| Change::new(value, p, higher_is_better));
    if let (Some(p), Some(change)) = (previous, &change) {
        tip = format!("{tip} ({} vs {})", change.text, format_value(p, unit));
    }
    let shape = Shape::Text {
        x: cx,
        y: baseline,
        size,
        text,
    };
    let class = format!("{} lh-kpi", colour_class(0));
    doc.mark(&Mark::new(shape, class, "", "", value).tooltip(tip));
    if let (Some(p), Some(change)) = (previous, change) {
        let small = (size * 0.3).clamp(12.0, 20.0);
        let line = baseline + small * 1.8;
        doc.text_sized((cx, line), small, change.class, &change.text);
        let note = format!("vs previous: {}", format_value(p, unit));
        doc.text_sized((cx, line + small * 1.4), small * 0.85, "lh-note", &note);
    }
    true
}

/// As large as fits: a third of the height, and the text within 90% of
/// the width (a digit is about 0.6 em wide).
fn value_font_size(text: &str, width: f64, height: f64) -> f64 {
    let chars = char_count(text).max(1) as f64;
    (height * 0.32)
        .min(width * 0.9 / (chars * 0.6))
        .clamp(12.0, 96.0)
}

/// A KPI's change against the previous period.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    /// `▲ 12.5%`, `▼ 3.0%` or `= 0.0%`.
    text: String,
    /// `lh-good`, `lh-bad` or `lh-flat`.
    class: &'static str,
}

impl Change {
    fn new(value: f64, previous: f64, higher_is_better: bool) -> Self {
        // Finite: `previous` is finite and not zero, infinities clamped.
        let relative = ((value - previous) / previous.abs()).clamp(-1e12, 1e12);
        let percent = relative.abs() * 100.0;
        let amount = if percent < 1e4 {
            format!("{percent:.1}%")
        } else {
            format!("{}%", format_value(percent, Unit::Number))
        };
        let (arrow, class) = if relative > 0.0 {
            (
                "▲",
                if higher_is_better {
                    "lh-good"
                } else {
                    "lh-bad"
                },
            )
        } else if relative < 0.0 {
            (
                "▼",
                if higher_is_better {
                    "lh-bad"
                } else {
                    "lh-good"
                },
            )
        } else {
            ("=", "lh-flat")
        };
        Self {
            text: format!("{arrow} {amount}"),
            class,
        }
    }
}
