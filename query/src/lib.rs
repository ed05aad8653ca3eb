//! # lakehose-query
//!
//! The query engine: a DataFusion session over the lakehose catalog with a
//! Presto/Trino function library, Athena's DDL and utility statements, and
//! Postgres's system catalog for Postgres clients. The front ends (the
//! Athena API in `lakehose-athena`, the Postgres wire server in
//! `lakehose-pgwire`, the CLI) run statements through [`contract`] only;
//! besides it they use the engine's text helpers: [`values`] (Presto's text
//! of a value), [`sql_text`] (statement splitting, placeholders) and
//! [`postgres::types`] (how Arrow types appear to Postgres clients).
//!
//! ```text
//! front ends ──▶ contract ◀── dispatch ──▶ ddl · catalog_ops · write ──▶ engine ──▶ plan ──▶ dialect · functions
//!                                 └──▶ postgres (pg_catalog)               └──▶ table · text · delta · live · stats
//! ```
//!
//! - [`contract`]: what front ends send and get back ([`SqlRunner`],
//!   [`QueryRequest`], [`QueryOutput`], [`QueryStream`]); [`error`]: how a
//!   statement fails.
//! - [`dispatch`]: one statement's run, at the top: checks, dialect, DDL or
//!   query or system catalog, timeout, the out-of-memory retry.
//! - [`engine`]: the DataFusion session over the catalog, memory and spill;
//!   [`executor`]: the runtime statements, ETL and compaction run on.
//! - [`plan`]: SQL text to a plan (parameters, the read-only check, Presto
//!   rewrites from [`dialect`]); nothing there runs a plan. [`sql_text`]:
//!   statement splitting and placeholders without a parser.
//! - [`table`], [`text`], [`delta`], [`live`]: reading Parquet, text and
//!   Delta tables and buffered rows, with partition pruning from catalog
//!   partition values; [`stats`]: what a query counts as it runs.
//! - [`ddl`], [`catalog_ops`], [`write`]: Athena's DDL, utility statements,
//!   CTAS, `INSERT INTO` and `UNLOAD`; [`glue`]: the Glue conventions they
//!   share.
//! - [`postgres`]: Postgres's system catalog over the lakehose catalog, and
//!   how Arrow types appear to Postgres clients.
//! - [`nesting`]: the bound on how deeply a statement may nest, checked
//!   before any parser builds a tree of it.

pub(crate) mod catalog_ops;
pub mod contract;
pub mod ddl;
pub mod delta;
mod delta_files;
mod dialect;
pub(crate) mod dispatch;
pub mod distributed;
mod engine;
pub mod error;
pub(crate) mod executor;
mod functions;
mod glue;
pub mod live;
pub mod nesting;
mod optimizer;
pub mod plan;
pub mod postgres;
mod session;
pub mod sql_text;
pub mod stats;
pub mod stream;
pub mod table;
mod text;
pub mod types;
pub mod values;
mod write;

pub use contract::{
    CATALOG_NAME, Dialect, QueryOutput, QueryRequest, QueryStream, SqlRunner, StatementType,
};
pub use engine::{EngineConfig, QueryEngine};
pub use error::{ErrorCode, QueryError, QueryErrorKind};
pub use optimizer::{LakehoseOptions, bare_context, check_session_setting};
