//! The query service end to end: records shipped through the Firehose API
//! are answered through the real `aws-sdk-athena` client (within a second
//! of their acknowledgement, before any flush), through the Postgres wire
//! protocol, and through `lakehose query`.

use std::time::{Duration, Instant};

use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};

use crate::util::{Server, create_parquet_stream_with_table, record, rt};

pub fn athena_client(endpoint: &str) -> aws_sdk_athena::Client {
    let creds = aws_credential_types::Credentials::new("test", "test", None, None, "e2e");
    let config = aws_sdk_athena::Config::builder()
        .behavior_version(aws_sdk_athena::config::BehaviorVersion::latest())
        .region(aws_sdk_athena::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .build();
    aws_sdk_athena::Client::from_conf(config)
}

/// Runs a statement to completion; returns its id and final state.
pub async fn run(
    athena: &aws_sdk_athena::Client,
    sql: &str,
    database: &str,
) -> (String, QueryExecutionState, Option<String>) {
    let id = athena
        .start_query_execution()
        .query_string(sql)
        .query_execution_context(QueryExecutionContext::builder().database(database).build())
        .result_configuration(
            ResultConfiguration::builder()
                .output_location("s3://athena-results/e2e/")
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("StartQueryExecution {sql}: {e:?}"))
        .query_execution_id
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let exec = athena
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .unwrap()
            .query_execution
            .unwrap();
        let status = exec.status.unwrap();
        let state = status.state.unwrap();
        if matches!(
            state,
            QueryExecutionState::Succeeded
                | QueryExecutionState::Failed
                | QueryExecutionState::Cancelled
        ) {
            return (id, state, status.state_change_reason);
        }
        assert!(Instant::now() < deadline, "{sql} did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs a statement that must succeed; returns its id.
pub async fn run_ok(athena: &aws_sdk_athena::Client, sql: &str, database: &str) -> String {
    let (id, state, reason) = run(athena, sql, database).await;
    assert_eq!(state, QueryExecutionState::Succeeded, "{sql}: {reason:?}");
    id
}

/// Runs a SELECT and returns its data rows (header row dropped).
pub async fn select(
    athena: &aws_sdk_athena::Client,
    sql: &str,
    database: &str,
) -> Vec<Vec<Option<String>>> {
    all_rows(athena, sql, database, true).await
}

/// Runs a statement and returns its result rows, dropping the first row
/// when `header` (SELECT results start with one; SHOW/DESCRIBE do not).
pub async fn all_rows(
    athena: &aws_sdk_athena::Client,
    sql: &str,
    database: &str,
    header: bool,
) -> Vec<Vec<Option<String>>> {
    let (id, state, reason) = run(athena, sql, database).await;
    assert_eq!(state, QueryExecutionState::Succeeded, "{sql}: {reason:?}");
    results(athena, &id, header).await
}

/// Runs each `;`-separated statement of `script` (its `--` comment lines
/// dropped) in the `default` database; every one must succeed.
pub async fn run_script(athena: &aws_sdk_athena::Client, script: &str) {
    let text: Vec<&str> = script
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let text = text.join("\n");
    for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (_, state, reason) = run(athena, statement, "default").await;
        assert_eq!(
            state,
            aws_sdk_athena::types::QueryExecutionState::Succeeded,
            "{statement}: {reason:?}"
        );
    }
}

/// The result rows of a finished query, paging through GetQueryResults.
pub async fn results(
    athena: &aws_sdk_athena::Client,
    id: &str,
    header: bool,
) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    let mut token = None;
    let mut first = true;
    loop {
        let page = athena
            .get_query_results()
            .query_execution_id(id)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        let mut page_rows = page
            .result_set
            .unwrap()
            .rows
            .unwrap_or_default()
            .into_iter();
        if first && header {
            page_rows.next();
        }
        first = false;
        rows.extend(page_rows.map(|r| {
            r.data
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.var_char_value)
                .collect::<Vec<_>>()
        }));
        token = page.next_token;
        if token.is_none() {
            return rows;
        }
    }
}

fn cell(rows: &[Vec<Option<String>>]) -> String {
    rows[0][0].clone().unwrap_or_default()
}

