//! Catalog tables as DataFusion tables.
//!
//! A scan first prunes the table's partitions with the query's filters on
//! partition columns, evaluated against the partition values the catalog
//! holds, and only then lists files, and only under the partitions that
//! survive. Parquet goes through DataFusion's Parquet reader (projection,
//! row-group statistics, page index, filter pushdown); text formats (JSON
//! lines, delimited text, OpenCSV, regex) through [`crate::text`].

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use futures::{StreamExt, TryStreamExt};
use lakehose_catalog::model::{Column, Table};
use lakehose_catalog::{CatalogRef, Location, Storage, partition_path};
use object_store::ObjectMeta;

use crate::text::{TextFormat, TextKind, TextScan};
use crate::types::HiveType;

/// The object-store URL every warehouse path is read through (the bucket is
/// the first path segment).
pub(crate) const WAREHOUSE_URL: &str = "lakehose://warehouse";

/// The value Hive writes for a NULL partition value.
pub(crate) const HIVE_NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// How a table's files are read.
#[derive(Debug, Clone)]
pub enum StorageFormat {
    /// Parquet files.
    Parquet,
    /// Text files of some SerDe.
    Text(TextFormat),
}

impl StorageFormat {
    /// The format of a catalog table, from its SerDe, input format and
    /// `classification`.
    pub fn of(table: &Table) -> Result<Self, String> {
        let sd = table.storage_descriptor.clone().unwrap_or_default();
        let serde = sd.serde_info.clone().unwrap_or_default();
        let lib = serde
            .serialization_library
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let input = sd
            .input_format
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let class = table
            .parameters
            .get("classification")
            .or_else(|| sd.parameters.get("classification"))
            .map(|c| c.to_ascii_lowercase())
            .unwrap_or_default();
        if lib.contains("parquet") || input.contains("parquet") || class == "parquet" {
            return Ok(Self::Parquet);
        }
        if lib.contains("orc") || input.contains("orc") || class == "orc" {
            return Err(
                "ORC tables are not supported; lakehose reads Parquet, JSON and text".into(),
            );
        }
        if lib.contains("avro") || class == "avro" {
            return Err(
                "Avro tables are not supported; lakehose reads Parquet, JSON and text".into(),
            );
        }
        let skip_header = table
            .parameters
            .get("skip.header.line.count")
            .or_else(|| sd.parameters.get("skip.header.line.count"))
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("skip.header.line.count {v:?} is not a number"))
            })
            .transpose()?
            .unwrap_or(0);
        TextFormat::from_serde(&lib, &class, &serde.parameters, skip_header).map(Self::Text)
    }
}

/// A catalog table as a DataFusion table.
#[derive(Debug)]
pub struct LakeTable {
    catalog: CatalogRef,
    storage: Storage,
    database: String,
    table: Table,
    location: Location,
    format: StorageFormat,
    schema: SchemaRef,
    file_schema: SchemaRef,
    /// The data columns with the catalog's types (plain strings), which
    /// pending records are decoded with before they take `file_schema`'s.
    record_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    live: Option<crate::live::LiveSourceRef>,
    /// When set, scans read only these partitions (values in key order).
    only_partitions: Option<Arc<HashSet<Vec<String>>>>,
}

/// Parquet string and binary columns are read as Arrow view arrays, which
/// the Parquet decoder fills without copying each value and DataFusion's
/// string kernels, comparisons and grouping are fastest on. Only top-level
/// columns change; nested fields keep the catalog's types.
fn view_types(fields: &[Field]) -> Vec<Field> {
    fields
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => f.clone().with_data_type(DataType::Utf8View),
            DataType::Binary | DataType::LargeBinary => {
                f.clone().with_data_type(DataType::BinaryView)
            }
            _ => f.clone(),
        })
        .collect()
}

/// The Arrow fields of catalog columns.
pub fn arrow_fields(columns: &[Column], what: &str) -> Result<Vec<Field>, String> {
    columns
        .iter()
        .map(|c| {
            let hive = c.data_type.as_deref().unwrap_or("string");
            let t = HiveType::parse(hive).map_err(|e| format!("{what} column {}: {e}", c.name))?;
            Ok(t.field(c.name.to_ascii_lowercase()))
        })
        .collect()
}

