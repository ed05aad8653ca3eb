//! Encoding a flushed buffer into object bytes: Parquet (with a catalog
//! table's exact types, see [`lakehose_catalog::jsonserde`], or with schema
//! inference, see [`crate::schema`]), JSON lines, and error documents.
//!
//! Everything here is synchronous CPU work; the service runs it on the
//! blocking pool, never on the async runtime.

use std::borrow::Cow;
use std::io::Write;

use arrow::array::RecordBatch;
use arrow::json::ReaderBuilder;
use base64::Engine;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel};
use serde_json::Value;

use crate::config::{FileCompression, ParquetCompression};
use crate::error::Result;
use std::sync::Arc;

use lakehose_catalog::hive::HiveType;
use lakehose_catalog::jsonserde::{JsonSerDe, SerDeOptions};

use crate::schema::{JType, arrow_schema, normalize_keys};
use crate::wal::RecordError;

/// Records per Arrow batch while decoding.
const DECODE_BATCH: usize = 8192;

/// The schema a flush converts records with, as its intent records it so a
/// replay writes the same file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FlushSchema {
    /// Inferred from the records: the stream's running schema, grown.
    Inferred(JType),
    /// A catalog table's columns, exactly (a `struct<..>` Hive type).
    Table(HiveType),
}

/// What a Parquet flush converts records to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Conversion<'a> {
    /// Infer a schema, starting from the stream's `running` one; with
    /// `fixed` (a replayed flush) that exact schema is used, so the file is
    /// the one the first attempt wrote.
    Infer {
        /// The stream's schema so far.
        running: &'a JType,
        /// The schema a replayed flush used.
        fixed: Option<&'a JType>,
    },
    /// The columns of the catalog table the stream names, with the
    /// stream's SerDe options.
    Table(&'a HiveType, &'a SerDeOptions),
    /// The stream names a catalog table that cannot be used: every record
    /// goes to the error prefix with this reason.
    Unusable(&'a str),
}

/// Result of encoding one buffer as Parquet.
#[derive(Debug)]
pub(crate) struct ParquetOutput {
    /// The Parquet file, unless no record converted.
    pub bytes: Option<Bytes>,
    /// The schema written (with inference, the stream's new running
    /// schema); `None` when nothing could be converted.
    pub schema: Option<FlushSchema>,
    /// Rows written.
    pub rows: usize,
    /// Records that could not be converted: index into the input and why.
    pub failed: Vec<(usize, RecordError)>,
}

/// Key-name options of the JSON SerDe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyOptions {
    /// Lowercase keys.
    pub lowercase: bool,
    /// Dots to underscores.
    pub dots_to_underscores: bool,
}

fn conversion_error(code: &str, message: String) -> RecordError {
    RecordError {
        output_type: "format-conversion-failed".into(),
        code: code.into(),
        message,
    }
}

/// Encodes records as one Parquet file.
pub(crate) fn encode_parquet(
    records: &[Bytes],
    conversion: Conversion<'_>,
    keys: KeyOptions,
    compression: ParquetCompression,
) -> Result<ParquetOutput> {
    let mut failed = Vec::new();
    let unusable = |reason: &str| ParquetOutput {
        bytes: None,
        schema: None,
        rows: 0,
        failed: (0..records.len())
            .map(|i| {
                (
                    i,
                    conversion_error("DataFormatConversion.InvalidSchema", reason.to_string()),
                )
            })
            .collect(),
    };
    let (schema, arrow, batches) = match conversion {
        Conversion::Unusable(reason) => return Ok(unusable(reason)),
        Conversion::Table(table, options) => {
            let serde = match table {
                HiveType::Struct(columns) => JsonSerDe::new(columns.clone(), options.clone()),
                other => Err(format!("a table schema must be a struct, not {other}")),
            };
            let serde = match serde {
                Ok(serde) => serde,
                Err(why) => return Ok(unusable(&format!("the table cannot be used: {why}"))),
            };
            let batch = convert_to_table(records, &serde, &mut failed);
            (
                FlushSchema::Table(table.clone()),
                Arc::clone(serde.schema()),
                batch.into_iter().collect(),
            )
        }
        Conversion::Infer { running, fixed } => {
            let (schema, batches) = infer_and_decode(records, running, fixed, keys, &mut failed);
            (
                FlushSchema::Inferred(schema.clone()),
                arrow_schema(&schema),
                batches,
            )
        }
    };
    failed.sort_by_key(|(i, _)| *i);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let bytes = if rows == 0 {
        None
    } else {
        let codec = match compression {
            ParquetCompression::Zstd => lakehose_catalog::parquet_writer::default_codec(),
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
        };
        let props = lakehose_catalog::parquet_writer::writer_properties(codec).build();
        let mut writer = ArrowWriter::try_new(Vec::new(), arrow, Some(props))?;
        for batch in &batches {
            writer.write(batch)?;
        }
        Some(Bytes::from(writer.into_inner()?))
    };
    Ok(ParquetOutput {
        bytes,
        schema: Some(schema),
        rows,
        failed,
    })
}

