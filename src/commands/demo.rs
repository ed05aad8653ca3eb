//! `lakehose demo`: the server plus a built-in fleet of containers shipping
//! realistic logs through the Firehose API (with the real AWS SDK), and a
//! running account of what lands where.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_firehose::Client;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use chrono::Utc;

use crate::commands::serve::ServerArgs;
use crate::loggen::LogGenerator;
use crate::server;
use lakehose_auth::keys::KeyPaths;

/// `lakehose demo`.
#[derive(Debug, clap::Args)]
pub struct Config {
    #[command(flatten)]
    server: ServerArgs,

    /// Containers in the simulated fleet (spread over web, api, checkout,
    /// auth, search and payments).
    #[arg(long, default_value_t = 12)]
    containers: usize,

    /// Records per second the whole fleet ships; 0 ships as fast as the
    /// server acknowledges.
    #[arg(long, default_value_t = 5000)]
    rate: u64,

    /// Seconds to run; 0 runs until Ctrl-C.
    #[arg(long, default_value_t = 30)]
    duration: u64,

    /// Records per PutRecordBatch call (1-500).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u16).range(1..=500))]
    batch: u16,

    /// Name of the delivery stream the fleet ships to.
    #[arg(long, default_value = "app-logs")]
    stream: String,

    /// Bucket the stream delivers to (a folder under --data-dir).
    #[arg(long, default_value = "demo-lake")]
    bucket: String,

    /// Buffer interval hint of the stream, seconds.
    #[arg(long, default_value_t = 10)]
    interval: u64,

    /// Seconds between runs of the ETL jobs of sql/etl/ inside the server
    /// while the fleet ships (their files' own schedules are hourly).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=59))]
    etl_every: u64,
}

/// A Firehose client for a lakehose endpoint that makes up to
/// `max_attempts` attempts per call (1 = no retries), signing with a
/// placeholder key (for servers without keys, on loopback).
pub fn firehose_client(endpoint: &str, max_attempts: u32) -> Client {
    firehose_client_as(endpoint, max_attempts, ("lakehose", "lakehose"))
}

/// [`firehose_client`] signing with the key `(access key id, secret)`.
pub fn firehose_client_as(endpoint: &str, max_attempts: u32, key: (&str, &str)) -> Client {
    let config = aws_sdk_firehose::Config::builder()
        .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_firehose::config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            key.0, key.1, None, None, "demo",
        ))
        .retry_config(
            aws_sdk_firehose::config::retry::RetryConfig::standard()
                .with_max_attempts(max_attempts.max(1)),
        )
        .build();
    Client::from_conf(config)
}

/// The demo's access key, revoked when dropped.
struct DemoKey {
    paths: KeyPaths,
    id: String,
    secret: String,
}

impl DemoKey {
    fn create(paths: KeyPaths) -> anyhow::Result<Self> {
        let made = lakehose_auth::keys::create_key(&paths, "demo", &["admins".into()], None)
            .with_context(|| format!("could not add the demo's key to {}", paths.keys.display()))?;
        Ok(Self {
            paths,
            id: made.access_key_id,
            secret: made.secret_access_key,
        })
    }
}

impl Drop for DemoKey {
    fn drop(&mut self) {
        if let Err(e) = lakehose_auth::keys::revoke_key(&self.paths, &self.id) {
            eprintln!(
                "could not revoke the demo's key {}: {e}; revoke it with `lakehose admin keys revoke {}`",
                self.id, self.id
            );
        }
    }
}

