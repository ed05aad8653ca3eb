//! The one HTTP server: every crate's handlers on one port.
//!
//! - `POST /` with `X-Amz-Target: <service>.<Operation>`: the AWS JSON 1.1
//!   APIs, dispatched on the target prefix (`Firehose_20150804`, `AWSGlue`,
//!   `AmazonAthena`).
//! - `POST /v1/streams/{name}/records`: NDJSON ingest.
//! - `GET /health`, `GET /metrics` (Prometheus text format).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use lakehose_athena::{self as athena, AthenaApi, AthenaConfig};
use lakehose_catalog::awsjson::AwsError;
use lakehose_catalog::crawler::service::CrawlerService;
use lakehose_catalog::glue::{self, GlueApi};
use lakehose_catalog::{CatalogRef, Location};
use lakehose_ingest::{IngestConfig, IngestService, firehose};
use lakehose_query::live::{LiveBuffer, LiveSource};
use lakehose_query::{EngineConfig, QueryEngine};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;

use crate::access::{Access, Caller};
use lakehose_auth::keys::KeyPaths;

/// Caps on what one request may hold.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest body as sent (413 past it).
    pub max_body_bytes: usize,
    /// Largest NDJSON body once decompressed (413 past it).
    pub max_decompressed_bytes: usize,
    /// Most records in one NDJSON request (413 past it).
    pub max_ndjson_records: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: crate::http::DEFAULT_MAX_BODY_BYTES,
            max_decompressed_bytes: lakehose_ingest::service::DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_ndjson_records: lakehose_ingest::service::DEFAULT_MAX_NDJSON_RECORDS,
        }
    }
}

/// What the server is started with.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The warehouse folder.
    pub data_dir: PathBuf,
    /// Where tables and lakehose's own state live.
    pub storage: crate::storage_args::StorageArgs,
    /// This node's name in object names (see [`node_id`]).
    pub node_id: Option<String>,
    /// How long another node waits after this one's last sign of life
    /// before reporting its Athena queries failed.
    pub node_lease: std::time::Duration,
    /// The HTTP address.
    pub listen: SocketAddr,
    /// The write-ahead log folder (default `<data-dir>/_lakehose/wal`).
    pub wal_dir: Option<PathBuf>,
    /// Bytes accepted but not yet delivered before requests get 503.
    pub max_buffer_bytes: u64,
    /// Caps on one request.
    pub request_limits: RequestLimits,
    /// Query engine settings (memory, spill folder, timeout).
    pub engine: EngineConfig,
    /// The Postgres wire address.
    pub pg_listen: SocketAddr,
    /// Athena queries run at once.
    pub max_concurrent_queries: usize,
    /// Folder of ETL jobs whose schedules the server runs.
    pub etl_jobs: Option<PathBuf>,
    /// More ETL jobs, given directly.
    pub etl_job_list: Vec<lakehose_transform::Job>,
    /// Table maintenance on a schedule.
    pub maintenance: Option<lakehose_transform::schedule::Maintenance>,
    /// Connection limits and timeouts of the HTTP server.
    pub http_limits: crate::http::HttpLimits,
    /// Connection limits and timeouts of the Postgres wire server.
    pub pg: lakehose_pgwire::PgLimits,
    /// Athena executions kept in the history.
    pub max_executions: usize,
    /// How long graceful shutdown waits for buffered records to be
    /// delivered before leaving them in the write-ahead log.
    pub shutdown_timeout: std::time::Duration,
    /// The principals' key file [default: `<data-dir>/_lakehose/principals.json`].
    pub keys_file: Option<PathBuf>,
    /// Bearer tokens of an identity provider for NDJSON ingest.
    pub jwt: Option<lakehose_auth::jwt::JwtConfig>,
    /// Host names the HTTP server answers to besides IPs and `localhost`.
    pub allowed_hosts: Vec<String>,
    /// TLS on the HTTP and Postgres ports.
    pub tls: Option<lakehose_auth::tls::TlsFiles>,
    /// What one principal may do at once.
    pub principal_caps: crate::access::PrincipalCaps,
    /// The principal ETL jobs run as (their grants are its policies')
    /// when requests are authenticated.
    pub etl_principal: String,
    /// Folders of dashboard files.
    pub dashboard_dirs: Vec<PathBuf>,
    /// Dashboards given whole (the shipped examples).
    pub dashboard_list: Vec<lakehose_dashboards::Dashboard>,
}

