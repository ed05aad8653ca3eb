//! HTML pages: the index of dashboards with their freshness, a
//! dashboard's page (filter controls, each visual as inline SVG or a table,
//! each dataset's last refresh), the rows behind a mark, and CSV of each.
//! Pages load only lakehose's own script and style sheet (no request
//! leaves the server); every text from data or a request is escaped.

use std::collections::BTreeMap;

use crate::cache::Freshness;
use crate::chart::{self, ChartData, RenderOptions};
use crate::data::{FilterValue, Rows, Selection, TablePage, VisualData, x_text};
use crate::service::{Summary, csv_cell, to_csv};
use crate::spec::{Control, Dashboard, Visual, VisualKind};

/// The page script, served at `/dashboards/static/lakehose.js`.
pub const SCRIPT: &str = include_str!("static/lakehose.js");
/// The style sheet, served at `/dashboards/static/lakehose.css`.
pub const STYLE: &str = include_str!("static/lakehose.css");

/// Escapes text for HTML (element content and quoted attributes).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a page's links point: `/dashboards` on a server, `.` for files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The dashboards' base (`/dashboards`).
    pub base: String,
    /// The static files' base (`/dashboards/static`).
    pub assets: String,
    /// Whether links are to a running server (refresh buttons, CSV links,
    /// filters) or to rendered files.
    pub live: bool,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            base: "/dashboards".into(),
            assets: "/dashboards/static".into(),
            live: true,
        }
    }
}

fn head(title: &str, paths: &Paths) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · lakehose</title><link rel=\"stylesheet\" href=\"{}/lakehose.css\"><script src=\"{}/lakehose.js\" defer></script></head><body>",
        esc(title),
        esc(&paths.assets),
        esc(&paths.assets)
    )
}

const THEME_TOGGLE: &str =
    "<button type=\"button\" class=\"lh-theme\" data-lh-theme title=\"Light or dark\">◐</button>";

/// How long ago, in words.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn freshness_text(f: &Freshness, now_ms: i64) -> String {
    match f.refreshed_ms {
        Some(t) => format!("{} · {} rows", ago(t, now_ms), f.rows),
        None => "not refreshed yet".into(),
    }
}

/// The index: every dashboard, its freshness or its error.
pub fn index(summaries: &[Summary], paths: &Paths, now_ms: i64) -> String {
    let mut html = head("Dashboards", paths);
    html.push_str(&format!("<header class=\"lh-head\"><h1>Dashboards</h1>{THEME_TOGGLE}</header><main><ul class=\"lh-index\">"));
    for s in summaries {
        let href = if paths.live {
            format!("{}/{}", paths.base, s.name)
        } else {
            format!("{}.html", s.name)
        };
        html.push_str(&format!(
            "<li><a href=\"{}\">{}</a>",
            esc(&href),
            esc(&s.title)
        ));
        match &s.error {
            Some(e) => html.push_str(&format!("<p class=\"lh-error\">{}</p>", esc(e))),
            None => {
                let parts: Vec<String> = s
                    .datasets
                    .iter()
                    .map(|(name, f)| {
                        let mut t = format!("{}: {}", esc(name), esc(&freshness_text(f, now_ms)));
                        if let Some(e) = &f.error {
                            t.push_str(&format!(" <span class=\"lh-error\">({})</span>", esc(e)));
                        }
                        t
                    })
                    .collect();
                if !parts.is_empty() {
                    html.push_str(&format!("<p class=\"lh-fresh\">{}</p>", parts.join(" · ")));
                }
            }
        }
        html.push_str("</li>");
    }
    if summaries.is_empty() {
        html.push_str(
            "<li>No dashboards: put TOML files in the dashboards folder (--dashboards).</li>",
        );
    }
    html.push_str("</ul></main></body></html>");
    html
}

/// One visual as drawn on a page.
#[derive(Debug)]
pub struct Drawn<'a> {
    /// The visual.
    pub visual: &'a Visual,
    /// Its data, or why there is none.
    pub data: Result<VisualData, String>,
}