/// Grants the principal the demo's ETL jobs run as what they need, unless
/// it has a policy already: read the raw logs and the curated tables, fill
/// the curated tables.
fn grant_etl(paths: &KeyPaths, principal: &str) -> anyhow::Result<()> {
    use lakehose_auth::policy::{Target, list_policies, put_policy};
    let target = Target::Principal(principal.to_string());
    if list_policies(&paths.policies)?
        .iter()
        .any(|(t, _)| *t == target)
    {
        return Ok(());
    }
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "lakehose:Select",
                "Resource": ["arn:aws:glue:*:*:table/demo/*", "arn:aws:glue:*:*:table/curated/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["lakehose:Insert", "glue:CreateTable"],
                "Resource": [
                    "arn:aws:glue:*:*:catalog",
                    "arn:aws:glue:*:*:database/curated",
                    "arn:aws:glue:*:*:table/curated/*",
                ],
            },
        ],
    });
    put_policy(&paths.policies, &target, &policy)
        .with_context(|| format!("could not grant the ETL principal {principal} its tables"))
}

#[derive(Default)]
struct Counters {
    acked: AtomicU64,
    bytes: AtomicU64,
    malformed: AtomicU64,
    failed_calls: AtomicU64,
}

/// Runs the demo.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = server::runtime(config.server.worker_threads)?;
    runtime.block_on(demo(config))
}

async fn demo(config: Config) -> anyhow::Result<()> {
    let mut options = config.server.options()?;
    // The demo's jobs run on a short schedule inside the server.
    let every = format!("*/{} * * * * *", config.etl_every);
    let schedule =
        lakehose_catalog::schedule::Schedule::unix(&every).map_err(|e| anyhow::anyhow!(e))?;
    options.etl_job_list = demo_jobs()?
        .into_iter()
        .map(|mut job| {
            job.schedule = Some(schedule.clone());
            job
        })
        .collect();
    // The demo's own key: every client it drives signs with it; it is
    // revoked when the demo ends.
    let key_paths = match &options.keys_file {
        Some(file) => KeyPaths::new(file),
        None => KeyPaths::in_data_dir(&options.data_dir),
    };
    let users = import_users(&config.server.data_dir).await?;
    let key = DemoKey::create(key_paths.clone())?;
    grant_etl(&key_paths, &options.etl_principal)?;
    // The shipped dashboards over the demo's tables.
    options.dashboard_list = super::dashboard::examples()?;
    let running = server::start(options).await?;
    let endpoint = running.endpoint();
    println!("lakehose listening on {endpoint}");
    println!(
        "dashboards (sign in with the demo key below): {endpoint}/dashboards/service_health {endpoint}/dashboards/users {endpoint}/dashboards/endpoint_logs"
    );
    println!(
        "demo access key (shown once, revoked when the demo ends): AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}\n  the Firehose, Glue and Athena APIs and NDJSON ingest need a SigV4 signature with it; psql logs in with the key id as user and the secret as password",
        key.id, key.secret
    );
    let client = firehose_client_as(&endpoint, 10, (&key.id, &key.secret));

    let prefix = "logs/service=!{partitionKeyFromQuery:service}/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/";
    let error_prefix = "errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/";
    create_stream(&client, &config, prefix, error_prefix).await?;
    println!(
        "delivery stream {:?} → s3://{}/{prefix}\n  Parquet (zstd), partitioned by service and hour; malformed records → s3://{}/{error_prefix}",
        config.stream, config.bucket, config.bucket
    );
    println!(
        "ETL jobs of sql/etl/ run inside the server every {} s into curated Delta tables",
        config.etl_every
    );
    println!(
        "fleet: {} containers shipping {} through PutRecordBatch ({} records per call){}",
        config.containers,
        if config.rate == 0 {
            "as fast as acknowledged".to_string()
        } else {
            format!("~{} records/s", config.rate)
        },
        config.batch,
        if config.duration == 0 {
            ", until Ctrl-C".to_string()
        } else {
            format!(", for {} s", config.duration)
        }
    );

    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut fleet = Vec::new();
    let per_container = if config.rate == 0 {
        0.0
    } else {
        config.rate as f64 / config.containers.max(1) as f64
    };
    for i in 0..config.containers.max(1) {
        let client = client.clone();
        let counters = Arc::clone(&counters);
        let stop = Arc::clone(&stop);
        let stream = config.stream.clone();
        let batch = config.batch as usize;
        fleet.push(tokio::spawn(async move {
            container(i, client, stream, batch, per_container, counters, stop).await
        }));
    }

    let started = Instant::now();
    let deadline = (config.duration > 0).then(|| started + Duration::from_secs(config.duration));
    let signal = server::shutdown_signal();
    tokio::pin!(signal);
    let mut last = (Instant::now(), 0u64);
    let ingest = running.ingest().clone();
    let metrics = ingest.metrics();
    let watch = EtlWatch::open(&config.server.data_dir)?;
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let acked = counters.acked.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (acked - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, acked);
        println!(
            "[{:>4}s] acked {:>9} records ({:>7.0}/s) | delivered {:>9} | error prefix {:>5} | objects {:>5} | buffered {:>7.2} MiB",
            started.elapsed().as_secs(),
            acked,
            rate,
            metrics.records_delivered.get(),
            metrics.records_failed.get(),
            metrics.objects_written.get(),
            ingest.buffered_bytes() as f64 / 1048576.0,
        );
        ticks += 1;
        if ticks.is_multiple_of(5) {
            watch.print().await;
        }
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for task in fleet {
        let _ = task.await;
    }
    live_answers(
        &endpoint,
        (&key.id, &key.secret),
        metrics.records_delivered.get(),
        counters.acked.load(Ordering::Relaxed),
    )
    .await;
    println!("stopping: delivering every buffer...");
    running.shutdown().await?;

    let delivered = metrics.records_delivered.get();
    let failed = metrics.records_failed.get();
    let objects = metrics.objects_written.get();
    let acked = counters.acked.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "\nshipped {} records ({:.1} MiB of JSON) in {:.1} s: {:.0} records/s; {} malformed on purpose; {} calls failed",
        acked,
        counters.bytes.load(Ordering::Relaxed) as f64 / 1048576.0,
        elapsed,
        acked as f64 / elapsed.max(0.001),
        counters.malformed.load(Ordering::Relaxed),
        counters.failed_calls.load(Ordering::Relaxed),
    );
    println!(
        "delivered {delivered} records as Parquet and {failed} to the error prefix, in {objects} objects"
    );
    print_landing(&config.server.data_dir.join(&config.bucket))?;
    crawl_landing(&config.server.data_dir, &config.bucket).await?;
    print_catalog(&config.server.data_dir).await?;
    run_etl(&config.server.data_dir).await?;
    update_users(&config.server.data_dir, users).await?;
    compact_landing(&config.server.data_dir).await?;
    Ok(())
}

