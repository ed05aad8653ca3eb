//! QuickSight's REST shapes for reading what exists and refreshing a
//! dataset, on the server's port, so `aws quicksight list-dashboards
//! --endpoint-url ...` and boto3 work:
//!
//! - `ListDashboards` — `GET /accounts/{id}/dashboards`
//! - `DescribeDashboard` — `GET /accounts/{id}/dashboards/{DashboardId}`
//! - `ListDataSets` — `GET /accounts/{id}/data-sets`
//! - `DescribeDataSet` — `GET /accounts/{id}/data-sets/{DataSetId}`
//! - `CreateIngestion` — `PUT /accounts/{id}/data-sets/{DataSetId}/ingestions/{IngestionId}`
//! - `DescribeIngestion` — `GET` the same path
//!
//! A dashboard's id is its name; a dataset's id is `DASHBOARD.DATASET`.
//! Times are epoch seconds, as REST-JSON carries them. The account is
//! lakehose's one account, [`ACCOUNT`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::service::Dashboards;
use crate::spec::{CacheMode, Dashboard};

/// The account id in lakehose's ARNs.
pub const ACCOUNT: &str = "000000000000";
/// The region in its ARNs.
const REGION: &str = "us-east-1";
/// Ingestions remembered (the oldest are forgotten past it).
const MAX_INGESTIONS: usize = 1000;
/// Items per page of a listing at most (QuickSight's limit).
const MAX_RESULTS: usize = 100;

/// One ingestion (a refresh asked for through the API).
#[derive(Debug, Clone)]
struct Ingestion {
    dataset: String,
    id: String,
    status: &'static str,
    created_ms: i64,
    seconds: Option<i64>,
    rows: Option<usize>,
    bytes: Option<usize>,
    error: Option<String>,
    full: bool,
}

/// The API's state: the dashboards and the ingestions asked for.
#[derive(Clone)]
struct Api {
    dashboards: Dashboards,
    ingestions: Arc<Mutex<VecDeque<Ingestion>>>,
}

/// The routes, to be nested at `/accounts`.
pub fn router(dashboards: Dashboards) -> Router {
    Router::new()
        .route("/{account}/dashboards", get(list_dashboards))
        .route("/{account}/dashboards/{id}", get(describe_dashboard))
        .route("/{account}/data-sets", get(list_datasets))
        .route("/{account}/data-sets/{id}", get(describe_dataset))
        .route(
            "/{account}/data-sets/{id}/ingestions/{ingestion}",
            get(describe_ingestion).put(create_ingestion),
        )
        .with_state(Api {
            dashboards,
            ingestions: Arc::default(),
        })
}

fn request_id() -> String {
    format!("{:032x}", rand_id())
}

fn rand_id() -> u128 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_nanos() ^ (std::process::id() as u128) << 64
}

/// QuickSight's error: its type in `x-amzn-ErrorType` and the body.
#[derive(Debug)]
struct QsError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl IntoResponse for QsError {
    fn into_response(self) -> Response {
        (
            self.status,
            [
                ("x-amzn-errortype", self.kind.to_string()),
                ("content-type", "application/json".to_string()),
            ],
            json!({ "Message": self.message, "RequestId": request_id() }).to_string(),
        )
            .into_response()
    }
}

fn error(status: StatusCode, kind: &'static str, message: impl Into<String>) -> QsError {
    QsError {
        status,
        kind,
        message: message.into(),
    }
}

fn ok(body: Value) -> Response {
    let mut body = body;
    body["RequestId"] = json!(request_id());
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn check_account(account: &str) -> Result<(), QsError> {
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "AwsAccountId must be 12 digits",
        ));
    }
    if account != ACCOUNT {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "AccessDeniedException",
            format!("lakehose has one account, {ACCOUNT}"),
        ));
    }
    Ok(())
}

fn arn(kind: &str, id: &str) -> String {
    format!("arn:aws:quicksight:{REGION}:{ACCOUNT}:{kind}/{id}")
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A dashboard file's time (its modification) in ms, or now.
fn file_ms(d: &Dashboard) -> i64 {
    std::fs::metadata(&d.path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
}

/// Pages a sorted listing by `next-token` (the last id of the page before).
fn page<T>(
    items: Vec<(String, T)>,
    query: &BTreeMap<String, String>,
) -> Result<(Vec<T>, Option<String>), QsError> {
    let max = match query.get("max-results") {
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=MAX_RESULTS).contains(m))
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValueException",
                    format!("MaxResults must be 1 to {MAX_RESULTS}"),
                )
            })?,
        None => MAX_RESULTS,
    };
    let after = query.get("next-token");
    let mut rest: Vec<(String, T)> = items
        .into_iter()
        .filter(|(id, _)| after.is_none_or(|a| id > a))
        .collect();
    let next = (rest.len() > max).then(|| rest[max - 1].0.clone());
    rest.truncate(max);
    Ok((rest.into_iter().map(|(_, t)| t).collect(), next))
}

