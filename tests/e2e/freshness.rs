//! Any table over a stream's output answers acknowledged records before
//! they are written, through real clients: a JSON table an analyst defines
//! over a stream delivering JSON lines (keys matched ignoring case, as the
//! OpenX SerDe does). No row is counted twice when the objects land.

use std::time::{Duration, Instant};

use aws_sdk_firehose::types::{BufferingHints, ExtendedS3DestinationConfiguration};

use crate::util::*;

async fn pg_connect(server: &Server) -> tokio_postgres::Client {
    let (host, port) = server.pg_addr.rsplit_once(':').unwrap();
    let (pg, connection) = tokio_postgres::connect(
        &format!("host={host} port={port} user=analyst dbname=default connect_timeout=10"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect over the Postgres wire protocol");
    tokio::spawn(connection);
    pg
}

async fn count(pg: &tokio_postgres::Client, table: &str) -> i64 {
    pg.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap_or_else(|e| panic!("count of {table}: {e:?}"))
        .get(0)
}

/// The count of `table` until `within` has passed: it must reach `want`
/// soon and never go past it.
async fn settles_at(pg: &tokio_postgres::Client, table: &str, want: i64, within: Duration) {
    let started = Instant::now();
    let mut reached = None;
    while started.elapsed() < within {
        let n = count(pg, table).await;
        assert!(
            n <= want,
            "{table} counted {n} rows, more than the {want} sent"
        );
        if n == want && reached.is_none() {
            reached = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reached = reached.unwrap_or_else(|| panic!("{table} never counted {want} rows"));
    assert!(reached < Duration::from_secs(1), "{table} took {reached:?}");
}

#[test]
fn any_table_over_a_stream_answers_acknowledged_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let firehose = server.client();
    rt().block_on(async {
        // JSON lines as received, flushed every 2 seconds.
        let json = ExtendedS3DestinationConfiguration::builder()
            .role_arn("arn:aws:iam::123456789012:role/firehose")
            .bucket_arn("arn:aws:s3:::lake")
            .prefix("fresh/")
            .buffering_hints(
                BufferingHints::builder()
                    .interval_in_seconds(2)
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
        let pg = pg_connect(&server).await;
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
        // Within a second, and still once when the objects land (2 s).
        settles_at(&pg, "fresh_json", 2, Duration::from_secs(4)).await;
        let rows = pg
            .query("SELECT service, n FROM fresh_json ORDER BY n", &[])
            .await
            .unwrap();
        let got: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, [("web".to_string(), 1), ("api".to_string(), 2)]);
    });
    assert!(
        !files(&dir.path().join("lake/fresh"), "").is_empty(),
        "the JSON lines were delivered"
    );
    server.terminate();
}
