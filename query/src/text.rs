//! Reading text tables: JSON lines (OpenX and Hive JSON SerDes), delimited
//! text (LazySimpleSerDe), quoted CSV (OpenCSVSerde) and regular expressions
//! (RegexSerDe), gzip'd or not, as Athena reads them.
//!
//! Values that do not convert to their column's type read as NULL (Hive's
//! rule for text), except in JSON, where a malformed line fails the query
//! unless `ignore.malformed.json` is set.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{FieldRef, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::{ObjectMeta, ObjectStore};
use regex::Regex;
use serde_json::Value;

use lakehose_catalog::jsonserde::{JsonSerDe, SerDeOptions};
use lakehose_catalog::model::Parameters;

const BATCH_ROWS: usize = 8192;

/// How the lines of a text table become rows.
#[derive(Debug, Clone)]
pub enum TextKind {
    /// One JSON object per line.
    Json {
        /// How keys match columns and values convert: `case.insensitive`
        /// (default true), `dots.in.keys`, `mapping.<column>`, and the
        /// Hive SerDe's `timestamp.formats` = `millis`.
        serde: SerDeOptions,
        /// Read malformed lines as all-NULL rows instead of failing.
        ignore_malformed: bool,
    },
    /// Fields split on a delimiter, no quoting (LazySimpleSerDe).
    Delimited {
        /// Field delimiter.
        delimiter: String,
        /// The text that means NULL (`\N`).
        null_format: String,
    },
    /// Quoted CSV (OpenCSVSerde).
    Csv {
        /// Separator.
        separator: u8,
        /// Quote.
        quote: u8,
        /// Escape.
        escape: Option<u8>,
    },
    /// Columns are the capture groups of a regular expression matched
    /// against the whole line (RegexSerDe); lines that do not match are
    /// all-NULL rows.
    Regex(Regex),
}

/// A text table's format.
#[derive(Debug, Clone)]
pub struct TextFormat {
    /// Line decoding.
    pub kind: TextKind,
    /// Header lines to skip at the start of each file.
    pub skip_header: usize,
}

fn single_char(params: &Parameters, key: &str, default: u8) -> Result<u8, String> {
    match params.get(key) {
        None => Ok(default),
        Some(v) => {
            let v = unescape(v);
            match v.as_bytes() {
                [c] => Ok(*c),
                _ => Err(format!(
                    "SerDe property {key} must be one character, not {v:?}"
                )),
            }
        }
    }
}

/// Hive's spelling of delimiters: `\t`, `\001`, `\u0001` or a character.
fn unescape(v: &str) -> String {
    match v {
        "\\t" => "\t".into(),
        "\\n" => "\n".into(),
        _ => {
            if let Some(octal) = v.strip_prefix('\\')
                && let Ok(n) = u8::from_str_radix(octal, 8)
            {
                return (n as char).to_string();
            }
            if let Some(hex) = v.strip_prefix("\\u")
                && let Ok(n) = u32::from_str_radix(hex, 16)
                && let Some(c) = char::from_u32(n)
            {
                return c.to_string();
            }
            v.to_string()
        }
    }
}