async fn list_dashboards(
    State(api): State<Api>,
    Path(account): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, QsError> {
    check_account(&account)?;
    let mut items = Vec::new();
    for name in api.dashboards.names() {
        let Ok(d) = api.dashboards.get(&name) else {
            continue;
        };
        let t = seconds(file_ms(&d));
        items.push((
            name.clone(),
            json!({
                "Arn": arn("dashboard", &name),
                "DashboardId": name,
                "Name": d.spec.title,
                "CreatedTime": t,
                "LastUpdatedTime": t,
                "LastPublishedTime": t,
                "PublishedVersionNumber": 1,
            }),
        ));
    }
    let (list, next) = page(items, &query)?;
    Ok(ok(
        json!({ "DashboardSummaryList": list, "NextToken": next }),
    ))
}

async fn describe_dashboard(
    State(api): State<Api>,
    Path((account, id)): Path<(String, String)>,
) -> Result<Response, QsError> {
    check_account(&account)?;
    let d = match api.dashboards.get(&id) {
        Ok(d) => d,
        Err(crate::Error::NotFound(_)) => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("Dashboard {id} not found"),
            ));
        }
        Err(e) => {
            return Err(error(
                StatusCode::CONFLICT,
                "InvalidParameterValueException",
                e.to_string(),
            ));
        }
    };
    let t = seconds(file_ms(&d));
    let datasets: Vec<String> = d
        .spec
        .datasets
        .keys()
        .map(|n| arn("dataset", &format!("{id}.{n}")))
        .collect();
    Ok(ok(json!({
        "Status": 200,
        "Dashboard": {
            "DashboardId": d.name,
            "Arn": arn("dashboard", &d.name),
            "Name": d.spec.title,
            "CreatedTime": t,
            "LastPublishedTime": t,
            "LastUpdatedTime": t,
            "Version": {
                "CreatedTime": t,
                "Errors": [],
                "VersionNumber": 1,
                "Status": "CREATION_SUCCESSFUL",
                "Arn": format!("{}/version/1", arn("dashboard", &d.name)),
                "DataSetArns": datasets,
                "Description": d.spec.description,
                "Sheets": [{
                    "SheetId": "main",
                    "Name": d.spec.title,
                }],
            },
        },
    })))
}

/// Every dataset of every loaded dashboard, by id.
fn datasets(api: &Api) -> Vec<(String, Arc<Dashboard>, String)> {
    let mut out = Vec::new();
    for name in api.dashboards.names() {
        if let Ok(d) = api.dashboards.get(&name) {
            for name in d.spec.datasets.keys() {
                out.push((format!("{}.{name}", d.name), Arc::clone(&d), name.clone()));
            }
        }
    }
    out
}

fn find_dataset(api: &Api, id: &str) -> Result<(Arc<Dashboard>, String), QsError> {
    datasets(api)
        .into_iter()
        .find(|(i, _, _)| i == id)
        .map(|(_, d, n)| (d, n))
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("DataSet {id} not found"),
            )
        })
}

fn import_mode(d: &Dashboard, name: &str) -> &'static str {
    match d.spec.datasets[name].cache {
        CacheMode::Spice => "SPICE",
        CacheMode::Direct => "DIRECT_QUERY",
    }
}

async fn list_datasets(
    State(api): State<Api>,
    Path(account): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, QsError> {
    check_account(&account)?;
    let items = datasets(&api)
        .into_iter()
        .map(|(id, d, name)| {
            let t = seconds(file_ms(&d));
            let v = json!({
                "Arn": arn("dataset", &id),
                "DataSetId": id,
                "Name": format!("{} · {name}", d.spec.title),
                "CreatedTime": t,
                "LastUpdatedTime": t,
                "ImportMode": import_mode(&d, &name),
                "RowLevelPermissionTagConfigurationApplied": false,
                "ColumnLevelPermissionRulesApplied": false,
            });
            (id, v)
        })
        .collect();
    let (list, next) = page(items, &query)?;
    Ok(ok(json!({ "DataSetSummaries": list, "NextToken": next })))
}

async fn describe_dataset(
    State(api): State<Api>,
    Path((account, id)): Path<(String, String)>,
) -> Result<Response, QsError> {
    check_account(&account)?;
    let (d, name) = find_dataset(&api, &id)?;
    let ds = &d.spec.datasets[&name];
    let t = seconds(file_ms(&d));
    let fresh = api
        .dashboards
        .freshness(&d)
        .await
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| f)
        .unwrap_or_default();
    Ok(ok(json!({
        "Status": 200,
        "DataSet": {
            "Arn": arn("dataset", &id),
            "DataSetId": id,
            "Name": format!("{} · {name}", d.spec.title),
            "CreatedTime": t,
            "LastUpdatedTime": fresh.refreshed_ms.map(seconds).unwrap_or(t),
            "ImportMode": import_mode(&d, &name),
            "ConsumedSpiceCapacityInBytes": fresh.bytes,
            "PhysicalTableMap": {
                name.clone(): {
                    "CustomSql": {
                        "DataSourceArn": arn("datasource", "lakehose"),
                        "Name": name,
                        "SqlQuery": ds.sql,
                        "Columns": [],
                    }
                }
            },
        },
    })))
}

