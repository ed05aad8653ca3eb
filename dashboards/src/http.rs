//! The dashboards' routes under `/dashboards/`: the index, each
//! dashboard's page (and its main part alone, for filter changes), each
//! visual as SVG and CSV, the rows behind a mark, refresh, and the page's
//! script and style sheet. The viewer comes from the request's extensions
//! ([`Viewer`], set by the server's authentication); without one every
//! row is shown (a server without keys).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::data::{Links, Selection, TableRequest, VisualData};
use crate::error::Error;
use crate::page::{self, Drawn, Paths};
use crate::service::{Dashboards, Viewer};
use crate::spec::Control;

/// Query parameters a page takes (filters, parameters, table paging), at
/// most.
const MAX_QUERY_PAIRS: usize = 128;

/// The routes, to be nested at `/dashboards`.
pub fn router(dashboards: Dashboards) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/static/{file}", get(asset))
        .route("/{name}", get(show))
        .route("/{name}/refresh", post(refresh))
        .route("/{name}/visuals/{file}", get(visual_file))
        .route("/{name}/rows/{file}", get(rows))
        .with_state(dashboards)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Input { .. } => StatusCode::BAD_REQUEST,
            Error::Spec { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!(error = %self, "Dashboard request failed");
        }
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>lakehose</title><link rel=\"stylesheet\" href=\"/dashboards/static/lakehose.css\"></head><body><main><p class=\"lh-error\">{}</p><p><a href=\"/dashboards/\">Dashboards</a></p></main></body></html>",
            page::esc(&self.to_string())
        );
        (status, html_headers(), body).into_response()
    }
}

fn html_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'self'; form-action 'self'",
            ),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

fn limited(query: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, Error> {
    if query.len() > MAX_QUERY_PAIRS {
        return Err(Error::Input {
            name: "query".into(),
            message: format!("more than {MAX_QUERY_PAIRS} parameters"),
        });
    }
    Ok(query)
}

async fn index(State(d): State<Dashboards>) -> Response {
    let html = page::index(&d.list().await, &Paths::default(), now_ms());
    (html_headers(), html).into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "lakehose.js" => (page::SCRIPT, "text/javascript; charset=utf-8"),
        "lakehose.css" => (page::STYLE, "text/css; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A table visual's page and sort from the query (`page_ID`, `sort_ID`,
/// `dir_ID`).
fn table_request(id: &str, query: &BTreeMap<String, String>) -> TableRequest {
    TableRequest {
        page: query
            .get(&format!("page_{id}"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        sort: query.get(&format!("sort_{id}")).map(|c| {
            (
                c.clone(),
                query.get(&format!("dir_{id}")).is_some_and(|d| d == "desc"),
            )
        }),
    }
}

/// Draws every visual of a dashboard.
pub async fn draw<'a>(
    dashboards: &Dashboards,
    d: &'a crate::Dashboard,
    sel: &Selection,
    viewer: Option<&Viewer>,
    query: &BTreeMap<String, String>,
    paths: &Paths,
) -> Vec<Drawn<'a>> {
    let links = Links {
        base: paths.live.then(|| format!("{}/{}", paths.base, d.name)),
        query: page::selection_query(sel),
    };
    let work = d.spec.visuals.iter().map(|v| {
        let links = links.clone();
        let table = table_request(&v.id, query);
        async move {
            let data = dashboards
                .visual(d, &v.id, sel, viewer, &links, &table)
                .await
                .map_err(|e| e.to_string());
            Drawn { visual: v, data }
        }
    });
    futures::future::join_all(work).await
}

async fn show(
    State(dashboards): State<Dashboards>,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    viewer: Option<Extension<Viewer>>,
) -> Result<Response, Error> {
    let query = limited(query)?;
    let d = dashboards.get(&name)?;
    let viewer = viewer.map(|Extension(v)| v);
    let sel = Selection::parse(&d, &query, now_ms())?;
    let paths = Paths::default();
    let drawn = draw(&dashboards, &d, &sel, viewer.as_ref(), &query, &paths).await;
    let mut choices = BTreeMap::new();
    for f in d
        .spec
        .filters
        .iter()
        .filter(|f| f.control == Control::Dropdown)
    {
        choices.insert(
            f.name.clone(),
            dashboards.choices(&d, &f.field, viewer.as_ref()).await,
        );
    }
    let partial = query.get("partial").is_some_and(|p| p == "1");
    let html = page::dashboard(
        &d,
        &sel,
        &drawn,
        &dashboards.freshness(&d).await,
        &choices,
        &paths,
        partial,
    );
    Ok((html_headers(), html).into_response())
}

async fn visual_file(
    State(dashboards): State<Dashboards>,
    Path((name, file)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    viewer: Option<Extension<Viewer>>,
) -> Result<Response, Error> {
    let query = limited(query)?;
    let (id, ext) = file
        .rsplit_once('.')
        .ok_or_else(|| Error::NotFound(format!("visual file {file}")))?;
    let d = dashboards.get(&name)?;
    let v = d
        .visual(id)
        .ok_or_else(|| Error::NotFound(format!("visual {id}")))?;
    let viewer = viewer.map(|Extension(v)| v);
    let sel = Selection::parse(&d, &query, now_ms())?;
    let links = Links {
        base: Some(format!("/dashboards/{}", d.name)),
        query: page::selection_query(&sel),
    };
    let data = dashboards
        .visual(
            &d,
            id,
            &sel,
            viewer.as_ref(),
            &links,
            &table_request(id, &query),
        )
        .await?;
    match ext {
        "svg" => {
            let svg = match &data {
                VisualData::Chart(c) => crate::chart::render(c, &page::options(v)),
                VisualData::Table(_) => {
                    return Err(Error::NotFound(format!(
                        "an SVG of table visual {id} (take its CSV)"
                    )));
                }
            };
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("image/svg+xml"),
                    ),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
                    ),
                ],
                svg,
            )
                .into_response())
        }
        "csv" => Ok(csv(page::visual_csv(&data), id)),
        _ => Err(Error::NotFound(format!("visual file {file}"))),
    }
}

