//! Classifying one file and inferring its schema from a sample: Parquet
//! (footer schema), JSON lines, CSV/TSV (delimiter, header and types), each
//! gzip'd or not.

use std::io::Read;

use arrow::datatypes::{DataType, Field};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::schema::{JType, hive_type};

/// Most lines of a text file that are sampled.
const SAMPLE_LINES: usize = 1000;

/// What a file is.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSchema {
    /// `parquet`, `json` or `csv` (Glue's classification).
    pub classification: &'static str,
    /// Whether the file is gzip'd.
    pub gzip: bool,
    /// For CSV: delimiter and whether the first line is a header.
    pub csv: Option<CsvFormat>,
    /// Columns: names and types (a struct).
    pub schema: JType,
    /// Rows seen in the sample.
    pub rows: u64,
}

/// CSV details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvFormat {
    /// The delimiter.
    pub delimiter: u8,
    /// Whether the first line names the columns.
    pub header: bool,
    /// Whether values are quoted.
    pub quoted: bool,
}

/// Classifies `data` (the whole file, or its first bytes for text files).
/// `Err` says why the file cannot be cataloged.
pub fn classify(data: &Bytes) -> Result<FileSchema, String> {
    if data.is_empty() {
        return Err("the file is empty".into());
    }
    if data.len() >= 8 && &data[..4] == b"PAR1" {
        return parquet_schema(data);
    }
    let (text, gzip) = if data.len() >= 2 && data[0] == 0x1f && data[1] == 0x8b {
        let mut out = Vec::new();
        let mut reader = flate2::read::MultiGzDecoder::new(&data[..]).take(16 * 1024 * 1024);
        if let Err(e) = reader.read_to_end(&mut out) {
            // A truncated sample of a large gzip file still decodes a prefix.
            if out.is_empty() {
                return Err(format!("the gzip data is corrupt: {e}"));
            }
        }
        (out, true)
    } else {
        (data.to_vec(), false)
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err("the file has no records".into());
    }
    let mut schema = match text.iter().find(|c| !c.is_ascii_whitespace()) {
        Some(b'{') => json_schema(&text)?,
        _ => csv_schema(&text)?,
    };
    schema.gzip = gzip;
    Ok(schema)
}

fn parquet_schema(data: &Bytes) -> Result<FileSchema, String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data.clone())
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let fields = builder
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), arrow_to_jtype(f)))
        .collect();
    Ok(FileSchema {
        classification: "parquet",
        gzip: false,
        csv: None,
        schema: JType::Struct { fields },
        rows,
    })
}

fn arrow_to_jtype(field: &Field) -> JType {
    match field.data_type() {
        DataType::Boolean => JType::Bool,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => JType::Int,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            JType::Float
        }
        DataType::Timestamp(..) => JType::Timestamp,
        DataType::List(item) | DataType::LargeList(item) => JType::List {
            item: Box::new(arrow_to_jtype(item)),
        },
        DataType::Struct(fields) => JType::Struct {
            fields: fields
                .iter()
                .map(|f| (f.name().clone(), arrow_to_jtype(f)))
                .collect(),
        },
        _ => JType::String,
    }
}

fn json_schema(text: &[u8]) -> Result<FileSchema, String> {
    let mut schema = JType::Struct { fields: vec![] };
    let mut rows = 0u64;
    let lines: Vec<&[u8]> = text
        .split(|&c| c == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    // The sample's last line may be cut short; ignore it if it does not parse.
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().take(SAMPLE_LINES).enumerate() {
        match serde_json::from_slice::<Value>(line) {
            Ok(v @ Value::Object(_)) => {
                // Conflicting shapes across records widen to text here: the
                // table must hold every file.
                schema = schema
                    .merge(&JType::of(&v), "")
                    .unwrap_or_else(|_| widen_conflicts(&schema, &v));
                rows += 1;
            }
            Ok(_) => return Err(format!("line {} is JSON but not an object", i + 1)),
            Err(_) if i == last && i > 0 => {}
            Err(e) => return Err(format!("line {} is not valid JSON: {e}", i + 1)),
        }
    }
    Ok(FileSchema {
        classification: "json",
        gzip: false,
        csv: None,
        schema,
        rows,
    })
}

/// Merges field by field, turning a conflicting field into `string`.
fn widen_conflicts(schema: &JType, record: &Value) -> JType {
    let JType::Struct { fields: existing } = schema else {
        return schema.clone();
    };
    let JType::Struct { fields: incoming } = JType::of(record) else {
        return schema.clone();
    };
    let mut fields = existing.clone();
    for (name, t) in incoming {
        match fields.iter_mut().find(|(n, _)| *n == name) {
            Some((_, current)) => {
                *current = current.merge(&t, &name).unwrap_or(JType::String);
            }
            None => fields.push((name, t)),
        }
    }
    JType::Struct { fields }
}

fn csv_records(text: &[u8], delimiter: u8) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    reader
        .records()
        .take(SAMPLE_LINES)
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_string).collect())
        .collect()
}

fn cell_type(v: &str) -> Option<JType> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    Some(if v.parse::<i64>().is_ok() {
        JType::Int
    } else if v.parse::<f64>().is_ok() {
        JType::Float
    } else if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
        JType::Bool
    } else {
        JType::String
    })
}