impl ServerOptions {
    /// A server over `data_dir` on loopback ports the system picks, with
    /// the defaults of `lakehose serve` otherwise except a 1 GiB ingest
    /// buffer, no schedules and no access keys (benchmarks start these).
    pub fn loopback(data_dir: impl Into<PathBuf>) -> Self {
        let any_port: SocketAddr = ([127, 0, 0, 1], 0).into();
        Self {
            data_dir: data_dir.into(),
            storage: Default::default(),
            node_id: None,
            node_lease: std::time::Duration::from_secs(60),
            listen: any_port,
            wal_dir: None,
            max_buffer_bytes: 1 << 30,
            request_limits: Default::default(),
            engine: Default::default(),
            pg_listen: any_port,
            max_concurrent_queries: 4,
            etl_jobs: None,
            etl_job_list: Vec::new(),
            maintenance: None,
            http_limits: Default::default(),
            pg: Default::default(),
            max_executions: lakehose_athena::DEFAULT_MAX_EXECUTIONS,
            shutdown_timeout: std::time::Duration::from_secs(120),
            keys_file: None,
            jwt: None,
            allowed_hosts: Vec::new(),
            tls: None,
            principal_caps: Default::default(),
            etl_principal: "lakehose-etl".into(),
            dashboard_dirs: Vec::new(),
            dashboard_list: Vec::new(),
        }
    }
}

/// Records acknowledged by ingest but not yet delivered, for queries.
struct IngestLive(IngestService);

impl std::fmt::Debug for IngestLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestLive")
    }
}

impl LiveSource for IngestLive {
    fn pending(&self, database: &str, table: &str) -> Vec<LiveBuffer> {
        live_buffers(self.0.pending_records(database, table))
    }

    fn pending_under(&self, location: &Location, parquet: bool) -> Vec<LiveBuffer> {
        live_buffers(self.0.pending_under(location, parquet))
    }
}

fn live_buffers(pending: Vec<lakehose_ingest::PendingBuffer>) -> Vec<LiveBuffer> {
    pending
        .into_iter()
        .map(|p| LiveBuffer {
            folder: p.folder,
            object_suffix: p.object_suffix,
            records: p.records,
            serde: p.serde,
        })
        .collect()
}

#[derive(Clone)]
struct AppState {
    ingest: IngestService,
    access: Access,
    glue: GlueApi,
    athena: AthenaApi,
    athena_gauges: AthenaGauges,
    registry: Arc<Registry>,
}

/// Figures set at each scrape: the Athena API's, from its execution
/// history, and the S3 requests the process has sent.
#[derive(Clone, Default)]
struct AthenaGauges {
    executions: Family<Vec<(String, String)>, Gauge>,
    data_scanned: Gauge,
    engine_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    total_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// S3 requests sent, by method, and the counts already added to it.
    s3_requests: Family<Vec<(String, String)>, Counter>,
    s3_seen: Arc<std::sync::Mutex<[u64; 6]>>,
}

impl AthenaGauges {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "lakehose_athena_executions",
            "Athena query executions in the history, by state",
            self.executions.clone(),
        );
        registry.register(
            "lakehose_athena_data_scanned_bytes",
            "Bytes read by the Athena query executions in the history",
            self.data_scanned.clone(),
        );
        registry.register(
            "lakehose_athena_engine_seconds",
            "Time in the engine of the finished Athena query executions in the history",
            self.engine_seconds.clone(),
        );
        registry.register(
            "lakehose_athena_total_seconds",
            "Time from submission to completion of the finished Athena query executions in the history",
            self.total_seconds.clone(),
        );
        registry.register(
            "lakehose_s3_requests",
            "Requests sent to S3 with --storage s3, retries included, by HTTP method",
            self.s3_requests.clone(),
        );
    }

    fn update(&self, athena: &AthenaApi) {
        let sent = lakehose_catalog::s3::requests_sent();
        let mut seen = self.s3_seen.lock().unwrap_or_else(|p| p.into_inner());
        for (i, method) in lakehose_catalog::s3::REQUEST_METHODS.iter().enumerate() {
            let new = sent[i].saturating_sub(seen[i]);
            if new > 0 || sent[i] > 0 {
                self.s3_requests
                    .get_or_create(&vec![("method".to_string(), method.to_string())])
                    .inc_by(new);
            }
            seen[i] = sent[i];
        }
        drop(seen);
        let m = athena.metrics();
        for (state, n) in [
            ("QUEUED", m.queued),
            ("RUNNING", m.running),
            ("SUCCEEDED", m.succeeded),
            ("FAILED", m.failed),
            ("CANCELLED", m.cancelled),
        ] {
            self.executions
                .get_or_create(&vec![("state".to_string(), state.to_string())])
                .set(n as i64);
        }
        self.data_scanned.set(m.data_scanned_bytes as i64);
        self.engine_seconds.set(m.engine_ms as f64 / 1000.0);
        self.total_seconds.set(m.total_ms as f64 / 1000.0);
    }
}

