//! # lakehose-query
//!
//! The query service: a DataFusion session over the lakehose catalog with a
//! Presto/Trino function library, Athena DDL, the Athena API and the Postgres
//! wire protocol.
//!
//! ```text
//! Athena API · `lakehose sql` · Postgres wire ──▶ query (DataFusion) ──▶ catalog + object store
//! ```
//!
//! - [`engine`]: the DataFusion session over the catalog, memory and spill.
//! - [`table`], [`text`], [`delta`]: reading Parquet, text and Delta tables,
//!   with partition pruning from catalog partition values.
//! - [`ddl`], [`catalog_ops`], [`write`]: Athena's DDL, utility statements,
//!   CTAS, `INSERT INTO` and `UNLOAD`.
//! - [`statement`]: dispatch, parameters, limits.
//! - [`nesting`]: the bound on how deeply a statement may nest, checked
//!   before any parser builds a tree of it.

pub mod athena;
pub mod catalog_ops;
pub mod ddl;
pub mod delta;
pub mod dialect;
pub mod engine;
pub mod functions;
pub mod live;
pub mod nesting;
pub mod output;
pub mod pg;
pub mod statement;
pub mod stream;
pub mod table;
pub mod text;
pub mod types;
pub mod write;

pub use engine::{EngineConfig, QueryEngine};
pub use output::{
    QueryError, QueryErrorKind, QueryOutput, QueryRequest, QueryStream, SqlRunner, StatementType,
};
