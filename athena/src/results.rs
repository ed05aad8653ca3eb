//! Result files, written next to each other under the output location:
//!
//! - `<id>.csv` for SELECT and other DML: RFC 4180, a header line of column
//!   names, then one line per row; every value is quoted (`"a ""b"""`), as
//!   Athena writes them, and NULL is an empty unquoted field, so NULL and
//!   the empty string (`""`) stay apart. CTAS / INSERT INTO write an empty
//!   `.csv` (their result is the update count).
//! - `<id>.txt` for DDL and UTILITY statements: one line per row, the row's
//!   values joined by tabs (NULL as nothing), no header.
//! - `<id>.csv.metadata` / `<id>.txt.metadata`: Athena's own metadata file is
//!   a binary protocol-buffer document; lakehose writes a JSON document
//!   instead (`{"Format": "lakehose-athena-result-metadata", "Version": 1,
//!   "StatementType", "SubstatementType", "UpdateCount", "RowCount",
//!   "ColumnInfo": [...], "RowIndex": [...], "ResultBytes"}`). `RowIndex`
//!   holds the byte offset of every [`INDEX_STRIDE`]th data row (line, for
//!   `.txt`), so GetQueryResults reads one page with a ranged read instead
//!   of the whole file. GetQueryResults reads both files back, so results
//!   survive restarts.

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::columns::ColumnInfo;
use lakehose_query::contract::StatementType;
use lakehose_query::values::column_text;

/// Rows between two entries of [`ResultMetadata::row_index`].
pub const INDEX_STRIDE: u64 = 1000;

/// The `Format` member of a metadata file.
pub const METADATA_FORMAT: &str = "lakehose-athena-result-metadata";

/// What a `.metadata` file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResultMetadata {
    /// Always [`METADATA_FORMAT`].
    pub format: String,
    /// Version of this document (1).
    pub version: u32,
    /// DDL, DML or UTILITY.
    pub statement_type: StatementType,
    /// Finer statement name (`SELECT`, `CREATE_TABLE`, ...).
    pub substatement_type: String,
    /// Rows written by CTAS / INSERT INTO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_count: Option<u64>,
    /// Data rows in the result file (without the header).
    pub row_count: u64,
    /// Result columns.
    pub column_info: Vec<ColumnInfo>,
    /// Byte offsets of data rows 0, [`INDEX_STRIDE`], 2×[`INDEX_STRIDE`]...
    #[serde(default)]
    pub row_index: Vec<u64>,
    /// Size of the result file.
    #[serde(default)]
    pub result_bytes: u64,
}

impl ResultMetadata {
    /// Whether the result file is `.txt` (DDL and UTILITY) rather than
    /// `.csv`.
    pub fn is_text(&self) -> bool {
        is_text(self.statement_type)
    }

    /// Whether GetQueryResults puts a header row first (SELECT only).
    pub fn has_header(&self) -> bool {
        self.statement_type == StatementType::Dml && self.update_count.is_none()
    }
}

/// Whether a statement type's results are a `.txt` file.
pub fn is_text(statement_type: StatementType) -> bool {
    matches!(statement_type, StatementType::Ddl | StatementType::Utility)
}

/// The result file of `output` and its metadata document, written whole
/// (the tests' reference for the file written batch by batch).
#[cfg(test)]
pub fn render(
    output: &lakehose_query::contract::QueryOutput,
) -> Result<(Vec<u8>, ResultMetadata), ArrowError> {
    let mut writer = ResultWriter::new(
        output.statement_type,
        &output.substatement_type,
        &output.schema,
        output.update_count,
    );
    for batch in &output.batches {
        writer.push(batch)?;
    }
    let file = writer.take();
    Ok((file, writer.finish()))
}

/// Writes a result file batch by batch: [`push`](Self::push) each batch,
/// [`take`](Self::take) the bytes rendered so far whenever they should go
/// out, and [`finish`](Self::finish) for the metadata document. Only the
/// rendered bytes not yet taken and one index entry per
/// [`INDEX_STRIDE`] rows are held.
#[derive(Debug)]
pub struct ResultWriter {
    text: bool,
    statement_type: StatementType,
    substatement_type: String,
    update_count: Option<u64>,
    column_info: Vec<ColumnInfo>,
    pending: Vec<u8>,
    /// Bytes taken before `pending`.
    taken: u64,
    row_count: u64,
    row_index: Vec<u64>,
    /// For text files: where the current line starts.
    line_start: u64,
}

