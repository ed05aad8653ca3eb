//! From a dashboard's datasets to its visuals' data, through the engine.
//!
//! A dataset's rows are its SQL (Athena dialect) plus its calculated
//! fields, read from the cache ([`crate::cache`]) or, for a direct
//! dataset, run for the request. A visual is then one more query over those
//! rows, registered as a table of the query's context: its filters, its
//! grouping and aggregate. Every value from a request (a filter's value, a
//! parameter, a drill-down's x) reaches the engine as a bound placeholder
//! value (`$name`), never as SQL text; the only names from a request that
//! reach SQL are a table's sort column, checked against the columns the
//! spec declares.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use lakehose_query::QueryEngine;
use lakehose_query::stats::QueryStats;

use crate::chart::{self, ChartData, Point, Series, Unit, XValue};
use crate::error::{Error, Result};
use crate::spec::{Control, Dashboard, Drill, ParamType, Visual, VisualKind, parse_span};

/// Characters a filter or parameter value from a request may have.
pub const MAX_VALUE_CHARS: usize = 1024;
/// Rows a table visual shows per page by default.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// Rows a drill-down shows.
pub const DRILL_ROWS: usize = 500;
/// Groups a chart shows at most.
pub const MAX_GROUPS: usize = 10_000;
/// Points a scatter plot or a histogram reads at most.
pub const MAX_POINTS: usize = 100_000;

/// The table name a visual's query reads its dataset's rows as.
const DATASET_TABLE: &str = "lh_dataset";

/// A filter's value, from a request.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    /// The field equals this (dropdown).
    Equals(String),
    /// The field contains this, ignoring case (text).
    Contains(String),
    /// The field is within these bounds (range).
    Range {
        /// Lower bound, inclusive.
        min: Option<f64>,
        /// Upper bound, inclusive.
        max: Option<f64>,
    },
    /// The field is within this span of now (time range; `None`: all).
    Since(Option<Duration>),
}

/// The filters and parameters a page is drawn with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Set filters, by name.
    pub filters: BTreeMap<String, FilterValue>,
    /// Parameters, by name, as bound values.
    pub params: BTreeMap<String, ScalarValue>,
    /// The request's own text of each, for links that keep them.
    pub raw: BTreeMap<String, String>,
    /// "Now", in milliseconds (time ranges end here).
    pub now_ms: i64,
}

fn input(name: &str, message: impl Into<String>) -> Error {
    Error::Input {
        name: name.into(),
        message: message.into(),
    }
}

impl Selection {
    /// The selection of a request's query (`?service=api&window=24h`):
    /// each value checked against its filter or parameter; defaults for
    /// the rest. Names the spec does not declare are ignored.
    pub fn parse(d: &Dashboard, query: &BTreeMap<String, String>, now_ms: i64) -> Result<Self> {
        let mut out = Self {
            now_ms,
            ..Default::default()
        };
        for f in &d.spec.filters {
            let given = query.get(&f.name).filter(|v| !v.is_empty());
            let text = match given.or(f.default.as_ref()) {
                Some(t) => t.clone(),
                None => continue,
            };
            if text.chars().count() > MAX_VALUE_CHARS {
                return Err(input(
                    &f.name,
                    format!("longer than {MAX_VALUE_CHARS} characters"),
                ));
            }
            let value = match f.control {
                Control::Dropdown => FilterValue::Equals(text.clone()),
                Control::Text => FilterValue::Contains(text.clone()),
                Control::Range => {
                    let (lo, hi) = text.split_once("..").unwrap_or((text.as_str(), ""));
                    let num = |s: &str| -> Result<Option<f64>> {
                        let s = s.trim();
                        if s.is_empty() {
                            return Ok(None);
                        }
                        s.parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .map(Some)
                            .ok_or_else(|| input(&f.name, format!("{s:?} is not a number")))
                    };
                    FilterValue::Range {
                        min: num(lo)?,
                        max: num(hi)?,
                    }
                }
                Control::TimeRange => {
                    FilterValue::Since(parse_span(&text).map_err(|e| input(&f.name, e))?)
                }
            };
            if given.is_some() {
                out.raw.insert(f.name.clone(), text);
            }
            out.filters.insert(f.name.clone(), value);
        }
        for p in &d.spec.parameters {
            let given = query.get(&p.name).filter(|v| !v.is_empty());
            let value = match given {
                Some(text) => {
                    if text.chars().count() > MAX_VALUE_CHARS {
                        return Err(input(
                            &p.name,
                            format!("longer than {MAX_VALUE_CHARS} characters"),
                        ));
                    }
                    out.raw.insert(p.name.clone(), text.clone());
                    typed(p.kind, text).map_err(|m| input(&p.name, m))?
                }
                None => default_value(p.kind, &p.default).map_err(|m| input(&p.name, m))?,
            };
            out.params.insert(p.name.clone(), value);
        }
        Ok(out)
    }
}