impl LakeTable {
    /// Wraps a catalog table (not a view, not Delta).
    pub fn new(
        catalog: CatalogRef,
        storage: Storage,
        database: &str,
        table: Table,
        live: Option<crate::live::LiveSourceRef>,
    ) -> Result<Self, String> {
        let sd = table.storage_descriptor.clone().unwrap_or_default();
        let location = sd
            .location
            .as_deref()
            .ok_or_else(|| format!("table {database}.{} has no location", table.name))?;
        let location = Location::parse(location).map_err(|e| e.to_string())?;
        let format = StorageFormat::of(&table)
            .map_err(|e| format!("table {database}.{}: {e}", table.name))?;
        let named = |e: String| format!("table {database}.{}: {e}", table.name);
        let data = arrow_fields(&sd.columns, "data").map_err(named)?;
        let partition_fields: Vec<FieldRef> = arrow_fields(&table.partition_keys, "partition")
            .map_err(named)?
            .into_iter()
            .map(Arc::new)
            .collect();
        let record_schema = Arc::new(Schema::new(data.clone()));
        let data = match &format {
            StorageFormat::Parquet => view_types(&data),
            StorageFormat::Text(_) => data,
        };
        let file_schema = Arc::new(Schema::new(data.clone()));
        let mut all: Vec<FieldRef> = data.into_iter().map(Arc::new).collect();
        all.extend(partition_fields.iter().cloned());
        Ok(Self {
            catalog,
            storage,
            database: database.to_string(),
            table,
            location,
            format,
            schema: Arc::new(Schema::new(all)),
            file_schema,
            record_schema,
            partition_fields,
            live,
            only_partitions: None,
        })
    }

    /// The same table, reading only the given partitions.
    pub(crate) fn with_only_partitions(mut self, only: Arc<HashSet<Vec<String>>>) -> Self {
        self.only_partitions = Some(only);
        self
    }

    /// Every partition (values in key order; one with no values for an
    /// unpartitioned table) with its data files.
    pub async fn partition_files(&self) -> Result<Vec<(Vec<String>, Vec<ObjectMeta>)>> {
        let partitions = self.partition_locations().await?;
        let store = Arc::clone(self.storage.store());
        futures::stream::iter(partitions.into_iter().map(|dir| {
            let store = Arc::clone(&store);
            async move {
                let files = dir.files(&store).await?;
                Ok::<_, DataFusionError>((dir.values, files))
            }
        }))
        .buffered(16)
        .try_collect()
        .await
    }

    /// The catalog's definition of the table.
    pub fn definition(&self) -> &Table {
        &self.table
    }

    /// The table's folder.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// How the table's files are read.
    pub fn format(&self) -> &StorageFormat {
        &self.format
    }

    /// The data columns with the catalog's types.
    pub fn data_schema(&self) -> SchemaRef {
        Arc::clone(&self.record_schema)
    }

