//! # lakehose-catalog
//!
//! The base crate of lakehose. Everything else points down to it:
//!
//! ```text
//! ingest ──▶ catalog ◀── query ◀── transform
//!                          ▲
//!                   athena · pgwire
//! ```
//!
//! It owns [`storage`]: how an `s3://bucket/key` location maps onto the one
//! object store the process was started with (on the embedded default, bucket
//! `B` is the folder `<data-dir>/B/`), and where lakehose keeps its own state
//! (`_lakehose/`). The Glue-style catalog model and the crawler build on it,
//! and the Hive and Glue conventions every crate shares live here once:
//! Hive types ([`hive`]), the OpenX JSON SerDe ([`jsonserde`]), partition
//! folder names ([`partition_path`]), storage descriptors ([`model`]),
//! Parquet writer settings ([`parquet_writer`]) and cron schedules
//! ([`schedule`]).

pub mod awsjson;
pub mod catalog;
pub mod crawler;
pub mod endpoint;
pub mod expr;
pub mod glue;
pub mod glue_catalog;
pub mod hive;
pub mod jsonserde;
pub mod model;
pub mod parquet_writer;
pub mod partition_path;
pub mod s3;
pub mod schedule;
pub mod schema;
pub mod storage;
pub mod supervise;

pub use catalog::{Catalog, CatalogError, CatalogRef, EmbeddedCatalog, PartitionUpdate};
pub use glue_catalog::{GlueCatalog, GlueOptions};
pub use storage::{Location, Storage, StorageError};
