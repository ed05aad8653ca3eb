//! `lakehose serve`: the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::server::{self, ServerOptions};

/// Flags shared by every command that runs the server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The warehouse folder: bucket `B` is `<data-dir>/B/`, lakehose's own
    /// state is under `<data-dir>/_lakehose/`.
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub storage: crate::storage_args::StorageArgs,

    /// HTTP address for the AWS APIs, NDJSON ingest, /health and /metrics.
    /// Loopback by default; use 0.0.0.0:4570 to accept other machines.
    #[arg(long, env = "LAKEHOSE_LISTEN", default_value = "127.0.0.1:4570")]
    pub listen: SocketAddr,

    /// Folder of the ingest write-ahead log (local disk)
    /// [default: <data-dir>/_lakehose/wal].
    #[arg(long, env = "LAKEHOSE_WAL_DIR")]
    pub wal_dir: Option<PathBuf>,

    /// This node's name in the objects it writes, when several nodes share
    /// one storage (1 to 32 of a-z, 0-9, '-'). With --storage s3 a name is
    /// made on first start and kept in the write-ahead log's folder.
    #[arg(long, env = "LAKEHOSE_NODE_ID")]
    pub node_id: Option<String>,

    /// With several nodes: this node records in the shared history that it
    /// is alive every quarter of this many seconds, and the other nodes
    /// report its queued and running Athena queries as failed once it has
    /// been silent for longer (it crashed or lost its storage).
    #[arg(long, env = "LAKEHOSE_NODE_LEASE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub node_lease_secs: u64,

    /// Query workers (`lakehose worker`) to run queries' stages on, as
    /// host:port,... Every query path (Athena API, Postgres, ETL, the
    /// dashboards) is planned here and executed across them; without it
    /// this process runs every query itself.
    #[arg(long, env = "LAKEHOSE_WORKERS", value_delimiter = ',')]
    pub workers: Vec<String>,

    /// The token the workers were started with (LAKEHOSE_WORKER_TOKEN).
    #[arg(long, env = "LAKEHOSE_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// KiB of files one scan task reads on the workers (fewer, more tasks).
    #[arg(long, env = "LAKEHOSE_WORKER_TASK_KB", default_value_t = 16 * 1024)]
    pub worker_task_kb: usize,

    /// MiB of acknowledged records not yet delivered, past which ingest
    /// answers ServiceUnavailableException (503) until buffers drain.
    #[arg(long, env = "LAKEHOSE_MAX_BUFFER_MB", default_value_t = 512)]
    pub max_buffer_mb: u64,

    /// MiB a request body may have as sent; larger ones get 413.
    #[arg(long, env = "LAKEHOSE_MAX_BODY_MB", default_value_t = 64)]
    pub max_body_mb: usize,

    /// MiB an NDJSON body may have once decompressed (gzip); larger ones
    /// get 413, found while decompressing.
    #[arg(long, env = "LAKEHOSE_MAX_DECOMPRESSED_MB", default_value_t = 64)]
    pub max_decompressed_mb: usize,

    /// Records (non-empty lines) one NDJSON request may hold; more get 413.
    #[arg(long, env = "LAKEHOSE_MAX_NDJSON_RECORDS", default_value_t = 100_000)]
    pub max_ndjson_records: usize,

    /// Tokio worker threads of the network runtime (HTTP, Postgres wire,
    /// write-ahead log) [default: one per core].
    #[arg(long, env = "LAKEHOSE_WORKER_THREADS")]
    pub worker_threads: Option<usize>,

    /// Worker threads of the runtime queries, ETL runs and compaction run
    /// on, at a lower priority than the network's, so a heavy query does
    /// not hold back ingest acknowledgements [default: one per core]. 0
    /// runs them on the network runtime.
    #[arg(long, env = "LAKEHOSE_QUERY_THREADS")]
    pub query_threads: Option<usize>,

    /// PostgreSQL wire protocol address (psql, BI tools). Loopback by
    /// default.
    #[arg(long, env = "LAKEHOSE_PG_LISTEN", default_value = "127.0.0.1:5433")]
    pub pg_listen: SocketAddr,

    /// MiB of memory for query operators (joins, sorts, aggregations);
    /// past it they spill to disk.
    #[arg(long, env = "LAKEHOSE_QUERY_MEMORY_MB", default_value_t = 4096)]
    pub query_memory_mb: usize,

    /// Folder for query spill files [default: the OS temporary folder].
    #[arg(long, env = "LAKEHOSE_SPILL_DIR")]
    pub spill_dir: Option<PathBuf>,

    /// A session setting every query starts with, `KEY=VALUE`
    /// (repeatable, or comma-separated in the variable): lakehose's
    /// planner rules (`lakehose.share_subplans=false`,
    /// `lakehose.runtime_filters=false`) or DataFusion's
    /// (`datafusion.execution.parquet.pushdown_filters=true`). An unknown
    /// key or a bad value stops the server at start.
    #[arg(long = "query-setting", value_name = "KEY=VALUE", env = "LAKEHOSE_QUERY_SETTINGS", value_delimiter = ',', value_parser = crate::commands::parse_setting)]
    pub query_settings: Vec<(String, String)>,

    /// Seconds after which a query fails with a timeout.
    #[arg(long, env = "LAKEHOSE_QUERY_TIMEOUT_SECS", default_value_t = 1800)]
    pub query_timeout_secs: u64,

    /// Queries run at once through the Athena API; more wait QUEUED.
    #[arg(long, env = "LAKEHOSE_MAX_CONCURRENT_QUERIES", default_value_t = 4)]
    pub max_concurrent_queries: usize,

    /// Folder of ETL job files (`<name>.sql`, e.g. `sql/etl`) whose
    /// schedules the server runs; none are run without it.
    #[arg(long, env = "LAKEHOSE_ETL_JOBS")]
    pub etl_jobs: Option<PathBuf>,

    /// When table maintenance runs (cron, 5 fields, or 6 with seconds
    /// first; `off` to never): it compacts every Parquet and Delta table
    /// and VACUUMs the ETL jobs' tables with each job's `retain_hours`.
    #[arg(long, env = "LAKEHOSE_MAINTENANCE", default_value = "7 * * * *")]
    pub maintenance: String,

    /// Maintenance compacts a partition only when it received no file for
    /// this long (e.g. `1h`, `30m`).
    #[arg(long, env = "LAKEHOSE_COMPACT_MIN_AGE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub compact_min_age: std::time::Duration,

    /// The size maintenance packs small files to, MiB.
    #[arg(long, env = "LAKEHOSE_COMPACT_TARGET_MB", default_value_t = 128)]
    pub compact_target_mb: u64,

    /// HTTP connections served at once; more clients wait in the listen
    /// backlog until one closes.
    #[arg(long, env = "LAKEHOSE_HTTP_MAX_CONNECTIONS", default_value_t = crate::http::DEFAULT_MAX_CONNECTIONS)]
    pub http_max_connections: usize,

    /// Seconds an HTTP client has to send a request's head; also how long
    /// an idle keep-alive connection stays open. The connection is closed
    /// past it.
    #[arg(long, env = "LAKEHOSE_HTTP_HEADER_TIMEOUT_SECS", default_value_t = crate::http::DEFAULT_HEADER_TIMEOUT_SECS)]
    pub http_header_timeout_secs: u64,

    /// Seconds an HTTP client has to send a request's whole body; a slower
    /// body is refused (400) and the connection closed.
    #[arg(long, env = "LAKEHOSE_HTTP_BODY_TIMEOUT_SECS", default_value_t = crate::http::DEFAULT_BODY_TIMEOUT_SECS)]
    pub http_body_timeout_secs: u64,

    /// Bytes an HTTP request's head (request line and headers) may take;
    /// a larger one is answered 431.
    #[arg(long, env = "LAKEHOSE_HTTP_MAX_HEADER_BYTES", default_value_t = crate::http::DEFAULT_MAX_HEADER_BYTES)]
    pub http_max_header_bytes: usize,

    /// MiB of request bodies being received and handled at once (each
    /// request counts its Content-Length, or --max-body-mb when sent in
    /// chunks); past it requests get 503 before their body is read.
    #[arg(long, env = "LAKEHOSE_HTTP_MAX_INFLIGHT_BODY_MB", default_value_t = (crate::http::DEFAULT_MAX_INFLIGHT_BODY_BYTES >> 20) as u64)]
    pub http_max_inflight_body_mb: u64,

    /// Postgres connections served at once; more are refused with
    /// `53300 too many connections`.
    #[arg(long, env = "LAKEHOSE_PG_MAX_CONNECTIONS", default_value_t = lakehose_pgwire::DEFAULT_MAX_CONNECTIONS)]
    pub pg_max_connections: usize,

    /// Postgres connections one principal may hold at once (each runs one
    /// statement at a time); more logins are refused with `53300 too many
    /// connections for role`. 0: no limit.
    #[arg(long, env = "LAKEHOSE_PG_MAX_CONNECTIONS_PER_PRINCIPAL", default_value_t = lakehose_pgwire::DEFAULT_MAX_CONNECTIONS_PER_PRINCIPAL)]
    pub pg_max_connections_per_principal: usize,

    /// Seconds a Postgres client has from connecting to finishing its
    /// startup and authentication.
    #[arg(long, env = "LAKEHOSE_PG_STARTUP_TIMEOUT_SECS", default_value_t = lakehose_pgwire::DEFAULT_STARTUP_TIMEOUT_SECS)]
    pub pg_startup_timeout_secs: u64,

    /// Seconds a Postgres connection may pass without traffic either way
    /// before it is closed; 0 for never. A statement that sends no row for
    /// that long counts as idle, so keep it above --query-timeout-secs.
    #[arg(long, env = "LAKEHOSE_PG_IDLE_TIMEOUT_SECS", default_value_t = lakehose_pgwire::DEFAULT_IDLE_TIMEOUT_SECS)]
    pub pg_idle_timeout_secs: u64,

    /// Bytes one message from a Postgres client may take; a larger one
    /// ends the connection with an error.
    #[arg(long, env = "LAKEHOSE_PG_MAX_MESSAGE_BYTES", default_value_t = lakehose_pgwire::DEFAULT_MAX_MESSAGE_BYTES)]
    pub pg_max_message_bytes: usize,

    /// Athena query executions kept in the history; past it the oldest
    /// finished ones are forgotten (their records deleted, their result
    /// files kept).
    #[arg(long, env = "LAKEHOSE_MAX_QUERY_EXECUTIONS", default_value_t = lakehose_athena::DEFAULT_MAX_EXECUTIONS)]
    pub max_query_executions: usize,

    /// MiB a query result held whole in memory may take (the `lakehose sql`
    /// CLI, dashboard datasets); results streamed to Postgres clients and
    /// Athena result files are not held and not capped.
    #[arg(long, env = "LAKEHOSE_MAX_HELD_RESULT_MB", default_value_t = (lakehose_query::stream::DEFAULT_MAX_HELD_RESULT_BYTES >> 20) as u64)]
    pub max_held_result_mb: u64,
    /// Seconds graceful shutdown (SIGTERM, Ctrl-C) waits for buffered
    /// records to be delivered; past it the process exits and records not
    /// yet delivered stay in the write-ahead log for the next start.
    #[arg(long, env = "LAKEHOSE_SHUTDOWN_TIMEOUT_SECS", default_value_t = 120)]
    pub shutdown_timeout_secs: u64,

    /// The principals' access keys (`lakehose admin keys`), read again
    /// when changed. Once a key exists every request must be signed with
    /// one (SigV4; Postgres: SCRAM with the key id as user, the secret as
    /// password); a listener beyond loopback needs a key to start
    /// [default: <data-dir>/_lakehose/principals.json].
    #[arg(long, env = "LAKEHOSE_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,

    /// The JWKS file of an identity provider (Cognito-style): NDJSON
    /// ingest then also accepts `Authorization: Bearer <JWT>` signed
    /// (RS256/ES256) by one of its keys, read again when the file changes.
    /// Needs --jwt-issuer and --jwt-audience.
    #[arg(long, env = "LAKEHOSE_JWT_JWKS", requires_all = ["jwt_issuer", "jwt_audience"])]
    pub jwt_jwks: Option<PathBuf>,

    /// The `iss` bearer tokens must carry.
    #[arg(long, env = "LAKEHOSE_JWT_ISSUER", requires = "jwt_jwks")]
    pub jwt_issuer: Option<String>,

    /// The `aud` bearer tokens must carry.
    #[arg(long, env = "LAKEHOSE_JWT_AUDIENCE", requires = "jwt_jwks")]
    pub jwt_audience: Option<String>,

    /// Host names clients may address the HTTP server by (the `Host`
    /// header), comma-separated, `*` wildcards allowed (e.g.
    /// `lake.example.com,*.lake.internal`). IP addresses and `localhost`
    /// always work; any other name is refused, which stops DNS-rebinding
    /// pages from reaching a server on loopback.
    #[arg(long, env = "LAKEHOSE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// PEM certificate chain for TLS on the HTTP and Postgres ports (the
    /// HTTP port then speaks only HTTPS; Postgres clients choose with
    /// sslmode). Read again when it or the key changes. Needs --tls-key.
    #[arg(long, env = "LAKEHOSE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "LAKEHOSE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Requests a second one principal may make (bursts of twice as many);
    /// past it calls get their service's throttling error
    /// (ThrottlingException, or 503 Slow down for records). 0: no limit.
    #[arg(
        long,
        env = "LAKEHOSE_MAX_REQUESTS_PER_PRINCIPAL_PER_SEC",
        default_value_t = 2000
    )]
    pub max_requests_per_principal_per_sec: u32,

    /// Athena queries one principal may have queued or running at once;
    /// more get TooManyRequestsException. 0: no limit.
    #[arg(long, env = "LAKEHOSE_MAX_QUERIES_PER_PRINCIPAL", default_value_t = 20)]
    pub max_queries_per_principal: usize,

    /// The principal scheduled ETL jobs run as once access keys exist:
    /// a job reads only tables its policies grant `lakehose:Select` on and
    /// writes its target with `lakehose:Insert` (and `glue:CreateTable`
    /// before the first run). Grant them with `lakehose admin policies put
    /// --principal <name>`.
    #[arg(long, env = "LAKEHOSE_ETL_PRINCIPAL", default_value = "lakehose-etl")]
    pub etl_principal: String,

    /// Where the dashboards come from.
    #[command(flatten)]
    pub dashboards: super::dashboard::Sources,
}

