//! The SVG document: its frame and style sheet, XML escaping, safe links,
//! coordinates, and the markup of marks.

use std::fmt::{self, Write as _};

use super::RenderOptions;
use super::format::plain_number;

/// Font size of labels, in px.
pub(crate) const FONT: f64 = 11.0;
/// Estimated advance of one character of a label, in px (a little wide,
/// so that estimates rather overflow than overlap).
pub(crate) const CHAR_W: f64 = 6.4;

/// Bounds of the coordinate space (`RenderOptions` outside are clamped).
const MIN_SIZE: (u32, u32) = (160, 100);
const MAX_SIZE: u32 = 16_000;

/// The accessible name of a chart without a title.
const UNTITLED: &str = "Chart";

/// Series colours on light backgrounds: a colour-blind-safe set (after
/// Okabe & Ito and Paul Tol), in an order that keeps neighbours distinct.
pub(crate) const LIGHT_PALETTE: [&str; 10] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#882255", "#44aa99",
    "#999933", "#7f7f7f",
];

/// The same hues lightened for dark backgrounds.
pub(crate) const DARK_PALETTE: [&str; 10] = [
    "#4ea8e6", "#f5b841", "#2ec493", "#e39ac4", "#8fd0f5", "#f2804a", "#d06a9c", "#6fd0bf",
    "#c7c75a", "#b0b0b0",
];

/// Styles of the light (default) theme, every selector inside `.lh-chart`
/// so that an inline chart styles nothing else of its page. Every colour
/// is a CSS custom property with a default, so that a page can theme
/// inline charts.
const BASE_CSS: &str = concat!(
    ".lh-chart{font-family:var(--lh-font,system-ui,-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif);font-size:11px}",
    ".lh-chart .lh-bg{fill:var(--lh-bg,#fff)}",
    ".lh-chart text{fill:var(--lh-fg,#222)}",
    ".lh-chart text.lh-tick,.lh-chart text.lh-note,.lh-chart text.lh-empty{fill:var(--lh-muted,#666)}",
    ".lh-chart text.lh-empty{font-size:14px}",
    ".lh-chart .lh-axis{stroke:var(--lh-axis,#999);stroke-width:1;fill:none}",
    ".lh-chart .lh-gridline{stroke:var(--lh-grid,#e6e6e6);stroke-width:1}",
    ".lh-chart .lh-zero{stroke:var(--lh-axis,#999);stroke-width:1}",
    ".lh-chart .lh-line{stroke-width:2;stroke-linejoin:round;stroke-linecap:round}",
    ".lh-chart .lh-area{fill-opacity:.28;stroke:none}",
    ".lh-chart .lh-dot,.lh-chart .lh-slice,.lh-chart .lh-cell{stroke:var(--lh-bg,#fff);stroke-width:1}",
    ".lh-chart .lh-slice{fill-rule:evenodd}",
    ".lh-chart .lh-mark:hover{opacity:.78}",
    ".lh-chart text.lh-kpi{font-weight:600;fill:var(--lh-fg,#222)}",
    ".lh-chart text.lh-total{font-size:14px;font-weight:600}",
    ".lh-chart text.lh-good{fill:var(--lh-good,#1a7f37)}",
    ".lh-chart text.lh-bad{fill:var(--lh-bad,#cf222e)}",
    ".lh-chart text.lh-flat{fill:var(--lh-muted,#666)}",
);

/// The dark theme's overrides (inside `prefers-color-scheme: dark`).
const DARK_CSS: &str = concat!(
    ".lh-chart .lh-bg{fill:var(--lh-bg,#16181d)}",
    ".lh-chart text{fill:var(--lh-fg,#e6e6e6)}",
    ".lh-chart text.lh-tick,.lh-chart text.lh-note,.lh-chart text.lh-empty{fill:var(--lh-muted,#a3a3a3)}",
    ".lh-chart .lh-axis,.lh-chart .lh-zero{stroke:var(--lh-axis,#777)}",
    ".lh-chart .lh-gridline{stroke:var(--lh-grid,#33363d)}",
    ".lh-chart .lh-dot,.lh-chart .lh-slice,.lh-chart .lh-cell{stroke:var(--lh-bg,#16181d)}",
    ".lh-chart text.lh-kpi{fill:var(--lh-fg,#e6e6e6)}",
    ".lh-chart text.lh-good{fill:var(--lh-good,#3fb950)}",
    ".lh-chart text.lh-bad{fill:var(--lh-bad,#f85149)}",
    ".lh-chart text.lh-flat{fill:var(--lh-muted,#a3a3a3)}",
);

