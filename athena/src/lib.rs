//! The Amazon Athena JSON 1.1 API (`X-Amz-Target: AmazonAthena.*`).
//!
//! Query executions run on a [`SqlRunner`] in a bounded queue (`QUEUED` →
//! `RUNNING` → `SUCCEEDED` | `FAILED` | `CANCELLED`); their results are
//! written as Athena does, as `<OutputLocation>/<id>.csv` (or `.txt` for DDL
//! and utility statements) plus a `.metadata` file (see [`results`]), and
//! GetQueryResults reads them back. Every execution and workgroup is
//! persisted under `_lakehose/athena/`, so the history (kept 45 days), the
//! results and the workgroups survive restarts; executions that were queued
//! or running when the process stopped come back as `FAILED`.
//!
//! Operations: StartQueryExecution, GetQueryExecution,
//! BatchGetQueryExecution, GetQueryResults, StopQueryExecution,
//! ListQueryExecutions; ListDataCatalogs, GetDataCatalog, ListDatabases,
//! GetDatabase, ListTableMetadata, GetTableMetadata (over the catalog);
//! CreateWorkGroup, GetWorkGroup, ListWorkGroups, UpdateWorkGroup,
//! DeleteWorkGroup.
//!
//! The history is also held in memory (one record per execution, query
//! text included) for the lookups; result rows are not, GetQueryResults
//! reads one page of the result file per call.
//!
//! Deviation from Athena: when neither the request nor the workgroup gives
//! an output location, real Athena refuses the query; lakehose writes to
//! [`AthenaConfig::default_output_location`]
//! (`s3://lakehose-athena-results/` unless configured).

mod columns;
mod error;
mod executions;
mod input;
mod metadata;
pub mod rest;
mod results;
mod workgroups;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use lakehose_catalog::awsjson;
use lakehose_catalog::{CatalogRef, Location, Storage, StorageError};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

pub use error::ApiError;
use executions::{Execution, QueryState};
use lakehose_query::contract::{SqlRunner, TableAccess};
use workgroups::WorkGroup;

/// The `X-Amz-Target` prefix of Athena.
pub const TARGET_PREFIX: &str = "AmazonAthena";

/// How long execution history is kept (Athena keeps 45 days).
pub const HISTORY_DAYS: i64 = 45;

/// Settings of the Athena API.
#[derive(Debug, Clone)]
pub struct AthenaConfig {
    /// Queries running at once (default 4); more wait as `QUEUED`.
    pub max_concurrent_queries: usize,
    /// Queries queued or running at once (default 64); more are refused with
    /// `TooManyRequestsException`.
    pub queue_limit: usize,
    /// Where results go when neither the request nor the workgroup says
    /// (default `s3://lakehose-athena-results/`). Real Athena refuses such
    /// queries instead.
    pub default_output_location: String,
    /// Executions kept in the history (default [`DEFAULT_MAX_EXECUTIONS`]);
    /// past it the oldest finished ones are forgotten, their records
    /// deleted (their result files stay). Queued and running ones are
    /// always kept.
    pub max_executions: usize,
    /// This node's id when several nodes share the history: executions it
    /// finds queued or running at start are marked failed only when they
    /// are its own.
    pub node_id: Option<String>,
    /// With a node id: this node records that it is alive every quarter
    /// of this (in the shared history), and other nodes report its queued
    /// and running executions as failed once its last record is older
    /// than this (default 60 s).
    pub node_lease: std::time::Duration,
}

/// The default of [`AthenaConfig::max_executions`].
pub const DEFAULT_MAX_EXECUTIONS: usize = 10_000;

impl Default for AthenaConfig {
    fn default() -> Self {
        Self {
            max_concurrent_queries: 4,
            queue_limit: 64,
            default_output_location: "s3://lakehose-athena-results/".into(),
            max_executions: DEFAULT_MAX_EXECUTIONS,
            node_id: None,
            node_lease: std::time::Duration::from_secs(60),
        }
    }
}

/// Why the Athena API could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A setting is not usable.
    #[error("invalid Athena configuration: {0}")]
    Config(String),
    /// Reading or writing the persisted state failed.
    #[error("Athena state storage failed: {0}")]
    Storage(#[from] StorageError),
}

/// Counts of the executions in the history, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AthenaMetrics {
    /// Waiting for a slot.
    pub queued: u64,
    /// Running now.
    pub running: u64,
    /// Finished successfully.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Stopped by a user.
    pub cancelled: u64,
    /// Bytes the engine read, over every execution in the history.
    pub data_scanned_bytes: u64,
    /// Milliseconds in the engine, over every finished execution.
    pub engine_ms: u64,
    /// Milliseconds from submission to completion, over every finished
    /// execution.
    pub total_ms: u64,
}

