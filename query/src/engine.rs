//! The engine: a DataFusion session whose catalog is the lakehose catalog
//! (`awsdatacatalog`, one schema per database), bounded memory that spills
//! to disk, and the dispatch of each statement to DataFusion or to the
//! Athena DDL/DML implementation.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::{TableProvider, ViewTable};
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use lakehose_catalog::storage::ConfinedStore;
use lakehose_catalog::{CatalogError, CatalogRef, Storage};
use object_store::ObjectStore;
use url::Url;

use crate::contract::{
    CATALOG_NAME, Privilege, QueryError, QueryErrorKind, Securable, TableAccess, access_denied,
};
use crate::executor::{CpuRuntime, Task};
use crate::postgres::CatalogSource;
use crate::session::BaseSession;
use crate::stats::{QueryStats, scanned_bytes};
use crate::table::{LakeTable, WAREHOUSE_URL};

/// How deep views may refer to views.
const MAX_VIEW_DEPTH: usize = 16;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Memory for operators (joins, sorts, aggregations); past it they spill
    /// to disk.
    pub memory_limit: usize,
    /// Where spill files go (the OS temporary folder when unset).
    pub spill_dir: Option<PathBuf>,
    /// Parallelism of each query.
    pub target_partitions: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// A query running longer fails with a timeout.
    pub query_timeout: Option<Duration>,
    /// The bucket that holds tables created without a location (CTAS
    /// without `external_location`, in databases without a location).
    pub warehouse_bucket: String,
    /// Bytes a result collected whole may take (results streamed to
    /// Postgres clients and Athena result files are not held).
    pub max_held_result_bytes: usize,
    /// Worker threads of the runtime statements, ETL runs and compaction
    /// run on, apart from the caller's (see [`crate::executor`]); 0 runs
    /// them on the caller's runtime.
    pub cpu_threads: usize,
    /// Workers the queries' stages run on (`None`: this process runs them
    /// all).
    pub workers: Option<crate::distributed::Workers>,
    /// Session settings every query starts with, as `(key, value)`:
    /// DataFusion's (`datafusion.execution.target_partitions`, ...) and
    /// lakehose's optimizer switches (`lakehose.optimizer.*`, see
    /// [`crate::optimizer::LakehoseOptions`]). Applied after the fields
    /// above, so they win.
    pub settings: Vec<(String, String)>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            memory_limit: 4 << 30,
            spill_dir: None,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            batch_size: 8192,
            query_timeout: Some(Duration::from_secs(30 * 60)),
            warehouse_bucket: "lakehose-warehouse".into(),
            max_held_result_bytes: crate::stream::DEFAULT_MAX_HELD_RESULT_BYTES,
            cpu_threads: 0,
            workers: None,
            settings: Vec::new(),
        }
    }
}

/// The query engine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: CatalogRef,
    storage: Storage,
    config: EngineConfig,
    live: std::sync::OnceLock<crate::live::LiveSourceRef>,
    /// Postgres's system catalog over this catalog, made on first use and
    /// shared, so the oids it hands out stay the same between queries.
    pg_catalog: std::sync::OnceLock<Arc<dyn SchemaProvider>>,
    /// Where statements run (the caller's runtime when `None`).
    cpu: Option<CpuRuntime>,
    /// The session every query's starts from.
    base: BaseSession,
    default_database: tokio::sync::OnceCell<()>,
}

impl EngineConfig {
    /// The execution settings every query session starts from: parallelism,
    /// batch size, lakehose's optimizer switches and [`Self::settings`]
    /// (also the baseline `lakehose bare-datafusion` measures the service
    /// against). Fails on a setting that names no option or has a value
    /// of the wrong kind.
    pub fn session_config(&self) -> Result<SessionConfig, DataFusionError> {
        let mut config = SessionConfig::new()
            .with_target_partitions(self.target_partitions)
            .with_batch_size(self.batch_size)
            .with_option_extension(crate::optimizer::LakehoseOptions::default());
        let options = config.options_mut();
        for (key, value) in &self.settings {
            options.set(key, value).map_err(|e| {
                DataFusionError::Configuration(format!("the query setting {key}={value}: {e}"))
            })?;
        }
        Ok(config)
    }
}

