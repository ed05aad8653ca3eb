//! Records shipped through the real Firehose SDK land as partitioned
//! Parquet, every one of them, with the right partition and types; malformed
//! records land in the error prefix with their reason.

use std::collections::{BTreeMap, HashSet};

use arrow::datatypes::{DataType, TimeUnit};
use base64::Engine;
use serde_json::json;

use crate::util::*;

#[test]
fn firehose_records_land_as_partitioned_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let rt = rt();
    let services = ["web", "api", "checkout"];
    let mut expected = BTreeMap::new();
    rt.block_on(async {
        create_parquet_stream_with_table(&client, "logs", "lake", 1, Some(("weblogs", "requests"))).await;
        // 4 batches of 500 plus one PutRecord.
        for b in 0..4 {
            let mut records = Vec::new();
            for i in 0..500 {
                let id = b * 500 + i;
                let service = services[id % 3];
                let mut value = json!({
                    "id": id,
                    "service": service,
                    "Status": 200 + (id % 5) as i64,
                    "latency_ms": id as f64 / 10.0,
                    "timestamp": format!("2026-11-23T08:{:02}:{:02}.{:03}Z", id / 60 % 60, id % 60, id % 1000),
                    "http": {"method": "GET", "path": format!("/p/{id}")},
                    "tags": ["a", "b"],
                });
                if id.is_multiple_of(7) {
                    value["user_id"] = json!(format!("u-{id}"));
                }
                expected.insert(id as i64, value.clone());
                records.push(record(format!("{value}\n")));
            }
            let out = client
                .put_record_batch()
                .delivery_stream_name("logs")
                .set_records(Some(records))
                .send()
                .await
                .expect("PutRecordBatch");
            assert_eq!(out.failed_put_count(), 0);
            assert_eq!(out.request_responses().len(), 500);
            let ids: HashSet<_> = out.request_responses().iter().map(|r| r.record_id().unwrap().to_string()).collect();
            assert_eq!(ids.len(), 500, "record ids are unique");
        }
        let single = json!({"id": 2000, "service": "web", "Status": 201, "latency_ms": 1.5,
            "timestamp": "2026-11-23T09:00:00.000Z", "http": {"method": "POST", "path": "/x"}, "tags": []});
        expected.insert(2000, single.clone());
        let out = client
            .put_record()
            .delivery_stream_name("logs")
            .record(record(single.to_string()))
            .send()
            .await
            .expect("PutRecord");
        assert!(!out.record_id().is_empty());

        // Malformed records, each next to good ones in the same batch.
        let bad = vec![
            record(r#"{"id": 3000, "service": "web", "Status": 200"#),                 // invalid JSON
            record(r#"{"id": 3001, "Status": 200}"#),                                   // no partition key
            record(r#"{"id": 3002, "service": "api", "http": "not an object"}"#),       // type conflict
            record(r#"{"id": 2001, "service": "api", "Status": 404, "latency_ms": 2}"#), // good
        ];
        expected.insert(2001, json!({"id": 2001, "service": "api", "Status": 404, "latency_ms": 2.0}));
        let out = client
            .put_record_batch()
            .delivery_stream_name("logs")
            .set_records(Some(bad))
            .send()
            .await
            .expect("PutRecordBatch with bad records");
        assert_eq!(out.failed_put_count(), 0, "bad records are accepted and routed to the error prefix");
    });

    // The interval hint (1 s) flushes without any shutdown.
    let lake = dir.path().join("lake");
    wait_until(30, "interval flush", || {
        let n = parquet_rows(&lake.join("logs")).len();
        if n != expected.len() {
            eprintln!("{n} of {} rows so far", expected.len());
        }
        n == expected.len()
    });

    // Each delivered partition is registered in the catalog table the
    // stream names, which was created from the inferred schema.
    let glue = glue_client(&server.endpoint);
    rt.block_on(async {
        // Registration follows the object writes; give it a moment.
        for _ in 0..100 {
            let parts = glue
                .get_partitions()
                .database_name("weblogs")
                .table_name("requests")
                .send()
                .await;
            if parts.is_ok_and(|p| p.partitions().len() == 3) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let t = glue
            .get_table()
            .database_name("weblogs")
            .name("requests")
            .send()
            .await
            .unwrap();
        let t = t.table().unwrap();
        let keys: Vec<&str> = t.partition_keys().iter().map(|c| c.name()).collect();
        assert_eq!(keys, ["service", "dt"]);
        let sd = t.storage_descriptor().unwrap();
        assert_eq!(sd.location(), Some("s3://lake/logs/"));
        let cols: std::collections::HashMap<&str, &str> = sd
            .columns()
            .iter()
            .map(|c| (c.name(), c.r#type().unwrap()))
            .collect();
        assert_eq!(cols["id"], "bigint");
        assert_eq!(cols["latency_ms"], "double");
        assert_eq!(cols["timestamp"], "timestamp");
        assert_eq!(cols["http"], "struct<method:string,path:string>");
        assert_eq!(cols["tags"], "array<string>");
        assert_eq!(cols["user_id"], "string");
        assert!(
            !cols.contains_key("service"),
            "partition keys are not data columns"
        );
        let parts = glue
            .get_partitions()
            .database_name("weblogs")
            .table_name("requests")
            .send()
            .await
            .unwrap();
        let mut services: Vec<&str> = parts
            .partitions()
            .iter()
            .map(|p| p.values()[0].as_str())
            .collect();
        services.sort();
        assert_eq!(services, ["api", "checkout", "web"]);
        for p in parts.partitions() {
            let loc = p.storage_descriptor().unwrap().location().unwrap();
            assert_eq!(
                loc,
                format!(
                    "s3://lake/logs/service={}/dt={}/",
                    p.values()[0],
                    p.values()[1]
                )
            );
        }
    });
    server.terminate();

    let rows = parquet_rows(&lake.join("logs"));
    assert_eq!(rows.len(), expected.len());
    let mut seen = HashSet::new();
    for (path, row) in &rows {
        let id = row["id"].as_i64().unwrap();
        assert!(seen.insert(id), "record {id} delivered twice");
        let want = &expected[&id];
        let service = want["service"].as_str().unwrap();
        let rel = path
            .strip_prefix(&lake)
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(
            rel.starts_with(&format!("logs/service={service}/dt=")),
            "record {id} of {service} landed in {rel}"
        );
        assert!(rel.ends_with(".parquet"));
        // Keys are lowercased (OpenX JSON SerDe default).
        assert_eq!(row["status"], want["Status"], "record {id}");
        assert_eq!(
            row["latency_ms"].as_f64(),
            want["latency_ms"].as_f64(),
            "record {id}"
        );
        if let Some(http) = want.get("http") {
            assert_eq!(row["http"], *http, "record {id}");
        }
        assert_eq!(
            row.get("user_id").cloned().unwrap_or_default(),
            want.get("user_id").cloned().unwrap_or_default()
        );
    }

    // Types: integers, doubles, RFC 3339 timestamps, structs and lists.
    let parquet_files = files(&lake.join("logs"), ".parquet");
    let last = parquet_files
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let schema = read_parquet(last)[0].schema();
    assert_eq!(
        schema.field_with_name("id").unwrap().data_type(),
        &DataType::Int64
    );
    assert_eq!(
        schema.field_with_name("latency_ms").unwrap().data_type(),
        &DataType::Float64
    );
    assert_eq!(
        schema.field_with_name("timestamp").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
    );
    assert!(matches!(
        schema.field_with_name("http").unwrap().data_type(),
        DataType::Struct(_)
    ));
    assert!(matches!(
        schema.field_with_name("tags").unwrap().data_type(),
        DataType::List(_)
    ));
    let meta = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(last).unwrap())
        .unwrap();
    let codec = parquet::file::reader::FileReader::metadata(&meta)
        .row_group(0)
        .column(0)
        .compression();
    assert!(
        matches!(codec, parquet::basic::Compression::ZSTD(_)),
        "{codec:?}"
    );

    // Each malformed record is in the error prefix with its reason and raw bytes.
    let docs = error_docs(&lake.join("errors"));
    let by_code: BTreeMap<String, String> = docs
        .iter()
        .map(|d| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(d["rawData"].as_str().unwrap())
                .unwrap();
            (
                d["errorCode"].as_str().unwrap().to_string(),
                String::from_utf8(raw).unwrap(),
            )
        })
        .collect();
    assert_eq!(docs.len(), 3, "{docs:#?}");
    assert!(by_code["Invalid.JSON"].contains("3000"));
    assert!(by_code["DynamicPartitioning.MissingPartitionKey"].contains("3001"));
    assert!(by_code["DataFormatConversion.TypeConflict"].contains("3002"));
    let conflict = docs
        .iter()
        .find(|d| d["errorCode"] == "DataFormatConversion.TypeConflict")
        .unwrap();
    assert!(
        conflict["errorMessage"]
            .as_str()
            .unwrap()
            .contains("\"http\""),
        "{conflict}"
    );
    assert!(!files(&lake.join("errors/processing-failed"), "").is_empty());
    assert!(!files(&lake.join("errors/format-conversion-failed"), "").is_empty());
}

#[test]
fn raw_json_lines_streams_write_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    rt().block_on(async {
        use aws_sdk_firehose::types::*;
        client
            .create_delivery_stream()
            .delivery_stream_name("raw")
            .extended_s3_destination_configuration(
                ExtendedS3DestinationConfiguration::builder()
                    .role_arn("arn:aws:iam::123456789012:role/firehose")
                    .bucket_arn("arn:aws:s3:::rawbucket")
                    .prefix("raw/")
                    .compression_format(CompressionFormat::Gzip)
                    .buffering_hints(
                        BufferingHints::builder()
                            .size_in_mbs(1)
                            .interval_in_seconds(300)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let records = (0..100).map(|i| record(format!("{{\"n\":{i}}}"))).collect();
        client
            .put_record_batch()
            .delivery_stream_name("raw")
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
        // Not JSON at all: raw streams accept any bytes.
        client
            .put_record()
            .delivery_stream_name("raw")
            .record(record("plain text line"))
            .send()
            .await
            .unwrap();
    });
    // The interval is 5 minutes: only the graceful shutdown flushes.
    server.terminate();
    let gz = files(&dir.path().join("rawbucket/raw"), ".gz");
    assert_eq!(gz.len(), 1, "{gz:?}");
    let rel = gz[0]
        .strip_prefix(dir.path().join("rawbucket"))
        .unwrap()
        .to_string_lossy()
        .to_string();
    // Firehose's default time prefix, then <stream>-<version>-<time>-<id>.
    let parts: Vec<&str> = rel.split('/').collect();
    assert_eq!(parts.len(), 6, "{rel}");
    assert!(parts[5].starts_with("raw-1-"), "{rel}");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&gz[0]).unwrap()),
        &mut text,
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 101);
    assert_eq!(lines[0], "{\"n\":0}");
    assert_eq!(lines[100], "plain text line");
}