fn csv_schema(text: &[u8]) -> Result<FileSchema, String> {
    // The delimiters Glue tries, in its order.
    let mut best: Option<(u8, Vec<Vec<String>>)> = None;
    for delimiter in [b',', b'|', b'\t', b';', 0x01] {
        let mut records = csv_records(text, delimiter);
        // The sample's last line may be cut short.
        if records.len() > 2 && records.last().map(Vec::len) != records.first().map(Vec::len) {
            records.pop();
        }
        let width = records.first().map_or(0, Vec::len);
        if records.len() >= 2 && width >= 2 && records.iter().all(|r| r.len() == width) {
            best = Some((delimiter, records));
            break;
        }
    }
    let Some((delimiter, records)) = best else {
        return Err(
            "not Parquet, JSON lines or CSV/TSV (no delimiter gives at least 2 columns and 2 rows)"
                .into(),
        );
    };
    let width = records[0].len();
    let column_type = |rows: &[Vec<String>], i: usize| {
        rows.iter()
            .filter_map(|r| cell_type(&r[i]))
            .fold(JType::Null, |acc, t| {
                acc.merge(&t, "").unwrap_or(JType::String)
            })
    };
    // Glue's header rule: every header cell is text (not a number or
    // boolean), shorter than 150 characters, and some data column is not
    // text.
    let first = &records[0];
    let data = &records[1..];
    let header = first
        .iter()
        .all(|c| matches!(cell_type(c), Some(JType::String)) && c.len() < 150)
        && (0..width).any(|i| !matches!(column_type(data, i), JType::String | JType::Null));
    let rows: &[Vec<String>] = if header { data } else { &records };
    let fields = (0..width)
        .map(|i| {
            let name = if header {
                sanitize_column(&first[i], i)
            } else {
                format!("col{}", i + 1)
            };
            (name, column_type(rows, i))
        })
        .collect();
    let quoted = text.contains(&b'"');
    Ok(FileSchema {
        classification: "csv",
        gzip: false,
        csv: Some(CsvFormat {
            delimiter,
            header,
            quoted,
        }),
        schema: JType::Struct { fields },
        rows: rows.len() as u64,
    })
}

fn sanitize_column(name: &str, index: usize) -> String {
    let clean: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    if clean.is_empty() {
        format!("col{}", index + 1)
    } else {
        clean
    }
}

/// Hive columns of a struct schema.
pub fn hive_columns(schema: &JType) -> Vec<(String, String)> {
    match schema {
        JType::Struct { fields } => fields
            .iter()
            .map(|(n, t)| (n.clone(), hive_type(t)))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn json_lines_with_nested_and_mixed_records() {
        let text = b"{\"id\": 1, \"user\": {\"name\": \"a\"}, \"tags\": [\"x\"]}\n{\"id\": 2.5, \"extra\": true, \"user\": {\"name\": \"b\", \"age\": 3}}\n";
        let f = classify(&Bytes::from_static(text)).unwrap();
        assert_eq!(f.classification, "json");
        assert_eq!(f.rows, 2);
        assert_eq!(
            hive_columns(&f.schema),
            [
                ("id".to_string(), "double".to_string()),
                ("user".into(), "struct<name:string,age:bigint>".into()),
                ("tags".into(), "array<string>".into()),
                ("extra".into(), "boolean".into()),
            ]
        );
        let g = classify(&gz(text)).unwrap();
        assert!(g.gzip);
        assert_eq!(g.schema, f.schema);
    }

    #[test]
    fn csv_and_tsv_with_and_without_headers() {
        let f = classify(&Bytes::from_static(b"id,name,score\n1,ann,2.5\n2,bob,3\n")).unwrap();
        assert_eq!(f.classification, "csv");
        assert!(f.csv.unwrap().header);
        assert_eq!(
            hive_columns(&f.schema),
            [
                ("id".to_string(), "bigint".to_string()),
                ("name".into(), "string".into()),
                ("score".into(), "double".into())
            ]
        );
        let t = classify(&Bytes::from_static(b"1\tx\ttrue\n2\ty\tfalse\n")).unwrap();
        let fmt = t.csv.unwrap();
        assert_eq!(fmt.delimiter, b'\t');
        assert!(!fmt.header);
        assert_eq!(
            hive_columns(&t.schema)[2],
            ("col3".to_string(), "boolean".to_string())
        );
    }

    #[test]
    fn parquet_footers_are_read() {
        use arrow::array::{Int64Array, RecordBatch, StringArray};
        use std::sync::Arc;
        let batch = RecordBatch::try_from_iter([
            ("n", Arc::new(Int64Array::from(vec![1, 2])) as _),
            ("s", Arc::new(StringArray::from(vec!["a", "b"])) as _),
        ])
        .unwrap();
        let mut buf = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let f = classify(&Bytes::from(buf)).unwrap();
        assert_eq!(f.classification, "parquet");
        assert_eq!(f.rows, 2);
        assert_eq!(
            hive_columns(&f.schema)[0],
            ("n".to_string(), "bigint".to_string())
        );
    }

    #[test]
    fn bad_files_are_reported() {
        assert!(classify(&Bytes::new()).unwrap_err().contains("empty"));
        assert!(
            classify(&Bytes::from_static(b"PAR1garbagePAR1"))
                .unwrap_err()
                .contains("Parquet")
        );
        assert!(
            classify(&Bytes::from_static(b"\x1f\x8bnot gzip"))
                .unwrap_err()
                .contains("gzip")
        );
        assert!(
            classify(&Bytes::from_static(b"{\"a\":1}\n{oops}\n{\"a\":2}\n"))
                .unwrap_err()
                .contains("line 2")
        );
        assert!(classify(&Bytes::from_static(b"just one line of prose")).is_err());
    }
}