/// Text escaped for XML content and attribute values (`& < > " '`);
/// characters XML 1.0 does not allow (most control characters) are
/// dropped.
pub(crate) struct Esc<'a>(pub(crate) &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            f.write_str(&rest[..i])?;
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                _ => {}
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

fn needs_escape(c: char) -> bool {
    matches!(c, '&' | '<' | '>' | '"' | '\'') || !is_xml_char(c)
}

/// Whether XML 1.0 allows the character in a document.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A drill-down link when it is safe to follow: a path on this site
/// (`/dash/x?f=1`, not `//host`) or a query (`?f=1`). Anything else
/// (`javascript:`, `data:`, other sites) is dropped.
pub(crate) fn safe_link(url: &str) -> Option<&str> {
    let mut chars = url.chars();
    let relative = match chars.next() {
        Some('?') => true,
        Some('/') => !matches!(chars.next(), Some('/' | '\\')),
        _ => false,
    };
    (relative && !url.chars().any(char::is_control)).then_some(url)
}

/// A coordinate: at most two decimals, no `-0`, never `NaN` (0 instead),
/// clamped far outside any canvas.
#[derive(Debug, Clone, Copy)]
pub(crate) struct C(pub(crate) f64);

impl fmt::Display for C {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() {
            self.0.clamp(-1e9, 1e9)
        } else {
            0.0
        };
        // Within ±1e11 hundredths: exact in an i64.
        let hundredths = (v * 100.0).round() as i64;
        if hundredths < 0 {
            f.write_char('-')?;
        }
        let magnitude = hundredths.unsigned_abs();
        let (int, frac) = (magnitude / 100, magnitude % 100);
        write!(f, "{int}")?;
        match frac {
            0 => Ok(()),
            tenths if tenths % 10 == 0 => write!(f, ".{}", tenths / 10),
            frac => write!(f, ".{frac:02}"),
        }
    }
}

/// Where a text is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// At its start.
    Start,
    /// At its middle.
    Middle,
    /// At its end.
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Middle => "middle",
            Self::End => "end",
        }
    }
}

/// The geometry of a mark.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// A rectangle (a negative size is flipped).
    Rect {
        /// Left.
        x: f64,
        /// Top.
        y: f64,
        /// Width.
        w: f64,
        /// Height.
        h: f64,
    },
    /// A circle.
    Circle {
        /// Centre's x.
        cx: f64,
        /// Centre's y.
        cy: f64,
        /// Radius.
        r: f64,
    },
    /// A path (its `d`, coordinates already written with [`C`]).
    Path(String),
    /// A centred text.
    Text {
        /// Centre's x.
        x: f64,
        /// Baseline's y.
        y: f64,
        /// Font size, px.
        size: f64,
        /// The text.
        text: String,
    },
}

impl Shape {
    fn tag(&self) -> &'static str {
        match self {
            Self::Rect { .. } => "rect",
            Self::Circle { .. } => "circle",
            Self::Path(_) => "path",
            Self::Text { .. } => "text",
        }
    }
}

/// A data mark: its shape and what it stands for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark<'a> {
    shape: Shape,
    class: String,
    style: Option<String>,
    series: &'a str,
    x: &'a str,
    y: f64,
    extra: Option<(&'static str, String)>,
    tooltip: String,
    link: Option<&'a str>,
}

impl<'a> Mark<'a> {
    /// A mark of `shape`, classes `lh-mark` and `class`, for the value `y`
    /// at `x` of `series`.
    pub(crate) fn new(shape: Shape, class: String, series: &'a str, x: &'a str, y: f64) -> Self {
        Self {
            shape,
            class,
            style: None,
            series,
            x,
            y,
            extra: None,
            tooltip: String::new(),
            link: None,
        }
    }

