//! The Athena API driven by the real `aws-sdk-athena` client against an
//! in-test server, over a test `SqlRunner` built on a plain DataFusion
//! session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_athena::Client;
use aws_sdk_athena::error::ProvideErrorMetadata;
use aws_sdk_athena::types::{
    QueryExecutionContext, QueryExecutionState, ResultConfiguration, WorkGroupConfiguration,
    WorkGroupConfigurationUpdates, WorkGroupState,
};
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::{
    Date32Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use lakehose_athena::{self as athena, AthenaApi, AthenaConfig};
use lakehose_catalog::model::{Column, Database, SerDeInfo, StorageDescriptor, Table};
use lakehose_catalog::{Catalog, CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{
    QueryError, QueryErrorKind, QueryOutput, QueryRequest, SqlRunner, StatementType,
};

/// Test only: a statement the runner answers by sleeping (for cancellation).
const SLEEP_QUERY: &str = "SELECT 'lakehose test: sleep'";
/// Test only: pretends every query scans this many bytes.
const SCANNED: u64 = 20_000_000;

struct TestRunner {
    ctx: SessionContext,
    cutoffs: Mutex<Vec<Option<u64>>>,
}

impl std::fmt::Debug for TestRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRunner").finish_non_exhaustive()
    }
}

fn map_error(e: DataFusionError) -> QueryError {
    let kind = match e.find_root() {
        DataFusionError::SQL(..) => QueryErrorKind::Syntax,
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => QueryErrorKind::Semantic,
        _ => QueryErrorKind::Internal,
    };
    QueryError::new(kind, e.to_string())
}

#[async_trait]
impl SqlRunner for TestRunner {
    async fn run(&self, request: QueryRequest) -> Result<QueryOutput, QueryError> {
        self.cutoffs
            .lock()
            .unwrap()
            .push(request.bytes_scanned_cutoff);
        if request.sql == SLEEP_QUERY {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        if let Some(cutoff) = request.bytes_scanned_cutoff
            && cutoff < SCANNED
        {
            return Err(QueryError::new(
                QueryErrorKind::Limit,
                format!("Query exhausted the bytes scanned limit of {cutoff} bytes"),
            ));
        }
        let upper = request.sql.trim().to_ascii_uppercase();
        if upper == "SHOW TABLES" {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "tab_name",
                DataType::Utf8,
                false,
            )]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(vec!["numbers", "people"]))],
            )
            .unwrap();
            return Ok(QueryOutput {
                statement_type: StatementType::Utility,
                substatement_type: "SHOW_TABLES".into(),
                schema,
                batches: vec![batch],
                update_count: None,
                bytes_scanned: 0,
            });
        }
        if upper.starts_with("INSERT INTO SINK") {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "rows",
                DataType::Int64,
                false,
            )]));
            return Ok(QueryOutput {
                statement_type: StatementType::Dml,
                substatement_type: "INSERT".into(),
                schema,
                batches: vec![],
                update_count: Some(3),
                bytes_scanned: 42,
            });
        }
        let mut sql = request.sql.clone();
        for p in &request.parameters {
            sql = sql.replacen('?', p, 1);
        }
        let df = self.ctx.sql(&sql).await.map_err(map_error)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(map_error)?;
        Ok(QueryOutput {
            statement_type: StatementType::Dml,
            substatement_type: "SELECT".into(),
            schema,
            batches,
            update_count: None,
            bytes_scanned: SCANNED,
        })
    }
}

fn test_runner() -> Arc<TestRunner> {
    let ctx = SessionContext::new();
    let n: Vec<i64> = (1..=2500).collect();
    let numbers_schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let numbers =
        RecordBatch::try_new(numbers_schema.clone(), vec![Arc::new(Int64Array::from(n))]).unwrap();
    ctx.register_table(
        "numbers",
        Arc::new(MemTable::try_new(numbers_schema, vec![vec![numbers]]).unwrap()),
    )
    .unwrap();
    let people_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new(
            "seen",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("day", DataType::Date32, true),
    ]));
    let people = RecordBatch::try_new(
        people_schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![Some(1), Some(2), None])),
            Arc::new(StringArray::from(vec![
                Some("Ann \"A\", Jr"),
                Some(""),
                None,
            ])),
            Arc::new(Float64Array::from(vec![Some(1.5), Some(2.0), None])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_704_164_645_000),
                None,
                None,
            ])),
            Arc::new(Date32Array::from(vec![Some(19724), None, None])),
        ],
    )
    .unwrap();
    ctx.register_table(
        "people",
        Arc::new(MemTable::try_new(people_schema, vec![vec![people]]).unwrap()),
    )
    .unwrap();
    Arc::new(TestRunner {
        ctx,
        cutoffs: Mutex::new(Vec::new()),
    })
}

