//! DynamoDB's Export to S3, read as DynamoDB writes it: an export folder
//! `<prefix>/AWSDynamoDB/<export-id>/` with `manifest-summary.json`,
//! `manifest-files.json` (one JSON line per data file) and gzip'd JSON-lines
//! data files in the `DYNAMODB_JSON` format.
//!
//! Reading is two passes over the data files, each file on its own core:
//! [`scan`] verifies every file against the manifests (MD5 checksum, item
//! count), parses every line and infers the schema; [`convert`] reads them
//! again into Arrow record batches of that schema. Nothing is produced
//! unless the whole export is sound, so an import that fails leaves its
//! table as it was. Full exports give one row per item; incremental exports
//! give one row per changed key (the latest change when a key appears more
//! than once), with [`convert::DELETED_COLUMN`] marking deletes.
//!
//! Amazon Ion exports are refused with a clear error: there is no Ion
//! reader here.

pub(crate) mod convert;
pub mod item;
pub(crate) mod schema;

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;

use crate::error::{Error, Result, ResultExt};
use convert::{Converter, DELETED_COLUMN};
use item::{Attr, Item, Line, parse_line_str};
use schema::{Column, Sketch};

/// Rows per record batch.
pub const BATCH_ROWS: usize = 65_536;

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// Every item as of the export time.
    Full,
    /// The changes of a time window.
    Incremental,
}

/// What `manifest-summary.json` says.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// `exportArn`.
    pub export_arn: String,
    /// `tableArn`.
    pub table_arn: Option<String>,
    /// Full or incremental.
    pub kind: ExportKind,
    /// Items in the export (`itemCount`).
    pub item_count: Option<u64>,
    /// The time the table is as of once the export is applied, in ms since
    /// the epoch: `exportTime` (full) or `exportToTime` (incremental).
    pub as_of_ms: i64,
    /// `exportFromTime` (incremental).
    pub from_ms: Option<i64>,
}

/// One data file of the export.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// `dataFileS3Key` as the manifest gives it.
    pub key: String,
    /// Where it is read from.
    pub path: ObjectPath,
    /// Items the manifest says it holds.
    pub item_count: Option<u64>,
    /// Base64 MD5 of the file, when the manifest gives one.
    pub md5: Option<String>,
}

/// An export folder, its manifests read and checked.
#[derive(Debug, Clone)]
pub struct Export {
    store: Arc<dyn ObjectStore>,
    /// The folder.
    pub dir: ObjectPath,
    /// The summary.
    pub summary: ExportSummary,
    /// The data files.
    pub files: Vec<DataFile>,
}

fn invalid(dir: &ObjectPath, what: impl std::fmt::Display) -> Error {
    Error::Export {
        export: dir.to_string(),
        message: what.to_string(),
    }
}

/// Reads an object; `Ok(None)` when it does not exist.
async fn read_optional(store: &dyn ObjectStore, path: &ObjectPath) -> Result<Option<Bytes>> {
    match store.get(path).await {
        Ok(r) => r
            .bytes()
            .await
            .map(Some)
            .with_context(|| format!("reading {path}")),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::from(e).context(format!("reading {path}"))),
    }
}