/// How many users the demo's DynamoDB users table has.
const USERS: u32 = 5000;

/// The demo's users exports and where they are imported to.
struct UsersExports {
    prefix_dir: std::path::PathBuf,
    engine: lakehose_query::QueryEngine,
    store: Arc<dyn object_store::ObjectStore>,
    prefix: object_store::path::Path,
    options: lakehose_transform::dynamodb::ImportOptions,
}

impl UsersExports {
    fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let engine = super::local_engine(data_dir)?;
        Ok(Self {
            prefix_dir: data_dir.join("dynamodb-exports").join("users"),
            store: Arc::clone(engine.storage().store()),
            engine,
            prefix: object_store::path::Path::from("dynamodb-exports/users"),
            options: lakehose_transform::dynamodb::ImportOptions {
                keys: vec!["user_id".into()],
                ..lakehose_transform::dynamodb::ImportOptions::new("app", "users")
            },
        })
    }

    /// Imports the exports not imported yet, printing what each did.
    async fn import(&self) -> anyhow::Result<()> {
        let progress = Arc::new(lakehose_transform::dynamodb::export::NoProgress);
        for report in lakehose_transform::dynamodb::import_new(
            &self.engine,
            Arc::clone(&self.store),
            &self.prefix,
            &self.options,
            progress,
        )
        .await?
        {
            println!("  {report}");
        }
        Ok(())
    }
}

