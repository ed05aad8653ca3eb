//! A dashboard's file: its datasets, filters, parameters and visuals, as
//! the author writes them in TOML, and the checks that need no engine
//! (names, references, kinds). [`crate::data`] checks the rest against the
//! catalog (fields, SQL) when a dashboard is loaded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Bytes a dashboard file may have.
pub const MAX_SPEC_BYTES: usize = 1 << 20;
/// Datasets, filters, parameters and visuals a dashboard may have, each.
pub const MAX_ITEMS: usize = 64;
/// Default cap on the rows a cached dataset holds.
pub const DEFAULT_MAX_ROWS: usize = 1_000_000;

/// A dashboard, as loaded from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    /// Its name: the file's stem (`service_health` for
    /// `service_health.toml`), used in URLs.
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// What the file says.
    pub spec: Spec,
}

/// The contents of a dashboard file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The title shown on the page.
    pub title: String,
    /// A line under the title.
    #[serde(default)]
    pub description: Option<String>,
    /// The database dataset SQL runs in (`default` when absent).
    #[serde(default)]
    pub database: Option<String>,
    /// Datasets by name.
    pub datasets: BTreeMap<String, Dataset>,
    /// Filters: each narrows every visual whose dataset has its field.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Parameters: typed values dataset SQL reads as `$name`.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// The visuals, in page order.
    pub visuals: Vec<Visual>,
}

/// How a dataset's rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// Materialised (Arrow IPC under `_lakehose/dashboards/`) and
    /// refreshed on a schedule, on demand, or when its sources change;
    /// pages read the cache.
    #[default]
    Spice,
    /// Run for every page view, with the page's parameters.
    Direct,
}

/// One dataset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    /// Its SQL (one query, Athena dialect). With `from`, it reads the
    /// other dataset's rows under that dataset's name.
    pub sql: String,
    /// Another dataset of this dashboard it builds on.
    #[serde(default)]
    pub from: Option<String>,
    /// Cached or direct.
    #[serde(default)]
    pub cache: CacheMode,
    /// When a cached dataset is refreshed (cron, five or six fields).
    #[serde(default)]
    pub refresh: Option<String>,
    /// Refresh a cached dataset when the tables it reads get new files.
    #[serde(default)]
    pub refresh_on_new_files: bool,
    /// Refresh only the recent rows (QuickSight's incremental refresh).
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// Rows a cached dataset may hold; a refresh beyond it fails.
    #[serde(default)]
    pub max_rows: Option<usize>,
    /// Calculated fields: name → SQL expression over the dataset's rows.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Row-level security.
    #[serde(default)]
    pub rls: Option<RowLevelSecurity>,
}

/// An incremental refresh: rows whose `column` is within `lookback` of
/// the newest cached value are read again and replace the cached ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// A date or timestamp column of the dataset.
    pub column: String,
    /// How far back from the newest cached value (`2h`, `1d`, `30m`).
    pub lookback: String,
}

/// Row-level security: a rules query maps principals and groups to the
/// values of `column` they may see.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowLevelSecurity {
    /// SQL returning `user_name`, `group_name` (either may be NULL) and
    /// the allowed value(s) of `column` (comma-separated; NULL or empty:
    /// every value).
    pub rules: String,
    /// The dataset's (text) column the rules restrict.
    pub column: String,
}

/// How a filter is set on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// One of the field's values (or all).
    Dropdown,
    /// Text the field contains.
    Text,
    /// A numeric range (`min`, `max`).
    Range,
    /// A time range: a preset (`24h`, `7d`, ...) ending now.
    TimeRange,
}

/// A filter over a field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Its name in URLs (`?service=api`).
    pub name: String,
    /// Its label on the page.
    #[serde(default)]
    pub label: Option<String>,
    /// The field it narrows (in every dataset that has it).
    pub field: String,
    /// How it is set.
    pub control: Control,
    /// Its value when the URL gives none.
    #[serde(default)]
    pub default: Option<String>,
    /// A time range's choices (`1h`, `24h`, `7d`, `30d`, `all`).
    #[serde(default)]
    pub presets: Vec<String>,
}

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// Text.
    String,
    /// A 64-bit integer.
    Integer,
    /// A number.
    Decimal,
    /// A date (`YYYY-MM-DD`).
    Date,
    /// A timestamp (`YYYY-MM-DD HH:MM:SS`).
    Timestamp,
}