    /// Its tooltip (the `<title>` child).
    pub(crate) fn tooltip(mut self, tooltip: String) -> Self {
        self.tooltip = tooltip;
        self
    }

    /// Where a click leads (kept only when [`safe_link`] accepts it).
    pub(crate) fn link(mut self, link: Option<&'a str>) -> Self {
        self.link = link;
        self
    }

    /// An inline style (wins over the classes' colours).
    pub(crate) fn style(mut self, style: String) -> Self {
        self.style = Some(style);
        self
    }

    /// One more `data-` attribute.
    pub(crate) fn data(mut self, name: &'static str, value: String) -> Self {
        self.extra = Some((name, value));
        self
    }
}

/// An SVG document being written.
#[derive(Debug)]
pub(crate) struct Doc {
    out: String,
    width: f64,
    height: f64,
}

impl Doc {
    /// Starts a document: the root element, its title, style sheet and
    /// background.
    pub(crate) fn new(opts: &RenderOptions) -> Self {
        let w = opts.width.clamp(MIN_SIZE.0, MAX_SIZE);
        let h = opts.height.clamp(MIN_SIZE.1, MAX_SIZE);
        let title = if opts.title.trim().is_empty() {
            UNTITLED
        } else {
            opts.title.as_str()
        };
        let mut doc = Self {
            out: String::with_capacity(16 * 1024),
            width: f64::from(w),
            height: f64::from(h),
        };
        doc.put(format_args!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lh-chart\" viewBox=\"0 0 {w} {h}\" \
             width=\"100%\" role=\"img\" aria-label=\"{t}\">\n<title>{t}</title>\n<style>",
            t = Esc(title)
        ));
        write_style_sheet(&mut doc.out);
        doc.put(format_args!(
            "</style>\n<rect class=\"lh-bg\" width=\"{w}\" height=\"{h}\"/>\n"
        ));
        doc
    }

    /// Width of the coordinate space.
    pub(crate) fn width(&self) -> f64 {
        self.width
    }

    /// Height of the coordinate space.
    pub(crate) fn height(&self) -> f64 {
        self.height
    }

    /// Ends the document.
    pub(crate) fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }

    fn put(&mut self, args: fmt::Arguments<'_>) {
        // Writing into a String cannot fail.
        let _ = self.out.write_fmt(args);
    }

    /// Opens a group.
    pub(crate) fn open_group(&mut self, class: &str) {
        self.put(format_args!("<g class=\"{}\">\n", Esc(class)));
    }

    /// Closes the last group opened.
    pub(crate) fn close_group(&mut self) {
        self.out.push_str("</g>\n");
    }

    /// A line segment.
    pub(crate) fn line(&mut self, from: (f64, f64), to: (f64, f64), class: &str) {
        self.put(format_args!(
            "<line class=\"{}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
            Esc(class),
            C(from.0),
            C(from.1),
            C(to.0),
            C(to.1)
        ));
    }

    /// A rectangle that is not a mark (swatches, scales).
    pub(crate) fn rect(
        &mut self,
        (x, y, w, h): (f64, f64, f64, f64),
        class: &str,
        style: Option<&str>,
    ) {
        self.put(format_args!(
            "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"",
            Esc(class),
            C(x),
            C(y),
            C(w.max(0.0)),
            C(h.max(0.0))
        ));
        if let Some(style) = style {
            self.put(format_args!(" style=\"{}\"", Esc(style)));
        }
        self.out.push_str("/>\n");
    }

    /// A path that is not a mark (a series' line or area).
    pub(crate) fn path(&mut self, d: &str, class: &str) {
        self.put(format_args!(
            "<path class=\"{}\" d=\"{}\"/>\n",
            Esc(class),
            Esc(d)
        ));
    }

    /// A text label.
    pub(crate) fn text(&mut self, (x, y): (f64, f64), anchor: Anchor, class: &str, text: &str) {
        self.put(format_args!(
            "<text class=\"{}\" x=\"{}\" y=\"{}\" text-anchor=\"{}\">{}</text>\n",
            Esc(class),
            C(x),
            C(y),
            anchor.as_str(),
            Esc(text)
        ));
    }

    /// A text label turned by `degrees` around its anchor point.
    pub(crate) fn text_rotated(
        &mut self,
        (x, y): (f64, f64),
        degrees: f64,
        class: &str,
        text: &str,
    ) {
        self.put(format_args!(
            "<text class=\"{}\" x=\"{}\" y=\"{}\" text-anchor=\"end\" transform=\"rotate({} {} {})\">{}</text>\n",
            Esc(class),
            C(x),
            C(y),
            C(degrees),
            C(x),
            C(y),
            Esc(text)
        ));
    }

    /// A text label of a given size.
    pub(crate) fn text_sized(&mut self, (x, y): (f64, f64), size: f64, class: &str, text: &str) {
        self.put(format_args!(
            "<text class=\"{}\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{}\">{}</text>\n",
            Esc(class),
            C(x),
            C(y),
            C(size),
            Esc(text)
        ));
    }

    /// The centred `No data` of a chart with nothing to show.
    pub(crate) fn no_data(&mut self) {
        let centre = (self.width / 2.0, self.height / 2.0 + 5.0);
        self.text(centre, Anchor::Middle, "lh-empty", "No data");
    }

    /// A data mark, in a link when it has a safe one.
    pub(crate) fn mark(&mut self, m: &Mark<'_>) {
        let href = m.link.and_then(safe_link);
        if let Some(href) = href {
            self.put(format_args!("<a href=\"{}\">", Esc(href)));
        }
        let tag = m.shape.tag();
        self.put(format_args!("<{tag} class=\"lh-mark {}\"", Esc(&m.class)));
        self.geometry(&m.shape);
        if let Some(style) = &m.style {
            self.put(format_args!(" style=\"{}\"", Esc(style)));
        }
        self.put(format_args!(
            " data-series=\"{}\" data-x=\"{}\" data-y=\"{}\"",
            Esc(m.series),
            Esc(m.x),
            Esc(&plain_number(m.y))
        ));
        if let Some((name, value)) = &m.extra {
            self.put(format_args!(" data-{name}=\"{}\"", Esc(value)));
        }
        self.out.push('>');
        if let Shape::Text { text, .. } = &m.shape {
            self.put(format_args!("{}", Esc(text)));
        }
        self.put(format_args!("<title>{}</title></{tag}>", Esc(&m.tooltip)));
        if href.is_some() {
            self.out.push_str("</a>");
        }
        self.out.push('\n');
    }

    fn geometry(&mut self, shape: &Shape) {
        match shape {
            Shape::Rect { x, y, w, h } => {
                let (x, w) = if *w < 0.0 { (x + w, -w) } else { (*x, *w) };
                let (y, h) = if *h < 0.0 { (y + h, -h) } else { (*y, *h) };
                self.put(format_args!(
                    " x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"",
                    C(x),
                    C(y),
                    C(w),
                    C(h)
                ));
            }
            Shape::Circle { cx, cy, r } => self.put(format_args!(
                " cx=\"{}\" cy=\"{}\" r=\"{}\"",
                C(*cx),
                C(*cy),
                C(r.max(0.0))
            )),
            Shape::Path(d) => self.put(format_args!(" d=\"{}\"", Esc(d))),
            Shape::Text { x, y, size, .. } => self.put(format_args!(
                " x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"{}\"",
                C(*x),
                C(*y),
                C(*size)
            )),
        }
    }
}

/// The class of the `i`th series' colour (`lh-s0`..`lh-s9`, repeating).
pub(crate) fn colour_class(i: usize) -> String {
    format!("lh-s{}", i % LIGHT_PALETTE.len())
}

fn write_style_sheet(out: &mut String) {
    out.push_str(BASE_CSS);
    write_palette(out, &LIGHT_PALETTE);
    out.push_str("@media (prefers-color-scheme: dark){");
    out.push_str(DARK_CSS);
    write_palette(out, &DARK_PALETTE);
    out.push('}');
}

fn write_palette(out: &mut String, palette: &[&str]) {
    for (i, colour) in palette.iter().enumerate() {
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            ".lh-chart .lh-s{i}{{fill:var(--lh-s{i},{colour})}}\
             .lh-chart .lh-line.lh-s{i}{{stroke:var(--lh-s{i},{colour});fill:none}}"
        );
    }
}