/// A running server.
pub struct RunningServer {
    addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    pg_addr: SocketAddr,
    pg_stop: Option<oneshot::Sender<()>>,
    pg_task: tokio::task::JoinHandle<std::io::Result<()>>,
    ingest: IngestService,
    scheduler: tokio::task::JoinHandle<()>,
    dashboard_scheduler: tokio::task::JoinHandle<()>,
    etl_scheduler: Option<lakehose_transform::schedule::Scheduler>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown_timeout: std::time::Duration,
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint clients use: `http://addr`, or `https://addr` with
    /// TLS.
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The Postgres wire address.
    pub fn pg_addr(&self) -> SocketAddr {
        self.pg_addr
    }

    /// The ingest service.
    pub fn ingest(&self) -> &IngestService {
        &self.ingest
    }

    /// Stops accepting connections, finishes in-flight requests, delivers
    /// every buffer and closes the write-ahead log. Delivery is waited for
    /// at most the shutdown timeout; returns `false` when records were left
    /// in the write-ahead log for the next start.
    pub async fn shutdown(mut self) -> anyhow::Result<bool> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.scheduler.abort();
        self.dashboard_scheduler.abort();
        if let Some(stop) = self.pg_stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.pg_task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the Postgres wire server failed"),
            Err(e) => tracing::warn!(error = %e, "the Postgres wire server task failed"),
        }
        (&mut self.task)
            .await
            .context("the HTTP server task failed")?
            .context("the HTTP server failed")?;
        if let Some(etl) = self.etl_scheduler.take() {
            etl.stop(std::time::Duration::from_secs(60)).await;
        }
        Ok(self.ingest.shutdown_within(self.shutdown_timeout).await)
    }
}

/// This node's name in the objects it writes: `--node-id`; with S3 storage
/// (several nodes may share it) one made on first start and kept in
/// `<wal-dir>/node-id`, so a restart replays its log under the same names;
/// none on a local folder (one node).
pub fn node_id(options: &ServerOptions, wal_dir: &Path) -> anyhow::Result<Option<String>> {
    if let Some(id) = &options.node_id {
        lakehose_ingest::service::validate_node_id(id).map_err(anyhow::Error::msg)?;
        return Ok(Some(id.clone()));
    }
    if options.storage.storage != crate::storage_args::StorageKind::S3 {
        return Ok(None);
    }
    let file = wal_dir.join("node-id");
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let id = text.trim().to_string();
            lakehose_ingest::service::validate_node_id(&id)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            Ok(Some(id))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("n{:08x}", rand::random::<u32>());
            std::fs::create_dir_all(wal_dir)
                .with_context(|| format!("could not create {}", wal_dir.display()))?;
            std::fs::write(&file, format!("{id}\n"))
                .and_then(|()| std::fs::File::open(&file)?.sync_all())
                .with_context(|| format!("could not write {}", file.display()))?;
            Ok(Some(id))
        }
        Err(e) => Err(anyhow::anyhow!("could not read {}: {e}", file.display())),
    }
}

