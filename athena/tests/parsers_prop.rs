//! Property tests over whole Athena request bodies: any bytes to any
//! operation get an answer or a client error, never a panic or a stack
//! overflow.

use std::sync::Arc;

use async_trait::async_trait;
use lakehose_athena::{self as athena, AthenaApi, AthenaConfig};
use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{QueryError, QueryErrorKind, QueryOutput, QueryRequest, SqlRunner};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Cases per property: enough to find shallow bugs, few enough that the
/// whole file runs in seconds.
const CASES: u32 = 512;

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Strings an Athena request carries, hostile ones among them: SQL
/// fragments, quotes, S3 URLs, control and wide characters, very long
/// runs.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        any::<String>(),
        prop::sample::select(vec![
            "SELECT 1; DROP TABLE t",
            "s3://../../etc/passwd",
            "s3://results/../x/",
            "'\"`",
            "\u{0}\u{7f}\u{3000}",
            "awsdatacatalog",
        ])
        .prop_map(str::to_string),
        (1usize..4096).prop_map(|n| "x".repeat(n)),
    ]
}

#[derive(Debug)]
struct Refuses;

#[async_trait]
impl SqlRunner for Refuses {
    async fn run(&self, request: QueryRequest) -> Result<QueryOutput, QueryError> {
        Err(QueryError::new(
            QueryErrorKind::Semantic,
            format!("test runner: {} bytes of SQL refused", request.sql.len()),
        ))
    }
}

const MEMBERS: &[&str] = &[
    "QueryString",
    "QueryExecutionId",
    "QueryExecutionIds",
    "QueryExecutionContext",
    "Database",
    "Catalog",
    "ResultConfiguration",
    "OutputLocation",
    "WorkGroup",
    "Name",
    "Configuration",
    "ConfigurationUpdates",
    "CatalogName",
    "DatabaseName",
    "TableName",
    "Expression",
    "NextToken",
    "MaxResults",
    "ClientRequestToken",
    "ExecutionParameters",
    "ResultReuseConfiguration",
    "RecursiveDeleteOption",
    "State",
    "Description",
    "Tags",
];

const OPERATIONS: &[&str] = &[
    "StartQueryExecution",
    "GetQueryExecution",
    "BatchGetQueryExecution",
    "GetQueryResults",
    "StopQueryExecution",
    "ListQueryExecutions",
    "ListDataCatalogs",
    "GetDataCatalog",
    "ListDatabases",
    "GetDatabase",
    "ListTableMetadata",
    "GetTableMetadata",
    "CreateWorkGroup",
    "GetWorkGroup",
    "ListWorkGroups",
    "UpdateWorkGroup",
    "DeleteWorkGroup",
    "NoSuchOperation",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        hostile_text().prop_map(Value::String),
        Just(json!("primary")),
        Just(json!("AwsDataCatalog")),
        Just(json!("s3://results/")),
        Just(json!("SELECT 1")),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(MEMBERS), inner), 0..8).prop_map(
                |members| Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect()
                )
            ),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (1usize..50_000).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        (1usize..50_000).prop_map(|n| {
            format!("{}1{}", "{\"QueryString\":".repeat(n), "}".repeat(n)).into_bytes()
        }),
        Just(b"{\"MaxResults\": 1e999999}".to_vec()),
        Just(b"{\"MaxResults\": -123456789012345678901234567890}".to_vec()),
    ]
}

#[test]
fn athena_request_bodies_never_panic() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api = runtime.block_on(async {
        let storage = Storage::local(dir.path()).unwrap();
        let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
        AthenaApi::open(storage, catalog, Arc::new(Refuses), AthenaConfig::default())
            .await
            .unwrap()
    });
    let strategy = (prop::sample::select(OPERATIONS), body());
    TestRunner::new(config())
        .run(&strategy, |(operation, body)| {
            let response = runtime.block_on(athena::handle(&api, operation, &body, None));
            prop_assert!(
                response.status().is_success() || response.status().is_client_error(),
                "{operation} answered {}",
                response.status()
            );
            Ok(())
        })
        .unwrap();
}