fn md5_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a manifest against its `.checksum` / `.md5` sibling when there
/// is one holding an MD5 (hex or base64).
async fn check_manifest(store: &dyn ObjectStore, path: &ObjectPath, bytes: &[u8]) -> Result<()> {
    let stem = path.as_ref().trim_end_matches(".json");
    for suffix in [".checksum", ".md5"] {
        let sibling = ObjectPath::from(format!("{stem}{suffix}"));
        let Some(sum) = read_optional(store, &sibling).await? else {
            continue;
        };
        let sum = String::from_utf8_lossy(&sum).trim().to_string();
        let is_hex = sum.len() == 32 && sum.bytes().all(|b| b.is_ascii_hexdigit());
        let is_b64 = sum.len() == 24 && sum.ends_with("==");
        if is_hex && !sum.eq_ignore_ascii_case(&md5_hex(bytes))
            || is_b64 && sum != md5_base64(bytes)
        {
            return Err(Error::Export {
                export: path.to_string(),
                message: format!(
                    "does not match its checksum in {sibling}: the manifest is damaged or was changed"
                ),
            });
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummaryJson {
    export_arn: Option<String>,
    table_arn: Option<String>,
    export_time: Option<serde_json::Value>,
    export_from_time: Option<serde_json::Value>,
    export_to_time: Option<serde_json::Value>,
    export_type: Option<String>,
    output_format: Option<String>,
    item_count: Option<u64>,
    manifest_files_s3_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileJson {
    data_file_s3_key: String,
    item_count: Option<u64>,
    md5_checksum: Option<String>,
}

/// A manifest time: RFC 3339 text or seconds since the epoch.
fn time_ms(v: &serde_json::Value, field: &str) -> Result<i64, String> {
    match v {
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| format!("{field} {s:?} is not a time: {e}")),
        serde_json::Value::Number(n) => n
            .as_f64()
            .map(|s| (s * 1000.0).round() as i64)
            .ok_or_else(|| format!("{field} {n} is not a time")),
        other => Err(format!("{field} {other} is not a time")),
    }
}

/// Where `key` (a bucket key from a manifest) is, relative to the export
/// folder `dir`: keys name the bucket's `.../AWSDynamoDB/...` objects, so
/// the part from `AWSDynamoDB/` on is taken beside the folder's own
/// `AWSDynamoDB/`; other keys are taken inside the folder.
fn resolve(dir: &ObjectPath, key: &str) -> ObjectPath {
    const MARK: &str = "AWSDynamoDB/";
    let dir = dir.as_ref();
    if let (Some(k), Some(d)) = (key.rfind(MARK), dir.rfind(MARK)) {
        return ObjectPath::from(format!("{}{}", &dir[..d], &key[k..]));
    }
    ObjectPath::from(format!("{dir}/{}", key.trim_start_matches('/')))
}

impl Export {
    /// Opens the export folder `dir` in `store` and checks its manifests.
    pub async fn open(store: Arc<dyn ObjectStore>, dir: ObjectPath) -> Result<Self> {
        let summary_path = dir.clone().join("manifest-summary.json");
        let Some(summary_bytes) = read_optional(store.as_ref(), &summary_path).await? else {
            return Err(invalid(
                &dir,
                "there is no manifest-summary.json: give the export's own folder, .../AWSDynamoDB/<export-id>/",
            ));
        };
        check_manifest(store.as_ref(), &summary_path, &summary_bytes).await?;
        let summary: SummaryJson = serde_json::from_slice(&summary_bytes)
            .map_err(|e| invalid(&dir, format!("manifest-summary.json is not valid: {e}")))?;
        match summary.output_format.as_deref() {
            None | Some("DYNAMODB_JSON") => {}
            Some("ION") => {
                return Err(invalid(
                    &dir,
                    "unsupported format ION: lakehose reads DYNAMODB_JSON exports (export again with ExportFormat DYNAMODB_JSON)",
                ));
            }
            Some(other) => {
                return Err(invalid(&dir, format!("unsupported format {other}")));
            }
        }
        let kind = match summary.export_type.as_deref() {
            None | Some("FULL_EXPORT") => ExportKind::Full,
            Some("INCREMENTAL_EXPORT") => ExportKind::Incremental,
            Some(other) => return Err(invalid(&dir, format!("unknown exportType {other}"))),
        };
        let as_of = match kind {
            ExportKind::Full => summary
                .export_time
                .as_ref()
                .map(|v| time_ms(v, "exportTime")),
            ExportKind::Incremental => summary
                .export_to_time
                .as_ref()
                .map(|v| time_ms(v, "exportToTime")),
        }
        .ok_or_else(|| {
            invalid(
                &dir,
                "manifest-summary.json has no exportTime / exportToTime",
            )
        })?
        .map_err(|e| invalid(&dir, e))?;
        let from_ms = match (&summary.export_from_time, kind) {
            (Some(v), ExportKind::Incremental) => {
                Some(time_ms(v, "exportFromTime").map_err(|e| invalid(&dir, e))?)
            }
            (None, ExportKind::Incremental) => {
                return Err(invalid(
                    &dir,
                    "an incremental export's manifest-summary.json has no exportFromTime",
                ));
            }
            _ => None,
        };

        let files_path = summary
            .manifest_files_s3_key
            .as_deref()
            .map(|k| resolve(&dir, k))
            .unwrap_or_else(|| dir.clone().join("manifest-files.json"));
        let Some(files_bytes) = read_optional(store.as_ref(), &files_path).await? else {
            return Err(invalid(
                &dir,
                format!("the file manifest {files_path} is missing"),
            ));
        };
        check_manifest(store.as_ref(), &files_path, &files_bytes).await?;
        let mut files = Vec::new();
        for (n, line) in files_bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let f: FileJson = serde_json::from_slice(line)
                .map_err(|e| invalid(&dir, format!("{files_path} line {}: {e}", n + 1)))?;
            files.push(DataFile {
                path: resolve(&dir, &f.data_file_s3_key),
                key: f.data_file_s3_key,
                item_count: f.item_count,
                md5: f.md5_checksum,
            });
        }
        let listed: Option<u64> = files.iter().map(|f| f.item_count).sum();
        if let (Some(listed), Some(total)) = (listed, summary.item_count)
            && listed != total
        {
            return Err(invalid(
                &dir,
                format!(
                    "manifest-files.json lists {listed} items but manifest-summary.json says {total}"
                ),
            ));
        }
        Ok(Self {
            store,
            summary: ExportSummary {
                export_arn: summary
                    .export_arn
                    .unwrap_or_else(|| dir.as_ref().to_string()),
                table_arn: summary.table_arn,
                kind,
                item_count: summary.item_count,
                as_of_ms: as_of,
                from_ms,
            },
            dir,
            files,
        })
    }

    /// Total size of the data files in bytes (as stored).
    pub async fn data_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for f in &self.files {
            let meta = self.store.head(&f.path).await.map_err(|e| match e {
                object_store::Error::NotFound { .. } => self.missing(f),
                other => Error::from(other).context(format!("reading {}", f.path)),
            })?;
            total += meta.size;
        }
        Ok(total)
    }

    fn missing(&self, f: &DataFile) -> Error {
        invalid(
            &self.dir,
            format!(
                "data file {} listed in manifest-files.json is missing",
                f.key
            ),
        )
    }

    /// Reads a data file, checks its MD5 and decompresses it.
    async fn read(&self, f: &DataFile) -> Result<(Vec<u8>, u64)> {
        let bytes = match self.store.get(&f.path).await {
            Ok(r) => r
                .bytes()
                .await
                .with_context(|| format!("reading {}", f.path))?,
            Err(object_store::Error::NotFound { .. }) => return Err(self.missing(f)),
            Err(e) => return Err(Error::from(e).context(format!("reading {}", f.path))),
        };
        let stored = bytes.len() as u64;
        let key = f.key.clone();
        let expected = f.md5.clone();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(expected) = expected
                && md5_base64(&bytes) != expected
            {
                return Err(invalid(
                    &dir,
                    format!("data file {key} does not match its MD5 checksum in manifest-files.json (truncated or damaged)"),
                ));
            }
            let data = if key.ends_with(".gz") && !bytes.is_empty() {
                let mut out = Vec::with_capacity(bytes.len() * 6);
                flate2::read::MultiGzDecoder::new(&bytes[..])
                    .read_to_end(&mut out)
                    .map_err(|e| invalid(&dir, format!("data file {key} is not valid gzip: {e}")))?;
                out
            } else {
                bytes.to_vec()
            };
            Ok((data, stored))
        })
        .await
        .with_context(|| format!("reading {}", f.key))?
    }
}

