//! Compaction over a local warehouse: many small Parquet files (one per
//! INSERT) rewritten into one per partition while queries run, late
//! deliveries after a compaction, clean-up after the grace period, and
//! Delta tables compacted by OPTIMIZE.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::common;
use crate::common::{rows_of, rt};
use lakehose_query::QueryEngine;
use lakehose_transform::{CompactOptions, CompactProgress, Compactor, Etl, Job, NoProgress};

/// Asks the queries again each time a new file has been written, before
/// the partitions switch to them.
struct AskDuring {
    engine: QueryEngine,
    expected: Vec<Vec<Vec<String>>>,
    asked: AtomicUsize,
}

impl CompactProgress for AskDuring {
    fn planned(&self, _: &str, _: u64, _: u64) {}

    fn advanced(&self, _: u64) {
        let handle = tokio::runtime::Handle::current();
        let got = tokio::task::block_in_place(|| handle.block_on(answers(&self.engine)));
        assert_eq!(
            got, self.expected,
            "an answer changed while files were written"
        );
        self.asked.fetch_add(1, Ordering::SeqCst);
    }
}

struct Lake {
    dir: tempfile::TempDir,
    engine: QueryEngine,
    compactor: Compactor,
}

impl Lake {
    fn new() -> Self {
        let (dir, engine) = common::lake();
        let compactor = Compactor::new(engine.clone());
        Self {
            dir,
            engine,
            compactor,
        }
    }

    async fn sql(&self, sql: &str) {
        rows_of(&self.engine, sql).await;
    }

    /// One small file per partition of `days`: `n` rows each, numbered from
    /// `start`.
    async fn insert(&self, table: &str, days: &[&str], start: usize, n: usize) {
        let values: Vec<String> = days
            .iter()
            .flat_map(|d| {
                (start..start + n).map(move |i| {
                    format!(
                        "('svc{}', {}, {}.25, 'user-{i}', '{d}')",
                        i % 4,
                        200 + (i % 3) * 150,
                        i % 97
                    )
                })
            })
            .collect();
        self.sql(&format!(
            "INSERT INTO {table} SELECT * FROM (VALUES {}) AS t(service, status, latency_ms, user_id, dt)",
            values.join(", ")
        ))
        .await;
    }

    async fn create(&self, table: &str, partitioned: bool) {
        self.sql("CREATE DATABASE IF NOT EXISTS raw").await;
        let partitioning = if partitioned {
            ", partitioned_by = ARRAY['dt']"
        } else {
            ""
        };
        let name = table.trim_start_matches("raw.");
        self.sql(&format!(
            "CREATE TABLE {table} WITH (format = 'PARQUET'{partitioning}, external_location = 's3://lake/raw/{name}/') \
             AS SELECT * FROM (VALUES ('svc0', 200, 1.5, 'u', '2026-11-01')) AS t(service, status, latency_ms, user_id, dt) WHERE false",
        ))
        .await;
    }

    /// Parquet files under a folder of the warehouse (hidden ones too).
    fn parquet_files(&self, folder: &str) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "parquet") {
                    out.push(path.display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join(folder), &mut out);
        out.sort();
        out
    }
}

const QUERIES: [&str; 3] = [
    "SELECT dt, service, count(*), sum(status), sum(latency_ms), count(DISTINCT user_id) FROM raw.events GROUP BY dt, service ORDER BY dt, service",
    "SELECT count(*), min(user_id), max(user_id) FROM raw.events WHERE dt = '2026-11-02'",
    "SELECT user_id, dt FROM raw.events WHERE latency_ms > 90 ORDER BY user_id, dt",
];

async fn answers(engine: &QueryEngine) -> Vec<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for q in QUERIES {
        out.push(rows_of(engine, q).await);
    }
    out
}

fn options(grace_secs: i64) -> CompactOptions {
    CompactOptions {
        target_size: 8 << 20,
        min_age: chrono::Duration::zero(),
        grace: chrono::Duration::seconds(grace_secs),
        ..Default::default()
    }
}

const DAYS: [&str; 3] = ["2026-11-01", "2026-11-02", "2026-11-03"];