/// A typed parameter, bound into dataset SQL where it says `$name`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Its name (in SQL as `$name`, in URLs as `?name=`).
    pub name: String,
    /// Its label on the page.
    #[serde(default)]
    pub label: Option<String>,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Its value when the URL gives none.
    pub default: toml::Value,
}

/// A visual's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisualKind {
    /// One number, compared with the previous period.
    Kpi,
    /// Lines over x.
    Line,
    /// Filled areas over x.
    Area,
    /// Bars.
    Bar,
    /// Stacked bars.
    StackedBar,
    /// Horizontal bars.
    HorizontalBar,
    /// A pie.
    Pie,
    /// A donut.
    Donut,
    /// A table.
    Table,
    /// A heat map (x across, series down).
    HeatMap,
    /// A histogram of a field.
    Histogram,
    /// A scatter plot.
    Scatter,
}

/// How a visual's query is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One aggregate.
    Single,
    /// One aggregate per x (and series): lines, areas, bars, pies, heat maps.
    Grouped,
    /// The values of one field, binned.
    Binned,
    /// Points on two numeric axes.
    Points,
    /// Rows of columns.
    Rows,
}

impl VisualKind {
    /// How its query is shaped.
    pub fn shape(self) -> Shape {
        match self {
            Self::Kpi => Shape::Single,
            Self::Histogram => Shape::Binned,
            Self::Scatter => Shape::Points,
            Self::Table => Shape::Rows,
            Self::Line
            | Self::Area
            | Self::Bar
            | Self::StackedBar
            | Self::HorizontalBar
            | Self::Pie
            | Self::Donut
            | Self::HeatMap => Shape::Grouped,
        }
    }
}

/// What a click on a mark opens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Drill {
    /// `"rows"`: the dataset rows behind the mark.
    Rows(String),
    /// Another dashboard, with the mark's x value as one of its filters
    /// or parameters.
    Dashboard {
        /// The dashboard.
        dashboard: String,
        /// Its filter or parameter that gets the value.
        parameter: String,
    },
}

/// A conditional colour of a table column.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellColor {
    /// The column (its output name).
    pub column: String,
    /// Colour values above this.
    #[serde(default)]
    pub above: Option<f64>,
    /// Colour values below this.
    #[serde(default)]
    pub below: Option<f64>,
    /// `good`, `bad` or `warn`.
    #[serde(default = "bad")]
    pub style: String,
}

fn bad() -> String {
    "bad".into()
}

/// A visual.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Visual {
    /// Its id (unique in the dashboard; in URLs).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: VisualKind,
    /// The dataset it shows.
    pub dataset: String,
    /// The x field (line, bar, heat map, pie labels, histogram's binned
    /// field) or expression (scatter).
    #[serde(default)]
    pub x: Option<String>,
    /// The value: an aggregate expression (`sum(requests)`), or for a
    /// scatter plot without `group_by` a field.
    #[serde(default)]
    pub y: Option<String>,
    /// A field splitting the values into series (heat map: its rows).
    #[serde(default)]
    pub series: Option<String>,
    /// Fields a table or scatter plot groups by.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// A table's columns: expressions with `AS name`.
    #[serde(default)]
    pub columns: Vec<String>,
    /// A table's default order (`requests DESC`).
    #[serde(default)]
    pub sort: Option<String>,
    /// A table's rows per page.
    #[serde(default)]
    pub page_size: Option<usize>,
    /// A table's conditional colours.
    #[serde(default)]
    pub colors: Vec<CellColor>,
    /// A histogram's bins.
    #[serde(default)]
    pub bins: Option<usize>,
    /// How values are written: `number`, `percent`, `milliseconds`,
    /// `bytes`.
    #[serde(default)]
    pub unit: Option<String>,
    /// A KPI: compare with the previous period of the time range filter.
    #[serde(default)]
    pub compare: bool,
    /// A KPI: whether a rise is good.
    #[serde(default = "yes")]
    pub higher_is_better: bool,
    /// Grid columns it spans (1 or 2).
    #[serde(default)]
    pub width: Option<u8>,
    /// What a click on a mark opens.
    #[serde(default)]
    pub drill: Option<Drill>,
    /// Most groups (bars, slices, series points) it shows.
    #[serde(default)]
    pub limit: Option<usize>,
}

fn yes() -> bool {
    true
}

