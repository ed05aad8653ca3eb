//! DynamoDB exports applied to Delta tables: a full export (re)creates the
//! table, an incremental export is merged into it on the table's key
//! attributes, so the table equals the DynamoDB table as of the export's
//! end time. The exports themselves are read by
//! [`export`].
//!
//! The catalog table's parameters remember what was applied:
//! `lakehose.dynamodb.table_arn`, `lakehose.dynamodb.keys`,
//! `lakehose.dynamodb.as_of` (RFC 3339) / `lakehose.dynamodb.as_of_ms` and
//! `lakehose.dynamodb.export` (the last export's ARN). With them:
//!
//! - an export whose end time is not after the table's is skipped as
//!   already applied (applying twice changes nothing);
//! - an incremental export that starts after the table's time is refused:
//!   the changes in between are missing;
//! - an incremental export overlapping the table's time is applied: each
//!   record carries the item's whole new image, so the result is the table
//!   as of the export's end time;
//! - a full export newer than the table replaces it.
//!
//! Nothing is committed unless every data file checked out; a crash after
//! the Delta commit and before the catalog update leaves the old time in
//! the catalog, and running the import again re-applies the same images.

pub mod export;

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use self::export::convert::DELETED_COLUMN;
use self::export::schema::column_name;
use self::export::{Export, ExportKind, ImportProgress};
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::DataFusionError;
use datafusion::datasource::provider_as_source;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use futures::{StreamExt, TryStreamExt};
use lakehose_catalog::CatalogError;
use lakehose_catalog::model::Table;
use lakehose_query::QueryEngine;
use object_store::ObjectStoreExt;

use crate::error::{Error, Result, ResultExt};

/// The column holding each item's DynamoDB JSON, when kept.
pub(crate) const RAW_COLUMN: &str = "_item";

const TABLE_ARN: &str = "lakehose.dynamodb.table_arn";
const KEYS: &str = "lakehose.dynamodb.keys";
const AS_OF: &str = "lakehose.dynamodb.as_of";
const AS_OF_MS: &str = "lakehose.dynamodb.as_of_ms";
const LAST_EXPORT: &str = "lakehose.dynamodb.export";

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The catalog database.
    pub database: String,
    /// The table.
    pub table: String,
    /// The key attributes (partition key, then sort key); taken from the
    /// table or from incremental records when empty.
    pub keys: Vec<String>,
    /// Where the Delta table goes (default
    /// `s3://<warehouse>/dynamodb/<database>/<table>/`).
    pub location: Option<String>,
    /// Keep each item's DynamoDB JSON in [`RAW_COLUMN`] (full exports; an
    /// existing table keeps whatever it has).
    pub keep_raw: bool,
    /// Data files decoded at once.
    pub workers: usize,
}