    /// The partition keys, in order.
    pub fn partition_keys(&self) -> Vec<String> {
        self.partition_names()
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn partition_names(&self) -> Vec<&str> {
        self.partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    fn is_partition_filter(&self, filter: &Expr) -> bool {
        is_partition_filter(filter, &self.partition_fields)
    }

    /// The table's partitions from the catalog: their values and folders
    /// (one with no values and the table's folder when unpartitioned).
    pub async fn partition_locations(&self) -> Result<Vec<PartitionDir>> {
        let external = |e: lakehose_catalog::StorageError| DataFusionError::External(Box::new(e));
        if self.partition_fields.is_empty() {
            return Ok(vec![PartitionDir::new(
                Vec::new(),
                self.location.clone(),
                &self.table.parameters,
            )]);
        }
        let partitions = self
            .catalog
            .get_partitions(&self.database, &self.table.name, None)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let base = home_folder(&self.location);
        partitions
            .into_iter()
            .map(|p| {
                let location = match p
                    .storage_descriptor
                    .as_ref()
                    .and_then(|sd| sd.location.as_deref())
                {
                    Some(l) => Location::parse(l).map_err(external)?,
                    None => {
                        let suffix: String = self
                            .partition_fields
                            .iter()
                            .zip(&p.values)
                            .map(|(f, v)| format!("{}={v}/", f.name()))
                            .collect();
                        base.join(&suffix).map_err(external)?
                    }
                };
                Ok(PartitionDir::new(p.values, location, &p.parameters))
            })
            .collect()
    }

    /// Keeps the partitions that pass the query's filters on partition
    /// columns, with their typed values.
    fn prune(
        &self,
        state: &dyn Session,
        filters: &[Expr],
        candidates: Vec<PartitionDir>,
    ) -> Result<Vec<(PartitionDir, Vec<ScalarValue>)>> {
        if self.partition_fields.is_empty() || candidates.is_empty() {
            return Ok(candidates.into_iter().map(|d| (d, Vec::new())).collect());
        }
        // One column per partition key, one row per partition.
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (i, field) in self.partition_fields.iter().enumerate() {
            let values = candidates
                .iter()
                .map(|d| partition_scalar(d.values.get(i).map(String::as_str), field))
                .collect::<Result<Vec<_>>>()?;
            columns.push(ScalarValue::iter_to_array(values)?);
        }
        let filters: Vec<&Expr> = filters
            .iter()
            .filter(|f| self.is_partition_filter(f))
            .collect();
        let (batch, keep) = passing(state, &self.partition_fields, &filters, columns)?;
        let mut out = Vec::new();
        for (row, (dir, keep)) in candidates.into_iter().zip(keep).enumerate() {
            if !keep {
                continue;
            }
            let values = batch
                .columns()
                .iter()
                .map(|c| ScalarValue::try_from_array(c, row))
                .collect::<Result<Vec<_>>>()?;
            out.push((dir, values));
        }
        Ok(out)
    }

    /// The partition values of a folder under the table's location
    /// (`key=value/...` naming every partition key in order).
    fn folder_values(&self, folder: &Location) -> Option<Vec<String>> {
        let base = home_folder(&self.location);
        if base.bucket() != folder.bucket() {
            return None;
        }
        let rel = folder.key().strip_prefix(base.key())?;
        if self.partition_fields.is_empty() {
            return Some(Vec::new());
        }
        let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        if segments.len() < self.partition_fields.len() {
            return None;
        }
        self.partition_fields
            .iter()
            .zip(&segments)
            .map(|(f, seg)| {
                let (k, v) = partition_path::parse_segment(seg)?;
                k.eq_ignore_ascii_case(f.name()).then_some(v)
            })
            .collect()
    }

    /// Lists the data files under each location.
    async fn files(
        &self,
        locations: Vec<(PartitionDir, Vec<ScalarValue>)>,
    ) -> Result<Vec<(ObjectMeta, Vec<ScalarValue>)>> {
        let store = Arc::clone(self.storage.store());
        let listed: Vec<Vec<(ObjectMeta, Vec<ScalarValue>)>> =
            futures::stream::iter(locations.into_iter().map(|(dir, values)| {
                let store = Arc::clone(&store);
                async move {
                    let files = dir.files(&store).await?;
                    Ok::<_, DataFusionError>(
                        files
                            .into_iter()
                            .map(|m| (m, values.clone()))
                            .collect::<Vec<_>>(),
                    )
                }
            }))
            .buffered(16)
            .try_collect()
            .await?;
        Ok(listed.into_iter().flatten().collect())
    }
}

/// The files of a table or partition folder: everything under it, except
/// names (or folders) starting with `_` or `.`, as Athena does.
pub(crate) async fn list_data_files(
    store: &Arc<dyn object_store::ObjectStore>,
    location: &Location,
) -> Result<Vec<ObjectMeta>> {
    list_under(store, &with_slash(location), |rel, _| !is_hidden(rel)).await
}

/// Whether a path relative to a folder names a hidden file or lies in a
/// hidden folder.
fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .any(|seg| seg.starts_with('_') || seg.starts_with('.'))
}

/// The non-empty objects under a folder that `keep` accepts (given their
/// path relative to the folder), sorted by path.
async fn list_under(
    store: &Arc<dyn object_store::ObjectStore>,
    folder: &Location,
    keep: impl Fn(&str, &ObjectMeta) -> bool,
) -> Result<Vec<ObjectMeta>> {
    let prefix = folder.object_path();
    let prefix_str = prefix.as_ref().to_string();
    let mut files: Vec<ObjectMeta> = store
        .list(Some(&prefix))
        .try_filter(|meta| {
            let rel = meta
                .location
                .as_ref()
                .strip_prefix(prefix_str.as_str())
                .unwrap_or(meta.location.as_ref())
                .trim_start_matches('/');
            futures::future::ready(meta.size > 0 && keep(rel, meta))
        })
        .try_collect()
        .await
        .map_err(|e| DataFusionError::ObjectStore(Box::new(e)))?;
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(files)
}

/// The location as a folder (ending with `/`).
pub(crate) fn with_slash(location: &Location) -> Location {
    if location.key().is_empty() || location.key().ends_with('/') {
        location.clone()
    } else {
        location.join("/").unwrap_or_else(|_| location.clone())
    }
}

/// Folders that compaction writes a partition's new files to are named
/// `_compacted-<id>` inside the partition's own folder (hidden from
/// listings of that folder, as every `_` name is).
pub const COMPACTED_FOLDER_PREFIX: &str = "_compacted-";

/// The partition (or table) parameter holding the newest modification time,
/// in epoch milliseconds, of the files a compaction replaced: files in the
/// partition's own folder newer than that arrived after it and are read too.
pub const COMPACTED_CUTOFF_PARAM: &str = "lakehose.compacted_cutoff_ms";

/// The folder a partition's (or table's) files are delivered to: its
/// location, or the folder holding it when it is a compaction folder.
pub fn home_folder(location: &Location) -> Location {
    let folder = with_slash(location);
    let key = folder.key().trim_end_matches('/');
    let (parent, last) = key.rsplit_once('/').unwrap_or(("", key));
    if last.starts_with(COMPACTED_FOLDER_PREFIX) {
        let parent = if parent.is_empty() {
            String::new()
        } else {
            format!("{parent}/")
        };
        Location::parse(&format!("s3://{}/{parent}", folder.bucket())).unwrap_or(folder)
    } else {
        folder
    }
}

/// A partition (or an unpartitioned table) and where its files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDir {
    /// Its values, in key order (none for an unpartitioned table).
    pub values: Vec<String>,
    /// Its location in the catalog (a folder).
    pub location: Location,
    /// Set when the location is a compaction folder: files delivered to the
    /// home folder after this time (epoch ms) belong to the partition too.
    pub cutoff_ms: Option<i64>,
}