/// The users table as the application keeps it in DynamoDB: a full export
/// written in DynamoDB's layout and imported into `app.users` before the
/// server starts (the users dashboard reads it). Returns the export's
/// time and seed, which the later incremental export continues from.
async fn import_users(data_dir: &Path) -> anyhow::Result<(i64, u64)> {
    let exports = UsersExports::open(data_dir)?;
    let now = chrono::Utc::now().timestamp_millis();
    let (at, seed) = (now - 3_600_000, now as u64);
    crate::usersgen::write_full(&exports.prefix_dir, "users", USERS, at, seed, 1000)?;
    println!(
        "DynamoDB users table: a full export of {USERS} users under s3://dynamodb-exports/users/, imported:"
    );
    exports.import().await?;
    Ok((at, seed))
}

/// The logs joined with the users table, then a later incremental export
/// of the users table (upgrades, closed accounts, sign-ups) merged in, and
/// the join again.
async fn update_users(data_dir: &Path, (since, seed): (i64, u64)) -> anyhow::Result<()> {
    let exports = UsersExports::open(data_dir)?;
    let now = chrono::Utc::now().timestamp_millis();
    let backend = super::query::Backend::Local(exports.engine.clone());
    let per_plan = "SELECT u.plan, count(*) AS requests, count_if(l.status >= 500) AS errors, \
         round(100.0 * count_if(l.status >= 500) / count(*), 2) AS error_pct, \
         count(DISTINCT l.user_id) AS active_users \
         FROM demo.app_logs l JOIN app.users u ON l.user_id = u.user_id \
         GROUP BY u.plan ORDER BY requests DESC";
    let show = |title: &'static str| {
        let backend = &backend;
        async move {
            println!("\n{title}:");
            match backend.run(per_plan, "app").await {
                Ok(answer) => {
                    let mut out = std::io::stdout().lock();
                    super::query::render(&answer, super::query::Format::Table, &mut out)
                }
                Err(e) => {
                    println!("  failed: {e:#}");
                    Ok(())
                }
            }
        }
    };
    show("requests and errors per plan (logs joined with the imported users)").await?;
    crate::usersgen::write_changes(&exports.prefix_dir, "users", USERS, since, now, seed)?;
    println!(
        "\nan incremental export of the last hour (upgrades, closed accounts, sign-ups), merged:"
    );
    exports.import().await?;
    show("requests and errors per plan, as of now").await?;
    Ok(())
}

/// What the demo's ETL jobs did last and how fresh their tables are,
/// read from the run history and the curated table while the server runs.
struct EtlWatch {
    etl: lakehose_transform::Etl,
    jobs: Vec<lakehose_transform::Job>,
}

impl EtlWatch {
    fn open(data_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            etl: lakehose_transform::Etl::new(super::local_engine(data_dir)?),
            jobs: demo_jobs()?,
        })
    }

    async fn print(&self) {
        let mut parts = Vec::new();
        let now = Utc::now().timestamp_millis();
        for job in &self.jobs {
            // The newest finished run (one may be under way).
            let finished = match self.etl.history(Some(&job.name)).await {
                Ok(runs) => runs.into_iter().rev().find(|r| r.ended_ms.is_some()),
                Err(e) => {
                    parts.push(format!("{}: {e}", job.name));
                    continue;
                }
            };
            let part = match finished {
                Some(r) if r.succeeded() => format!(
                    "{} v{} {} s ago",
                    job.name,
                    r.table_version.unwrap_or_default(),
                    (now - r.ended_ms.unwrap_or(now)) / 1000
                ),
                Some(r) => format!(
                    "{} failed ({})",
                    job.name,
                    r.error
                        .as_deref()
                        .and_then(|e| e.rsplit(": ").next())
                        .unwrap_or("?")
                ),
                None => format!("{} not run yet", job.name),
            };
            parts.push(part);
        }
        let sql = "SELECT date_diff('second', max(last_seen), current_timestamp) FROM curated.request_metrics_hourly";
        let fresh = match self
            .etl
            .engine()
            .execute(lakehose_query::QueryRequest::new(sql, Some("curated")))
            .await
        {
            Ok(out) => out
                .batches
                .first()
                .filter(|b| b.num_rows() > 0)
                .and_then(|b| {
                    datafusion::arrow::util::display::array_value_to_string(b.column(0), 0).ok()
                })
                .map(|age| {
                    format!("newest record in curated.request_metrics_hourly is {age} s old")
                })
                .unwrap_or_default(),
            Err(_) => "curated.request_metrics_hourly not written yet".into(),
        };
        println!("  ETL: {} | {fresh}", parts.join(", "));
    }
}

