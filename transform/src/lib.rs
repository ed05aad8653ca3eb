//! # lakehose-transform
//!
//! The ETL layer: SQL jobs that turn raw tables into curated Delta Lake
//! tables, incrementally and atomically.
//!
//! ```text
//! raw tables ──SELECT (sql/etl/*.sql)──▶ Etl::run ──▶ Delta commit ──▶ catalog
//! ```
//!
//! - [`job`]: job files (a `-- field: value` header and the SQL), their
//!   dependency order.
//! - [`run`]: running a job: modes, bookmarks, schema rules, run history.
//! - [`schedule`]: the scheduler of jobs and table maintenance inside the
//!   server, on the engine's CPU runtime.
//! - [`compact`]: compaction of Parquet and Delta tables, and VACUUM.
//! - [`dynamodb`]: DynamoDB exports read ([`dynamodb::export`]) and applied
//!   to Delta tables.
//! - [`delta`]: Delta tables in the catalog.
//! - [`error`]: how each of these fails.

mod claim;
mod compact;
mod delta;
pub mod dynamodb;
mod error;
mod job;
mod run;
pub mod schedule;

pub use compact::{CompactOptions, CompactProgress, CompactReport, Compactor};
pub use error::{Error, Result};
pub use job::{Job, JobError, Mode, TableName, dependency_order, load_dir};
pub use run::{Etl, NoProgress, RunAudit, RunProgress, RunRecord};
