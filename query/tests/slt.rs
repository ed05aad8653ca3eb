//! Runs every `sql/tests/*.slt` golden file (sqllogictest format) against a
//! lakehose session and fails on any mismatch, reporting file and line.

use std::path::PathBuf;

use async_trait::async_trait;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use lakehose_query::{dialect, functions};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// The session the golden files run against.
fn session() -> SessionContext {
    let ctx = SessionContext::new();
    functions::register(&ctx).expect("register functions");
    ctx
}

/// Parses one statement with DataFusion's parser, applies the lakehose
/// rewrites, plans and runs it.
async fn execute(
    ctx: &SessionContext,
    sql: &str,
) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>, DataFusionError> {
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})?;
    if statements.len() != 1 {
        return Err(DataFusionError::Plan(format!(
            "expected one statement, got {}",
            statements.len()
        )));
    }
    let mut statement = statements.pop_front().expect("one statement");
    if let Statement::Statement(s) = &mut statement {
        dialect::rewrite(s).map_err(DataFusionError::Plan)?;
    }
    let plan = ctx.state().statement_to_plan(statement).await?;
    ctx.execute_logical_plan(plan).await?.collect().await
}

struct Lakehose {
    ctx: SessionContext,
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
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let batches = execute(&self.ctx, sql).await?;
        let Some(first) = batches.first() else {
            return Ok(DBOutput::StatementComplete(0));
        };
        let schema = first.schema();
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
                .collect::<Result<Vec<_>, _>>()?;
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
        let mut runner = sqllogictest::Runner::new(|| async {
            Ok::<_, DataFusionError>(Lakehose { ctx: session() })
        });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}", e.display(false)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
