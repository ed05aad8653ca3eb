//! Statements that write files: `CREATE TABLE AS SELECT`, `INSERT INTO`
//! and `UNLOAD`.
//!
//! The query's rows are streamed into one writer per output partition
//! (Hive `key=value` folders, partition columns last in the SELECT, as
//! Athena requires), rolled over every ~128 MiB of encoded data. Files are
//! written under new unique names; only when all are written is the table
//! or its new partitions registered, and on failure the files written so
//! far are removed — readers never see half a statement's output.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, new_null_array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, GzipLevel};
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use lakehose_catalog::model::{Column, StorageDescriptor, Table, formats};
use lakehose_catalog::partition_path;
use lakehose_catalog::{CatalogError, Location};
use object_store::ObjectStoreExt;
use object_store::PutPayload;

use crate::contract::{
    Privilege, QueryError, QueryErrorKind, QueryOutput, Securable, StatementType, TableAccess,
    require,
};
use crate::ddl::{Name, WithValue};
use crate::engine::{QueryEngine, Run};
use crate::error::{ErrorCode, classify};
use crate::glue::{database_of, folder_location, get_table, partition, table_location};
use crate::stats::{QueryStats, scanned_bytes};
use crate::table::{HIVE_NULL_PARTITION, StorageFormat, list_data_files};
use crate::text::TextKind;
use crate::types::{arrow_to_hive, storable};

const ROLL_BYTES: usize = 128 << 20;

fn semantic(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Semantic, message)
}

/// The file format written.
#[derive(Debug, Clone)]
pub enum OutputFormat {
    /// Parquet with a codec.
    Parquet(Compression),
    /// JSON lines, gzip'd.
    Json,
    /// Delimited text, gzip'd.
    Text(String),
}

impl OutputFormat {
    fn extension(&self) -> &'static str {
        match self {
            Self::Parquet(_) => "parquet",
            Self::Json => "json.gz",
            Self::Text(_) => "gz",
        }
    }

    /// How the catalog describes files of this format under `location`,
    /// and the table's `classification`.
    fn storage(&self, location: String, columns: Vec<Column>) -> (StorageDescriptor, &'static str) {
        match self {
            Self::Parquet(_) => (StorageDescriptor::parquet(location, columns), "parquet"),
            Self::Json => (
                StorageDescriptor::text(location, columns, formats::JSON_SERDE, Default::default()),
                "json",
            ),
            Self::Text(d) => (
                StorageDescriptor::text(
                    location,
                    columns,
                    formats::LAZY_SIMPLE_SERDE,
                    [
                        ("field.delim".to_string(), d.clone()),
                        ("serialization.format".to_string(), d.clone()),
                    ]
                    .into(),
                ),
                "",
            ),
        }
    }
}

fn compression(name: Option<&str>, default: Compression) -> Result<Compression, QueryError> {
    Ok(match name.map(str::to_ascii_uppercase).as_deref() {
        None => default,
        Some("ZSTD") => lakehose_catalog::parquet_writer::default_codec(),
        Some("SNAPPY") => Compression::SNAPPY,
        Some("GZIP") => Compression::GZIP(GzipLevel::default()),
        Some("NONE") | Some("UNCOMPRESSED") => Compression::UNCOMPRESSED,
        Some(other) => {
            return Err(semantic(format!(
                "write_compression {other} is not supported for Parquet (ZSTD, SNAPPY, GZIP, NONE)"
            )));
        }
    })
}

struct Options {
    format: OutputFormat,
    partitioned_by: Vec<String>,
    location: Option<String>,
}