impl PartitionDir {
    /// A partition at `location`, with the catalog parameters it has.
    pub fn new(
        values: Vec<String>,
        location: Location,
        parameters: &lakehose_catalog::model::Parameters,
    ) -> Self {
        let location = with_slash(&location);
        let cutoff_ms = if home_folder(&location) == location {
            None
        } else {
            parameters
                .get(COMPACTED_CUTOFF_PARAM)
                .and_then(|v| v.parse().ok())
        };
        Self {
            values,
            location,
            cutoff_ms,
        }
    }

    /// The folder new files are delivered to.
    pub fn home(&self) -> Location {
        home_folder(&self.location)
    }

    /// The partition's data files: those under its location and, when that
    /// is a compaction folder, those delivered to its home folder since.
    pub async fn files(
        &self,
        store: &Arc<dyn object_store::ObjectStore>,
    ) -> Result<Vec<ObjectMeta>> {
        let home = self.home();
        if home == self.location {
            return list_data_files(store, &self.location).await;
        }
        let current = self.location.key()[home.key().len()..].to_string();
        let cutoff = self.cutoff_ms.unwrap_or(i64::MAX);
        list_under(store, &home, |rel, meta| {
            match rel.strip_prefix(current.as_str()) {
                Some(inside) => !is_hidden(inside),
                None => !is_hidden(rel) && meta.last_modified.timestamp_millis() > cutoff,
            }
        })
        .await
    }
}

