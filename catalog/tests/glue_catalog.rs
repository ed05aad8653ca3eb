//! The Glue catalog against a real Glue API: moto in server mode on
//! loopback (`moto_server`, installed with `pip install 'moto[server]'`),
//! and, for what moto does not do (paging, `VersionId` checks, throttling,
//! partition indexes), a scripted stand-in that answers like Glue.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_glue::config::retry::RetryConfig;
use aws_sdk_glue::config::{BehaviorVersion, Credentials, Region};
use lakehose_catalog::glue_catalog::{GlueOptions, GlueSetupError};
use lakehose_catalog::model::{
    Column, Database, Order, Partition, PartitionIndex, SerDeInfo, StorageDescriptor, Table,
    VIRTUAL_VIEW, formats,
};
use lakehose_catalog::{Catalog, CatalogError, GlueCatalog, PartitionUpdate};
use serde_json::{Value, json};

/// The secret key of every client made here: it must never show up in a
/// message, a `Debug` or an error.
const SECRET: &str = "lakehose-secret-never-shown";

// ---------------------------------------------------------------------
// moto in server mode
// ---------------------------------------------------------------------

/// A `moto_server` child process, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    _log: tempfile::NamedTempFile,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("moto_server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path
        .or_else(|| {
            let shim = PathBuf::from("/root/.pyenv/shims/moto_server");
            shim.is_file().then_some(shim)
        })
        .unwrap_or_else(|| {
            panic!(
                "moto_server is not installed, and these tests need it: pip install 'moto[server]' \
                 (or point MOTO_SERVER at the executable)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether an HTTP server answers on `port`.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl Moto {
    fn start() -> Self {
        let binary = moto_binary();
        let log = tempfile::NamedTempFile::new().unwrap();
        let port = free_port();
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start {}: {e}; install it with pip install 'moto[server]'",
                    binary.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!(
                    "moto_server exited with {status} (is it installed? pip install 'moto[server]'):\n{out}"
                );
            }
            if answers(port) {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!("moto_server did not answer on port {port} within 60 s:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            _log: log,
        }
    }

    fn catalog(&self) -> GlueCatalog {
        GlueCatalog::from_client(client(&self.endpoint, 3), None)
    }
}

/// A Glue client for `endpoint` with static credentials and quick retries.
fn client(endpoint: &str, attempts: u32) -> aws_sdk_glue::Client {
    let config = aws_sdk_glue::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", SECRET, None, None, "tests"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .build();
    aws_sdk_glue::Client::from_conf(config)
}

// ---------------------------------------------------------------------
// A scripted stand-in for Glue
// ---------------------------------------------------------------------

type Script = dyn Fn(&str, &Value, usize) -> (u16, Value) + Send + Sync;

/// An HTTP server answering Glue's JSON protocol from a script: given the
/// operation, the request body and how many times the operation was
/// called (1 for the first), it returns a status and a body. It records
/// every request.
struct Stand {
    endpoint: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stand {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stand {
    async fn start(
        script: impl Fn(&str, &Value, usize) -> (u16, Value) + Send + Sync + 'static,
    ) -> Self {
        let script: Arc<Script> = Arc::new(script);
        let calls: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let recorded = calls.clone();
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let script = script.clone();
                let calls = recorded.clone();
                async move {
                    let op = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .trim_start_matches("AWSGlue.")
                        .to_string();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let nth = {
                        let mut calls = calls.lock().unwrap();
                        calls.push((op.clone(), body.clone()));
                        calls.iter().filter(|(o, _)| *o == op).count()
                    };
                    let (status, reply) = script(&op, &body, nth);
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [("content-type", "application/x-amz-json-1.1")],
                        reply.to_string(),
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stand {
            endpoint,
            calls,
            task,
        }
    }

    fn catalog(&self) -> GlueCatalog {
        GlueCatalog::from_client(client(&self.endpoint, 3), None)
    }

    /// The bodies of the calls of `op`, in order.
    fn bodies(&self, op: &str) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, b)| b.clone())
            .collect()
    }

    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

fn glue_error(code: &str, message: &str) -> (u16, Value) {
    (400, json!({ "__type": code, "message": message }))
}

fn ok(body: Value) -> (u16, Value) {
    (200, body)
}

// ---------------------------------------------------------------------
// Model values
// ---------------------------------------------------------------------

fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        data_type: Some(ty.into()),
        ..Default::default()
    }
}

fn params(pairs: &[(&str, &str)]) -> lakehose_catalog::model::Parameters {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A table with every field lakehose sends to Glue set.
fn full_table(name: &str) -> Table {
    Table {
        name: name.into(),
        description: Some("HTTP requests".into()),
        owner: Some("analytics".into()),
        last_access_time: Some(1_767_225_600.0),
        retention: Some(30),
        storage_descriptor: Some(StorageDescriptor {
            columns: vec![
                Column {
                    name: "status".into(),
                    data_type: Some("bigint".into()),
                    comment: Some("HTTP status".into()),
                    parameters: params(&[("pii", "false")]),
                },
                col("path", "string"),
                col("headers", "map<string,string>"),
            ],
            location: Some("s3://lake/requests/".into()),
            input_format: Some(formats::PARQUET_INPUT.into()),
            output_format: Some(formats::PARQUET_OUTPUT.into()),
            compressed: Some(true),
            number_of_buckets: Some(8),
            serde_info: Some(SerDeInfo {
                name: Some("requests".into()),
                serialization_library: Some(formats::PARQUET_SERDE.into()),
                parameters: params(&[("serialization.format", "1")]),
            }),
            bucket_columns: vec!["status".into()],
            sort_columns: vec![Order {
                column: "status".into(),
                sort_order: 1,
            }],
            parameters: params(&[("compression", "zstd")]),
            stored_as_sub_directories: Some(true),
        }),
        partition_keys: vec![
            Column {
                name: "dt".into(),
                data_type: Some("string".into()),
                comment: Some("day".into()),
                ..Default::default()
            },
            col("region", "string"),
        ],
        table_type: Some("EXTERNAL_TABLE".into()),
        parameters: params(&[("classification", "parquet"), ("lakehose.stream", "web")]),
        ..Default::default()
    }
}

/// `sent` with the fields Glue fills in taken from `got`.
fn as_stored(mut sent: Table, got: &Table) -> Table {
    sent.database_name = got.database_name.clone();
    sent.create_time = got.create_time;
    sent.update_time = got.update_time;
    sent.created_by = got.created_by.clone();
    sent.version_id = got.version_id.clone();
    sent.catalog_id = got.catalog_id.clone();
    sent
}

fn db(name: &str) -> Database {
    Database {
        name: name.into(),
        ..Default::default()
    }
}

fn names_of(tables: &[Table]) -> Vec<&str> {
    tables.iter().map(|t| t.name.as_str()).collect()
}

fn versions_of(tables: &[Table]) -> Vec<&str> {
    tables
        .iter()
        .map(|t| t.version_id.as_deref().unwrap_or("?"))
        .collect()
}

fn day(i: u64) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    (start + chrono::Days::new(i))
        .format("%Y-%m-%d")
        .to_string()
}

fn partition_at(values: &[&str], location: &str) -> Partition {
    Partition {
        values: values.iter().map(|v| v.to_string()).collect(),
        storage_descriptor: Some(StorageDescriptor {
            location: Some(location.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn location(p: &Partition) -> &str {
    p.storage_descriptor
        .as_ref()
        .and_then(|sd| sd.location.as_deref())
        .unwrap_or_default()
}

fn v(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------
// Against moto
// ---------------------------------------------------------------------

#[tokio::test]
async fn databases_are_created_read_listed_in_name_order_and_deleted() {
    let moto = Moto::start();
    let c = moto.catalog();
    let analytics = Database {
        name: "Analytics".into(),
        description: Some("team analytics".into()),
        location_uri: Some("s3://lake/analytics/".into()),
        parameters: params(&[("owner", "data"), ("tier", "gold")]),
        ..Default::default()
    };
    for d in [db("zeta"), analytics.clone(), db("Mid")] {
        c.create_database(d).await.unwrap();
    }
    let got = c.get_database("ANALYTICS").await.unwrap();
    assert_eq!(got.name, "analytics");
    assert_eq!(got.description, analytics.description);
    assert_eq!(got.location_uri, analytics.location_uri);
    assert_eq!(got.parameters, analytics.parameters);
    assert!(got.create_time.is_some_and(|t| t > 1.7e9), "{got:?}");
    assert_eq!(got.catalog_id.as_deref(), Some("123456789012"));

    let names: Vec<String> = c
        .list_databases()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["analytics", "mid", "zeta"]);

    match c.create_database(db("analytics")).await {
        Err(CatalogError::AlreadyExists(m)) => assert_eq!(m, "Database analytics"),
        other => panic!("{other:?}"),
    }
    c.delete_database("mid").await.unwrap();
    match c.get_database("mid").await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Database mid"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.delete_database("mid").await,
        Err(CatalogError::NotFound(_))
    ));
    assert_eq!(c.list_databases().await.unwrap().len(), 2);
    // A location that is not s3:// is refused as the embedded catalog does.
    assert!(matches!(
        c.create_database(Database {
            location_uri: Some("/etc/passwd".into()),
            ..db("x")
        })
        .await,
        Err(CatalogError::InvalidInput(_))
    ));
}

#[tokio::test]
async fn tables_round_trip_every_field_and_are_updated_listed_and_deleted() {
    let moto = Moto::start();
    let c = moto.catalog();
    c.create_database(db("web")).await.unwrap();

    let mut sent = full_table("Requests");
    sent.partition_indexes = Some(vec![PartitionIndex {
        index_name: "by_dt".into(),
        keys: vec!["dt".into()],
    }]);
    c.create_table("WEB", sent.clone()).await.unwrap();
    let view = Table {
        name: "errors_v".into(),
        table_type: Some(VIRTUAL_VIEW.into()),
        view_original_text: Some("/* Presto View: e30= */".into()),
        view_expanded_text: Some("/* Presto View */".into()),
        storage_descriptor: Some(StorageDescriptor {
            columns: vec![col("status", "bigint")],
            ..Default::default()
        }),
        ..Default::default()
    };
    c.create_table("web", view.clone()).await.unwrap();

    let got = c.get_table("web", "REQUESTS").await.unwrap();
    assert_eq!(got.name, "requests");
    assert_eq!(got.database_name.as_deref(), Some("web"));
    assert_eq!(got.version_id.as_deref(), Some("1"));
    assert!(got.create_time.is_some());
    assert_eq!(got.catalog_id.as_deref(), Some("123456789012"));
    let mut expected = sent.clone();
    expected.name = "requests".into();
    // moto ignores CreateTable's PartitionIndexes and answers
    // GetPartitionIndexes with an empty list.
    expected.partition_indexes = None;
    assert_eq!(got, as_stored(expected, &got));

    // Fields Glue leaves out when false or zero read back as set.
    let got_view = c.get_table("web", "errors_v").await.unwrap();
    assert!(got_view.is_view());
    let mut expected_view = view.clone();
    expected_view.retention = Some(0);
    let sd = expected_view.storage_descriptor.as_mut().unwrap();
    sd.compressed = Some(false);
    sd.number_of_buckets = Some(0);
    sd.stored_as_sub_directories = Some(false);
    assert_eq!(got_view, as_stored(expected_view, &got_view));

    let all = c.list_tables("web").await.unwrap();
    assert_eq!(names_of(&all), ["errors_v", "requests"]);
    assert_eq!(all[1], as_stored(full_table("requests"), &all[1]));

    // An update with the current version applies and makes version 2.
    let mut changed = full_table("requests");
    changed.description = Some("HTTP requests, with latency".into());
    changed
        .storage_descriptor
        .as_mut()
        .unwrap()
        .columns
        .push(col("latency_ms", "double"));
    c.update_table("web", changed.clone(), Some("1"))
        .await
        .unwrap();
    let got = c.get_table("web", "requests").await.unwrap();
    assert_eq!(got.version_id.as_deref(), Some("2"));
    assert_eq!(got, as_stored(changed.clone(), &got));

    // moto does not check UpdateTable's VersionId: a stale version is
    // accepted there (Glue refuses it; see
    // `version_id_reaches_glue_and_a_refusal_is_a_concurrent_modification`).
    changed.description = Some("stale".into());
    c.update_table("web", changed, Some("1")).await.unwrap();
    assert_eq!(
        c.get_table("web", "requests")
            .await
            .unwrap()
            .version_id
            .as_deref(),
        Some("3")
    );

    // Invalid column types are refused before anything is sent.
    let mut bad = full_table("requests");
    bad.partition_keys = vec![col("dt", "array<")];
    assert!(matches!(
        c.update_table("web", bad, None).await,
        Err(CatalogError::InvalidInput(_))
    ));

    match c.create_table("web", full_table("requests")).await {
        Err(CatalogError::AlreadyExists(m)) => assert_eq!(m, "Table web.requests"),
        other => panic!("{other:?}"),
    }
    match c.create_table("nodb", full_table("t")).await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Database nodb"),
        other => panic!("{other:?}"),
    }
    match c.update_table("web", full_table("nope"), None).await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Table web.nope"),
        other => panic!("{other:?}"),
    }
    c.delete_table("web", "requests").await.unwrap();
    match c.get_table("web", "requests").await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Table web.requests"),
        other => panic!("{other:?}"),
    }
    match c.delete_table("web", "requests").await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Table web.requests"),
        other => panic!("{other:?}"),
    }
    match c.list_tables("nodb").await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Database nodb"),
        other => panic!("{other:?}"),
    }
    assert_eq!(names_of(&c.list_tables("web").await.unwrap()), ["errors_v"]);
}