impl QueryEngine {
    /// An engine over `catalog`, reading data from `storage`.
    pub fn new(
        catalog: CatalogRef,
        storage: Storage,
        config: EngineConfig,
    ) -> Result<Self, QueryError> {
        let internal =
            |e: DataFusionError| QueryError::new(QueryErrorKind::Internal, e.to_string());
        let mut disk = DiskManagerBuilder::default();
        if let Some(dir) = &config.spill_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                QueryError::new(
                    QueryErrorKind::Internal,
                    format!("could not create the spill folder {}: {e}", dir.display()),
                )
            })?;
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.clone()]));
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_limit)))
            .with_disk_manager_builder(disk)
            .with_object_store_registry(Arc::new(LakehoseStores::new(&storage)?))
            .build_arc()
            .map_err(internal)?;
        let cpu = match config.cpu_threads {
            0 => None,
            n => Some(CpuRuntime::new(n).map_err(|e| {
                QueryError::new(
                    QueryErrorKind::Internal,
                    format!("could not start the query runtime: {e}"),
                )
            })?),
        };
        let session = config
            .session_config()
            .map_err(|e| QueryError::new(QueryErrorKind::Semantic, e.to_string()))?;
        let base = BaseSession::new(session, &runtime, config.workers.clone()).map_err(internal)?;
        Ok(Self {
            inner: Arc::new(Inner {
                catalog,
                storage,
                config,
                live: std::sync::OnceLock::new(),
                pg_catalog: std::sync::OnceLock::new(),
                cpu,
                base,
                default_database: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The session every query's starts from.
    pub(crate) fn base_session(&self) -> &BaseSession {
        &self.inner.base
    }

    /// Makes records acknowledged by ingest but not yet written visible to
    /// queries (set once; later calls are ignored).
    pub fn set_live_source(&self, live: crate::live::LiveSourceRef) {
        let _ = self.inner.live.set(live);
    }

    /// Creates the `default` database when missing (Athena always has
    /// one).
    pub async fn ensure_default_database(&self) -> Result<(), QueryError> {
        self.inner
            .default_database
            .get_or_try_init(|| async {
                let db = lakehose_catalog::model::Database {
                    name: "default".into(),
                    description: Some("Default database".into()),
                    ..Default::default()
                };
                match self.inner.catalog.create_database(db).await {
                    Ok(()) | Err(CatalogError::AlreadyExists(_)) => Ok(()),
                    Err(e) => Err(QueryError::new(QueryErrorKind::Internal, e.to_string())),
                }
            })
            .await
            .map(|_| ())
    }

    /// Postgres's `pg_catalog` schema over this engine's catalog, shared by
    /// all queries of this engine.
    pub(crate) fn pg_catalog_schema(&self) -> Arc<dyn SchemaProvider> {
        Arc::clone(self.inner.pg_catalog.get_or_init(|| {
            crate::postgres::schema_provider(self.catalog_source()).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the pg_catalog tables could not be loaded");
                Arc::new(datafusion::catalog::MemorySchemaProvider::new())
            })
        }))
    }

    /// This engine as the source of Postgres's system catalog (it does not
    /// keep the engine alive).
    pub(crate) fn catalog_source(&self) -> Arc<dyn CatalogSource> {
        Arc::new(EngineSource(Arc::downgrade(&self.inner)))
    }

    /// The runtime statements run on (`None`: the caller's).
    pub fn cpu_runtime(&self) -> Option<&CpuRuntime> {
        self.inner.cpu.as_ref()
    }

    /// Runs `future` on the engine's CPU runtime (or the caller's when it
    /// has none); dropping the task cancels it.
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        crate::executor::spawn_on(self.inner.cpu.as_ref(), future)
    }

    /// The catalog.
    pub fn catalog(&self) -> &CatalogRef {
        &self.inner.catalog
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// A DataFusion context for one query in `database`, with every grant.
    pub fn context(
        &self,
        database: &str,
        stats: Arc<QueryStats>,
    ) -> Result<SessionContext, DataFusionError> {
        self.context_as(database, stats, None)
    }

    /// A DataFusion context for one query in `database` run as `access`:
    /// a table it lacks SELECT on fails the query when the query names it
    /// (directly or through a view).
    pub fn context_as(
        &self,
        database: &str,
        stats: Arc<QueryStats>,
        access: Option<Arc<dyn TableAccess>>,
    ) -> Result<SessionContext, DataFusionError> {
        context_for(
            &self.inner,
            Scope {
                depth: 0,
                restrictions: Restrictions::default(),
                access,
            },
            database,
            stats,
            true,
        )
    }

    /// A context whose scans of some tables read only some of their
    /// partitions (`(database, table)` → partition values, in the order of
    /// the table's partition keys; an unpartitioned table is one partition
    /// with no values). Incremental ETL runs read new data this way.
    pub fn restricted_context(
        &self,
        database: &str,
        stats: Arc<QueryStats>,
        restrictions: Restrictions,
        access: Option<Arc<dyn TableAccess>>,
    ) -> Result<SessionContext, DataFusionError> {
        context_for(
            &self.inner,
            Scope {
                depth: 0,
                restrictions,
                access,
            },
            database,
            stats,
            true,
        )
    }

    /// A catalog table as lakehose's table provider (not a view or a Delta
    /// table), e.g. to list its partitions' files.
    pub async fn lake_table(&self, database: &str, table: &str) -> Result<LakeTable, QueryError> {
        let found = self
            .inner
            .catalog
            .get_table(database, table)
            .await
            .map_err(|e| match e {
                CatalogError::NotFound(_) => QueryError::named(
                    crate::error::ErrorCode::TableNotFound,
                    format!("Table '{database}.{table}' does not exist"),
                ),
                other => QueryError::new(QueryErrorKind::Internal, other.to_string()),
            })?;
        if found.is_view() || crate::delta::is_delta(&found) {
            return Err(QueryError::new(
                QueryErrorKind::Semantic,
                format!("{database}.{table} is a view or a Delta table, not a table of files"),
            ));
        }
        LakeTable::new(
            Arc::clone(&self.inner.catalog),
            self.inner.storage.clone(),
            database,
            found,
            None,
        )
        .map_err(|e| QueryError::new(QueryErrorKind::Semantic, e))
    }

    /// A context for a query that ran out of memory: joins become
    /// sort-merge joins whose sorts spill to disk, instead of hash joins
    /// whose build side must fit in memory.
    pub(crate) fn low_memory_context(
        &self,
        database: &str,
        stats: Arc<QueryStats>,
        access: Option<Arc<dyn TableAccess>>,
    ) -> Result<SessionContext, DataFusionError> {
        context_for(
            &self.inner,
            Scope {
                depth: 0,
                restrictions: Restrictions::default(),
                access,
            },
            database,
            stats,
            false,
        )
    }

    /// Plans and runs a logical plan, returning its rows and the bytes it
    /// read.
    pub async fn collect(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        stats: &QueryStats,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, u64), DataFusionError> {
        let physical = ctx.state().create_physical_plan(&plan).await?;
        let schema = physical.schema();
        let task: Arc<TaskContext> = ctx.task_ctx();
        // A streaming front end gets the rows as they come; else they are
        // held, up to a cap.
        let mut batches =
            match crate::stream::forward(&plan, Arc::clone(&physical), Arc::clone(&task)).await {
                Some(sent) => sent.map(|()| Vec::new())?,
                None => {
                    crate::stream::collect_bounded(
                        Arc::clone(&physical),
                        task,
                        self.inner.config.max_held_result_bytes,
                    )
                    .await?
                }
            };
        // DataFusion explains the plan before the distributed planner cuts
        // it into stages; with workers, the stages are added as a row.
        if let LogicalPlan::Explain(explain) = &plan
            && self.inner.config.workers.is_some()
        {
            let stages = crate::distributed::explain_stages(&ctx.state(), explain).await?;
            batches.push(crate::distributed::explain_row(&schema, &stages)?);
        }
        let bytes = scanned_bytes(&physical) + stats.text_bytes.load(Ordering::Relaxed);
        Ok((schema, batches, bytes))
    }

    /// The physical plan of a logical plan (for streaming writers).
    pub async fn physical(
        &self,
        ctx: &SessionContext,
        plan: &LogicalPlan,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        ctx.state().create_physical_plan(plan).await
    }
}

/// One statement's engine, current database and caller, as the Athena
/// statements run them.
#[derive(Clone, Copy)]
pub(crate) struct Run<'a> {
    pub(crate) engine: &'a QueryEngine,
    pub(crate) current: &'a str,
    pub(crate) access: Option<&'a Arc<dyn TableAccess>>,
}