/// Opens the warehouse, replays the write-ahead log and starts serving.
pub async fn start(options: ServerOptions) -> anyhow::Result<RunningServer> {
    let key_paths = options
        .keys_file
        .clone()
        .map(KeyPaths::new)
        .unwrap_or_else(|| KeyPaths::in_data_dir(&options.data_dir));
    let (http_tls, pg_tls) = match &options.tls {
        Some(files) => (
            Some(tokio_rustls::TlsAcceptor::from(
                lakehose_auth::tls::server_config(files.clone(), &[b"http/1.1"])
                    .context("could not load the TLS certificate")?,
            )),
            Some(lakehose_auth::tls::server_config(
                files.clone(),
                &[b"postgresql"],
            )?),
        ),
        None => (None, None),
    };
    let access = Access::open(
        key_paths,
        options.jwt.clone(),
        &options.data_dir,
        &[options.listen, options.pg_listen],
        options.request_limits.max_body_bytes.max(1),
    )?;
    let storage = options.storage.open(&options.data_dir).await?;
    let wal_dir = options
        .wal_dir
        .clone()
        .unwrap_or_else(|| options.data_dir.join("_lakehose").join("wal"));
    let ingest_node = node_id(&options, &wal_dir)?;
    let mut config = IngestConfig::new(wal_dir);
    config.node_id = ingest_node.clone();
    config.max_buffer_bytes = options.max_buffer_bytes;
    config.max_decompressed_bytes = options.request_limits.max_decompressed_bytes.max(1);
    config.max_ndjson_records = options.request_limits.max_ndjson_records.max(1);
    let catalog: CatalogRef = options.storage.catalog(&storage).await?;
    let ingest = IngestService::open(config, storage, Some(Arc::clone(&catalog)))
        .await
        .context("could not start the ingest service")?;
    let engine = QueryEngine::new(
        Arc::clone(&catalog),
        ingest.storage().clone(),
        options.engine.clone(),
    )
    .context("could not start the query engine")?;
    engine.set_live_source(Arc::new(IngestLive(ingest.clone())));
    engine
        .ensure_default_database()
        .await
        .context("could not create the default database")?;
    let athena = AthenaApi::open(
        ingest.storage().clone(),
        Arc::clone(&catalog),
        Arc::new(engine.clone()),
        AthenaConfig {
            max_concurrent_queries: options.max_concurrent_queries,
            queue_limit: (options.max_concurrent_queries * 16).max(64),
            max_executions: options
                .max_executions
                .max((options.max_concurrent_queries * 16).max(64)),
            node_id: ingest_node.clone(),
            node_lease: options.node_lease,
            ..Default::default()
        },
    )
    .await
    .context("could not open the Athena query history")?;
    let pg_listener = tokio::net::TcpListener::bind(options.pg_listen)
        .await
        .with_context(|| format!("could not listen on {} (Postgres wire)", options.pg_listen))?;
    let pg_addr = pg_listener.local_addr()?;
    let (pg_stop, pg_stopped) = oneshot::channel::<()>();
    let pg_task = tokio::spawn(lakehose_pgwire::serve(
        pg_listener,
        Arc::new(engine.clone()),
        lakehose_pgwire::PgConfig {
            tls: pg_tls,
            audit: Some(access.statement_audit()),
            passwords: Some(access.passwords()),
            limits: options.pg.clone(),
        },
        async move {
            let _ = pg_stopped.await;
        },
    ));
    let crawlers = CrawlerService::new(ingest.storage().clone(), Arc::clone(&catalog));
    let scheduler = crawlers.spawn_scheduler();
    let mut jobs = options.etl_job_list.clone();
    if let Some(dir) = &options.etl_jobs {
        let loaded = lakehose_transform::load_dir(dir)?;
        tracing::info!(jobs = loaded.len(), folder = %dir.display(), "ETL jobs loaded");
        jobs.extend(loaded);
    }
    lakehose_transform::dependency_order(&jobs)?;
    let etl_scheduler = (!jobs.is_empty() || options.maintenance.is_some()).then(|| {
        lakehose_transform::schedule::spawn_scheduler(
            lakehose_transform::Etl::new(engine.clone())
                .run_as(access.principal_grants(&options.etl_principal))
                .with_audit(Arc::new(access.clone())),
            jobs,
            options.maintenance.clone(),
        )
    });
    let mut registry = Registry::default();
    ingest.metrics().register(&mut registry);
    let athena_gauges = AthenaGauges::default();
    athena_gauges.register(&mut registry);
    let access = access
        .with_athena(athena.clone())
        .with_caps(options.principal_caps)
        .with_secure_cookies(http_tls.is_some());
    let state = AppState {
        access: access.clone(),
        ingest: ingest.clone(),
        glue: GlueApi {
            catalog,
            crawlers: crawlers.clone(),
        },
        athena,
        athena_gauges,
        registry: Arc::new(registry),
    };
    let dashboards = lakehose_dashboards::Dashboards::new(
        engine.clone(),
        options.dashboard_dirs.clone(),
        options.dashboard_list.clone(),
    );
    let dashboard_scheduler = dashboards.spawn_scheduler();
    let app = Router::new()
        .route("/", post(aws_json))
        .route("/query-executions", any(athena_rest))
        .route("/query-executions/{*rest}", any(athena_rest))
        .route("/batch-get-query-executions", any(athena_rest))
        .route("/data-catalogs", any(athena_rest))
        .route("/data-catalogs/{*rest}", any(athena_rest))
        .route("/workgroups", any(athena_rest))
        .route("/workgroups/{*rest}", any(athena_rest))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(lakehose_ingest::router(ingest.clone()))
        .nest(
            "/dashboards",
            lakehose_dashboards::http::router(dashboards.clone()),
        )
        .nest(
            "/accounts",
            lakehose_dashboards::quicksight::router(dashboards),
        )
        .route(
            "/dashboards/",
            get(|| async { axum::response::Redirect::to("/dashboards") }),
        )
        .layer(axum::middleware::from_fn_with_state(
            access,
            crate::access::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(crate::access::AllowedHosts::new(
                options.allowed_hosts.iter().cloned(),
            )),
            crate::access::check_host,
        ))
        .layer(DefaultBodyLimit::max(
            options.request_limits.max_body_bytes.max(1),
        ));
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("could not listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let limits = options.http_limits.clone();
    let scheme = if http_tls.is_some() { "https" } else { "http" };
    let task = tokio::spawn(crate::http::serve(
        listener,
        app,
        limits,
        http_tls,
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(RunningServer {
        addr,
        scheme,
        pg_addr,
        pg_stop: Some(pg_stop),
        pg_task,
        ingest,
        scheduler,
        dashboard_scheduler,
        etl_scheduler,
        stop: Some(stop),
        task,
        shutdown_timeout: options.shutdown_timeout,
    })
}

/// Dispatches an AWS JSON 1.1 call on its `X-Amz-Target`.
async fn aws_json(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some((service, operation)) = target.split_once('.') else {
        return AwsError::unknown_operation(target).into_response();
    };
    match service {
        firehose::TARGET_PREFIX => firehose::handle(&state.ingest, operation, &body).await,
        glue::TARGET_PREFIX => glue::handle(&state.glue, operation, &body).await,
        athena::TARGET_PREFIX => {
            let access = caller.map(|c| state.access.grants(&c));
            athena::handle(&state.athena, operation, &body, access.as_ref()).await
        }
        _ => AwsError::unknown_operation(target).into_response(),
    }
}

/// The Athena API in REST-JSON (newer SDKs), answered by the same
/// handlers as its JSON 1.1 calls.
async fn athena_rest(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    match athena::rest::operation(method.as_str(), uri.path(), uri.query(), &body) {
        Some(Ok((operation, body))) => {
            let access = caller.map(|c| state.access.grants(&c));
            athena::handle(&state.athena, operation, &body, access.as_ref()).await
        }
        Some(Err(message)) => AwsError::client("InvalidRequestException", message).into_response(),
        None => AwsError::unknown_operation(uri.path()).into_response(),
    }
}

async fn health(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "buffered_bytes": state.ingest.buffered_bytes(),
    }))
    .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.athena_gauges.update(&state.athena);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &state.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A future that resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
///
/// The handlers are installed when this function is called, not when the
/// future is first polled: call it before announcing readiness, so a
/// SIGTERM that arrives right after the announcement still means a clean
/// shutdown rather than the default action (terminating without a flush).
/// Must be called inside a Tokio runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                // Without handlers the default action applies anyway.
                _ => std::future::pending::<()>().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async move {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Each runtime thread's stack. Planning and evaluating a statement recurse
/// once per level of its expression trees (bounded by
/// `lakehose_query::nesting::MAX_SQL_NESTING`), and a stack overflow aborts
/// the whole process; Tokio's default of 2 MiB holds a few hundred levels in
/// an unoptimized build. Only the pages a thread touches are committed.
pub const THREAD_STACK_BYTES: usize = 64 << 20;

/// Builds the Tokio runtime (no `#[tokio::main]`: the thread count is a
/// setting).
pub fn runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .thread_name("lakehose-io")
        .thread_stack_size(THREAD_STACK_BYTES);
    if let Some(n) = worker_threads {
        builder.worker_threads(n.max(1));
    }
    builder.build().context("could not start the Tokio runtime")
}
