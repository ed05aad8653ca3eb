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

pub use crate::error::{ErrorCode, QueryError, QueryErrorKind, panic_error};

/// The one catalog lakehose has, as Athena names it.
pub const CATALOG_NAME: &str = "awsdatacatalog";

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
    /// Who runs it, as far as tables are concerned: every table it reads
    /// needs their SELECT grant, every table, database or location it
    /// creates, changes or writes the grant for that. `None` runs it with
    /// every grant (the operator's own tools, a server with no keys).
    pub access: Option<Arc<dyn TableAccess>>,
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
    /// The SQL dialect the client speaks.
    pub dialect: Dialect,
    /// Settings of the caller's session, `(key, value)`, applied to its
    /// `SELECT` and `EXPLAIN` statements over the engine's: lakehose's
    /// planner switches only (see [`crate::check_session_setting`]);
    /// others are refused.
    pub settings: Vec<(String, String)>,
}

/// The SQL a front end's clients speak. The engine runs Athena's SQL; a
/// Postgres client's statements that read Postgres's system catalog
/// (`pg_catalog`, `information_schema`, as psql's `\d` and BI tools' schema
/// browsers send) are Postgres SQL, answered from the lakehose catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// Athena's (Presto/Trino) SQL.
    #[default]
    Athena,
    /// A Postgres client: Athena's SQL, except statements that read
    /// Postgres's system catalog, which are Postgres SQL.
    Postgres,
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

    /// The same request, run as `access`.
    pub fn run_as(mut self, access: Option<Arc<dyn TableAccess>>) -> Self {
        self.access = access;
        self
    }
}

/// What a statement does to a table, a database or a location, in the
/// terms a grant is given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Privilege {
    /// Read a table's rows or its definition: `SELECT`, the tables of a
    /// view, the sources of CTAS, `INSERT` and `UNLOAD`, `DESCRIBE` and
    /// `SHOW` of one table, and seeing it listed.
    Select,
    /// Add rows: `INSERT INTO`, and the new table a CTAS fills.
    Insert,
    /// Create a table or view (`CREATE TABLE`, CTAS, `CREATE VIEW`).
    CreateTable,
    /// Change a table's or view's definition (`ALTER TABLE`,
    /// `CREATE OR REPLACE VIEW` over an existing view).
    AlterTable,
    /// Add partitions (`ALTER TABLE ADD PARTITION`, `MSCK REPAIR TABLE`).
    AddPartitions,
    /// Drop partitions.
    DropPartitions,
    /// Drop a table or view.
    DropTable,
    /// Create a database.
    CreateDatabase,
    /// Drop a database.
    DropDatabase,
    /// Point a table, partition or database at a storage location, or
    /// write files there (`LOCATION`, `external_location`, `UNLOAD`): Lake
    /// Formation's data location access. Without it, a table over another
    /// table's files would read them past that table's grants.
    DataLocation,
}

impl Privilege {
    /// How messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "SELECT",
            Self::Insert => "INSERT",
            Self::CreateTable => "CREATE_TABLE",
            Self::AlterTable => "ALTER",
            Self::AddPartitions => "ADD_PARTITION",
            Self::DropPartitions => "DROP_PARTITION",
            Self::DropTable => "DROP",
            Self::CreateDatabase => "CREATE_DATABASE",
            Self::DropDatabase => "DROP_DATABASE",
            Self::DataLocation => "DATA_LOCATION_ACCESS",
        }
    }
}

/// What a privilege is asked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Securable<'a> {
    /// A table or view of a database (lower case).
    Table {
        /// Its database.
        database: &'a str,
        /// Its name.
        table: &'a str,
    },
    /// A database.
    Database(&'a str),
    /// A storage location (`s3://bucket/prefix/`).
    Location(&'a str),
}

impl fmt::Display for Securable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table { database, table } => write!(f, "{CATALOG_NAME}.{database}.{table}"),
            Self::Database(d) => write!(f, "database {d}"),
            Self::Location(l) => write!(f, "location {l}"),
        }
    }
}

/// Who runs a statement: the grants it is checked against while it is
/// planned. The front ends make one from the authenticated caller (the
/// server's policies); the engine asks it before reading, creating,
/// changing or writing anything.
pub trait TableAccess: Send + Sync + fmt::Debug {
    /// The principal's name (for messages).
    fn principal(&self) -> &str;

    /// Whether `privilege` on `on` is granted.
    fn allows(&self, privilege: Privilege, on: Securable<'_>) -> bool;
}

/// The error a statement gets for a privilege it lacks (Postgres's
/// SQLSTATE 42501; an Athena user error).
pub fn access_denied(
    access: &dyn TableAccess,
    privilege: Privilege,
    on: Securable<'_>,
) -> QueryError {
    QueryError::named(
        ErrorCode::PermissionDenied,
        format!(
            "Access Denied: {} has no {} permission on {on}",
            access.principal(),
            privilege.as_str()
        ),
    )
}

/// Checks `privilege` on `on` for `access` (`None` has every grant).
pub fn require(
    access: Option<&Arc<dyn TableAccess>>,
    privilege: Privilege,
    on: Securable<'_>,
) -> Result<(), QueryError> {
    match access {
        Some(a) if !a.allows(privilege, on) => Err(access_denied(a.as_ref(), privilege, on)),
        _ => Ok(()),
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
}

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
    pub(crate) fn from_output(output: QueryOutput) -> Self {
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
}

/// The result of statements that return no rows.
pub fn empty_output(kind: StatementType, substatement: &str) -> QueryOutput {
    QueryOutput {
        statement_type: kind,
        substatement_type: substatement.into(),
        schema: Arc::new(datafusion::arrow::datatypes::Schema::empty()),
        batches: Vec::new(),
        update_count: None,
        bytes_scanned: 0,
    }
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
