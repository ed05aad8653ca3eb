//! Property tests over the query crate's parsers of untrusted text: Hive
//! types into Arrow types (and back) and Athena DDL. Any input gives an
//! answer or an error, never a panic or a stack overflow.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields};
use lakehose_query::types::{MAX_TYPE_DEPTH, arrow_to_hive, hive_to_arrow, map_type};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

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

/// Text made of the characters type and DDL parsers care about, plus
/// arbitrary Unicode (U+3000 ideographic space included).
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("struct<".to_string()),
        Just("row<".to_string()),
        Just("array<".to_string()),
        Just("map<".to_string()),
        Just("decimal(".to_string()),
        Just("varchar(".to_string()),
        Just(">".to_string()),
        Just(">>".to_string()),
        Just(")".to_string()),
        Just("(".to_string()),
        Just("<".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("`".to_string()),
        Just("'".to_string()),
        Just("\\".to_string()),
        Just("\u{3000}".to_string()),
        Just(" ".to_string()),
        Just("int".to_string()),
        Just("string".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("CREATE EXTERNAL TABLE t (".to_string()),
        Just(" COMMENT 'x'".to_string()),
        Just(" PARTITIONED BY (".to_string()),
        Just(" LOCATION 's3://lake/t/'".to_string()),
        "\\PC{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// Arrow types that Hive type strings can spell.
fn arrow_type() -> impl Strategy<Value = DataType> {
    let leaf = prop_oneof![
        Just(DataType::Boolean),
        Just(DataType::Int8),
        Just(DataType::Int16),
        Just(DataType::Int32),
        Just(DataType::Int64),
        Just(DataType::Float32),
        Just(DataType::Float64),
        Just(DataType::Utf8),
        Just(DataType::Binary),
        Just(DataType::Date32),
        Just(lakehose_query::types::timestamp_type()),
        (1u8..=38)
            .prop_flat_map(|p| (Just(p), 0..=p as i8))
            .prop_map(|(p, s)| DataType::Decimal128(p, s)),
    ];
    leaf.prop_recursive(8, 64, 5, |inner| {
        prop_oneof![
            inner
                .clone()
                .prop_map(|t| DataType::List(Arc::new(Field::new("item", t, true)))),
            (inner.clone(), inner.clone()).prop_map(|(k, v)| map_type(k, v)),
            prop::collection::vec(("[^`\\p{Cc}]{1,8}", inner), 1..5).prop_map(|fields| {
                let mut seen = std::collections::HashSet::new();
                DataType::Struct(Fields::from(
                    fields
                        .into_iter()
                        .filter(|(n, _)| seen.insert(n.clone()))
                        .map(|(n, t)| Field::new(n, t, true))
                        .collect::<Vec<_>>(),
                ))
            }),
        ]
    })
}

fn nested_type(depth: usize, kinds: &[u8]) -> String {
    let mut open = String::new();
    let mut close = String::new();
    for i in 0..depth {
        open.push_str(match kinds[i % kinds.len()] % 3 {
            0 => "array<",
            1 => "struct<f:",
            _ => "map<string,",
        });
        close.push('>');
    }
    format!("{open}bigint{close}")
}

#[test]
fn hive_to_arrow_never_panics() {
    TestRunner::new(config())
        .run(&hostile_text(), |text| {
            let _ = hive_to_arrow(&text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn deep_types_are_bounded() {
    let strategy = (1usize..20_000, prop::collection::vec(any::<u8>(), 1..8));
    TestRunner::new(config())
        .run(&strategy, |(depth, kinds)| {
            let text = nested_type(depth, &kinds);
            match hive_to_arrow(&text) {
                Ok(_) => prop_assert!(depth <= MAX_TYPE_DEPTH),
                Err(e) => {
                    prop_assert!(depth > MAX_TYPE_DEPTH, "{e}");
                    // Nesting is checked before length: it is the cause.
                    prop_assert!(e.contains("nested deeper than 64 levels"), "{e}");
                    prop_assert!(e.len() < 600, "the message quotes only the start");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn hive_types_round_trip() {
    TestRunner::new(config())
        .run(&arrow_type(), |t| {
            let text = arrow_to_hive(&t).map_err(TestCaseError::fail)?;
            let back = hive_to_arrow(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&back, &t);
            prop_assert_eq!(arrow_to_hive(&back).map_err(TestCaseError::fail)?, text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn athena_ddl_never_panics() {
    let strategy = prop_oneof![
        hostile_text(),
        hostile_text()
            .prop_map(|t| format!("CREATE EXTERNAL TABLE t (a {t}) LOCATION 's3://lake/t/'")),
        (1usize..20_000, prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(d, k)| format!(
            "CREATE EXTERNAL TABLE t (a {}, b int) LOCATION 's3://lake/t/'",
            nested_type(d, &k)
        )),
    ];
    TestRunner::new(config())
        .run(&strategy, |sql| {
            let _ = lakehose_query::ddl::parse(&sql);
            Ok(())
        })
        .unwrap();
}
