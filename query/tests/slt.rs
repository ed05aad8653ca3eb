//! Runs the `sql/tests/*.slt` golden files (sqllogictest format) against a
//! lakehose session and fails on any mismatch, reporting file and line; also
//! checks that every function the README lists exists.
//!
//! ```text
//! cargo test -p lakehose-query --test slt                  # every file
//! cargo test -p lakehose-query --test slt -- datetime map  # files whose name holds a word
//! cargo test -p lakehose-query --test slt -- --complete math
//!     # rewrites the expected results of math.slt from what lakehose answers
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{EngineConfig, QueryEngine, QueryError, QueryRequest};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// The query crate's folder: as cargo gives it to the running test (the
/// checkout may have moved since the binary was built), else as it was at
/// build time.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

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
        return Ok(lakehose_query::contract::empty_output(
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

/// A fresh sqllogictest runner over a fresh engine.
fn runner() -> sqllogictest::Runner<Lakehose, impl sqllogictest::MakeConnection<Conn = Lakehose>> {
    let (engine, dir) = session();
    let dir = Arc::new(dir);
    sqllogictest::Runner::new(move || {
        let engine = engine.clone();
        let dir = Arc::clone(&dir);
        async move {
            Ok::<_, QueryError>(Lakehose {
                engine,
                database: "default".into(),
                _dir: dir,
            })
        }
    })
}

/// Runs (or, with `complete`, rewrites) the golden files whose name holds
/// one of `filters` (all when there is none); returns the failures.
async fn golden_files(filters: &[String], complete: bool) -> (usize, Vec<String>) {
    let dir = manifest_dir().join("../sql/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sql/tests exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return (
            0,
            vec![format!(
                "no .slt file in {} matches {filters:?}",
                dir.display()
            )],
        );
    }
    let mut failures = Vec::new();
    let mut passed = 0;
    for file in &files {
        let result = if complete {
            runner()
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .map_err(|e| format!("{}: {e}", file.display()))
        } else {
            runner()
                .run_file_async(file)
                .await
                .map_err(|e| format!("{}", e.display(false)))
        };
        match result {
            Ok(()) => {
                passed += 1;
                println!("{} ... ok", file.display());
            }
            Err(e) => {
                println!("{} ... FAILED", file.display());
                failures.push(e);
            }
        }
    }
    (passed, failures)
}

fn main() -> std::process::ExitCode {
    let mut complete = false;
    let mut filters = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--complete" => complete = true,
            // The test harness's own flags (`--nocapture`, `--quiet`, ...)
            // mean nothing here.
            a if a.starts_with('-') => {}
            a => filters.push(a.to_string()),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let (mut passed, mut failures) = runtime.block_on(golden_files(&filters, complete));
    if filters.is_empty() {
        match readme_functions_exist() {
            Ok(()) => passed += 1,
            Err(e) => failures.push(e),
        }
    }
    // The test harness's summary line, which CI adds up.
    let verdict = if failures.is_empty() { "ok" } else { "FAILED" };
    if !failures.is_empty() {
        println!("\nfailures:\n\n{}", failures.join("\n\n"));
    }
    println!(
        "test result: {verdict}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out",
        failures.len()
    );
    if failures.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// The function names the README's "Presto/Trino functions" list gives (in
/// backquotes, plain names only; syntax such as `if`, `try` and `try_cast`,
/// and type names, left out).
fn readme_functions() -> Vec<String> {
    let readme = std::fs::read_to_string(manifest_dir().join("../README.md")).expect("README.md");
    let start = readme
        .find("- **Presto/Trino functions**")
        .expect("the README lists the Presto/Trino functions");
    let rest = &readme[start + 2..];
    let list = &rest[..rest.find("\n- **").unwrap_or(rest.len())];
    let syntax = ["if", "try", "try_cast", "varbinary", "varchar"];
    list.split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !syntax.contains(name)
        })
        .map(str::to_string)
        .collect()
}

/// Every function the README lists exists in a lakehose session.
fn readme_functions_exist() -> Result<(), String> {
    let (engine, _dir) = session();
    let ctx = engine
        .context("default", Arc::default())
        .expect("a session context");
    let state = ctx.state();
    let names = readme_functions();
    if names.len() <= 30 {
        return Err(format!(
            "the README's function list was not found: {names:?}"
        ));
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| {
            !state.scalar_functions().contains_key(n.as_str())
                && !state.aggregate_functions().contains_key(n.as_str())
                && !state.window_functions().contains_key(n.as_str())
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the README lists functions lakehose lacks: {missing:?}"
        ))
    }
}
