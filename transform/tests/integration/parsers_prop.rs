//! Property tests over the DynamoDB export reader's parser of untrusted
//! input: any line of a data file gives an item or an error, never a panic
//! or a stack overflow, however deep its attribute values nest.

use lakehose_transform::dynamodb::export::item::parse_line;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

fn config() -> Config {
    Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A DynamoDB JSON attribute value nested up to `depth` levels.
fn attribute() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        "\\PC{0,12}".prop_map(|s| json!({ "S": s })),
        prop_oneof![
            Just("1e999999".to_string()),
            Just("-0.0000000000000000000000000000000000000001".to_string()),
            Just("123456789012345678901234567890123456789012".to_string()),
            Just("NaN".to_string()),
            Just("".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
        ]
        .prop_map(|n| json!({ "N": n })),
        "[A-Za-z0-9+/=\u{3000}]{0,12}".prop_map(|b| json!({ "B": b })),
        any::<bool>().prop_map(|b| json!({ "BOOL": b })),
        Just(json!({ "NULL": true })),
        Just(json!({ "NULL": false })),
        prop::collection::vec("\\PC{0,4}", 0..4).prop_map(|v| json!({ "SS": v })),
        prop::collection::vec("[0-9.e-]{0,6}", 0..4).prop_map(|v| json!({ "NS": v })),
        Just(json!({ "X": 1 })),
        Just(json!({})),
        Just(json!({ "S": "a", "N": "1" })),
    ];
    leaf.prop_recursive(12, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| json!({ "L": v })),
            prop::collection::vec(("\\PC{0,6}", inner), 0..5).prop_map(|kv| {
                json!({ "M": kv.into_iter().collect::<serde_json::Map<_, _>>() })
            }),
        ]
    })
}

#[test]
fn dynamodb_lines_never_panic() {
    let item = || {
        prop::collection::vec(("\\PC{0,8}", attribute()), 0..6)
            .prop_map(|kv| kv.into_iter().collect::<serde_json::Map<String, Value>>())
    };
    let line: BoxedStrategy<Vec<u8>> = prop_oneof![
        item().prop_map(|i| serde_json::to_vec(&json!({ "Item": i })).unwrap()),
        (item(), item(), any::<i64>()).prop_map(|(k, n, t)| {
            serde_json::to_vec(&json!({
                "Keys": k, "NewImage": n, "Metadata": {"WriteTimestampMicros": {"N": t.to_string()}}
            }))
            .unwrap()
        }),
        prop::collection::vec(any::<u8>(), 0..200),
        (1usize..30_000).prop_map(|n| {
            format!(
                "{{\"Item\":{{\"a\":{}{{\"S\":\"x\"}}{}}}}}",
                "{\"L\":[".repeat(n),
                "]}".repeat(n)
            )
            .into_bytes()
        }),
    ]
    .boxed();
    TestRunner::new(config())
        .run(&line, |line| {
            if let Ok(parsed) = parse_line(&line)
                && let Some(item) = &parsed.item
            {
                for (_, attr) in &item.0 {
                    let mut out = String::new();
                    attr.write_json(&mut out);
                    attr.write_typed_json(&mut out);
                }
            }
            Ok(())
        })
        .unwrap();
}