fn options(
    with: &[(String, WithValue)],
    default_parquet: Compression,
    what: &str,
) -> Result<Options, QueryError> {
    let text = |key: &str| -> Result<Option<String>, QueryError> {
        match with.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            None => Ok(None),
            Some((_, WithValue::Text(t))) => Ok(Some(t.clone())),
            Some((_, WithValue::List(_))) => {
                Err(semantic(format!("{key} must be a string, not an ARRAY")))
            }
        }
    };
    let known = [
        "format",
        "external_location",
        "location",
        "partitioned_by",
        "write_compression",
        "parquet_compression",
        "compression",
        "field_delimiter",
        "is_external",
        "table_type",
        "compression_level",
    ];
    if let Some((k, _)) = with
        .iter()
        .find(|(k, _)| !known.contains(&k.to_ascii_lowercase().as_str()))
    {
        return Err(semantic(format!("{what} property {k} is not supported")));
    }
    if let Some(t) = text("table_type")?
        && !t.eq_ignore_ascii_case("hive")
    {
        return Err(semantic(format!(
            "table_type {t} is not supported by {what}; lakehose writes Hive-style tables (Delta tables come from ETL jobs)"
        )));
    }
    let codec = text("write_compression")?
        .or(text("parquet_compression")?)
        .or(text("compression")?);
    let format = match text("format")?.map(|f| f.to_ascii_uppercase()).as_deref() {
        None | Some("PARQUET") => {
            OutputFormat::Parquet(compression(codec.as_deref(), default_parquet)?)
        }
        Some("JSON") => OutputFormat::Json,
        Some("TEXTFILE") => {
            OutputFormat::Text(text("field_delimiter")?.unwrap_or_else(|| "\u{1}".into()))
        }
        Some(other) => {
            return Err(semantic(format!(
                "format {other} is not supported; lakehose writes PARQUET, JSON and TEXTFILE"
            )));
        }
    };
    let partitioned_by = match with
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("partitioned_by"))
    {
        None => Vec::new(),
        Some((_, WithValue::List(l))) => l.clone(),
        Some((_, WithValue::Text(_))) => {
            return Err(semantic("partitioned_by must be an ARRAY['col', ...]"));
        }
    };
    Ok(Options {
        format,
        partitioned_by,
        location: text("external_location")?.or(text("location")?),
    })
}

/// What a write produced.
#[derive(Debug, Default)]
struct Written {
    rows: u64,
    files: Vec<object_store::path::Path>,
    partitions: Vec<Vec<String>>,
    bytes_scanned: u64,
}

struct PartWriter {
    folder: String,
    values: Vec<String>,
    format: OutputFormat,
    schema: SchemaRef,
    parquet: Option<ArrowWriter<Vec<u8>>>,
    text: Option<flate2::write::GzEncoder<Vec<u8>>>,
    buffered: usize,
}

impl PartWriter {
    fn new(folder: String, values: Vec<String>, format: OutputFormat, schema: SchemaRef) -> Self {
        Self {
            folder,
            values,
            format,
            schema,
            parquet: None,
            text: None,
            buffered: 0,
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let internal = |e: String| QueryError::new(QueryErrorKind::Internal, e);
        match &self.format {
            OutputFormat::Parquet(codec) => {
                if self.parquet.is_none() {
                    let props = lakehose_catalog::parquet_writer::writer_properties(*codec).build();
                    self.parquet = Some(
                        ArrowWriter::try_new(Vec::new(), Arc::clone(&self.schema), Some(props))
                            .map_err(|e| internal(e.to_string()))?,
                    );
                }
                let w = self.parquet.as_mut().expect("created above");
                w.write(batch).map_err(|e| internal(e.to_string()))?;
                self.buffered = w.bytes_written() + w.in_progress_size();
            }
            OutputFormat::Json => {
                let w = self.text.get_or_insert_with(|| {
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default())
                });
                let mut lines = datafusion::arrow::json::LineDelimitedWriter::new(Vec::new());
                lines.write(batch).map_err(|e| internal(e.to_string()))?;
                lines.finish().map_err(|e| internal(e.to_string()))?;
                let bytes = lines.into_inner();
                w.write_all(&bytes).map_err(|e| internal(e.to_string()))?;
                self.buffered += bytes.len() / 4;
            }
            OutputFormat::Text(delimiter) => {
                let w = self.text.get_or_insert_with(|| {
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default())
                });
                let options = FormatOptions::default().with_null("\\N");
                let formatters = batch
                    .columns()
                    .iter()
                    .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| internal(e.to_string()))?;
                let mut out = String::new();
                for row in 0..batch.num_rows() {
                    for (i, f) in formatters.iter().enumerate() {
                        if i > 0 {
                            out.push_str(delimiter);
                        }
                        out.push_str(&f.value(row).to_string());
                    }
                    out.push('\n');
                }
                w.write_all(out.as_bytes())
                    .map_err(|e| internal(e.to_string()))?;
                self.buffered += out.len() / 4;
            }
        }
        Ok(())
    }

    /// The encoded file so far, if any, resetting the writer.
    fn finish(&mut self) -> Result<Option<Vec<u8>>, QueryError> {
        let internal = |e: String| QueryError::new(QueryErrorKind::Internal, e);
        self.buffered = 0;
        if let Some(w) = self.parquet.take() {
            return Ok(Some(w.into_inner().map_err(|e| internal(e.to_string()))?));
        }
        if let Some(w) = self.text.take() {
            return Ok(Some(w.finish().map_err(|e| internal(e.to_string()))?));
        }
        Ok(None)
    }
}

