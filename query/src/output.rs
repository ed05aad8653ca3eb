//! What running one statement produces, and how it fails: the contract
//! between the engine and its front ends (the Athena API, the Postgres wire
//! server, the CLI).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt};

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

/// The result of a statement whose rows arrive as they are produced: a
/// front end sends them on (to a Postgres client, into a result file) and
/// never holds them all.
pub struct QueryStream {
    /// DDL, DML or UTILITY.
    pub statement_type: StatementType,
    /// Athena's finer statement name (see [`QueryOutput`]).
    pub substatement_type: String,
    /// Result columns.
    pub schema: SchemaRef,
    /// Rows written by CTAS / INSERT INTO / UNLOAD.
    pub update_count: Option<u64>,
    /// The rows. An error ends the stream (a failure while running, a limit
    /// hit after the first rows went out). Dropping it cancels the query.
    pub batches: BoxStream<'static, Result<RecordBatch, QueryError>>,
    /// Bytes read from storage; final once `batches` has ended.
    pub bytes_scanned: Arc<AtomicU64>,
}

impl fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryStream")
            .field("statement_type", &self.statement_type)
            .field("substatement_type", &self.substatement_type)
            .field("schema", &self.schema)
            .field("update_count", &self.update_count)
            .finish_non_exhaustive()
    }
}

impl QueryStream {
    /// The stream of a result already held in memory.
    pub fn from_output(output: QueryOutput) -> Self {
        Self {
            statement_type: output.statement_type,
            substatement_type: output.substatement_type,
            schema: output.schema,
            update_count: output.update_count,
            batches: stream::iter(output.batches.into_iter().map(Ok)).boxed(),
            bytes_scanned: Arc::new(AtomicU64::new(output.bytes_scanned)),
        }
    }

    /// Bytes read from storage so far.
    pub fn bytes_scanned(&self) -> u64 {
        self.bytes_scanned.load(Ordering::Relaxed)
    }

    /// Whether Athena puts a header row first in GetQueryResults (see
    /// [`QueryOutput::has_header_row`]).
    pub fn has_header_row(&self) -> bool {
        self.statement_type == StatementType::Dml && self.update_count.is_none()
    }
}

/// The error a statement that panicked ends with: the panic is contained
/// where it happened and reported as an internal error naming it.
pub fn panic_error(payload: &(dyn std::any::Any + Send)) -> QueryError {
    let what = lakehose_catalog::supervise::panic_message(payload);
    tracing::error!(panic = %what, "a query panicked; it fails with an internal error");
    QueryError::new(
        QueryErrorKind::Internal,
        format!(
            "INTERNAL_ERROR: lakehose failed while running the query (a bug: {what}); the query was stopped"
        ),
    )
}

/// Runs statements: implemented by the engine, used by the front ends.
#[async_trait]
pub trait SqlRunner: Send + Sync + fmt::Debug {
    /// Runs one statement to completion. Dropping the future cancels it.
    async fn run(&self, request: QueryRequest) -> Result<QueryOutput, QueryError>;

    /// Runs one statement, its rows streamed as they are produced. The
    /// default runs it to completion and streams the held result; a panic
    /// while running is an internal error, not a crash. Dropping the stream
    /// cancels the statement.
    async fn run_stream(&self, request: QueryRequest) -> Result<QueryStream, QueryError> {
        match std::panic::AssertUnwindSafe(self.run(request))
            .catch_unwind()
            .await
        {
            Ok(result) => result.map(QueryStream::from_output),
            Err(payload) => Err(panic_error(payload.as_ref())),
        }
    }
}
