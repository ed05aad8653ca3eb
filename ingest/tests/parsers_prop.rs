//! Property tests over ingest's parsers of untrusted input: prefix
//! templates, JQ queries, NDJSON bodies and whole Firehose request bodies. Any input gives an answer or an error, never a panic or a stack
//! overflow.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use lakehose_catalog::Storage;
use lakehose_ingest::template::{PrefixKind, PrefixTemplate, RenderContext};
use lakehose_ingest::{IngestConfig, IngestService, firehose, ndjson};
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

fn pieces(extra: &'static [&'static str]) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(extra).prop_map(String::from),
        Just("\u{3000}".to_string()),
        Just("\\".to_string()),
        Just("\"".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("99999999999999999999999999999".to_string()),
        "\\PC{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

/// Random JQ queries from jq's own pieces (recursion, loops, string and
/// array growth, paths, builtins) compile or are refused, and run on a
/// record to keys or an error within the evaluation bounds: never a panic,
/// a stack overflow or an evaluation that does not end.
#[test]
fn jq_queries_never_panic_or_run_away() {
    let text = pieces(&[
        "{k: ",
        "}",
        "(",
        ")",
        "[",
        "]",
        ".",
        ".a",
        ".[]",
        "|",
        ",",
        " * ",
        " + ",
        " // ",
        "\"x\"",
        "1e9",
        "2",
        "range(",
        "reduce ",
        "foreach ",
        " as $x ",
        "($x; . + .)",
        "def f: ",
        "f",
        "; ",
        "[., .]",
        "tojson",
        "fromjson",
        "tostring",
        "recurse",
        "limit(",
        "env",
        "$ENV",
        "paths",
        "setpath(",
        "getpath(",
        "repeat",
        "until(",
        "while(",
        "ascii",
        "implode",
        "splits(",
        "test(",
        "@base64d",
        "ltrimstr(",
        "try ",
        " catch ",
        "error",
        "if ",
        " then ",
        " else ",
        " end",
    ]);
    TestRunner::new(Config {
        cases: 256,
        ..config()
    })
    .run(&text, |query| {
        let query = format!("{{k: ({query})}}");
        if let Ok(q) = lakehose_ingest::jq::MetadataQuery::compile(&query) {
            let started = std::time::Instant::now();
            // On the evaluation pool, as the server runs queries.
            let ran = lakehose_ingest::jq::pool::run_blocking(move || {
                let _ = q.extract(br#"{"a": "xy", "n": 3, "s": "[1, [2]]"}"#);
            });
            prop_assert!(ran.is_ok(), "{query}: the evaluation panicked");
            prop_assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{query}"
            );
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn prefix_templates_never_panic() {
    let text = pieces(&[
        "!{",
        "!{timestamp:",
        "!{partitionKeyFromQuery:",
        "!{partitionKeyFromLambda:",
        "!{firehose:",
        "error-output-type",
        "random-string",
        "yyyy",
        "MM",
        "dd",
        "HH",
        "mm",
        "ss",
        "SSS",
        "a",
        "EEE",
        "D",
        "'",
        "''",
        "/",
        "=",
        "..",
    ]);
    let strategy = (text, any::<bool>(), any::<i64>(), any::<u64>());
    let keys = |k: &str| (!k.len().is_multiple_of(3)).then(|| "\u{3000}v/../".repeat(k.len() % 5));
    TestRunner::new(config())
        .run(&strategy, |(text, error, seconds, seed)| {
            let kind = if error {
                PrefixKind::Error
            } else {
                PrefixKind::Data
            };
            if let Ok(template) = PrefixTemplate::parse(&text, kind) {
                let time = Utc
                    .timestamp_opt(seconds % 400_000_000_000, 0)
                    .single()
                    .unwrap_or_default();
                let ctx = RenderContext {
                    time,
                    keys: &keys,
                    error_output_type: Some("processing-failed"),
                    random_seed: seed,
                };
                let _ = template.render(&ctx);
                let _ = template.clone().with_default_time_suffix().render(&ctx);
            }
            Ok(())
        })
        .unwrap();
}

/// Runs `f` over a fresh ingest service with one stream, `s`, that writes
/// JSON lines to `s3://out/d/`.
fn with_service(f: impl FnOnce(&tokio::runtime::Runtime, &IngestService)) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let service = runtime.block_on(async {
        let storage = Storage::local(dir.path().join("data")).unwrap();
        let service = IngestService::open(IngestConfig::new(dir.path().join("wal")), storage, None)
            .await
            .unwrap();
        let create = json!({
            "DeliveryStreamName": "s",
            "ExtendedS3DestinationConfiguration": {
                "RoleARN": "r", "BucketARN": "arn:aws:s3:::out", "Prefix": "d/",
                "ErrorOutputPrefix": "e/!{firehose:error-output-type}/",
                "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 1}
            }
        });
        let response = firehose::handle(
            &service,
            "CreateDeliveryStream",
            create.to_string().as_bytes(),
        )
        .await;
        assert!(response.status().is_success(), "{}", response.status());
        service
    });
    f(&runtime, &service);
    runtime.block_on(service.shutdown());
}

fn json_text() -> impl Strategy<Value = String> {
    pieces(&[
        "{\"a\":", "[", "]", ",", ":", "null", "1e999999", "\"x\"", "\n", "\r\n", " ",
    ])
}

#[test]
fn ndjson_bodies_never_panic() {
    let body = prop_oneof![
        json_text().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..512),
        (1usize..50_000)
            .prop_map(|n| format!("{}1{}\n{{}}\n", "[".repeat(n), "]".repeat(n)).into_bytes()),
        Just(b"\n\n\r\n \n".to_vec()),
        Just(b"{\"a\":\"ends in a backslash\\".to_vec()),
    ];
    let strategy = (body, any::<bool>());
    with_service(|runtime, service| {
        TestRunner::new(config())
            .run(&strategy, |(body, gzip)| {
                let mut headers = HeaderMap::new();
                if gzip {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
                let result = runtime.block_on(ndjson::put_lines(
                    State(service.clone()),
                    Path("s".to_string()),
                    headers,
                    Bytes::from(body),
                ));
                let _ = result;
                Ok(())
            })
            .unwrap();
    });
}

const MEMBERS: &[&str] = &[
    "DeliveryStreamName",
    "DeliveryStreamType",
    "ExtendedS3DestinationConfiguration",
    "S3DestinationConfiguration",
    "BucketARN",
    "RoleARN",
    "Prefix",
    "ErrorOutputPrefix",
    "BufferingHints",
    "SizeInMBs",
    "IntervalInSeconds",
    "CompressionFormat",
    "DynamicPartitioningConfiguration",
    "Enabled",
    "Record",
    "Records",
    "Data",
    "Limit",
    "ExclusiveStartDeliveryStreamName",
    "AllowForceDelete",
];

const OPERATIONS: &[&str] = &[
    "PutRecord",
    "PutRecordBatch",
    "DescribeDeliveryStream",
    "ListDeliveryStreams",
    "CreateDeliveryStream",
    "DeleteDeliveryStream",
    "TagDeliveryStream",
    "NoSuchOperation",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        json_text().prop_map(Value::String),
        // Base64 of JSON text, as `Record.Data` carries it.
        json_text().prop_map(|t| {
            use base64::Engine;
            Value::String(base64::engine::general_purpose::STANDARD.encode(t))
        }),
        Just(json!("s")),
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

#[test]
fn firehose_request_bodies_never_panic() {
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        json_value().prop_map(|v| {
            // A record for the stream that exists, so record parsing runs.
            let mut v = v;
            if let Value::Object(m) = &mut v {
                m.insert("DeliveryStreamName".into(), json!("s"));
            }
            serde_json::to_vec(&v).unwrap()
        }),
        (1usize..50_000).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        Just(b"{\"Limit\": 1e999999}".to_vec()),
    ];
    let strategy = (prop::sample::select(OPERATIONS), body);
    with_service(|runtime, service| {
        TestRunner::new(config())
            .run(&strategy, |(operation, body)| {
                let response = runtime.block_on(firehose::handle(service, operation, &body));
                prop_assert!(
                    response.status().is_success() || response.status().is_client_error(),
                    "{operation} answered {}",
                    response.status()
                );
                Ok(())
            })
            .unwrap();
    });
}