/// A parameter's value from its text.
fn typed(kind: ParamType, text: &str) -> std::result::Result<ScalarValue, String> {
    let t = text.trim();
    Ok(match kind {
        ParamType::String => ScalarValue::Utf8(Some(text.to_string())),
        ParamType::Integer => ScalarValue::Int64(Some(
            t.parse().map_err(|_| format!("{t:?} is not an integer"))?,
        )),
        ParamType::Decimal => ScalarValue::Float64(Some(
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{t:?} is not a number"))?,
        )),
        ParamType::Date => {
            let d = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map_err(|_| format!("{t:?} is not a date (YYYY-MM-DD)"))?;
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
            ScalarValue::Date32(Some((d - epoch).num_days() as i32))
        }
        ParamType::Timestamp => ScalarValue::TimestampMicrosecond(Some(parse_time(t)?), None),
    })
}

/// A parameter's default from the spec's TOML value.
fn default_value(kind: ParamType, value: &toml::Value) -> std::result::Result<ScalarValue, String> {
    match value {
        toml::Value::String(s) => typed(kind, s),
        toml::Value::Integer(i) => typed(kind, &i.to_string()),
        toml::Value::Float(f) => typed(kind, &f.to_string()),
        other => Err(format!("default {other:?} is not a {kind:?}")),
    }
}

/// Microseconds since the epoch of `2026-12-05T10:00:00Z`,
/// `2026-12-05 10:00:00` or `2026-12-05` (UTC).
fn parse_time(t: &str) -> std::result::Result<i64, String> {
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_micros());
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, format) {
            return Ok(dt.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_micros());
    }
    Err(format!(
        "{t:?} is not a time (YYYY-MM-DD HH:MM:SS or RFC 3339)"
    ))
}

/// A dataset's rows, as a visual's query reads them.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Their columns.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Arc<Vec<RecordBatch>>,
}

impl Rows {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// SQL with named placeholders and their values.
#[derive(Debug, Default)]
pub(crate) struct Bound {
    pub(crate) sql: String,
    pub(crate) values: HashMap<String, ScalarValue>,
}

impl Bound {
    fn bind(&mut self, value: ScalarValue) -> String {
        let name = format!("lh_p{}", self.values.len());
        self.values.insert(name.clone(), value);
        format!("${name}")
    }
}

/// A quoted identifier (names here are checked plain names).
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Plans and runs `bound` in `ctx`, rows held up to the engine's cap.
pub(crate) async fn run(
    engine: &QueryEngine,
    ctx: &SessionContext,
    bound: Bound,
) -> std::result::Result<Rows, lakehose_query::QueryError> {
    let plan = lakehose_query::plan::plan_query(ctx, &bound.sql).await?;
    let plan = plan
        .with_param_values(bound.values)
        .map_err(lakehose_query::error::classify)?;
    let stats = QueryStats::default();
    let work = engine.collect(ctx, plan, &stats);
    let (schema, batches, _) = match engine.config().query_timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| {
            lakehose_query::QueryError::new(
                lakehose_query::QueryErrorKind::Limit,
                format!("the query ran longer than {} s", limit.as_secs()),
            )
        })?,
        None => work.await,
    }
    .map_err(lakehose_query::error::classify)?;
    Ok(Rows {
        schema,
        batches: Arc::new(batches),
    })
}