/// Whether `name` is a plain identifier: a letter or `_`, then letters,
/// digits and `_`, at most 64 characters.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A duration written `30m`, `2h`, `7d`, `1w` (or `all`: `None`).
pub fn parse_span(text: &str) -> std::result::Result<Option<Duration>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a span like 30m, 2h, 7d or all"))?;
    let secs = match unit {
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{text:?} is not a span like 30m, 2h, 7d or all")),
    };
    if n == 0 || n > 100 * 365 * 86_400 / secs {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Some(Duration::from_secs(n * secs)))
}

impl Dashboard {
    /// Parses and checks a dashboard file's text (`path` names it in
    /// errors; its stem is the dashboard's name).
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let invalid = |message: String| Error::Spec {
            path: path.to_path_buf(),
            message,
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if !is_identifier(&name) {
            return Err(invalid(format!(
                "the file name {name:?} must be a plain name (letters, digits, _) ending in .toml"
            )));
        }
        if text.len() > MAX_SPEC_BYTES {
            return Err(invalid(format!("the file is over {MAX_SPEC_BYTES} bytes")));
        }
        let spec: Spec = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let dashboard = Self {
            name,
            path: path.to_path_buf(),
            spec,
        };
        dashboard.check().map_err(invalid)?;
        Ok(dashboard)
    }