/// Something to tell about the progress of an import.
pub trait ImportProgress: Send + Sync {
    /// A pass over the data files begins (`scan`, `write`).
    fn pass(&self, _name: &str, _files: usize, _bytes: u64) {}
    /// A data file was processed.
    fn file_done(&self, _items: u64, _bytes: u64) {}
}

/// Progress that tells nothing.
pub struct NoProgress;

impl ImportProgress for NoProgress {}

/// What the first pass found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The schema sketch.
    pub sketch: Sketch,
    /// Lines read.
    pub records: u64,
    /// Bytes of data files (as stored).
    pub bytes: u64,
    /// Key attribute names (from incremental records' `Keys`).
    pub keys: Option<Vec<String>>,
    /// Incremental: key → position of the record that wins.
    latest: HashMap<String, (i64, usize, usize)>,
    /// Full exports: each file's rows as converted by the first pass with
    /// the file's own schema, while they fit [`PREPARED_BYTES`]; the
    /// second pass adapts them to the export's schema instead of parsing
    /// the file again.
    prepared: std::sync::Mutex<HashMap<usize, Prepared>>,
}

/// Memory the first pass may hold in converted rows.
pub(crate) const PREPARED_BYTES: usize = 2 << 30;

/// One file's rows in the file's own schema.
#[derive(Debug)]
struct Prepared {
    columns: Vec<Column>,
    batches: Vec<RecordBatch>,
    /// The file's size as stored.
    bytes: u64,
}