/// A context in `database` where `tables` are readable by name.
pub(crate) fn context_with(
    engine: &QueryEngine,
    database: &str,
    tables: &[(&str, &Rows)],
) -> std::result::Result<SessionContext, lakehose_query::QueryError> {
    let ctx = engine
        .context(database, Arc::new(QueryStats::default()))
        .map_err(lakehose_query::error::classify)?;
    for (name, rows) in tables {
        let table = MemTable::try_new(
            Arc::clone(&rows.schema),
            vec![rows.batches.as_ref().clone()],
        )
        .map_err(lakehose_query::error::classify)?;
        ctx.register_table(*name, Arc::new(table))
            .map_err(lakehose_query::error::classify)?;
    }
    Ok(ctx)
}

/// The SQL that materialises a dataset: its query with its calculated
/// fields, optionally only the rows where `since` holds.
pub(crate) fn dataset_sql(
    d: &Dashboard,
    name: &str,
    since: Option<(&str, ScalarValue)>,
    params: &BTreeMap<String, ScalarValue>,
) -> Bound {
    let ds = &d.spec.datasets[name];
    let mut bound = Bound::default();
    let calc: String = ds
        .fields
        .iter()
        .map(|(field, expr)| format!(", ({expr}) AS {}", quoted(field)))
        .collect();
    let mut sql = format!("SELECT lh_src.*{calc} FROM (\n{}\n) AS lh_src", ds.sql);
    if let Some((column, value)) = since {
        let p = bound.bind(value);
        sql.push_str(&format!(
            " WHERE CAST(lh_src.{} AS TIMESTAMP) >= {p}",
            quoted(column)
        ));
    }
    bound.sql = sql;
    // The dataset's own `$name` parameters.
    for (k, v) in params {
        bound.values.insert(k.clone(), v.clone());
    }
    bound
}

/// The `WHERE` conditions of a selection over a dataset with `schema`:
/// each filter whose field it has.
fn conditions(
    d: &Dashboard,
    schema: &SchemaRef,
    sel: &Selection,
    bound: &mut Bound,
    shift: i64,
) -> Vec<String> {
    let mut out = Vec::new();
    for f in &d.spec.filters {
        let Some(value) = sel.filters.get(&f.name) else {
            continue;
        };
        if schema.field_with_name(&f.field).is_err() {
            continue;
        }
        let field = quoted(&f.field);
        match value {
            FilterValue::Equals(v) => {
                let p = bound.bind(ScalarValue::Utf8(Some(v.clone())));
                out.push(format!("CAST({field} AS VARCHAR) = {p}"));
            }
            FilterValue::Contains(v) => {
                let p = bound.bind(ScalarValue::Utf8(Some(v.to_lowercase())));
                out.push(format!("strpos(lower(CAST({field} AS VARCHAR)), {p}) > 0"));
            }
            FilterValue::Range { min, max } => {
                if let Some(m) = min {
                    let p = bound.bind(ScalarValue::Float64(Some(*m)));
                    out.push(format!("CAST({field} AS DOUBLE) >= {p}"));
                }
                if let Some(m) = max {
                    let p = bound.bind(ScalarValue::Float64(Some(*m)));
                    out.push(format!("CAST({field} AS DOUBLE) <= {p}"));
                }
            }
            FilterValue::Since(Some(span)) => {
                let span_us = span.as_micros() as i64;
                let end = sel.now_ms * 1000 - shift * span_us;
                let start = end - span_us;
                let p = bound.bind(ScalarValue::TimestampMicrosecond(Some(start), None));
                out.push(format!("CAST({field} AS TIMESTAMP) >= {p}"));
                if shift > 0 {
                    let p = bound.bind(ScalarValue::TimestampMicrosecond(Some(end), None));
                    out.push(format!("CAST({field} AS TIMESTAMP) < {p}"));
                }
            }
            FilterValue::Since(None) => {}
        }
    }
    out
}

