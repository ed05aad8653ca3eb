//! End-to-end tests: each starts the real `lakehose` binary on a temporary
//! data folder, drives it through real clients (`aws-sdk-firehose`, plain
//! HTTP) and reads back what landed with the `parquet` crate.

mod util;

mod athena;
mod auth;
mod bad_input;
mod conversion;
mod crash;
mod dashboards;
mod deep_sql;
mod delivery;
mod distributed;
mod dynamodb;
mod etl;
mod faults;
mod firehose_api;
mod freshness;
mod glue_api;
mod grants;
mod hostile_ingest;
mod hostile_types;
mod limits;
mod logbench;
mod ndjson;
mod psql;
mod s3;
mod sandbox;
mod tpch;