impl ResultWriter {
    /// A writer for a result of `statement_type` with columns `schema`
    /// (an update count instead of rows for CTAS / INSERT INTO).
    pub fn new(
        statement_type: StatementType,
        substatement_type: &str,
        schema: &Schema,
        update_count: Option<u64>,
    ) -> Self {
        let text = is_text(statement_type);
        let column_info: Vec<ColumnInfo> = if update_count.is_some() {
            vec![ColumnInfo::rows()]
        } else {
            schema.fields().iter().map(|f| ColumnInfo::of(f)).collect()
        };
        let mut pending = Vec::new();
        if update_count.is_none() && !text {
            let header: Vec<Option<String>> =
                column_info.iter().map(|c| Some(c.name.clone())).collect();
            write_csv_line(&mut pending, &header);
        }
        Self {
            text,
            statement_type,
            substatement_type: substatement_type.to_string(),
            update_count,
            column_info,
            pending,
            taken: 0,
            row_count: 0,
            row_index: Vec::new(),
            line_start: 0,
        }
    }

    /// Renders one batch of rows.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        if self.update_count.is_some() {
            return Ok(());
        }
        let columns = batch
            .columns()
            .iter()
            .map(column_text)
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let values: Vec<Option<String>> = columns.iter().map(|c| c[row].clone()).collect();
            if self.text {
                let from = self.pending.len();
                let line: Vec<String> = values.into_iter().map(Option::unwrap_or_default).collect();
                self.pending.extend_from_slice(line.join("\t").as_bytes());
                self.pending.push(b'\n');
                // A value may hold newlines: text rows are lines.
                for i in from..self.pending.len() {
                    if self.pending[i] == b'\n' {
                        if self.row_count.is_multiple_of(INDEX_STRIDE) {
                            self.row_index.push(self.line_start);
                        }
                        self.row_count += 1;
                        self.line_start = self.taken + i as u64 + 1;
                    }
                }
            } else {
                if self.row_count.is_multiple_of(INDEX_STRIDE) {
                    self.row_index.push(self.taken + self.pending.len() as u64);
                }
                write_csv_line(&mut self.pending, &values);
                self.row_count += 1;
            }
        }
        Ok(())
    }

    /// Bytes rendered and not yet taken.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// The bytes rendered since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        self.taken += self.pending.len() as u64;
        std::mem::take(&mut self.pending)
    }

    /// The metadata document (after the last [`take`](Self::take)).
    pub fn finish(self) -> ResultMetadata {
        ResultMetadata {
            format: METADATA_FORMAT.into(),
            version: 1,
            statement_type: self.statement_type,
            substatement_type: self.substatement_type,
            update_count: self.update_count,
            row_count: self.row_count,
            column_info: self.column_info,
            row_index: self.row_index,
            result_bytes: self.taken + self.pending.len() as u64,
        }
    }
}

/// Appends one CSV record: every value quoted, NULL as an empty field.
pub fn write_csv_line(out: &mut Vec<u8>, values: &[Option<String>]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if let Some(v) = v {
            out.push(b'"');
            out.extend_from_slice(v.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        }
    }
    out.push(b'\n');
}

/// Parses an RFC 4180 file: records of fields, `None` for an empty unquoted
/// field (NULL), `Some("")` for `""`.
pub fn parse_csv(data: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let mut records = Vec::new();
    let mut record: Vec<Option<String>> = Vec::new();
    let mut chars = data.chars().peekable();
    let mut line = 1usize;
    if data.is_empty() {
        return Ok(records);
    }
    loop {
        // One field.
        let field = if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        value.push('"');
                    }
                    Some('"') => break,
                    Some(c) => {
                        if c == '\n' {
                            line += 1;
                        }
                        value.push(c);
                    }
                    None => return Err(format!("unterminated quoted field on line {line}")),
                }
            }
            Some(value)
        } else {
            let mut value = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '\n' || c == '\r' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            (!value.is_empty()).then_some(value)
        };
        record.push(field);
        match chars.next() {
            Some(',') => continue,
            Some('\r') => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
            }
            Some('\n') | None => {}
            Some(c) => return Err(format!("unexpected {c:?} after a field on line {line}")),
        }
        line += 1;
        records.push(std::mem::take(&mut record));
        if chars.peek().is_none() {
            return Ok(records);
        }
    }
}