/// The object stores the engine reaches: lakehose's warehouse (every
/// bucket, not `_lakehose/`), on a local data folder a `file://` store
/// confined to that folder (Delta tables are read through it), and the
/// stores deltalake registers for the Delta tables it opens. Unlike
/// DataFusion's default registry there is no `file://` store at `/`: any
/// other URL (a `COPY ... TO '/etc/...'`, a `file:///` location) is refused
/// naming it.
#[derive(Debug)]
struct LakehoseStores {
    stores: std::sync::RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

/// The URL scheme of local files.
const FILE_SCHEME: &str = "file";

impl LakehoseStores {
    fn new(storage: &Storage) -> Result<Self, QueryError> {
        let mut stores: HashMap<String, Arc<dyn ObjectStore>> = HashMap::new();
        let warehouse = Url::parse(WAREHOUSE_URL).expect("valid warehouse URL");
        stores.insert(
            store_key(&warehouse),
            Arc::new(ConfinedStore::new(
                Arc::clone(storage.store()),
                object_store::path::Path::default(),
                "lakehose's buckets",
            )),
        );
        if let Some(root) = storage.local_root() {
            let folder = ConfinedStore::local_folder(root)
                .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
            stores.insert(format!("{FILE_SCHEME}://"), Arc::new(folder));
        }
        Ok(Self {
            stores: std::sync::RwLock::new(stores),
        })
    }
}

/// A store's key in the registry: scheme, host and port (as DataFusion's
/// default registry keys them).
fn store_key(url: &Url) -> String {
    format!(
        "{}://{}",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

impl ObjectStoreRegistry for LakehoseStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        let key = store_key(url);
        if url.scheme() == FILE_SCHEME || key == store_key(&Url::parse(WAREHOUSE_URL).ok()?) {
            // Local files are reached only through the confined store.
            tracing::warn!(url = %url, "refused to register an object store over lakehose's own");
            return None;
        }
        self.stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>, DataFusionError> {
        let key = store_key(url);
        if url.scheme() == FILE_SCHEME
            || key == store_key(&Url::parse(WAREHOUSE_URL).expect("valid warehouse URL"))
        {
            return Err(DataFusionError::Plan(format!(
                "lakehose's object store for {url} cannot be removed"
            )));
        }
        self.stores
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key)
            .ok_or_else(|| {
                DataFusionError::Plan(format!("no object store is registered for {url}"))
            })
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>, DataFusionError> {
        self.stores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&store_key(url))
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "ACCESS_DENIED: the query engine reaches only lakehose's storage (s3:// locations); {url} is refused"
                ))
            })
    }
}