/// Compacts the landed logs (every partition: the fleet has stopped) and
/// shows the same answer before and after.
async fn compact_landing(data_dir: &Path) -> anyhow::Result<()> {
    let engine = super::local_engine(data_dir)?;
    let compactor = lakehose_transform::Compactor::new(engine.clone());
    let sql = "SELECT count(*) AS records, count(DISTINCT trace_id) AS traces, round(sum(latency_ms), 1) AS latency_sum FROM demo.app_logs";
    let backend = super::query::Backend::Local(engine);
    let answer = |label: &'static str| {
        let backend = &backend;
        async move {
            match backend.run(sql, "demo").await {
                Ok(answer) => {
                    println!("{label}:");
                    let mut out = std::io::stdout().lock();
                    let _ = super::query::render(&answer, super::query::Format::Table, &mut out);
                }
                Err(e) => println!("{label}: failed: {e:#}"),
            }
        }
    };
    answer("\nbefore compaction").await;
    let options = lakehose_transform::CompactOptions {
        min_age: chrono::Duration::zero(),
        ..Default::default()
    };
    let report = compactor
        .optimize(
            "demo",
            "app_logs",
            &options,
            &lakehose_transform::NoProgress,
        )
        .await?;
    println!("{}", super::optimize::summary(&report));
    answer("after compaction").await;
    Ok(())
}

/// The ETL jobs that ship in `sql/etl/`, built into the binary so the demo
/// runs them from any folder.
const DEMO_JOBS: [(&str, &str); 3] = [
    (
        "request_metrics_hourly",
        include_str!("../../sql/etl/request_metrics_hourly.sql"),
    ),
    (
        "daily_active_users",
        include_str!("../../sql/etl/daily_active_users.sql"),
    ),
    (
        "slowest_endpoints",
        include_str!("../../sql/etl/slowest_endpoints.sql"),
    ),
];