/// The Athena API: executions, workgroups, and the catalog they query.
/// Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct AthenaApi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    catalog: CatalogRef,
    runner: Arc<dyn SqlRunner>,
    config: AthenaConfig,
    state: Mutex<State>,
    /// Serializes writes of persisted records so the last write is always
    /// the latest state.
    write_lock: tokio::sync::Mutex<()>,
    slots: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct State {
    executions: HashMap<String, Execution>,
    /// ClientRequestToken → execution id.
    tokens: HashMap<String, String>,
    /// Tasks of queued and running executions.
    tasks: HashMap<String, AbortHandle>,
    workgroups: BTreeMap<String, WorkGroup>,
}

const EXECUTIONS_DIR: &str = "athena/executions";
const WORKGROUPS_DIR: &str = "athena/workgroups";
/// One record per node: when it last said it was alive.
const NODES_DIR: &str = "athena/nodes";

/// Now, in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Epoch milliseconds as the epoch seconds AWS JSON carries.
pub(crate) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl AthenaApi {
    /// Opens the API over `storage`: loads workgroups (creating `primary`)
    /// and the execution history, prunes history older than 45 days, and
    /// marks executions that were queued or running as failed.
    pub async fn open(
        storage: Storage,
        catalog: CatalogRef,
        runner: Arc<dyn SqlRunner>,
        config: AthenaConfig,
    ) -> Result<Self, OpenError> {
        if config.max_concurrent_queries == 0 {
            return Err(OpenError::Config(
                "max_concurrent_queries must be at least 1".into(),
            ));
        }
        if config.max_executions < config.queue_limit {
            return Err(OpenError::Config(
                "max_executions must be at least queue_limit".into(),
            ));
        }
        if config.queue_limit < config.max_concurrent_queries {
            return Err(OpenError::Config(
                "queue_limit must be at least max_concurrent_queries".into(),
            ));
        }
        Location::parse(&config.default_output_location)
            .map_err(|e| OpenError::Config(format!("default_output_location: {e}")))?;
        let api = Self {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(config.max_concurrent_queries)),
                storage,
                catalog,
                runner,
                config,
                state: Mutex::new(State::default()),
                write_lock: tokio::sync::Mutex::new(()),
            }),
        };
        api.load_workgroups().await?;
        api.load_executions().await?;
        api.prune_history().await;
        api.keep_alive().await;
        Ok(api)
    }

    /// Records now, and every quarter of the lease while the API lives,
    /// that this node is alive.
    async fn keep_alive(&self) {
        let Some(node) = self.inner.config.node_id.clone() else {
            return;
        };
        let every = (self.inner.config.node_lease / 4).max(std::time::Duration::from_millis(100));
        let weak = Arc::downgrade(&self.inner);
        let beat = |inner: Arc<Inner>, node: String| async move {
            let path = inner
                .storage
                .system_path(&format!("{NODES_DIR}/{node}.json"));
            let body = serde_json::json!({ "node": node, "alive_ms": now_ms() });
            if let Err(e) = inner
                .storage
                .store()
                .put(&path, body.to_string().into_bytes().into())
                .await
            {
                tracing::warn!(error = %e, "could not record that this node is alive");
            }
        };
        beat(Arc::clone(&self.inner), node.clone()).await;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else {
                    break;
                };
                beat(inner, node.clone()).await;
            }
        });
    }

    /// Whether `node` has not said it is alive within the lease (a node
    /// with no record at all has stopped too). A record that cannot be read
    /// counts as alive: only a known silence fails executions.
    pub(crate) async fn node_stopped(&self, node: &str) -> bool {
        // Anything but a node id in a record names no path.
        if lakehose_catalog::storage::validate_node_id(node).is_err() {
            return false;
        }
        let path = self
            .inner
            .storage
            .system_path(&format!("{NODES_DIR}/{node}.json"));
        let alive_ms = match self.inner.storage.store().get(&path).await {
            Ok(got) => match got.bytes().await {
                Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["alive_ms"].as_i64()),
                Err(_) => return false,
            },
            Err(object_store::Error::NotFound { .. }) => None,
            Err(_) => return false,
        };
        let lease = self.inner.config.node_lease.as_millis() as i64;
        alive_ms.is_none_or(|t| now_ms() - t > lease)
    }

    /// The node lease, for messages.
    pub(crate) fn node_lease(&self) -> std::time::Duration {
        self.inner.config.node_lease
    }

    /// The settings it runs with.
    pub fn config(&self) -> &AthenaConfig {
        &self.inner.config
    }

    /// Whether a query execution is queued or running.
    pub fn is_active(&self, execution_id: &str) -> bool {
        self.state()
            .executions
            .get(execution_id)
            .is_some_and(|e| matches!(e.state, QueryState::Queued | QueryState::Running))
    }

    /// The workgroup of a query execution in the history.
    pub fn workgroup_of(&self, execution_id: &str) -> Option<String> {
        self.state()
            .executions
            .get(execution_id)
            .map(|e| e.workgroup.clone())
    }

    /// Counts of executions in the history by state.
    pub fn metrics(&self) -> AthenaMetrics {
        let state = self.state();
        let mut m = AthenaMetrics::default();
        for e in state.executions.values() {
            match e.state {
                QueryState::Queued => m.queued += 1,
                QueryState::Running => m.running += 1,
                QueryState::Succeeded => m.succeeded += 1,
                QueryState::Failed => m.failed += 1,
                QueryState::Cancelled => m.cancelled += 1,
            }
            m.data_scanned_bytes += e.data_scanned;
            m.engine_ms += e.engine_ms.unwrap_or(0).max(0) as u64;
            if let Some(done) = e.completed_ms {
                m.total_ms += (done - e.submitted_ms).max(0) as u64;
            }
        }
        m
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn workgroup(&self, name: &str) -> Result<WorkGroup, ApiError> {
        self.state()
            .workgroups
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::invalid(format!("WorkGroup {name} is not found.")))
    }

    /// This node's id (several nodes share the history).
    pub(crate) fn node_id(&self) -> Option<&str> {
        self.inner.config.node_id.as_deref()
    }

    /// An execution as the shared history has it now (another node may
    /// have started or finished it), kept in this node's view.
    pub(crate) async fn load_execution(&self, id: &str) -> Option<Execution> {
        let got = self
            .inner
            .storage
            .store()
            .get(&self.execution_path(id))
            .await
            .ok()?;
        let record: Execution = serde_json::from_slice(&got.bytes().await.ok()?).ok()?;
        if record.id != id {
            return None;
        }
        self.state()
            .executions
            .insert(id.to_string(), record.clone());
        Some(record)
    }

    fn execution_path(&self, id: &str) -> ObjectPath {
        self.inner
            .storage
            .system_path(&format!("{EXECUTIONS_DIR}/{id}.json"))
    }

    fn workgroup_path(&self, name: &str) -> ObjectPath {
        self.inner
            .storage
            .system_path(&format!("{WORKGROUPS_DIR}/{name}.json"))
    }

    /// Writes (or deletes, when gone) one workgroup's record.
    async fn persist_workgroup(&self, name: &str) -> Result<(), ApiError> {
        let _guard = self.inner.write_lock.lock().await;
        let current = self.state().workgroups.get(name).cloned();
        let path = self.workgroup_path(name);
        let result = match current {
            Some(wg) => match serde_json::to_vec(&wg) {
                Ok(bytes) => self
                    .inner
                    .storage
                    .put_durable(&path, bytes.into())
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            None => match self.inner.storage.store().delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
        };
        result.map_err(|e| ApiError::internal("could not save the workgroup", &e))
    }

    /// Writes one execution's current record.
    async fn persist_execution(&self, id: &str) -> Result<(), StorageError> {
        let _guard = self.inner.write_lock.lock().await;
        let Some(record) = self.state().executions.get(id).cloned() else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        self.inner
            .storage
            .put_durable(&self.execution_path(id), bytes.into())
            .await
    }

    /// Forgets the oldest finished executions past
    /// [`AthenaConfig::max_executions`], deleting their records.
    async fn prune_history(&self) {
        let pruned = {
            let mut state = self.state();
            self.forget_excess(&mut state)
        };
        self.delete_records(pruned).await;
    }

    /// Takes the oldest finished executions past
    /// [`AthenaConfig::max_executions`] out of the history (in the same
    /// lock as the change that made the history too long, so no listing
    /// sees it over the cap); their records are deleted by
    /// [`Self::delete_records`].
    fn forget_excess(&self, state: &mut State) -> Vec<String> {
        let excess = state
            .executions
            .len()
            .saturating_sub(self.inner.config.max_executions);
        if excess == 0 {
            return Vec::new();
        }
        let mut finished: Vec<(i64, i64, String)> = state
            .executions
            .values()
            .filter(|e| !e.state.is_active())
            .map(|e| {
                (
                    e.completed_ms.unwrap_or(e.submitted_ms),
                    e.submitted_ms,
                    e.id.clone(),
                )
            })
            .collect();
        finished.sort();
        finished.truncate(excess);
        let ids: Vec<String> = finished.into_iter().map(|(_, _, id)| id).collect();
        for id in &ids {
            if let Some(e) = state.executions.remove(id)
                && let Some(token) = e.client_request_token
                && state.tokens.get(&token) == Some(id)
            {
                state.tokens.remove(&token);
            }
        }
        ids
    }

    /// Deletes the records of executions taken out of the history.
    async fn delete_records(&self, pruned: Vec<String>) {
        if pruned.is_empty() {
            return;
        }
        let _guard = self.inner.write_lock.lock().await;
        for id in pruned {
            match self
                .inner
                .storage
                .store()
                .delete(&self.execution_path(&id))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(query_execution_id = %id, error = %e, "Could not delete the record of a pruned Athena query; it is forgotten until the next restart.");
                }
            }
        }
    }

    /// Every object under a system folder, as (path, bytes).
    async fn read_dir(&self, dir: &str) -> Result<Vec<(ObjectPath, bytes::Bytes)>, StorageError> {
        let store = self.inner.storage.store();
        let prefix = self.inner.storage.system_path(dir);
        let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
        let mut out = Vec::with_capacity(metas.len());
        for meta in metas {
            if !meta.location.as_ref().ends_with(".json") {
                continue;
            }
            match store.get(&meta.location).await {
                Ok(r) => out.push((meta.location, r.bytes().await?)),
                // Deleted between the listing and the read.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    async fn load_workgroups(&self) -> Result<(), OpenError> {
        let mut found = BTreeMap::new();
        for (path, bytes) in self.read_dir(WORKGROUPS_DIR).await? {
            match serde_json::from_slice::<WorkGroup>(&bytes) {
                Ok(wg) => {
                    found.insert(wg.name.clone(), wg);
                }
                Err(e) => {
                    tracing::error!(%path, error = %e, "Skipping a corrupt Athena workgroup record.")
                }
            }
        }
        let create_primary = !found.contains_key(workgroups::PRIMARY);
        if create_primary {
            found.insert(workgroups::PRIMARY.into(), WorkGroup::primary());
        }
        self.state().workgroups = found;
        if create_primary {
            self.persist_workgroup(workgroups::PRIMARY)
                .await
                .map_err(|e| OpenError::Config(e.message))?;
        }
        Ok(())
    }

    async fn load_executions(&self) -> Result<(), OpenError> {
        let cutoff = now_ms() - HISTORY_DAYS * 86_400_000;
        let mut interrupted = Vec::new();
        let mut expired = Vec::new();
        {
            let records = self.read_dir(EXECUTIONS_DIR).await?;
            let mut state = self.state();
            for (path, bytes) in records {
                let mut record = match serde_json::from_slice::<Execution>(&bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(%path, error = %e, "Skipping a corrupt Athena execution record.");
                        continue;
                    }
                };
                if record.submitted_ms < cutoff {
                    expired.push(path);
                    continue;
                }
                // Another node's queued or running executions are its own
                // to settle.
                if record.state.is_active() && record.node == self.inner.config.node_id {
                    record.fail_interrupted();
                    interrupted.push(record.id.clone());
                }
                if let Some(token) = &record.client_request_token {
                    state.tokens.insert(token.clone(), record.id.clone());
                }
                state.executions.insert(record.id.clone(), record);
            }
        }
        for path in expired {
            match self.inner.storage.store().delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(OpenError::Storage(e.into())),
            }
        }
        for id in interrupted {
            self.persist_execution(&id).await?;
        }
        Ok(())
    }
}