/// What a context's catalog lookups are bound by: how deep in views they
/// are, the partitions they may read, and whose grants they need.
#[derive(Debug, Clone, Default)]
struct Scope {
    depth: usize,
    restrictions: Restrictions,
    access: Option<Arc<dyn TableAccess>>,
}

fn context_for(
    inner: &Arc<Inner>,
    scope: Scope,
    database: &str,
    stats: Arc<QueryStats>,
    prefer_hash_join: bool,
) -> Result<SessionContext, DataFusionError> {
    let mut config = inner
        .config
        .session_config()?
        .with_default_catalog_and_schema(CATALOG_NAME, database)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(false)
        .with_extension(stats);
    {
        let options = config.options_mut();
        options.sql_parser.enable_ident_normalization = true;
        // Trino's order: NULLs last in both directions unless a query says
        // NULLS FIRST (DataFusion's default puts them first when descending).
        options.sql_parser.default_null_ordering = "nulls_last".into();
        options.optimizer.prefer_hash_join = prefer_hash_join;
    }
    let state = inner.base.state_for(config);
    let ctx = SessionContext::new_with_state(state);
    ctx.register_catalog(
        CATALOG_NAME,
        Arc::new(LakeCatalog {
            inner: Arc::downgrade(inner),
            scope,
            overlay: Overlay::default(),
            schemas: SchemaOverlay::default(),
        }),
    );
    Ok(ctx)
}

