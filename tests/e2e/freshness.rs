//! Any table over a stream's output answers acknowledged records before
//! they are written, through real clients: a JSON table an analyst defines
//! over a stream delivering JSON lines (keys matched ignoring case, as the
//! OpenX SerDe does), before any object is written; after the stream
//! delivers them the same rows come from the objects, each once.

use std::time::{Duration, Instant};

use aws_sdk_firehose::types::{BufferingHints, ExtendedS3DestinationConfiguration};

use crate::util::*;

async fn count(pg: &tokio_postgres::Client, table: &str) -> i64 {
    pg.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count of {table}: {e:?}"))
        .get(0)
}

/// Waits (at most 20 s) for `table` to count `want` rows; it must never
/// count more.
async fn reaches(pg: &tokio_postgres::Client, table: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = count(pg, table).await;
        assert!(
            n <= want,
            "{table} counted {n} rows, more than the {want} sent"
        );
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{table} never counted {want} rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn any_table_over_a_stream_answers_acknowledged_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let firehose = server.client();
    rt().block_on(async {
        // JSON lines as received; nothing is written for 15 minutes.
        let json = ExtendedS3DestinationConfiguration::builder()
            .role_arn("arn:aws:iam::123456789012:role/firehose")
            .bucket_arn("arn:aws:s3:::lake")
            .prefix("fresh/")
            .buffering_hints(
                BufferingHints::builder()
                    .interval_in_seconds(900)
                    .size_in_mbs(64)
                    .build(),
            )
            .build()
            .unwrap();
        firehose
            .create_delivery_stream()
            .delivery_stream_name("fresh")
            .extended_s3_destination_configuration(json)
            .send()
            .await
            .unwrap();
        let pg = server.pg("default").await;
        pg.simple_query(
            "CREATE EXTERNAL TABLE fresh_json (service string, n int) \
             ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe' LOCATION 's3://lake/fresh/'",
        )
        .await
        .unwrap();
        for (stream, records) in [(
            "fresh",
            vec![r#"{"service":"web","n":1}"#, r#"{"Service":"api","N":2}"#],
        )] {
            let batch: Vec<_> = records
                .iter()
                .map(|r| record(r.as_bytes().to_vec()))
                .collect();
            let out = firehose
                .put_record_batch()
                .delivery_stream_name(stream)
                .set_records(Some(batch))
                .send()
                .await
                .unwrap();
            assert_eq!(out.failed_put_count(), 0);
        }
        // Answered from the buffers: no object is written yet.
        reaches(&pg, "fresh_json", 2).await;
        assert!(files(&dir.path().join("lake/fresh"), "").is_empty());
        let rows = pg
            .query("SELECT service, n FROM fresh_json ORDER BY n", &[])
            .await
            .unwrap();
        let got: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, [("web".to_string(), 1), ("api".to_string(), 2)]);
    });
    // A stop delivers the buffers; after a start the same rows come from the
    // objects, each once.
    server.terminate();
    assert!(
        !files(&dir.path().join("lake/fresh"), "").is_empty(),
        "the JSON lines were delivered"
    );
    let server = Server::start(dir.path(), &[]);
    rt().block_on(async {
        let pg = server.pg("default").await;
        assert_eq!(count(&pg, "fresh_json").await, 2);
    });
    server.terminate();
}