impl ImportOptions {
    /// Options for `database.table`: keys from the table or the records,
    /// the default location, no raw column, one worker per core.
    pub fn new(database: &str, table: &str) -> Self {
        Self {
            database: database.to_string(),
            table: table.to_string(),
            keys: Vec::new(),
            location: None,
            keep_raw: false,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// The export's ARN.
    pub export_arn: String,
    /// `FULL` or `INCREMENTAL`.
    pub kind: String,
    /// Set when the export was already applied and nothing was done.
    pub skipped: Option<String>,
    /// Data files read.
    pub files: usize,
    /// Items (full) or change records (incremental) read.
    pub records: u64,
    /// Bytes of data files read (compressed).
    pub bytes: u64,
    /// Rows the table holds after a full import, or rows inserted,
    /// updated and deleted by an incremental one.
    pub rows_written: u64,
    /// Incremental: rows deleted.
    pub rows_deleted: u64,
    /// The Delta table version committed.
    pub table_version: Option<u64>,
    /// The table's time afterwards (RFC 3339).
    pub as_of: String,
    /// The same in ms since the epoch.
    pub as_of_ms: i64,
    /// `database.table`.
    pub table: String,
    /// The key attributes.
    pub keys: Vec<String>,
    /// The columns, name and type.
    pub columns: Vec<(String, String)>,
    /// Seconds of the first pass (checks, schema inference).
    pub scan_seconds: f64,
    /// Seconds of the second pass and the Delta commit.
    pub write_seconds: f64,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(reason) = &self.skipped {
            return write!(f, "{}: skipped {}: {reason}", self.table, self.export_arn);
        }
        write!(
            f,
            "{}: {} export applied, {} records from {} files ({:.1} MiB), {} rows {}, as of {} (Delta version {})",
            self.table,
            self.kind.to_ascii_lowercase(),
            self.records,
            self.files,
            self.bytes as f64 / (1024.0 * 1024.0),
            self.rows_written,
            if self.kind == "FULL" {
                "written".to_string()
            } else {
                format!("changed ({} deleted)", self.rows_deleted)
            },
            self.as_of,
            self.table_version
                .map_or("-".to_string(), |v| v.to_string()),
        )
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// What the catalog says about a table imported before.
struct Existing {
    location: String,
    as_of_ms: i64,
    keys: Vec<String>,
    table_arn: Option<String>,
    last_export: Option<String>,
}

fn existing(database: &str, name: &str, table: &Table) -> Result<Existing> {
    let p = &table.parameters;
    let Some(as_of_ms) = p.get(AS_OF_MS).and_then(|v| v.parse::<i64>().ok()) else {
        return Err(Error::invalid(format!(
            "{database}.{name} exists and was not imported from DynamoDB; choose another --table"
        )));
    };
    Ok(Existing {
        location: table
            .storage_descriptor
            .as_ref()
            .and_then(|sd| sd.location.clone())
            .ok_or_else(|| Error::invalid(format!("{database}.{name} has no location")))?,
        as_of_ms,
        keys: p
            .get(KEYS)
            .map(|k| {
                k.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        table_arn: p.get(TABLE_ARN).cloned(),
        last_export: p.get(LAST_EXPORT).cloned(),
    })
}

/// Applies `export` to the table `opts` names.
pub async fn import(
    engine: &QueryEngine,
    export: Export,
    opts: &ImportOptions,
    progress: Arc<dyn ImportProgress>,
) -> Result<ImportReport> {
    let catalog = engine.catalog();
    let summary = export.summary.clone();
    let kind = summary.kind;
    let mut report = ImportReport {
        export_arn: summary.export_arn.clone(),
        kind: match kind {
            ExportKind::Full => "FULL".into(),
            ExportKind::Incremental => "INCREMENTAL".into(),
        },
        files: export.files.len(),
        table: format!("{}.{}", opts.database, opts.table),
        ..Default::default()
    };
    let before = match catalog.get_table(&opts.database, &opts.table).await {
        Ok(t) => Some(existing(&opts.database, &opts.table, &t)?),
        Err(CatalogError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };

    // Where the export stands against the table.
    if let Some(b) = &before {
        report.as_of = rfc3339(b.as_of_ms);
        report.as_of_ms = b.as_of_ms;
        if let (Some(ours), Some(theirs)) = (&b.table_arn, &summary.table_arn)
            && ours != theirs
        {
            return Err(Error::invalid(format!(
                "{} holds DynamoDB table {ours}; this export is of {theirs}",
                report.table
            )));
        }
        if summary.as_of_ms <= b.as_of_ms {
            let same = b.last_export.as_deref() == Some(summary.export_arn.as_str());
            report.skipped = Some(if same {
                "this export is the last one applied".into()
            } else {
                format!(
                    "the table is already as of {}, not before this export's {}",
                    rfc3339(b.as_of_ms),
                    rfc3339(summary.as_of_ms)
                )
            });
            return Ok(report);
        }
        if let Some(from) = summary.from_ms
            && from > b.as_of_ms
        {
            return Err(Error::invalid(format!(
                "{} is as of {} but this incremental export starts at {}: apply the exports covering the time in between first",
                report.table,
                rfc3339(b.as_of_ms),
                rfc3339(from)
            )));
        }
    } else if kind == ExportKind::Incremental {
        return Err(Error::invalid(format!(
            "{} does not exist: import a full export of the table first, then its incremental exports",
            report.table
        )));
    }

    let mut keys = if opts.keys.is_empty() {
        before.as_ref().map(|b| b.keys.clone()).unwrap_or_default()
    } else {
        opts.keys.clone()
    };
    if let Some(b) = &before
        && !b.keys.is_empty()
        && !opts.keys.is_empty()
        && b.keys != opts.keys
    {
        return Err(Error::invalid(format!(
            "{} has key attributes {:?}, not {:?}",
            report.table, b.keys, opts.keys
        )));
    }

    let workers = opts.workers.max(1);
    let started = std::time::Instant::now();
    let keep_raw = match &before {
        // An existing table keeps its raw column or its lack of one.
        Some(_) if kind == ExportKind::Incremental => false,
        _ => opts.keep_raw,
    };
    let scan = export::scan(&export, &keys, keep_raw, workers, progress.as_ref()).await?;
    report.scan_seconds = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    if let Some(found) = &scan.keys {
        if !keys.is_empty() && sorted(&keys) != sorted(found) {
            return Err(Error::invalid(format!(
                "the export's records are keyed by {found:?}, the table by {keys:?}"
            )));
        }
        if keys.is_empty() {
            keys = found.clone();
        }
    }
    report.records = scan.records;
    report.bytes = scan.bytes;
    report.keys = keys.clone();
    let columns = scan
        .sketch
        .columns(&keys)
        .map_err(|message| Error::Export {
            export: export.dir.to_string(),
            message,
        })?;

    let location = match &before {
        Some(b) => b.location.clone(),
        None => opts.location.clone().unwrap_or_else(|| {
            format!(
                "s3://{}/dynamodb/{}/{}/",
                engine.config().warehouse_bucket,
                opts.database,
                opts.table
            )
        }),
    };
    let table = crate::delta::open_or_new(engine.storage(), &location).await?;
    let commit = CommitProperties::default().with_metadata([
        (
            "lakehose.dynamodb.export".to_string(),
            serde_json::json!(summary.export_arn),
        ),
        (
            "lakehose.dynamodb.as_of".to_string(),
            serde_json::json!(rfc3339(summary.as_of_ms)),
        ),
    ]);
    let props = lakehose_catalog::parquet_writer::default_writer_properties();
    let export = Arc::new(export);
    let scan = Arc::new(scan);
    // An incremental export keeps the table's raw column, if it has one.
    let target = match kind {
        ExportKind::Full => None,
        ExportKind::Incremental => Some(
            table
                .snapshot()
                .with_context(|| format!("reading {}", report.table))?
                .snapshot()
                .arrow_schema(),
        ),
    };
    let raw = match &target {
        None => opts.keep_raw,
        Some(t) => t.field_with_name(RAW_COLUMN).is_ok(),
    };
    let schema = export::output_schema(&columns, raw.then_some(RAW_COLUMN), kind);
    let batches = export::convert(
        Arc::clone(&export),
        Arc::clone(&scan),
        Arc::new(columns),
        Arc::clone(&schema),
        raw,
        workers,
        Arc::clone(&progress),
    );
    let table = match target {
        None => {
            let plan = LogicalPlanBuilder::scan(
                "dynamodb_export",
                provider_as_source(Arc::new(StreamingTable::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(OnePass::new(Arc::clone(&schema), batches))],
                )?)),
                None,
            )
            .and_then(|b| b.build())?;
            let exists = table.version().is_some();
            let mut write = table
                .write(Vec::new())
                .with_input_plan(plan)
                .with_save_mode(SaveMode::Overwrite)
                .with_writer_properties(props)
                .with_target_file_size(NonZeroU64::new(128 * 1024 * 1024))
                .with_commit_properties(commit)
                .with_table_name(opts.table.clone());
            if exists {
                write = write.with_schema_mode(SchemaMode::Overwrite);
            }
            let table = write
                .await
                .with_context(|| format!("writing {}", report.table))?;
            report.rows_written = scan.records;
            table
        }
        Some(target) => {
            let batches: Vec<RecordBatch> = batches.try_collect().await?;
            let batches = conform(batches, &schema, &target)?;
            let table = match batches.first() {
                Some(b) => add_columns(table, &b.schema(), &target).await?,
                None => table,
            };
            if batches.iter().all(|b| b.num_rows() == 0) {
                report.rows_written = 0;
                table
            } else {
                let (table, metrics) = merge(table, batches, &keys, commit, props).await?;
                report.rows_written = (metrics.0 + metrics.1 + metrics.2) as u64;
                report.rows_deleted = metrics.2 as u64;
                table
            }
        }
    };
    report.write_seconds = started.elapsed().as_secs_f64();
    report.table_version = table.version();
    report.as_of = rfc3339(summary.as_of_ms);
    report.as_of_ms = summary.as_of_ms;
    let mut parameters = BTreeMap::new();
    parameters.insert(AS_OF_MS.to_string(), summary.as_of_ms.to_string());
    parameters.insert(AS_OF.to_string(), report.as_of.clone());
    parameters.insert(LAST_EXPORT.to_string(), summary.export_arn.clone());
    parameters.insert(KEYS.to_string(), keys.join(","));
    if let Some(arn) = summary
        .table_arn
        .clone()
        .or_else(|| before.as_ref().and_then(|b| b.table_arn.clone()))
    {
        parameters.insert(TABLE_ARN.to_string(), arn);
    }
    crate::delta::register(
        catalog,
        crate::delta::Registration {
            database: &opts.database,
            name: &opts.table,
            location: &location,
            description: summary
                .table_arn
                .as_ref()
                .map(|arn| format!("DynamoDB table {arn}")),
            parameters,
            owner_key: TABLE_ARN,
        },
        &table,
    )
    .await?;
    if let Ok(state) = table.snapshot() {
        report.columns = state
            .snapshot()
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| {
                let t = lakehose_query::types::arrow_to_hive(f.data_type())
                    .unwrap_or_else(|_| f.data_type().to_string());
                (f.name().clone(), t)
            })
            .collect();
    }
    Ok(report)
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut out: Vec<&String> = v.iter().collect();
    out.sort();
    out
}

/// Incremental batches in the table's terms: each column the table has is
/// cast to the table's type (a value that does not fit is an error), the
/// table's columns this export lacks are NULL (the new image has no such
/// attribute), new columns are added after them.
fn conform(
    batches: Vec<RecordBatch>,
    schema: &SchemaRef,
    target: &Schema,
) -> Result<Vec<RecordBatch>> {
    let mut fields: Vec<Field> = Vec::new();
    for f in target.fields() {
        fields.push(f.as_ref().clone().with_nullable(true));
    }
    for f in schema.fields() {
        if target.field_with_name(f.name()).is_err() {
            fields.push(f.as_ref().clone());
        }
    }
    let out_schema = Arc::new(Schema::new(fields));
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    batches
        .into_iter()
        .map(|b| {
            let columns = out_schema
                .fields()
                .iter()
                .map(|f| -> Result<ArrayRef> {
                    match schema.index_of(f.name()) {
                        Ok(i) if b.column(i).data_type() == f.data_type() => {
                            Ok(Arc::clone(b.column(i)))
                        }
                        Ok(i) => cast_with_options(b.column(i), f.data_type(), &options).map_err(
                            |e| {
                                Error::invalid(format!(
                                    "column {:?}: this export's {} values do not fit the table's {} column ({e}); import a new full export instead",
                                    f.name(),
                                    b.column(i).data_type(),
                                    f.data_type()
                                ))
                            },
                        ),
                        Err(_) => Ok(new_null_array(f.data_type(), b.num_rows())),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(Arc::clone(&out_schema), columns)?)
        })
        .collect()
}

/// Adds the columns of `source` the table lacks (attributes new in an
/// incremental export), in a commit of their own before the merge.
async fn add_columns(table: DeltaTable, source: &SchemaRef, target: &Schema) -> Result<DeltaTable> {
    let fields: Vec<Field> = source
        .fields()
        .iter()
        .filter(|f| f.name() != DELETED_COLUMN)
        .map(|f| f.as_ref().clone())
        .collect();
    if fields
        .iter()
        .all(|f| target.field_with_name(f.name()).is_ok())
    {
        return Ok(table);
    }
    let schema = Arc::new(Schema::new(fields));
    table
        .write(vec![RecordBatch::new_empty(schema)])
        .with_save_mode(SaveMode::Append)
        .with_schema_mode(SchemaMode::Merge)
        .await
        .context("adding the export's new attributes as columns")
}

/// MERGE of change records into the table on `keys`: deletes, updates of
/// every column, inserts. Returns (inserted, updated, deleted).
async fn merge(
    table: DeltaTable,
    batches: Vec<RecordBatch>,
    keys: &[String],
    commit: CommitProperties,
    props: WriterProperties,
) -> Result<(DeltaTable, (usize, usize, usize))> {
    let schema = batches[0].schema();
    let ctx = datafusion::prelude::SessionContext::new();
    let source = ctx.read_batches(batches)?;
    let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
    let predicate = keys
        .iter()
        .map(|k| {
            let c = quote(&column_name(k));
            format!("target.{c} = source.{c}")
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let deleted = format!("source.{}", quote(DELETED_COLUMN));
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != DELETED_COLUMN)
        .collect();
    let (table, metrics) = table
        .merge(source, predicate)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_writer_properties(props)
        .with_commit_properties(commit)
        .when_matched_delete(|d| d.predicate(deleted.as_str()))
        .and_then(|m| {
            m.when_matched_update(|mut u| {
                for c in &columns {
                    u = u.update(quote(c), format!("source.{}", quote(c)));
                }
                u
            })
        })
        .and_then(|m| {
            m.when_not_matched_insert(|mut i| {
                i = i.predicate(format!("NOT {deleted}"));
                for c in &columns {
                    i = i.set(quote(c), format!("source.{}", quote(c)));
                }
                i
            })
        })?
        .await
        .context("merging the changes")?;
    Ok((
        table,
        (
            metrics.num_target_rows_inserted,
            metrics.num_target_rows_updated,
            metrics.num_target_rows_deleted,
        ),
    ))
}

type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

/// The second pass as the one partition of a streaming table, read once.
struct OnePass {
    schema: SchemaRef,
    stream: Mutex<Option<BatchStream>>,
}

impl OnePass {
    fn new(
        schema: SchemaRef,
        stream: impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static,
    ) -> Self {
        Self {
            schema,
            stream: Mutex::new(Some(stream.boxed())),
        }
    }
}

impl fmt::Debug for OnePass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnePass")
    }
}

impl PartitionStream for OnePass {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut s| s.take());
        let stream: BatchStream = match taken {
            Some(s) => s,
            None => futures::stream::once(async {
                Err(Error::invalid("the export's rows can be read only once"))
            })
            .boxed(),
        };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream.map(|r| r.map_err(|e| DataFusionError::External(Box::new(e)))),
        ))
    }
}

