//! Running jobs: plan the SELECT against the catalog, execute it, commit
//! the rows to the target Delta table in one transaction, register the
//! table in the catalog, advance the bookmark, record the run.
//!
//! A run that fails or is killed before its commit leaves the target as it
//! was (files written before the commit are not part of any table version;
//! `VACUUM` removes them). The bookmark of an incremental job moves only
//! after its commit: a run killed between the two reads the same
//! partitions again and replaces the same target partitions (or upserts the
//! same keys), so nothing is counted twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_plan::{ExecutionPlan, collect};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;

use lakehose_catalog::{CatalogError, CatalogRef, Location, Storage};
use lakehose_query::contract::{Privilege, Securable, TableAccess, require};
use lakehose_query::stats::{QueryStats, scanned_bytes};
use lakehose_query::{QueryEngine, QueryRequest};
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ResultExt};
use crate::job::{Job, JobError, Mode, TableName};

/// What a run did, as recorded in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job's name.
    pub job: String,
    /// Unique id of the run.
    pub run_id: String,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// `RUNNING`, `SUCCEEDED` or `FAILED`.
    pub state: String,
    /// Start, epoch milliseconds.
    pub started_ms: i64,
    /// End, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<i64>,
    /// The target table.
    pub target: String,
    /// The job's mode.
    pub mode: String,
    /// Rows the SELECT's scans produced.
    pub rows_read: u64,
    /// Bytes the SELECT's scans read.
    pub bytes_read: u64,
    /// Source partitions read (incremental runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions_read: Option<u64>,
    /// Rows of the SELECT's result.
    pub rows_out: u64,
    /// Rows the commit inserted, updated or deleted in the target.
    pub rows_written: u64,
    /// Data files the commit added.
    pub files_written: u64,
    /// Bytes of those files.
    pub bytes_written: u64,
    /// The Delta table version committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_version: Option<u64>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    /// Whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.state == "SUCCEEDED"
    }
}

/// Files of a source table seen by an incremental job's last successful
/// run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Bookmark {
    source: String,
    /// Object path → size.
    files: BTreeMap<String, u64>,
}

/// Where a run is, for progress displays.
pub trait RunProgress: Send + Sync {
    /// A new phase (`planning`, `reading`, `writing`, ...).
    fn phase(&self, job: &str, phase: &str);

    /// Rows and bytes the SELECT has read so far (called a few times a
    /// second while it reads).
    fn reading(&self, _job: &str, _rows: u64, _bytes: u64) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl RunProgress for NoProgress {
    fn phase(&self, _: &str, _: &str) {}
}

/// Runs jobs against one warehouse.
#[derive(Clone)]
pub struct Etl {
    engine: QueryEngine,
    running: Arc<Mutex<HashSet<String>>>,
    /// Whose grants runs are checked against (`None`: every grant).
    access: Option<Arc<dyn TableAccess>>,
    /// Where each attempt's outcome is reported.
    audit: Option<Arc<dyn RunAudit>>,
}

/// Where ETL runs are reported as changes to their targets (the audit
/// log), with the principal they ran as (`None`: the data folder's owner).
pub trait RunAudit: Send + Sync {
    /// An attempt of a job ended (succeeded or failed), as recorded.
    fn run_ended(&self, principal: Option<&str>, record: &RunRecord);
}

impl std::fmt::Debug for Etl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etl").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Releases a job's running mark when a run ends (or its future is
/// dropped).
struct RunningGuard {
    running: Arc<Mutex<HashSet<String>>>,
    job: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&self.job);
        }
    }
}

impl Etl {
    /// Jobs over `engine`'s catalog and storage.
    pub fn new(engine: QueryEngine) -> Self {
        Self {
            engine,
            running: Arc::default(),
            access: None,
            audit: None,
        }
    }