/// A record's key as text (its typed JSON), for deduplication.
fn key_text(item: &Item<'_>, keys: &[String]) -> Result<String, String> {
    let mut out = String::new();
    for k in keys {
        match item.get(k) {
            Some(v) if !matches!(v, Attr::Null) => v.write_typed_json(&mut out),
            _ => return Err(format!("has no key attribute {k:?}")),
        }
        out.push('\u{1}');
    }
    Ok(out)
}

/// Calls `f` for each non-blank line of a data file with its 1-based
/// number.
fn each_line<'a>(
    data: &'a [u8],
    mut f: impl FnMut(usize, Line<'a>) -> Result<(), String>,
) -> Result<u64, (usize, String)> {
    // One UTF-8 check for the whole file, so the parser need not check
    // each string.
    let text = std::str::from_utf8(data).map_err(|e| {
        let line = data[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        (line, format!("is not valid UTF-8: {e}"))
    })?;
    let mut count = 0;
    for (n, raw) in text.split('\n').enumerate() {
        if raw.trim_ascii().is_empty() {
            continue;
        }
        let line = parse_line_str(raw).map_err(|e| (n + 1, e.to_string()))?;
        f(n + 1, line).map_err(|e| (n + 1, e))?;
        count += 1;
    }
    Ok(count)
}

/// What one file of the first pass found.
struct FileScan {
    sketch: Sketch,
    records: u64,
    bytes: u64,
    keys: Option<Vec<String>>,
    latest: Vec<(String, i64, usize)>,
    prepared: Option<Prepared>,
}

/// A full export's file parsed once: checked, sketched and converted with
/// the file's own schema.
fn scan_full_file(
    keys: &[String],
    data: &[u8],
    bytes: u64,
    raw: bool,
) -> Result<FileScan, (usize, String)> {
    let mut sketch = Sketch::default();
    let mut items: Vec<Item<'_>> = Vec::new();
    let records = each_line(data, |_, line| {
        let item = line
            .item
            .ok_or("has no Item (is this an incremental export's file?)")?;
        if let Some(missing) = keys
            .iter()
            .find(|k| item.get(k).is_none_or(|v| matches!(v, Attr::Null)))
        {
            return Err(format!("has no key attribute {missing:?}"));
        }
        sketch.observe(&item);
        items.push(item);
        Ok(())
    })?;
    let columns = sketch.columns(&[]).map_err(|e| (0, e))?;
    let schema = output_schema(&columns, raw.then_some(RAW_PLACEHOLDER), ExportKind::Full);
    let mut conv = Converter::new(schema, &columns, raw, false);
    let mut batches = Vec::new();
    for item in &items {
        conv.append(item, false).map_err(|e| (0, e))?;
        if conv.rows() >= BATCH_ROWS {
            batches.push(conv.finish().map_err(|e| (0, e))?);
        }
    }
    if conv.rows() > 0 {
        batches.push(conv.finish().map_err(|e| (0, e))?);
    }
    Ok(FileScan {
        sketch,
        records,
        bytes,
        keys: None,
        latest: Vec::new(),
        prepared: Some(Prepared {
            columns,
            batches,
            bytes,
        }),
    })
}

/// The raw column's name inside the first pass (renamed when adapted).
const RAW_PLACEHOLDER: &str = "_lakehose_raw";

/// `prepared` (one file's rows in its own schema) in the export's schema:
/// columns reordered, missing ones NULL, numbers widened exactly. `None`
/// when a column changed shape in a way only parsing again can give (a
/// map that became JSON text, say).
fn adapt(prepared: &Prepared, columns: &[Column], schema: &SchemaRef) -> Option<Vec<RecordBatch>> {
    use datafusion::arrow::array::new_null_array;
    use schema::Shape;
    fn widens(from: &Shape, to: &Shape) -> bool {
        match (from, to) {
            (a, b) if a == b => true,
            (Shape::Int, Shape::Decimal(_) | Shape::Double) => true,
            (Shape::Decimal(a), Shape::Decimal(b)) => a <= b,
            (Shape::Decimal(_), Shape::Double) => true,
            (Shape::List(a), Shape::List(b)) => widens(a, b),
            _ => false,
        }
    }
    let raw = schema.fields().len() > columns.len();
    let mut out = Vec::with_capacity(prepared.batches.len());
    for batch in &prepared.batches {
        let rows = batch.num_rows();
        let mut arrays = Vec::with_capacity(schema.fields().len());
        for (column, field) in columns.iter().zip(schema.fields()) {
            let local = prepared.columns.iter().position(|c| c.attr == column.attr);
            let array = match local {
                None => new_null_array(field.data_type(), rows),
                Some(i) => {
                    let array = batch.column(i);
                    let local_shape = &prepared.columns[i].shape;
                    if array.null_count() == rows {
                        new_null_array(field.data_type(), rows)
                    } else if local_shape == &column.shape {
                        Arc::clone(array)
                    } else if widens(local_shape, &column.shape) {
                        datafusion::arrow::compute::cast(array, field.data_type()).ok()?
                    } else {
                        return None;
                    }
                }
            };
            arrays.push(array);
        }
        if raw {
            arrays.push(Arc::clone(batch.column(prepared.columns.len())));
        }
        out.push(RecordBatch::try_new(Arc::clone(schema), arrays).ok()?);
    }
    Some(out)
}

/// An incremental export's file: checked and sketched, each record's key
/// and write time noted (the second pass converts the winners).
fn scan_changes_file(data: &[u8], bytes: u64) -> Result<FileScan, (usize, String)> {
    let mut sketch = Sketch::default();
    let mut found_keys: Option<Vec<String>> = None;
    let mut latest = Vec::new();
    let records = each_line(data, |n, line| {
        let record_keys = line
            .keys
            .as_ref()
            .ok_or("has no Keys (is this a full export's file?)")?;
        let mut names: Vec<String> = record_keys.0.iter().map(|(k, _)| k.to_string()).collect();
        names.sort();
        match &found_keys {
            None => found_keys = Some(names.clone()),
            Some(k) if *k != names => {
                return Err(format!("has keys {names:?} where other records have {k:?}"));
            }
            _ => {}
        }
        sketch.observe(record_keys);
        if let Some(image) = &line.new_image {
            sketch.observe(image);
        }
        latest.push((
            key_text(record_keys, &names)?,
            line.write_micros.unwrap_or(0),
            n,
        ));
        Ok(())
    })?;
    Ok(FileScan {
        sketch,
        records,
        bytes,
        keys: found_keys,
        latest,
        prepared: None,
    })
}

fn check_count(export: &Export, f: &DataFile, records: u64) -> Result<()> {
    match f.item_count {
        Some(expected) if expected != records => Err(invalid(
            &export.dir,
            format!(
                "data file {} has {records} items but manifest-files.json says {expected}",
                f.key
            ),
        )),
        _ => Ok(()),
    }
}

/// The first pass: reads and checks every data file and infers the
/// schema. `keys` are the key attributes when known (every full-export
/// item must have them).
pub async fn scan(
    export: &Export,
    keys: &[String],
    raw: bool,
    workers: usize,
    progress: &dyn ImportProgress,
) -> Result<Scan> {
    let total_bytes = export.data_bytes().await?;
    progress.pass("scan", export.files.len(), total_bytes);
    let kind = export.summary.kind;
    let mut out = Scan::default();
    let mut prepared_bytes = 0usize;
    let mut prepared = HashMap::new();
    let mut results = futures::stream::iter(export.files.iter().enumerate())
        .map(|(i, f)| {
            let keys = keys.to_vec();
            async move {
                let (data, bytes) = export.read(f).await?;
                let scanned = tokio::task::spawn_blocking(move || match kind {
                    ExportKind::Full => scan_full_file(&keys, &data, bytes, raw),
                    ExportKind::Incremental => scan_changes_file(&data, bytes),
                })
                .await?
                .map_err(|(line, e)| {
                    invalid(&export.dir, format!("data file {} line {line}: {e}", f.key))
                })?;
                check_count(export, f, scanned.records)?;
                Ok::<_, Error>((i, scanned))
            }
        })
        .buffer_unordered(workers.max(1) * 2);
    while let Some(result) = results.next().await {
        let (file, mut scanned) = result?;
        progress.file_done(scanned.records, scanned.bytes);
        if let Some(p) = scanned.prepared.take() {
            let size: usize = p.batches.iter().map(|b| b.get_array_memory_size()).sum();
            if prepared_bytes + size <= PREPARED_BYTES {
                prepared_bytes += size;
                prepared.insert(file, p);
            }
        }
        out.sketch.merge(scanned.sketch);
        out.records += scanned.records;
        out.bytes += scanned.bytes;
        match (&out.keys, scanned.keys) {
            (None, Some(k)) => out.keys = Some(k),
            (Some(a), Some(b)) if *a != b => {
                return Err(invalid(
                    &export.dir,
                    format!("records have keys {a:?} in one file and {b:?} in another"),
                ));
            }
            _ => {}
        }
        for (key, micros, line) in scanned.latest {
            let candidate = (micros, file, line);
            out.latest
                .entry(key)
                .and_modify(|best| {
                    if candidate > *best {
                        *best = candidate;
                    }
                })
                .or_insert(candidate);
        }
    }
    if let Some(total) = export.summary.item_count
        && total != out.records
    {
        return Err(invalid(
            &export.dir,
            format!(
                "the data files hold {} items but manifest-summary.json says {total}",
                out.records
            ),
        ));
    }
    out.prepared = std::sync::Mutex::new(prepared);
    Ok(out)
}

/// The Arrow schema the second pass produces: the columns, the raw item
/// column when named, and [`DELETED_COLUMN`] for incremental exports.
pub(crate) fn output_schema(
    columns: &[Column],
    raw_column: Option<&str>,
    kind: ExportKind,
) -> SchemaRef {
    let base = schema::arrow_schema(columns, raw_column);
    if kind == ExportKind::Full {
        return base;
    }
    let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

fn convert_file(
    kind: ExportKind,
    file: usize,
    data: &[u8],
    schema: &SchemaRef,
    columns: &[Column],
    raw: bool,
    scan: &Scan,
) -> Result<Vec<RecordBatch>, (usize, String)> {
    let mut conv = Converter::new(
        Arc::clone(schema),
        columns,
        raw,
        kind == ExportKind::Incremental,
    );
    let keys = scan.keys.clone().unwrap_or_default();
    let mut batches = Vec::new();
    each_line(data, |n, line| {
        match kind {
            ExportKind::Full => {
                let item = line.item.as_ref().ok_or("has no Item")?;
                conv.append(item, false)?;
            }
            ExportKind::Incremental => {
                let record_keys = line.keys.as_ref().ok_or("has no Keys")?;
                let key = key_text(record_keys, &keys)?;
                let wins = scan
                    .latest
                    .get(&key)
                    .is_some_and(|&(_, f, l)| f == file && l == n);
                if !wins {
                    return Ok(());
                }
                match &line.new_image {
                    Some(image) => conv.append(image, false)?,
                    None => conv.append(record_keys, true)?,
                }
            }
        }
        if conv.rows() >= BATCH_ROWS {
            batches.push(conv.finish()?);
        }
        Ok(())
    })?;
    if conv.rows() > 0 {
        batches.push(conv.finish().map_err(|e| (0, e))?);
    }
    Ok(batches)
}

/// The second pass: every data file again, as record batches of
/// `schema` (from [`output_schema`]), one file after another in the
/// stream (files are decoded `workers` at a time).
pub fn convert(
    export: Arc<Export>,
    scan: Arc<Scan>,
    columns: Arc<Vec<Column>>,
    schema: SchemaRef,
    raw: bool,
    workers: usize,
    progress: Arc<dyn ImportProgress>,
) -> impl Stream<Item = Result<RecordBatch>> + Send + 'static {
    let kind = export.summary.kind;
    let files: Vec<(usize, DataFile)> = export.files.iter().cloned().enumerate().collect();
    progress.pass("write", files.len(), scan.bytes);
    futures::stream::iter(files)
        .map(move |(i, f)| {
            let export = Arc::clone(&export);
            let scan = Arc::clone(&scan);
            let columns = Arc::clone(&columns);
            let schema = Arc::clone(&schema);
            let progress = Arc::clone(&progress);
            async move {
                let prepared = scan.prepared.lock().ok().and_then(|mut p| p.remove(&i));
                let adapted =
                    prepared.and_then(|p| adapt(&p, &columns, &schema).map(|b| (b, p.bytes)));
                let (batches, bytes) = match adapted {
                    Some(done) => done,
                    None => {
                        let (data, bytes) = export.read(&f).await?;
                        let dir = export.dir.clone();
                        let key = f.key.clone();
                        let batches = tokio::task::spawn_blocking(move || {
                            convert_file(kind, i, &data, &schema, &columns, raw, &scan)
                        })
                        .await?
                        .map_err(|(line, e)| {
                            invalid(&dir, format!("data file {key} line {line}: {e}"))
                        })?;
                        (batches, bytes)
                    }
                };
                let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                progress.file_done(rows, bytes);
                Ok::<_, Error>(futures::stream::iter(batches.into_iter().map(Ok)))
            }
        })
        .buffered(workers.max(1) * 2)
        .try_flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_resolve_beside_the_export() {
        let dir = ObjectPath::from("bucket/exports/AWSDynamoDB/01234-abcd");
        assert_eq!(
            resolve(&dir, "exports/AWSDynamoDB/01234-abcd/data/x.json.gz").as_ref(),
            "bucket/exports/AWSDynamoDB/01234-abcd/data/x.json.gz"
        );
        assert_eq!(
            resolve(&dir, "AWSDynamoDB/data/y.json.gz").as_ref(),
            "bucket/exports/AWSDynamoDB/data/y.json.gz"
        );
        assert_eq!(
            resolve(&dir, "data/z.json.gz").as_ref(),
            "bucket/exports/AWSDynamoDB/01234-abcd/data/z.json.gz"
        );
    }

    #[test]
    fn manifest_times() {
        assert_eq!(
            time_ms(&serde_json::json!("2024-01-02T03:04:05.678Z"), "t").unwrap(),
            1_704_164_645_678
        );
        assert_eq!(time_ms(&serde_json::json!(1.5), "t").unwrap(), 1500);
        assert!(time_ms(&serde_json::json!("soon"), "t").is_err());
    }
}