async fn create_ingestion(
    State(api): State<Api>,
    Path((account, id, ingestion)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, QsError> {
    check_account(&account)?;
    if ingestion.is_empty()
        || ingestion.len() > 128
        || !ingestion
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "IngestionId must be 1 to 128 letters, digits, - or _",
        ));
    }
    let input: HashMap<String, Value> = if body.is_empty() {
        HashMap::new()
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValueException",
                    format!("the body is not JSON: {e}"),
                ));
            }
        }
    };
    let full = match input.get("IngestionType").and_then(Value::as_str) {
        None | Some("FULL_REFRESH") => true,
        Some("INCREMENTAL_REFRESH") => false,
        Some(other) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!("IngestionType {other:?} is not FULL_REFRESH or INCREMENTAL_REFRESH"),
            ));
        }
    };
    let (d, name) = find_dataset(&api, &id)?;
    if d.spec.datasets[&name].cache != CacheMode::Spice {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            format!("DataSet {id} is DIRECT_QUERY: it has no SPICE copy to refresh"),
        ));
    }
    {
        let mut list = api.ingestions.lock().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|i| i.dataset == id && i.id == ingestion) {
            return Err(error(
                StatusCode::CONFLICT,
                "ResourceExistsException",
                format!("Ingestion {ingestion} exists"),
            ));
        }
        if list.len() >= MAX_INGESTIONS {
            list.pop_front();
        }
        list.push_back(Ingestion {
            dataset: id.clone(),
            id: ingestion.clone(),
            status: "RUNNING",
            created_ms: chrono::Utc::now().timestamp_millis(),
            seconds: None,
            rows: None,
            bytes: None,
            error: None,
            full,
        });
    }
    let task_api = api.clone();
    let (task_id, task_ingestion) = (id.clone(), ingestion.clone());
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let outcome = task_api.dashboards.refresh(&d, &name, full).await;
        let mut list = task_api
            .ingestions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(i) = list
            .iter_mut()
            .find(|i| i.dataset == task_id && i.id == task_ingestion)
        {
            i.seconds = Some(started.elapsed().as_secs() as i64);
            match outcome {
                Ok(f) => {
                    i.status = "COMPLETED";
                    i.rows = Some(f.rows);
                    i.bytes = Some(f.bytes);
                }
                Err(e) => {
                    i.status = "FAILED";
                    i.error = Some(e.to_string());
                }
            }
        }
    });
    Ok((
        StatusCode::CREATED,
        [("content-type", "application/json")],
        json!({
            "Arn": format!("{}/ingestion/{ingestion}", arn("dataset", &id)),
            "IngestionId": ingestion,
            "IngestionStatus": "INITIALIZED",
            "RequestId": request_id(),
        })
        .to_string(),
    )
        .into_response())
}

async fn describe_ingestion(
    State(api): State<Api>,
    Path((account, id, ingestion)): Path<(String, String, String)>,
) -> Result<Response, QsError> {
    check_account(&account)?;
    let found = api
        .ingestions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|i| i.dataset == id && i.id == ingestion)
        .cloned();
    let Some(i) = found else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Ingestion {ingestion} of DataSet {id} not found"),
        ));
    };
    let mut v = json!({
        "Arn": format!("{}/ingestion/{}", arn("dataset", &i.dataset), i.id),
        "IngestionId": i.id,
        "IngestionStatus": i.status,
        "CreatedTime": seconds(i.created_ms),
        "RequestSource": "MANUAL",
        "RequestType": if i.full { "FULL_REFRESH" } else { "INCREMENTAL_REFRESH" },
    });
    if let Some(s) = i.seconds {
        v["IngestionTimeInSeconds"] = json!(s);
    }
    if let Some(b) = i.bytes {
        v["IngestionSizeInBytes"] = json!(b);
    }
    if let Some(r) = i.rows {
        v["RowInfo"] = json!({"RowsIngested": r, "RowsDropped": 0, "TotalRowsInDataset": r});
    }
    if let Some(e) = &i.error {
        v["ErrorInfo"] = json!({"Type": "INTERNAL_SERVICE_ERROR", "Message": e});
    }
    Ok(ok(json!({ "Status": 200, "Ingestion": v })))
}