/// Converts records to a table's exact columns; records that are not JSON
/// objects or do not fit the columns are reported in `failed`.
fn convert_to_table(
    records: &[Bytes],
    serde: &JsonSerDe,
    failed: &mut Vec<(usize, RecordError)>,
) -> Option<RecordBatch> {
    let mut objects = Vec::with_capacity(records.len());
    for (i, raw) in records.iter().enumerate() {
        match parse_object(raw) {
            Ok(Value::Object(map)) => match serde.check(&map) {
                Ok(()) => objects.push(map),
                Err(why) => failed.push((
                    i,
                    conversion_error(
                        "DataFormatConversion.MalformedData",
                        format!("record does not fit the table schema: {why}"),
                    ),
                )),
            },
            Ok(_) => unreachable!("parse_object returns objects"),
            Err(e) => failed.push((i, e)),
        }
    }
    if objects.is_empty() {
        return None;
    }
    let refs: Vec<&serde_json::Map<String, Value>> = objects.iter().collect();
    match serde.decode(&refs) {
        Ok(batch) => Some(batch),
        Err(why) => {
            // Every record was checked, so this is not expected; the
            // records still go to the error prefix rather than vanish.
            let reason = format!("records could not be converted: {why}");
            let checked: Vec<usize> = (0..records.len())
                .filter(|i| !failed.iter().any(|(f, _)| f == i))
                .collect();
            for i in checked {
                failed.push((
                    i,
                    conversion_error("DataFormatConversion.MalformedData", reason.clone()),
                ));
            }
            None
        }
    }
}

/// A record parsed as a JSON object, or why it is not one.
fn parse_object(raw: &[u8]) -> std::result::Result<Value, RecordError> {
    match serde_json::from_slice(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(conversion_error(
            "DataFormatConversion.NotAnObject",
            "record is not a JSON object".into(),
        )),
        Err(e) => Err(conversion_error(
            "Invalid.JSON",
            format!("record is not valid JSON: {e}"),
        )),
    }
}

/// Infers the schema of records (or uses `fixed`) and decodes them.
fn infer_and_decode(
    records: &[Bytes],
    running: &JType,
    fixed: Option<&JType>,
    keys: KeyOptions,
    failed: &mut Vec<(usize, RecordError)>,
) -> (JType, Vec<RecordBatch>) {
    // Fast path: the running schema already fits every record (no new
    // field, no new type, no key to rename): decode once, strictly.
    let fast = match (fixed, running) {
        (None, JType::Struct { fields }) if !fields.is_empty() => {
            decode(records.iter().map(|r| &r[..]), running, true).ok()
        }
        _ => None,
    };
    if let Some(batches) = fast {
        return (running.clone(), batches);
    }
    let (schema, prepared) = match fixed {
        Some(schema) => (schema.clone(), prepare(records, keys, failed, None)),
        None => {
            let mut schema = match running {
                JType::Struct { .. } => running.clone(),
                _ => JType::Struct { fields: vec![] },
            };
            let prepared = prepare(records, keys, failed, Some(&mut schema));
            (schema, prepared)
        }
    };
    let batches = decode_isolating(&prepared, &schema, failed);
    (schema, batches)
}