#[test]
fn queries_during_compaction_see_every_row_once() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.create("raw.events", true).await;
        for i in 0..12 {
            lake.insert("raw.events", &DAYS, i * 50, 50).await;
        }
        assert_eq!(lake.parquet_files("lake/raw/events").len(), 36);
        let before = answers(&lake.engine).await;
        assert_eq!(before[1][0][0], "600");

        // Queries run in a loop while the table is compacted.
        let stop = Arc::new(AtomicBool::new(false));
        let checked = Arc::new(AtomicUsize::new(0));
        let mut loops = Vec::new();
        for _ in 0..2 {
            let engine = lake.engine.clone();
            let expected = before.clone();
            let stop = Arc::clone(&stop);
            let checked = Arc::clone(&checked);
            loops.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) || checked.load(Ordering::SeqCst) < 4 {
                    assert_eq!(answers(&engine).await, expected, "an answer changed");
                    checked.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        let during = AskDuring {
            engine: lake.engine.clone(),
            expected: before.clone(),
            asked: AtomicUsize::new(0),
        };
        let report = lake
            .compactor
            .optimize("raw", "events", &options(3600), &during)
            .await
            .unwrap();
        stop.store(true, Ordering::SeqCst);
        assert_eq!(during.asked.load(Ordering::SeqCst), 3);
        for l in loops {
            l.await.unwrap();
        }
        assert!(checked.load(Ordering::SeqCst) >= 4);
        assert_eq!(report.partitions_compacted, 3, "{report:?}");
        assert_eq!(report.files_before, 36);
        assert_eq!(report.files_after, 3);
        assert_eq!(report.rows, 1800);
        assert_eq!(answers(&lake.engine).await, before);

        // The partitions now point at the compacted files; the replaced ones
        // stay for the grace period.
        let partitions = lake
            .engine
            .catalog()
            .get_partitions("raw", "events", None)
            .await
            .unwrap();
        for p in &partitions {
            let location = p
                .storage_descriptor
                .as_ref()
                .unwrap()
                .location
                .clone()
                .unwrap();
            assert!(location.contains("/_compacted-"), "{location}");
        }
        assert_eq!(lake.parquet_files("lake/raw/events").len(), 39);

        // Nothing more to do: a second run leaves everything as it is.
        let again = lake
            .compactor
            .optimize("raw", "events", &options(3600), &NoProgress)
            .await
            .unwrap();
        assert_eq!(again.partitions_compacted, 0, "{again:?}");

        // A late delivery lands in a partition's own folder and is read
        // with the compacted files.
        lake.insert("raw.events", &DAYS, 5000, 10).await;
        let late = answers(&lake.engine).await;
        assert_eq!(late[1][0][0], "610");

        // After the grace period the replaced files go, and the late file
        // is compacted with the others.
        let third = lake
            .compactor
            .optimize("raw", "events", &options(0), &NoProgress)
            .await
            .unwrap();
        assert_eq!(third.old_files_deleted, 36, "{third:?}");
        assert_eq!(third.partitions_compacted, 3);
        assert_eq!(answers(&lake.engine).await, late);
        let fourth = lake
            .compactor
            .optimize("raw", "events", &options(0), &NoProgress)
            .await
            .unwrap();
        assert_eq!(fourth.old_files_deleted, 6, "{fourth:?}");
        assert_eq!(answers(&lake.engine).await, late);
        let files = lake.parquet_files("lake/raw/events");
        assert_eq!(files.len(), 3, "{files:?}");
    });
}

#[test]
fn leftovers_of_killed_runs_go_and_partitions_in_delivery_wait() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.create("raw.events", true).await;
        for i in 0..3 {
            lake.insert("raw.events", &DAYS[..1], i * 10, 10).await;
        }
        // A run killed after writing part of its output.
        let folder = lake
            .dir
            .path()
            .join("lake/raw/events/dt=2026-11-01/_compacted-killed");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("part-00000.parquet"), b"half a file").unwrap();

        // Files younger than min_age: the partition is still receiving.
        let waiting = CompactOptions {
            min_age: chrono::Duration::hours(1),
            ..options(0)
        };
        let report = lake
            .compactor
            .optimize("raw", "events", &waiting, &NoProgress)
            .await
            .unwrap();
        assert_eq!(report.partitions_compacted, 0);
        assert_eq!(report.partitions_still_receiving, 1);
        assert_eq!(report.old_files_deleted, 1, "the killed run's file");
        assert!(!folder.join("part-00000.parquet").exists());

        let dry = CompactOptions {
            dry_run: true,
            ..options(0)
        };
        let plan = lake
            .compactor
            .optimize("raw", "events", &dry, &NoProgress)
            .await
            .unwrap();
        assert_eq!((plan.partitions_compacted, plan.files_before, plan.files_after), (1, 3, 1));
        assert_eq!(lake.parquet_files("lake/raw/events").len(), 3);

        // Text tables are refused by name.
        lake.sql("CREATE EXTERNAL TABLE raw.lines (line string) STORED AS TEXTFILE LOCATION 's3://lake/raw/lines/'")
            .await;
        let err = lake
            .compactor
            .optimize("raw", "lines", &options(0), &NoProgress)
            .await
            .unwrap_err();
        assert!(matches!(err, lakehose_transform::Error::Invalid(_)), "{err:?}");
        assert!(
            err.to_string().contains("raw.lines is a table of text files"),
            "{err}"
        );
        let err = lake
            .compactor
            .optimize("raw", "nope", &options(0), &NoProgress)
            .await
            .unwrap_err();
        assert!(matches!(err, lakehose_transform::Error::Catalog(_)), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    });
}