fn demo_jobs() -> anyhow::Result<Vec<lakehose_transform::Job>> {
    DEMO_JOBS
        .iter()
        .map(|(name, text)| {
            lakehose_transform::Job::parse(Path::new(&format!("sql/etl/{name}.sql")), text)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(Into::into)
}

/// Runs the demo's ETL jobs once more over everything that landed (in
/// dependency order) and shows the curated tables and how fresh they are.
async fn run_etl(data_dir: &Path) -> anyhow::Result<()> {
    let jobs = demo_jobs()?;
    let order = lakehose_transform::dependency_order(&jobs)?;
    let engine = super::local_engine(data_dir)?;
    let etl = lakehose_transform::Etl::new(engine.clone());
    println!(
        "
ETL jobs (sql/etl/), a last run over the records delivered at shutdown:"
    );
    for job in order {
        let record = etl.run(job, &lakehose_transform::NoProgress).await?;
        println!("  {}", super::etl::summary(&record));
    }
    let backend = super::query::Backend::Local(engine);
    for (title, sql) in [
        (
            "freshness: newest record in the hourly metrics, and its age",
            "SELECT max(last_seen) AS newest, date_diff('second', max(last_seen), current_timestamp) AS age_seconds \
             FROM curated.request_metrics_hourly",
        ),
        (
            "slowest endpoints (p95)",
            "SELECT service, endpoint, requests, p95_ms, error_pct FROM curated.slowest_endpoints LIMIT 5",
        ),
        (
            "daily active users",
            "SELECT dt, active_users, sessions, requests_per_session FROM curated.daily_active_users ORDER BY dt",
        ),
    ] {
        println!("\n{title}:");
        match backend.run(sql, "curated").await {
            Ok(answer) => {
                let mut out = std::io::stdout().lock();
                super::query::render(&answer, super::query::Format::Table, &mut out)?;
            }
            Err(e) => println!("  failed: {e:#}"),
        }
    }
    Ok(())
}

/// Questions analysts ask of the logs, answered through the Athena API
/// while the server still holds part of the records in its buffers (they
/// are counted too).
const LIVE_QUESTIONS: &[(&str, &str)] = &[
    (
        "requests, errors and p95 latency per service",
        "SELECT service, count(*) AS requests, count_if(status >= 500) AS errors, \
         round(approx_percentile(latency_ms, 0.95), 1) AS p95_ms \
         FROM demo.app_logs GROUP BY service ORDER BY requests DESC",
    ),
    (
        "top paths",
        "SELECT path, count(*) AS requests, round(avg(latency_ms), 1) AS avg_ms \
         FROM demo.app_logs GROUP BY path ORDER BY requests DESC LIMIT 5",
    ),
    (
        "error rate per service per minute (last 3 minutes)",
        "SELECT service, date_trunc('minute', \"timestamp\") AS minute, count(*) AS requests, \
         round(100.0 * count_if(status >= 500) / count(*), 2) AS error_pct \
         FROM demo.app_logs \
         WHERE \"timestamp\" >= (SELECT date_trunc('minute', max(\"timestamp\")) - INTERVAL '2' MINUTE FROM demo.app_logs) \
         GROUP BY 1, 2 ORDER BY 1, 2",
    ),
];

async fn live_answers(endpoint: &str, key: (&str, &str), delivered: u64, acked: u64) {
    let target = super::query::Target {
        credentials: Some((key.0.to_string(), key.1.to_string())),
        data_dir: PathBuf::new(),
        storage: Default::default(),
        endpoint: Some(endpoint.to_string()),
        database: "demo".into(),
        workgroup: "primary".into(),
        format: super::query::Format::Table,
        output: None,
        memory_limit_mb: 0,
        max_result_mb: (lakehose_query::stream::DEFAULT_MAX_HELD_RESULT_BYTES >> 20) as u64,
    };
    let backend = match super::query::Backend::open(&target).await {
        Ok(b) => b,
        Err(e) => {
            println!("could not query: {e:#}");
            return;
        }
    };
    println!(
        "\nlive answers through the Athena API ({} of {acked} acknowledged records are still in buffers, and counted):",
        acked.saturating_sub(delivered)
    );
    for (title, sql) in LIVE_QUESTIONS {
        println!("\n{title}:");
        match backend.run(sql, "demo").await {
            Ok(answer) => {
                let mut out = std::io::stdout().lock();
                if let Err(e) = super::query::render(&answer, super::query::Format::Table, &mut out)
                {
                    println!("  could not print: {e:#}");
                }
            }
            Err(e) => println!("  failed: {e:#}"),
        }
    }
    println!();
}

/// Crawls what the fleet shipped, as a Glue crawler would, into the
/// database `demo_crawled`.
async fn crawl_landing(data_dir: &Path, bucket: &str) -> anyhow::Result<()> {
    use lakehose_catalog::crawler::{CrawlOptions, NoProgress, crawl};
    let storage = lakehose_catalog::Storage::local(data_dir)?;
    let catalog = lakehose_catalog::EmbeddedCatalog::new(storage.clone());
    let targets = [
        lakehose_catalog::Location::parse(&format!("s3://{bucket}/logs/"))?,
        lakehose_catalog::Location::parse(&format!("s3://{bucket}/errors/"))?,
    ];
    let summary = crawl(
        &storage,
        &catalog,
        &targets,
        &CrawlOptions::new("demo", "demo_crawled"),
        &NoProgress,
    )
    .await?;
    println!(
        "\ncrawled s3://{bucket}/logs/ and /errors/: {} files in {} ms; tables created {:?}, updated {:?}; {} partitions added; {} files skipped",
        summary.files,
        summary.elapsed.as_millis(),
        summary.tables_created,
        summary.tables_updated,
        summary.partitions_added,
        summary.skipped.len()
    );
    Ok(())
}

/// Prints the catalog tables the stream registered its partitions in.
async fn print_catalog(data_dir: &Path) -> anyhow::Result<()> {
    use lakehose_catalog::Catalog;
    let catalog =
        lakehose_catalog::EmbeddedCatalog::new(lakehose_catalog::Storage::local(data_dir)?);
    println!("\ncatalog (demo: registered at each flush; demo_crawled: found by the crawler):");
    for db in catalog.list_databases().await? {
        for table in catalog.list_tables(&db.name).await? {
            let partitions = catalog.get_partitions(&db.name, &table.name, None).await?;
            let sd = table.storage_descriptor.clone().unwrap_or_default();
            let keys: Vec<&str> = table
                .partition_keys
                .iter()
                .map(|k| k.name.as_str())
                .collect();
            println!(
                "  {}.{}  {} columns, partitioned by ({}), {} partitions, at {}",
                db.name,
                table.name,
                sd.columns.len(),
                keys.join(", "),
                partitions.len(),
                sd.location.unwrap_or_default()
            );
            let cols: Vec<String> = sd
                .columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.data_type.as_deref().unwrap_or("?")))
                .collect();
            println!("    {}", cols.join(", "));
        }
    }
    Ok(())
}

