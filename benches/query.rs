//! Query-path benchmarks: the 22 TPC-H queries (`sql/tpch/`) over the same
//! Parquet files three ways, in one run:
//!
//! - `tpch/bare_datafusion/qNN`: a bare DataFusion session with lakehose's
//!   session settings over the table folders (the baseline);
//! - `tpch/engine/qNN`: lakehose's query engine in this process (catalog
//!   lookups, partition pruning, the Presto dialect and function library);
//! - `tpch/athena_api/qNN`: through the Athena API of an in-process server
//!   with `aws-sdk-athena`: StartQueryExecution, GetQueryExecution every
//!   2 ms until the query finishes, then every page of GetQueryResults.
//!
//! After criterion's report it prints each query's median per mode and the
//! geometric means of engine/bare and API/bare (the service overhead), then
//! what the coordinator spends planning the queries for 0, 2, 10 and 100
//! query workers, and how many stages and tasks the plans have.
//!
//! The scale factor comes from `LAKEHOSE_BENCH_TPCH_SCALE` (default 0.1,
//! generated into a temporary folder first). Run with
//! `cargo bench --bench query`; add a filter such as `-- q01` for one
//! query.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_athena::Client;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState};
use criterion::Criterion;
use lakehose::server::{ServerOptions, start};
use lakehose_query::{EngineConfig, QueryEngine, QueryRequest};

/// Per-iteration times of each (mode, query).
static TIMES: Mutex<BTreeMap<(String, String), Vec<Duration>>> = Mutex::new(BTreeMap::new());

const MODES: [&str; 3] = ["bare_datafusion", "engine", "athena_api"];

fn record(mode: &str, query: &str, took: Duration) {
    TIMES
        .lock()
        .expect("times")
        .entry((mode.to_string(), query.to_string()))
        .or_default()
        .push(took);
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn athena_client(addr: SocketAddr) -> Client {
    let creds = aws_credential_types::Credentials::new("bench", "bench", None, None, "bench");
    let config = aws_sdk_athena::Config::builder()
        .behavior_version(aws_sdk_athena::config::BehaviorVersion::latest())
        .region(aws_sdk_athena::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(creds)
        .build();
    Client::from_conf(config)
}

/// Runs `sql` through the Athena API and pages through every result row;
/// returns the number of rows (the header included).
async fn through_api(athena: &Client, sql: &str, database: &str) -> usize {
    let id = athena
        .start_query_execution()
        .query_string(sql)
        .query_execution_context(QueryExecutionContext::builder().database(database).build())
        .send()
        .await
        .expect("StartQueryExecution")
        .query_execution_id
        .expect("an execution id");
    loop {
        let execution = athena
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .expect("GetQueryExecution")
            .query_execution
            .expect("an execution");
        let status = execution.status.expect("a status");
        match status.state {
            Some(QueryExecutionState::Succeeded) => break,
            Some(QueryExecutionState::Failed | QueryExecutionState::Cancelled) => {
                panic!("{sql}: {:?}", status.state_change_reason)
            }
            _ => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
    let mut rows = 0;
    let mut token = None;
    loop {
        let page = athena
            .get_query_results()
            .query_execution_id(&id)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .expect("GetQueryResults");
        rows += page.result_set.map(|r| r.rows().len()).unwrap_or(0);
        token = page.next_token;
        if token.is_none() {
            return rows;
        }
    }
}

fn tpch_data(dir: &Path) -> (f64, PathBuf) {
    let scale: f64 = std::env::var("LAKEHOSE_BENCH_TPCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.1);
    let tables = dir.join("tpch-data").join("bench");
    let started = Instant::now();
    lakehose::commands::tpch::generate(scale, &tables, 2).expect("generate TPC-H");
    eprintln!(
        "TPC-H scale factor {scale} generated in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (scale, tables)
}

fn queries() -> Vec<(String, String)> {
    (1..=22)
        .map(|q| {
            let name = format!("q{q:02}");
            let sql = std::fs::read_to_string(root().join(format!("sql/tpch/{name}.sql")))
                .expect("TPC-H query");
            (name, sql)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = lakehose::server::runtime(None).expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (scale, tables) = tpch_data(dir.path());
    let server = rt
        .block_on(start(ServerOptions::loopback(dir.path())))
        .expect("server");
    let athena = athena_client(server.addr());
    let ddl = std::fs::read_to_string(root().join("sql/tpch/ddl.sql"))
        .expect("ddl.sql")
        .replace("${BUCKET}", "tpch-data")
        .replace("${PREFIX}", "bench");
    rt.block_on(async {
        for statement in ddl.split(';').filter(|s| !s.trim().is_empty()) {
            through_api(&athena, statement, "default").await;
        }
    });
    let bare = rt
        .block_on(lakehose::commands::bare_datafusion::bare_context(
            &tables,
            &EngineConfig::default(),
        ))
        .expect("bare DataFusion session");
    // A second engine over the same folder: the server's own is not
    // reachable from here, and this one shares nothing with the API path.
    let storage = lakehose_catalog::Storage::local(dir.path()).expect("storage");
    let catalog: lakehose_catalog::CatalogRef =
        std::sync::Arc::new(lakehose_catalog::EmbeddedCatalog::new(storage.clone()));
    let engine = QueryEngine::new(catalog, storage, EngineConfig::default()).expect("engine");

    let mut group = c.benchmark_group(format!("tpch_sf{scale}"));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, sql) in queries() {
        group.bench_function(format!("bare_datafusion/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let batches = rt
                        .block_on(async { bare.sql(&sql).await?.collect().await })
                        .expect("bare DataFusion");
                    let took = started.elapsed();
                    std::hint::black_box(batches);
                    record("bare_datafusion", &name, took);
                    total += took;
                }
                total
            })
        });
        group.bench_function(format!("engine/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let out = rt
                        .block_on(engine.execute(QueryRequest::new(&sql, Some("tpch"))))
                        .expect("engine");
                    let took = started.elapsed();
                    std::hint::black_box(out);
                    record("engine", &name, took);
                    total += took;
                }
                total
            })
        });
        group.bench_function(format!("athena_api/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let rows = rt.block_on(through_api(&athena, &sql, "tpch"));
                    let took = started.elapsed();
                    assert!(rows > 0, "{name}: no header row");
                    record("athena_api", &name, took);
                    total += took;
                }
                total
            })
        });
    }
    group.finish();
    rt.block_on(server.shutdown()).expect("shutdown");
    planning(&rt, dir.path());
}

