//! Hostile ingest requests: each gets a clear error or lands in the error
//! prefix with its reason; the server stays healthy, its buffers drain to
//! zero, records sent afterwards land, and SIGTERM still stops it.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_firehose::error::ProvideErrorMetadata;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use serde_json::{Value, json};

use crate::util::*;

/// `{"service":"deep","<field>":[[[…]]]}` nested `depth` levels.
fn deep_record(field: &str, depth: usize) -> Vec<u8> {
    let mut v = format!(r#"{{"service":"deep","{field}":"#).into_bytes();
    v.extend(std::iter::repeat_n(b'[', depth));
    v.extend(std::iter::repeat_n(b']', depth));
    v.push(b'}');
    v
}

/// The `lakehose_ingest_buffer_bytes` gauge.
async fn buffer_bytes(http: &reqwest::Client, ep: &str) -> i64 {
    let text = http
        .get(format!("{ep}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("lakehose_ingest_buffer_bytes "))
        .unwrap_or_else(|| panic!("no buffer gauge in {text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn healthy(http: &reqwest::Client, ep: &str) {
    let health = http.get(format!("{ep}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

/// Posts an NDJSON body; returns the status and the JSON answer.
async fn post_lines(
    http: &reqwest::Client,
    ep: &str,
    stream: &str,
    body: Vec<u8>,
    encoding: Option<&str>,
) -> (u16, Value) {
    let mut req = http
        .post(format!("{ep}/v1/streams/{stream}/records"))
        .header("content-type", "application/x-ndjson")
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Error documents' `(errorCode, errorMessage)` under a folder.
fn error_codes(dir: &Path) -> Vec<(String, String)> {
    let mut codes: Vec<(String, String)> = error_docs(dir)
        .iter()
        .map(|d| {
            (
                d["errorCode"].as_str().unwrap().to_string(),
                d["errorMessage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    codes.sort();
    codes
}

fn stopped_in_time(server: Server) {
    let started = Instant::now();
    server.terminate();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "SIGTERM took {:?}",
        started.elapsed()
    );
}

#[test]
fn hostile_requests_get_clear_errors_and_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let http = reqwest::Client::new();
    let ep = server.endpoint.clone();
    rt().block_on(async {
        create_parquet_stream(&client, "jq", "lake", 1).await;

        // Records nested 100,000 levels deep (in the field the JQ query
        // reads, and in another one) and one ending in a backslash:
        // acknowledged, and sent to the error prefix.
        let hostile = [
            deep_record("service", 100_000),
            deep_record("x", 100_000),
            br#"{"service":"web","msg":"oops\"#.to_vec(),
        ];
        for data in hostile {
            let started = Instant::now();
            client
                .put_record()
                .delivery_stream_name("jq")
                .record(Record::builder().data(Blob::new(data)).build().unwrap())
                .send()
                .await
                .expect("PutRecord of a hostile record");
            assert!(started.elapsed() < Duration::from_secs(10));
        }
        healthy(&http, &ep).await;

        // A query that never ends is refused when the stream is created.
        let endless = lakehose::commands::demo::parquet_destination(
            "lake",
            "loop/service=!{partitionKeyFromQuery:service}/",
            "loop-errors/!{firehose:error-output-type}/",
            "{service: (def f: f; f)}",
            1,
            None,
        )
        .unwrap();
        let started = Instant::now();
        let err = client
            .create_delivery_stream()
            .delivery_stream_name("endless")
            .extended_s3_destination_configuration(endless)
            .send()
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(err.code(), Some("InvalidArgumentException"), "{err:?}");
        let message = err.message().unwrap_or_default();
        assert!(message.contains("does not finish"), "{message}");

        // An error prefix with an empty segment is refused, naming it.
        let bad_prefix = lakehose::commands::demo::parquet_destination(
            "lake",
            "bad/service=!{partitionKeyFromQuery:service}/",
            "errors//",
            "{service: .service}",
            1,
            None,
        )
        .unwrap();
        let err = client
            .create_delivery_stream()
            .delivery_stream_name("badprefix")
            .extended_s3_destination_configuration(bad_prefix)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidArgumentException"), "{err:?}");
        let message = err.message().unwrap_or_default();
        assert!(message.contains("ErrorOutputPrefix"), "{message}");
        assert!(message.contains("empty path segment"), "{message}");
        for name in ["endless", "badprefix"] {
            let err = client
                .describe_delivery_stream()
                .delivery_stream_name(name)
                .send()
                .await
                .unwrap_err();
            assert_eq!(err.code(), Some("ResourceNotFoundException"));
        }

        // NDJSON: 64 MiB of `1\n` is refused for its record count.
        let body = b"1\n".repeat(32 * 1024 * 1024 - 1);
        let (status, answer) = post_lines(&http, &ep, "jq", body, None).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["error"], "TooManyRecords");
        assert!(answer["message"].as_str().unwrap().contains("100000"));

        // A gzip bomb: 10 MiB of zeros compress to ~10 KiB; 100 members
        // are 1 GiB once decompressed.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 10 * 1024 * 1024]).unwrap();
        let bomb = enc.finish().unwrap().repeat(100);
        let (status, answer) = post_lines(&http, &ep, "jq", bomb, Some("gzip")).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["error"], "BodyTooLarge");
        assert!(answer["message"].as_str().unwrap().contains("decompressed"));

        // An encoding the server cannot read is named, not taken as text.
        let (status, answer) = post_lines(&http, &ep, "jq", b"{}\n".to_vec(), Some("br")).await;
        assert_eq!(status, 415, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("br"));

        // A body over the request limit never reaches the handler.
        let body = vec![b' '; 64 * 1024 * 1024 + 1];
        let (status, _) = post_lines(&http, &ep, "jq", body, None).await;
        assert_eq!(status, 413);

        // Firehose's own caps.
        let records: Vec<Record> = (0..501).map(|_| record(b"{}".to_vec())).collect();
        let err = client
            .put_record_batch()
            .delivery_stream_name("jq")
            .set_records(Some(records))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidArgumentException"), "{err:?}");
        assert!(err.message().unwrap_or_default().contains("500"));
        let err = client
            .put_record()
            .delivery_stream_name("jq")
            .record(record(vec![b'x'; 1_024_001]))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidArgumentException"), "{err:?}");

        healthy(&http, &ep).await;

        // Normal records still land, over both APIs.
        let records: Vec<Record> = (0..10)
            .map(|i| record(format!(r#"{{"service":"web","n":{i}}}"#)))
            .collect();
        let out = client
            .put_record_batch()
            .delivery_stream_name("jq")
            .set_records(Some(records))
            .send()
            .await
            .expect("PutRecordBatch");
        assert_eq!(out.failed_put_count(), 0);
        let lines: String = (10..20)
            .map(|i| format!("{{\"service\":\"web\",\"n\":{i}}}\n"))
            .collect();
        let (status, answer) = post_lines(&http, &ep, "jq", lines.into_bytes(), None).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], 10);

        // Everything accepted is delivered, and the buffers are back to 0.
        let web = dir.path().join("lake/logs/service=web");
        wait_until(60, "normal records to land", || {
            parquet_rows(&web).len() == 20
        });
        let errors = dir.path().join("lake/errors");
        wait_until(60, "hostile records in the error prefix", || {
            error_docs(&errors).len() == 3
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while buffer_bytes(&http, &ep).await != 0 {
            assert!(Instant::now() < deadline, "buffers never drained");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        healthy(&http, &ep).await;
    });
    stopped_in_time(server);

    let mut ns: Vec<i64> = parquet_rows(&dir.path().join("lake/logs"))
        .iter()
        .map(|(_, r)| r["n"].as_i64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, (0..20).collect::<Vec<_>>());
    let codes = error_codes(&dir.path().join("lake/errors"));
    assert_eq!(codes.len(), 3, "{codes:?}");
    // The one ending in a backslash, and the one whose depth the Parquet
    // conversion refused.
    assert_eq!(codes[0].0, "Invalid.JSON", "{codes:?}");
    assert_eq!(codes[1].0, "Invalid.JSON", "{codes:?}");
    assert!(
        codes.iter().any(|(_, m)| m.contains("recursion limit")),
        "{codes:?}"
    );
    // The one the JQ query would have read.
    assert_eq!(codes[2].0, "Invalid.JSONNestingTooDeep", "{codes:?}");
    assert!(codes[2].1.contains("128 levels"), "{codes:?}");
    // Nothing was written outside the buckets and lakehose's own folder.
    let mut top: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["_lakehose", "lake"]);
}

/// A stream definition as stored, for streams made before today's checks.
fn stored_stream(name: &str, id: u64, query: &str, error_prefix: &str) -> Value {
    json!({
        "name": name,
        "id": id,
        "arn": format!("arn:aws:firehose:us-east-1:000000000000:deliverystream/{name}"),
        "created_ms": 1_700_000_000_000i64,
        "version_id": 1,
        "stream_type": "DirectPut",
        "destination": {
            "BucketARN": "arn:aws:s3:::old",
            "Prefix": format!("{name}/s=!{{partitionKeyFromQuery:s}}/"),
            "ErrorOutputPrefix": error_prefix,
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
            "DynamicPartitioningConfiguration": {"Enabled": true},
            "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "MetadataExtraction",
                "Parameters": [{"ParameterName": "MetadataExtractionQuery", "ParameterValue": query}]}]}
        },
        "schema": null
    })
}

#[test]
fn streams_stored_with_hostile_settings_do_not_wedge_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let streams = dir.path().join("_lakehose/firehose/streams");
    std::fs::create_dir_all(&streams).unwrap();
    for (name, id, query, error_prefix) in [
        ("endless", 11, "{s: (def f: f; f)}", "errors//"),
        ("plain", 13, "{s: .s}", "errors//"),
    ] {
        let def = stored_stream(name, id, query, error_prefix);
        std::fs::write(
            streams.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&def).unwrap(),
        )
        .unwrap();
    }
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let http = reqwest::Client::new();
    let ep = server.endpoint.clone();
    rt().block_on(async {
        // The endless query answers promptly: the record is stopped at the
        // bound and kept in the error prefix's fallback folder.
        let started = Instant::now();
        client
            .put_record()
            .delivery_stream_name("endless")
            .record(record(br#"{"s":"a"}"#.to_vec()))
            .send()
            .await
            .expect("PutRecord on a stream with an endless query");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "PutRecord took {:?}",
            started.elapsed()
        );
        // A failed record of a stream whose error prefix is not a valid key
        // lands in the fallback folder; its good records land as usual.
        let (status, answer) = post_lines(
            &http,
            &ep,
            "plain",
            b"{\"s\":\"ok\"}\n{\"other\":1}\n".to_vec(),
            None,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        wait_until(60, "records of both streams to land", || {
            error_docs(&dir.path().join("old/processing-failed")).len() == 2
                && !files(&dir.path().join("old/plain/s=ok"), "").is_empty()
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while buffer_bytes(&http, &ep).await != 0 {
            assert!(Instant::now() < deadline, "buffers never drained");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        healthy(&http, &ep).await;
    });
    stopped_in_time(server);
    let codes = error_codes(&dir.path().join("old/processing-failed"));
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert_eq!(
        codes[0].0,
        "DynamicPartitioning.MetadataExtractionLimitExceeded"
    );
    assert!(
        codes[0].1.contains("steps") || codes[0].1.contains("ms"),
        "{codes:?}"
    );
    assert_eq!(codes[1].0, "DynamicPartitioning.MissingPartitionKey");
}

/// JQ queries that build huge values or read the server's environment: a
/// query that does so on every record is refused when the stream is
/// created; records that make a query do so go to the error prefix, while
/// the other records of the stream land and the server stays small.
#[test]
fn jq_queries_cannot_exhaust_memory_or_read_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let http = reqwest::Client::new();
    let ep = server.endpoint.clone();
    let destination = |name: &str, query: &str| {
        lakehose::commands::demo::parquet_destination(
            "lake",
            &format!("{name}/k=!{{partitionKeyFromQuery:k}}/"),
            &format!("{name}-errors/!{{firehose:error-output-type}}/"),
            query,
            1,
            None,
        )
        .unwrap()
    };
    rt().block_on(async {
        for (name, query, says) in [
            ("repeat", r#"{k: ("x" * 1e10)}"#, "repeated a string"),
            (
                "doubling",
                r#"{k: (reduce range(64) as $i ("ab"; . + .))}"#,
                "MiB",
            ),
            (
                "shared",
                r#"{k: (reduce range(64) as $i ([1]; [., .]) | tojson)}"#,
                "MiB",
            ),
            ("environment", "{k: env.HOME}", "environment"),
        ] {
            let started = Instant::now();
            let err = client
                .create_delivery_stream()
                .delivery_stream_name(name)
                .extended_s3_destination_configuration(destination(name, query))
                .send()
                .await
                .unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(10), "{name}");
            assert_eq!(err.code(), Some("InvalidArgumentException"), "{err:?}");
            let message = err.message().unwrap_or_default();
            assert!(message.contains(says), "{name}: {message}");
        }

        // A query whose size comes from the record.
        client
            .create_delivery_stream()
            .delivery_stream_name("bomb")
            .extended_s3_destination_configuration(destination("bomb", r#"{k: ("x" * .n)}"#))
            .send()
            .await
            .expect("a query that is small on small records");
        for n in ["1e12", "3", "200000000", "2"] {
            client
                .put_record()
                .delivery_stream_name("bomb")
                .record(record(format!(r#"{{"n":{n}}}"#)))
                .send()
                .await
                .expect("PutRecord");
        }
        healthy(&http, &ep).await;
        let lake = dir.path().join("lake");
        wait_until(60, "small records to land", || {
            parquet_rows(&lake.join("bomb/k=xxx")).len() == 1
                && parquet_rows(&lake.join("bomb/k=xx")).len() == 1
        });
        wait_until(60, "the bombs in the error prefix", || {
            error_docs(&lake.join("bomb-errors")).len() == 2
        });
        let codes = error_codes(&lake.join("bomb-errors"));
        for (code, message) in &codes {
            assert_eq!(code, "DynamicPartitioning.MetadataExtractionLimitExceeded");
            assert!(message.contains("repeated a string"), "{message}");
        }
        healthy(&http, &ep).await;
    });
    let pid = server.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    // A gigabyte string was never built.
    assert!(peak_kib < 1024 * 1024, "peak RSS {peak_kib} KiB");
    stopped_in_time(server);
}