/// Whether `filter` names only partition columns (and can be decided per
/// partition, from its values).
pub(crate) fn is_partition_filter(filter: &Expr, partition_fields: &[FieldRef]) -> bool {
    let refs = filter.column_refs();
    !refs.is_empty()
        && !filter.is_volatile()
        && refs
            .iter()
            .all(|c| partition_fields.iter().any(|f| f.name() == &c.name))
}

/// Filters on partition columns are applied exactly (partitions are
/// pruned); the others are also handed to the Parquet scan, which prunes
/// row groups with them.
pub(crate) fn pushdown(
    filters: &[&Expr],
    partition_fields: &[FieldRef],
) -> Vec<TableProviderFilterPushDown> {
    filters
        .iter()
        .map(|f| {
            if is_partition_filter(f, partition_fields) {
                TableProviderFilterPushDown::Exact
            } else {
                TableProviderFilterPushDown::Inexact
            }
        })
        .collect()
}

/// The rows of `columns` (one per partition field, one row per partition)
/// that pass every one of `filters`, which name only partition columns.
pub(crate) fn passing(
    state: &dyn Session,
    fields: &[FieldRef],
    filters: &[&Expr],
    columns: Vec<ArrayRef>,
) -> Result<(RecordBatch, Vec<bool>)> {
    let schema = Arc::new(Schema::new(fields.to_vec()));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let mut keep = vec![true; batch.num_rows()];
    let df_schema = DFSchema::try_from(schema)?;
    for filter in filters {
        let physical = state.create_physical_expr((*filter).clone(), &df_schema)?;
        let result = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                DataFusionError::Plan(format!("partition filter {filter} is not boolean"))
            })?;
        for (k, m) in keep.iter_mut().zip(mask.iter()) {
            *k &= m.unwrap_or(false);
        }
    }
    Ok((batch, keep))
}

/// The columns of a Parquet table: all of them (data columns, then
/// partition columns), the data columns in the files, and the partition
/// columns taken from each file's values.
pub(crate) struct ParquetColumns<'a> {
    pub(crate) schema: &'a SchemaRef,
    pub(crate) file_schema: &'a SchemaRef,
    pub(crate) partition_fields: &'a [FieldRef],
}