#[test]
fn acked_records_are_queryable_at_once_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let athena = athena_client(&server.endpoint);
    let firehose = server.client();
    rt().block_on(async {
        for sql in [
            "CREATE DATABASE IF NOT EXISTS weblogs",
            "CREATE EXTERNAL TABLE weblogs.requests (id bigint, path string, status int, latency_ms double)
             PARTITIONED BY (service string, dt string)
             STORED AS PARQUET LOCATION 's3://fresh-lake/logs/'",
        ] {
            let (_, state, reason) = run(&athena, sql, "default").await;
            assert_eq!(state, QueryExecutionState::Succeeded, "{sql}: {reason:?}");
        }
        // A 15-minute buffer: nothing reaches a file during the test.
        create_parquet_stream_with_table(&firehose, "fresh", "fresh-lake", 900, Some(("weblogs", "requests"))).await;
        let services = ["api", "web", "auth"];
        let records: Vec<_> = (0..300)
            .map(|i| {
                record(format!(
                    r#"{{"id": {i}, "service": "{}", "path": "/p{}", "status": {}, "latency_ms": {}.5}}"#,
                    services[i % 3],
                    i % 5,
                    if i % 10 == 0 { 500 } else { 200 },
                    i
                ))
            })
            .collect();
        let acked = Instant::now();
        let out = firehose
            .put_record_batch()
            .delivery_stream_name("fresh")
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_put_count, 0);
        let rows = select(&athena, "SELECT count(*), sum(id), count_if(status = 500) FROM requests", "weblogs").await;
        let elapsed = acked.elapsed();
        assert_eq!(rows, vec![vec![Some("300".into()), Some("44850".into()), Some("30".into())]]);
        assert!(elapsed < Duration::from_secs(1), "the answer took {elapsed:?} after the ack");
        // Partition columns of pending rows come from their folders and prune.
        let rows = select(
            &athena,
            "SELECT service, count(*) FROM weblogs.requests WHERE service <> 'auth' GROUP BY service ORDER BY service",
            "default",
        )
        .await;
        assert_eq!(
            rows,
            vec![
                vec![Some("api".into()), Some("100".into())],
                vec![Some("web".into()), Some("100".into())]
            ]
        );
    });
    // SIGTERM flushes the buffers into Parquet; after a restart the same
    // answers come from the files (and no row is counted twice).
    server.terminate();
    assert!(!crate::util::files(&dir.path().join("fresh-lake"), ".parquet").is_empty());
    let server = Server::start(dir.path(), &[]);
    let athena = athena_client(&server.endpoint);
    rt().block_on(async {
        let rows = select(
            &athena,
            "SELECT count(*), sum(id) FROM weblogs.requests",
            "default",
        )
        .await;
        assert_eq!(rows, vec![vec![Some("300".into()), Some("44850".into())]]);
        let partitions = all_rows(
            &athena,
            "SHOW PARTITIONS weblogs.requests",
            "default",
            false,
        )
        .await;
        assert_eq!(partitions.len(), 3, "{partitions:?}");
        // Unnamed expressions are named by position, as Athena names them
        // (the first row is the header).
        let rows = all_rows(
            &athena,
            "SELECT service, count(*), max(id) AS top FROM weblogs.requests GROUP BY service ORDER BY service LIMIT 1",
            "default",
            false,
        )
        .await;
        let expected: Vec<Option<String>> =
            ["service", "_col1", "top"].map(|n| Some(n.to_string())).to_vec();
        assert_eq!(rows[0], expected, "{rows:?}");
        let rows = select(
            &athena,
            "SELECT approx_percentile(latency_ms, 0.5) BETWEEN 100 AND 200 FROM weblogs.requests",
            "default",
        )
        .await;
        assert_eq!(cell(&rows), "true");

        // The same table over the Postgres wire protocol.
        let pg = server.pg("weblogs").await;
        let row = pg
            .query_one(
                "SELECT count(*) AS n, max(id) AS top FROM requests WHERE service = $1",
                &[&"api"],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>("n"), 100);
        assert_eq!(row.get::<_, i64>("top"), 297);
        let err = pg.simple_query("SELECT * FROM nope").await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE),
            "{err:?}"
        );

        // The executions' figures in /metrics, from the history that
        // survived the restart.
        let metrics = reqwest::get(format!("{}/metrics", server.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} is missing:\n{metrics}"))
        };
        assert!(value("lakehose_athena_executions{state=\"SUCCEEDED\"}") >= 7.0);
        assert_eq!(value("lakehose_athena_executions{state=\"FAILED\"}"), 0.0);
        assert_eq!(value("lakehose_athena_executions{state=\"RUNNING\"}"), 0.0);
        assert!(value("lakehose_athena_data_scanned_bytes") > 0.0);
        assert!(value("lakehose_athena_total_seconds") > 0.0);
        assert!(value("lakehose_athena_engine_seconds") <= value("lakehose_athena_total_seconds"));
    });
}