/// Decodes the prepared records; when the batch fails, decodes record by
/// record so only the records that do not fit are reported.
fn decode_isolating(
    prepared: &[Option<Cow<'_, [u8]>>],
    schema: &JType,
    failed: &mut Vec<(usize, RecordError)>,
) -> Vec<RecordBatch> {
    let good: Vec<(usize, &[u8])> = prepared
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_deref().map(|r| (i, r)))
        .collect();
    if let Ok(batches) = decode(good.iter().map(|(_, r)| *r), schema, false) {
        return batches;
    }
    let mut batches = Vec::new();
    for (i, r) in &good {
        match decode(std::iter::once(*r), schema, false) {
            Ok(mut b) => batches.append(&mut b),
            Err(e) => failed.push((
                *i,
                conversion_error(
                    "DataFormatConversion.MalformedData",
                    format!("record does not fit the table schema: {e}"),
                ),
            )),
        }
    }
    batches
}

/// Parses records, normalises keys, and (when `schema` is given) merges
/// each record's type into it. Records that fail are recorded in `failed`
/// and left out.
fn prepare<'a>(
    records: &'a [Bytes],
    keys: KeyOptions,
    failed: &mut Vec<(usize, RecordError)>,
    mut schema: Option<&mut JType>,
) -> Vec<Option<Cow<'a, [u8]>>> {
    records
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let mut value = match parse_object(raw) {
                Ok(v) => v,
                Err(e) => {
                    failed.push((i, e));
                    return None;
                }
            };
            let changed = normalize_keys(&mut value, keys.lowercase, keys.dots_to_underscores);
            if let Some(schema) = schema.as_deref_mut() {
                match schema.merge(&JType::of(&value), "") {
                    Ok(merged) => *schema = merged,
                    Err(conflict) => {
                        failed.push((
                            i,
                            conversion_error(
                                "DataFormatConversion.TypeConflict",
                                conflict.to_string(),
                            ),
                        ));
                        return None;
                    }
                }
            }
            Some(if changed {
                Cow::Owned(value.to_string().into_bytes())
            } else {
                Cow::Borrowed(&raw[..])
            })
        })
        .collect()
}

fn decode<'a>(
    records: impl Iterator<Item = &'a [u8]>,
    schema: &JType,
    strict: bool,
) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let mut decoder = ReaderBuilder::new(arrow_schema(schema))
        .with_batch_size(DECODE_BATCH)
        .with_coerce_primitive(true)
        .with_strict_mode(strict)
        .build_decoder()?;
    let mut batches = Vec::new();
    for record in records {
        for chunk in [record, b"\n".as_slice()] {
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = decoder.decode(rest)?;
                rest = &rest[n..];
                if !rest.is_empty()
                    && let Some(b) = decoder.flush()?
                {
                    batches.push(b);
                }
            }
        }
    }
    if let Some(b) = decoder.flush()? {
        batches.push(b);
    }
    Ok(batches)
}

/// Encodes records as JSON lines (each record followed by a newline unless
/// it already ends with one), compressed as configured.
pub(crate) fn encode_json_lines(records: &[Bytes], compression: FileCompression) -> Result<Bytes> {
    let mut raw = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
    for r in records {
        raw.extend_from_slice(r);
        if !r.ends_with(b"\n") {
            raw.push(b'\n');
        }
    }
    compress(raw, compression)
}

fn compress(raw: Vec<u8>, compression: FileCompression) -> Result<Bytes> {
    let io = |source| crate::error::Error::Io {
        path: "<compression>".into(),
        source,
    };
    Ok(Bytes::from(match compression {
        FileCompression::Uncompressed => raw,
        FileCompression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 4),
                flate2::Compression::default(),
            );
            enc.write_all(&raw).map_err(io)?;
            enc.finish().map_err(io)?
        }
        FileCompression::Snappy => {
            let mut enc = snap::write::FrameEncoder::new(Vec::with_capacity(raw.len() / 2));
            enc.write_all(&raw).map_err(io)?;
            enc.into_inner().map_err(|e| io(e.into_error()))?
        }
    }))
}

/// One record that goes to the error prefix.
#[derive(Debug, Clone)]
pub(crate) struct ErrorDocument<'a> {
    /// The record's bytes.
    pub data: &'a [u8],
    /// Why.
    pub error: &'a RecordError,
    /// Arrival time, epoch ms.
    pub arrival_ms: i64,
    /// The record's id as acknowledged.
    pub record_id: String,
}