impl TextFormat {
    /// The format for a SerDe library (lowercased), a classification and
    /// SerDe parameters.
    pub(crate) fn from_serde(
        lib: &str,
        classification: &str,
        params: &Parameters,
        skip_header: usize,
    ) -> Result<Self, String> {
        let flag = |key: &str, default: bool| {
            params
                .get(key)
                .map(|v| v.eq_ignore_ascii_case("true"))
                .unwrap_or(default)
        };
        let kind = if lib.contains("jsonserde") || classification == "json" {
            TextKind::Json {
                serde: SerDeOptions {
                    case_insensitive: flag("case.insensitive", true),
                    dots_to_underscores: flag("dots.in.keys", false),
                    column_keys: params
                        .iter()
                        .filter_map(|(k, v)| {
                            let column = k.strip_prefix("mapping.")?;
                            Some((column.to_lowercase(), v.clone()))
                        })
                        .collect(),
                    timestamp_millis: params
                        .get("timestamp.formats")
                        .is_some_and(|f| f.split(',').any(|f| f.trim() == "millis")),
                    timestamp_formats: params
                        .get("timestamp.formats")
                        .map(|f| {
                            f.split(',')
                                .map(str::trim)
                                .filter(|f| !f.is_empty() && *f != "millis")
                                .map(lakehose_catalog::jsonserde::joda_pattern)
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .transpose()?
                        .unwrap_or_default(),
                },
                ignore_malformed: flag("ignore.malformed.json", false),
            }
        } else if lib.contains("opencsvserde") {
            let escape = single_char(params, "escapeChar", b'\\')?;
            TextKind::Csv {
                separator: single_char(params, "separatorChar", b',')?,
                quote: single_char(params, "quoteChar", b'"')?,
                escape: Some(escape),
            }
        } else if lib.contains("regexserde") {
            let pattern = params
                .get("input.regex")
                .ok_or("RegexSerDe needs the SerDe property input.regex")?;
            let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                format!("input.regex {pattern:?} is not a valid regular expression: {e}")
            })?;
            TextKind::Regex(regex)
        } else if lib.is_empty() || lib.contains("lazysimpleserde") {
            let default = match classification {
                "csv" => ",",
                "tsv" => "\t",
                _ => "\u{1}",
            };
            let delimiter = params
                .get("field.delim")
                .or_else(|| params.get("serialization.format"))
                .map(|d| unescape(d))
                .filter(|d| !d.is_empty() && d != "1")
                .unwrap_or_else(|| default.to_string());
            TextKind::Delimited {
                delimiter,
                null_format: params
                    .get("serialization.null.format")
                    .cloned()
                    .unwrap_or_else(|| "\\N".into()),
            }
        } else {
            return Err(format!("SerDe {lib:?} is not supported"));
        };
        Ok(Self { kind, skip_header })
    }
}

/// Counts bytes read by a query's text scans.
pub(crate) type ScanCounter = Arc<AtomicU64>;

/// A scan of text files.
#[derive(Debug)]
pub(crate) struct TextScan {
    store: Arc<dyn ObjectStore>,
    format: TextFormat,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    groups: Vec<Vec<(ObjectMeta, Vec<ScalarValue>)>>,
    counter: ScanCounter,
    schema: SchemaRef,
}

