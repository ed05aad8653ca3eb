//! Property tests over the catalog's parsers of untrusted text: Hive types
//! (as Glue clients send them in `Columns[].Type`), Glue partition
//! expressions, GetTables name patterns, and whole Glue request bodies.
//! Each asserts that any input gives an answer or an error, never a panic
//! or a stack overflow; the type printer and parser also round-trip.

use std::sync::Arc;

use lakehose_catalog::crawler::service::CrawlerService;
use lakehose_catalog::expr::{MAX_EXPRESSION_DEPTH, PartitionFilter};
use lakehose_catalog::glue::{self, GlueApi};
use lakehose_catalog::model::Column;
use lakehose_catalog::schema::{
    JType, MAX_TYPE_DEPTH, check_hive_type, hive_type, parse_hive_type,
};
use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Cases per property: enough to find shallow bugs, few enough that the
/// whole file runs in seconds.
const CASES: u32 = 512;

fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Text made of the characters type and expression parsers care about,
/// plus arbitrary Unicode (U+3000 ideographic space included).
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("struct<".to_string()),
        Just("array<".to_string()),
        Just("map<".to_string()),
        Just("decimal(".to_string()),
        Just(">".to_string()),
        Just(")".to_string()),
        Just("(".to_string()),
        Just("<".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("`".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\u{3000}".to_string()),
        Just(" NOT ".to_string()),
        Just(" AND ".to_string()),
        Just(" OR ".to_string()),
        Just(" IN ".to_string()),
        Just(" LIKE ".to_string()),
        Just(" BETWEEN ".to_string()),
        Just("=".to_string()),
        Just("!".to_string()),
        Just("int".to_string()),
        Just("year".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("1e999999".to_string()),
        "\\PC{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// A JSON type with plain field names (those survive printing).
fn jtype() -> impl Strategy<Value = JType> {
    let leaf = prop_oneof![
        Just(JType::Bool),
        Just(JType::Int),
        Just(JType::Float),
        Just(JType::Timestamp),
        Just(JType::String),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|t| JType::List { item: Box::new(t) }),
            prop::collection::vec(("[^`\\p{Cc}]{1,8}", inner), 1..6).prop_map(|fields| {
                // Field names are unique within a struct.
                let mut seen = std::collections::HashSet::new();
                JType::Struct {
                    fields: fields
                        .into_iter()
                        .filter(|(n, _)| seen.insert(n.clone()))
                        .collect(),
                }
            }),
        ]
    })
}

/// A type nested `depth` levels, by a random mix of arrays and structs.
fn nested_type(depth: usize, kinds: &[bool]) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for i in 0..depth {
        if kinds[i % kinds.len()] {
            open.push_str("array<");
        } else {
            open.push_str("struct<f:");
        }
        close.push('>');
    }
    format!("{open}bigint{close}")
}

