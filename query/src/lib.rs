//! # lakehose-query
//!
//! The query service: a DataFusion session over the lakehose catalog with a
//! Presto/Trino function library, Athena DDL, the Athena API and the Postgres
//! wire protocol.
//!
//! ```text
//! Athena API · `lakehose sql` · Postgres wire ──▶ query (DataFusion) ──▶ catalog + object store
//! ```

pub mod output;

pub use output::{QueryError, QueryErrorKind, QueryOutput, QueryRequest, SqlRunner, StatementType};
pub mod dialect;
pub mod functions;
