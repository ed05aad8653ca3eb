//! # lakehose
//!
//! A self-hosted analytics data lake in one binary. This crate is the CLI
//! (`clap`) and the one HTTP server that mounts every crate's handlers:
//!
//! ```text
//!                 ┌──────────── lakehose serve (one port) ────────────┐
//!   every request but /health and /metrics: SigV4 (or a bearer token on
//!   NDJSON), then the caller's policies (access.rs, lakehose-auth)
//! POST /  X-Amz-Target: Firehose_20150804.*  ──▶ lakehose-ingest (Firehose API)
//! POST /  X-Amz-Target: AWSGlue.*            ──▶ lakehose-catalog (Glue API)
//! POST /  X-Amz-Target: AmazonAthena.*       ──▶ lakehose-athena
//! POST /v1/streams/{name}/records (NDJSON)   ──▶ lakehose-ingest
//! GET  /health, GET /metrics (Prometheus)
//!                 └───────────────────────────────────────────────────┘
//!   Postgres wire (its own port, SCRAM)      ──▶ lakehose-pgwire
//! ```
//!
//! See `DESIGN.md` for the whole architecture.

/// Ingest allocates and frees many small buffers per record (JSON values,
/// JQ values, record bytes); mimalloc handles that pattern far better than
/// the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod access;
pub mod commands;
pub mod dynamodb_export;
pub mod http;
pub mod loggen;
pub mod server;
pub mod storage_args;
pub mod usersgen;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// lakehose: a self-hosted analytics data lake in one binary.
///
/// Containers ship logs over the Firehose API or NDJSON; lakehose makes them
/// durable in a write-ahead log and lands them as partitioned Parquet in
/// buckets under a local folder.
#[derive(Debug, Parser)]
#[command(name = "lakehose", version, about, long_about)]
pub struct Cli {
    /// Log filter (e.g. `info`, `lakehose_ingest=debug`).
    #[arg(long, global = true, env = "LAKEHOSE_LOG", default_value = "info")]
    pub log: String,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the Firehose API and NDJSON ingest on one HTTP port.
    Serve(commands::serve::Config),
    /// Run the server plus a built-in fleet of containers shipping logs
    /// through the Firehose API, and show what lands where.
    Demo(commands::demo::Config),
    /// Crawl s3:// paths: classify files (Parquet, JSON lines, CSV/TSV,
    /// gzip), infer schemas and partitions, and write tables to the catalog.
    Crawl(commands::crawl::Config),
    /// Run SQL once (Athena/Presto dialect, DDL included) against the data
    /// folder or a running server, print the results and exit non-zero on
    /// failure.
    Query(commands::query::QueryConfig),
    /// Interactive SQL shell: line editing, history, multi-line statements,
    /// tab completion of tables and columns.
    Sql(commands::query::SqlConfig),
    /// SQL jobs that turn raw tables into curated Delta tables: list,
    /// validate, run (one or all, in dependency order), history.
    Etl(commands::etl::Config),
    /// Dashboards over the catalog: list them with their datasets'
    /// freshness, validate, refresh cached datasets, render to files.
    Dashboard(commands::dashboard::Config),
    /// Import data exported elsewhere: `dynamodb-export` turns DynamoDB's
    /// Export to S3 (full and incremental) into a queryable Delta table.
    Import(commands::import::Config),
    /// Compact a table's small files into files of a target size (Parquet
    /// tables partition by partition, Delta tables by OPTIMIZE), without
    /// readers seeing a row twice or missing one.
    Optimize(commands::optimize::Config),
    /// Generate the eight TPC-H tables as zstd Parquet, one folder per
    /// table, for tests and benchmarks.
    TpchGen(commands::tpch::Config),
    /// Write a large raw log table (days of the demo's traffic, partitioned
    /// by service, day and hour) and a users table straight to Parquet, for
    /// benchmarks and trying queries on realistic volumes.
    GenLogs(commands::gen_logs::Config),
    /// Run `q<N>.sql` files with a bare DataFusion session over folders of
    /// Parquet (the baseline lakehose's service overhead is measured
    /// against); prints one JSON line per query.
    #[command(hide = true)]
    BareDatafusion(commands::bare_datafusion::Config),
    /// Administer the server's principals: their access keys and policies.
    Admin(commands::admin::Config),
    /// Run a query worker: stages of the queries of `lakehose serve
    /// --workers`, over the same storage.
    Worker(commands::worker::Config),
}

/// Parses the command line, runs the command and returns the exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let result = match cli.command {
        Command::Serve(config) => commands::serve::run(config),
        Command::Demo(config) => commands::demo::run(config),
        Command::Crawl(config) => commands::crawl::run(config),
        Command::Query(config) => commands::query::run_query(config),
        Command::Sql(config) => commands::query::run_sql(config),
        Command::Etl(config) => commands::etl::run(config),
        Command::Dashboard(config) => commands::dashboard::run(config),
        Command::Import(config) => commands::import::run(config),
        Command::Optimize(config) => commands::optimize::run(config),
        Command::TpchGen(config) => commands::tpch::run(config),
        Command::GenLogs(config) => commands::gen_logs::run(config),
        Command::BareDatafusion(config) => commands::bare_datafusion::run(config),
        Command::Admin(config) => commands::admin::run(config),
        Command::Worker(config) => commands::worker::run(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line. lakehose's errors already carry
/// their source's text, so a cause is added only when the line does not
/// say it yet.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Libraries whose informational events (per-snapshot and per-scan
/// details of Delta tables) would drown lakehose's own at `info`; they log
/// warnings and errors unless the filter names them.
const QUIET_LIBRARIES: [&str; 3] = ["buoyant_kernel", "delta_kernel", "deltalake"];

fn init_logging(filter: &str) {
    let mut directives = filter.to_string();
    for library in QUIET_LIBRARIES {
        if !filter.contains(library) {
            directives.push_str(&format!(",{library}=warn"));
        }
    }
    // A MERGE warns about a missing metric of its own on every run.
    if !filter.contains("deltalake_core") {
        directives.push_str(",deltalake_core::operations::merge=error");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    #[test]
    fn error_text_says_each_cause_once() {
        let inner = lakehose_transform::Error::invalid("the table is partitioned by [day]")
            .context("running daily");
        let e = anyhow::Error::new(inner).context("etl run");
        assert_eq!(
            super::error_text(&e),
            "etl run: running daily: the table is partitioned by [day]"
        );
        let plain: anyhow::Result<()> = Err(std::io::Error::other("disk full")).context("saving");
        assert_eq!(super::error_text(&plain.unwrap_err()), "saving: disk full");
    }
}