    /// Reads and parses a dashboard file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(text).map_err(|_| Error::Spec {
            path: path.to_path_buf(),
            message: "the file is not UTF-8".into(),
        })?;
        Self::parse(path, &text)
    }

    /// The visual of id `id`.
    pub fn visual(&self, id: &str) -> Option<&Visual> {
        self.spec.visuals.iter().find(|v| v.id == id)
    }

    /// The database dataset SQL runs in.
    pub fn database(&self) -> &str {
        self.spec.database.as_deref().unwrap_or("default")
    }

    /// The checks that need no engine: names, references, what each
    /// visual kind needs.
    fn check(&self) -> std::result::Result<(), String> {
        let s = &self.spec;
        for (what, n) in [
            ("datasets", s.datasets.len()),
            ("filters", s.filters.len()),
            ("parameters", s.parameters.len()),
            ("visuals", s.visuals.len()),
        ] {
            if n > MAX_ITEMS {
                return Err(format!("{n} {what}: at most {MAX_ITEMS}"));
            }
        }
        if s.datasets.is_empty() {
            return Err("no datasets".into());
        }
        if let Some(db) = &s.database
            && !is_identifier(db)
        {
            return Err(format!("database {db:?} is not a plain name"));
        }
        let mut names = std::collections::HashSet::new();
        for f in &s.filters {
            if !is_identifier(&f.name) || !names.insert(f.name.as_str()) {
                return Err(format!(
                    "filter {:?}: names must be plain and unique",
                    f.name
                ));
            }
            if !is_identifier(&f.field) {
                return Err(format!(
                    "filter {}: field {:?} is not a plain name",
                    f.name, f.field
                ));
            }
            for p in f
                .presets
                .iter()
                .chain(f.default.iter().filter(|_| f.control == Control::TimeRange))
            {
                parse_span(p).map_err(|e| format!("filter {}: {e}", f.name))?;
            }
        }
        for p in &s.parameters {
            if !is_identifier(&p.name) || !names.insert(p.name.as_str()) {
                return Err(format!(
                    "parameter {:?}: names must be plain and unique (and differ from the filters')",
                    p.name
                ));
            }
        }
        for (name, d) in &s.datasets {
            if !is_identifier(name) {
                return Err(format!("dataset {name:?} is not a plain name"));
            }
            if let Some(from) = &d.from
                && (!s.datasets.contains_key(from) || from == name)
            {
                return Err(format!(
                    "dataset {name}: from = {from:?} names no other dataset"
                ));
            }
            for field in d.fields.keys() {
                if !is_identifier(field) {
                    return Err(format!(
                        "dataset {name}: calculated field {field:?} is not a plain name"
                    ));
                }
            }
            if let Some(inc) = &d.incremental {
                if !is_identifier(&inc.column) {
                    return Err(format!(
                        "dataset {name}: incremental column {:?} is not a plain name",
                        inc.column
                    ));
                }
                if parse_span(&inc.lookback)
                    .map_err(|e| format!("dataset {name}: incremental lookback {e}"))?
                    .is_none()
                {
                    return Err(format!(
                        "dataset {name}: an incremental lookback must be a span, not all"
                    ));
                }
            }
            if let Some(r) = &d.rls
                && !is_identifier(&r.column)
            {
                return Err(format!(
                    "dataset {name}: rls column {:?} is not a plain name",
                    r.column
                ));
            }
            if d.cache == CacheMode::Direct
                && (d.refresh.is_some() || d.incremental.is_some() || d.refresh_on_new_files)
            {
                return Err(format!(
                    "dataset {name}: a direct dataset is not cached, so it has no refresh, incremental or refresh_on_new_files"
                ));
            }
            if let Some(cron) = &d.refresh {
                lakehose_catalog::schedule::Schedule::unix(cron)
                    .map_err(|e| format!("dataset {name}: refresh {cron:?}: {e}"))?;
            }
        }
        // Dataset chains end (no cycles).
        for name in s.datasets.keys() {
            let mut seen = vec![name.as_str()];
            let mut at = name.as_str();
            while let Some(next) = s.datasets.get(at).and_then(|d| d.from.as_deref()) {
                if seen.contains(&next) {
                    return Err(format!(
                        "dataset {name}: from forms a cycle ({} → {next})",
                        seen.join(" → ")
                    ));
                }
                seen.push(next);
                at = next;
            }
        }
        let mut ids = std::collections::HashSet::new();
        for v in &s.visuals {
            let at = format!("visual {}", v.id);
            if !is_identifier(&v.id) || !ids.insert(v.id.as_str()) {
                return Err(format!("{at}: ids must be plain names, unique"));
            }
            if !s.datasets.contains_key(&v.dataset) {
                return Err(format!("{at}: dataset {:?} does not exist", v.dataset));
            }
            if let Some(u) = &v.unit
                && crate::chart::Unit::from_name(u).is_none()
            {
                return Err(format!(
                    "{at}: unit {u:?} is not number, percent, milliseconds or bytes"
                ));
            }
            if let Some(series) = &v.series
                && !is_identifier(series)
            {
                return Err(format!("{at}: series {series:?} must be a field name"));
            }
            for g in &v.group_by {
                if !is_identifier(g) {
                    return Err(format!("{at}: group_by {g:?} must be a field name"));
                }
            }
            let needs = |field: &Option<String>, what: &str| match field {
                Some(t) if !t.trim().is_empty() => Ok(()),
                _ => Err(format!("{at}: a {:?} visual needs {what}", v.kind)),
            };
            use Shape as K;
            match v.kind.shape() {
                K::Single => needs(&v.y, "y (an aggregate such as sum(requests))")?,
                K::Grouped => {
                    needs(&v.x, "x (a field)")?;
                    needs(&v.y, "y (an aggregate such as sum(requests))")?;
                    if !v.x.as_deref().is_some_and(is_identifier) {
                        return Err(format!("{at}: x must be a field name"));
                    }
                    if v.kind == VisualKind::HeatMap {
                        needs(&v.series, "series (the rows' field)")?;
                    }
                }
                K::Binned => {
                    needs(&v.x, "x (the field to bin)")?;
                    if !v.x.as_deref().is_some_and(is_identifier) {
                        return Err(format!("{at}: x must be a field name"));
                    }
                    if v.bins.is_some_and(|b| b == 0 || b > 200) {
                        return Err(format!("{at}: bins must be 1 to 200"));
                    }
                }
                K::Points => {
                    needs(&v.x, "x")?;
                    needs(&v.y, "y")?;
                }
                K::Rows => {
                    if v.columns.is_empty() {
                        return Err(format!("{at}: a table needs columns"));
                    }
                }
            }
            if v.page_size.is_some_and(|p| p == 0 || p > 1000) {
                return Err(format!("{at}: page_size must be 1 to 1000"));
            }
            if v.width.is_some_and(|w| !(1..=2).contains(&w)) {
                return Err(format!("{at}: width must be 1 or 2"));
            }
            match &v.drill {
                Some(Drill::Rows(r)) if r != "rows" => {
                    return Err(format!(
                        "{at}: drill must be \"rows\" or {{ dashboard = ..., parameter = ... }}"
                    ));
                }
                Some(Drill::Dashboard {
                    dashboard,
                    parameter,
                }) if !is_identifier(dashboard) || !is_identifier(parameter) => {
                    return Err(format!("{at}: drill names must be plain names"));
                }
                _ => {}
            }
            for c in &v.colors {
                if !["good", "bad", "warn"].contains(&c.style.as_str()) {
                    return Err(format!(
                        "{at}: colors style {:?} is not good, bad or warn",
                        c.style
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
title = "Service health"
database = "curated"

[datasets.hourly]
sql = "SELECT hour, service, requests, errors FROM curated.request_metrics_hourly"
refresh = "*/5 * * * *"
incremental = { column = "hour", lookback = "3h" }
[datasets.hourly.fields]
error_rate = "errors / nullif(requests, 0)"

[datasets.by_service]
from = "hourly"
sql = "SELECT service, sum(requests) AS requests FROM hourly GROUP BY service"

[[filters]]
name = "service"
field = "service"
control = "dropdown"

[[filters]]
name = "window"
field = "hour"
control = "time_range"
default = "7d"
presets = ["24h", "7d", "all"]

[[parameters]]
name = "top"
type = "integer"
default = 10

[[visuals]]
id = "requests"
title = "Requests per hour"
type = "line"
dataset = "hourly"
x = "hour"
series = "service"
y = "sum(requests)"
drill = "rows"

[[visuals]]
id = "total"
title = "Requests"
type = "kpi"
dataset = "hourly"
y = "sum(requests)"
compare = true
"#;

    fn parse(text: &str) -> Result<Dashboard> {
        Dashboard::parse(Path::new("/specs/service_health.toml"), text)
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("should be refused"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_good_spec_parses() {
        let d = parse(GOOD).unwrap();
        assert_eq!(d.name, "service_health");
        assert_eq!(d.database(), "curated");
        assert_eq!(d.spec.datasets.len(), 2);
        assert_eq!(d.spec.visuals[0].drill, Some(Drill::Rows("rows".into())));
        assert_eq!(d.visual("total").unwrap().kind, VisualKind::Kpi);
    }

    #[test]
    fn mistakes_are_named_with_the_file_and_the_visual() {
        let e = error(&GOOD.replace(
            "dataset = \"hourly\"\nx = \"hour\"",
            "dataset = \"nope\"\nx = \"hour\"",
        ));
        assert!(
            e.contains("service_health.toml")
                && e.contains("visual requests")
                && e.contains("nope"),
            "{e}"
        );
        let e = error(&GOOD.replace("type = \"line\"", "type = \"sparkline\""));
        assert!(
            e.contains("service_health.toml") && e.contains("sparkline"),
            "{e}"
        );
        let e = error(&GOOD.replace("compare = true", "compare = true\ncolour = 1"));
        assert!(e.contains("colour"), "unknown keys are refused: {e}");
        let e = error(&GOOD.replace("lookback = \"3h\"", "lookback = \"soon\""));
        assert!(e.contains("dataset hourly") && e.contains("soon"), "{e}");
        let e = error(&GOOD.replace("from = \"hourly\"", "from = \"by_service\""));
        assert!(e.contains("by_service"), "{e}");
        let e = error(&GOOD.replace("refresh = \"*/5 * * * *\"", "refresh = \"every day\""));
        assert!(e.contains("refresh"), "{e}");
        let e = error(&GOOD.replace("x = \"hour\"\nseries", "x = \"hour; DROP TABLE x\"\nseries"));
        assert!(e.contains("x must be a field name"), "{e}");
        let e = error(&GOOD.replace("name = \"top\"", "name = \"service\""));
        assert!(e.contains("unique"), "{e}");
        let e = error("title = 1");
        assert!(e.contains("service_health.toml"), "{e}");
    }

    #[test]
    fn dataset_cycles_are_refused() {
        let text = GOOD.replace(
            "[datasets.hourly]\nsql",
            "[datasets.hourly]\nfrom = \"by_service\"\nsql",
        );
        let e = error(&text);
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn file_names_must_be_plain() {
        let e = Dashboard::parse(Path::new("/x/../evil name.toml"), GOOD).unwrap_err();
        assert!(e.to_string().contains("plain name"), "{e}");
    }

    #[test]
    fn spans() {
        assert_eq!(parse_span("2h").unwrap(), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_span("7d").unwrap(),
            Some(Duration::from_secs(7 * 86400))
        );
        assert_eq!(parse_span("30m").unwrap(), Some(Duration::from_secs(1800)));
        assert_eq!(parse_span("all").unwrap(), None);
        for bad in ["", "h", "0h", "2y", "-1h", "99999999999999999999h"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    #[test]
    fn deeply_nested_files_are_refused_without_overflowing() {
        for (open, close) in [("[", "]"), ("{a=", "}")] {
            let text = format!("title = {}1{}", open.repeat(200_000), close.repeat(200_000));
            let e = Dashboard::parse(Path::new("deep.toml"), &text).unwrap_err();
            assert!(e.to_string().contains("deep.toml"), "{e}");
        }
    }
}