/// Streams `query` into files under `location`.
#[allow(clippy::too_many_arguments)]
async fn write_query(
    engine: &QueryEngine,
    access: Option<&Arc<dyn TableAccess>>,
    database: &str,
    query: &str,
    location: &Location,
    format: &OutputFormat,
    partition_keys: &[String],
    target: Option<(&str, &[Field])>,
    column_map: Option<&[Option<usize>]>,
) -> Result<(Written, SchemaRef), QueryError> {
    let stats = Arc::new(QueryStats::default());
    let ctx = engine
        .context_as(database, Arc::clone(&stats), access.cloned())
        .map_err(classify)?;
    let plan = crate::plan::plan_query(&ctx, query).await?;
    let physical = engine.physical(&ctx, &plan).await.map_err(classify)?;
    let source_schema = physical.schema();
    // The schema written: the target's (INSERT) or the query's with
    // storable types (CTAS, UNLOAD).
    if let Some((table, fields)) = target {
        let expected = column_map
            .map(|m| m.iter().filter(|c| c.is_some()).count())
            .unwrap_or(fields.len());
        let width = source_schema.fields().len();
        if width != expected {
            return Err(semantic(format!(
                "Insert query has {width} columns but {table} expects {expected}"
            )));
        }
    }
    let out_fields: Vec<Field> = match target {
        Some((_, fields)) => fields.to_vec(),
        None => source_schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name().to_ascii_lowercase(), storable(f.data_type()), true))
            .collect(),
    };
    let mut names = std::collections::HashSet::new();
    for f in &out_fields {
        if !names.insert(f.name().clone()) {
            return Err(semantic(format!(
                "Column name {} is used twice in the query's output; give each column a unique alias",
                f.name()
            )));
        }
    }
    let key_count = partition_keys.len();
    if key_count > 0 {
        let tail: Vec<&str> = out_fields[out_fields.len().saturating_sub(key_count)..]
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if out_fields.len() <= key_count
            || tail
                != partition_keys
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
        {
            return Err(semantic(format!(
                "The partition columns ({}) must be the last columns of the SELECT, in that order",
                partition_keys.join(", ")
            )));
        }
    }
    let data_fields = out_fields[..out_fields.len() - key_count].to_vec();
    let data_schema = Arc::new(Schema::new(data_fields.clone()));
    let out_schema = Arc::new(Schema::new(out_fields.clone()));
    let stamp = chrono::Utc::now().format("%Y%m%d_%H%M%S");
    let prefix = format!("{stamp}_{}", uuid::Uuid::new_v4().simple());
    let store = Arc::clone(engine.storage().store());
    let base = location.object_path();
    let mut written = Written::default();
    let mut writers: HashMap<Vec<String>, PartWriter> = HashMap::new();
    let mut seq = 0usize;

    let result: Result<(), QueryError> = async {
        let mut stream = execute_stream(Arc::clone(&physical), ctx.task_ctx()).map_err(classify)?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(classify)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = conform(&batch, &out_schema, column_map)?;
            written.rows += batch.num_rows() as u64;
            let groups = split(&batch, key_count)?;
            for (values, indices) in groups {
                let part = if indices.len() == batch.num_rows() {
                    batch.clone()
                } else {
                    let idx = UInt32Array::from(indices);
                    let cols = batch
                        .columns()
                        .iter()
                        .map(|c| take(c.as_ref(), &idx, None))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
                    RecordBatch::try_new(Arc::clone(&out_schema), cols)
                        .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?
                };
                let data = RecordBatch::try_new(
                    Arc::clone(&data_schema),
                    part.columns()[..data_fields.len()].to_vec(),
                )
                .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
                let writer = writers.entry(values.clone()).or_insert_with(|| {
                    let folder = partition_path::folder(
                        partition_keys
                            .iter()
                            .map(String::as_str)
                            .zip(values.iter().map(String::as_str)),
                    );
                    PartWriter::new(
                        folder,
                        values.clone(),
                        format.clone(),
                        Arc::clone(&data_schema),
                    )
                });
                writer.write(&data)?;
                if writer.buffered >= ROLL_BYTES
                    && let Some(bytes) = writer.finish()?
                {
                    let path = output_path(&base, &writer.folder, &prefix, seq, format.extension());
                    seq += 1;
                    store
                        .put(&path, PutPayload::from(Bytes::from(bytes)))
                        .await
                        .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
                    written.files.push(path);
                }
            }
        }
        let mut all: Vec<_> = writers.drain().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, mut writer) in all {
            if let Some(bytes) = writer.finish()? {
                let path = output_path(&base, &writer.folder, &prefix, seq, format.extension());
                seq += 1;
                store
                    .put(&path, PutPayload::from(Bytes::from(bytes)))
                    .await
                    .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
                written.files.push(path);
            }
            if key_count > 0 {
                written.partitions.push(writer.values.clone());
            }
        }
        Ok(())
    }
    .await;
    written.bytes_scanned = scanned_bytes(&physical) + stats.text_bytes.load(Ordering::Relaxed);
    if let Err(e) = result {
        remove(engine, &written.files).await;
        return Err(e);
    }
    Ok((written, out_schema))
}