impl ServerArgs {
    /// The maintenance these flags describe (`None` when `off`).
    pub fn maintenance(&self) -> anyhow::Result<Option<lakehose_transform::schedule::Maintenance>> {
        if self.maintenance.trim().eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let schedule = lakehose_catalog::schedule::Schedule::unix(&self.maintenance)
            .map_err(|e| anyhow::anyhow!("--maintenance: {e}"))?;
        Ok(Some(lakehose_transform::schedule::Maintenance {
            schedule,
            compact: lakehose_transform::CompactOptions {
                target_size: self.compact_target_mb.max(1) << 20,
                min_age: chrono::Duration::from_std(self.compact_min_age)
                    .map_err(|_| anyhow::anyhow!("--compact-min-age is too long"))?,
                ..Default::default()
            },
        }))
    }

    /// The server options these flags describe.
    pub fn options(&self) -> anyhow::Result<ServerOptions> {
        Ok(ServerOptions {
            data_dir: self.data_dir.clone(),
            storage: self.storage.clone(),
            node_id: self.node_id.clone(),
            node_lease: std::time::Duration::from_secs(self.node_lease_secs),
            listen: self.listen,
            wal_dir: self.wal_dir.clone(),
            max_buffer_bytes: self.max_buffer_mb.max(1) * 1024 * 1024,
            request_limits: server::RequestLimits {
                max_body_bytes: self.max_body_mb.max(1) << 20,
                max_decompressed_bytes: self.max_decompressed_mb.max(1) << 20,
                max_ndjson_records: self.max_ndjson_records.max(1),
            },
            pg_listen: self.pg_listen,
            max_concurrent_queries: self.max_concurrent_queries.max(1),
            etl_jobs: self.etl_jobs.clone(),
            etl_job_list: Vec::new(),
            maintenance: self.maintenance()?,
            http_limits: crate::http::HttpLimits {
                max_connections: self.http_max_connections.max(1),
                header_timeout: std::time::Duration::from_secs(
                    self.http_header_timeout_secs.max(1),
                ),
                body_timeout: std::time::Duration::from_secs(self.http_body_timeout_secs.max(1)),
                max_header_bytes: self.http_max_header_bytes.max(1024),
                max_inflight_body_bytes: usize::try_from(self.http_max_inflight_body_mb.max(1))
                    .unwrap_or(usize::MAX >> 20)
                    << 20,
                max_body_bytes: self.max_body_mb.max(1) << 20,
            },
            pg: lakehose_pgwire::PgLimits {
                max_connections: self.pg_max_connections.max(1),
                max_connections_per_principal: self.pg_max_connections_per_principal,
                startup_timeout: std::time::Duration::from_secs(
                    self.pg_startup_timeout_secs.max(1),
                ),
                idle_timeout: (self.pg_idle_timeout_secs > 0)
                    .then(|| std::time::Duration::from_secs(self.pg_idle_timeout_secs)),
                max_message_bytes: self.pg_max_message_bytes.max(1024),
            },
            max_executions: self.max_query_executions.max(1),
            shutdown_timeout: std::time::Duration::from_secs(self.shutdown_timeout_secs),
            keys_file: self.keys_file.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            etl_principal: self.etl_principal.clone(),
            dashboard_dirs: self.dashboards.resolve()?.0,
            dashboard_list: self.dashboards.resolve()?.1,
            principal_caps: crate::access::PrincipalCaps {
                requests_per_sec: self.max_requests_per_principal_per_sec,
                queries: self.max_queries_per_principal,
            },
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(lakehose_auth::tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            jwt: self
                .jwt_jwks
                .clone()
                .map(|jwks| lakehose_auth::jwt::JwtConfig {
                    jwks,
                    issuer: self.jwt_issuer.clone().unwrap_or_default(),
                    audience: self.jwt_audience.clone().unwrap_or_default(),
                }),
            engine: lakehose_query::EngineConfig {
                memory_limit: self.query_memory_mb.max(64) << 20,
                spill_dir: self.spill_dir.clone(),
                max_held_result_bytes: usize::try_from(self.max_held_result_mb.max(1))
                    .unwrap_or(usize::MAX >> 20)
                    << 20,
                query_timeout: Some(std::time::Duration::from_secs(
                    self.query_timeout_secs.max(1),
                )),
                cpu_threads: self
                    .query_threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
                workers: super::worker::workers(&self.workers, self.worker_token.as_deref())?
                    .map(|w| w.with_bytes_per_task(self.worker_task_kb.saturating_mul(1024))),
                settings: self.query_settings.clone(),
                ..Default::default()
            },
        })
    }
}

/// `lakehose serve`.
#[derive(Debug, clap::Args)]
pub struct Config {
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs the server until SIGINT or SIGTERM, then flushes every buffer.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = server::runtime(config.server.worker_threads)?;
    runtime.block_on(async move {
        let signal = server::shutdown_signal();
        let running = server::start(config.server.options()?).await?;
        println!("lakehose listening on {}", running.endpoint());
        println!("postgres wire listening on {}", running.pg_addr());
        println!("data folder: {}", config.server.data_dir.display());
        signal.await;
        eprintln!("shutting down: delivering every buffer...");
        if running.shutdown().await? {
            eprintln!("stopped cleanly");
        } else {
            eprintln!(
                "stopped after the shutdown timeout: undelivered records stay in the write-ahead log and are delivered on the next start"
            );
        }
        Ok(())
    })
}
