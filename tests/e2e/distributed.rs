//! Queries across two `lakehose worker`s over what is not a plain Parquet
//! folder: a partitioned Delta table an ETL job wrote (alone and joined
//! with a Parquet table) and records a stream acknowledged but has not
//! written yet. Every answer through the workers equals the embedded
//! engine's, and `EXPLAIN` names the stages that ran on them.

use std::path::Path;

use aws_sdk_athena::types::QueryExecutionState;

use crate::athena::{athena_client, run, run_ok, select};
use crate::util::{Server, Worker, create_parquet_stream_with_table, record, rt};

const TOKEN: &str = "e2e-worker-token-0123456789";

const EVENTS: &str = "-- target: curated.events
-- mode: overwrite
-- partitioned_by: dt
SELECT service, status, latency_ms, dt FROM raw.requests
";

const QUERIES: [&str; 4] = [
    "SELECT dt, count(*), sum(latency_ms), count_if(status = 500) FROM curated.events GROUP BY dt ORDER BY dt",
    "SELECT e.service, count(*) FROM curated.events e JOIN raw.requests r \
     ON e.service = r.service AND e.dt = r.dt WHERE e.status = 500 AND r.status = 200 \
     GROUP BY e.service ORDER BY e.service",
    "SELECT service, count(*) FROM curated.events WHERE dt = '2026-11-02' GROUP BY service ORDER BY service",
    "SELECT count(*), sum(status) FROM curated.\"events@v0\"",
];