/// The export folders at or under `path`: the folder itself when it holds
/// a `manifest-summary.json`, else every `.../AWSDynamoDB/<export-id>/`
/// below it.
pub async fn find_exports(
    store: &Arc<dyn object_store::ObjectStore>,
    path: &object_store::path::Path,
) -> Result<Vec<object_store::path::Path>> {
    const SUMMARY: &str = "manifest-summary.json";
    match store.head(&path.clone().join(SUMMARY)).await {
        Ok(_) => return Ok(vec![path.clone()]),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(Error::from(e).context(format!("reading {path}"))),
    }
    let mut found: Vec<object_store::path::Path> = store
        .list(Some(path))
        .map_err(|e| Error::from(e).context(format!("listing {path}")))
        .try_filter_map(|meta| async move {
            let key = meta.location.as_ref();
            Ok(key
                .strip_suffix(&format!("/{SUMMARY}"))
                .filter(|dir| dir.contains("AWSDynamoDB/"))
                .map(object_store::path::Path::from))
        })
        .try_collect()
        .await?;
    found.sort();
    Ok(found)
}

/// Applies what the table has not seen of the exports at or under `path`:
/// the newest full export after the table's time (if any), then each
/// incremental export after that, in order. One export folder is applied
/// (or skipped as already applied) on its own.
pub async fn import_new(
    engine: &QueryEngine,
    store: Arc<dyn object_store::ObjectStore>,
    path: &object_store::path::Path,
    opts: &ImportOptions,
    progress: Arc<dyn ImportProgress>,
) -> Result<Vec<ImportReport>> {
    let dirs = find_exports(&store, path).await?;
    if dirs.is_empty() {
        return Err(Error::invalid(format!(
            "no DynamoDB export (.../AWSDynamoDB/<export-id>/manifest-summary.json) at or under {path}"
        )));
    }
    let mut exports = Vec::with_capacity(dirs.len());
    for dir in dirs {
        exports.push(Export::open(Arc::clone(&store), dir).await?);
    }
    if exports.len() == 1 {
        let export = exports.remove(0);
        return Ok(vec![import(engine, export, opts, progress).await?]);
    }
    let as_of = match engine
        .catalog()
        .get_table(&opts.database, &opts.table)
        .await
    {
        Ok(t) => Some(existing(&opts.database, &opts.table, &t)?.as_of_ms),
        Err(CatalogError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let (mut fulls, mut incrementals): (Vec<Export>, Vec<Export>) = exports
        .into_iter()
        .partition(|e| e.summary.kind == ExportKind::Full);
    fulls.sort_by_key(|e| e.summary.as_of_ms);
    incrementals.sort_by_key(|e| (e.summary.from_ms, e.summary.as_of_ms));
    let mut current = as_of;
    let mut reports = Vec::new();
    if let Some(full) = fulls.pop()
        && current.is_none_or(|t| full.summary.as_of_ms > t)
    {
        let report = import(engine, full, opts, Arc::clone(&progress)).await?;
        current = Some(report.as_of_ms);
        reports.push(report);
    }
    if current.is_none() {
        return Err(Error::invalid(format!(
            "{}.{} does not exist and there is no full export under {path} to start it from",
            opts.database, opts.table
        )));
    }
    for export in incrementals {
        if current.is_some_and(|t| export.summary.as_of_ms <= t) {
            continue;
        }
        let report = import(engine, export, opts, Arc::clone(&progress)).await?;
        current = Some(report.as_of_ms);
        reports.push(report);
    }
    Ok(reports)
}