/// `<base>/<folder>/<prefix>_<seq>.<ext>`.
fn output_path(
    base: &object_store::path::Path,
    folder: &str,
    prefix: &str,
    seq: usize,
    ext: &str,
) -> object_store::path::Path {
    let mut path = base.clone();
    for part in folder.split('/').filter(|p| !p.is_empty()) {
        path = path.join(part);
    }
    path.join(format!("{prefix}_{seq:05}.{ext}"))
}

async fn remove(engine: &QueryEngine, files: &[object_store::path::Path]) {
    for f in files {
        if let Err(e) = engine.storage().store().delete(f).await {
            tracing::warn!("could not remove {f} after a failed write: {e}");
        }
    }
}

/// Casts a query batch to the written schema (by position), filling
/// unlisted INSERT columns with NULLs.
fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    column_map: Option<&[Option<usize>]>,
) -> Result<RecordBatch, QueryError> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let source = match column_map {
            Some(map) => map[i],
            None => Some(i),
        };
        let array: ArrayRef = match source {
            None => new_null_array(field.data_type(), batch.num_rows()),
            Some(j) => {
                let c = batch.column(j);
                if c.data_type() == field.data_type() {
                    Arc::clone(c)
                } else {
                    cast(c.as_ref(), field.data_type()).map_err(|e| {
                        QueryError::new(
                            QueryErrorKind::Data,
                            format!(
                                "Column {} ({}) cannot be written as {}: {e}",
                                field.name(),
                                c.data_type(),
                                field.data_type()
                            ),
                        )
                    })?
                }
            }
        };
        let array = match lakehose_catalog::hive::HiveType::of_field(field) {
            Some(t) => fit_length(&array, &t, field.name())?,
            None => array,
        };
        columns.push(array);
    }
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))
}