/// An `ExtendedS3DestinationConfiguration` delivering zstd Parquet to
/// `bucket`, partitioned with the JQ metadata query `query` into `prefix`.
pub fn parquet_destination(
    bucket: &str,
    prefix: &str,
    error_prefix: &str,
    query: &str,
    interval_seconds: i32,
    table: Option<(&str, &str)>,
) -> anyhow::Result<aws_sdk_firehose::types::ExtendedS3DestinationConfiguration> {
    use aws_sdk_firehose::types::*;
    let parameter = |name: ProcessorParameterName, value: &str| {
        ProcessorParameter::builder()
            .parameter_name(name)
            .parameter_value(value)
            .build()
    };
    let metadata = Processor::builder()
        .r#type(ProcessorType::MetadataExtraction)
        .parameters(parameter(
            ProcessorParameterName::MetadataExtractionQuery,
            query,
        )?)
        .parameters(parameter(
            ProcessorParameterName::JsonParsingEngine,
            "JQ-1.6",
        )?)
        .build()?;
    let input = InputFormatConfiguration::builder()
        .deserializer(
            Deserializer::builder()
                .open_x_json_ser_de(OpenXJsonSerDe::builder().build())
                .build(),
        )
        .build();
    let output = OutputFormatConfiguration::builder()
        .serializer(
            Serializer::builder()
                .parquet_ser_de(
                    ParquetSerDe::builder()
                        .compression(ParquetCompression::from("ZSTD"))
                        .build(),
                )
                .build(),
        )
        .build();
    Ok(ExtendedS3DestinationConfiguration::builder()
        .role_arn("arn:aws:iam::000000000000:role/lakehose")
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .prefix(prefix)
        .error_output_prefix(error_prefix)
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(64)
                .interval_in_seconds(interval_seconds)
                .build(),
        )
        .dynamic_partitioning_configuration(
            DynamicPartitioningConfiguration::builder()
                .enabled(true)
                .build(),
        )
        .processing_configuration(
            ProcessingConfiguration::builder()
                .enabled(true)
                .processors(metadata)
                .build(),
        )
        .data_format_conversion_configuration(
            DataFormatConversionConfiguration::builder()
                .enabled(true)
                .set_schema_configuration(table.map(|(db, t)| {
                    SchemaConfiguration::builder()
                        .database_name(db)
                        .table_name(t)
                        .role_arn("arn:aws:iam::000000000000:role/lakehose")
                        .build()
                }))
                .input_format_configuration(input)
                .output_format_configuration(output)
                .build(),
        )
        .build()?)
}