/// Parses a `.txt` result: one row per line, the whole line as one value.
pub fn parse_text(data: &str) -> Vec<Vec<Option<String>>> {
    data.lines().map(|l| vec![Some(l.to_string())]).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lakehose_query::contract::QueryOutput;

    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn select_output() -> QueryOutput {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![
                    Some("plain"),
                    Some(""),
                    Some("with \"quotes\", comma\nand newline"),
                ])),
            ],
        )
        .unwrap();
        QueryOutput {
            statement_type: StatementType::Dml,
            substatement_type: "SELECT".into(),
            schema,
            batches: vec![batch],
            update_count: None,
            bytes_scanned: 0,
        }
    }

    #[test]
    fn csv_quotes_everything_and_keeps_nulls_apart() {
        let (file, metadata) = render(&select_output()).unwrap();
        let text = String::from_utf8(file).unwrap();
        assert_eq!(
            text,
            "\"id\",\"name\"\n\"1\",\"plain\"\n,\"\"\n\"3\",\"with \"\"quotes\"\", comma\nand newline\"\n"
        );
        assert_eq!(metadata.row_count, 3);
        assert_eq!(metadata.row_index, vec![12]);
        assert_eq!(metadata.result_bytes, text.len() as u64);
        assert!(metadata.has_header());
        let records = parse_csv(&text).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[2], vec![None, Some(String::new())]);
        assert_eq!(
            records[3][1].as_deref(),
            Some("with \"quotes\", comma\nand newline")
        );
    }

    #[test]
    fn text_results_are_tab_joined() {
        let mut output = select_output();
        output.statement_type = StatementType::Utility;
        output.substatement_type = "DESCRIBE_TABLE".into();
        let (file, metadata) = render(&output).unwrap();
        let text = String::from_utf8(file).unwrap();
        assert!(text.starts_with("1\tplain\n\t\n"), "{text:?}");
        // The embedded newline makes a fourth line.
        assert_eq!(metadata.row_count, 4);
        assert_eq!(metadata.row_index, vec![0]);
        assert!(metadata.is_text());
        assert!(!metadata.has_header());
        assert_eq!(
            parse_text("a\tb\nc\n"),
            vec![vec![Some("a\tb".to_string())], vec![Some("c".to_string())]]
        );
    }

    #[test]
    fn update_counts_have_a_rows_column_and_no_rows() {
        let mut output = select_output();
        output.update_count = Some(3);
        output.substatement_type = "INSERT".into();
        let (file, metadata) = render(&output).unwrap();
        assert!(file.is_empty());
        assert_eq!(metadata.column_info, vec![ColumnInfo::rows()]);
        assert_eq!(metadata.update_count, Some(3));
        assert!(!metadata.has_header());
    }

    #[test]
    fn a_file_written_batch_by_batch_is_the_file_rendered_whole() {
        let mut output = select_output();
        let batch = output.batches[0].clone();
        output.batches = vec![batch.clone(); 700];
        let (whole, whole_metadata) = render(&output).unwrap();
        let mut writer = ResultWriter::new(
            output.statement_type,
            &output.substatement_type,
            &output.schema,
            None,
        );
        let mut parts = Vec::new();
        for b in &output.batches {
            writer.push(b).unwrap();
            if writer.pending_bytes() > 1000 {
                parts.extend(writer.take());
            }
        }
        parts.extend(writer.take());
        let metadata = writer.finish();
        assert_eq!(parts, whole);
        assert_eq!(metadata, whole_metadata);
        assert_eq!(metadata.row_count, 2100);
        assert_eq!(metadata.row_index.len(), 3);
        // Every indexed offset starts a row.
        let text = String::from_utf8(parts).unwrap();
        for offset in &metadata.row_index {
            let rest = &text[*offset as usize..];
            assert!(
                rest.starts_with("\"1\"") || rest.starts_with(",") || rest.starts_with("\"3\""),
                "{}",
                &rest[..10]
            );
        }
    }

    #[test]
    fn csv_parser_rejects_broken_files() {
        assert!(parse_csv("\"open").is_err());
        assert!(parse_csv("\"a\"x").is_err());
        assert_eq!(parse_csv("").unwrap(), Vec::<Vec<Option<String>>>::new());
        assert_eq!(
            parse_csv("a,,\"\"\r\n").unwrap(),
            vec![vec![Some("a".into()), None, Some(String::new())]]
        );
    }
}
