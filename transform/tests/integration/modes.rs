//! Each ETL mode end to end over a local warehouse: raw Parquet tables made
//! with Athena DDL, jobs run into Delta tables, results read back through
//! the query engine and compared with the same SELECT run directly.

use std::path::Path;

use crate::common;
use crate::common::{rows_of, rt};
use lakehose_query::{QueryEngine, QueryRequest};
use lakehose_transform::{Etl, Job, NoProgress, RunRecord};

struct Lake {
    _dir: tempfile::TempDir,
    engine: QueryEngine,
    etl: Etl,
}

impl Lake {
    fn new() -> Self {
        let (dir, engine) = common::lake();
        let etl = Etl::new(engine.clone());
        Self {
            _dir: dir,
            engine,
            etl,
        }
    }

    async fn sql(&self, sql: &str) {
        self.engine
            .execute(QueryRequest::new(sql, Some("default")))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Rows as text, in the order the query gives.
    async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        rows_of(&self.engine, sql).await
    }

    async fn run(&self, job: &Job) -> RunRecord {
        let record = self.etl.run(job, &NoProgress).await.unwrap();
        assert!(record.succeeded(), "{:?}", record.error);
        record
    }

    /// Raw events in partitions `dt`: `n` rows per day of `days`.
    async fn add_events(&self, days: &[&str], n: usize, status: i32) {
        let values: Vec<String> = days
            .iter()
            .flat_map(|d| {
                (0..n)
                    .map(move |i| format!("('svc{}', {status}, {}.5, '{d}')", i % 3, (i * 7) % 100))
            })
            .collect();
        self.sql(&format!(
            "INSERT INTO raw.events SELECT * FROM (VALUES {}) AS t(service, status, latency_ms, dt)",
            values.join(", ")
        ))
        .await;
    }

    async fn raw_events(&self) {
        self.sql("CREATE DATABASE raw").await;
        self.sql(
            "CREATE TABLE raw.events WITH (format = 'PARQUET', partitioned_by = ARRAY['dt'], external_location = 's3://lake/raw/events/') \
             AS SELECT * FROM (VALUES ('svc0', 200, 1.5, '2026-11-01')) AS t(service, status, latency_ms, dt) WHERE false",
        )
        .await;
    }
}

fn job(name: &str, text: &str) -> Job {
    Job::parse(Path::new(&format!("{name}.sql")), text).unwrap()
}

const METRICS: &str = "SELECT service, count(*) AS requests, count_if(status >= 500) AS errors, \
     approx_percentile(latency_ms, 0.5) AS p50, dt FROM raw.events GROUP BY service, dt";

#[test]
fn overwrite_equals_the_select_and_replaces_the_table() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.raw_events().await;
        lake.add_events(&["2026-11-01", "2026-11-02"], 30, 200)
            .await;
        let j = job(
            "metrics",
            &format!(
                "-- target: curated.metrics\n-- mode: overwrite\n-- partitioned_by: dt\n{METRICS}"
            ),
        );
        let first = lake.run(&j).await;
        assert_eq!(first.rows_written, 6);
        assert!(first.files_written >= 2, "{first:?}");
        assert_eq!(first.rows_read, 60);
        let direct = format!("SELECT * FROM ({METRICS}) ORDER BY dt, service");
        let curated =
            "SELECT service, requests, errors, p50, dt FROM curated.metrics ORDER BY dt, service";
        assert_eq!(lake.rows(curated).await, lake.rows(&direct).await);
        let version0 = lake.rows(curated).await;
        // More data, then a rerun: the table is replaced, not added to.
        lake.add_events(&["2026-11-02"], 9, 503).await;
        let second = lake.run(&j).await;
        assert_eq!(second.table_version, Some(1));
        // Time travel: the first version is still readable.
        let old = curated.replace("curated.metrics", "curated.\"metrics@v0\"");
        assert_eq!(lake.rows(&old).await, version0);
        assert_ne!(lake.rows(curated).await, version0);
        let now = (chrono::Utc::now() + chrono::Duration::seconds(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let as_of_now = curated.replace("curated.metrics", &format!("curated.\"metrics@{now}\""));
        assert_eq!(lake.rows(&as_of_now).await, lake.rows(curated).await);
        let e = lake
            .engine
            .execute(QueryRequest::new(
                "SELECT * FROM raw.\"events@v0\"",
                Some("default"),
            ))
            .await
            .unwrap_err();
        assert!(e.message.contains("not a Delta table"), "{e}");
        let e = lake
            .engine
            .execute(QueryRequest::new(
                "SELECT * FROM curated.\"metrics@yesterday\"",
                Some("default"),
            ))
            .await
            .unwrap_err();
        assert!(e.message.contains("v<version>"), "{e}");
        // VACUUM keeping nothing old: version 0's files go, the current
        // version still answers, and version 0 can no longer be read.
        let deleted = lake
            .etl
            .vacuum(&j, chrono::Duration::zero(), false)
            .await
            .unwrap();
        assert!(!deleted.is_empty());
        assert_eq!(lake.rows(curated).await, lake.rows(&direct).await);
        assert!(
            lake.engine
                .execute(QueryRequest::new(&old, Some("default")))
                .await
                .is_err(),
            "version 0 was vacuumed"
        );
        assert_eq!(lake.rows(curated).await, lake.rows(&direct).await);
        assert_eq!(
            lake.rows("SELECT sum(requests), sum(errors) FROM curated.metrics")
                .await,
            vec![vec!["69".to_string(), "9".to_string()]]
        );
    });
}