    /// Reports every attempt's end to `audit`.
    pub fn with_audit(mut self, audit: Arc<dyn RunAudit>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Runs jobs as `access`: a job's SELECT needs its SELECT grants, its
    /// target the INSERT grant (and CREATE_TABLE before the first run), its
    /// setup statements whatever they do.
    pub fn run_as(mut self, access: Option<Arc<dyn TableAccess>>) -> Self {
        self.access = access;
        self
    }

    /// Marks `job` as busy until the guard is dropped (so no run starts
    /// meanwhile, e.g. while its table is compacted); `None` when it
    /// already is.
    pub fn hold(&self, job: &str) -> Option<impl Drop + use<>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(job.to_string()).then(|| RunningGuard {
            running: Arc::clone(&self.running),
            job: job.to_string(),
        })
    }

    fn storage(&self) -> &Storage {
        self.engine.storage()
    }

    /// The engine jobs run on.
    pub fn engine(&self) -> &QueryEngine {
        &self.engine
    }

    fn catalog(&self) -> &CatalogRef {
        self.engine.catalog()
    }

    /// The Delta table folder of a job.
    pub fn location(&self, job: &Job) -> String {
        job.location.clone().unwrap_or_else(|| {
            format!(
                "s3://{}/curated/{}/{}/",
                self.engine.config().warehouse_bucket,
                job.target.database,
                job.target.table
            )
        })
    }

    /// Runs a job, retrying failed attempts as its header allows. At most
    /// one run of a job is under way at a time (a second is refused).
    pub async fn run(&self, job: &Job, progress: &dyn RunProgress) -> Result<RunRecord> {
        let Some(guard) = self.hold(&job.name) else {
            return Err(Error::Busy(format!(
                "job {} is already running (or its table is being maintained)",
                job.name
            )));
        };
        self.run_held(job, guard, progress).await
    }

