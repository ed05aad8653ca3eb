//! Runs every `sql/tests/*.slt` golden file (sqllogictest format) against a
//! lakehose session and fails on any mismatch, reporting file and line.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{EngineConfig, QueryEngine, QueryError, QueryRequest};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// A fresh engine over an empty warehouse folder, for one golden file.
fn session() -> (QueryEngine, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let storage = Storage::local(dir.path()).expect("storage");
    let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
    let engine = QueryEngine::new(catalog, storage, EngineConfig::default()).expect("engine");
    (engine, dir)
}

/// Runs one statement through the engine (DDL and DML included); `USE db`
/// switches the current database of the file.
async fn execute(db: &mut Lakehose, sql: &str) -> Result<lakehose_query::QueryOutput, QueryError> {
    let trimmed = sql.trim().trim_end_matches(';');
    let mut words = trimmed.split_whitespace();
    if let (Some(u), Some(name), None) = (words.next(), words.next(), words.next())
        && u.eq_ignore_ascii_case("use")
    {
        db.database = name.to_ascii_lowercase();
        return Ok(lakehose_query::engine::empty_output(
            lakehose_query::StatementType::Utility,
            "USE",
        ));
    }
    db.engine
        .execute(QueryRequest::new(sql, Some(&db.database)))
        .await
}

struct Lakehose {
    engine: QueryEngine,
    database: String,
    _dir: Arc<tempfile::TempDir>,
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) {
        DefaultColumnType::FloatingPoint
    } else if matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

#[async_trait]
impl AsyncDB for Lakehose {
    type Error = QueryError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let output = execute(self, sql).await?;
        if let Some(n) = output.update_count {
            return Ok(DBOutput::StatementComplete(n));
        }
        let batches = output.batches;
        if output.schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let schema = output.schema;
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let opts = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    QueryError::new(lakehose_query::QueryErrorKind::Internal, e.to_string())
                })?;
            for r in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .zip(batch.columns())
                        .map(|(f, c)| {
                            let v = f.value(r).to_string();
                            if v.is_empty() && !c.is_null(r) {
                                "(empty)".to_string()
                            } else {
                                v
                            }
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lakehose"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sql/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sql/tests exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let (engine, dir) = session();
        let dir = Arc::new(dir);
        let mut runner = sqllogictest::Runner::new(move || {
            let engine = engine.clone();
            let dir = Arc::clone(&dir);
            async move {
                Ok::<_, QueryError>(Lakehose {
                    engine,
                    database: "default".into(),
                    _dir: dir,
                })
            }
        });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}", e.display(false)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