#[test]
fn append_adds_rows_each_run() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.raw_events().await;
        lake.add_events(&["2026-11-01"], 10, 200).await;
        let j = job(
            "copy",
            "-- target: curated.copy\n-- mode: append\nSELECT service, status FROM raw.events",
        );
        lake.run(&j).await;
        lake.run(&j).await;
        assert_eq!(
            lake.rows("SELECT count(*) FROM curated.copy").await,
            vec![vec!["20".to_string()]]
        );
        let history = lake.etl.history(Some("copy")).await.unwrap();
        assert_eq!(history.len(), 2);
        assert!(
            history
                .iter()
                .all(|r| r.succeeded() && r.rows_written == 10)
        );
    });
}

#[test]
fn overwriting_one_partition_leaves_the_others_intact() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.raw_events().await;
        lake.add_events(&["2026-11-01", "2026-11-02"], 12, 200).await;
        let all = job(
            "metrics",
            &format!("-- target: curated.metrics\n-- mode: overwrite\n-- partitioned_by: dt\n{METRICS}"),
        );
        lake.run(&all).await;
        let day1 = "SELECT service, requests, errors, dt FROM curated.metrics WHERE dt = '2026-11-01' ORDER BY service";
        let before = lake.rows(day1).await;
        lake.add_events(&["2026-11-01", "2026-11-02"], 6, 500).await;
        let latest = job(
            "metrics",
            &format!(
                "-- target: curated.metrics\n-- mode: overwrite\n-- overwrite: partitions\n-- partitioned_by: dt\n\
                 SELECT * FROM ({METRICS}) WHERE dt = '2026-11-02'"
            ),
        );
        let run = lake.run(&latest).await;
        assert_eq!(run.rows_written, 3);
        assert_eq!(lake.rows(day1).await, before, "dt=2026-11-01 must not change");
        assert_eq!(
            lake.rows("SELECT sum(requests), sum(errors) FROM curated.metrics WHERE dt = '2026-11-02'")
                .await,
            vec![vec!["18".to_string(), "6".to_string()]]
        );
    });
}

#[test]
fn merge_upserts_and_deletes_on_keys() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.sql("CREATE DATABASE raw").await;
        let batch = |rows: &str| {
            format!(
                "CREATE TABLE raw.changes WITH (format = 'PARQUET', external_location = 's3://lake/raw/changes-{}/') \
                 AS SELECT * FROM (VALUES {rows}) AS t(id, name, op)",
                uuid_like(rows)
            )
        };
        lake.sql(&batch("(1, 'ada', 'U'), (2, 'bob', 'U'), (3, 'cy', 'U')"))
            .await;
        let j = job(
            "users",
            "-- target: curated.users\n-- mode: merge\n-- keys: id\n-- delete_when: source.op = 'D'\nSELECT id, name, op FROM raw.changes",
        );
        let first = lake.run(&j).await;
        assert_eq!(first.rows_written, 3);
        lake.sql("DROP TABLE raw.changes").await;
        lake.sql(&batch("(2, 'bobby', 'U'), (3, 'cy', 'D'), (4, 'dee', 'U')"))
            .await;
        let second = lake.run(&j).await;
        assert_eq!(second.rows_written, 3, "one update, one delete, one insert");
        assert_eq!(
            lake.rows("SELECT id, name FROM curated.users ORDER BY id").await,
            vec![
                vec!["1".to_string(), "ada".to_string()],
                vec!["2".to_string(), "bobby".to_string()],
                vec!["4".to_string(), "dee".to_string()],
            ]
        );
    });
}

