//! Charts drawn as SVG on the server: the data a visual shows, already
//! filtered and aggregated, in, a self-contained SVG document out (its own
//! `<style>`, light and dark palettes, readable axes, time scales and
//! legends). Every mark carries `class="lh-mark"` and `data-series`,
//! `data-x`, `data-y` attributes (what tests and the page's tooltip script
//! read), a `<title>` (the browser's own tooltip), and, when the visual
//! drills down, a link around it. Every text that comes from data is
//! escaped.

/// A value on a chart's x axis.
#[derive(Debug, Clone, PartialEq)]
pub enum XValue {
    /// An instant, in milliseconds since the Unix epoch (UTC).
    Time(i64),
    /// A number.
    Number(f64),
    /// A category (a label).
    Category(String),
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Where on the x axis.
    pub x: XValue,
    /// Its value.
    pub y: f64,
    /// Where a click on it leads (drill-down), if anywhere.
    pub link: Option<String>,
}

/// A named series of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's name for it.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<Point>,
}

/// One slice of a pie.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    /// Its label.
    pub label: String,
    /// Its value (not negative).
    pub value: f64,
    /// Drill-down link.
    pub link: Option<String>,
}

/// One cell of a heat map.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Index into the heat map's `x` labels.
    pub x: usize,
    /// Index into its `y` labels.
    pub y: usize,
    /// Its value.
    pub value: f64,
    /// Drill-down link.
    pub link: Option<String>,
}

/// One bin of a histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    /// Its lower bound (inclusive).
    pub lo: f64,
    /// Its upper bound (exclusive, but the last bin's is inclusive).
    pub hi: f64,
    /// How many values fall in it.
    pub count: u64,
    /// Drill-down link.
    pub link: Option<String>,
}

/// A point of a scatter plot.
#[derive(Debug, Clone, PartialEq)]
pub struct XY {
    /// Its x.
    pub x: f64,
    /// Its y.
    pub y: f64,
    /// Drill-down link.
    pub link: Option<String>,
}

/// A named set of scatter points.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterSeries {
    /// The legend's name.
    pub name: String,
    /// Its points.
    pub points: Vec<XY>,
}

/// How numbers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// A plain number, large ones shortened (`12.3k`, `4.5M`).
    #[default]
    Number,
    /// A fraction shown as a percentage (0.125 → `12.5%`).
    Percent,
    /// Milliseconds (`850 ms`, `1.2 s`).
    Milliseconds,
    /// Bytes (`512 B`, `1.5 MiB`).
    Bytes,
}

impl Unit {
    /// The unit a spec names: `number`, `percent`, `milliseconds` (or
    /// `ms`), `bytes`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "number" => Self::Number,
            "percent" => Self::Percent,
            "milliseconds" | "ms" => Self::Milliseconds,
            "bytes" => Self::Bytes,
            _ => return None,
        })
    }
}

/// What a chart shows.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartData {
    /// Lines (or filled areas) over x, one per series.
    Line {
        /// The series.
        series: Vec<Series>,
        /// Fill the area under each line.
        area: bool,
        /// Stack the series (areas on top of each other).
        stacked: bool,
        /// The y axis's unit.
        unit: Unit,
    },
    /// Bars per x category, side by side or stacked per series.
    Bar {
        /// The series.
        series: Vec<Series>,
        /// Stack the series' bars.
        stacked: bool,
        /// Bars grow to the right, categories down the y axis.
        horizontal: bool,
        /// The value axis's unit.
        unit: Unit,
    },
    /// A pie, or a donut.
    Pie {
        /// The slices.
        slices: Vec<Slice>,
        /// Draw a ring rather than a full disc.
        donut: bool,
        /// The values' unit.
        unit: Unit,
    },
    /// A grid of coloured cells, x labels across and y labels down.
    HeatMap {
        /// Column labels.
        x: Vec<String>,
        /// Row labels.
        y: Vec<String>,
        /// The cells that have a value.
        cells: Vec<Cell>,
        /// The values' unit.
        unit: Unit,
    },
    /// Bars over contiguous ranges of a value.
    Histogram {
        /// The bins, in order.
        bins: Vec<Bin>,
        /// The binned value's unit.
        unit: Unit,
    },
    /// Points on two numeric axes.
    Scatter {
        /// The series.
        series: Vec<ScatterSeries>,
        /// The x axis's unit.
        x_unit: Unit,
        /// The y axis's unit.
        y_unit: Unit,
    },
    /// One number, with its change against a previous period.
    Kpi {
        /// The value now (`None`: no data).
        value: Option<f64>,
        /// The value of the previous period, when compared.
        previous: Option<f64>,
        /// Whether a rise is good (green) or bad (red).
        higher_is_better: bool,
        /// The value's unit.
        unit: Unit,
    },
}