/// What the coordinator spends planning each query for 0, 2, 10 and 100
/// workers (planning contacts no worker, so the addresses need not
/// answer): the median time to a physical plan, cut into stages when there
/// are workers, and the stages and tasks of that plan. Prints one line per
/// worker count: the geometric mean of the planning times and the totals
/// of stages and tasks over the 22 queries.
fn planning(rt: &tokio::runtime::Runtime, data: &Path) {
    let storage = lakehose_catalog::Storage::local(data).expect("storage");
    let catalog: lakehose_catalog::CatalogRef =
        std::sync::Arc::new(lakehose_catalog::EmbeddedCatalog::new(storage.clone()));
    println!("\nplanning (median of 20 per query)   geomean ms   stages   tasks");
    for workers in [0usize, 2, 10, 100] {
        let mut config = EngineConfig::default();
        if workers > 0 {
            let urls = (0..workers)
                .map(|i| url::Url::parse(&format!("http://10.0.{}.{}:4590", i / 250, i % 250 + 1)))
                .collect::<Result<Vec<_>, _>>()
                .expect("urls");
            config.workers = Some(
                lakehose_query::distributed::Workers::new(urls, "bench-token-0123456789")
                    .expect("workers"),
            );
        }
        let engine = QueryEngine::new(std::sync::Arc::clone(&catalog), storage.clone(), config)
            .expect("engine");
        let (mut log_sum, mut stages, mut tasks) = (0.0f64, 0usize, 0usize);
        for (name, sql) in queries() {
            let mut times = Vec::new();
            let mut text = String::new();
            for _ in 0..20 {
                let started = Instant::now();
                let plan = rt.block_on(async {
                    let ctx = engine.context("tpch", Default::default())?;
                    let logical = lakehose_query::plan::plan_query(&ctx, &sql)
                        .await
                        .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
                    engine.physical(&ctx, &logical).await
                });
                let plan = plan.unwrap_or_else(|e| panic!("{name}: {e}"));
                times.push(started.elapsed());
                text = datafusion_distributed::display_plan_ascii(plan.as_ref(), false);
            }
            log_sum += median(&times).ln();
            stages += text.matches("── Stage ").count();
            tasks += text
                .split("tasks=")
                .skip(1)
                .filter_map(|t| {
                    t.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse::<usize>()
                        .ok()
                })
                .sum::<usize>();
        }
        let n = queries().len() as f64;
        println!(
            "{workers:>3} workers {:>27.2} {stages:>8} {tasks:>7}",
            (log_sum / n).exp()
        );
    }
}

fn median(times: &[Duration]) -> f64 {
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// Prints the medians and the geometric means against bare DataFusion over
/// the queries every mode ran.
fn summary() {
    let times = TIMES.lock().expect("times");
    let mut by_query: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for ((mode, query), t) in times.iter() {
        by_query
            .entry(query.as_str())
            .or_default()
            .insert(mode.as_str(), median(t));
    }
    println!("\nmedian ms    bare_datafusion     engine  athena_api");
    let mut logs = [0.0f64; 2];
    let mut n = 0;
    for (query, m) in &by_query {
        let cell = |mode: &str| m.get(mode).map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{query:<12} {:>15} {:>10} {:>11}",
            cell(MODES[0]),
            cell(MODES[1]),
            cell(MODES[2])
        );
        if let (Some(b), Some(e), Some(a)) = (m.get(MODES[0]), m.get(MODES[1]), m.get(MODES[2])) {
            logs[0] += (e / b).ln();
            logs[1] += (a / b).ln();
            n += 1;
        }
    }
    if n > 0 {
        println!(
            "geometric mean over {n} queries: engine/bare {:.3}, athena_api/bare {:.3}",
            (logs[0] / n as f64).exp(),
            (logs[1] / n as f64).exp()
        );
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
    summary();
}
