//! Where things go: plot areas, label fitting (truncation, thinning,
//! rotation) and legends.

use std::borrow::Cow;

use super::svg::{Anchor, CHAR_W, Doc, FONT, colour_class};

/// Space kept free above the plot.
pub(crate) const TOP_PAD: f64 = 12.0;
/// Space kept free right of the plot.
pub(crate) const RIGHT_PAD: f64 = 16.0;
/// Labels never get longer than this many characters.
const MAX_LABEL_CHARS: usize = 40;
/// Rotated category labels are cut to this many characters.
const MAX_ROTATED_CHARS: usize = 18;
/// Distance between two rows of labels (legend entries, rotated or
/// stacked category labels).
const ROW: f64 = 18.0;

/// A rectangle of the canvas (the plot's area).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Area {
    /// Left edge.
    pub(crate) left: f64,
    /// Top edge.
    pub(crate) top: f64,
    /// Right edge.
    pub(crate) right: f64,
    /// Bottom edge.
    pub(crate) bottom: f64,
}

impl Area {
    /// An area of at least 20 × 20 px from its left and top edges.
    pub(crate) fn new(left: f64, top: f64, right: f64, bottom: f64) -> Self {
        Self {
            left,
            top,
            right: right.max(left + 20.0),
            bottom: bottom.max(top + 20.0),
        }
    }

    /// Its width.
    pub(crate) fn width(&self) -> f64 {
        self.right - self.left
    }

    /// Its height.
    pub(crate) fn height(&self) -> f64 {
        self.bottom - self.top
    }
}

/// How many characters a text has.
pub(crate) fn char_count(s: &str) -> usize {
    s.chars().count()
}

/// The longest of labels, in characters (capped: longer ones are cut).
pub(crate) fn longest<'a>(labels: impl IntoIterator<Item = &'a str>) -> usize {
    labels
        .into_iter()
        .map(|l| l.chars().take(MAX_LABEL_CHARS + 1).count())
        .max()
        .unwrap_or(0)
        .min(MAX_LABEL_CHARS)
}

/// The estimated width of `chars` characters.
pub(crate) fn text_width(chars: usize) -> f64 {
    chars as f64 * CHAR_W
}

/// How many characters fit in `width` px.
pub(crate) fn chars_in(width: f64) -> usize {
    let n = (width / CHAR_W).floor();
    if n.is_finite() && n > 0.0 {
        // Bounded by the canvas's width.
        (n as usize).min(MAX_LABEL_CHARS)
    } else {
        0
    }
}

/// The text cut to `max` characters, the last of them an ellipsis, when
/// it is longer.
pub(crate) fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if s.char_indices().nth(max).is_none() {
        return Cow::Borrowed(s);
    }
    let Some(keep) = max.checked_sub(1) else {
        return Cow::Borrowed("");
    };
    let cut = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    Cow::Owned(format!("{}…", &s[..cut]))
}

/// Showing one label in `every`, so that labels `spacing` px apart that
/// need `needed` px each do not overlap.
pub(crate) fn every_nth(spacing: f64, needed: f64) -> usize {
    let every = (needed / spacing).ceil();
    if every.is_finite() && every >= 1.0 {
        // Saturates for absurd ratios, which is what is wanted.
        every as usize
    } else {
        1
    }
}

/// How the labels of a category axis are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BandLabels {
    /// One label in `every` is drawn (thinning).
    pub(crate) every: usize,
    /// Turned 45°.
    pub(crate) rotate: bool,
    /// Longer labels are cut to this many characters.
    pub(crate) max_chars: usize,
    /// The space they take across the axis.
    pub(crate) extent: f64,
}

/// Labels of a category axis along the bottom, `band` px per category:
/// straight when they fit (cut when bands are wide enough for a few
/// characters), else turned 45° and thinned out.
pub(crate) fn plan_bottom_labels(longest: usize, band: f64) -> BandLabels {
    let straight = FONT + 10.0;
    if text_width(longest) + 6.0 <= band {
        return BandLabels {
            every: 1,
            rotate: false,
            max_chars: longest,
            extent: straight,
        };
    }
    if band >= text_width(8) + 6.0 {
        return BandLabels {
            every: 1,
            rotate: false,
            max_chars: chars_in(band - 6.0),
            extent: straight,
        };
    }
    let max_chars = longest.min(MAX_ROTATED_CHARS);
    BandLabels {
        every: every_nth(band, FONT + 4.0),
        rotate: true,
        max_chars,
        extent: text_width(max_chars) * std::f64::consts::FRAC_1_SQRT_2 + FONT + 10.0,
    }
}

/// Labels of a category axis down the left side, `band` px per category,
/// in `width` px.
pub(crate) fn plan_left_labels(band: f64, width: f64) -> BandLabels {
    BandLabels {
        every: every_nth(band, FONT + 3.0),
        rotate: false,
        max_chars: chars_in(width - 10.0),
        extent: width,
    }
}