#[test]
fn sql_cli_runs_scripts_locally_and_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("setup.sql");
    std::fs::write(
        &script,
        "CREATE DATABASE shop;\n-- a comment; with a semicolon\nCREATE TABLE shop.items WITH (external_location = 's3://shop/items/') AS SELECT * FROM (VALUES (1, 'tea', 2.5), (2, 'cake', 4.0)) AS t(id, name, price);\n",
    )
    .unwrap();
    let lakehose = env!("CARGO_BIN_EXE_lakehose");
    let out = std::process::Command::new(lakehose)
        .args(["query", "--data-dir"])
        .arg(dir.path())
        .arg("-f")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(lakehose)
        .args(["query", "--format", "csv", "-d", "shop", "--data-dir"])
        .arg(dir.path())
        .arg("SELECT name, price * 2 AS double_price FROM items ORDER BY id")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "name,double_price\ntea,5.0\ncake,8.0\n"
    );
    // A failing statement: non-zero exit, the error on stderr.
    let out = std::process::Command::new(lakehose)
        .args(["query", "--data-dir"])
        .arg(dir.path())
        .arg("SELECT * FROM shop.missing")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shop.missing"));
    // The same data through a running server and the Athena API.
    let server = Server::start(dir.path(), &[]);
    let out = std::process::Command::new(lakehose)
        .args([
            "query",
            "--format",
            "json",
            "--endpoint",
            &server.endpoint,
            "-d",
            "shop",
        ])
        .arg("SELECT id, name FROM items WHERE price > 3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"id\":\"2\",\"name\":\"cake\"}\n"
    );
    let out = std::process::Command::new(lakehose)
        .args(["query", "--endpoint", &server.endpoint])
        .arg("SELEC 1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SYNTAX_ERROR"));
}

/// boto3 as `.ci/run` installs it from PyPI: its botocore speaks the
/// Athena API in REST-JSON (`GET /query-executions/{id}` and so on; older
/// ones sent AWS JSON 1.1). Every Athena operation lakehose serves is
/// called through it, results paged through the query string, and a bad
/// id comes back as InvalidRequestException.
#[test]
fn boto3_calls_every_athena_operation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let script = r#"
import os, sys, time, boto3, botocore
athena = boto3.client("athena", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
    aws_access_key_id="x", aws_secret_access_key="x",
    config=botocore.config.Config(retries={"max_attempts": 1}))
print("protocol", athena.meta.service_model.protocol)
out = {"OutputLocation": "s3://athena-results/py/"}
def run(sql, wg="primary"):
    qid = athena.start_query_execution(QueryString=sql, ResultConfiguration=out, WorkGroup=wg)["QueryExecutionId"]
    for _ in range(600):
        status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
        if status["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            assert status["State"] == "SUCCEEDED", (sql, status)
            return qid
        time.sleep(0.05)
    sys.exit(f"{sql} did not finish")
run("CREATE DATABASE py")
run("CREATE TABLE py.t WITH (format = 'PARQUET', external_location = 's3://lake/py/t/') AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')) AS v(id, name)")
qid = run("SELECT id, name FROM py.t ORDER BY id")
rows = []
for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=qid, PaginationConfig={"PageSize": 2}):
    rows += [[d.get("VarCharValue") for d in r["Data"]] for r in page["ResultSet"]["Rows"]]
