//! Compaction: rewriting many small Parquet files into few large ones,
//! without a reader ever seeing a row twice or missing one.
//!
//! Delta tables are compacted by a Delta `OPTIMIZE` commit (readers see the
//! version before or the version after). Tables of plain Parquet files
//! (what the ingester delivers) are compacted partition by partition:
//!
//! 1. A partition qualifies when it holds at least two files smaller than
//!    half the target size and none of its files is younger than
//!    `min_age` (a partition still receiving deliveries is left alone).
//! 2. Its small files are packed into bins of at most the target size; each
//!    bin becomes one new file (large files are copied as they are), all in
//!    a new folder `_compacted-<id>/` inside the partition's own folder,
//!    hidden from listings of that folder.
//! 3. The partition is listed again: if its files changed meanwhile, the
//!    new folder is dropped. Otherwise a manifest naming the files being
//!    replaced is saved, then the catalog partition is switched to the new
//!    folder in one write (compare-and-swap on its old location). Its
//!    parameter `lakehose.compacted_cutoff_ms` records the newest file
//!    replaced: files delivered to the partition's folder later (a late
//!    delivery) are read with the compacted ones, and compacted by a later
//!    run.
//! 4. The replaced files stay for `grace` (queries that listed them before
//!    the switch can still read them), and a later run deletes them, and
//!    folders of runs that were killed or lost the race.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::DeltaTable;
use futures::{StreamExt, TryStreamExt};
use lakehose_catalog::model::Table;
use lakehose_catalog::{Location, PartitionUpdate, Storage};
use lakehose_query::QueryEngine;
use lakehose_query::table::{
    COMPACTED_CUTOFF_PARAM, COMPACTED_FOLDER_PREFIX, LakeTable, PartitionDir, StorageFormat,
};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ResultExt};