fn where_sql(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// The time-range filter of a selection, when one is set to a span.
fn time_span(d: &Dashboard, sel: &Selection) -> Option<Duration> {
    d.spec
        .filters
        .iter()
        .find_map(|f| match sel.filters.get(&f.name) {
            Some(FilterValue::Since(Some(span))) if f.control == Control::TimeRange => Some(*span),
            _ => None,
        })
}

/// Where a chart's marks lead: the drill-down's base and the query that
/// keeps the page's selection.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// `/dashboards/NAME` (or a relative base for rendered files; `None`:
    /// no links).
    pub base: Option<String>,
    /// The selection as a URL query (`service=api&window=24h`), encoded.
    pub query: String,
}

/// A URL query of key/value pairs, percent-encoded.
pub fn encode_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The text of an x value as a label (times to the minute, in UTC).
pub fn x_label(x: &XValue) -> String {
    match x {
        XValue::Time(ms) => chrono::DateTime::from_timestamp_millis(*ms)
            .map(|t| t.format("%b %d %H:%M").to_string())
            .unwrap_or_default(),
        other => x_text(other),
    }
}

/// The text of an x value in links and drill-downs.
pub fn x_text(x: &XValue) -> String {
    match x {
        XValue::Time(ms) => chrono::DateTime::from_timestamp_millis(*ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default(),
        XValue::Number(n) => n.to_string(),
        XValue::Category(c) => c.clone(),
    }
}

fn link(
    d: &Dashboard,
    v: &Visual,
    links: &Links,
    x: &XValue,
    series: Option<&str>,
) -> Option<String> {
    let base = links.base.as_ref()?;
    match v.drill.as_ref()? {
        Drill::Rows(_) => {
            let x = x_text(x);
            let mut pairs = vec![("lh_x", x.as_str())];
            if let Some(s) = series {
                pairs.push(("lh_s", s));
            }
            let extra = encode_query(pairs);
            let sep = if links.query.is_empty() { "" } else { "&" };
            Some(format!("{base}/rows/{}?{}{sep}{extra}", v.id, links.query))
        }
        Drill::Dashboard {
            dashboard,
            parameter,
        } => {
            let parent = base.rsplit_once('/').map_or("", |(p, _)| p);
            let _ = d;
            Some(format!(
                "{parent}/{dashboard}?{}",
                encode_query([(parameter.as_str(), x_text(x).as_str())])
            ))
        }
    }
}

/// The x value of row `i` of column `col`.
fn x_value(col: &dyn Array, i: usize) -> Option<XValue> {
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            let ms = cast(
                &col.slice(i, 1),
                &DataType::Timestamp(TimeUnit::Millisecond, None),
            )
            .ok()?;
            let ms = ms.as_primitive::<datafusion::arrow::datatypes::TimestampMillisecondType>();
            XValue::Time(ms.value(0))
        }
        t if t.is_numeric() => {
            let v = cast(&col.slice(i, 1), &DataType::Float64).ok()?;
            XValue::Number(v.as_primitive::<Float64Type>().value(0))
        }
        _ => {
            let v = cast(&col.slice(i, 1), &DataType::Utf8).ok()?;
            XValue::Category(v.as_string::<i32>().value(0).to_string())
        }
    })
}

/// Column `name` of `rows` as numbers (NULL → None).
fn numbers(rows: &Rows, name: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for b in rows.batches.iter() {
        let col = b
            .column_by_name(name)
            .ok_or_else(|| format!("no column {name}"))?;
        let col = cast(col, &DataType::Float64).map_err(|e| e.to_string())?;
        out.extend(col.as_primitive::<Float64Type>().iter());
    }
    Ok(out)
}

/// Column `name` of `rows` as x values.
fn xs(rows: &Rows, name: &str) -> Result<Vec<Option<XValue>>, String> {
    let mut out = Vec::new();
    for b in rows.batches.iter() {
        let col = b
            .column_by_name(name)
            .ok_or_else(|| format!("no column {name}"))?;
        out.extend((0..col.len()).map(|i| x_value(col.as_ref(), i)));
    }
    Ok(out)
}