impl TextScan {
    /// A scan of `files` split into `partitions` streams.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        format: TextFormat,
        file_schema: SchemaRef,
        partition_fields: Vec<FieldRef>,
        files: Vec<(ObjectMeta, Vec<ScalarValue>)>,
        partitions: usize,
        counter: ScanCounter,
    ) -> Self {
        let n = partitions.max(1).min(files.len().max(1));
        let mut groups: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
        for (i, f) in files.into_iter().enumerate() {
            groups[i % n].push(f);
        }
        let mut fields: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        fields.extend(partition_fields.iter().cloned());
        Self {
            store,
            format,
            file_schema,
            partition_fields,
            groups,
            counter,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// The execution plan.
    pub(crate) fn into_plan(
        self,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = Arc::clone(&self.schema);
        let json = match &self.format.kind {
            TextKind::Json { serde, .. } => Some(
                JsonSerDe::for_schema(&self.file_schema, serde.clone())
                    .map_err(DataFusionError::Plan)?,
            ),
            _ => None,
        };
        let shared = Arc::new(Shared {
            store: self.store,
            format: self.format,
            json,
            file_schema: self.file_schema,
            schema: Arc::clone(&schema),
            partition_count: self.partition_fields.len(),
            counter: self.counter,
        });
        let partitions: Vec<Arc<dyn PartitionStream>> = self
            .groups
            .into_iter()
            .map(|files| {
                Arc::new(TextPartition {
                    shared: Arc::clone(&shared),
                    files,
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            projection,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn ObjectStore>,
    format: TextFormat,
    /// The JSON SerDe of a JSON table.
    json: Option<JsonSerDe>,
    file_schema: SchemaRef,
    schema: SchemaRef,
    partition_count: usize,
    counter: ScanCounter,
}

#[derive(Debug)]
struct TextPartition {
    shared: Arc<Shared>,
    files: Vec<(ObjectMeta, Vec<ScalarValue>)>,
}

impl PartitionStream for TextPartition {
    fn schema(&self) -> &SchemaRef {
        &self.shared.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let shared = Arc::clone(&self.shared);
        let files = self.files.clone();
        let stream = futures::stream::iter(files)
            .then(move |(meta, values)| {
                let shared = Arc::clone(&shared);
                async move {
                    let bytes = shared
                        .store
                        .get(&meta.location)
                        .await
                        .map_err(|e| DataFusionError::ObjectStore(Box::new(e)))?
                        .bytes()
                        .await
                        .map_err(|e| DataFusionError::ObjectStore(Box::new(e)))?;
                    shared
                        .counter
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    let name = meta.location.to_string();
                    let batches = tokio::task::spawn_blocking(move || {
                        decode_file(&bytes, &name, &shared, &values)
                    })
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))??;
                    Ok::<_, DataFusionError>(futures::stream::iter(batches.into_iter().map(Ok)))
                }
            })
            .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.shared.schema),
            stream,
        ))
    }
}

/// Decompresses a file when it is gzip'd (by magic number, whatever its
/// name).
fn decompress(bytes: &Bytes, name: &str) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| DataFusionError::Execution(format!("{name} is not valid gzip: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

fn decode_file(
    bytes: &Bytes,
    name: &str,
    shared: &Shared,
    partition_values: &[ScalarValue],
) -> Result<Vec<RecordBatch>> {
    let data = decompress(bytes, name)?;
    let text = String::from_utf8_lossy(&data);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip(shared.format.skip_header)
        .collect();
    let mut out = Vec::new();
    for chunk in lines.chunks(BATCH_ROWS) {
        let data = match &shared.format.kind {
            TextKind::Json {
                ignore_malformed, ..
            } => json_batch(chunk, name, shared, *ignore_malformed)?,
            kind => text_batch(chunk, kind, &shared.file_schema)?,
        };
        let Some(data) = data else { continue };
        let rows = data.num_rows();
        let mut columns: Vec<ArrayRef> = data.columns().to_vec();
        for v in partition_values.iter().take(shared.partition_count) {
            columns.push(v.to_array_of_size(rows)?);
        }
        out.push(RecordBatch::try_new(Arc::clone(&shared.schema), columns)?);
    }
    Ok(out)
}

/// Reads JSON lines by the rules ingest converts records with
/// ([`lakehose_catalog::jsonserde`]): numbers in strings, timestamps in
/// ISO 8601 or epoch form, maps, and a value that does not fit its column
/// failing the query with the file, line and field.
fn json_batch(
    lines: &[&str],
    name: &str,
    shared: &Shared,
    ignore_malformed: bool,
) -> Result<Option<RecordBatch>> {
    let Some(serde) = &shared.json else {
        return Err(DataFusionError::Internal(
            "a JSON table without its SerDe".into(),
        ));
    };
    let empty = serde_json::Map::new();
    let mut rows = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = i + 1 + shared.format.skip_header;
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => {
                serde.check(&map).map_err(|e| {
                    DataFusionError::Execution(format!("{name}: line {line_no}: {e}"))
                })?;
                rows.push(map);
            }
            Ok(_) | Err(_) if ignore_malformed => rows.push(empty.clone()),
            Ok(_) => {
                return Err(DataFusionError::Execution(format!(
                    "{name}: line {line_no} is not a JSON object"
                )));
            }
            Err(e) => {
                return Err(DataFusionError::Execution(format!(
                    "{name}: line {line_no} is malformed JSON ({e}); set 'ignore.malformed.json'='true' to read it as NULLs"
                )));
            }
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let refs: Vec<&serde_json::Map<String, Value>> = rows.iter().collect();
    let batch = serde
        .decode(&refs)
        .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?;
    Ok(Some(RecordBatch::try_new(
        Arc::clone(&shared.file_schema),
        batch.columns().to_vec(),
    )?))
}

fn text_batch(lines: &[&str], kind: &TextKind, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
    let width = schema.fields().len();
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(lines.len()); width];
    let mut push_row = |fields: &mut dyn Iterator<Item = Option<String>>| {
        let mut n = 0;
        for (col, v) in columns.iter_mut().zip(fields) {
            col.push(v);
            n += 1;
        }
        for col in columns.iter_mut().skip(n) {
            col.push(None);
        }
    };
    let mut rows = 0;
    match kind {
        TextKind::Delimited {
            delimiter,
            null_format,
        } => {
            for line in lines.iter().filter(|l| !l.is_empty()) {
                let mut it = line
                    .split(delimiter.as_str())
                    .map(|f| (f != null_format).then(|| f.to_string()));
                push_row(&mut it);
                rows += 1;
            }
        }
        TextKind::Csv {
            separator,
            quote,
            escape,
        } => {
            for line in lines.iter().filter(|l| !l.is_empty()) {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .delimiter(*separator)
                    .quote(*quote)
                    .escape(*escape)
                    .double_quote(true)
                    .flexible(true)
                    .from_reader(line.as_bytes());
                let mut record = csv::StringRecord::new();
                let ok = reader.read_record(&mut record).unwrap_or(false);
                let mut it = record.iter().map(|f| Some(f.to_string())).take(if ok {
                    usize::MAX
                } else {
                    0
                });
                push_row(&mut it);
                rows += 1;
            }
        }
        TextKind::Regex(regex) => {
            for line in lines.iter().filter(|l| !l.is_empty()) {
                match regex.captures(line) {
                    Some(c) => {
                        let mut it = c.iter().skip(1).map(|m| m.map(|m| m.as_str().to_string()));
                        push_row(&mut it);
                    }
                    None => push_row(&mut std::iter::empty()),
                }
                rows += 1;
            }
        }
        TextKind::Json { .. } => unreachable!("JSON lines are decoded by json_batch"),
    }
    if rows == 0 {
        return Ok(None);
    }
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let arrays = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(values, field)| {
            let strings: ArrayRef = Arc::new(StringArray::from(values));
            cast_with_options(&strings, field.data_type(), &options).map_err(DataFusionError::from)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(RecordBatch::try_new(Arc::clone(schema), arrays)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_unescape() {
        assert_eq!(unescape("\\t"), "\t");
        assert_eq!(unescape("\\001"), "\u{1}");
        assert_eq!(unescape("\\u0002"), "\u{2}");
        assert_eq!(unescape("|"), "|");
    }

    #[test]
    fn serde_selection() {
        let mut p = Parameters::new();
        let f = TextFormat::from_serde("org.openx.data.jsonserde.jsonserde", "", &p, 0).unwrap();
        assert!(matches!(
            &f.kind,
            TextKind::Json { serde, .. } if serde.case_insensitive && !serde.dots_to_underscores
        ));
        let mut mapped = Parameters::new();
        mapped.insert("mapping.ts".into(), "timestamp".into());
        mapped.insert("dots.in.keys".into(), "TRUE".into());
        mapped.insert("case.insensitive".into(), "false".into());
        let f =
            TextFormat::from_serde("org.openx.data.jsonserde.jsonserde", "", &mapped, 0).unwrap();
        let TextKind::Json { serde, .. } = &f.kind else {
            panic!("a JSON format")
        };
        assert!(!serde.case_insensitive && serde.dots_to_underscores);
        assert_eq!(serde.column_keys["ts"], "timestamp");
        p.insert("field.delim".into(), "|".into());
        let f = TextFormat::from_serde(
            "org.apache.hadoop.hive.serde2.lazy.lazysimpleserde",
            "",
            &p,
            1,
        )
        .unwrap();
        assert!(matches!(&f.kind, TextKind::Delimited { delimiter, .. } if delimiter == "|"));
        let err = TextFormat::from_serde("org.apache.hadoop.hive.serde2.regexserde", "", &p, 0)
            .unwrap_err();
        assert!(err.contains("input.regex"));
        assert!(TextFormat::from_serde("com.example.customserde", "", &p, 0).is_err());
    }
}