/// A dashboard's page. `choices` are the dropdowns' values; with
/// `partial`, only the part filters redraw.
#[allow(clippy::too_many_arguments)]
pub fn dashboard(
    d: &Dashboard,
    sel: &Selection,
    drawn: &[Drawn<'_>],
    freshness: &[(String, Freshness)],
    choices: &BTreeMap<String, Vec<String>>,
    paths: &Paths,
    partial: bool,
) -> String {
    let here = format!("{}/{}", paths.base, d.name);
    let query = selection_query(sel);
    let mut main = String::new();
    main.push_str("<section class=\"lh-visuals\">");
    for item in drawn {
        let v = item.visual;
        let wide = if v.width == Some(2) || v.kind == VisualKind::Table {
            " lh-wide"
        } else {
            ""
        };
        main.push_str(&format!(
            "<article class=\"lh-card{wide}\" id=\"v-{}\" data-visual=\"{}\"><header><h2>{}</h2>",
            esc(&v.id),
            esc(&v.id),
            esc(&v.title)
        ));
        if paths.live {
            let q = if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            };
            main.push_str(&format!(
                "<nav class=\"lh-actions\"><a href=\"{here}/visuals/{id}.csv{q}\" download=\"{id}.csv\">CSV</a><a href=\"{here}/visuals/{id}.svg{q}\" download=\"{id}.svg\">SVG</a><a href=\"#\" data-lh-png=\"{id}\">PNG</a></nav>",
                here = esc(&here),
                id = esc(&v.id),
                q = esc(&q)
            ));
        }
        main.push_str("</header><figure>");
        match &item.data {
            Ok(VisualData::Chart(c)) => main.push_str(&chart::render(c, &options(v))),
            Ok(VisualData::Table(t)) => main.push_str(&table(v, t, &here, &query, paths.live)),
            Err(e) => main.push_str(&format!("<p class=\"lh-error\">{}</p>", esc(e))),
        }
        main.push_str("</figure></article>");
    }
    main.push_str("</section>");
    main.push_str("<footer class=\"lh-datasets\"><h2>Datasets</h2><table><thead><tr><th>dataset</th><th>refreshed</th><th>rows</th><th>last error</th><th></th></tr></thead><tbody>");
    let now = sel.now_ms;
    for (name, f) in freshness {
        let refreshed = f
            .refreshed_ms
            .map(|t| ago(t, now))
            .unwrap_or_else(|| "never".into());
        main.push_str(&format!(
            "<tr data-dataset=\"{n}\"><td>{n}</td><td class=\"lh-refreshed\">{}</td><td class=\"lh-rows\">{}</td><td class=\"lh-error\">{}</td><td>",
            esc(&refreshed),
            f.rows,
            esc(f.error.as_deref().unwrap_or("")),
            n = esc(name)
        ));
        if paths.live {
            main.push_str(&format!(
                "<form method=\"post\" action=\"{}/refresh\"><input type=\"hidden\" name=\"dataset\" value=\"{}\"><button>Refresh</button></form>",
                esc(&here),
                esc(name)
            ));
        }
        main.push_str("</td></tr>");
    }
    main.push_str("</tbody></table></footer>");
    if partial {
        return main;
    }
    let mut html = head(&d.spec.title, paths);
    html.push_str(&format!(
        "<header class=\"lh-head\"><a class=\"lh-home\" href=\"{}\">Dashboards</a><h1>{}</h1>{THEME_TOGGLE}",
        esc(if paths.live { &paths.base } else { "index.html" }),
        esc(&d.spec.title)
    ));
    if let Some(desc) = &d.spec.description {
        html.push_str(&format!("<p>{}</p>", esc(desc)));
    }
    html.push_str("</header>");
    if paths.live {
        html.push_str(&controls(d, sel, choices, &here));
    }
    html.push_str(&format!(
        "<main id=\"lh-main\">{main}</main><div id=\"lh-tip\" hidden></div></body></html>"
    ));
    html
}