/// DataFusion's Parquet scan of `files` (each with its partition values),
/// spread over the session's target partitions; `projection` indexes
/// `columns.schema`.
pub(crate) async fn parquet_plan(
    state: &dyn Session,
    store: Arc<dyn object_store::ObjectStore>,
    columns: ParquetColumns<'_>,
    files: Vec<(ObjectMeta, Vec<ScalarValue>)>,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let target = state.config().target_partitions();
    let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
    // Row counts and sizes from the footers (cached across queries by the
    // runtime's file metadata cache) let the planner put the smaller side of
    // a join on the build side.
    let collect = state.config().collect_statistics();
    let files: Vec<PartitionedFile> = futures::stream::iter(files)
        .map(|(meta, values)| {
            let format = &format;
            let store = &store;
            let file_schema = Arc::clone(columns.file_schema);
            async move {
                let file =
                    PartitionedFile::new_from_meta(meta.clone()).with_partition_values(values);
                if !collect {
                    return Ok::<_, DataFusionError>(file);
                }
                let stats = format.infer_stats(state, store, file_schema, &meta).await?;
                Ok(file.with_statistics(Arc::new(stats)))
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    let groups = balanced_groups(files, target);
    let (groups, statistics) = datafusion_datasource::compute_all_files_statistics(
        groups,
        Arc::clone(columns.schema),
        collect,
        true,
    )?;
    let table_schema = TableSchema::builder(Arc::clone(columns.file_schema))
        .with_table_partition_cols(columns.partition_fields.to_vec())
        .build();
    let source = format.file_source(table_schema);
    let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(WAREHOUSE_URL)?, source)
        .with_file_groups(groups)
        .with_statistics(statistics)
        .with_projection_indices(projection.cloned())?
        .with_limit(limit)
        .build();
    format.create_physical_plan(state, config).await
}

/// Bytes of pending records a scan hands workers inside a plan (a worker
/// takes plans of up to 4 MiB).
const MAX_SHIPPED_PENDING_BYTES: usize = 2 << 20;

/// The typed value of a partition value string.
pub(crate) fn partition_scalar(value: Option<&str>, field: &Field) -> Result<ScalarValue> {
    match value {
        None | Some(HIVE_NULL_PARTITION) => ScalarValue::try_from(field.data_type()),
        Some(v) => {
            let t = field.data_type();
            if matches!(t, DataType::Utf8) {
                return Ok(ScalarValue::Utf8(Some(v.to_string())));
            }
            ScalarValue::try_from_string(v.to_string(), t).or_else(|_| {
                // A value that does not parse as the key's type reads as NULL,
                // as Hive does.
                ScalarValue::try_from(t)
            })
        }
    }
}

/// Splits files into `n` groups of similar total size.
pub(crate) fn balanced_groups(mut files: Vec<PartitionedFile>, n: usize) -> Vec<FileGroup> {
    let n = n.max(1).min(files.len().max(1));
    files.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for f in files {
        let smallest = groups
            .iter_mut()
            .min_by_key(|(size, _)| *size)
            .expect("at least one group");
        smallest.0 += f.object_meta.size;
        smallest.1.push(f);
    }
    groups
        .into_iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|(_, g)| FileGroup::new(g))
        .collect()
}

#[async_trait::async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown(filters, &self.partition_fields))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Pending records are snapshotted before files are listed (see
        // crate::live).
        let pending = match &self.live {
            Some(live) => self.pending_records(live.as_ref()),
            None => Vec::new(),
        };
        let mut candidates = self.partition_locations().await?;
        let allowed = |values: &Vec<String>| {
            self.only_partitions
                .as_ref()
                .is_none_or(|only| only.contains(values))
        };
        candidates.retain(|d| allowed(&d.values));
        let mut live_partitions = Vec::new();
        for buffer in pending {
            let Some(values) = self.folder_values(&buffer.folder) else {
                continue;
            };
            if !allowed(&values) {
                continue;
            }
            let folder = with_slash(&buffer.folder);
            if !self.partition_fields.is_empty() && !candidates.iter().any(|d| d.values == values) {
                candidates.push(PartitionDir::new(
                    values.clone(),
                    folder.clone(),
                    &Default::default(),
                ));
            }
            live_partitions.push((values, buffer));
        }
        let locations = self.prune(state, filters, candidates)?;
        let files = self.files(locations.clone()).await?;
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let live_batches = self.live_batches(&locations, &files, live_partitions)?;
        let file_plan = self.file_plan(state, projection, limit, files).await?;
        if live_batches.is_empty() {
            return Ok(file_plan.unwrap_or_else(|| Arc::new(EmptyExec::new(projected))));
        }
        // Pending records travel inside the plan to the workers: more than
        // a few MiB of them and the query stays on the coordinator.
        let pending_bytes: usize = live_batches
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        if pending_bytes > MAX_SHIPPED_PENDING_BYTES {
            crate::stats::keep_on_coordinator(state);
        }
        let memory = MemorySourceConfig::try_new_exec(
            &[live_batches],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?;
        Ok(match file_plan {
            Some(plan) => UnionExec::try_new(vec![plan, memory])?,
            None => memory,
        })
    }
}

impl LakeTable {
    /// Records acknowledged for this table and not yet in objects: those of
    /// streams registering into it, and those of any stream writing under
    /// its location in its format (Parquet, or JSON lines with a JSON
    /// SerDe), each buffer once.
    fn pending_records(&self, live: &dyn crate::live::LiveSource) -> Vec<crate::live::LiveBuffer> {
        let mut pending = live.pending(&self.database, &self.table.name);
        let under = match &self.format {
            StorageFormat::Parquet => Some((true, false)),
            StorageFormat::Text(TextFormat {
                kind: TextKind::Json { serde, .. },
                ..
            }) => Some((false, serde.case_insensitive)),
            StorageFormat::Text(_) => None,
        };
        if let Some((parquet, lowercase)) = under {
            for mut buffer in live.pending_under(&self.location, parquet) {
                let seen = pending
                    .iter()
                    .any(|p| p.folder == buffer.folder && p.object_suffix == buffer.object_suffix);
                if !seen {
                    buffer.serde.case_insensitive |= lowercase;
                    pending.push(buffer);
                }
            }
        }
        pending
    }