/// The width of a left margin for labels of `longest` characters: at
/// most 30% of the canvas.
pub(crate) fn left_margin(longest: usize, canvas_width: f64) -> f64 {
    (text_width(longest) + 14.0).clamp(36.0, canvas_width * 0.3)
}

/// One legend entry: a name and its series' colour.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The series' name.
    pub(crate) name: String,
    /// The series' index (its colour).
    pub(crate) colour: usize,
}

/// A legend laid out: its entries' places and the space it takes.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Legend {
    items: Vec<(f64, f64, String, usize)>,
    more: Option<(f64, f64, String)>,
    /// Width kept free at the right of the canvas.
    pub(crate) right: f64,
    /// Height kept free at the bottom of the canvas.
    pub(crate) bottom: f64,
}

/// Canvases at least this wide put their legend on the right.
const RIGHT_LEGEND_MIN_WIDTH: f64 = 480.0;

/// Lays out a legend beside the plot (right side on wide canvases, else
/// below it), names cut to fit, entries past the space summed up as
/// `+N more`. No entries: no legend, no space.
pub(crate) fn legend(entries: &[Entry], width: f64, height: f64) -> Legend {
    if entries.is_empty() {
        Legend::default()
    } else if width >= RIGHT_LEGEND_MIN_WIDTH {
        legend_right(entries, width, height)
    } else {
        legend_bottom(entries, width, height)
    }
}

fn legend_right(entries: &[Entry], width: f64, height: f64) -> Legend {
    let longest = longest(entries.iter().map(|e| e.name.as_str()));
    let legend_width = (text_width(longest) + 30.0).clamp(70.0, width * 0.3);
    let max_chars = chars_in(legend_width - 30.0).max(3);
    let x = width - legend_width + 6.0;
    let rows = ((height - TOP_PAD - 8.0) / ROW).floor();
    // Bounded by the canvas's height.
    let capacity = if rows >= 1.0 { rows as usize } else { 1 };
    let shown = if entries.len() <= capacity {
        entries.len()
    } else {
        capacity - 1
    };
    let row_y = |i: usize| TOP_PAD + 10.0 + i as f64 * ROW;
    let items = entries
        .iter()
        .take(shown)
        .enumerate()
        .map(|(i, e)| {
            (
                x,
                row_y(i),
                truncate(&e.name, max_chars).into_owned(),
                e.colour,
            )
        })
        .collect();
    let more = (shown < entries.len())
        .then(|| (x, row_y(shown), format!("+{} more", entries.len() - shown)));
    Legend {
        items,
        more,
        right: legend_width,
        bottom: 0.0,
    }
}

fn legend_bottom(entries: &[Entry], width: f64, height: f64) -> Legend {
    let max_rows = if height >= 360.0 { 3 } else { 2 };
    let max_chars = chars_in(width * 0.4).max(3);
    let more_width = text_width(9);
    let mut items = Vec::new();
    let mut more = None;
    let (mut x, mut row) = (8.0, 0usize);
    for (i, e) in entries.iter().enumerate() {
        let name = truncate(&e.name, max_chars);
        let item_width = 14.0 + text_width(char_count(&name)) + 14.0;
        if x > 8.0 && x + item_width > width - 8.0 {
            x = 8.0;
            row += 1;
        }
        let last_row = row + 1 >= max_rows;
        let reserve = if last_row && i + 1 < entries.len() {
            more_width
        } else {
            0.0
        };
        if row >= max_rows || (last_row && x + item_width > width - 8.0 - reserve) {
            more = Some((
                x,
                row.min(max_rows - 1),
                format!("+{} more", entries.len() - i),
            ));
            break;
        }
        items.push((x, row, name.into_owned(), e.colour));
        x += item_width;
    }
    let rows = items
        .iter()
        .map(|(_, r, _, _)| r + 1)
        .chain(more.iter().map(|(_, r, _)| r + 1))
        .max()
        .unwrap_or(1);
    let top = height - rows as f64 * ROW - 4.0;
    let row_y = |r: usize| top + 10.0 + r as f64 * ROW;
    Legend {
        items: items
            .into_iter()
            .map(|(x, r, name, colour)| (x, row_y(r), name, colour))
            .collect(),
        more: more.map(|(x, r, text)| (x, row_y(r), text)),
        right: 0.0,
        bottom: rows as f64 * ROW + 8.0,
    }
}

/// Draws a legend laid out by [`legend`].
pub(crate) fn draw_legend(doc: &mut Doc, legend: &Legend) {
    if legend.items.is_empty() && legend.more.is_none() {
        return;
    }
    doc.open_group("lh-legend");
    for (x, y, name, colour) in &legend.items {
        let swatch_class = format!("lh-swatch {}", colour_class(*colour));
        doc.rect((*x, y - 9.0, 10.0, 10.0), &swatch_class, None);
        doc.text((x + 14.0, *y), Anchor::Start, "lh-legend-text", name);
    }
    if let Some((x, y, text)) = &legend.more {
        doc.text((*x, *y), Anchor::Start, "lh-note", text);
    }
    doc.close_group();
}