#[test]
fn unpartitioned_tables_switch_their_location() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.create("raw.flat", false).await;
        for i in 0..5 {
            lake.insert("raw.flat", &DAYS, i * 20, 20).await;
        }
        let q = "SELECT dt, count(*), sum(latency_ms) FROM raw.flat GROUP BY dt ORDER BY dt";
        let before = rows_of(&lake.engine, q).await;
        let report = lake
            .compactor
            .optimize("raw", "flat", &options(0), &NoProgress)
            .await
            .unwrap();
        assert_eq!(
            (report.files_before, report.files_after),
            (5, 1),
            "{report:?}"
        );
        assert_eq!(rows_of(&lake.engine, q).await, before);
        // INSERT INTO after compaction writes into the table's (new)
        // location and is read.
        lake.insert("raw.flat", &DAYS[..1], 900, 1).await;
        let after = rows_of(&lake.engine, q).await;
        assert_eq!(after[0][1], "101");
    });
}

#[test]
fn delta_tables_are_compacted_by_optimize() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.create("raw.events", true).await;
        lake.insert("raw.events", &DAYS, 0, 40).await;
        let etl = Etl::new(lake.engine.clone());
        let job = Job::parse(
            Path::new("copy.sql"),
            "-- target: curated.copy\n-- mode: append\n-- partitioned_by: dt\nSELECT service, status, user_id, dt FROM raw.events",
        )
        .unwrap();
        for _ in 0..4 {
            assert!(etl.run(&job, &NoProgress).await.unwrap().succeeded());
        }
        let q = "SELECT dt, count(*), count(DISTINCT user_id) FROM curated.copy GROUP BY dt ORDER BY dt";
        let before = rows_of(&lake.engine, q).await;
        assert_eq!(before[0][1], "160");
        let report = lake
            .compactor
            .optimize("curated", "copy", &options(0), &NoProgress)
            .await
            .unwrap();
        assert_eq!(report.kind, "delta");
        assert_eq!((report.files_before, report.files_after), (12, 3), "{report:?}");
        assert_eq!(rows_of(&lake.engine, q).await, before);
        // The version before the compaction is still readable.
        let old = rows_of(
            &lake.engine,
            "SELECT count(*) FROM curated.\"copy@v3\"",
        )
        .await;
        assert_eq!(old[0][0], "480");
    });
}

#[test]
fn two_tables_over_one_location_keep_each_others_files() {
    rt().block_on(async {
        let lake = Lake::new();
        lake.create("raw.events", true).await;
        for i in 0..3 {
            lake.insert("raw.events", &DAYS, i * 50, 50).await;
        }
        // A second table over the same folders (as a crawler registers next
        // to a delivery stream's table).
        lake.sql(
            "CREATE EXTERNAL TABLE raw.crawled (service string, status bigint, latency_ms double, user_id string) \
             PARTITIONED BY (dt string) STORED AS PARQUET LOCATION 's3://lake/raw/events/'",
        )
        .await;
        lake.sql("MSCK REPAIR TABLE raw.crawled").await;
        let count = |table: &'static str| {
            let engine = lake.engine.clone();
            async move {
                rows_of(
                    &engine,
                    &format!("SELECT count(*), sum(status) FROM raw.{table}"),
                )
                .await
            }
        };
        let events = count("events").await;
        let crawled = count("crawled").await;
        assert_eq!(events[0][0], "450");
        assert_eq!(crawled, events);

        // Compact one table, then run the clean-up of both past the grace
        // period: neither deletes what the other reads.
        let first = lake
            .compactor
            .optimize("raw", "events", &options(0), &NoProgress)
            .await
            .unwrap();
        assert_eq!(first.partitions_compacted, 3, "{first:?}");
        for table in ["crawled", "events", "crawled"] {
            let report = lake
                .compactor
                .optimize("raw", table, &options(0), &NoProgress)
                .await
                .unwrap();
            assert_eq!(count("events").await, events, "after {table}: {report:?}");
            assert_eq!(count("crawled").await, events, "after {table}: {report:?}");
        }
        // Each table now reads its own compacted folder; once neither
        // reads the delivered files any more, they go.
        let last = lake
            .compactor
            .optimize("raw", "events", &options(0), &NoProgress)
            .await
            .unwrap();
        assert_eq!(count("events").await, events, "{last:?}");
        assert_eq!(count("crawled").await, events, "{last:?}");
        let files = lake.parquet_files("lake/raw/events");
        assert_eq!(files.len(), 6, "one compacted file per partition per table: {files:?}");
    });
}