    /// The pending records of partitions that survived pruning and whose
    /// objects the listing does not show yet, as batches of the table.
    fn live_batches(
        &self,
        locations: &[(PartitionDir, Vec<ScalarValue>)],
        files: &[(ObjectMeta, Vec<ScalarValue>)],
        live: Vec<(Vec<String>, crate::live::LiveBuffer)>,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for (_, buffer) in live {
            let folder = with_slash(&buffer.folder);
            // Its partition's folder, or one above it (objects may land in
            // sub-folders, which a scan lists too).
            let inside = folder.to_string();
            let Some((_, values)) = locations
                .iter()
                .find(|(d, _)| inside.starts_with(&with_slash(&d.home()).to_string()))
            else {
                continue;
            };
            let prefix = folder.object_path();
            let written = files.iter().any(|(meta, _)| {
                meta.location.as_ref().ends_with(&buffer.object_suffix)
                    && meta.location.prefix_matches(&prefix)
            });
            if written {
                continue;
            }
            let Some(data) = crate::live::decode(&buffer, &self.record_schema)? else {
                continue;
            };
            let mut columns: Vec<ArrayRef> = data
                .columns()
                .iter()
                .zip(self.file_schema.fields())
                .map(|(c, f)| cast(c, f.data_type()))
                .collect::<Result<_, _>>()?;
            for v in values {
                columns.push(v.to_array_of_size(data.num_rows())?);
            }
            out.push(RecordBatch::try_new(Arc::clone(&self.schema), columns)?);
        }
        Ok(out)
    }

    /// The scan of the listed files (`None` when there are none).
    async fn file_plan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
        files: Vec<(ObjectMeta, Vec<ScalarValue>)>,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if files.is_empty() {
            return Ok(None);
        }
        let target = state.config().target_partitions();
        match &self.format {
            StorageFormat::Parquet => parquet_plan(
                state,
                Arc::clone(self.storage.store()),
                ParquetColumns {
                    schema: &self.schema,
                    file_schema: &self.file_schema,
                    partition_fields: &self.partition_fields,
                },
                files,
                projection,
                limit,
            )
            .await
            .map(Some),
            StorageFormat::Text(format) => {
                let scan = TextScan::new(
                    Arc::clone(self.storage.store()),
                    format.clone(),
                    Arc::clone(&self.file_schema),
                    self.partition_fields.clone(),
                    files,
                    target,
                    crate::stats::scan_counter(state),
                );
                scan.into_plan(projection, limit).map(Some)
            }
        }
    }
}

/// The distinct partition folders of a table's files, relative to its
/// location: `k1=v1/k2=v2` for each file found under `key=value` folders
/// that name exactly the table's partition keys in order.
pub(crate) fn hive_partition_values(
    location: &Location,
    keys: &[String],
    files: &[ObjectMeta],
) -> Vec<(Vec<String>, String)> {
    let prefix = with_slash(location).object_path();
    let prefix = prefix.as_ref();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for f in files {
        let rel = f.location.as_ref();
        let Some(rel) = rel.strip_prefix(prefix) else {
            continue;
        };
        let segments: Vec<&str> = rel.trim_start_matches('/').split('/').collect();
        if segments.len() <= keys.len() {
            continue;
        }
        let mut values = Vec::new();
        for (seg, key) in segments.iter().zip(keys) {
            match partition_path::parse_segment(seg) {
                Some((k, v)) if k.eq_ignore_ascii_case(key) => {
                    values.push(v);
                }
                _ => break,
            }
        }
        if values.len() == keys.len() {
            let folder = segments[..keys.len()].join("/");
            if seen.insert(folder.clone()) {
                out.push((values, folder));
            }
        }
    }
    out
}
