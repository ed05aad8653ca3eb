//! Bad input over raw HTTP: each case gets AWS's error shape and status,
//! nothing is lost, and the server keeps serving.

use base64::Engine;
use serde_json::{Value, json};

use crate::util::*;

async fn call(
    http: &reqwest::Client,
    endpoint: &str,
    target: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = http
        .post(endpoint)
        .header("content-type", "application/x-amz-json-1.1")
        .body(body);
    if let Some(t) = target {
        req = req.header("x-amz-target", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn malformed_requests_get_aws_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = reqwest::Client::new();
    let ep = server.endpoint.clone();
    rt().block_on(async {
        let create = json!({"DeliveryStreamName": "s", "ExtendedS3DestinationConfiguration": {
            "RoleARN": "r", "BucketARN": "arn:aws:s3:::errs", "Prefix": "d/",
            "ErrorOutputPrefix": "e/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
            "DataFormatConversionConfiguration": {"OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}}}});
        let (status, _) = call(&http, &ep, Some("Firehose_20150804.CreateDeliveryStream"), create.to_string()).await;
        assert_eq!(status, 200);

        let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
            ("unknown action", Some("Firehose_20150804.Explode"), "{}".into(), 400, "UnknownOperationException"),
            ("unknown service", Some("Nope_2020.PutRecord"), "{}".into(), 400, "UnknownOperationException"),
            ("no target", None, "{}".into(), 400, "UnknownOperationException"),
            ("not json", Some("Firehose_20150804.PutRecord"), "{nope".into(), 400, "SerializationException"),
            ("wrong types", Some("Firehose_20150804.PutRecordBatch"), json!({"DeliveryStreamName": 5}).to_string(), 400, "SerializationException"),
            ("missing name", Some("Firehose_20150804.PutRecord"), json!({"Record": {"Data": b64(b"{}")}}).to_string(), 400, "InvalidArgumentException"),
            ("unknown stream", Some("Firehose_20150804.PutRecord"), json!({"DeliveryStreamName": "ghost", "Record": {"Data": b64(b"{}")}}).to_string(), 400, "ResourceNotFoundException"),
            ("empty batch", Some("Firehose_20150804.PutRecordBatch"), json!({"DeliveryStreamName": "s", "Records": []}).to_string(), 400, "InvalidArgumentException"),
            ("501 records", Some("Firehose_20150804.PutRecordBatch"),
                json!({"DeliveryStreamName": "s", "Records": vec![json!({"Data": b64(b"{}")}); 501]}).to_string(), 400, "InvalidArgumentException"),
            ("record over 1000 KiB", Some("Firehose_20150804.PutRecord"),
                json!({"DeliveryStreamName": "s", "Record": {"Data": b64(&vec![b'x'; 1_024_001])}}).to_string(), 400, "InvalidArgumentException"),
            ("batch over 4 MiB", Some("Firehose_20150804.PutRecordBatch"),
                json!({"DeliveryStreamName": "s", "Records": vec![json!({"Data": b64(&vec![b'y'; 900_000])}); 5]}).to_string(), 400, "InvalidArgumentException"),
            ("unsupported op", Some("Firehose_20150804.TagDeliveryStream"), json!({"DeliveryStreamName": "s", "Tags": []}).to_string(), 400, "InvalidArgumentException"),
        ];
        for (what, target, body, want_status, want_type) in cases {
            let (status, body) = call(&http, &ep, target, body).await;
            assert_eq!(status, want_status, "{what}: {body}");
            assert_eq!(body["__type"], want_type, "{what}: {body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
        }

        // A batch mixing good records with bad base64 and bad JSON: all are
        // acknowledged; the bad ones go to the error prefix.
        let batch = json!({"DeliveryStreamName": "s", "Records": [
            {"Data": b64(br#"{"ok": 1}"#)},
            {"Data": "!!!not base64!!!"},
            {"Data": b64(b"[1,2,3]")},
            {"Data": b64(br#"{"ok": 2}"#)},
        ]});
        let (status, body) = call(&http, &ep, Some("Firehose_20150804.PutRecordBatch"), batch.to_string()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["FailedPutCount"], 0);
        assert_eq!(body["RequestResponses"].as_array().unwrap().len(), 4);

        let health = http.get(format!("{ep}/health")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
    });
    server.terminate();
    let rows = parquet_rows(&dir.path().join("errs/d"));
    let mut oks: Vec<i64> = rows
        .iter()
        .map(|(_, r)| r["ok"].as_i64().unwrap())
        .collect();
    oks.sort();
    assert_eq!(oks, [1, 2]);
    let docs = error_docs(&dir.path().join("errs/e"));
    let mut codes: Vec<&str> = docs
        .iter()
        .map(|d| d["errorCode"].as_str().unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        ["DataFormatConversion.NotAnObject", "Invalid.Base64"]
    );
    let raw = docs
        .iter()
        .find(|d| d["errorCode"] == "Invalid.Base64")
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw["rawData"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, b"!!!not base64!!!");
}

#[test]
fn full_buffers_answer_503_until_they_drain() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-buffer-mb", "1"]);
    let http = reqwest::Client::new();
    let ep = server.endpoint.clone();
    rt().block_on(async {
        let create = json!({"DeliveryStreamName": "slow", "ExtendedS3DestinationConfiguration": {
            "RoleARN": "r", "BucketARN": "arn:aws:s3:::slow", "Prefix": "d/",
            "BufferingHints": {"SizeInMBs": 128, "IntervalInSeconds": 2}}});
        call(&http, &ep, Some("Firehose_20150804.CreateDeliveryStream"), create.to_string()).await;
        let batch = json!({"DeliveryStreamName": "slow", "Records": vec![json!({"Data": b64(&vec![b'z'; 300_000])}); 2]}).to_string();
        let (s1, _) = call(&http, &ep, Some("Firehose_20150804.PutRecordBatch"), batch.clone()).await;
        assert_eq!(s1, 200);
        let (s2, body) = call(&http, &ep, Some("Firehose_20150804.PutRecordBatch"), batch.clone()).await;
        assert_eq!(s2, 503, "{body}");
        assert_eq!(body["__type"], "ServiceUnavailableException");
        // An NDJSON body announcing more than fits is refused before it is
        // read.
        let lines = format!("{{\"z\":\"{}\"}}\n", "z".repeat(600_000));
        let answer = http
            .post(format!("{ep}/v1/streams/slow/records"))
            .header("content-type", "application/x-ndjson")
            .body(lines)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 503);
        let answer: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(answer["error"], "ServiceUnavailableException", "{answer}");
        // Once the interval flush drains the buffer, records are accepted again.
        let mut accepted = false;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let (s, _) = call(&http, &ep, Some("Firehose_20150804.PutRecordBatch"), batch.clone()).await;
            if s == 200 {
                accepted = true;
                break;
            }
        }
        assert!(accepted, "the buffer never drained");
        let metrics = http.get(format!("{ep}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("lakehose_ingest_requests_throttled_total"), "{metrics}");
        let throttled: f64 = metrics
            .lines()
            .find(|l| l.starts_with("lakehose_ingest_requests_throttled_total"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .parse()
            .unwrap();
        assert!(throttled >= 1.0);
    });
    server.terminate();
    let landed = files(&dir.path().join("slow/d"), "");
    let total: usize = landed
        .iter()
        .map(|p| {
            std::fs::read(p)
                .unwrap()
                .iter()
                .filter(|&&c| c == b'\n')
                .count()
        })
        .sum();
    assert_eq!(total, 4, "two accepted batches of two records");
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another lakehose process"),
        "{stderr}"
    );
    server.terminate();
}

#[test]
fn malformed_glue_requests_get_glue_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = reqwest::Client::new();
    let ep = server.endpoint.clone();
    rt().block_on(async {
        let cases: Vec<(&str, String, &str)> = vec![
            ("AWSGlue.GetDatabase", "{not json".into(), "SerializationException"),
            ("AWSGlue.GetDatabase", "{}".into(), "InvalidInputException"),
            ("AWSGlue.CreateDatabase", json!({"DatabaseInput": {"Name": "x/y"}}).to_string(), "InvalidInputException"),
            ("AWSGlue.CreateDatabase", json!({"DatabaseInput": {"Name": "d", "LocationUri": "ftp://x"}}).to_string(), "InvalidInputException"),
            ("AWSGlue.GetTable", json!({"DatabaseName": "nope", "Name": "t"}).to_string(), "EntityNotFoundException"),
            ("AWSGlue.GetTables", json!({"DatabaseName": "nope"}).to_string(), "EntityNotFoundException"),
            ("AWSGlue.GetDatabases", json!({"MaxResults": 0}).to_string(), "InvalidInputException"),
            ("AWSGlue.GetDatabases", json!({"NextToken": "%%%"}).to_string(), "InvalidInputException"),
            ("AWSGlue.GetPartitions", json!({"DatabaseName": "nope", "TableName": "t"}).to_string(), "EntityNotFoundException"),
            ("AWSGlue.StartCrawler", json!({"Name": "ghost"}).to_string(), "EntityNotFoundException"),
            ("AWSGlue.CreateCrawler", json!({"Name": "c", "Role": "r", "DatabaseName": "d", "Targets": {"JdbcTargets": [{"Path": "x"}]}}).to_string(), "InvalidInputException"),
            ("AWSGlue.CreateCrawler", json!({"Name": "c", "Role": "r", "DatabaseName": "d", "Targets": {"S3Targets": [{"Path": "s3://ok-bucket/"}]}, "Schedule": "every day"}).to_string(), "InvalidInputException"),
            ("AWSGlue.NoSuchOperation", "{}".into(), "UnknownOperationException"),
        ];
        for (target, body, want) in cases {
            let (status, v) = call(&http, &ep, Some(target), body.clone()).await;
            assert_eq!(status, 400, "{target} {body}: {v}");
            assert_eq!(v["__type"], want, "{target} {body}: {v}");
            assert!(v["Message"].as_str().is_some_and(|m| !m.is_empty()), "Glue spells it Message: {v}");
        }
        let health = http.get(format!("{ep}/health")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
    });
    server.terminate();
}

#[test]
fn unsupported_crawler_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = reqwest::Client::new();
    rt().block_on(async {
        let body = json!({"Name": "c", "Role": "r", "DatabaseName": "d",
            "Targets": {"S3Targets": [{"Path": "s3://ok-bucket/", "SampleSize": 5}]},
            "Configuration": "{\"Version\": 1.0, \"Grouping\": {\"TableLevel\": 3}}"});
        let (status, v) = call(
            &http,
            &server.endpoint,
            Some("AWSGlue.CreateCrawler"),
            body.to_string(),
        )
        .await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["__type"], "InvalidInputException");
        assert!(
            v["Message"]
                .as_str()
                .unwrap()
                .contains("Grouping.TableLevel"),
            "{v}"
        );
        let body = json!({"Name": "c", "Role": "r", "DatabaseName": "d",
            "Targets": {"S3Targets": [{"Path": "s3://ok-bucket/", "SampleSize": 5}]},
            "Configuration": "{\"Version\": 1.0}"});
        let (status, v) = call(
            &http,
            &server.endpoint,
            Some("AWSGlue.CreateCrawler"),
            body.to_string(),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    });
    server.terminate();
}
