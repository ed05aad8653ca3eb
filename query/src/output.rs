//! What running one statement produces, and how it fails: the contract
//! between the engine and its front ends (the Athena API, the Postgres wire
//! server, the CLI).

use std::fmt;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// Athena's statement classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StatementType {
    /// CREATE/DROP/ALTER, MSCK REPAIR.
    Ddl,
    /// SELECT, CTAS, INSERT INTO, UNLOAD.
    Dml,
    /// SHOW, DESCRIBE, EXPLAIN.
    Utility,
}

impl StatementType {
    /// Athena's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ddl => "DDL",
            Self::Dml => "DML",
            Self::Utility => "UTILITY",
        }
    }
}

/// One statement to run.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    /// The SQL text (one statement).
    pub sql: String,
    /// Current database (`default` when absent).
    pub database: Option<String>,
    /// Catalog name (`awsdatacatalog` when absent).
    pub catalog: Option<String>,
    /// Values for `?` placeholders, as SQL literals, in order.
    pub parameters: Vec<String>,
    /// Fail the query once it would scan more than this many bytes.
    pub bytes_scanned_cutoff: Option<u64>,
    /// The statement is Postgres SQL reading Postgres's system catalog
    /// (`pg_catalog`), sent by a Postgres client such as psql's `\d`.
    pub postgres_catalog: bool,
}

impl QueryRequest {
    /// A request for `sql` in `database`.
    pub fn new(sql: impl Into<String>, database: Option<&str>) -> Self {
        Self {
            sql: sql.into(),
            database: database.map(str::to_string),
            ..Default::default()
        }
    }
}

/// The result of a statement.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// DDL, DML or UTILITY.
    pub statement_type: StatementType,
    /// Athena's finer statement name: `SELECT`, `CREATE_TABLE`,
    /// `CREATE_TABLE_AS_SELECT`, `INSERT`, `SHOW_TABLES`, `DESCRIBE_TABLE`, ...
    pub substatement_type: String,
    /// Result columns.
    pub schema: SchemaRef,
    /// Result rows.
    pub batches: Vec<RecordBatch>,
    /// Rows written by CTAS / INSERT INTO / UNLOAD.
    pub update_count: Option<u64>,
    /// Bytes read from storage.
    pub bytes_scanned: u64,
}

impl QueryOutput {
    /// Number of result rows.
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Whether Athena puts a header row first in GetQueryResults (SELECT
    /// results do; DDL and utility output does not).
    pub fn has_header_row(&self) -> bool {
        self.statement_type == StatementType::Dml && self.update_count.is_none()
    }
}

/// Why a statement failed, in Athena's categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// The SQL does not parse.
    Syntax,
    /// Unknown table/column/function, type errors: the user's to fix.
    Semantic,
    /// Bad data met while running (cast failure, malformed file).
    Data,
    /// A limit was hit (bytes-scanned cutoff, memory, timeout).
    Limit,
    /// Stopped by the user.
    Cancelled,
    /// A fault of lakehose or its storage.
    Internal,
}

impl QueryErrorKind {
    /// Athena's `ErrorCategory`: 1 system, 2 user, 3 other.
    pub fn athena_category(self) -> u8 {
        match self {
            Self::Syntax | Self::Semantic | Self::Data | Self::Limit => 2,
            Self::Internal => 1,
            Self::Cancelled => 3,
        }
    }
}

/// A failed statement.
#[derive(Debug, Clone)]
pub struct QueryError {
    /// Category.
    pub kind: QueryErrorKind,
    /// The message shown to the user (Athena's `StateChangeReason`).
    pub message: String,
}

impl QueryError {
    /// An error of `kind`.
    pub fn new(kind: QueryErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

/// Runs statements: implemented by the engine, used by the front ends.
#[async_trait]
pub trait SqlRunner: Send + Sync + fmt::Debug {
    /// Runs one statement to completion. Dropping the future cancels it.
    async fn run(&self, request: QueryRequest) -> Result<QueryOutput, QueryError>;
}