#[test]
fn hive_types_never_panic() {
    TestRunner::new(config())
        .run(&hostile_text(), |text| {
            let _ = parse_hive_type(&text);
            let _ = check_hive_type(&text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn deep_hive_types_are_bounded() {
    let strategy = (1usize..20_000, prop::collection::vec(any::<bool>(), 1..8));
    TestRunner::new(config())
        .run(&strategy, |(depth, kinds)| {
            let text = nested_type(depth, &kinds);
            let parsed = parse_hive_type(&text);
            let checked = check_hive_type(&text);
            prop_assert_eq!(parsed.is_ok(), depth <= MAX_TYPE_DEPTH);
            prop_assert_eq!(checked.is_ok(), depth <= MAX_TYPE_DEPTH);
            if depth > MAX_TYPE_DEPTH {
                prop_assert!(parsed.unwrap_err().contains("nested deeper"));
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn hive_types_round_trip() {
    TestRunner::new(config())
        .run(&jtype(), |t| {
            let text = hive_type(&t);
            prop_assert_eq!(check_hive_type(&text), Ok(()));
            let back = parse_hive_type(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&back, &t);
            prop_assert_eq!(hive_type(&back), text);
            Ok(())
        })
        .unwrap();
}

fn keys() -> Vec<Column> {
    [("year", "int"), ("dt", "date"), ("service", "string")]
        .iter()
        .map(|(n, t)| Column {
            name: (*n).into(),
            data_type: Some((*t).into()),
            ..Default::default()
        })
        .collect()
}

#[test]
fn partition_expressions_never_panic() {
    let keys = keys();
    let values: Vec<String> = ["2026", "2026-11-23", "web"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    TestRunner::new(config())
        .run(&hostile_text(), |text| {
            if let Ok(filter) = PartitionFilter::parse(&text, &keys) {
                let _ = filter.matches(&values);
                let _ = filter.matches(&[]);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn deep_partition_expressions_are_bounded() {
    let keys = keys();
    let strategy = (1usize..5_000, prop::collection::vec(any::<bool>(), 1..6));
    TestRunner::new(config())
        .run(&strategy, |(depth, kinds)| {
            let mut text = String::new();
            let mut close = 0;
            for i in 0..depth {
                if kinds[i % kinds.len()] {
                    text.push('(');
                    close += 1;
                } else {
                    text.push_str("NOT ");
                }
            }
            text.push_str("year = 2026");
            text.push_str(&")".repeat(close));
            let result = PartitionFilter::parse(&text, &keys);
            if depth > MAX_EXPRESSION_DEPTH {
                prop_assert!(result.is_err());
            } else {
                prop_assert!(result.is_ok(), "{:?}", result.err());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn table_name_patterns_never_panic() {
    TestRunner::new(config())
        .run(&hostile_text(), |text| {
            if let Ok(re) = glue::name_pattern(&text) {
                let _ = re.is_match("requests");
            }
            Ok(())
        })
        .unwrap();
}

/// Member names of Glue's request shapes, so generated bodies reach past
/// the first "unknown member" check into the handlers.
const MEMBERS: &[&str] = &[
    "DatabaseName",
    "DatabaseInput",
    "Name",
    "TableName",
    "TableInput",
    "VersionId",
    "StorageDescriptor",
    "Columns",
    "Type",
    "PartitionKeys",
    "Location",
    "Values",
    "PartitionInput",
    "PartitionInputList",
    "PartitionValues",
    "PartitionValueList",
    "PartitionsToDelete",
    "Entries",
    "Expression",
    "NextToken",
    "MaxResults",
    "ExcludeColumnSchema",
    "Parameters",
    "Role",
    "Targets",
    "S3Targets",
    "Path",
    "CrawlerNameList",
];

const OPERATIONS: &[&str] = &[
    "CreateDatabase",
    "GetDatabase",
    "GetDatabases",
    "DeleteDatabase",
    "CreateTable",
    "GetTable",
    "GetTables",
    "UpdateTable",
    "DeleteTable",
    "GetTableVersions",
    "CreatePartition",
    "BatchCreatePartition",
    "GetPartition",
    "GetPartitions",
    "BatchDeletePartition",
    "UpdatePartition",
    "BatchUpdatePartition",
    "CreateCrawler",
    "GetCrawler",
    "GetCrawlers",
    "UpdateCrawler",
    "DeleteCrawler",
    "GetCrawlerMetrics",
    "NoSuchOperation",
];

/// JSON values of any shape: unicode strings, huge and fractional numbers,
/// nested arrays and objects keyed by Glue's member names.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        hostile_text().prop_map(Value::String),
        Just(json!("db")),
        Just(json!("t")),
        Just(json!("s3://lake/t/")),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(MEMBERS), inner), 0..8).prop_map(
                |members| Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect()
                )
            ),
        ]
    })
}

/// A request body: arbitrary bytes, a structured JSON object, or JSON
/// nested thousands of levels deep.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (1usize..50_000).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        (1usize..50_000)
            .prop_map(|n| { format!("{}1{}", "{\"Name\":".repeat(n), "}".repeat(n)).into_bytes() }),
        Just(b"{\"MaxResults\": 1e999999}".to_vec()),
        Just(b"{\"MaxResults\": 123456789012345678901234567890}".to_vec()),
    ]
}

#[test]
fn glue_request_bodies_never_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path()).unwrap();
    let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
    let api = GlueApi {
        catalog: Arc::clone(&catalog),
        crawlers: CrawlerService::new(storage, catalog),
    };
    runtime.block_on(async {
        let db = br#"{"DatabaseInput": {"Name": "db"}}"#;
        glue::handle(&api, "CreateDatabase", db).await;
        let table = br#"{"DatabaseName": "db", "TableInput": {"Name": "t",
            "StorageDescriptor": {"Location": "s3://lake/t/", "Columns": [{"Name": "a", "Type": "int"}]},
            "PartitionKeys": [{"Name": "year", "Type": "int"}]}}"#;
        glue::handle(&api, "CreateTable", table).await;
    });
    let strategy = (prop::sample::select(OPERATIONS), body());
    TestRunner::new(config())
        .run(&strategy, |(operation, body)| {
            let response = runtime.block_on(glue::handle(&api, operation, &body));
            prop_assert!(
                response.status().is_success() || response.status().is_client_error(),
                "{operation} answered {}",
                response.status()
            );
            Ok(())
        })
        .unwrap();
    assert!(dir.path().join("_lakehose").exists());
}