/// The texts of a column's values as Athena prints them (NULL → empty).
pub fn column_texts(col: &datafusion::arrow::array::ArrayRef) -> Vec<String> {
    match lakehose_query::values::column_text(col) {
        Ok(texts) => texts.into_iter().map(Option::unwrap_or_default).collect(),
        Err(_) => vec![String::new(); col.len()],
    }
}

/// What a visual shows, ready to draw.
#[derive(Debug, Clone)]
pub enum VisualData {
    /// A chart.
    Chart(ChartData),
    /// A table page.
    Table(TablePage),
}

/// One page of a table visual.
#[derive(Debug, Clone)]
pub struct TablePage {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of cell texts.
    pub rows: Vec<Vec<String>>,
    /// The numeric value of each cell, for conditional colours.
    pub numbers: Vec<Vec<Option<f64>>>,
    /// This page (from 0).
    pub page: usize,
    /// Rows per page.
    pub page_size: usize,
    /// Rows in all.
    pub total: usize,
    /// Sorted by this column, descending or not.
    pub sort: Option<(String, bool)>,
}

/// A table visual's request: its page and sort.
#[derive(Debug, Clone, Default)]
pub struct TableRequest {
    /// The page (from 0).
    pub page: usize,
    /// Sort by this output column, descending or not.
    pub sort: Option<(String, bool)>,
}

/// The output names of a table's columns (`expr AS name`, or the
/// expression itself when it is a plain field).
pub fn column_names(v: &Visual) -> Vec<String> {
    v.columns
        .iter()
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            match lower.rfind(" as ") {
                Some(i) => c[i + 4..].trim().trim_matches('"').to_string(),
                None => c.trim().trim_matches('"').to_string(),
            }
        })
        .collect()
}

