//! The transform crate's integration tests, one binary: compaction
//! (`compact`), DynamoDB export imports (`dynamodb`) and their reader under
//! random input (`parsers_prop`), and ETL run modes (`modes`).

mod common;
mod compact;
mod dynamodb;
mod modes;
mod parsers_prop;

// The writer of exports in DynamoDB's layout, which the demo uses too.
#[path = "../../../src/dynamodb_export.rs"]
mod dynamodb_export;