/// The size visuals are drawn at.
pub fn options(v: &Visual) -> RenderOptions {
    let (width, height) = match v.kind {
        VisualKind::Kpi => (480, 150),
        _ if v.width == Some(2) => (1100, 320),
        _ => (640, 320),
    };
    RenderOptions {
        width,
        height,
        title: v.title.clone(),
    }
}

/// The selection as a URL query (what the request set, not defaults).
pub fn selection_query(sel: &Selection) -> String {
    crate::data::encode_query(sel.raw.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn controls(
    d: &Dashboard,
    sel: &Selection,
    choices: &BTreeMap<String, Vec<String>>,
    here: &str,
) -> String {
    if d.spec.filters.is_empty() && d.spec.parameters.is_empty() {
        return String::new();
    }
    let mut html = format!(
        "<form class=\"lh-filters\" id=\"lh-filters\" method=\"get\" action=\"{}\">",
        esc(here)
    );
    for f in &d.spec.filters {
        let label = esc(f.label.as_deref().unwrap_or(&f.name));
        let name = esc(&f.name);
        let current = sel
            .raw
            .get(&f.name)
            .cloned()
            .or_else(|| f.default.clone())
            .unwrap_or_default();
        html.push_str(&format!("<label>{label} "));
        match f.control {
            Control::Dropdown => {
                html.push_str(&format!(
                    "<select name=\"{name}\"><option value=\"\">All</option>"
                ));
                for c in choices.get(&f.name).into_iter().flatten() {
                    let selected = if *c == current { " selected" } else { "" };
                    html.push_str(&format!("<option{selected}>{}</option>", esc(c)));
                }
                html.push_str("</select>");
            }
            Control::Text => html.push_str(&format!(
                "<input type=\"search\" name=\"{name}\" value=\"{}\" maxlength=\"{}\">",
                esc(&current),
                crate::data::MAX_VALUE_CHARS
            )),
            Control::Range => html.push_str(&format!(
                "<input name=\"{name}\" value=\"{}\" placeholder=\"min..max\" maxlength=\"64\">",
                esc(&current)
            )),
            Control::TimeRange => {
                html.push_str(&format!("<select name=\"{name}\">"));
                let presets: Vec<String> = if f.presets.is_empty() {
                    ["1h", "24h", "7d", "30d", "all"].map(String::from).to_vec()
                } else {
                    f.presets.clone()
                };
                for p in presets {
                    let selected = if p == current { " selected" } else { "" };
                    html.push_str(&format!("<option{selected}>{}</option>", esc(&p)));
                }
                html.push_str("</select>");
            }
        }
        html.push_str("</label>");
    }
    for p in &d.spec.parameters {
        let current = sel
            .raw
            .get(&p.name)
            .cloned()
            .unwrap_or_else(|| match &p.default {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => String::new(),
            });
        html.push_str(&format!(
            "<label>{} <input name=\"{}\" value=\"{}\" maxlength=\"{}\"></label>",
            esc(p.label.as_deref().unwrap_or(&p.name)),
            esc(&p.name),
            esc(&current),
            crate::data::MAX_VALUE_CHARS
        ));
    }
    html.push_str("<button type=\"submit\">Apply</button></form>");
    html
}

fn table(v: &Visual, t: &TablePage, here: &str, query: &str, live: bool) -> String {
    let mut html = String::from("<div class=\"lh-table\"><table><thead><tr>");
    for c in &t.columns {
        let (arrow, next_desc) = match &t.sort {
            Some((s, desc)) if s == c => (if *desc { " ▼" } else { " ▲" }, !desc),
            _ => ("", true),
        };
        if live {
            let q = format!(
                "{}{}{}",
                query,
                if query.is_empty() { "" } else { "&" },
                crate::data::encode_query([
                    (format!("sort_{}", v.id).as_str(), c.as_str()),
                    (
                        format!("dir_{}", v.id).as_str(),
                        if next_desc { "desc" } else { "asc" }
                    ),
                ])
            );
            html.push_str(&format!(
                "<th><a href=\"{}?{}#v-{}\">{}{arrow}</a></th>",
                esc(here),
                esc(&q),
                esc(&v.id),
                esc(c)
            ));
        } else {
            html.push_str(&format!("<th>{}{arrow}</th>", esc(c)));
        }
    }
    html.push_str("</tr></thead><tbody>");
    for (row, nums) in t.rows.iter().zip(&t.numbers) {
        html.push_str("<tr>");
        for ((cell, n), name) in row.iter().zip(nums).zip(&t.columns) {
            let class = v
                .colors
                .iter()
                .filter(|c| &c.column == name)
                .find(|c| {
                    n.is_some_and(|n| {
                        c.above.is_none_or(|a| n > a) && c.below.is_none_or(|b| n < b)
                    })
                })
                .map(|c| format!(" class=\"lh-{}\"", c.style))
                .unwrap_or_default();
            html.push_str(&format!("<td{class}>{}</td>", esc(cell)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    let pages = t.total.div_ceil(t.page_size.max(1)).max(1);
    html.push_str(&format!(
        "<p class=\"lh-pager\">{} rows · page {} of {pages}",
        t.total,
        t.page + 1
    ));
    if live {
        let sort: Vec<(String, String)> = t
            .sort
            .iter()
            .map(|(c, d)| (c.clone(), if *d { "desc".into() } else { "asc".into() }))
            .collect();
        let link = |page: usize| {
            let mut pairs = vec![(format!("page_{}", v.id), page.to_string())];
            for (c, d) in &sort {
                pairs.push((format!("sort_{}", v.id), c.clone()));
                pairs.push((format!("dir_{}", v.id), d.clone()));
            }
            let extra =
                crate::data::encode_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            format!(
                "{}?{}{}{extra}#v-{}",
                here,
                query,
                if query.is_empty() { "" } else { "&" },
                v.id
            )
        };
        if t.page > 0 {
            html.push_str(&format!(
                " <a href=\"{}\" rel=\"prev\">previous</a>",
                esc(&link(t.page - 1))
            ));
        }
        if t.page + 1 < pages {
            html.push_str(&format!(
                " <a href=\"{}\" rel=\"next\">next</a>",
                esc(&link(t.page + 1))
            ));
        }
    }
    html.push_str("</p></div>");
    html
}

/// The rows behind a mark (drill-down).
pub fn rows_page(
    d: &Dashboard,
    v: &Visual,
    rows: &Rows,
    what: &str,
    back: &str,
    csv: &str,
    paths: &Paths,
) -> String {
    let mut html = head(&format!("{} · {}", d.spec.title, v.title), paths);
    html.push_str(&format!(
        "<header class=\"lh-head\"><a class=\"lh-home\" href=\"{}\">{}</a><h1>{}</h1>{THEME_TOGGLE}<p>{}</p></header><main><p><a href=\"{}\" download=\"rows.csv\">CSV</a> · {} rows (at most {})</p><div class=\"lh-table\"><table class=\"lh-rows\"><thead><tr>",
        esc(back),
        esc(&d.spec.title),
        esc(&v.title),
        esc(what),
        esc(csv),
        rows.len(),
        crate::data::DRILL_ROWS
    ));
    for f in rows.schema.fields() {
        html.push_str(&format!("<th>{}</th>", esc(f.name())));
    }
    html.push_str("</tr></thead><tbody>");
    for b in rows.batches.iter() {
        let texts: Vec<Vec<String>> = b.columns().iter().map(crate::data::column_texts).collect();
        for i in 0..b.num_rows() {
            html.push_str("<tr>");
            for c in &texts {
                html.push_str(&format!("<td>{}</td>", esc(&c[i])));
            }
            html.push_str("</tr>");
        }
    }
    html.push_str("</tbody></table></div></main></body></html>");
    html
}

/// A visual's data as CSV.
pub fn visual_csv(data: &VisualData) -> String {
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    };
    match data {
        VisualData::Table(t) => {
            line(t.columns.clone());
            for r in &t.rows {
                line(r.clone());
            }
        }
        VisualData::Chart(c) => match c {
            ChartData::Line { series, .. } | ChartData::Bar { series, .. } => {
                line(vec!["series".into(), "x".into(), "y".into()]);
                for s in series {
                    for p in &s.points {
                        line(vec![s.name.clone(), x_text(&p.x), p.y.to_string()]);
                    }
                }
            }
            ChartData::Pie { slices, .. } => {
                line(vec!["label".into(), "value".into()]);
                for s in slices {
                    line(vec![s.label.clone(), s.value.to_string()]);
                }
            }
            ChartData::HeatMap { x, y, cells, .. } => {
                line(vec!["x".into(), "y".into(), "value".into()]);
                for c in cells {
                    line(vec![
                        x.get(c.x).cloned().unwrap_or_default(),
                        y.get(c.y).cloned().unwrap_or_default(),
                        c.value.to_string(),
                    ]);
                }
            }
            ChartData::Histogram { bins, .. } => {
                line(vec!["from".into(), "to".into(), "count".into()]);
                for b in bins {
                    line(vec![
                        b.lo.to_string(),
                        b.hi.to_string(),
                        b.count.to_string(),
                    ]);
                }
            }
            ChartData::Scatter { series, .. } => {
                line(vec!["series".into(), "x".into(), "y".into()]);
                for s in series {
                    for p in &s.points {
                        line(vec![s.name.clone(), p.x.to_string(), p.y.to_string()]);
                    }
                }
            }
            ChartData::Kpi {
                value, previous, ..
            } => {
                line(vec!["value".into(), "previous".into()]);
                let t = |v: &Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
                line(vec![t(value), t(previous)]);
            }
        },
    }
    out
}

/// The rows of a drill-down as CSV.
pub fn rows_csv(rows: &Rows) -> String {
    to_csv(rows)
}

/// What a drill-down shows, in words.
pub fn drill_what(v: &Visual, x: Option<&str>, series: Option<&str>, sel: &Selection) -> String {
    let mut parts = Vec::new();
    if let (Some(f), Some(x)) = (&v.x, x) {
        parts.push(format!("{f} = {x}"));
    }
    if let (Some(f), Some(s)) = (&v.series, series) {
        parts.push(format!("{f} = {s}"));
    }
    for (name, value) in &sel.filters {
        let text = match value {
            FilterValue::Equals(v) => format!("{name} = {v}"),
            FilterValue::Contains(v) => format!("{name} contains {v}"),
            FilterValue::Range { min, max } => format!(
                "{name} in {}..{}",
                min.map(|m| m.to_string()).unwrap_or_default(),
                max.map(|m| m.to_string()).unwrap_or_default()
            ),
            FilterValue::Since(Some(s)) => format!("{name}: last {} h", s.as_secs() / 3600),
            FilterValue::Since(None) => continue,
        };
        parts.push(text);
    }
    if parts.is_empty() {
        "all rows".into()
    } else {
        parts.join(", ")
    }
}

/// The sign-in page for viewers (access key id and secret).
pub fn login(error: Option<&str>, next: &str, paths: &Paths) -> String {
    let mut html = head("Sign in", paths);
    html.push_str(
        "<header class=\"lh-head\"><h1>Sign in to lakehose dashboards</h1></header><main>",
    );
    if let Some(e) = error {
        html.push_str(&format!("<p class=\"lh-error\">{}</p>", esc(e)));
    }
    html.push_str(&format!(
        "<form class=\"lh-login\" method=\"post\" action=\"{}/login\"><input type=\"hidden\" name=\"next\" value=\"{}\"><label>Access key id <input name=\"access_key_id\" autocomplete=\"username\" required maxlength=\"128\"></label><label>Secret access key <input name=\"secret\" type=\"password\" autocomplete=\"current-password\" required maxlength=\"256\"></label><button>Sign in</button></form></main></body></html>",
        esc(&paths.base),
        esc(next)
    ));
    html
}