/// The engine as what Postgres's system catalog reads.
#[derive(Debug)]
struct EngineSource(Weak<Inner>);

impl EngineSource {
    fn inner(&self) -> Result<Arc<Inner>, DataFusionError> {
        self.0
            .upgrade()
            .ok_or_else(|| DataFusionError::Internal("the query engine has stopped".into()))
    }
}

#[async_trait]
impl CatalogSource for EngineSource {
    fn catalog(&self) -> Result<CatalogRef, DataFusionError> {
        Ok(Arc::clone(&self.inner()?.catalog))
    }

    async fn query_schema(
        &self,
        database: &str,
        table: &str,
    ) -> Result<SchemaRef, DataFusionError> {
        let inner = self.inner()?;
        let ctx = context_for(&inner, Scope::default(), database, Arc::default(), true)?;
        let provider = ctx
            .table_provider(TableReference::full(CATALOG_NAME, database, table))
            .await?;
        Ok(provider.schema())
    }
}

/// Partitions a query may read, per `(database, table)`.
pub(crate) type Restrictions = Arc<HashMap<(String, String), Arc<HashSet<Vec<String>>>>>;

/// Tables registered on one context (`SessionContext::register_table`)
/// over the catalog's, e.g. the empty stand-in for an ETL job's target that
/// does not exist yet when a job reading it is validated.
type Overlay = Arc<std::sync::Mutex<HashMap<(String, String), Arc<dyn TableProvider>>>>;

/// Schemas registered on one context over the catalog's databases (the
/// Postgres front end's `pg_catalog`).
type SchemaOverlay = Arc<std::sync::Mutex<HashMap<String, Arc<dyn SchemaProvider>>>>;

/// The lakehose catalog as DataFusion's `awsdatacatalog`.
#[derive(Debug)]
struct LakeCatalog {
    inner: Weak<Inner>,
    scope: Scope,
    overlay: Overlay,
    schemas: SchemaOverlay,
}

impl CatalogProvider for LakeCatalog {
    fn schema_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>, DataFusionError> {
        Ok(self
            .schemas
            .lock()
            .map_err(|_| DataFusionError::Internal("schema overlay poisoned".into()))?
            .insert(name.to_ascii_lowercase(), schema))
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let registered = self
            .schemas
            .lock()
            .ok()
            .and_then(|s| s.get(&name.to_ascii_lowercase()).cloned());
        if registered.is_some() {
            return registered;
        }
        Some(Arc::new(LakeSchema {
            inner: self.inner.clone(),
            database: name.to_ascii_lowercase(),
            scope: self.scope.clone(),
            overlay: Arc::clone(&self.overlay),
        }))
    }
}