/// Brings text to a `varchar(n)`/`char(n)` column as Trino does on
/// INSERT: trailing spaces past `n` are dropped, other characters past
/// `n` fail the statement, and `char(n)` values are padded with spaces.
fn fit_length(
    array: &ArrayRef,
    t: &lakehose_catalog::hive::HiveType,
    column: &str,
) -> Result<ArrayRef, QueryError> {
    use datafusion::arrow::array::{AsArray, StringArray};
    use lakehose_catalog::hive::HiveType;
    let (n, pad) = match t {
        HiveType::Varchar(n) => (*n as usize, false),
        HiveType::Char(n) => (*n as usize, true),
        _ => return Ok(Arc::clone(array)),
    };
    let text = cast(array.as_ref(), &DataType::Utf8)
        .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
    let mut out = Vec::with_capacity(text.len());
    for v in text.as_string::<i32>().iter() {
        let Some(v) = v else {
            out.push(None);
            continue;
        };
        let cut = v.char_indices().nth(n).map_or(v.len(), |(at, _)| at);
        let (head, tail) = v.split_at(cut);
        if !tail.chars().all(|c| c == ' ') {
            return Err(QueryError::new(
                QueryErrorKind::Data,
                format!(
                    "Cannot truncate non-space characters when writing a value of {} characters to column {column} ({t})",
                    v.chars().count()
                ),
            ));
        }
        let mut owned = head.to_string();
        if pad {
            let chars = head.chars().count();
            owned.extend(std::iter::repeat_n(' ', n - chars));
        }
        out.push(Some(owned));
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// Partition values and the indices of the rows that have them.
type RowGroup = (Vec<String>, Vec<u32>);

/// Row indices of a batch grouped by the values of its last `keys`
/// columns.
fn split(batch: &RecordBatch, keys: usize) -> Result<Vec<RowGroup>, QueryError> {
    if keys == 0 {
        return Ok(vec![(Vec::new(), (0..batch.num_rows() as u32).collect())]);
    }
    let n = batch.num_columns();
    let options = FormatOptions::default();
    let key_columns: Vec<&ArrayRef> = batch.columns()[n - keys..].iter().collect();
    let formatters = key_columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
    let mut groups: HashMap<Vec<String>, Vec<u32>> = HashMap::new();
    let mut order = Vec::new();
    for row in 0..batch.num_rows() {
        let values: Vec<String> = key_columns
            .iter()
            .zip(&formatters)
            .map(|(c, f)| {
                if c.is_null(row) {
                    HIVE_NULL_PARTITION.to_string()
                } else {
                    f.value(row).to_string()
                }
            })
            .collect();
        let entry = groups.entry(values.clone()).or_insert_with(|| {
            order.push(values);
            Vec::new()
        });
        entry.push(row as u32);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = groups.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect())
}

fn rows_output(substatement: &str, rows: u64, bytes_scanned: u64) -> QueryOutput {
    QueryOutput {
        statement_type: StatementType::Dml,
        substatement_type: substatement.into(),
        schema: Arc::new(Schema::new(vec![Field::new("rows", DataType::Int64, true)])),
        batches: Vec::new(),
        update_count: Some(rows),
        bytes_scanned,
    }
}

async fn ensure_empty(
    engine: &QueryEngine,
    location: &Location,
    what: &str,
) -> Result<(), QueryError> {
    let files = list_data_files(engine.storage().store(), location)
        .await
        .map_err(classify)?;
    if !files.is_empty() {
        return Err(QueryError::named(
            ErrorCode::PathAlreadyExists,
            format!("Target directory for {what} already exists and is not empty: {location}"),
        ));
    }
    Ok(())
}

fn hive_columns(fields: &[Field]) -> Result<Vec<Column>, QueryError> {
    fields
        .iter()
        .map(|f| {
            Ok(Column {
                name: f.name().clone(),
                data_type: Some(arrow_to_hive(f.data_type()).map_err(semantic)?),
                ..Default::default()
            })
        })
        .collect()
}

/// `CREATE TABLE ... AS SELECT`.
pub(crate) async fn create_table_as(
    run: Run<'_>,
    name: Name,
    if_not_exists: bool,
    with: Vec<(String, WithValue)>,
    query: String,
    with_data: bool,
) -> Result<QueryOutput, QueryError> {
    let Run {
        engine,
        current,
        access,
    } = run;
    let db = database_of(&name, current);
    let target = Securable::Table {
        database: &db,
        table: &name.name,
    };
    require(access, Privilege::CreateTable, target)?;
    require(access, Privilege::Insert, target)?;
    let opts = options(
        &with,
        lakehose_catalog::parquet_writer::default_codec(),
        "CREATE TABLE AS",
    )?;
    let catalog = engine.catalog();
    let database = catalog.get_database(&db).await.map_err(|e| match e {
        CatalogError::NotFound(_) => QueryError::named(
            ErrorCode::SchemaNotFound,
            format!("Database {db} does not exist"),
        ),
        other => QueryError::new(QueryErrorKind::Internal, other.to_string()),
    })?;
    match catalog.get_table(&db, &name.name).await {
        Ok(_) if if_not_exists => return Ok(rows_output("CREATE_TABLE_AS_SELECT", 0, 0)),
        Ok(_) => {
            return Err(semantic(format!(
                "Table awsdatacatalog.{db}.{} already exists",
                name.name
            )));
        }
        Err(CatalogError::NotFound(_)) => {}
        Err(e) => return Err(QueryError::new(QueryErrorKind::Internal, e.to_string())),
    }
    let location = match &opts.location {
        Some(l) => {
            let l = folder_location(l)?;
            require(
                access,
                Privilege::DataLocation,
                Securable::Location(&l.to_string()),
            )?;
            l
        }
        None => {
            let base = database
                .location_uri
                .clone()
                .unwrap_or_else(|| format!("s3://{}/{db}/", engine.config().warehouse_bucket));
            let base = folder_location(&base)?;
            base.join(&format!("{}/", name.name))
                .map_err(|e| semantic(e.to_string()))?
        }
    };
    ensure_empty(engine, &location, &format!("table {db}.{}", name.name)).await?;
    let (written, schema) = if with_data {
        write_query(
            engine,
            access,
            &db,
            &query,
            &location,
            &opts.format,
            &opts.partitioned_by,
            None,
            None,
        )
        .await?
    } else {
        let stats = Arc::new(QueryStats::default());
        let ctx = engine
            .context_as(&db, stats, access.cloned())
            .map_err(classify)?;
        let plan = crate::plan::plan_query(&ctx, &query).await?;
        let fields: Vec<Field> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| Field::new(f.name().to_ascii_lowercase(), storable(f.data_type()), true))
            .collect();
        (Written::default(), Arc::new(Schema::new(fields)))
    };
    let key_count = opts.partitioned_by.len();
    let fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let (storage, classification) = opts.format.storage(
        location.to_string(),
        hive_columns(&fields[..fields.len() - key_count])?,
    );
    let mut parameters: lakehose_catalog::model::Parameters = Default::default();
    if !classification.is_empty() {
        parameters.insert("classification".into(), classification.into());
    }
    parameters.insert("EXTERNAL".into(), "TRUE".into());
    let table = Table {
        name: name.name.clone(),
        storage_descriptor: Some(StorageDescriptor {
            compressed: None,
            number_of_buckets: None,
            ..storage
        }),
        partition_keys: hive_columns(&fields[fields.len() - key_count..])?,
        table_type: Some(lakehose_catalog::model::EXTERNAL_TABLE.into()),
        parameters,
        ..Default::default()
    };
    if let Err(e) = catalog.create_table(&db, table.clone()).await {
        remove(engine, &written.files).await;
        return Err(match e {
            CatalogError::AlreadyExists(_) => semantic(format!(
                "Table awsdatacatalog.{db}.{} already exists",
                name.name
            )),
            other => QueryError::new(QueryErrorKind::Internal, other.to_string()),
        });
    }
    register_partitions(engine, &db, &table, &location, &written.partitions).await?;
    Ok(rows_output(
        "CREATE_TABLE_AS_SELECT",
        written.rows,
        written.bytes_scanned,
    ))
}

async fn register_partitions(
    engine: &QueryEngine,
    db: &str,
    table: &Table,
    location: &Location,
    partitions: &[Vec<String>],
) -> Result<(), QueryError> {
    let batch: Vec<_> = partitions
        .iter()
        .map(|values| {
            let folder = partition_path::folder(
                table
                    .partition_keys
                    .iter()
                    .map(|k| k.name.as_str())
                    .zip(values.iter().map(String::as_str)),
            );
            partition(table, values.clone(), format!("{location}{folder}"))
        })
        .collect();
    for chunk in batch.chunks(1000) {
        let failures = engine
            .catalog()
            .create_partitions(db, &table.name, chunk.to_vec())
            .await
            .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?;
        if let Some((values, e)) = failures
            .into_iter()
            .find(|(_, e)| !matches!(e, CatalogError::AlreadyExists(_)))
        {
            return Err(QueryError::new(
                QueryErrorKind::Internal,
                format!("could not register partition {}: {e}", values.join("/")),
            ));
        }
    }
    Ok(())
}

/// `INSERT INTO t [(cols)] SELECT|VALUES ...`.
pub(crate) async fn insert_into(
    run: Run<'_>,
    name: Name,
    columns: Vec<String>,
    query: String,
) -> Result<QueryOutput, QueryError> {
    let Run {
        engine,
        current,
        access,
    } = run;
    let db = database_of(&name, current);
    require(
        access,
        Privilege::Insert,
        Securable::Table {
            database: &db,
            table: &name.name,
        },
    )?;
    let table = get_table(engine, &db, &name.name).await?;
    if table.is_view() {
        return Err(semantic(format!(
            "{db}.{} is a view; INSERT INTO needs a table",
            name.name
        )));
    }
    if crate::delta::is_delta(&table) {
        return Err(semantic(format!(
            "{db}.{} is a Delta table; write to it with an ETL job (lakehose etl) rather than INSERT INTO",
            name.name
        )));
    }
    let format = match StorageFormat::of(&table).map_err(semantic)? {
        StorageFormat::Parquet => {
            OutputFormat::Parquet(lakehose_catalog::parquet_writer::default_codec())
        }
        StorageFormat::Text(t) => match t.kind {
            TextKind::Json { .. } => OutputFormat::Json,
            TextKind::Delimited { delimiter, .. } => OutputFormat::Text(delimiter),
            _ => {
                return Err(semantic(format!(
                    "INSERT INTO is not supported for {db}.{}: only Parquet, JSON and LazySimpleSerDe text tables can be written",
                    name.name
                )));
            }
        },
    };
    let location = table_location(&table)?;
    let sd = table.storage_descriptor.clone().unwrap_or_default();
    let named = |e: String| semantic(format!("table {db}.{}: {e}", name.name));
    let mut fields = crate::table::arrow_fields(&sd.columns, "data").map_err(named)?;
    let keys: Vec<String> = table
        .partition_keys
        .iter()
        .map(|k| k.name.clone())
        .collect();
    fields.extend(crate::table::arrow_fields(&table.partition_keys, "partition").map_err(named)?);
    let column_map: Option<Vec<Option<usize>>> = if columns.is_empty() {
        None
    } else {
        for c in &columns {
            if !fields.iter().any(|f| f.name() == c) {
                return Err(semantic(format!(
                    "Column {c} does not exist in {db}.{}",
                    name.name
                )));
            }
        }
        for k in &keys {
            if !columns.contains(k) {
                return Err(semantic(format!(
                    "INSERT INTO a partitioned table must list the partition column {k}"
                )));
            }
        }
        Some(
            fields
                .iter()
                .map(|f| columns.iter().position(|c| c == f.name()))
                .collect(),
        )
    };
    let label = format!("{db}.{}", name.name);
    let (written, _) = write_query(
        engine,
        access,
        &db,
        &query,
        &location,
        &format,
        &keys,
        Some((&label, &fields)),
        column_map.as_deref(),
    )
    .await?;
    register_partitions(engine, &db, &table, &location, &written.partitions).await?;
    Ok(rows_output("INSERT", written.rows, written.bytes_scanned))
}

/// `UNLOAD (query) TO 's3://...' WITH (...)`.
pub(crate) async fn unload(
    run: Run<'_>,
    query: String,
    location: String,
    with: Vec<(String, WithValue)>,
) -> Result<QueryOutput, QueryError> {
    let Run {
        engine,
        current,
        access,
    } = run;
    let opts = options(&with, Compression::GZIP(GzipLevel::default()), "UNLOAD")?;
    let location = folder_location(&location)?;
    require(
        access,
        Privilege::DataLocation,
        Securable::Location(&location.to_string()),
    )?;
    ensure_empty(engine, &location, "UNLOAD").await?;
    let (written, _) = write_query(
        engine,
        access,
        current,
        &query,
        &location,
        &opts.format,
        &opts.partitioned_by,
        None,
        None,
    )
    .await?;
    Ok(rows_output("UNLOAD", written.rows, written.bytes_scanned))
}