#[tokio::test]
async fn table_versions_are_paged_newest_first() {
    let moto = Moto::start();
    let c = moto.catalog();
    c.create_database(db("db")).await.unwrap();
    let mut t = full_table("t");
    t.description = Some("v1".into());
    c.create_table("db", t.clone()).await.unwrap();
    for n in 2..=5 {
        t.description = Some(format!("v{n}"));
        c.update_table("db", t.clone(), None).await.unwrap();
    }
    // moto lists versions oldest first: the catalog sorts them.
    let (page, more) = c.table_versions("db", "t", 0, 2).await.unwrap();
    assert_eq!(versions_of(&page), ["5", "4"]);
    assert!(more);
    assert_eq!(page[0].description.as_deref(), Some("v5"));
    assert_eq!(page[0], as_stored(t.clone(), &page[0]));
    let (page, more) = c.table_versions("db", "t", 2, 2).await.unwrap();
    assert_eq!(versions_of(&page), ["3", "2"]);
    assert!(more);
    let (page, more) = c.table_versions("db", "T", 4, 2).await.unwrap();
    assert_eq!(versions_of(&page), ["1"]);
    assert_eq!(page[0].description.as_deref(), Some("v1"));
    assert!(!more);
    let (page, more) = c.table_versions("db", "t", 0, 100).await.unwrap();
    assert_eq!(page.len(), 5);
    assert!(!more);
    let (page, more) = c.table_versions("db", "t", 0, 0).await.unwrap();
    assert!(page.is_empty() && more);
    let (page, more) = c.table_versions("db", "t", 9, 3).await.unwrap();
    assert!(page.is_empty() && !more);
    match c.table_versions("db", "nope", 0, 1).await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Table db.nope"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn partitions_are_created_in_batches_listed_filtered_deleted_and_updated() {
    let moto = Moto::start();
    let c = moto.catalog();
    c.create_database(db("lake")).await.unwrap();
    let mut table = full_table("events");
    table.partition_keys = vec![col("dt", "string")];
    c.create_table("lake", table).await.unwrap();

    // 250 partitions in one call: three BatchCreatePartition requests.
    let partitions: Vec<Partition> = (0..250)
        .rev()
        .map(|i| {
            let dt = day(i);
            Partition {
                values: vec![dt.clone()],
                last_access_time: Some(1_767_225_600.0),
                last_analyzed_time: Some(1_767_229_200.0),
                parameters: params(&[("numRows", &i.to_string())]),
                storage_descriptor: Some(StorageDescriptor {
                    location: Some(format!("s3://lake/events/dt={dt}/")),
                    ..StorageDescriptor::parquet("", vec![col("status", "bigint")])
                }),
                ..Default::default()
            }
        })
        .collect();
    let first_sent = partitions.last().unwrap().clone();
    let errors = c
        .create_partitions("lake", "events", partitions)
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");

    let all = c.get_partitions("lake", "events", None).await.unwrap();
    assert_eq!(all.len(), 250);
    assert_eq!(all[0].values, [day(0)]);
    assert_eq!(all[249].values, [day(249)]);
    assert!(all.windows(2).all(|w| w[0].values < w[1].values));
    let first = &all[0];
    assert_eq!(first.database_name.as_deref(), Some("lake"));
    assert_eq!(first.table_name.as_deref(), Some("events"));
    assert!(first.creation_time.is_some());
    let mut expected = first_sent.clone();
    expected.database_name = first.database_name.clone();
    expected.table_name = first.table_name.clone();
    expected.creation_time = first.creation_time;
    expected.catalog_id = first.catalog_id.clone();
    let sd = expected.storage_descriptor.as_mut().unwrap();
    sd.stored_as_sub_directories = Some(false);
    assert_eq!(first, &expected);

    // Glue expressions, evaluated by the server.
    let hits = c
        .get_partitions("lake", "events", Some("dt = '2026-11-02'"))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(location(&hits[0]), "s3://lake/events/dt=2026-11-02/");
    let later = c
        .get_partitions("lake", "events", Some("dt > '2026-11-02'"))
        .await
        .unwrap();
    let later: Vec<&str> = later.iter().map(|p| p.values[0].as_str()).collect();
    assert_eq!(later, ["2026-11-03", "2026-11-04", "2026-11-05"]);
    let march = c
        .get_partitions(
            "lake",
            "events",
            Some("dt between '2026-03-01' and '2026-03-10' AND dt <> '2026-03-05'"),
        )
        .await
        .unwrap();
    assert_eq!(march.len(), 9);
    let listed = c
        .get_partitions(
            "lake",
            "events",
            Some("dt in ('2026-04-01', '2026-05-01') or dt like '2026-06-0%'"),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 11);
    assert!(matches!(
        c.get_partitions("lake", "events", Some("nope = 1")).await,
        Err(CatalogError::InvalidInput(_))
    ));
    assert!(matches!(
        c.get_partitions("lake", "events", Some(&"dt = 'x' or ".repeat(300)))
            .await,
        Err(CatalogError::InvalidInput(_))
    ));

    // One deleted (and one that is not there).
    let errors = c
        .delete_partitions(
            "lake",
            "events",
            vec![v(&["2026-03-01"]), v(&["1999-01-01"]), v(&["2026-03-01"])],
        )
        .await
        .unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].0, ["1999-01-01"]);
    assert!(matches!(&errors[0].1, CatalogError::NotFound(m) if m.contains("1999-01-01")));
    assert!(matches!(errors[1].1, CatalogError::NotFound(_)));
    assert_eq!(
        c.get_partitions("lake", "events", None)
            .await
            .unwrap()
            .len(),
        249
    );
    match c.get_partition("lake", "events", &v(&["2026-03-01"])).await {
        Err(CatalogError::NotFound(m)) => {
            assert_eq!(m, "Partition [\"2026-03-01\"] of table lake.events")
        }
        other => panic!("{other:?}"),
    }

    // One moved, from the location it is at; a second writer that planned
    // from the old location is refused.
    let old = "s3://lake/events/dt=2026-11-02/";
    let moved = |from: &str, to: &str| PartitionUpdate {
        values: v(&["2026-11-02"]),
        partition: partition_at(&[], to),
        expected_location: Some(from.into()),
    };
    let errors = c
        .update_partitions(
            "lake",
            "events",
            vec![moved(old, "s3://lake/events/dt=2026-11-02/_c1/")],
        )
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let errors = c
        .update_partitions(
            "lake",
            "events",
            vec![
                moved(old, "s3://lake/events/dt=2026-11-02/_c2/"),
                PartitionUpdate {
                    values: v(&["1999-01-01"]),
                    partition: partition_at(&[], "s3://x/"),
                    expected_location: Some("s3://x/".into()),
                },
                PartitionUpdate {
                    values: v(&["1999-01-02"]),
                    partition: partition_at(&[], "s3://x/"),
                    expected_location: None,
                },
                PartitionUpdate {
                    values: v(&["2026-11-03"]),
                    partition: partition_at(&["a", "b"], "s3://x/"),
                    expected_location: None,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(matches!(&errors[0].1, CatalogError::ConcurrentModification(m) if m.contains("_c1")));
    assert!(matches!(errors[1].1, CatalogError::NotFound(_)));
    assert_eq!(errors[2].0, ["1999-01-02"]);
    assert!(
        matches!(errors[2].1, CatalogError::NotFound(_)),
        "{errors:?}"
    );
    assert!(matches!(errors[3].1, CatalogError::InvalidInput(_)));
    let p = c
        .get_partition("lake", "events", &v(&["2026-11-02"]))
        .await
        .unwrap();
    assert_eq!(location(&p), "s3://lake/events/dt=2026-11-02/_c1/");
    // An update without a precondition applies as given.
    let errors = c
        .update_partitions(
            "lake",
            "events",
            vec![PartitionUpdate {
                values: v(&["2026-11-02"]),
                partition: Partition {
                    parameters: params(&[("compacted", "true")]),
                    ..partition_at(&["2026-11-02"], "s3://lake/events/dt=2026-11-02/_c3/")
                },
                expected_location: None,
            }],
        )
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let p = c
        .get_partition("lake", "events", &v(&["2026-11-02"]))
        .await
        .unwrap();
    assert_eq!(location(&p), "s3://lake/events/dt=2026-11-02/_c3/");
    assert_eq!(p.parameters, params(&[("compacted", "true")]));
}

#[tokio::test]
async fn refused_partitions_are_reported_one_by_one() {
    let moto = Moto::start();
    let c = moto.catalog();
    c.create_database(db("db")).await.unwrap();
    let mut table = full_table("t");
    table.partition_keys = vec![col("year", "int"), col("service", "string")];
    c.create_table("db", table).await.unwrap();
    let errors = c
        .create_partitions(
            "db",
            "t",
            vec![
                partition_at(&["2025", "web"], "s3://b/t/2025/web/"),
                partition_at(&["2026", "web"], "s3://b/t/2026/web/"),
            ],
        )
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let bad_types = Partition {
        storage_descriptor: Some(StorageDescriptor {
            columns: vec![col("x", "struct<")],
            ..Default::default()
        }),
        ..partition_at(&["2028", "web"], "s3://b/t/")
    };
    let errors = c
        .create_partitions(
            "db",
            "t",
            vec![
                partition_at(&["2025", "web"], "s3://b/t/2025/web/"),
                partition_at(&["2026", "api"], "s3://b/t/2026/api/"),
                partition_at(&["2026", "api"], "s3://b/t/2026/api/"),
                partition_at(&["2027"], "s3://b/t/2027/"),
                bad_types,
                partition_at(&["2026", "web"], "s3://b/t/2026/web/"),
            ],
        )
        .await
        .unwrap();
    let got: Vec<(Vec<String>, &str)> = errors
        .iter()
        .map(|(values, e)| {
            let kind = match e {
                CatalogError::AlreadyExists(_) => "exists",
                CatalogError::InvalidInput(_) => "invalid",
                _ => "other",
            };
            (values.clone(), kind)
        })
        .collect();
    assert_eq!(
        got,
        [
            (v(&["2025", "web"]), "exists"),
            (v(&["2026", "api"]), "exists"),
            (v(&["2027"]), "invalid"),
            (v(&["2028", "web"]), "invalid"),
            (v(&["2026", "web"]), "exists"),
        ]
    );
    assert_eq!(c.get_partitions("db", "t", None).await.unwrap().len(), 3);
    match c.create_partitions("db", "nope", vec![]).await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Table db.nope"),
        other => panic!("{other:?}"),
    }
    match c.get_partitions("nodb", "t", None).await {
        Err(CatalogError::NotFound(m)) => assert_eq!(m, "Database nodb"),
        other => panic!("{other:?}"),
    }
}

/// Runs [`connect_child`] in a child process whose environment names moto
/// as the Glue endpoint (the environment of this process is not changed).
#[test]
fn connect_takes_endpoint_region_and_credentials_from_the_environment() {
    let moto = Moto::start();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["connect_child", "--exact", "--ignored", "--nocapture"])
        .env("LAKEHOSE_GLUE_CONNECT_CHILD", "1")
        .env("AWS_ENDPOINT_URL_GLUE", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIDLAKEHOSETEST")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/lakehose/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/lakehose/credentials",
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[tokio::test]
#[ignore = "run by connect_takes_endpoint_region_and_credentials_from_the_environment"]
async fn connect_child() {
    if std::env::var_os("LAKEHOSE_GLUE_CONNECT_CHILD").is_none() {
        eprintln!("connect_child only runs inside its parent test");
        return;
    }
    let endpoint = std::env::var("AWS_ENDPOINT_URL_GLUE").unwrap();
    let c = GlueCatalog::connect(GlueOptions {
        max_attempts: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let shown = format!("{c:?} {c}");
    println!("{shown}");
    assert!(shown.contains(&endpoint), "{shown}");
    assert!(shown.contains("us-east-1"), "{shown}");
    c.create_database(db("from_env")).await.unwrap();
    let names: Vec<String> = c
        .list_databases()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["from_env"]);

    // An explicit endpoint wins over the environment; one carrying
    // credentials is refused without showing them.
    let elsewhere = GlueCatalog::connect(GlueOptions {
        endpoint: Some("http://127.0.0.1:9".into()),
        region: Some("eu-west-1".into()),
        catalog_id: Some("111122223333".into()),
        max_attempts: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(elsewhere.catalog_id(), Some("111122223333"));
    assert!(format!("{elsewhere:?}").contains("eu-west-1"));
    match elsewhere.list_databases().await {
        Err(CatalogError::Storage(e)) => {
            assert!(!e.is_permanent(), "{e}");
            assert!(!e.to_string().contains(SECRET), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match GlueCatalog::connect(GlueOptions {
        endpoint: Some("http://AKID:hunter2@127.0.0.1:1".into()),
        ..Default::default()
    })
    .await
    {
        Err(e @ GlueSetupError::Endpoint { .. }) => {
            assert!(!e.to_string().contains("hunter2"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        GlueCatalog::connect(GlueOptions {
            catalog_id: Some("bad\nid".into()),
            ..Default::default()
        })
        .await,
        Err(GlueSetupError::CatalogId(_))
    ));
}

// ---------------------------------------------------------------------
// Against the scripted stand-in
// ---------------------------------------------------------------------

#[tokio::test]
async fn hostile_names_are_refused_before_any_request() {
    let stand = Stand::start(|_, _, _| ok(json!({}))).await;
    let c = stand.catalog();
    let long = "n".repeat(10_000);
    let hostile = [
        "../etc",
        "..",
        ".",
        "a/b",
        "a\\b",
        "",
        long.as_str(),
        "bad\u{0}name",
        "tab\tname",
        "line\nbreak",
        "esc\u{1b}[2J",
        "del\u{7f}",
        "c:drive",
    ];
    let t = |name: &str| Table {
        name: name.into(),
        ..Default::default()
    };
    for bad in hostile {
        let shown = bad.chars().take(20).collect::<String>();
        let results: Vec<(&str, Result<(), CatalogError>)> = vec![
            ("create_database", c.create_database(db(bad)).await),
            ("get_database", c.get_database(bad).await.map(drop)),
            ("delete_database", c.delete_database(bad).await),
            ("create_table db", c.create_table(bad, t("ok")).await),
            ("create_table", c.create_table("ok", t(bad)).await),
            ("get_table", c.get_table("ok", bad).await.map(drop)),
            ("get_table db", c.get_table(bad, "ok").await.map(drop)),
            ("list_tables", c.list_tables(bad).await.map(drop)),
            (
                "update_table",
                c.update_table("ok", t(bad), Some("1")).await,
            ),
            ("delete_table", c.delete_table(bad, "ok").await),
            (
                "table_versions",
                c.table_versions("ok", bad, 0, 10).await.map(drop),
            ),
            (
                "create_partitions",
                c.create_partitions("ok", bad, vec![partition_at(&["x"], "s3://b/")])
                    .await
                    .map(drop),
            ),
            (
                "get_partition",
                c.get_partition(bad, "ok", &v(&["x"])).await.map(drop),
            ),
            (
                "get_partitions",
                c.get_partitions("ok", bad, None).await.map(drop),
            ),
            (
                "delete_partitions",
                c.delete_partitions(bad, "ok", vec![v(&["x"])])
                    .await
                    .map(drop),
            ),
            (
                "update_partitions",
                c.update_partitions("ok", bad, vec![]).await.map(drop),
            ),
        ];
        for (what, r) in results {
            assert!(
                matches!(r, Err(CatalogError::InvalidInput(_))),
                "{what}({shown:?}): {r:?}"
            );
        }
    }
    // Invalid types and indexes are refused before sending too.
    let mut bad_type = full_table("t");
    bad_type.storage_descriptor.as_mut().unwrap().columns[0].data_type = Some("struct<a:".into());
    assert!(matches!(
        c.create_table("db", bad_type).await,
        Err(CatalogError::InvalidInput(_))
    ));
    let mut bad_index = full_table("t");
    bad_index.partition_indexes = Some(vec![PartitionIndex {
        index_name: "i".into(),
        keys: vec!["status".into()],
    }]);
    assert!(matches!(
        c.create_table("db", bad_index).await,
        Err(CatalogError::InvalidInput(_))
    ));
    assert!(matches!(
        c.get_partitions("db", "t", Some(&"x".repeat(3000))).await,
        Err(CatalogError::InvalidInput(_))
    ));
    assert_eq!(stand.count(), 0, "{:?}", stand.calls.lock().unwrap());
}

#[tokio::test]
async fn version_id_reaches_glue_and_a_refusal_is_a_concurrent_modification() {
    let stand = Stand::start(|op, body, nth| match op {
        "UpdateTable" if body.get("VersionId").is_some() => glue_error(
            "ConcurrentModificationException",
            "Update table failed due to concurrent modifications.",
        ),
        // Without a version, two lost races and then success.
        "UpdateTable" if nth <= 3 => glue_error("ConcurrentModificationException", "busy"),
        _ => ok(json!({})),
    })
    .await;
    let c = stand.catalog();
    match c
        .update_table("db", full_table("Requests"), Some("7"))
        .await
    {
        Err(CatalogError::ConcurrentModification(m)) => {
            assert!(m.contains("Table db.requests"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let sent = &stand.bodies("UpdateTable")[0];
    assert_eq!(sent["VersionId"], "7");
    assert_eq!(sent["DatabaseName"], "db");
    let input = &sent["TableInput"];
    assert_eq!(input["Name"], "requests");
    assert_eq!(input["Retention"], 30);
    assert_eq!(input["PartitionKeys"][0]["Name"], "dt");
    assert_eq!(input["PartitionKeys"][0]["Comment"], "day");
    assert_eq!(
        input["StorageDescriptor"]["SerdeInfo"]["Parameters"]["serialization.format"],
        "1"
    );
    assert_eq!(input["StorageDescriptor"]["SortColumns"][0]["SortOrder"], 1);
    assert_eq!(input["StorageDescriptor"]["NumberOfBuckets"], 8);
    assert_eq!(input["StorageDescriptor"]["StoredAsSubDirectories"], true);

    // An update without an expected version retries a lost race.
    c.update_table("db", full_table("requests"), None)
        .await
        .unwrap();
    let bodies = stand.bodies("UpdateTable");
    assert_eq!(bodies.len(), 4);
    assert!(bodies[1..].iter().all(|b| b.get("VersionId").is_none()));
}

#[tokio::test]
async fn throttling_is_retried_and_lasting_faults_are_transient() {
    let stand = Stand::start(|op, _, nth| match op {
        "GetDatabase" if nth <= 2 => glue_error("ThrottlingException", "Rate exceeded"),
        "GetDatabase" => ok(json!({ "Database": { "Name": "db", "CreateTime": 1.7e9 } })),
        "GetDatabases" => (
            500,
            json!({ "__type": "InternalServiceException", "message": "internal" }),
        ),
        "GetTables" => glue_error("AccessDeniedException", "not allowed"),
        _ => glue_error("ThrottlingException", "Rate exceeded"),
    })
    .await;
    let c = stand.catalog();
    let d = c.get_database("db").await.unwrap();
    assert_eq!(d.name, "db");
    assert_eq!(d.create_time, Some(1.7e9));
    assert_eq!(stand.bodies("GetDatabase").len(), 3);

    for (what, r) in [
        ("GetDatabases", c.list_databases().await.map(drop)),
        ("GetTables", c.list_tables("db").await.map(drop)),
        ("GetTable", c.get_table("db", "t").await.map(drop)),
    ] {
        match r {
            Err(CatalogError::Storage(e)) => {
                assert!(!e.is_permanent(), "{what}: {e}");
                let shown = format!("{e} {e:?}");
                assert!(shown.contains(what), "{shown}");
                assert!(!shown.contains(SECRET), "{shown}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // 5xx and throttling are retried up to the attempts; denial is not.
    assert_eq!(stand.bodies("GetDatabases").len(), 3);
    assert_eq!(stand.bodies("GetTable").len(), 3);
    assert_eq!(stand.bodies("GetTables").len(), 1);

    // Nothing listening: a transport fault, transient too.
    let port = free_port();
    let gone = GlueCatalog::from_client(client(&format!("http://127.0.0.1:{port}"), 2), None);
    match gone.get_database("db").await {
        Err(CatalogError::Storage(e)) => assert!(!e.is_permanent(), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?} {gone:?}").contains(SECRET));
}

#[tokio::test]
async fn listings_follow_next_token_and_stop_at_the_page_limit() {
    let stand = Stand::start(|op, body, nth| {
        let token = body.get("NextToken").and_then(Value::as_str);
        let table = |name: &str| json!({ "Name": name, "DatabaseName": "db" });
        match (op, token) {
            ("GetTables", None) => ok(json!({
                "TableList": [table("c"), table("a")], "NextToken": "p2"
            })),
            ("GetTables", Some("p2")) => ok(json!({
                "TableList": [table("b")], "NextToken": "p3"
            })),
            ("GetTables", Some("p3")) => ok(json!({ "TableList": [table("d")] })),
            ("GetDatabases", _) => ok(json!({
                "DatabaseList": [{ "Name": format!("d{nth}") }],
                "NextToken": format!("t{nth}")
            })),
            ("GetPartitions", _) => ok(json!({ "Partitions": [], "NextToken": "same" })),
            _ => glue_error("InvalidInputException", "unexpected"),
        }
    })
    .await;
    let c = stand.catalog().with_page_limit(5);
    let tables = c.list_tables("db").await.unwrap();
    assert_eq!(names_of(&tables), ["a", "b", "c", "d"]);
    let sent = stand.bodies("GetTables");
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0]["MaxResults"], 100);
    assert_eq!(sent[2]["NextToken"], "p3");

    match c.list_databases().await {
        Err(CatalogError::Storage(e)) => {
            assert!(e.is_permanent(), "{e}");
            assert!(e.to_string().contains("more than 5 pages"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stand.bodies("GetDatabases").len(), 5);
    match c.get_partitions("db", "t", None).await {
        Err(CatalogError::Storage(e)) => {
            assert!(e.to_string().contains("same NextToken twice"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stand.bodies("GetPartitions").len(), 2);
}

#[tokio::test]
async fn table_versions_stop_reading_once_glue_has_listed_the_page() {
    // 250 versions, newest first, 100 to a page.
    let stand = Stand::start(|op, body, _| {
        if op != "GetTableVersions" {
            return glue_error("InvalidInputException", "unexpected");
        }
        let start: usize = body
            .get("NextToken")
            .and_then(Value::as_str)
            .map_or(0, |t| t.parse().unwrap());
        let end = (start + 100).min(250);
        let versions: Vec<Value> = (start..end)
            .map(|i| {
                let id = (250 - i).to_string();
                json!({ "VersionId": id, "Table": { "Name": "t", "VersionId": id } })
            })
            .collect();
        let mut reply = json!({ "TableVersions": versions });
        if end < 250 {
            reply["NextToken"] = json!(end.to_string());
        }
        ok(reply)
    })
    .await;
    let c = stand.catalog();
    let (page, more) = c.table_versions("db", "t", 0, 10).await.unwrap();
    assert_eq!(versions_of(&page)[..3], ["250", "249", "248"]);
    assert!(more);
    assert_eq!(stand.bodies("GetTableVersions").len(), 1);
    let (page, more) = c.table_versions("db", "t", 95, 10).await.unwrap();
    assert_eq!(versions_of(&page)[0], "155");
    assert_eq!(page.len(), 10);
    assert!(more);
    assert_eq!(stand.bodies("GetTableVersions").len(), 3);
    let (page, more) = c.table_versions("db", "t", 245, 10).await.unwrap();
    assert_eq!(versions_of(&page), ["5", "4", "3", "2", "1"]);
    assert!(!more);
    assert_eq!(stand.bodies("GetTableVersions").len(), 6);
}

#[tokio::test]
async fn partition_calls_are_split_at_glues_batch_limits() {
    let stand = Stand::start(|op, body, _| match op {
        "GetTable" => ok(json!({ "Table": {
            "Name": "t", "DatabaseName": "db",
            "PartitionKeys": [{ "Name": "n", "Type": "string" }]
        }})),
        "BatchCreatePartition" => {
            let taken = body["PartitionInputList"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["Values"][0] == "p007");
            if taken {
                ok(json!({ "Errors": [{
                    "PartitionValues": ["p007"],
                    "ErrorDetail": { "ErrorCode": "AlreadyExistsException", "ErrorMessage": "exists" }
                }]}))
            } else {
                ok(json!({}))
            }
        }
        "BatchDeletePartition" => ok(json!({ "Errors": [{
            "PartitionValues": body["PartitionsToDelete"][0]["Values"],
            "ErrorDetail": { "ErrorCode": "EntityNotFoundException", "ErrorMessage": "Cannot find partition." }
        }]})),
        "BatchUpdatePartition" => ok(json!({ "Errors": [{
            "PartitionValueList": body["Entries"][1]["PartitionValueList"],
            "ErrorDetail": { "ErrorCode": "InternalServiceException", "ErrorMessage": "try later" }
        }]})),
        _ => glue_error("InvalidInputException", "unexpected"),
    })
    .await;
    let c = stand.catalog();
    let name = |i: usize| format!("p{i:03}");
    let partitions: Vec<Partition> = (0..250)
        .map(|i| partition_at(&[&name(i)], &format!("s3://b/t/{i}/")))
        .collect();
    let errors = c.create_partitions("db", "t", partitions).await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, [name(7)]);
    assert!(matches!(&errors[0].1, CatalogError::AlreadyExists(m) if m.contains("p007")));
    let mut sizes: Vec<usize> = stand
        .bodies("BatchCreatePartition")
        .iter()
        .map(|b| b["PartitionInputList"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);

    let errors = c
        .delete_partitions("db", "t", (0..60).map(|i| vec![name(i)]).collect())
        .await
        .unwrap();
    let mut sizes: Vec<usize> = stand
        .bodies("BatchDeletePartition")
        .iter()
        .map(|b| b["PartitionsToDelete"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [10, 25, 25]);
    // One not found per batch, reported in the order of the call.
    let missing: Vec<&str> = errors.iter().map(|(v, _)| v[0].as_str()).collect();
    assert_eq!(missing, ["p000", "p025", "p050"]);
    assert!(
        errors
            .iter()
            .all(|(_, e)| matches!(e, CatalogError::NotFound(_)))
    );

    let updates: Vec<PartitionUpdate> = (0..150)
        .map(|i| PartitionUpdate {
            values: vec![name(i)],
            partition: partition_at(&[], &format!("s3://b/t/{i}/_c1/")),
            expected_location: None,
        })
        .collect();
    let errors = c.update_partitions("db", "t", updates).await.unwrap();
    let mut sizes: Vec<usize> = stand
        .bodies("BatchUpdatePartition")
        .iter()
        .map(|b| b["Entries"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100]);
    let failed: Vec<&str> = errors.iter().map(|(v, _)| v[0].as_str()).collect();
    assert_eq!(failed, ["p001", "p101"]);
    assert!(
        errors
            .iter()
            .all(|(_, e)| matches!(e, CatalogError::Storage(s) if !s.is_permanent()))
    );
    // Every entry names the partition and carries its full new values.
    let first = &stand.bodies("BatchUpdatePartition")[0]["Entries"][0];
    assert_eq!(
        first["PartitionInput"]["Values"],
        first["PartitionValueList"]
    );
}

#[tokio::test]
async fn partition_indexes_are_created_read_and_reconciled() {
    let stand = Stand::start(|op, _, _| match op {
        "GetTable" => ok(json!({ "Table": {
            "Name": "t", "DatabaseName": "db", "VersionId": "4",
            "PartitionKeys": [
                { "Name": "dt", "Type": "string" },
                { "Name": "region", "Type": "string" }
            ]
        }})),
        "GetPartitionIndexes" => ok(json!({ "PartitionIndexDescriptorList": [
            { "IndexName": "by_dt", "IndexStatus": "ACTIVE",
              "Keys": [{ "Name": "dt", "Type": "string" }] },
            { "IndexName": "by_region", "IndexStatus": "ACTIVE",
              "Keys": [{ "Name": "region", "Type": "string" }] },
            { "IndexName": "old", "IndexStatus": "DELETING",
              "Keys": [{ "Name": "region", "Type": "string" }] }
        ]})),
        _ => ok(json!({})),
    })
    .await;
    let c = stand.catalog();
    let index = |name: &str, keys: &[&str]| PartitionIndex {
        index_name: name.into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
    };
    let mut t = full_table("t");
    t.partition_indexes = Some(vec![index("by_dt", &["dt"])]);
    c.create_table("db", t).await.unwrap();
    let created = &stand.bodies("CreateTable")[0];
    assert_eq!(
        created["PartitionIndexes"],
        json!([{ "IndexName": "by_dt", "Keys": ["dt"] }])
    );
    assert!(created["TableInput"].get("PartitionIndexes").is_none());

    let got = c.get_table("db", "t").await.unwrap();
    assert_eq!(
        got.partition_indexes,
        Some(vec![
            index("by_dt", &["dt"]),
            index("by_region", &["region"])
        ])
    );
    assert_eq!(got.version_id.as_deref(), Some("4"));

    // Keep by_dt, drop by_region, add by_both.
    let mut wanted = got.clone();
    wanted.partition_indexes = Some(vec![
        index("by_dt", &["dt"]),
        index("by_both", &["dt", "region"]),
    ]);
    c.update_table("db", wanted, Some("4")).await.unwrap();
    let deleted = stand.bodies("DeletePartitionIndex");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["IndexName"], "by_region");
    let added = stand.bodies("CreatePartitionIndex");
    assert_eq!(added.len(), 1);
    assert_eq!(
        added[0]["PartitionIndex"],
        json!({ "IndexName": "by_both", "Keys": ["dt", "region"] })
    );
    // An update that names no indexes leaves them alone.
    c.update_table("db", full_table("t"), None).await.unwrap();
    assert_eq!(stand.bodies("DeletePartitionIndex").len(), 1);
    assert_eq!(stand.bodies("CreatePartitionIndex").len(), 1);
}
