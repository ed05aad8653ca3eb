//! End-to-end tests: each starts the real `lakehose` binary on a temporary
//! data folder, drives it through real clients (`aws-sdk-firehose`, plain
//! HTTP) and reads back what landed with the `parquet` crate.

mod util;

mod athena;
mod bad_input;
mod crash;
mod delivery;
mod dynamodb;
mod etl;
mod firehose_api;
mod glue_api;
mod logbench;
mod ndjson;
mod psql;
mod tpch;