async fn create_stream(
    client: &Client,
    config: &Config,
    prefix: &str,
    error_prefix: &str,
) -> anyhow::Result<()> {
    let dest = parquet_destination(
        &config.bucket,
        prefix,
        error_prefix,
        "{service: .service}",
        config.interval as i32,
        Some(("demo", "app_logs")),
    )?;
    match client
        .create_delivery_stream()
        .delivery_stream_name(&config.stream)
        .extended_s3_destination_configuration(dest)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            println!(
                "delivery stream {:?} already exists; reusing it",
                config.stream
            );
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context("CreateDeliveryStream failed")),
    }
}

async fn container(
    index: usize,
    client: Client,
    stream: String,
    batch: usize,
    rate: f64,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let mut generator = LogGenerator::new(index, 0x1a4e_4053);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let mut records = Vec::with_capacity(batch);
        let mut bytes = 0u64;
        let mut malformed = 0;
        for _ in 0..batch {
            n += 1;
            let mut line = if n.is_multiple_of(997) {
                // A container that occasionally writes a broken line.
                malformed += 1;
                format!("{{\"service\": \"{}\", \"message\": \"truncated", index)
            } else {
                generator.record(Utc::now()).to_string()
            };
            line.push('\n');
            bytes += line.len() as u64;
            records.push(
                Record::builder()
                    .data(Blob::new(line.into_bytes()))
                    .build()
                    .expect("data is set"),
            );
        }
        match client
            .put_record_batch()
            .delivery_stream_name(&stream)
            .set_records(Some(records))
            .send()
            .await
        {
            Ok(out) => {
                let ok = batch as u64 - out.failed_put_count() as u64;
                counters.acked.fetch_add(ok, Ordering::Relaxed);
                counters.bytes.fetch_add(bytes, Ordering::Relaxed);
                counters.malformed.fetch_add(malformed, Ordering::Relaxed);
            }
            Err(e) => {
                counters.failed_calls.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %aws_sdk_firehose::error::DisplayErrorContext(&e), "PutRecordBatch failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        sent += batch as u64;
        if rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
}

/// Prints the folders that received objects, with file counts and sizes.
fn print_landing(bucket_dir: &Path) -> anyhow::Result<()> {
    let mut folders: std::collections::BTreeMap<PathBuf, (u64, u64)> = Default::default();
    let mut stack = vec![bucket_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                let slot = folders.entry(dir.clone()).or_default();
                slot.0 += 1;
                slot.1 += size;
            }
        }
    }
    println!("\nwhat landed under {}:", bucket_dir.display());
    if folders.is_empty() {
        println!("  (nothing yet)");
    }
    let (mut files, mut bytes) = (0, 0);
    for (dir, (n, size)) in &folders {
        files += n;
        bytes += size;
        let rel = dir.strip_prefix(bucket_dir).unwrap_or(dir);
        println!(
            "  {:<60} {:>4} files {:>10.1} KiB",
            rel.display(),
            n,
            *size as f64 / 1024.0
        );
    }
    println!(
        "  total: {files} files, {:.2} MiB",
        bytes as f64 / 1048576.0
    );
    Ok(())
}