fn uuid_like(text: &str) -> String {
    format!(
        "{:x}",
        text.bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
    )
}

#[test]
fn incremental_reads_only_new_partitions_and_never_double_counts() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.raw_events().await;
        lake.add_events(&["2026-11-01", "2026-11-02"], 15, 200).await;
        let j = job(
            "metrics",
            &format!(
                "-- target: curated.metrics\n-- mode: incremental\n-- source: raw.events\n-- partitioned_by: dt\n{METRICS}"
            ),
        );
        let first = lake.run(&j).await;
        assert_eq!(first.partitions_read, Some(2));
        assert_eq!(first.rows_read, 30);
        // New files: one in an existing partition, one in a new partition.
        lake.add_events(&["2026-11-02", "2026-11-03"], 6, 500).await;
        let second = lake.run(&j).await;
        assert_eq!(second.partitions_read, Some(2), "2026-11-02 and 2026-11-03");
        assert_eq!(second.rows_read, 15 + 6 + 6, "only the partitions with new files");
        let direct = format!("SELECT * FROM ({METRICS}) ORDER BY dt, service");
        let curated = "SELECT service, requests, errors, p50, dt FROM curated.metrics ORDER BY dt, service";
        assert_eq!(lake.rows(curated).await, lake.rows(&direct).await);
        assert_eq!(
            lake.rows("SELECT sum(requests) FROM curated.metrics").await,
            vec![vec!["42".to_string()]]
        );
        // Nothing new: nothing read, nothing written.
        let third = lake.run(&j).await;
        assert_eq!(third.partitions_read, Some(0));
        assert_eq!(third.rows_written, 0);
        assert_eq!(lake.rows(curated).await, lake.rows(&direct).await);
    });
}

#[test]
fn schema_rules_allow_new_columns_and_refuse_type_changes() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.raw_events().await;
        lake.add_events(&["2026-11-01"], 5, 200).await;
        let v1 = job(
            "s",
            "-- target: curated.s\n-- mode: overwrite\nSELECT service, count(*) AS n FROM raw.events GROUP BY service",
        );
        lake.run(&v1).await;
        let v2 = job(
            "s",
            "-- target: curated.s\n-- mode: overwrite\nSELECT service, count(*) AS n, max(latency_ms) AS worst FROM raw.events GROUP BY service",
        );
        lake.run(&v2).await;
        assert_eq!(
            lake.rows("SELECT count(worst) FROM curated.s").await,
            vec![vec!["3".to_string()]]
        );
        let bad = job(
            "s",
            "-- target: curated.s\n-- mode: overwrite\nSELECT service, CAST(count(*) AS varchar) AS n, max(latency_ms) AS worst FROM raw.events GROUP BY service",
        );
        let failed = lake.etl.run(&bad, &NoProgress).await.unwrap();
        assert!(!failed.succeeded());
        let error = failed.error.unwrap();
        assert!(error.contains("column \"n\" would change type"), "{error}");
        // The table is as it was.
        assert_eq!(
            lake.rows("SELECT count(*) FROM curated.s WHERE n > 0").await,
            vec![vec!["3".to_string()]]
        );
    });
}

#[test]
fn unknown_tables_are_errors_naming_the_job_file_and_line() {
    rt().block_on(async {
        let lake = Lake::new();
        let j = job(
            "broken",
            "-- target: curated.b\n-- mode: overwrite\nSELECT a\nFROM nowhere.missing",
        );
        let e = lake
            .etl
            .validate(&j, &Default::default())
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("broken.sql:"), "{e}");
        assert!(e.message.contains("missing"), "{e}");
        let record = lake.etl.run(&j, &NoProgress).await.unwrap();
        assert!(!record.succeeded());
        assert!(record.error.unwrap().contains("missing"));
    });
}