/// Encodes error documents as JSON lines in Firehose's error-output shape,
/// with `rawData` base64-encoded.
pub(crate) fn encode_errors(stream: &str, docs: &[ErrorDocument<'_>]) -> Bytes {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for d in docs {
        let line = serde_json::json!({
            "attemptsMade": 1,
            "arrivalTimestamp": d.arrival_ms,
            "errorCode": d.error.code,
            "errorMessage": d.error.message,
            "errorOutputType": d.error.output_type,
            "attemptEndingTimestamp": d.arrival_ms,
            "rawData": engine.encode(d.data),
            "deliveryStreamName": stream,
            "recordId": d.record_id,
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// The schema as the JSON text stored in a flush intent: an inferred
/// schema as its JSON form, a table's as `{"table": "struct<..>"}`.
pub(crate) fn schema_text(schema: &FlushSchema) -> String {
    match schema {
        FlushSchema::Inferred(t) => serde_json::to_string(t).unwrap_or_default(),
        FlushSchema::Table(t) => serde_json::json!({ "table": t.to_string() }).to_string(),
    }
}

/// Parses a schema stored in a flush intent.
pub(crate) fn parse_schema_text(text: &str) -> Option<FlushSchema> {
    let value: Value = serde_json::from_str(text).ok()?;
    if let Some(table) = value.get("table").and_then(Value::as_str) {
        return HiveType::parse(table).ok().map(FlushSchema::Table);
    }
    serde_json::from_value(value)
        .ok()
        .map(FlushSchema::Inferred)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    const KEYS: KeyOptions = KeyOptions {
        lowercase: true,
        dots_to_underscores: false,
    };

    fn read(bytes: &Bytes) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn recs(lines: &[&str]) -> Vec<Bytes> {
        lines.iter().map(|l| Bytes::from(l.to_string())).collect()
    }

    #[test]
    fn writes_parquet_and_isolates_bad_records() {
        let records = recs(&[
            r#"{"a": 1, "b": "x", "ts": "2026-11-23T08:00:00Z"}"#,
            r#"{"a": 2.5, "B": "y"}"#,
            r#"not json"#,
            r#"[1, 2]"#,
            r#"{"a": {"nested": true}}"#,
        ]);
        let out = encode_parquet(
            &records,
            infer(&JType::Null),
            KEYS,
            ParquetCompression::Zstd,
        )
        .unwrap();
        assert_eq!(out.rows, 2, "{:?}", out.failed);
        assert_eq!(
            codes(&out),
            [
                (2, "Invalid.JSON"),
                (3, "DataFormatConversion.NotAnObject"),
                (4, "DataFormatConversion.TypeConflict")
            ]
        );
        let batches = read(out.bytes.as_ref().unwrap());
        let batch = &batches[0];
        let a = batch
            .column_by_name("a")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(a.values(), &[1.0, 2.5]);
        let b = batch.column_by_name("b").unwrap().as_string::<i32>();
        assert_eq!(b.value(0), "x");
        assert_eq!(b.value(1), "y");
        let ts = batch.column_by_name("ts").unwrap();
        assert!(ts.is_null(1));
    }

    #[test]
    fn fast_path_keeps_schema_and_fixed_schema_replays() {
        let first = encode_parquet(
            &recs(&[r#"{"a": 1, "s": "x"}"#]),
            infer(&JType::Null),
            KEYS,
            ParquetCompression::Snappy,
        )
        .unwrap();
        let Some(FlushSchema::Inferred(first_schema)) = first.schema else {
            panic!("an inferred schema")
        };
        // A later batch with the same shape takes the fast path.
        let second = encode_parquet(
            &recs(&[r#"{"a": 7, "s": 3}"#, r#"{"s": "z"}"#]),
            infer(&first_schema),
            KEYS,
            ParquetCompression::Snappy,
        )
        .unwrap();
        assert_eq!(
            second.schema,
            Some(FlushSchema::Inferred(first_schema.clone()))
        );
        assert_eq!(second.rows, 2);
        let batches = read(second.bytes.as_ref().unwrap());
        assert_eq!(
            batches[0]
                .column_by_name("s")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "3"
        );
        // Replaying with the recorded schema gives the same rows.
        let text = schema_text(second.schema.as_ref().unwrap());
        let Some(FlushSchema::Inferred(fixed)) = parse_schema_text(&text) else {
            panic!("the intent's schema reads back")
        };
        let replay = encode_parquet(
            &recs(&[r#"{"a": 7, "s": 3}"#, r#"{"s": "z"}"#]),
            Conversion::Infer {
                running: &JType::Null,
                fixed: Some(&fixed),
            },
            KEYS,
            ParquetCompression::Snappy,
        )
        .unwrap();
        assert_eq!(read(replay.bytes.as_ref().unwrap()), batches);
    }

    /// Each failed record's index and error code.
    fn codes(out: &ParquetOutput) -> Vec<(usize, &str)> {
        out.failed
            .iter()
            .map(|(i, e)| (*i, e.code.as_str()))
            .collect()
    }

    fn infer(running: &JType) -> Conversion<'_> {
        Conversion::Infer {
            running,
            fixed: None,
        }
    }

    #[test]
    fn table_schema_is_written_exactly_and_misfits_fail() {
        let table = HiveType::parse(
            "struct<status:int,ts:string,req:struct<headers:map<string,string>>,price:decimal(6,2)>",
        )
        .unwrap();
        let options = SerDeOptions {
            case_insensitive: true,
            ..Default::default()
        };
        let records = recs(&[
            r#"{"Status": "200", "ts": "2026-11-23T08:00:00Z", "req": {"headers": {"Host": "a"}}, "price": 1.5}"#,
            r#"{"status": "oops"}"#,
            r#"[]"#,
        ]);
        let out = encode_parquet(
            &records,
            Conversion::Table(&table, &options),
            KEYS,
            ParquetCompression::Zstd,
        )
        .unwrap();
        assert_eq!(out.rows, 1);
        assert_eq!(out.schema, Some(FlushSchema::Table(table.clone())));
        assert_eq!(
            codes(&out),
            [
                (1, "DataFormatConversion.MalformedData"),
                (2, "DataFormatConversion.NotAnObject")
            ]
        );
        assert!(out.failed[0].1.message.contains(r#"field "status""#));
        let batch = &read(out.bytes.as_ref().unwrap())[0];
        let types: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| HiveType::from_arrow(f.data_type()).unwrap().to_string())
            .collect();
        assert_eq!(
            types,
            [
                "int",
                "string",
                "struct<headers:map<string,string>>",
                "decimal(6,2)"
            ]
        );
        assert_eq!(
            batch.column(1).as_string::<i32>().value(0),
            "2026-11-23T08:00:00Z"
        );
        let text = schema_text(out.schema.as_ref().unwrap());
        assert_eq!(parse_schema_text(&text), out.schema);
        let unusable = encode_parquet(
            &records,
            Conversion::Unusable("column x has type uuid"),
            KEYS,
            ParquetCompression::Zstd,
        )
        .unwrap();
        assert_eq!(unusable.failed.len(), 3);
        assert!(unusable.bytes.is_none());
        assert_eq!(unusable.failed[0].1.output_type, "format-conversion-failed");
    }

    #[test]
    fn json_lines_and_compression() {
        let records = recs(&["{\"a\":1}", "{\"a\":2}\n"]);
        let plain = encode_json_lines(&records, FileCompression::Uncompressed).unwrap();
        assert_eq!(&plain[..], b"{\"a\":1}\n{\"a\":2}\n");
        let gz = encode_json_lines(&records, FileCompression::Gzip).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text)
            .unwrap();
        assert_eq!(text.as_bytes(), &plain[..]);
        let sn = encode_json_lines(&records, FileCompression::Snappy).unwrap();
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut snap::read::FrameDecoder::new(&sn[..]), &mut text).unwrap();
        assert_eq!(text, &plain[..]);
    }

    #[test]
    fn error_documents() {
        let err = RecordError {
            output_type: "processing-failed".into(),
            code: "Invalid.JSON".into(),
            message: "bad".into(),
        };
        let out = encode_errors(
            "s",
            &[ErrorDocument {
                data: b"{x",
                error: &err,
                arrival_ms: 5,
                record_id: "id1".into(),
            }],
        );
        let v: Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
        assert_eq!(v["rawData"], "e3g=");
        assert_eq!(v["errorCode"], "Invalid.JSON");
        assert_eq!(v["recordId"], "id1");
    }
}