assert rows == [["id", "name"], ["1", "a"], ["2", "b"], ["3", "c"], ["4", "d"], ["5", "e"]], rows
assert qid in athena.list_query_executions(MaxResults=50)["QueryExecutionIds"]
got = athena.batch_get_query_execution(QueryExecutionIds=[qid])["QueryExecutions"]
assert got[0]["QueryExecutionId"] == qid, got
athena.stop_query_execution(QueryExecutionId=qid)
catalogs = [c["CatalogName"] for c in athena.list_data_catalogs()["DataCatalogsSummary"]]
assert "AwsDataCatalog" in catalogs, catalogs
assert athena.get_data_catalog(Name="AwsDataCatalog")["DataCatalog"]["Name"] == "AwsDataCatalog"
dbs = [d["Name"] for d in athena.list_databases(CatalogName="AwsDataCatalog")["DatabaseList"]]
assert "py" in dbs, dbs
assert athena.get_database(CatalogName="AwsDataCatalog", DatabaseName="py")["Database"]["Name"] == "py"
tables = athena.list_table_metadata(CatalogName="AwsDataCatalog", DatabaseName="py")["TableMetadataList"]
assert [t["Name"] for t in tables] == ["t"], tables
cols = athena.get_table_metadata(CatalogName="AwsDataCatalog", DatabaseName="py", TableName="t")["TableMetadata"]["Columns"]
assert [c["Name"] for c in cols] == ["id", "name"], cols
athena.create_work_group(Name="analysts", Description="py")
assert athena.get_work_group(WorkGroup="analysts")["WorkGroup"]["Description"] == "py"
athena.update_work_group(WorkGroup="analysts", Description="changed")
assert athena.get_work_group(WorkGroup="analysts")["WorkGroup"]["Description"] == "changed"
assert "analysts" in [w["Name"] for w in athena.list_work_groups()["WorkGroups"]]
run("SELECT 1", wg="analysts")
athena.delete_work_group(WorkGroup="analysts", RecursiveDeleteOption=True)
assert "analysts" not in [w["Name"] for w in athena.list_work_groups()["WorkGroups"]]
try:
    athena.get_query_execution(QueryExecutionId="not/an id")
    sys.exit("a bad id was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidRequestException", e.response
print("boto3 athena ok")
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("ENDPOINT", &server.endpoint)
        .env_remove("AWS_PROFILE")
        .output()
        .expect("python3 (with boto3, which .ci/run installs)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "boto3: {text}");
    assert!(text.contains("boto3 athena ok"), "{text}");
}

/// Hostile REST-JSON calls: path-like ids, encoded traversal, huge and
/// deeply nested bodies, out-of-range numbers, unknown methods. Each is
/// refused with a 4xx naming the problem; nothing is read outside the
/// history and the server stays up.
#[test]
fn hostile_rest_json_calls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let ep = &server.endpoint;
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let long_id = "a".repeat(10_000);
    let calls: Vec<(&str, String, Vec<u8>)> = vec![
        (
            "GET",
            format!("{ep}/query-executions/..%2F..%2F_lakehose%2Fcatalog"),
            vec![],
        ),
        (
            "GET",
            format!("{ep}/query-executions/%2e%2e/results"),
            vec![],
        ),
        (
            "GET",
            format!("{ep}/query-executions/%2Fetc%2Fpasswd"),
            vec![],
        ),
        (
            "GET",
            format!("{ep}/query-executions/file:%2F%2F%2Fetc%2Fpasswd/results"),
            vec![],
        ),
        ("GET", format!("{ep}/query-executions/{long_id}"), vec![]),
        (
            "GET",
            format!("{ep}/data-catalogs/AwsDataCatalog/databases/..%2F..%2Fetc/tables/passwd"),
            vec![],
        ),
        (
            "GET",
            format!("{ep}/query-executions?MaxResults=99999999999999999999999"),
            vec![],
        ),
        (
            "GET",
            format!("{ep}/query-executions?MaxResults=-5"),
            vec![],
        ),
        ("POST", format!("{ep}/query-executions"), deep.into_bytes()),
        (
            "POST",
            format!("{ep}/query-executions"),
            b"{\"QueryString\":".to_vec(),
        ),
        (
            "POST",
            format!("{ep}/batch-get-query-executions"),
            b"[]".to_vec(),
        ),
        ("PUT", format!("{ep}/workgroups"), vec![]),
        ("GET", format!("{ep}/workgroups/a/b/c"), vec![]),
    ];
    rt().block_on(async {
        let http = reqwest::Client::new();
        for (method, url, body) in calls {
            let resp = http
                .request(method.parse().unwrap(), &url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            assert!(
                status.is_client_error(),
                "{method} {}: {status} {text}",
                &url[..url.len().min(200)]
            );
            assert!(!text.contains("root:"), "{text}");
        }
        let health = http.get(format!("{ep}/health")).send().await.unwrap();
        assert!(health.status().is_success());
    });
}
