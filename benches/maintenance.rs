//! Table-maintenance benchmarks:
//!
//! - `etl/request_metrics_hourly`: the shipped hourly-metrics job
//!   (`sql/etl/request_metrics_hourly.sql`, pointed at the log-benchmark
//!   table) over every raw record: each iteration forgets the bookmark and
//!   runs the job, reading the whole table and replacing every target
//!   partition. Throughput is raw rows per second.
//! - `compaction/optimize`: `lakehose optimize` of a table of many small
//!   Parquet files (an hour's rows split into many files, as an ingester
//!   flushing often leaves them), partitioned by service, into 128 MiB
//!   files. Throughput is input bytes per second.
//! - `compaction_queries/{small_files,compacted}/...`: two queries on that
//!   table before and after compaction.
//!
//! Data is made once by `lakehose gen-logs` under `target/bench-data/`
//! (or taken from `LAKEHOSE_BENCH_LOGS` / `LAKEHOSE_BENCH_SMALL_FILES`,
//! folders `gen-logs --out` wrote). Sizes: `LAKEHOSE_BENCH_ETL_RECORDS`
//! (default 50,000,000), `LAKEHOSE_BENCH_COMPACT_RECORDS` (default
//! 30,000,000, one day in 144 hourly partitions of 70 files: 10,080 files).
//! Run with `cargo bench --bench maintenance` (`LAKEHOSE_BENCH_ONLY=etl`
//! or `=compaction` for one half).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use lakehose::commands::gen_logs;
use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{EngineConfig, QueryEngine, QueryRequest};
use lakehose_transform::{CompactOptions, Compactor, Etl, Job, NoProgress};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A `gen-logs` output folder: the one named by `var`, or one made (once)
/// under `target/bench-data/`.
fn logs_folder(var: &str, name: &str, records: u64, days: u32, files: u32) -> PathBuf {
    if let Ok(dir) = std::env::var(var) {
        return PathBuf::from(dir);
    }
    let dir = root().join("target/bench-data").join(name);
    if !dir.join("logs").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("writing {records} log records to {} ...", dir.display());
        let config = gen_logs::Config {
            out: dir.clone(),
            records,
            days,
            start: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"),
            users: 100_000,
            seed: 42,
            files_per_partition: files,
        };
        gen_logs::generate(&config, &|_| {}).expect("generating logs");
    }
    dir
}

/// A warehouse in a temporary folder whose bucket `bench` holds the data
/// folder as `bench/lb` (a symbolic link).
fn warehouse(data: &Path) -> (tempfile::TempDir, QueryEngine) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("bench")).expect("bucket");
    std::os::unix::fs::symlink(data, dir.path().join("bench/lb")).expect("symlink");
    let storage = Storage::local(dir.path()).expect("storage");
    let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
    let engine = QueryEngine::new(catalog, storage, EngineConfig::default()).expect("engine");
    (dir, engine)
}

async fn run_sql(engine: &QueryEngine, text: &str) {
    for statement in lakehose_query::sql_text::split_statements(text) {
        engine
            .execute(QueryRequest::new(statement, Some("default")))
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The shipped job, reading the log-benchmark table.
fn metrics_job() -> Job {
    let text = std::fs::read_to_string(root().join("sql/etl/request_metrics_hourly.sql"))
        .expect("job file");
    let text = text
        .replace(
            "curated.request_metrics_hourly",
            "bench.request_metrics_hourly",
        )
        .replace("demo.app_logs", "logbench.logs")
        .replace("-- database: demo", "-- database: logbench")
        .replace("\"timestamp\"", "ts");
    Job::parse(Path::new("request_metrics_hourly.sql"), &text).expect("job parses")
}

static SUMMARY: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn etl(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let records = env_u64("LAKEHOSE_BENCH_ETL_RECORDS", 50_000_000);
    let data = logs_folder(
        "LAKEHOSE_BENCH_LOGS",
        &format!("logs-{records}"),
        records,
        7,
        1,
    );
    let (_dir, engine) = warehouse(&data);
    let ddl = std::fs::read_to_string(root().join("sql/logbench/ddl.sql"))
        .expect("ddl")
        .replace("${BUCKET}", "bench")
        .replace("${PREFIX}", "lb");
    rt.block_on(run_sql(&engine, &ddl));
    let rows: u64 = rt.block_on(async {
        let out = engine
            .execute(QueryRequest::new(
                "SELECT count(*) FROM logbench.logs",
                None,
            ))
            .await
            .expect("count");
        let col = out.batches[0].column(0);
        datafusion::arrow::util::display::array_value_to_string(col, 0)
            .expect("count")
            .parse()
            .expect("number")
    });
    let job = metrics_job();
    let etl = Etl::new(engine.clone());
    let mut group = c.benchmark_group("etl");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows));
    let times = Mutex::new(Vec::new());
    group.bench_function("request_metrics_hourly", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(etl.reset_bookmark(&job)).expect("reset");
                let started = Instant::now();
                let record = rt.block_on(etl.run(&job, &NoProgress)).expect("run");
                let took = started.elapsed();
                assert!(record.succeeded(), "{:?}", record.error);
                assert_eq!(record.rows_read, rows);
                total += took;
                times.lock().expect("times").push(took);
            }
            total
        })
    });
    group.finish();
    let mut times = times.into_inner().expect("times");
    times.sort();
    if let Some(median) = times.get(times.len() / 2) {
        SUMMARY.lock().expect("summary").push(format!(
            "etl request_metrics_hourly: {rows} rows in {:.2} s (median of {}) = {:.2} M rows/s",
            median.as_secs_f64(),
            times.len(),
            rows as f64 / median.as_secs_f64() / 1e6
        ));
    }
}