    /// [`run`](Self::run) for a caller that already holds `job` (see
    /// [`hold`](Self::hold)); the hold ends with the run.
    pub async fn run_held(
        &self,
        job: &Job,
        _held: impl Drop,
        progress: &dyn RunProgress,
    ) -> Result<RunRecord> {
        let mut backoff = job.retry_backoff;
        let mut attempt = 1;
        loop {
            let record = self.attempt(job, attempt, progress).await?;
            if let Some(audit) = &self.audit {
                audit.run_ended(self.access.as_ref().map(|a| a.principal()), &record);
            }
            if record.succeeded() || attempt > job.retries {
                return Ok(record);
            }
            tracing::warn!(job = %job.name, attempt, error = ?record.error, "ETL run failed; retrying after {} s", backoff.as_secs());
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        job: &Job,
        attempt: u32,
        progress: &dyn RunProgress,
    ) -> Result<RunRecord> {
        let mut record = RunRecord {
            job: job.name.clone(),
            run_id: uuid::Uuid::new_v4().to_string(),
            attempt,
            state: "RUNNING".into(),
            started_ms: now_ms(),
            ended_ms: None,
            target: job.target.to_string(),
            mode: job.mode.as_str().into(),
            rows_read: 0,
            bytes_read: 0,
            partitions_read: None,
            rows_out: 0,
            rows_written: 0,
            files_written: 0,
            bytes_written: 0,
            table_version: None,
            error: None,
        };
        self.save_run(&record).await?;
        let outcome = self.execute(job, &mut record, progress).await;
        record.ended_ms = Some(now_ms());
        match outcome {
            Ok(()) => record.state = "SUCCEEDED".into(),
            Err(failure) => {
                record.state = "FAILED".into();
                record.error = Some(failure.to_string());
                if !failure.is_transient() {
                    // Retrying cannot fix a job's own mistakes.
                    record.attempt = attempt.max(job.retries + 1);
                }
            }
        }
        self.save_run(&record).await?;
        Ok(record)
    }

    /// The output schema of a job's SELECT, planned against the catalog
    /// without running it (setup statements are not run either).
    ///
    /// `upstream` holds the output schemas of other jobs' targets: a table
    /// the job reads that is such a target and is not in the catalog yet
    /// (its job has never run) is planned as an empty table of that schema.
    pub async fn validate(
        &self,
        job: &Job,
        upstream: &HashMap<TableName, SchemaRef>,
    ) -> Result<SchemaRef, JobError> {
        let ctx = self
            .engine
            .context(&job.database, Arc::default())
            .map_err(|e| JobError::at(&job.path, Some(job.sql_line), e.to_string()))?;
        for read in &job.reads {
            let Some(schema) = upstream.get(read) else {
                continue;
            };
            if self
                .catalog()
                .get_table(&read.database, &read.table)
                .await
                .is_ok()
            {
                continue;
            }
            let name = format!(
                "{}.{}.{}",
                lakehose_query::CATALOG_NAME,
                read.database,
                read.table
            );
            ctx.register_table(
                name.as_str(),
                Arc::new(datafusion::datasource::empty::EmptyTable::new(Arc::clone(
                    schema,
                ))),
            )
            .map_err(|e| JobError::at(&job.path, None, e.to_string()))?;
        }
        let plan = lakehose_query::plan::plan_query(&ctx, &job.select)
            .await
            .map_err(|e| self.sql_error(job, &e.message))?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        check_columns(job, &schema).map_err(|m| JobError::at(&job.path, None, m))?;
        let stored = schema
            .fields()
            .iter()
            .map(|f| {
                delta_field(f).map_err(|m| {
                    JobError::at(&job.path, None, format!("column {:?}: {m}", f.name()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(Schema::new(stored)))
    }

    /// A planning error, placed on the line that names the table or
    /// column it is about when the message names one.
    fn sql_error(&self, job: &Job, message: &str) -> JobError {
        let quoted: Vec<&str> = message.split('\'').skip(1).step_by(2).collect();
        let line = quoted
            .iter()
            .filter_map(|name| job.line_of(name.rsplit('.').next().unwrap_or(name)))
            .next()
            .or(Some(job.sql_line));
        JobError::at(&job.path, line, message.to_string())
    }

    async fn execute(
        &self,
        job: &Job,
        record: &mut RunRecord,
        progress: &dyn RunProgress,
    ) -> Result<()> {
        self.check_target(job).await?;
        for statement in &job.setup {
            progress.phase(&job.name, "setup");
            self.engine
                .execute(
                    QueryRequest::new(statement, Some(&job.database)).run_as(self.access.clone()),
                )
                .await
                .with_context(|| job.path.display().to_string())?;
        }
        // Incremental: which source partitions have files the last
        // successful run did not see.
        let mut bookmark = None;
        let mut restrictions = HashMap::new();
        if job.mode == Mode::Incremental {
            progress.phase(&job.name, "listing new files");
            let source = job.source.as_ref().expect("incremental jobs have a source");
            let (changed, next) = self.changed_partitions(job, source).await?;
            record.partitions_read = Some(changed.len() as u64);
            if changed.is_empty() {
                tracing::info!(job = %job.name, "no new files in {source}; nothing to do");
                return Ok(());
            }
            restrictions.insert(
                (source.database.clone(), source.table.clone()),
                Arc::new(changed),
            );
            bookmark = Some(next);
        }
        progress.phase(&job.name, "planning");
        let stats = Arc::new(QueryStats::default());
        let ctx = self
            .engine
            .restricted_context(
                &job.database,
                Arc::clone(&stats),
                Arc::new(restrictions),
                self.access.clone(),
            )
            .map_err(|e| JobError::at(&job.path, None, e.to_string()))?;
        let plan = lakehose_query::plan::plan_query(&ctx, &job.select)
            .await
            .map_err(|e| self.sql_error(job, &e.message))?;
        let physical = ctx
            .state()
            .create_physical_plan(&plan)
            .await
            .map_err(|e| self.sql_error(job, &e.to_string()))?;
        check_columns(job, &physical.schema()).map_err(|m| JobError::at(&job.path, None, m))?;
        progress.phase(&job.name, "reading");
        let reading = collect(Arc::clone(&physical), ctx.task_ctx());
        tokio::pin!(reading);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        let batches = loop {
            tokio::select! {
                done = &mut reading => break done,
                _ = tick.tick() => progress.reading(
                    &job.name,
                    scanned_rows(&physical),
                    scanned_bytes(&physical),
                ),
            }
        }
        .with_context(|| job.path.display().to_string())?;
        record.rows_read = scanned_rows(&physical);
        record.bytes_read =
            scanned_bytes(&physical) + stats.text_bytes.load(std::sync::atomic::Ordering::Relaxed);
        let batches = delta_batches(batches, &physical.schema())
            .map_err(|m| JobError::at(&job.path, None, m))?;
        record.rows_out = batches.iter().map(|b| b.num_rows() as u64).sum();
        progress.phase(&job.name, "writing");
        let location = self.location(job);
        let table = self.write(job, &location, batches, record).await?;
        progress.phase(&job.name, "registering");
        self.register(job, &location, &table)
            .await
            .with_context(|| format!("registering {}", job.target))?;
        if let Some(next) = bookmark {
            self.save_bookmark(job, &next)
                .await
                .context("saving the bookmark")?;
        }
        Ok(())
    }

    /// The source partitions with new or changed files, and the bookmark
    /// that marks every current file seen.
    async fn changed_partitions(
        &self,
        job: &Job,
        source: &TableName,
    ) -> Result<(HashSet<Vec<String>>, Bookmark)> {
        let table = self
            .engine
            .lake_table(&source.database, &source.table)
            .await
            .map_err(|e| {
                JobError::at(&job.path, None, format!("source {source}: {}", e.message))
            })?;
        let partitions = table
            .partition_files()
            .await
            .with_context(|| format!("listing {source}"))?;
        let seen = self
            .load_bookmark(job)
            .await
            .context("reading the bookmark")?
            .filter(|b| b.source == source.to_string())
            .unwrap_or_default();
        let mut next = Bookmark {
            source: source.to_string(),
            files: BTreeMap::new(),
        };
        let mut changed = HashSet::new();
        for (values, files) in &partitions {
            for f in files {
                let path = f.location.to_string();
                if seen.files.get(&path) != Some(&f.size) {
                    changed.insert(values.clone());
                }
                next.files.insert(path, f.size);
            }
        }
        let keys = table.partition_keys();
        if job.keys.is_empty() && !changed.is_empty() && !keys.is_empty() {
            // The run replaces whole target partitions, so it must read
            // every source partition that feeds them, not only the changed
            // ones: target partition columns are source partition columns
            // passed through.
            let positions = job
                .partitioned_by
                .iter()
                .map(|c| {
                    keys.iter().position(|k| k == c).ok_or_else(|| {
                        JobError::at(&job.path, None, format!(
                            "partition column {c:?} is not a partition column of {source} ({}); an incremental job without keys replaces target partitions, so each must come from source partitions of the same value",
                            keys.join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<usize>, JobError>>()?;
            let project = |values: &Vec<String>| {
                positions
                    .iter()
                    .map(|p| values.get(*p).cloned())
                    .collect::<Vec<_>>()
            };
            let touched: HashSet<Vec<Option<String>>> = changed.iter().map(project).collect();
            for (values, _) in &partitions {
                if touched.contains(&project(values)) {
                    changed.insert(values.clone());
                }
            }
        }
        Ok((changed, next))
    }

    /// Checks the grants a run needs on its target: INSERT, and
    /// CREATE_TABLE while the target is not in the catalog yet.
    async fn check_target(&self, job: &Job) -> Result<()> {
        let Some(access) = &self.access else {
            return Ok(());
        };
        let on = Securable::Table {
            database: &job.target.database,
            table: &job.target.table,
        };
        require(Some(access), Privilege::Insert, on)?;
        match self
            .catalog()
            .get_table(&job.target.database, &job.target.table)
            .await
        {
            Ok(_) => Ok(()),
            Err(CatalogError::NotFound(_)) => {
                require(Some(access), Privilege::CreateTable, on).map_err(Error::from)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commits the rows to the target in one Delta transaction.
    async fn write(
        &self,
        job: &Job,
        location: &str,
        batches: Vec<RecordBatch>,
        record: &mut RunRecord,
    ) -> Result<DeltaTable> {
        if let Err(e) = Location::parse(location) {
            return Err(e.into());
        }
        let table = crate::delta::open_or_new(self.storage(), location).await?;
        let exists = table.version().is_some();
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => Arc::new(Schema::empty()),
        };
        let before = if exists {
            check_schema(job, &table, &schema)?;
            crate::delta::files_of(&table)
        } else {
            HashMap::new()
        };
        let commit = CommitProperties::default().with_metadata([
            ("lakehose.job".to_string(), serde_json::json!(job.name)),
            ("lakehose.run".to_string(), serde_json::json!(record.run_id)),
        ]);
        let keyed = matches!(job.mode, Mode::Merge)
            || (job.mode == Mode::Incremental && !job.keys.is_empty());
        let table = if keyed && exists {
            let ctx = datafusion::prelude::SessionContext::new();
            let source = ctx
                .read_batches(batches)
                .map_err(|e| JobError::at(&job.path, None, e.to_string()))?;
            let predicate = job
                .keys
                .iter()
                .map(|k| format!("target.{k} = source.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let mut merge = table
                .merge(source, predicate)
                .with_source_alias("source")
                .with_target_alias("target")
                .with_merge_schema(true)
                .with_commit_properties(commit);
            if let Some(condition) = &job.delete_when {
                merge = merge
                    .when_matched_delete(|d| d.predicate(condition.as_str()))
                    .map_err(|e| JobError::at(&job.path, None, format!("delete_when: {e}")))?;
            }
            merge = merge
                .when_matched_update(|mut u| {
                    for c in &columns {
                        u = u.update(c.as_str(), format!("source.{c}"));
                    }
                    u
                })
                .map_err(|e| JobError::at(&job.path, None, e.to_string()))?
                .when_not_matched_insert(|mut i| {
                    if let Some(condition) = &job.delete_when {
                        i = i.predicate(format!("NOT ({condition})"));
                    }
                    for c in &columns {
                        i = i.set(c.as_str(), format!("source.{c}"));
                    }
                    i
                })
                .map_err(|e| JobError::at(&job.path, None, e.to_string()))?;
            let (table, metrics) = merge
                .await
                .with_context(|| format!("merging into {}", job.target))?;
            record.rows_written = (metrics.num_target_rows_inserted
                + metrics.num_target_rows_updated
                + metrics.num_target_rows_deleted) as u64;
            table
        } else {
            let batches = if keyed {
                // A new table: insert what is not to be deleted.
                without_deleted(job, batches).await?
            } else {
                batches
            };
            record.rows_written = batches.iter().map(|b| b.num_rows() as u64).sum();
            let replace_partitions =
                job.overwrite_partitions || (job.mode == Mode::Incremental && job.keys.is_empty());
            let produced = if replace_partitions {
                partition_predicate(&batches, &job.partitioned_by)
                    .map_err(|m| JobError::at(&job.path, None, m))?
            } else {
                None
            };
            if batches.is_empty() && exists {
                // Nothing to append or replace.
                record.table_version = table.version();
                return Ok(table);
            }
            let mut write = table
                .write(batches)
                .with_schema_mode(SchemaMode::Merge)
                .with_target_file_size(std::num::NonZeroU64::new(job.file_size))
                .with_commit_properties(commit)
                .with_table_name(job.target.table.clone());
            if !job.partitioned_by.is_empty() {
                write = write.with_partition_columns(job.partitioned_by.clone());
            }
            write = match job.mode {
                Mode::Append | Mode::Merge => write.with_save_mode(SaveMode::Append),
                Mode::Overwrite if !job.overwrite_partitions => {
                    write.with_save_mode(SaveMode::Overwrite)
                }
                _ => match produced {
                    Some(predicate) if exists => write
                        .with_save_mode(SaveMode::Overwrite)
                        .with_replace_where(predicate),
                    _ => write.with_save_mode(SaveMode::Append),
                },
            };
            write
                .await
                .with_context(|| format!("writing {}", job.target))?
        };
        let after = crate::delta::files_of(&table);
        for (path, size) in &after {
            if !before.contains_key(path) {
                record.files_written += 1;
                record.bytes_written += *size;
            }
        }
        record.table_version = table.version();
        Ok(table)
    }
}

/// Checks that the SELECT produces the partition and key columns.
fn check_columns(job: &Job, schema: &Schema) -> Result<(), String> {
    let has = |c: &str| schema.fields().iter().any(|f| f.name() == c);
    for c in &job.partitioned_by {
        if !has(c) {
            return Err(format!(
                "partition column {c:?} is not a column of the SELECT"
            ));
        }
    }
    for c in &job.keys {
        if !has(c) {
            return Err(format!("key column {c:?} is not a column of the SELECT"));
        }
    }
    let mut seen = HashSet::new();
    for f in schema.fields() {
        if !seen.insert(f.name().to_ascii_lowercase()) {
            return Err(format!(
                "the SELECT has two columns named {:?}; give them distinct aliases",
                f.name()
            ));
        }
    }
    if job.partitioned_by.len() == schema.fields().len() {
        return Err(
            "every column of the SELECT is a partition column; a table needs data columns".into(),
        );
    }
    Ok(())
}

/// Rows produced by the plan's leaves (its scans).
fn scanned_rows(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    if plan.children().is_empty() {
        return plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0) as u64;
    }
    plan.children().iter().map(|c| scanned_rows(c)).sum()
}

/// The Delta type a result column is stored as: string and binary views as
/// plain strings and binaries, timestamps in microseconds (UTC when they
/// carry a time zone), unsigned integers widened, dictionaries decoded.
fn delta_type(t: &DataType) -> Result<DataType, String> {
    Ok(match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        DataType::Dictionary(_, v) => delta_type(v)?,
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            DataType::List(Arc::new(delta_field(f)?))
        }
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| delta_field(f))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        DataType::Map(entries, sorted) => DataType::Map(Arc::new(delta_field(entries)?), *sorted),
        DataType::Null => DataType::Utf8,
        DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Duration(_)
        | DataType::Interval(_) => {
            return Err(format!(
                "Delta tables have no {t} type; cast the column to a string or a number"
            ));
        }
        other => other.clone(),
    })
}

fn delta_field(f: &Field) -> Result<Field, String> {
    Ok(f.clone()
        .with_data_type(delta_type(f.data_type())?)
        .with_nullable(true))
}

/// The result converted to the types it is stored with.
fn delta_batches(batches: Vec<RecordBatch>, schema: &Schema) -> Result<Vec<RecordBatch>, String> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| delta_field(f).map_err(|m| format!("column {:?}: {m}", f.name())))
        .collect::<Result<Vec<_>, _>>()?;
    let target = Arc::new(Schema::new(fields));
    batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(c, f)| {
                    cast(c, f.data_type()).map_err(|e| format!("column {:?}: {e}", f.name()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(Arc::clone(&target), columns).map_err(|e| e.to_string())
        })
        .collect()
}

/// Checks a run's columns against the target's: new columns may be added;
/// a column the target has must keep its type and stay in the SELECT, and
/// the partition columns must not change.
fn check_schema(job: &Job, table: &DeltaTable, schema: &Schema) -> Result<()> {
    let state = table
        .snapshot()
        .with_context(|| format!("reading {}", job.target))?;
    let existing = state.snapshot().arrow_schema();
    let fail = |m: String| {
        Error::Job(JobError::at(
            &job.path,
            None,
            format!("target {}: {m}", job.target),
        ))
    };
    if schema.fields().is_empty() {
        return Ok(());
    }
    for f in existing.fields() {
        let Ok(new) = schema.field_with_name(f.name()) else {
            return Err(fail(format!(
                "column {:?} is missing from the SELECT (columns may be added, not dropped)",
                f.name()
            )));
        };
        let same = match (f.data_type(), new.data_type()) {
            (DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8, DataType::Utf8) => true,
            (DataType::Binary | DataType::BinaryView | DataType::LargeBinary, DataType::Binary) => {
                true
            }
            (DataType::Timestamp(_, a), DataType::Timestamp(_, b)) => a.is_some() == b.is_some(),
            (a, b) => a == b,
        };
        if !same {
            return Err(fail(format!(
                "column {:?} would change type from {} to {}; such a change needs a new table",
                f.name(),
                f.data_type(),
                new.data_type()
            )));
        }
    }
    let partitions: Vec<String> = state.metadata().partition_columns().to_vec();
    if partitions != job.partitioned_by {
        return Err(fail(format!(
            "the table is partitioned by [{}], the job says [{}]",
            partitions.join(", "),
            job.partitioned_by.join(", ")
        )));
    }
    Ok(())
}

/// Drops the rows a merge would delete (for the first run, which creates
/// the table).
async fn without_deleted(job: &Job, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let Some(condition) = &job.delete_when else {
        return Ok(batches);
    };
    if batches.is_empty() {
        return Ok(batches);
    }
    let ctx = datafusion::prelude::SessionContext::new();
    let df = ctx.read_batches(batches)?;
    let condition = condition.replace("source.", "");
    let sql_condition = ctx
        .parse_sql_expr(&format!("NOT coalesce(({condition}), false)"), df.schema())
        .map_err(|e| JobError::at(&job.path, None, format!("delete_when: {e}")))?;
    df.filter(sql_condition)
        .map_err(|e| JobError::at(&job.path, None, format!("delete_when: {e}")))?
        .collect()
        .await
        .map_err(|e| JobError::at(&job.path, None, format!("delete_when: {e}")).into())
}

/// `(p1 = v1 AND p2 = v2) OR ...` over the partitions the rows fall in;
/// `None` when there are no rows.
fn partition_predicate(batches: &[RecordBatch], keys: &[String]) -> Result<Option<Expr>, String> {
    let options = FormatOptions::default();
    let mut seen: HashSet<Vec<Option<String>>> = HashSet::new();
    let mut terms: Vec<Expr> = Vec::new();
    for batch in batches {
        let columns = keys
            .iter()
            .map(|k| {
                batch
                    .column_by_name(k)
                    .ok_or_else(|| format!("partition column {k:?} is not in the result"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let formatters = columns
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let key: Vec<Option<String>> = columns
                .iter()
                .zip(&formatters)
                .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                .collect();
            if !seen.insert(key) {
                continue;
            }
            let mut term: Option<Expr> = None;
            for (k, c) in keys.iter().zip(&columns) {
                let e = if c.is_null(row) {
                    col(k.as_str()).is_null()
                } else {
                    let v = datafusion::common::ScalarValue::try_from_array(c.as_ref(), row)
                        .map_err(|e| e.to_string())?;
                    col(k.as_str()).eq(lit(v))
                };
                term = Some(match term {
                    Some(t) => t.and(e),
                    None => e,
                });
            }
            terms.extend(term);
        }
    }
    Ok(terms.into_iter().reduce(Expr::or))
}

impl Etl {
    /// Creates or updates the catalog table over the Delta table.
    async fn register(&self, job: &Job, location: &str, table: &DeltaTable) -> Result<()> {
        let mut parameters = BTreeMap::new();
        parameters.insert("lakehose.etl.job".to_string(), job.name.clone());
        crate::delta::register(
            self.catalog(),
            crate::delta::Registration {
                database: &job.target.database,
                name: &job.target.table,
                location,
                description: (!job.description.is_empty()).then(|| job.description.clone()),
                parameters,
                owner_key: "lakehose.etl.job",
            },
            table,
        )
        .await
    }

    fn run_path(&self, record: &RunRecord) -> object_store::path::Path {
        self.storage().system_path(&format!(
            "etl/runs/{}/{:013}-{}.json",
            record.job, record.started_ms, record.run_id
        ))
    }

    async fn save_run(&self, record: &RunRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(record)?;
        self.storage()
            .put_durable(&self.run_path(record), bytes.into())
            .await
            .with_context(|| format!("recording the run of job {}", record.job))
    }

    fn bookmark_path(&self, job: &Job) -> object_store::path::Path {
        self.storage()
            .system_path(&format!("etl/bookmarks/{}.json", job.name))
    }

    async fn load_bookmark(&self, job: &Job) -> Result<Option<Bookmark>> {
        match self.storage().store().get(&self.bookmark_path(job)).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                serde_json::from_slice(&bytes).map(Some).with_context(|| {
                    format!(
                        "the bookmark file {} of job {} is corrupt or truncated; fix or delete it (the job then starts over from its first partition)",
                        self.bookmark_path(job),
                        job.name
                    )
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn save_bookmark(&self, job: &Job, bookmark: &Bookmark) -> Result<()> {
        let bytes = serde_json::to_vec(bookmark)?;
        Ok(self
            .storage()
            .put_durable(&self.bookmark_path(job), bytes.into())
            .await?)
    }

    /// Forgets an incremental job's bookmark: its next run reads the whole
    /// source again.
    pub async fn reset_bookmark(&self, job: &Job) -> Result<()> {
        match self
            .storage()
            .store()
            .delete(&self.bookmark_path(job))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the data files of a job's table that no version newer than
    /// `retain` ago needs: files removed by later commits, and files of
    /// runs that never committed (killed, failed). Versions older than
    /// `retain` can no longer be read after it. Returns the deleted files
    /// (or, with `dry_run`, those that would be).
    pub async fn vacuum(
        &self,
        job: &Job,
        retain: chrono::Duration,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let location = self.location(job);
        let loc = Location::parse(&location)?;
        let table = lakehose_query::delta::table_builder(self.storage(), &loc)
            .map_err(Error::Invalid)?
            .load()
            .await
            .with_context(|| format!("opening {}", job.target))?;
        if table.version().is_none() {
            return Err(Error::invalid(format!(
                "{} has not been written yet",
                job.target
            )));
        }
        let (_, metrics) = table
            .vacuum()
            .with_retention_period(retain)
            .with_enforce_retention_duration(false)
            .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
            .with_dry_run(dry_run)
            .await
            .with_context(|| format!("vacuuming {}", job.target))?;
        Ok(metrics.files_deleted)
    }

    /// Recorded runs, oldest first; of one job, or of all.
    pub async fn history(&self, job: Option<&str>) -> Result<Vec<RunRecord>> {
        use futures::TryStreamExt;
        let prefix = match job {
            Some(j) => self.storage().system_path(&format!("etl/runs/{j}/")),
            None => self.storage().system_path("etl/runs/"),
        };
        let store = self.storage().store();
        let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
        let mut out = Vec::new();
        for meta in metas {
            if !meta.location.as_ref().ends_with(".json") {
                continue;
            }
            let bytes = match store.get(&meta.location).await {
                Ok(r) => r.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            match serde_json::from_slice::<RunRecord>(&bytes) {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(path = %meta.location, error = %e, "skipping a corrupt ETL run record")
                }
            }
        }
        out.sort_by(|a, b| {
            a.started_ms
                .cmp(&b.started_ms)
                .then(a.run_id.cmp(&b.run_id))
        });
        Ok(out)
    }

    /// The last run of a job that started.
    pub async fn last_run(&self, job: &str) -> Result<Option<RunRecord>> {
        Ok(self.history(Some(job)).await?.pop())
    }
}