/// How a compaction runs.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// The size files are packed to, in bytes.
    pub target_size: u64,
    /// Partitions with a file younger than this are still receiving
    /// deliveries and are not compacted.
    pub min_age: chrono::Duration,
    /// How long replaced files are kept after the switch, for queries that
    /// listed them before it.
    pub grace: chrono::Duration,
    /// Plan only: report what would be compacted.
    pub dry_run: bool,
    /// Files written at once.
    pub parallelism: usize,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            target_size: 128 << 20,
            min_age: chrono::Duration::hours(1),
            grace: chrono::Duration::hours(1),
            dry_run: false,
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CompactReport {
    /// `db.table`.
    pub table: String,
    /// `parquet` or `delta`.
    pub kind: String,
    /// Partitions rewritten (or, planning only, that would be).
    pub partitions_compacted: u64,
    /// Partitions left alone because a file is younger than `min_age`.
    pub partitions_still_receiving: u64,
    /// Partitions whose files changed during the run (left for the next).
    pub partitions_changed: u64,
    /// Files replaced.
    pub files_before: u64,
    /// Files that replaced them.
    pub files_after: u64,
    /// Bytes of the replaced files.
    pub bytes_before: u64,
    /// Bytes of the new files.
    pub bytes_after: u64,
    /// Rows rewritten.
    pub rows: u64,
    /// Files of earlier compactions deleted after their grace period.
    pub old_files_deleted: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Where a compaction is, for progress displays.
pub trait CompactProgress: Send + Sync {
    /// The plan: bytes to rewrite in `bins` new files.
    fn planned(&self, table: &str, bins: u64, bytes: u64);
    /// One bin of `bytes` input bytes is written.
    fn advanced(&self, bytes: u64);
}

impl CompactProgress for crate::NoProgress {
    fn planned(&self, _: &str, _: u64, _: u64) {}
    fn advanced(&self, _: u64) {}
}

/// A compaction that switched partitions, kept until its replaced files
/// are deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    switched_ms: i64,
    partitions: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManifestEntry {
    values: Vec<String>,
    old_location: String,
    new_location: String,
    replaced: Vec<String>,
}

/// One partition's plan.
struct PartitionPlan {
    dir: PartitionDir,
    /// The location as the catalog holds it (for compare-and-swap).
    stored_location: Option<String>,
    files: Vec<ObjectMeta>,
    bins: Vec<Vec<ObjectMeta>>,
    large: Vec<ObjectMeta>,
    new_folder: Location,
}

/// What one written file holds.
struct Written {
    rows: u64,
    bytes: u64,
}

/// Compacts tables of one warehouse.
#[derive(Clone)]
pub struct Compactor {
    engine: QueryEngine,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor").finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Compactor {
    /// Compaction over `engine`'s catalog and storage.
    pub fn new(engine: QueryEngine) -> Self {
        Self { engine }
    }

    fn storage(&self) -> &Storage {
        self.engine.storage()
    }

    /// Compacts one table: a Delta table by `OPTIMIZE`, a Parquet table by
    /// rewriting its partitions' small files.
    pub async fn optimize(
        &self,
        database: &str,
        table: &str,
        options: &CompactOptions,
        progress: &dyn CompactProgress,
    ) -> Result<CompactReport> {
        let started = Instant::now();
        let definition = self.engine.catalog().get_table(database, table).await?;
        let mut report = if lakehose_query::delta::is_delta(&definition) {
            self.optimize_delta(database, &definition, options, progress)
                .await?
        } else {
            let lake = self.engine.lake_table(database, table).await?;
            if !matches!(lake.format(), StorageFormat::Parquet) {
                return Err(Error::invalid(format!(
                    "{database}.{table} is a table of text files; optimize rewrites Parquet and Delta tables"
                )));
            }
            self.optimize_files(database, &lake, options, progress)
                .await?
        };
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Compacts every Parquet and Delta table of the catalog but those
    /// named (`db.table`) in `skip` (views and text tables are skipped
    /// too); one result per table.
    pub async fn optimize_all(
        &self,
        options: &CompactOptions,
        progress: &dyn CompactProgress,
        skip: &HashSet<String>,
    ) -> Result<Vec<(String, Result<CompactReport>)>> {
        let mut out = Vec::new();
        for (db, table) in self.compactable_tables().await? {
            let name = format!("{db}.{table}");
            if skip.contains(&name) {
                continue;
            }
            let result = self.optimize(&db, &table, options, progress).await;
            out.push((name, result));
        }
        Ok(out)
    }

    /// The (database, table) of every Parquet and Delta table compaction
    /// applies to.
    pub async fn compactable_tables(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .all_tables()
            .await?
            .into_iter()
            .filter(|(_, t)| compactable(t))
            .map(|(db, t)| (db, t.name))
            .collect())
    }

    async fn optimize_delta(
        &self,
        database: &str,
        definition: &Table,
        options: &CompactOptions,
        progress: &dyn CompactProgress,
    ) -> Result<CompactReport> {
        let name = format!("{database}.{}", definition.name);
        let location = definition
            .storage_descriptor
            .as_ref()
            .and_then(|sd| sd.location.as_deref())
            .ok_or_else(|| Error::invalid(format!("table {name} has no location")))?;
        let location = Location::parse(location)?;
        let table = lakehose_query::delta::table_builder(self.storage(), &location)
            .map_err(Error::Invalid)?
            .load()
            .await
            .with_context(|| format!("opening {name}"))?;
        let mut report = CompactReport {
            table: name.clone(),
            kind: "delta".into(),
            ..Default::default()
        };
        progress.planned(&name, 0, 0);
        if options.dry_run {
            let small = table
                .snapshot()?
                .log_data()
                .iter()
                .filter(|f| (f.size() as u64) < options.target_size / 2)
                .count();
            report.files_before = small as u64;
            return Ok(report);
        }
        let props = lakehose_catalog::parquet_writer::default_writer_properties();
        let target = NonZeroU64::new(options.target_size.max(1)).expect("non-zero");
        let (_, metrics) = optimize_builder(table)
            .with_target_size(target)
            .with_writer_properties(props)
            .with_max_concurrent_tasks(options.parallelism.max(1))
            .await
            .with_context(|| format!("optimizing {name}"))?;
        report.partitions_compacted = metrics.partitions_optimized;
        report.files_before = metrics.num_files_removed;
        report.files_after = metrics.num_files_added;
        report.bytes_before = metrics.files_removed.total_size.max(0) as u64;
        report.bytes_after = metrics.files_added.total_size.max(0) as u64;
        progress.advanced(report.bytes_before);
        Ok(report)
    }

    async fn optimize_files(
        &self,
        database: &str,
        lake: &LakeTable,
        options: &CompactOptions,
        progress: &dyn CompactProgress,
    ) -> Result<CompactReport> {
        let table = lake.definition().name.clone();
        let name = format!("{database}.{table}");
        let store = Arc::clone(self.storage().store());
        let mut report = CompactReport {
            table: name.clone(),
            kind: "parquet".into(),
            ..Default::default()
        };
        let dirs = lake.partition_locations().await?;
        let stored = self.stored_locations(database, lake).await?;
        if !options.dry_run {
            report.old_files_deleted = self
                .clean_up(database, &table, &dirs, options.grace)
                .await?;
        }
        // Plan.
        let now = now_ms();
        let run_id = format!(
            "{}{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let small_limit = options.target_size / 2;
        let mut plans = Vec::new();
        for dir in dirs {
            let files = dir.files(&store).await?;
            let (small, large): (Vec<ObjectMeta>, Vec<ObjectMeta>) =
                files.iter().cloned().partition(|f| f.size < small_limit);
            if small.len() < 2 {
                continue;
            }
            let newest = files
                .iter()
                .map(|f| f.last_modified.timestamp_millis())
                .max()
                .unwrap_or(0);
            if now - newest < options.min_age.num_milliseconds() {
                report.partitions_still_receiving += 1;
                continue;
            }
            let new_folder = dir.home().join(&format!(
                "{COMPACTED_FOLDER_PREFIX}{}-{run_id}/",
                owner_tag(database, &table)
            ))?;
            plans.push(PartitionPlan {
                stored_location: stored.get(&dir.values).cloned().flatten(),
                bins: pack(small, options.target_size),
                large,
                files,
                dir,
                new_folder,
            });
        }
        let bins: u64 = plans
            .iter()
            .map(|p| (p.bins.len() + p.large.len()) as u64)
            .sum();
        let bytes: u64 = plans.iter().flat_map(|p| &p.files).map(|f| f.size).sum();
        progress.planned(&name, bins, bytes);
        if options.dry_run {
            report.partitions_compacted = plans.len() as u64;
            report.files_before = plans.iter().map(|p| p.files.len() as u64).sum();
            report.files_after = bins;
            report.bytes_before = bytes;
            return Ok(report);
        }
        if plans.is_empty() {
            return Ok(report);
        }
        // Write every partition's new files, `parallelism` at a time across
        // all partitions.
        let data_schema = lake.data_schema();
        let mut tasks = Vec::new();
        for (p, plan) in plans.iter().enumerate() {
            for (i, bin) in plan.bins.iter().enumerate() {
                let target = plan
                    .new_folder
                    .join(&format!("part-{i:05}.parquet"))?
                    .object_path();
                let files = bin.clone();
                tasks.push((p, Task::Merge { files, target }));
            }
            for f in &plan.large {
                let file_name = f.location.filename().unwrap_or("file.parquet").to_string();
                let target = plan.new_folder.join(&file_name)?.object_path();
                let file = f.clone();
                tasks.push((p, Task::Copy { file, target }));
            }
        }
        let results: Vec<(usize, Result<Written>)> =
            futures::stream::iter(tasks.into_iter().map(|(p, task)| {
                let store = Arc::clone(&store);
                let schema = Arc::clone(&data_schema);
                async move {
                    let input = task.input_bytes();
                    let out = task.run(store, schema).await;
                    if out.is_ok() {
                        progress.advanced(input);
                    }
                    (p, out)
                }
            }))
            .buffer_unordered(options.parallelism.max(1))
            .collect()
            .await;
        let mut written: Vec<Vec<Written>> = plans.iter().map(|_| Vec::new()).collect();
        let mut failure = None;
        for (p, result) in results {
            match result {
                Ok(w) => written[p].push(w),
                Err(e) => {
                    failure.get_or_insert(e.context(format!(
                        "compacting {name} partition {:?}",
                        plans[p].dir.values
                    )));
                }
            }
        }
        if let Some(e) = failure {
            for plan in &plans {
                self.drop_folder(&plan.new_folder).await;
            }
            return Err(e);
        }
        // Switch the partitions whose files did not change meanwhile.
        let mut entries = Vec::new();
        let mut switched = Vec::new();
        for (plan, outputs) in plans.iter().zip(written) {
            let now_files = plan.dir.files(&store).await?;
            if !same_files(&now_files, &plan.files) {
                report.partitions_changed += 1;
                self.drop_folder(&plan.new_folder).await;
                continue;
            }
            entries.push(ManifestEntry {
                values: plan.dir.values.clone(),
                old_location: plan.dir.location.to_string(),
                new_location: plan.new_folder.to_string(),
                replaced: plan.files.iter().map(|f| f.location.to_string()).collect(),
            });
            switched.push((plan, outputs));
        }
        if switched.is_empty() {
            return Ok(report);
        }
        let manifest = Manifest {
            switched_ms: now_ms(),
            partitions: entries,
        };
        let manifest_path = self
            .manifest_dir(database, &table)
            .join(format!("{run_id}.json"));
        self.save_manifest(&manifest_path, &manifest).await?;
        let lost = self.switch(database, lake, &switched).await?;
        if !lost.is_empty() {
            // Partitions another writer moved meanwhile keep their files.
            let kept = Manifest {
                switched_ms: manifest.switched_ms,
                partitions: manifest
                    .partitions
                    .iter()
                    .filter(|e| !lost.contains(&e.values))
                    .cloned()
                    .collect(),
            };
            self.save_manifest(&manifest_path, &kept).await?;
        }
        for (plan, outputs) in &switched {
            if lost.contains(&plan.dir.values) {
                report.partitions_changed += 1;
                self.drop_folder(&plan.new_folder).await;
                continue;
            }
            report.partitions_compacted += 1;
            report.files_before += plan.files.len() as u64;
            report.bytes_before += plan.files.iter().map(|f| f.size).sum::<u64>();
            report.files_after += outputs.len() as u64;
            report.bytes_after += outputs.iter().map(|w| w.bytes).sum::<u64>();
            report.rows += outputs.iter().map(|w| w.rows).sum::<u64>();
        }
        Ok(report)
    }

    /// The catalog's stored location of each partition (by values).
    async fn stored_locations(
        &self,
        database: &str,
        lake: &LakeTable,
    ) -> Result<BTreeMap<Vec<String>, Option<String>>> {
        let definition = lake.definition();
        if definition.partition_keys.is_empty() {
            let location = definition
                .storage_descriptor
                .as_ref()
                .and_then(|sd| sd.location.clone());
            return Ok(BTreeMap::from([(Vec::new(), location)]));
        }
        Ok(self
            .engine
            .catalog()
            .get_partitions(database, &definition.name, None)
            .await?
            .into_iter()
            .map(|p| {
                let location = p.storage_descriptor.and_then(|sd| sd.location);
                (p.values, location)
            })
            .collect())
    }

    /// Points the partitions (or the unpartitioned table) at their new
    /// folders in one catalog write. Returns the partitions that had moved
    /// meanwhile and were not switched.
    async fn switch(
        &self,
        database: &str,
        lake: &LakeTable,
        switched: &[(&PartitionPlan, Vec<Written>)],
    ) -> Result<HashSet<Vec<String>>> {
        let catalog = self.engine.catalog();
        let definition = lake.definition();
        // The newest replaced file delivered to the home folder: later ones
        // are late deliveries, read beside the compacted files.
        let cutoff = |plan: &PartitionPlan| {
            let compacted = plan.dir.location != plan.dir.home();
            let current = plan.dir.location.object_path();
            let newest = plan
                .files
                .iter()
                .filter(|f| !compacted || !f.location.prefix_matches(&current))
                .map(|f| f.last_modified.timestamp_millis())
                .max()
                .unwrap_or(0);
            newest.max(plan.dir.cutoff_ms.unwrap_or(0))
        };
        if definition.partition_keys.is_empty() {
            let Some((plan, _)) = switched.first() else {
                return Ok(HashSet::new());
            };
            let mut table = catalog.get_table(database, &definition.name).await?;
            let version = table.version_id.clone();
            let current = table
                .storage_descriptor
                .as_ref()
                .and_then(|sd| sd.location.clone());
            if current != plan.stored_location {
                return Ok(HashSet::from([Vec::new()]));
            }
            let sd = table
                .storage_descriptor
                .get_or_insert_with(Default::default);
            sd.location = Some(plan.new_folder.to_string());
            table
                .parameters
                .insert(COMPACTED_CUTOFF_PARAM.into(), cutoff(plan).to_string());
            return match catalog
                .update_table(database, table, version.as_deref())
                .await
            {
                Ok(()) => Ok(HashSet::new()),
                Err(lakehose_catalog::CatalogError::ConcurrentModification(_)) => {
                    Ok(HashSet::from([Vec::new()]))
                }
                Err(e) => Err(e.into()),
            };
        }
        let mut updates = Vec::new();
        for (plan, _) in switched {
            let mut partition = catalog
                .get_partition(database, &definition.name, &plan.dir.values)
                .await?;
            let sd = partition
                .storage_descriptor
                .get_or_insert_with(|| definition.storage_descriptor.clone().unwrap_or_default());
            sd.location = Some(plan.new_folder.to_string());
            partition
                .parameters
                .insert(COMPACTED_CUTOFF_PARAM.into(), cutoff(plan).to_string());
            updates.push(PartitionUpdate {
                values: plan.dir.values.clone(),
                partition,
                expected_location: plan.stored_location.clone(),
            });
        }
        let errors = catalog
            .update_partitions(database, &definition.name, updates)
            .await?;
        let mut lost = HashSet::new();
        for (values, e) in errors {
            match e {
                lakehose_catalog::CatalogError::ConcurrentModification(_)
                | lakehose_catalog::CatalogError::NotFound(_) => {
                    lost.insert(values);
                }
                other => return Err(other.into()),
            }
        }
        Ok(lost)
    }

    fn manifest_dir(&self, database: &str, table: &str) -> ObjectPath {
        self.storage()
            .system_path(&format!("maintenance/compactions/{database}/{table}"))
    }

    async fn save_manifest(&self, path: &ObjectPath, manifest: &Manifest) -> Result<()> {
        let bytes = serde_json::to_vec(manifest)?;
        Ok(self.storage().put_durable(path, bytes.into()).await?)
    }

    async fn manifests(&self, database: &str, table: &str) -> Result<Vec<(ObjectPath, Manifest)>> {
        let store = self.storage().store();
        let metas: Vec<ObjectMeta> = store
            .list(Some(&self.manifest_dir(database, table)))
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for meta in metas {
            let bytes = match store.get(&meta.location).await {
                Ok(r) => r.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .with_context(|| format!("compaction manifest {}", meta.location))?;
            out.push((meta.location, manifest));
        }
        Ok(out)
    }

    /// Deletes what earlier compactions replaced once `grace` has passed,
    /// and folders of compactions that never switched. Returns the number
    /// of files deleted.
    async fn clean_up(
        &self,
        database: &str,
        table: &str,
        dirs: &[PartitionDir],
        grace: chrono::Duration,
    ) -> Result<u64> {
        let store = Arc::clone(self.storage().store());
        let current: BTreeMap<&Vec<String>, &PartitionDir> =
            dirs.iter().map(|d| (&d.values, d)).collect();
        let now = now_ms();
        let mut deleted = 0;
        let own_tag = owner_tag(database, table);
        // Other tables whose files may lie in this table's folders (a
        // stream's table and a crawler's table over one location): what they
        // read is never deleted, whatever this table's manifests say.
        let others = self.other_readers(database, table, dirs).await?;
        // Folders a pending manifest still needs.
        let mut referenced: HashSet<String> = HashSet::new();
        for (path, manifest) in self.manifests(database, table).await? {
            if now - manifest.switched_ms < grace.num_milliseconds() {
                for e in &manifest.partitions {
                    referenced.insert(e.old_location.clone());
                    referenced.insert(e.new_location.clone());
                }
                continue;
            }
            for e in &manifest.partitions {
                let live = current
                    .get(&e.values)
                    .map(|d| d.location.to_string())
                    .unwrap_or_default();
                if live == e.old_location {
                    // The switch never happened: the old files are live.
                    continue;
                }
                for file in &e.replaced {
                    let path = Location::parse(file)
                        .map(|l| l.object_path())
                        .unwrap_or_else(|_| ObjectPath::from(file.trim_start_matches("s3://")));
                    if !others.is_empty() {
                        let modified = match store.head(&path).await {
                            Ok(meta) => meta.last_modified.timestamp_millis(),
                            Err(object_store::Error::NotFound { .. }) => continue,
                            Err(e) => return Err(e.into()),
                        };
                        if let Some(reader) = others.reader_of(file, modified) {
                            tracing::info!(
                                file = %file,
                                table = %format!("{database}.{table}"),
                                reader = %reader,
                                "a file this table's compaction replaced is kept: another table still reads it"
                            );
                            continue;
                        }
                    }
                    match store.delete(&path).await {
                        Ok(()) => deleted += 1,
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Compaction folders no partition points at and no pending manifest
        // names, older than the grace period: runs that were killed, lost a
        // race, or were replaced by a later compaction.
        for dir in dirs {
            let home = dir.home();
            let listing = store.list_with_delimiter(Some(&home.object_path())).await?;
            for folder in listing.common_prefixes {
                let Some(name) = folder.filename() else {
                    continue;
                };
                let Some(id) = name.strip_prefix(COMPACTED_FOLDER_PREFIX) else {
                    continue;
                };
                let location = home.join(&format!("{name}/"))?;
                let text = location.to_string();
                if location == dir.location || referenced.contains(&text) {
                    continue;
                }
                // Only this table's own leftovers: another table's
                // compaction folder (tagged with that table) is never
                // touched, nor an untagged one (written before folders were
                // tagged) in a folder another table reads too.
                match folder_owner(id) {
                    Some(tag) if tag == own_tag => {}
                    Some(_) => continue,
                    None if others.overlaps(&home) => continue,
                    None => {}
                }
                if others.inside(&text) {
                    continue;
                }
                let files: Vec<ObjectMeta> = store.list(Some(&folder)).try_collect().await?;
                let young = files
                    .iter()
                    .any(|f| now - f.last_modified.timestamp_millis() < grace.num_milliseconds());
                if young {
                    continue;
                }
                for f in files {
                    match store.delete(&f.location).await {
                        Ok(()) => deleted += 1,
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// The partition folders of every other Parquet table whose location
    /// overlaps one of `dirs`' home folders.
    /// Every table of the catalog, with its database's name.
    async fn all_tables(&self) -> Result<Vec<(String, Table)>> {
        let catalog = self.engine.catalog();
        let mut all = Vec::new();
        for db in catalog.list_databases().await? {
            let tables = catalog.list_tables(&db.name).await?;
            all.extend(tables.into_iter().map(|t| (db.name.clone(), t)));
        }
        Ok(all)
    }

    async fn other_readers(
        &self,
        database: &str,
        table: &str,
        dirs: &[PartitionDir],
    ) -> Result<OtherReaders> {
        let homes: Vec<String> = dirs.iter().map(|d| d.home().to_string()).collect();
        let overlaps = |location: &str| {
            homes
                .iter()
                .any(|h| h.starts_with(location) || location.starts_with(h.as_str()))
        };
        let mut readers = OtherReaders::default();
        for (db, t) in self.all_tables().await? {
            if db == database && t.name == table {
                continue;
            }
            let Some(location) = t
                .storage_descriptor
                .as_ref()
                .and_then(|sd| sd.location.clone())
            else {
                continue;
            };
            let Ok(parsed) = Location::parse(&location) else {
                continue;
            };
            let home = lakehose_query::table::home_folder(&parsed).to_string();
            if !overlaps(&home) {
                continue;
            }
            let name = format!("{db}.{}", t.name);
            match self.engine.lake_table(&db, &t.name).await {
                Ok(lake) => {
                    let their = lake
                        .partition_locations()
                        .await
                        .with_context(|| format!("listing the partitions of {name}"))?;
                    readers
                        .dirs
                        .extend(their.into_iter().map(|d| (name.clone(), d)));
                }
                // A Delta table or a view over the same folder: keep
                // everything under its whole location.
                Err(_) => readers.dirs.push((
                    name,
                    PartitionDir {
                        values: Vec::new(),
                        location: lakehose_query::table::home_folder(&parsed),
                        cutoff_ms: None,
                    },
                )),
            }
        }
        Ok(readers)
    }

    async fn drop_folder(&self, folder: &Location) {
        let store = self.storage().store();
        let files: Vec<ObjectMeta> = store
            .list(Some(&folder.object_path()))
            .try_collect()
            .await
            .unwrap_or_default();
        for f in files {
            if let Err(e) = store.delete(&f.location).await {
                tracing::warn!(path = %f.location, error = %e, "could not delete an unused compacted file; a later run will");
            }
        }
    }
}

/// The partition folders of other tables that share this table's folders.
#[derive(Default)]
struct OtherReaders {
    /// `(db.table, partition)`.
    dirs: Vec<(String, PartitionDir)>,
}

impl OtherReaders {
    fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The table that reads `file` (modified at `modified_ms`), if any:
    /// a file in a partition's folder, or in its home folder after its
    /// compaction cutoff, outside hidden (`_`, `.`) folders.
    fn reader_of(&self, file: &str, modified_ms: i64) -> Option<&str> {
        self.dirs.iter().find_map(|(name, dir)| {
            let location = dir.location.to_string();
            let home = dir.home().to_string();
            let visible = |rel: &str| {
                !rel.split('/')
                    .any(|seg| seg.starts_with('_') || seg.starts_with('.'))
            };
            let reads = if let Some(rel) = file.strip_prefix(location.as_str()) {
                visible(rel)
            } else if let Some(rel) = file.strip_prefix(home.as_str()) {
                visible(rel) && modified_ms > dir.cutoff_ms.unwrap_or(i64::MAX)
            } else {
                false
            };
            reads.then_some(name.as_str())
        })
    }

    /// Whether another table's partition lies inside `folder`.
    fn inside(&self, folder: &str) -> bool {
        self.dirs
            .iter()
            .any(|(_, d)| d.location.to_string().starts_with(folder))
    }

    /// Whether another table's folders and `home` overlap.
    fn overlaps(&self, home: &Location) -> bool {
        let home = home.to_string();
        self.dirs.iter().any(|(_, d)| {
            let theirs = d.home().to_string();
            theirs.starts_with(&home) || home.starts_with(&theirs)
        })
    }
}

/// A short, stable tag naming a table, put in the names of the compaction
/// folders it writes (`_compacted-<tag>-<run>/`), so a table's clean-up
/// knows its own leftovers from another table's folders in a shared
/// location. FNV-1a of `database.table`, 16 hex digits.
fn owner_tag(database: &str, table: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let name = format!(
        "{}.{}",
        database.to_ascii_lowercase(),
        table.to_ascii_lowercase()
    );
    let hash = name
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}

/// The owner tag of a compaction folder name (after the prefix), `None`
/// for untagged folders.
fn folder_owner(id: &str) -> Option<&str> {
    let (tag, _) = id.split_once('-')?;
    (tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit())).then_some(tag)
}

fn optimize_builder<'a>(table: DeltaTable) -> deltalake::operations::optimize::OptimizeBuilder<'a> {
    table.optimize()
}

/// Whether a table is one compaction handles (Parquet files or Delta).
pub(crate) fn compactable(table: &Table) -> bool {
    if table.is_view() {
        return false;
    }
    lakehose_query::delta::is_delta(table)
        || matches!(StorageFormat::of(table), Ok(StorageFormat::Parquet))
}

fn same_files(a: &[ObjectMeta], b: &[ObjectMeta]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.location == y.location && x.size == y.size)
}

/// Packs files (in name order, which keeps delivery order) into bins of at
/// most `target` bytes; a file larger than that gets a bin of its own.
fn pack(mut files: Vec<ObjectMeta>, target: u64) -> Vec<Vec<ObjectMeta>> {
    files.sort_by(|a, b| a.location.cmp(&b.location));
    let mut bins: Vec<Vec<ObjectMeta>> = Vec::new();
    let mut size = 0;
    for f in files {
        match bins.last_mut() {
            Some(bin) if size + f.size <= target => {
                size += f.size;
                bin.push(f);
            }
            _ => {
                size = f.size;
                bins.push(vec![f]);
            }
        }
    }
    bins
}

/// One new file: small files merged, or a large one copied.
enum Task {
    Merge {
        files: Vec<ObjectMeta>,
        target: ObjectPath,
    },
    Copy {
        file: ObjectMeta,
        target: ObjectPath,
    },
}

impl Task {
    fn input_bytes(&self) -> u64 {
        match self {
            Task::Merge { files, .. } => files.iter().map(|f| f.size).sum(),
            Task::Copy { file, .. } => file.size,
        }
    }

    async fn run(self, store: Arc<dyn ObjectStore>, catalog_schema: SchemaRef) -> Result<Written> {
        match self {
            Task::Copy { file, target } => {
                store
                    .copy(&file.location, &target)
                    .await
                    .with_context(|| format!("copying {}", file.location))?;
                let rows = 0;
                Ok(Written {
                    rows,
                    bytes: file.size,
                })
            }
            Task::Merge { files, target } => {
                let inputs: Vec<(ObjectPath, Bytes)> =
                    futures::stream::iter(files.into_iter().map(|f| {
                        let store = Arc::clone(&store);
                        async move {
                            let bytes = store
                                .get(&f.location)
                                .await
                                .with_context(|| format!("reading {}", f.location))?
                                .bytes()
                                .await
                                .with_context(|| format!("reading {}", f.location))?;
                            Ok::<_, Error>((f.location, bytes))
                        }
                    }))
                    .buffered(8)
                    .try_collect()
                    .await?;
                let (rows, bytes) =
                    tokio::task::spawn_blocking(move || merge(&inputs, &catalog_schema)).await??;
                let size = bytes.len() as u64;
                store
                    .put(&target, bytes.into())
                    .await
                    .with_context(|| format!("writing {target}"))?;
                Ok(Written { rows, bytes: size })
            }
        }
    }
}

/// Reads Parquet files and writes their rows, in order, as one Parquet
/// file (zstd). Columns take the files' type; where files disagree, the
/// catalog's. Columns some files lack are null in their rows.
fn merge(inputs: &[(ObjectPath, Bytes)], catalog: &Schema) -> Result<(u64, Vec<u8>)> {
    let mut readers = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    for (path, bytes) in inputs {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .with_context(|| format!("{path} is not a readable Parquet file"))?;
        for f in builder.schema().fields() {
            match fields.iter_mut().find(|have| have.name() == f.name()) {
                None => fields.push(f.as_ref().clone().with_nullable(true)),
                Some(have) if have.data_type() == f.data_type() => {}
                Some(have) => {
                    let Ok(wanted) = catalog.field_with_name(f.name()) else {
                        return Err(Error::invalid(format!(
                            "{path}: column {} is {} here but {} in other files, and the table does not define it",
                            f.name(),
                            f.data_type(),
                            have.data_type()
                        )));
                    };
                    *have = wanted.clone().with_nullable(true);
                }
            }
        }
        readers.push((path, builder));
    }
    let schema = Arc::new(Schema::new(fields));
    let props = lakehose_catalog::parquet_writer::default_writer_properties();
    let mut writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props))?;
    let mut rows = 0u64;
    for (path, builder) in readers {
        let reader = builder
            .with_batch_size(65_536)
            .build()
            .with_context(|| format!("reading {path}"))?;
        for batch in reader {
            let batch = batch.with_context(|| format!("reading {path}"))?;
            let columns = schema
                .fields()
                .iter()
                .map(|f| match batch.column_by_name(f.name()) {
                    Some(c) if c.data_type() == f.data_type() => Ok(Arc::clone(c)),
                    Some(c) => cast(c, f.data_type()).with_context(|| {
                        format!(
                            "{path}: column {} cannot become {}",
                            f.name(),
                            f.data_type()
                        )
                    }),
                    None => Ok(new_null_array(f.data_type(), batch.num_rows())),
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
                .with_context(|| path.to_string())?;
            rows += batch.num_rows() as u64;
            writer.write(&batch)?;
        }
    }
    let bytes = writer.into_inner()?;
    Ok((rows, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            location: ObjectPath::from(name),
            last_modified: chrono::Utc::now(),
            size,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn packs_in_name_order_up_to_the_target() {
        let files = vec![meta("c", 40), meta("a", 60), meta("b", 50), meta("d", 200)];
        let bins = pack(files, 100);
        let names: Vec<Vec<&str>> = bins
            .iter()
            .map(|b| b.iter().map(|f| f.location.as_ref()).collect())
            .collect();
        assert_eq!(names, vec![vec!["a"], vec!["b", "c"], vec!["d"]]);
    }
}