const SMALL_TABLE: &str = "CREATE DATABASE IF NOT EXISTS bench;
CREATE EXTERNAL TABLE bench.logs (
  ts timestamp, container string, level string, method string, path string,
  status int, latency_ms double, bytes bigint, user_id string, trace_id string,
  message string)
PARTITIONED BY (service string)
STORED AS PARQUET
LOCATION 's3://bench/lb/logs/';
MSCK REPAIR TABLE bench.logs";

const QUERIES: [(&str, &str); 2] = [
    (
        "count_sum",
        "SELECT count(*), sum(latency_ms) FROM bench.logs",
    ),
    (
        "group_p95",
        "SELECT service, status, count(*), approx_percentile(latency_ms, 0.95) FROM bench.logs GROUP BY service, status",
    ),
];

/// Removes the compacted folders a run left in the data.
fn remove_compacted(data: &Path) {
    for service in std::fs::read_dir(data.join("logs"))
        .expect("logs")
        .flatten()
    {
        for entry in std::fs::read_dir(service.path())
            .expect("service")
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("_compacted-")
            {
                std::fs::remove_dir_all(entry.path()).expect("remove");
            }
        }
    }
}

fn compaction(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let records = env_u64("LAKEHOSE_BENCH_COMPACT_RECORDS", 30_000_000);
    let data = logs_folder(
        "LAKEHOSE_BENCH_SMALL_FILES",
        &format!("small-{records}"),
        records,
        1,
        70,
    );
    remove_compacted(&data);
    let options = CompactOptions {
        min_age: chrono::Duration::zero(),
        ..Default::default()
    };
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);
    let (bytes, files) = {
        let (_dir, engine) = warehouse(&data);
        rt.block_on(run_sql(&engine, SMALL_TABLE));
        let plan = rt
            .block_on(Compactor::new(engine).optimize(
                "bench",
                "logs",
                &CompactOptions {
                    dry_run: true,
                    ..options.clone()
                },
                &NoProgress,
            ))
            .expect("plan");
        (plan.bytes_before, plan.files_before)
    };
    group.throughput(Throughput::Bytes(bytes));
    let reports = Mutex::new(Vec::new());
    group.bench_function(
        BenchmarkId::new("optimize", format!("{files}_files")),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (_dir, engine) = warehouse(&data);
                    rt.block_on(run_sql(&engine, SMALL_TABLE));
                    let compactor = Compactor::new(engine);
                    let started = Instant::now();
                    let report = rt
                        .block_on(compactor.optimize("bench", "logs", &options, &NoProgress))
                        .expect("optimize");
                    total += started.elapsed();
                    remove_compacted(&data);
                    reports.lock().expect("reports").push(report);
                }
                total
            })
        },
    );
    group.finish();
    let mut reports = reports.into_inner().expect("reports");
    reports.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    if let Some(r) = reports.get(reports.len() / 2) {
        SUMMARY.lock().expect("summary").push(format!(
            "compaction: {} files ({:.0} MiB) → {} files ({:.0} MiB) in {:.2} s (median of {}) = {:.0} MiB/s",
            r.files_before,
            r.bytes_before as f64 / 1048576.0,
            r.files_after,
            r.bytes_after as f64 / 1048576.0,
            r.seconds,
            reports.len(),
            r.bytes_before as f64 / 1048576.0 / r.seconds
        ));
    }

    // The same queries on the small files and on the compacted table.
    let (_before_dir, before) = warehouse(&data);
    rt.block_on(run_sql(&before, SMALL_TABLE));
    let (_after_dir, after) = warehouse(&data);
    rt.block_on(run_sql(&after, SMALL_TABLE));
    rt.block_on(Compactor::new(after.clone()).optimize("bench", "logs", &options, &NoProgress))
        .expect("optimize");
    let mut group = c.benchmark_group("compaction_queries");
    group.sample_size(10);
    let medians = Mutex::new(Vec::new());
    for (state, engine) in [("small_files", &before), ("compacted", &after)] {
        for (name, sql) in QUERIES {
            let mut times = Vec::new();
            group.bench_function(BenchmarkId::new(state, name), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let started = Instant::now();
                        rt.block_on(engine.execute(QueryRequest::new(sql, None)))
                            .expect("query");
                        let took = started.elapsed();
                        total += took;
                        times.push(took);
                    }
                    total
                })
            });
            times.sort();
            if let Some(m) = times.get(times.len() / 2) {
                medians
                    .lock()
                    .expect("medians")
                    .push(format!("{state}/{name} {:.0} ms", m.as_secs_f64() * 1000.0));
            }
        }
    }
    group.finish();
    remove_compacted(&data);
    SUMMARY.lock().expect("summary").push(format!(
        "queries (median): {}",
        medians.into_inner().expect("medians").join(", ")
    ));
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let rt = runtime();
    // LAKEHOSE_BENCH_ONLY=etl or =compaction runs one half (and makes only
    // its data).
    let only = std::env::var("LAKEHOSE_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "etl" {
        etl(&mut criterion, &rt);
    }
    if only.is_empty() || only == "compaction" {
        compaction(&mut criterion, &rt);
    }
    criterion.final_summary();
    for line in SUMMARY.lock().expect("summary").iter() {
        println!("{line}");
    }
}