/// How big a chart is drawn, and its accessible name.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// Width of the SVG's coordinate space (it scales to its container).
    pub width: u32,
    /// Height of the SVG's coordinate space.
    pub height: u32,
    /// The chart's title (the SVG's `aria-label` and `<title>`).
    pub title: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            width: 640,
            height: 320,
            title: String::new(),
        }
    }
}

mod axis;
mod bar;
mod categories;
mod format;
mod heatmap;
mod histogram;
mod kpi;
mod layout;
mod line;
mod pie;
mod plot;
mod scale;
mod scatter;
mod svg;
mod time;

#[cfg(test)]
mod tests;

pub use format::format_value;
pub use histogram::{MAX_BINS, histogram_bins};

/// Draws a chart as a complete, self-contained SVG document.
///
/// The document scales to its container (`width="100%"`, a `viewBox` of
/// `opts.width` × `opts.height`, clamped to 160 × 100 up to 16 000 px) and
/// carries its own style sheet: the series colours `.lh-s0` to `.lh-s9`,
/// a dark variant under `prefers-color-scheme: dark`, and CSS custom
/// properties a page can set to theme it (`--lh-fg`, `--lh-bg`,
/// `--lh-muted`, `--lh-axis`, `--lh-grid`, `--lh-good`, `--lh-bad`,
/// `--lh-font`, and `--lh-s0` to `--lh-s9` for the series colours).
///
/// Every data mark has `class="lh-mark …"`, `data-series`, `data-x` (a
/// label, a number, or an instant in RFC 3339) and `data-y` attributes and
/// a `<title>` tooltip; marks with a drill-down link (a path starting with
/// `/`, or a query starting with `?`; other links are dropped) are wrapped
/// in `<a href>`. Values that are not finite are left out; a chart with
/// nothing to show says `No data`. Text from the data is XML-escaped.
#[must_use]
pub fn render(data: &ChartData, opts: &RenderOptions) -> String {
    let mut doc = svg::Doc::new(opts);
    let drawn = match data {
        ChartData::Line {
            series,
            area,
            stacked,
            unit,
        } => line::render(&mut doc, series, *area, *stacked, *unit),
        ChartData::Bar {
            series,
            stacked,
            horizontal,
            unit,
        } => bar::render(&mut doc, series, *stacked, *horizontal, *unit),
        ChartData::Pie {
            slices,
            donut,
            unit,
        } => pie::render(&mut doc, slices, *donut, *unit),
        ChartData::HeatMap { x, y, cells, unit } => heatmap::render(&mut doc, x, y, cells, *unit),
        ChartData::Histogram { bins, unit } => histogram::render(&mut doc, bins, *unit),
        ChartData::Scatter {
            series,
            x_unit,
            y_unit,
        } => scatter::render(&mut doc, series, *x_unit, *y_unit),
        ChartData::Kpi {
            value,
            previous,
            higher_is_better,
            unit,
        } => kpi::render(&mut doc, *value, *previous, *higher_is_better, *unit),
    };
    if !drawn {
        doc.no_data();
    }
    doc.finish()
}