/// One database as a DataFusion schema; tables are looked up in the
/// catalog when a query names them.
#[derive(Debug)]
struct LakeSchema {
    inner: Weak<Inner>,
    database: String,
    scope: Scope,
    overlay: Overlay,
}

#[async_trait]
impl SchemaProvider for LakeSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let key = (self.database.clone(), name.to_ascii_lowercase());
        if let Some(t) = self.overlay.lock().ok().and_then(|o| o.get(&key).cloned()) {
            return Ok(Some(t));
        }
        let Some(inner) = self.inner.upgrade() else {
            return Ok(None);
        };
        let (name, as_of) = crate::delta::split_as_of(name).map_err(DataFusionError::Plan)?;
        let table = match inner.catalog.get_table(&self.database, name).await {
            Ok(t) => t,
            Err(CatalogError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(DataFusionError::External(Box::new(e))),
        };
        if let Some(access) = &self.scope.access {
            let on = Securable::Table {
                database: &self.database,
                table: &table.name,
            };
            if !access.allows(Privilege::Select, on) {
                return Err(DataFusionError::External(Box::new(access_denied(
                    access.as_ref(),
                    Privilege::Select,
                    on,
                ))));
            }
        }
        if table.is_view() {
            if self.scope.depth >= MAX_VIEW_DEPTH {
                return Err(DataFusionError::Plan(format!(
                    "view {}.{name} nests more than {MAX_VIEW_DEPTH} views deep (does it refer to itself?)",
                    self.database
                )));
            }
            let sql = table
                .view_original_text
                .clone()
                .or_else(|| table.view_expanded_text.clone())
                .ok_or_else(|| {
                    DataFusionError::Plan(format!("view {}.{name} has no SQL text", self.database))
                })?;
            // The view's tables are read as the caller: a view grants no
            // more than its tables do.
            let scope = Scope {
                depth: self.scope.depth + 1,
                ..self.scope.clone()
            };
            let ctx = context_for(&inner, scope, &self.database, Arc::default(), true)?;
            let plan = crate::plan::plan_query(&ctx, &sql)
                .await
                .map_err(|e| match e.code {
                    crate::error::ErrorCode::PermissionDenied => {
                        DataFusionError::External(Box::new(e))
                    }
                    _ => DataFusionError::Plan(format!(
                        "view {}.{name} is invalid: {e}",
                        self.database
                    )),
                })?;
            return Ok(Some(Arc::new(ViewTable::new(plan, Some(sql)))));
        }
        if as_of != crate::delta::AsOf::Latest && !crate::delta::is_delta(&table) {
            return Err(DataFusionError::Plan(format!(
                "{}.{name} is not a Delta table: only Delta tables have versions to read with @",
                self.database
            )));
        }
        if crate::delta::is_delta(&table) {
            let plain_files = inner.config.workers.is_some();
            return crate::delta::provider_as_of(&inner.storage, &table, &as_of, plain_files)
                .await
                .map(Some)
                .map_err(|e| {
                    DataFusionError::Plan(format!("table {}.{name}: {e}", self.database))
                });
        }
        let provider = LakeTable::new(
            Arc::clone(&inner.catalog),
            inner.storage.clone(),
            &self.database,
            table,
            inner.live.get().cloned(),
        )
        .map_err(DataFusionError::Plan)?;
        let provider = match self
            .scope
            .restrictions
            .get(&(self.database.clone(), name.to_ascii_lowercase()))
        {
            Some(only) => provider.with_only_partitions(Arc::clone(only)),
            None => provider,
        };
        Ok(Some(Arc::new(provider)))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let key = (self.database.clone(), name.to_ascii_lowercase());
        Ok(self
            .overlay
            .lock()
            .map_err(|_| DataFusionError::Internal("table overlay poisoned".into()))?
            .insert(key, table))
    }

    fn table_exist(&self, name: &str) -> bool {
        let key = (self.database.clone(), name.to_ascii_lowercase());
        self.overlay.lock().is_ok_and(|o| o.contains_key(&key))
    }
}