/// Handles one Athena operation.
/// `access` is the caller's table grants: its queries run as it, and the
/// table listings show the tables it may read (`None`: every grant).
pub async fn handle(
    api: &AthenaApi,
    operation: &str,
    body: &[u8],
    access: Option<&Arc<dyn TableAccess>>,
) -> Response {
    let result = match operation {
        "StartQueryExecution" => executions::start(api, body, access).await,
        "GetQueryExecution" => executions::get(api, body).await,
        "BatchGetQueryExecution" => executions::batch_get(api, body).await,
        "GetQueryResults" => {
            return match executions::results(api, body).await {
                Ok(page) => page,
                Err(e) => e.into_response(),
            };
        }
        "StopQueryExecution" => executions::stop(api, body).await,
        "ListQueryExecutions" => executions::list(api, body).await,
        "ListDataCatalogs" => metadata::list_data_catalogs(api, body).await,
        "GetDataCatalog" => metadata::get_data_catalog(api, body).await,
        "ListDatabases" => metadata::list_databases(api, body).await,
        "GetDatabase" => metadata::get_database(api, body).await,
        "ListTableMetadata" => metadata::list_table_metadata(api, body, access).await,
        "GetTableMetadata" => metadata::get_table_metadata(api, body, access).await,
        "CreateWorkGroup" => workgroups::create(api, body).await,
        "GetWorkGroup" => workgroups::get(api, body).await,
        "ListWorkGroups" => workgroups::list(api, body).await,
        "UpdateWorkGroup" => workgroups::update(api, body).await,
        "DeleteWorkGroup" => workgroups::delete(api, body).await,
        other => Err(ApiError::unknown_operation(&format!(
            "{TARGET_PREFIX}.{other}"
        ))),
    };
    match result {
        Ok(v) => awsjson::ok(v),
        Err(e) => e.into_response(),
    }
}