/// Runs a visual's query over its dataset's `rows`.
pub(crate) async fn visual(
    engine: &QueryEngine,
    d: &Dashboard,
    v: &Visual,
    rows: &Rows,
    sel: &Selection,
    links: &Links,
    table: &TableRequest,
) -> Result<VisualData> {
    let fail = |message: String| Error::Visual {
        dashboard: d.name.clone(),
        visual: v.id.clone(),
        message,
    };
    let ctx = context_with(engine, d.database(), &[(DATASET_TABLE, rows)])?;
    let unit_of = v
        .unit
        .as_deref()
        .and_then(Unit::from_name)
        .unwrap_or_default();
    let mut bound = Bound::default();
    let conds = conditions(d, &rows.schema, sel, &mut bound, 0);
    let from = format!("{DATASET_TABLE}{}", where_sql(&conds));
    let limit = v.limit.unwrap_or(MAX_GROUPS).min(MAX_GROUPS);
    use crate::spec::Shape as K;
    match v.kind.shape() {
        K::Single => {
            let y = v.y.as_deref().unwrap_or_default();
            bound.sql = format!("SELECT CAST(({y}) AS DOUBLE) AS y FROM {from}");
            let now = run(engine, &ctx, bound)
                .await
                .map_err(|e| fail(e.message))?;
            let value = numbers(&now, "y")
                .map_err(fail)?
                .into_iter()
                .next()
                .flatten();
            let previous = match (v.compare, time_span(d, sel)) {
                (true, Some(_)) => {
                    let mut prev = Bound::default();
                    let conds = conditions(d, &rows.schema, sel, &mut prev, 1);
                    prev.sql = format!(
                        "SELECT CAST(({y}) AS DOUBLE) AS y FROM {DATASET_TABLE}{}",
                        where_sql(&conds)
                    );
                    let rows = run(engine, &ctx, prev).await.map_err(|e| fail(e.message))?;
                    numbers(&rows, "y")
                        .map_err(fail)?
                        .into_iter()
                        .next()
                        .flatten()
                }
                _ => None,
            };
            Ok(VisualData::Chart(ChartData::Kpi {
                value,
                previous,
                higher_is_better: v.higher_is_better,
                unit: unit_of,
            }))
        }
        K::Grouped => {
            let x = quoted(v.x.as_deref().unwrap_or_default());
            let y = v.y.as_deref().unwrap_or_default();
            let (series_sel, group) = match &v.series {
                Some(s) => (format!(", CAST({} AS VARCHAR) AS s", quoted(s)), "1, 2"),
                None => (String::new(), "1"),
            };
            // Pies, and bars of one series with a limit, show the largest.
            use VisualKind as V;
            let order = match v.kind {
                V::Pie | V::Donut => "y DESC".to_string(),
                V::Bar | V::HorizontalBar if v.limit.is_some() && v.series.is_none() => {
                    "y DESC".to_string()
                }
                _ => group.to_string(),
            };
            bound.sql = format!(
                "SELECT {x} AS x{series_sel}, CAST(({y}) AS DOUBLE) AS y FROM {from} GROUP BY {group} ORDER BY {order} LIMIT {limit}"
            );
            let out = run(engine, &ctx, bound)
                .await
                .map_err(|e| fail(e.message))?;
            let xv = xs(&out, "x").map_err(fail)?;
            let yv = numbers(&out, "y").map_err(fail)?;
            let sv: Vec<Option<String>> = if v.series.is_some() {
                xs(&out, "s")
                    .map_err(fail)?
                    .into_iter()
                    .map(|s| s.map(|x| x_text(&x)))
                    .collect()
            } else {
                vec![None; xv.len()]
            };
            Ok(VisualData::Chart(shape(d, v, links, unit_of, xv, sv, yv)))
        }
        K::Binned => {
            let x = quoted(v.x.as_deref().unwrap_or_default());
            let cond = if conds.is_empty() { " WHERE " } else { " AND " };
            bound.sql = format!(
                "SELECT CAST({x} AS DOUBLE) AS v FROM {from}{cond}{x} IS NOT NULL LIMIT {MAX_POINTS}"
            );
            let out = run(engine, &ctx, bound)
                .await
                .map_err(|e| fail(e.message))?;
            let values: Vec<f64> = numbers(&out, "v")
                .map_err(fail)?
                .into_iter()
                .flatten()
                .collect();
            let bins = chart::histogram_bins(&values, v.bins.unwrap_or(20));
            Ok(VisualData::Chart(ChartData::Histogram {
                bins,
                unit: unit_of,
            }))
        }
        K::Points => {
            let x = v.x.as_deref().unwrap_or_default();
            let y = v.y.as_deref().unwrap_or_default();
            let series_sel = v
                .series
                .as_ref()
                .map(|s| format!(", CAST({} AS VARCHAR) AS s", quoted(s)))
                .unwrap_or_default();
            let mut groups: Vec<String> = v.group_by.iter().map(|g| quoted(g)).collect();
            if let Some(s) = &v.series {
                groups.push(quoted(s));
            }
            let group_by = if groups.is_empty() {
                String::new()
            } else {
                format!(" GROUP BY {}", groups.join(", "))
            };
            bound.sql = format!(
                "SELECT CAST(({x}) AS DOUBLE) AS x, CAST(({y}) AS DOUBLE) AS y{series_sel} FROM {from}{group_by} LIMIT {MAX_POINTS}"
            );
            let out = run(engine, &ctx, bound)
                .await
                .map_err(|e| fail(e.message))?;
            let xv = numbers(&out, "x").map_err(fail)?;
            let yv = numbers(&out, "y").map_err(fail)?;
            let sv: Vec<String> = if v.series.is_some() {
                xs(&out, "s")
                    .map_err(fail)?
                    .into_iter()
                    .map(|s| s.map(|x| x_text(&x)).unwrap_or_default())
                    .collect()
            } else {
                vec![String::new(); xv.len()]
            };
            let mut series: Vec<chart::ScatterSeries> = Vec::new();
            for ((x, y), s) in xv.into_iter().zip(yv).zip(sv) {
                let (Some(x), Some(y)) = (x, y) else { continue };
                let at = match series.iter().position(|e| e.name == s) {
                    Some(i) => i,
                    None => {
                        series.push(chart::ScatterSeries {
                            name: s,
                            points: Vec::new(),
                        });
                        series.len() - 1
                    }
                };
                series[at].points.push(chart::XY { x, y, link: None });
            }
            Ok(VisualData::Chart(ChartData::Scatter {
                series,
                x_unit: Unit::Number,
                y_unit: unit_of,
            }))
        }
        K::Rows => {
            let names = column_names(v);
            let columns = v.columns.join(", ");
            let group_by = if v.group_by.is_empty() {
                String::new()
            } else {
                format!(
                    " GROUP BY {}",
                    v.group_by
                        .iter()
                        .map(|g| quoted(g))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let inner = format!("SELECT {columns} FROM {from}{group_by}");
            // The sort column must be one of the table's own columns.
            let sort = table
                .sort
                .clone()
                .filter(|(c, _)| names.contains(c))
                .or_else(|| {
                    v.sort.as_ref().and_then(|s| {
                        let mut parts = s.split_whitespace();
                        let c = parts.next()?.trim_matches('"').to_string();
                        let desc = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
                        names.contains(&c).then_some((c, desc))
                    })
                });
            let order = match &sort {
                Some((c, desc)) => format!(
                    " ORDER BY {} {} NULLS LAST",
                    quoted(c),
                    if *desc { "DESC" } else { "ASC" }
                ),
                None => String::new(),
            };
            let page_size = v.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
            let page = table.page.min(1_000_000);
            let count = Bound {
                sql: format!("SELECT count(*) AS n FROM ({inner}) AS lh_t"),
                values: bound.values.clone(),
            };
            bound.sql = format!(
                "SELECT * FROM ({inner}) AS lh_t{order} LIMIT {page_size} OFFSET {}",
                page * page_size
            );
            let total = run(engine, &ctx, count)
                .await
                .map_err(|e| fail(e.message))?;
            let total = numbers(&total, "n")
                .map_err(fail)?
                .into_iter()
                .next()
                .flatten()
                .unwrap_or(0.0) as usize;
            let out = run(engine, &ctx, bound)
                .await
                .map_err(|e| fail(e.message))?;
            let mut cells = Vec::new();
            let mut nums = Vec::new();
            for b in out.batches.iter() {
                let texts: Vec<Vec<String>> = b.columns().iter().map(column_texts).collect();
                for i in 0..b.num_rows() {
                    cells.push(texts.iter().map(|c| c[i].clone()).collect());
                    nums.push(
                        b.columns()
                            .iter()
                            .map(|c| {
                                if c.data_type().is_numeric() && !c.is_null(i) {
                                    cast(&c.slice(i, 1), &DataType::Float64)
                                        .ok()
                                        .map(|a| a.as_primitive::<Float64Type>().value(0))
                                } else {
                                    None
                                }
                            })
                            .collect(),
                    );
                }
            }
            let columns = out
                .schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            Ok(VisualData::Table(TablePage {
                columns,
                rows: cells,
                numbers: nums,
                page,
                page_size,
                total,
                sort,
            }))
        }
    }
}

/// Groups query results into the chart of a visual kind.
fn shape(
    d: &Dashboard,
    v: &Visual,
    links: &Links,
    unit: Unit,
    xv: Vec<Option<XValue>>,
    sv: Vec<Option<String>>,
    yv: Vec<Option<f64>>,
) -> ChartData {
    use VisualKind as K;
    let mut series: Vec<Series> = Vec::new();
    for ((x, s), y) in xv.into_iter().zip(sv).zip(yv) {
        let (Some(x), Some(y)) = (x, y) else { continue };
        let name = s.clone().unwrap_or_default();
        let at = match series.iter().position(|e| e.name == name) {
            Some(i) => i,
            None => {
                series.push(Series {
                    name: name.clone(),
                    points: Vec::new(),
                });
                series.len() - 1
            }
        };
        let link = link(d, v, links, &x, s.as_deref());
        series[at].points.push(Point { x, y, link });
    }
    match v.kind {
        K::Pie | K::Donut => ChartData::Pie {
            slices: series
                .into_iter()
                .flat_map(|s| s.points)
                .map(|p| chart::Slice {
                    label: x_text(&p.x),
                    value: p.y.max(0.0),
                    link: p.link,
                })
                .collect(),
            donut: v.kind == K::Donut,
            unit,
        },
        K::HeatMap => {
            let mut xs_: Vec<String> = Vec::new();
            let mut ys: Vec<String> = Vec::new();
            let mut cells = Vec::new();
            for s in series {
                let yi = ys.len();
                ys.push(s.name.clone());
                for p in s.points {
                    let label = x_label(&p.x);
                    let xi = match xs_.iter().position(|e| *e == label) {
                        Some(i) => i,
                        None => {
                            xs_.push(label);
                            xs_.len() - 1
                        }
                    };
                    cells.push(chart::Cell {
                        x: xi,
                        y: yi,
                        value: p.y,
                        link: p.link,
                    });
                }
            }
            ChartData::HeatMap {
                x: xs_,
                y: ys,
                cells,
                unit,
            }
        }
        K::Bar | K::StackedBar | K::HorizontalBar => ChartData::Bar {
            series,
            stacked: v.kind == K::StackedBar,
            horizontal: v.kind == K::HorizontalBar,
            unit,
        },
        _ => ChartData::Line {
            series,
            area: v.kind == K::Area,
            stacked: false,
            unit,
        },
    }
}

/// The dataset rows behind one mark of a visual (drill-down): its
/// dataset's rows under the selection where x (and the series) equal the
/// mark's.
pub(crate) async fn drill_rows(
    engine: &QueryEngine,
    d: &Dashboard,
    v: &Visual,
    rows: &Rows,
    sel: &Selection,
    x: Option<&str>,
    series: Option<&str>,
) -> Result<Rows> {
    let fail = |message: String| Error::Visual {
        dashboard: d.name.clone(),
        visual: v.id.clone(),
        message,
    };
    let ctx = context_with(engine, d.database(), &[(DATASET_TABLE, rows)])?;
    let mut bound = Bound::default();
    let mut conds = conditions(d, &rows.schema, sel, &mut bound, 0);
    if let (Some(text), Some(field)) = (x, v.x.as_deref()) {
        let f = rows
            .schema
            .field_with_name(field)
            .map_err(|_| fail(format!("no field {field}")))?;
        let q = quoted(field);
        match f.data_type() {
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
                let us = parse_time(text).map_err(|m| input("lh_x", m))?;
                let p = bound.bind(ScalarValue::TimestampMicrosecond(Some(us), None));
                conds.push(format!("CAST({q} AS TIMESTAMP) = {p}"));
            }
            t if t.is_numeric() => {
                let n: f64 = text
                    .parse()
                    .map_err(|_| input("lh_x", format!("{text:?} is not a number")))?;
                let p = bound.bind(ScalarValue::Float64(Some(n)));
                conds.push(format!("CAST({q} AS DOUBLE) = {p}"));
            }
            _ => {
                let p = bound.bind(ScalarValue::Utf8(Some(text.to_string())));
                conds.push(format!("CAST({q} AS VARCHAR) = {p}"));
            }
        }
    }
    if let (Some(text), Some(field)) = (series, v.series.as_deref()) {
        let p = bound.bind(ScalarValue::Utf8(Some(text.to_string())));
        conds.push(format!("CAST({} AS VARCHAR) = {p}", quoted(field)));
    }
    bound.sql = format!(
        "SELECT * FROM {DATASET_TABLE}{} LIMIT {DRILL_ROWS}",
        where_sql(&conds)
    );
    run(engine, &ctx, bound).await.map_err(|e| fail(e.message))
}

/// The distinct values of `field` in `rows` (a dropdown's choices), at
/// most `max`, sorted.
pub(crate) fn distinct(rows: &Rows, field: &str, max: usize) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    for b in rows.batches.iter() {
        let Some(col) = b.column_by_name(field) else {
            return Vec::new();
        };
        for (i, text) in column_texts(col).into_iter().enumerate() {
            if !col.is_null(i) {
                seen.insert(text);
                if seen.len() >= max {
                    return seen.into_iter().collect();
                }
            }
        }
    }
    seen.into_iter().collect()
}
