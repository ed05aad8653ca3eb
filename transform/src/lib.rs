//! # lakehose-transform
//!
//! The ETL layer: SQL jobs that turn raw tables into curated Delta Lake tables
//! on a schedule, with bookmarks and compaction.
//!
//! ```text
//! raw tables ──SELECT (sql/etl/*.sql)──▶ transform ──▶ curated Delta tables ──▶ catalog
//! ```
//!
//! This crate is intentionally empty until the ETL capability lands; nothing
//! here pretends to work yet.