fn lakehose(data: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(args)
        .env("LAKEHOSE_DATA_DIR", data)
        .env("LAKEHOSE_LOG", "warn")
        .output()
        .expect("run lakehose");
    assert!(
        out.status.success(),
        "lakehose {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// raw.requests (Parquet, 3 days × 600 rows) and curated.events, the Delta
/// table an ETL job makes of it (one folder per day).
fn tables(data: &Path) {
    let rows: Vec<String> = ["2026-11-01", "2026-11-02", "2026-11-03"]
        .iter()
        .flat_map(|d| {
            (0..600).map(move |i| {
                format!(
                    "('svc{}', {}, {}.5, '{d}')",
                    i % 4,
                    if i % 10 == 0 { 500 } else { 200 },
                    i % 97
                )
            })
        })
        .collect();
    lakehose(data, &["query", "CREATE DATABASE raw"]);
    lakehose(
        data,
        &[
            "query",
            &format!(
                "CREATE TABLE raw.requests WITH (format = 'PARQUET', partitioned_by = ARRAY['dt'], \
                 external_location = 's3://lake/raw/requests/') \
                 AS SELECT * FROM (VALUES {}) AS t(service, status, latency_ms, dt)",
                rows.join(", ")
            ),
        ],
    );
    let jobs = data.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(jobs.join("events.sql"), EVENTS).unwrap();
    let out = lakehose(
        data,
        &["etl", "--jobs", jobs.to_str().unwrap(), "run", "--all"],
    );
    assert!(out.contains("events SUCCEEDED"), "{out}");
}

/// The answers of `queries` from `server`.
fn answers(server: &Server, queries: &[&str]) -> Vec<Vec<Vec<Option<String>>>> {
    let athena = athena_client(&server.endpoint);
    rt().block_on(async {
        let mut out = Vec::new();
        for sql in queries {
            out.push(select(&athena, sql, "default").await);
        }
        out
    })
}

fn with_workers(data: &Path, workers: &[Worker], token: &str) -> Server {
    let addresses = workers
        .iter()
        .map(|w| w.address.as_str())
        .collect::<Vec<_>>()
        .join(",");
    // 1 KiB per scan task: every file is a task of its own.
    Server::start(
        data,
        &[
            "--workers",
            &addresses,
            "--worker-token",
            token,
            "--worker-task-kb",
            "1",
        ],
    )
}

/// The text of `EXPLAIN sql` through `server`.
fn explain(server: &Server, sql: &str) -> String {
    let athena = athena_client(&server.endpoint);
    rt().block_on(async {
        let rows = select(&athena, &format!("EXPLAIN {sql}"), "default").await;
        rows.into_iter()
            .flatten()
            .map(Option::unwrap_or_default)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[test]
fn delta_tables_and_pending_records_read_across_two_workers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    tables(data);

    let embedded = Server::start(data, &[]);
    let expected = answers(&embedded, &QUERIES);
    drop(embedded);
    assert_eq!(expected[0].len(), 3, "{:?}", expected[0]);
    assert_eq!(expected[3][0][0].as_deref(), Some("1800"));
    assert_eq!(
        expected[0][1],
        vec![
            Some("2026-11-02".into()),
            Some("600".into()),
            Some(format!(
                "{:.1}",
                (0..600).map(|i| (i % 97) as f64 + 0.5).sum::<f64>()
            )),
            Some("60".into())
        ]
    );

    let workers = [Worker::start(data, TOKEN), Worker::start(data, TOKEN)];
    let server = with_workers(data, &workers, TOKEN);
    assert_eq!(answers(&server, &QUERIES), expected);

    // The plan names the stages the workers ran and the Delta files they read.
    let plan = explain(&server, QUERIES[1]);
    assert!(plan.contains("Stage"), "{plan}");
    assert!(plan.contains("curated/events"), "{plan}");

    // Records acknowledged but not yet written are read by the workers too.
    let firehose = server.client();
    let athena = athena_client(&server.endpoint);
    rt().block_on(async {
        for sql in [
            "CREATE DATABASE weblogs",
            "CREATE EXTERNAL TABLE weblogs.requests (id bigint, path string, status int, latency_ms double) \
             PARTITIONED BY (service string, dt string) STORED AS PARQUET LOCATION 's3://fresh-lake/logs/'",
        ] {
            run_ok(&athena, sql, "default").await;
        }
        // A 15-minute buffer: nothing reaches a file during the test.
        create_parquet_stream_with_table(
            &firehose,
            "fresh",
            "fresh-lake",
            900,
            Some(("weblogs", "requests")),
        )
        .await;
        let records: Vec<_> = (0..300)
            .map(|i| {
                record(format!(
                    r#"{{"id": {i}, "service": "svc{}", "path": "/p", "status": 200, "latency_ms": 1.5}}"#,
                    i % 3
                ))
            })
            .collect();
        let out = firehose
            .put_record_batch()
            .delivery_stream_name("fresh")
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_put_count, 0);
        let got = select(
            &athena,
            "SELECT service, count(*), sum(id) FROM weblogs.requests GROUP BY service ORDER BY service",
            "default",
        )
        .await;
        let want: Vec<Vec<Option<String>>> = (0..3)
            .map(|s| {
                vec![
                    Some(format!("svc{s}")),
                    Some("100".into()),
                    Some((0..300).filter(|i| i % 3 == s).sum::<i64>().to_string()),
                ]
            })
            .collect();
        assert_eq!(got, want);
    });
    drop(server);

    // The Delta stages ran on the workers: a coordinator without their
    // token cannot run the same query anywhere.
    let wrong = with_workers(data, &workers, "not-the-worker-token-at-all");
    rt().block_on(async {
        let (_, state, reason) = run(&athena_client(&wrong.endpoint), QUERIES[0], "default").await;
        assert_eq!(state, QueryExecutionState::Failed);
        let reason = reason.unwrap_or_default();
        assert!(reason.contains("token"), "{reason}");
    });
    drop(wrong);

    // A Delta table whose protocol needs deltalake's own scan (here: it
    // declares deletion vectors) is read on the coordinator: the same
    // coordinator, whose workers refuse it, answers every query over it.
    needs_deltalake_scan(&data.join("lakehose-warehouse/curated/curated/events/_delta_log"));
    // (Version 0, from before that commit, is still read by the workers.)
    let wrong = with_workers(data, &workers, "not-the-worker-token-at-all");
    assert_eq!(answers(&wrong, &QUERIES[..3]), expected[..3]);
    let plan = explain(&wrong, QUERIES[1]);
    assert!(plan.contains("not distributed"), "{plan}");
}

/// Commits a protocol that declares the deletion-vectors reader feature
/// (no file has one, so the rows stay the same).
fn needs_deltalake_scan(log: &Path) {
    let last = std::fs::read_dir(log)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .expect("a Delta log");
    let commit = [
        r#"{"commitInfo":{"timestamp":1764979200000,"operation":"SET TBLPROPERTIES"}}"#,
        r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["deletionVectors"],"writerFeatures":["deletionVectors"]}}"#,
    ]
    .join("\n");
    std::fs::write(log.join(format!("{:020}.json", last + 1)), commit + "\n").unwrap();
}