fn csv(body: String, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

async fn rows(
    State(dashboards): State<Dashboards>,
    Path((name, file)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    viewer: Option<Extension<Viewer>>,
) -> Result<Response, Error> {
    let query = limited(query)?;
    let (id, as_csv) = match file.strip_suffix(".csv") {
        Some(id) => (id.to_string(), true),
        None => (file.clone(), false),
    };
    let d = dashboards.get(&name)?;
    let v = d
        .visual(&id)
        .ok_or_else(|| Error::NotFound(format!("visual {id}")))?;
    let viewer = viewer.map(|Extension(v)| v);
    let sel = Selection::parse(&d, &query, now_ms())?;
    let x = query.get("lh_x").map(String::as_str);
    let series = query.get("lh_s").map(String::as_str);
    let rows = dashboards
        .drill(&d, &id, &sel, viewer.as_ref(), x, series)
        .await?;
    if as_csv {
        return Ok(csv(page::rows_csv(&rows), &format!("{id}-rows")));
    }
    let q = crate::data::encode_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let back = format!("/dashboards/{}?{}", d.name, page::selection_query(&sel));
    let csv_link = format!("/dashboards/{}/rows/{id}.csv?{q}", d.name);
    let what = page::drill_what(v, x, series, &sel);
    let html = page::rows_page(&d, v, &rows, &what, &back, &csv_link, &Paths::default());
    Ok((html_headers(), html).into_response())
}

#[derive(serde::Deserialize)]
struct RefreshForm {
    dataset: String,
}

async fn refresh(
    State(dashboards): State<Dashboards>,
    Path(name): Path<String>,
    axum::Form(form): axum::Form<RefreshForm>,
) -> Result<Response, Error> {
    let d = dashboards.get(&name)?;
    if !d.spec.datasets.contains_key(&form.dataset) {
        return Err(Error::NotFound(format!("dataset {}", form.dataset)));
    }
    // The outcome shows on the page (its refresh time or error).
    let _ = dashboards.refresh(&d, &form.dataset, true).await;
    Ok(Redirect::to(&format!("/dashboards/{}", d.name)).into_response())
}