struct Harness {
    dir: tempfile::TempDir,
    api: AthenaApi,
    client: Client,
    runner: Arc<TestRunner>,
    server: tokio::task::JoinHandle<()>,
}

async fn route(
    axum::extract::State(api): axum::extract::State<AthenaApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match target.split_once('.') {
        Some((athena::TARGET_PREFIX, op)) => athena::handle(&api, op, &body, None).await,
        _ => (axum::http::StatusCode::BAD_REQUEST, "unknown target").into_response(),
    }
}

async fn serve(api: AthenaApi) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route("/", axum::routing::post(route))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), server)
}

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_athena::Config::builder()
        .behavior_version(aws_sdk_athena::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_athena::config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "lakehose", "lakehose", None, None, "test",
        ))
        .retry_config(aws_sdk_athena::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn open(dir: &std::path::Path, runner: Arc<TestRunner>, config: AthenaConfig) -> AthenaApi {
    let storage = Storage::local(dir).unwrap();
    let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
    AthenaApi::open(storage, catalog, runner, config)
        .await
        .unwrap()
}

async fn harness_with(config: AthenaConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let runner = test_runner();
    let api = open(dir.path(), runner.clone(), config).await;
    let (endpoint, server) = serve(api.clone()).await;
    Harness {
        dir,
        api,
        client: client(&endpoint),
        runner,
        server,
    }
}

async fn harness() -> Harness {
    harness_with(AthenaConfig::default()).await
}

impl Harness {
    async fn start(&self, sql: &str) -> String {
        self.client
            .start_query_execution()
            .query_string(sql)
            .result_configuration(
                ResultConfiguration::builder()
                    .output_location("s3://results-bucket/athena/")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .query_execution_id()
            .unwrap()
            .to_string()
    }

    async fn wait(&self, id: &str) -> aws_sdk_athena::types::QueryExecution {
        wait_on(&self.client, id).await
    }
}

async fn wait_on(client: &Client, id: &str) -> aws_sdk_athena::types::QueryExecution {
    for _ in 0..500 {
        let e = client
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .unwrap()
            .query_execution
            .unwrap();
        let state = e.status().unwrap().state().unwrap().clone();
        if !matches!(
            state,
            QueryExecutionState::Queued | QueryExecutionState::Running
        ) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("query {id} did not finish");
}

async fn wait_running(client: &Client, id: &str) {
    for _ in 0..500 {
        let e = client
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .unwrap()
            .query_execution
            .unwrap();
        if e.status().unwrap().state() == Some(&QueryExecutionState::Running) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("query {id} never ran");
}

fn row_values(row: &aws_sdk_athena::types::Row) -> Vec<Option<String>> {
    row.data()
        .iter()
        .map(|d| d.var_char_value().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_select_pages_with_header_only_first() {
    let h = harness().await;
    let id = h.start("SELECT n FROM numbers ORDER BY n").await;
    let e = h.wait(&id).await;
    assert_eq!(
        e.status().unwrap().state(),
        Some(&QueryExecutionState::Succeeded)
    );
    assert_eq!(e.statement_type().unwrap().as_str(), "DML");
    assert_eq!(e.substatement_type(), Some("SELECT"));
    let stats = e.statistics().unwrap();
    assert_eq!(stats.data_scanned_in_bytes(), Some(SCANNED as i64));
    assert!(stats.total_execution_time_in_millis().is_some());
    assert!(stats.query_queue_time_in_millis().is_some());
    assert!(e.status().unwrap().completion_date_time().is_some());
    assert_eq!(
        e.result_configuration().unwrap().output_location(),
        Some(format!("s3://results-bucket/athena/{id}.csv").as_str())
    );
    assert_eq!(e.work_group(), Some("primary"));
    assert_eq!(
        e.engine_version().unwrap().effective_engine_version(),
        Some("Athena engine version 3")
    );

    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = h
            .client
            .get_query_results()
            .query_execution_id(&id)
            .max_results(1000)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        let rs = out.result_set().unwrap();
        let columns = rs.result_set_metadata().unwrap().column_info();
        assert_eq!(columns.len(), 1);
        assert_eq!(columns[0].r#type(), "bigint");
        assert_eq!(columns[0].precision(), 19);
        pages.push(rs.rows().iter().map(row_values).collect::<Vec<_>>());
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].len(), 1000);
    assert_eq!(pages[0][0], vec![Some("n".to_string())]);
    assert_eq!(pages[0][1], vec![Some("1".to_string())]);
    assert_eq!(pages[1].len(), 1000);
    assert_eq!(pages[1][0], vec![Some("1000".to_string())]);
    assert_eq!(pages[2].len(), 501);
    assert_eq!(pages[2].last().unwrap(), &vec![Some("2500".to_string())]);
    let data: usize = pages.iter().map(Vec::len).sum::<usize>() - 1;
    assert_eq!(data, 2500);

    // The SDK's paginator walks pages that straddle the row index.
    let all: Vec<Option<String>> = h
        .client
        .get_query_results()
        .query_execution_id(&id)
        .max_results(700)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flat_map(|page| {
            page.unwrap()
                .result_set()
                .unwrap()
                .rows()
                .iter()
                .map(|r| row_values(r)[0].clone())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut expected = vec![Some("n".to_string())];
    expected.extend((1..=2500).map(|n| Some(n.to_string())));
    assert_eq!(all, expected);

    // MaxResults out of range is refused.
    let err = h
        .client
        .get_query_results()
        .query_execution_id(&id)
        .max_results(1001)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_types_nulls_and_result_files() {
    let h = harness().await;
    let id = h
        .start("SELECT id, name, score, seen, day FROM people ORDER BY id NULLS LAST")
        .await;
    let e = h.wait(&id).await;
    assert_eq!(
        e.status().unwrap().state(),
        Some(&QueryExecutionState::Succeeded)
    );
    let out = h
        .client
        .get_query_results()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(out.update_count(), Some(0));
    let rs = out.result_set().unwrap();
    let info = rs.result_set_metadata().unwrap().column_info();
    let types: Vec<(&str, &str, i32, bool)> = info
        .iter()
        .map(|c| (c.name(), c.r#type(), c.precision(), c.case_sensitive()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("id", "bigint", 19, false),
            ("name", "varchar", 2147483647, true),
            ("score", "double", 17, false),
            ("seen", "timestamp", 3, false),
            ("day", "date", 0, false),
        ]
    );
    assert_eq!(info[0].catalog_name(), Some("hive"));
    assert_eq!(info[0].nullable().unwrap().as_str(), "UNKNOWN");
    let rows: Vec<Vec<Option<String>>> = rs.rows().iter().map(row_values).collect();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows[0],
        vec![s("id"), s("name"), s("score"), s("seen"), s("day")]
    );
    assert_eq!(
        rows[1],
        vec![
            s("1"),
            s("Ann \"A\", Jr"),
            s("1.5"),
            s("2024-01-02 03:04:05.000"),
            s("2024-01-02")
        ]
    );
    // NULL is a Datum without VarCharValue; the empty string keeps one.
    assert_eq!(rows[2], vec![s("2"), s(""), s("2.0"), None, None]);
    assert_eq!(rows[3], vec![None, None, None, None, None]);
    assert!(rs.rows()[3].data()[0].var_char_value().is_none());

    // The result file, byte for byte.
    let csv = std::fs::read_to_string(h.dir.path().join(format!("results-bucket/athena/{id}.csv")))
        .unwrap();
    assert_eq!(
        csv,
        "\"id\",\"name\",\"score\",\"seen\",\"day\"\n\
         \"1\",\"Ann \"\"A\"\", Jr\",\"1.5\",\"2024-01-02 03:04:05.000\",\"2024-01-02\"\n\
         \"2\",\"\",\"2.0\",,\n\
         ,,,,\n"
    );
    let metadata: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            h.dir
                .path()
                .join(format!("results-bucket/athena/{id}.csv.metadata")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(metadata["StatementType"], "DML");
    assert_eq!(metadata["RowCount"], 3);
    assert_eq!(metadata["ColumnInfo"][1]["Type"], "varchar");

    // Execution parameters fill the `?` placeholders.
    let id = h
        .client
        .start_query_execution()
        .query_string("SELECT name FROM people WHERE id = ?")
        .execution_parameters("1")
        .send()
        .await
        .unwrap()
        .query_execution_id
        .unwrap();
    let e = h.wait(&id).await;
    assert_eq!(e.execution_parameters(), &["1".to_string()]);
    // No output location from the client or the workgroup: the configured
    // default.
    assert_eq!(
        e.result_configuration().unwrap().output_location(),
        Some(format!("s3://lakehose-athena-results/{id}.csv").as_str())
    );
    let out = h
        .client
        .get_query_results()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    let rows: Vec<_> = out
        .result_set()
        .unwrap()
        .rows()
        .iter()
        .map(row_values)
        .collect();
    assert_eq!(rows, vec![vec![s("name")], vec![s("Ann \"A\", Jr")]]);
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_utility_and_update_count_results() {
    let h = harness().await;
    let id = h.start("SHOW TABLES").await;
    let e = h.wait(&id).await;
    assert_eq!(e.statement_type().unwrap().as_str(), "UTILITY");
    assert_eq!(e.substatement_type(), Some("SHOW_TABLES"));
    assert_eq!(
        e.result_configuration().unwrap().output_location(),
        Some(format!("s3://results-bucket/athena/{id}.txt").as_str())
    );
    let txt = std::fs::read_to_string(h.dir.path().join(format!("results-bucket/athena/{id}.txt")))
        .unwrap();
    assert_eq!(txt, "numbers\npeople\n");
    let out = h
        .client
        .get_query_results()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    let rows: Vec<_> = out
        .result_set()
        .unwrap()
        .rows()
        .iter()
        .map(row_values)
        .collect();
    // No header row for utility statements.
    assert_eq!(
        rows,
        vec![
            vec![Some("numbers".to_string())],
            vec![Some("people".to_string())]
        ]
    );

    let id = h
        .start("INSERT INTO sink SELECT n FROM numbers LIMIT 3")
        .await;
    let e = h.wait(&id).await;
    assert_eq!(e.substatement_type(), Some("INSERT"));
    let out = h
        .client
        .get_query_results()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(out.update_count(), Some(3));
    let rs = out.result_set().unwrap();
    assert!(rs.rows().is_empty());
    let info = rs.result_set_metadata().unwrap().column_info();
    assert_eq!((info[0].name(), info[0].r#type()), ("rows", "bigint"));
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_failures_report_reason_and_athena_error() {
    let h = harness().await;
    let syntax = h.start("SELEC nonsense FROM").await;
    let unknown = h.start("SELECT * FROM no_such_table").await;
    for id in [&syntax, &unknown] {
        let e = h.wait(id).await;
        let status = e.status().unwrap();
        assert_eq!(status.state(), Some(&QueryExecutionState::Failed));
        let reason = status.state_change_reason().unwrap();
        assert!(!reason.is_empty());
        let error = status.athena_error().unwrap();
        assert_eq!(error.error_category(), Some(2));
        assert_eq!(error.error_type(), Some(1000));
        assert!(!error.retryable());
        assert_eq!(error.error_message(), Some(reason));
        let err = h
            .client
            .get_query_results()
            .query_execution_id(id.as_str())
            .send()
            .await
            .unwrap_err();
        match err.into_service_error() {
            aws_sdk_athena::operation::get_query_results::GetQueryResultsError::InvalidRequestException(e) => {
                assert_eq!(e.athena_error_code(), Some("INVALID_QUERY_EXECUTION_STATE"));
                assert_eq!(
                    e.message(),
                    Some("Query did not finish successfully. Final query state: FAILED")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let e = h.wait(&unknown).await;
    assert!(
        e.status()
            .unwrap()
            .state_change_reason()
            .unwrap()
            .contains("no_such_table"),
        "{:?}",
        e.status()
    );
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_stop_cancels_a_running_query() {
    let h = harness().await;
    let id = h.start(SLEEP_QUERY).await;
    wait_running(&h.client, &id).await;
    let err = h
        .client
        .get_query_results()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap_err();
    match err.into_service_error() {
        aws_sdk_athena::operation::get_query_results::GetQueryResultsError::InvalidRequestException(e) => {
            assert_eq!(e.athena_error_code(), Some("INVALID_QUERY_EXECUTION_STATE"));
            assert_eq!(e.message(), Some("Query has not yet finished. Current state: RUNNING"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(h.api.metrics().running, 1);
    h.client
        .stop_query_execution()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    let e = h.wait(&id).await;
    assert_eq!(
        e.status().unwrap().state(),
        Some(&QueryExecutionState::Cancelled)
    );
    assert!(e.status().unwrap().completion_date_time().is_some());
    // Stopping a finished query is a no-op.
    h.client
        .stop_query_execution()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    let m = h.api.metrics();
    assert_eq!((m.running, m.cancelled), (0, 1));
    // The slot is free again.
    let next = h.start("SELECT 1").await;
    assert_eq!(
        h.wait(&next).await.status().unwrap().state(),
        Some(&QueryExecutionState::Succeeded)
    );
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_queue_limit_gives_too_many_requests() {
    let h = harness_with(AthenaConfig {
        max_concurrent_queries: 1,
        queue_limit: 2,
        ..Default::default()
    })
    .await;
    let first = h.start(SLEEP_QUERY).await;
    let second = h.start(SLEEP_QUERY).await;
    wait_running(&h.client, &first).await;
    let e = h
        .client
        .get_query_execution()
        .query_execution_id(&second)
        .send()
        .await
        .unwrap()
        .query_execution
        .unwrap();
    assert_eq!(
        e.status().unwrap().state(),
        Some(&QueryExecutionState::Queued)
    );
    let err = h
        .client
        .start_query_execution()
        .query_string("SELECT 1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("TooManyRequestsException"));
    // Cancelling the queued one frees room.
    h.client
        .stop_query_execution()
        .query_execution_id(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.wait(&second).await.status().unwrap().state(),
        Some(&QueryExecutionState::Cancelled)
    );
    h.client
        .stop_query_execution()
        .query_execution_id(&first)
        .send()
        .await
        .unwrap();
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_client_request_token_is_idempotent() {
    let h = harness().await;
    let token = "0123456789abcdef0123456789abcdef";
    let start = |sql: &'static str| {
        h.client
            .start_query_execution()
            .query_string(sql)
            .client_request_token(token)
            .send()
    };
    let a = start("SELECT 1").await.unwrap().query_execution_id.unwrap();
    let b = start("SELECT 1").await.unwrap().query_execution_id.unwrap();
    assert_eq!(a, b);
    let err = start("SELECT 2").await.unwrap_err();
    match err.into_service_error() {
        aws_sdk_athena::operation::start_query_execution::StartQueryExecutionError::InvalidRequestException(e) => {
            assert!(e.message().unwrap().contains("ClientRequestToken"));
        }
        other => panic!("unexpected {other:?}"),
    }
    // The SDK fills a fresh token on each call otherwise.
    let c = h.start("SELECT 1").await;
    let d = h.start("SELECT 1").await;
    assert_ne!(c, d);
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_workgroups_crud_and_cutoff() {
    let h = harness().await;
    let c = &h.client;
    let primary = c
        .get_work_group()
        .work_group("primary")
        .send()
        .await
        .unwrap();
    assert_eq!(
        primary.work_group().unwrap().state(),
        Some(&WorkGroupState::Enabled)
    );

    // Below Athena's 10 MB minimum.
    let err = c
        .create_work_group()
        .name("tiny")
        .configuration(
            WorkGroupConfiguration::builder()
                .bytes_scanned_cutoff_per_query(1_000)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message()
            .unwrap()
            .contains("BytesScannedCutoffPerQuery")
    );

    c.create_work_group()
        .name("analysts")
        .description("team")
        .configuration(
            WorkGroupConfiguration::builder()
                .bytes_scanned_cutoff_per_query(10_000_000)
                .enforce_work_group_configuration(true)
                .result_configuration(
                    ResultConfiguration::builder()
                        .output_location("s3://wg-results/analysts/")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let err = c
        .create_work_group()
        .name("analysts")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));

    let wg = c
        .get_work_group()
        .work_group("analysts")
        .send()
        .await
        .unwrap();
    let wg = wg.work_group().unwrap();
    assert_eq!(wg.description(), Some("team"));
    assert!(wg.creation_time().is_some());
    let conf = wg.configuration().unwrap();
    assert_eq!(conf.bytes_scanned_cutoff_per_query(), Some(10_000_000));
    assert_eq!(conf.enforce_work_group_configuration(), Some(true));

    let names: Vec<String> = c
        .list_work_groups()
        .send()
        .await
        .unwrap()
        .work_groups()
        .iter()
        .map(|w| w.name().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["analysts", "primary"]);

    // The cutoff reaches the runner and its message becomes the reason; the
    // enforced output location wins over the client's.
    let id = c
        .start_query_execution()
        .query_string("SELECT n FROM numbers")
        .work_group("analysts")
        .result_configuration(
            ResultConfiguration::builder()
                .output_location("s3://client-results/")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .query_execution_id
        .unwrap();
    let e = h.wait(&id).await;
    assert_eq!(e.work_group(), Some("analysts"));
    assert_eq!(
        e.status().unwrap().state(),
        Some(&QueryExecutionState::Failed)
    );
    assert_eq!(
        e.status().unwrap().state_change_reason(),
        Some("Query exhausted the bytes scanned limit of 10000000 bytes")
    );
    assert_eq!(
        e.result_configuration().unwrap().output_location(),
        Some(format!("s3://wg-results/analysts/{id}.csv").as_str())
    );
    assert!(h.runner.cutoffs.lock().unwrap().contains(&Some(10_000_000)));

    // Raise the cutoff, disable, re-enable.
    c.update_work_group()
        .work_group("analysts")
        .configuration_updates(
            WorkGroupConfigurationUpdates::builder()
                .bytes_scanned_cutoff_per_query(100_000_000)
                .build(),
        )
        .state(WorkGroupState::Disabled)
        .send()
        .await
        .unwrap();
    let err = c
        .start_query_execution()
        .query_string("SELECT 1")
        .work_group("analysts")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(err.message().unwrap().contains("disabled"));
    c.update_work_group()
        .work_group("analysts")
        .state(WorkGroupState::Enabled)
        .send()
        .await
        .unwrap();
    let id = c
        .start_query_execution()
        .query_string("SELECT n FROM numbers LIMIT 1")
        .work_group("analysts")
        .send()
        .await
        .unwrap()
        .query_execution_id
        .unwrap();
    let e = h.wait(&id).await;
    assert_eq!(
        e.status().unwrap().state(),
        Some(&QueryExecutionState::Succeeded)
    );
    assert_eq!(
        e.statistics().unwrap().data_scanned_in_bytes(),
        Some(SCANNED as i64)
    );

    // Unknown workgroup; primary cannot go; delete works.
    let err = c
        .start_query_execution()
        .query_string("SELECT 1")
        .work_group("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    let err = c
        .delete_work_group()
        .work_group("primary")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    c.delete_work_group()
        .work_group("analysts")
        .send()
        .await
        .unwrap();
    let err = c
        .get_work_group()
        .work_group("analysts")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        !h.dir
            .path()
            .join("_lakehose/athena/workgroups/analysts.json")
            .exists()
    );
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_list_query_executions_newest_first() {
    let h = harness().await;
    h.client
        .create_work_group()
        .name("listing")
        .send()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = h
            .client
            .start_query_execution()
            .query_string(format!("SELECT {i}"))
            .work_group("listing")
            .send()
            .await
            .unwrap()
            .query_execution_id
            .unwrap();
        h.wait(&id).await;
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let other = h.start("SELECT 'primary'").await;
    let mut listed = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let out = h
            .client
            .list_query_executions()
            .work_group("listing")
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        listed.extend(out.query_execution_ids().iter().cloned());
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    ids.reverse();
    assert_eq!(listed, ids);
    let primary = h.client.list_query_executions().send().await.unwrap();
    assert_eq!(primary.query_execution_ids(), std::slice::from_ref(&other));

    let batch = h
        .client
        .batch_get_query_execution()
        .query_execution_ids(&ids[0])
        .query_execution_ids("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(batch.query_executions().len(), 1);
    assert_eq!(
        batch.query_executions()[0].query_execution_id(),
        Some(ids[0].as_str())
    );
    assert_eq!(
        batch.unprocessed_query_execution_ids()[0].query_execution_id(),
        Some("00000000-0000-0000-0000-000000000000")
    );
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_history_and_results_survive_restart() {
    let h = harness().await;
    let id = h
        .start("SELECT n FROM numbers WHERE n <= 3 ORDER BY n")
        .await;
    h.wait(&id).await;
    // A query still running when "the process dies": a second instance on
    // the same folder sees it as interrupted.
    let running = h.start(SLEEP_QUERY).await;
    wait_running(&h.client, &running).await;

    h.client
        .create_work_group()
        .name("kept")
        .send()
        .await
        .unwrap();
    // An execution older than the 45 days of history is pruned on open.
    let executions = h.dir.path().join("_lakehose/athena/executions");
    let mut old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(executions.join(format!("{id}.json"))).unwrap())
            .unwrap();
    let old_id = "11111111-2222-4333-8444-555555555555";
    old["id"] = old_id.into();
    old["client_request_token"] = serde_json::Value::Null;
    old["submitted_ms"] = (chrono::Utc::now().timestamp_millis() - 46 * 86_400_000).into();
    std::fs::write(executions.join(format!("{old_id}.json")), old.to_string()).unwrap();

    let reopened = open(h.dir.path(), test_runner(), AthenaConfig::default()).await;
    let (endpoint, server) = serve(reopened.clone()).await;
    let c2 = client(&endpoint);
    let e = wait_on(&c2, &id).await;
    assert_eq!(
        e.status().unwrap().state(),
        Some(&QueryExecutionState::Succeeded)
    );
    assert_eq!(
        e.query(),
        Some("SELECT n FROM numbers WHERE n <= 3 ORDER BY n")
    );
    let out = c2
        .get_query_results()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    let rows: Vec<_> = out
        .result_set()
        .unwrap()
        .rows()
        .iter()
        .map(row_values)
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3], vec![Some("3".to_string())]);
    let e = wait_on(&c2, &running).await;
    assert_eq!(
        e.status().unwrap().state(),
        Some(&QueryExecutionState::Failed)
    );
    assert!(
        e.status()
            .unwrap()
            .state_change_reason()
            .unwrap()
            .contains("lakehose stopped before the query finished")
    );
    let listed = c2.list_query_executions().send().await.unwrap();
    assert_eq!(listed.query_execution_ids(), &[running.clone(), id.clone()]);
    assert_eq!(reopened.metrics().succeeded, 1);
    let err = c2
        .get_query_execution()
        .query_execution_id(old_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(!executions.join(format!("{old_id}.json")).exists());
    c2.get_work_group().work_group("kept").send().await.unwrap();

    h.client
        .stop_query_execution()
        .query_execution_id(&running)
        .send()
        .await
        .unwrap();
    server.abort();
    h.server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_catalog_metadata() {
    let h = harness().await;
    let storage = Storage::local(h.dir.path()).unwrap();
    let catalog = EmbeddedCatalog::new(storage);
    catalog
        .create_database(Database {
            name: "weblogs".into(),
            description: Some("web logs".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    for name in ["requests", "errors", "sessions"] {
        catalog
            .create_table(
                "weblogs",
                Table {
                    name: name.into(),
                    table_type: Some("EXTERNAL_TABLE".into()),
                    parameters: [("classification".to_string(), "parquet".to_string())].into(),
                    partition_keys: vec![Column {
                        name: "dt".into(),
                        data_type: Some("string".into()),
                        ..Default::default()
                    }],
                    storage_descriptor: Some(StorageDescriptor {
                        columns: vec![Column {
                            name: "status".into(),
                            data_type: Some("bigint".into()),
                            comment: Some("HTTP status".into()),
                            ..Default::default()
                        }],
                        location: Some(format!("s3://lake/{name}/")),
                        input_format: Some(
                            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat".into(),
                        ),
                        serde_info: Some(SerDeInfo {
                            serialization_library: Some(
                                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                                    .into(),
                            ),
                            parameters: [("serialization.format".to_string(), "1".to_string())]
                                .into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let c = &h.client;
    let catalogs = c.list_data_catalogs().send().await.unwrap();
    assert_eq!(
        catalogs.data_catalogs_summary()[0].catalog_name(),
        Some("AwsDataCatalog")
    );
    assert_eq!(
        catalogs.data_catalogs_summary()[0]
            .r#type()
            .unwrap()
            .as_str(),
        "GLUE"
    );
    let dc = c
        .get_data_catalog()
        .name("AwsDataCatalog")
        .send()
        .await
        .unwrap();
    assert_eq!(dc.data_catalog().unwrap().name(), "AwsDataCatalog");

    let dbs = c
        .list_databases()
        .catalog_name("AwsDataCatalog")
        .send()
        .await
        .unwrap();
    assert_eq!(dbs.database_list()[0].name(), "weblogs");
    let db = c
        .get_database()
        .catalog_name("AwsDataCatalog")
        .database_name("weblogs")
        .send()
        .await
        .unwrap();
    assert_eq!(db.database().unwrap().description(), Some("web logs"));

    let page1 = c
        .list_table_metadata()
        .catalog_name("AwsDataCatalog")
        .database_name("weblogs")
        .max_results(2)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = page1
        .table_metadata_list()
        .iter()
        .map(|t| t.name())
        .collect();
    assert_eq!(names, vec!["errors", "requests"]);
    let page2 = c
        .list_table_metadata()
        .catalog_name("AwsDataCatalog")
        .database_name("weblogs")
        .max_results(2)
        .next_token(page1.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page2.table_metadata_list()[0].name(), "sessions");
    assert!(page2.next_token().is_none());
    let filtered = c
        .list_table_metadata()
        .catalog_name("AwsDataCatalog")
        .database_name("weblogs")
        .expression("re*")
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.table_metadata_list().len(), 1);
    assert_eq!(filtered.table_metadata_list()[0].name(), "requests");

    let t = c
        .get_table_metadata()
        .catalog_name("AwsDataCatalog")
        .database_name("weblogs")
        .table_name("requests")
        .send()
        .await
        .unwrap();
    let t = t.table_metadata().unwrap();
    assert_eq!(t.table_type(), Some("EXTERNAL_TABLE"));
    assert_eq!(t.columns()[0].name(), "status");
    assert_eq!(t.columns()[0].r#type(), Some("bigint"));
    assert_eq!(t.columns()[0].comment(), Some("HTTP status"));
    assert_eq!(t.partition_keys()[0].name(), "dt");
    let p = t.parameters().unwrap();
    assert_eq!(p["location"], "s3://lake/requests/");
    assert_eq!(
        p["inputformat"],
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    );
    assert_eq!(
        p["serde.serialization.lib"],
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    );
    assert_eq!(p["serde.param.serialization.format"], "1");
    assert_eq!(p["classification"], "parquet");

    let err = c
        .get_table_metadata()
        .catalog_name("AwsDataCatalog")
        .database_name("weblogs")
        .table_name("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("MetadataException"));
    let err = c
        .list_databases()
        .catalog_name("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("MetadataException"));
    h.server.abort();
}

async fn raw(api: &AthenaApi, op: &str, body: &str) -> (u16, serde_json::Value) {
    let response = athena::handle(api, op, body.as_bytes(), None).await;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_malformed_requests_name_the_field() {
    let h = harness().await;
    let api = &h.api;
    let (status, v) = raw(api, "StartQueryExecution", "{not json").await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (_, v) = raw(api, "StartQueryExecution", r#"{"QueryString": 5}"#).await;
    assert_eq!(v["__type"], "SerializationException");
    assert!(
        v["Message"].as_str().unwrap().contains("QueryString"),
        "{v}"
    );
    let (_, v) = raw(api, "StartQueryExecution", "{}").await;
    assert_eq!(v["__type"], "InvalidRequestException");
    assert_eq!(v["Message"], "QueryString is required");
    assert_eq!(v["AthenaErrorCode"], "INVALID_INPUT");
    let (_, v) = raw(api, "StartQueryExecution", r#"{"QueryString": ""}"#).await;
    assert!(
        v["Message"].as_str().unwrap().contains("QueryString"),
        "{v}"
    );
    let big = "x".repeat(262_145);
    let (_, v) = raw(
        api,
        "StartQueryExecution",
        &format!(r#"{{"QueryString": "{big}"}}"#),
    )
    .await;
    assert_eq!(v["__type"], "InvalidRequestException");
    let (_, v) = raw(
        api,
        "StartQueryExecution",
        r#"{"QueryString": "SELECT 1", "ClientRequestToken": "short"}"#,
    )
    .await;
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("ClientRequestToken"),
        "{v}"
    );
    let (_, v) = raw(
        api,
        "StartQueryExecution",
        r#"{"QueryString": "SELECT 1", "ResultConfiguration": {"OutputLocation": "/tmp/x"}}"#,
    )
    .await;
    assert!(
        v["Message"].as_str().unwrap().contains("OutputLocation"),
        "{v}"
    );
    let (_, v) = raw(
        api,
        "StartQueryExecution",
        r#"{"QueryString": "SELECT 1", "ResultConfiguration": {"EncryptionConfiguration": {"EncryptionOption": "SSE_S3"}}}"#,
    )
    .await;
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("EncryptionConfiguration"),
        "{v}"
    );
    let (_, v) = raw(
        api,
        "GetQueryExecution",
        r#"{"QueryExecutionId": "../../etc"}"#,
    )
    .await;
    assert_eq!(v["__type"], "InvalidRequestException");
    let (_, v) = raw(api, "ListQueryExecutions", r#"{"MaxResults": 51}"#).await;
    assert!(v["Message"].as_str().unwrap().contains("MaxResults"), "{v}");
    let (_, v) = raw(
        api,
        "GetQueryResults",
        r#"{"QueryExecutionId": "x", "NextToken": "bogus"}"#,
    )
    .await;
    assert!(v["Message"].as_str().unwrap().contains("NextToken"), "{v}");
    let (_, v) = raw(
        api,
        "BatchGetQueryExecution",
        r#"{"QueryExecutionIds": []}"#,
    )
    .await;
    assert!(
        v["Message"].as_str().unwrap().contains("QueryExecutionIds"),
        "{v}"
    );
    let (status, v) = raw(api, "CreateNamedQuery", "{}").await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );

    // Through the SDK: typed errors.
    let err = h
        .client
        .get_query_execution()
        .query_execution_id("5f6c1a2e-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    match err.into_service_error() {
        aws_sdk_athena::operation::get_query_execution::GetQueryExecutionError::InvalidRequestException(e) => {
            assert_eq!(
                e.message(),
                Some("QueryExecution 5f6c1a2e-0000-4000-8000-000000000000 was not found")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = h
        .client
        .start_query_execution()
        .query_string("SELECT 1")
        .query_execution_context(QueryExecutionContext::builder().database("").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.message()
            .unwrap()
            .contains("QueryExecutionContext.Database")
    );
    h.server.abort();
}
