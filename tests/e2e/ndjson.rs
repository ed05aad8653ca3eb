//! The plain NDJSON endpoint: plain and gzip bodies, errors, and metrics.

use std::io::Write;

use serde_json::{Value, json};

use crate::util::*;

#[test]
fn ndjson_lines_land_and_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = server.client();
    let http = reqwest::Client::new();
    let ep = server.endpoint.clone();
    rt().block_on(async {
        create_parquet_stream(&client, "lines", "ndj", 300).await;
        let body: String = (0..300)
            .map(|i| format!("{}\r\n", json!({"n": i, "service": "web"})))
            .collect();
        let resp = http
            .post(format!("{ep}/v1/streams/lines/records"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["accepted"], 300);

        // What a web form on another site could make a browser send is
        // refused: no content type, or a form's.
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let mut req = http
                .post(format!("{ep}/v1/streams/lines/records"))
                .body("{\"n\": -1}\n");
            if let Some(t) = content_type {
                req = req.header("content-type", t);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 415, "{content_type:?}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"], "UnsupportedMediaType");
        }

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 300..500 {
            writeln!(gz, "{}", json!({"n": i, "service": "api"})).unwrap();
        }
        writeln!(gz).unwrap();
        let resp = http
            .post(format!("{ep}/v1/streams/lines/records"))
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", "gzip")
            .body(gz.finish().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["accepted"], 200);

        let resp = http
            .post(format!("{ep}/v1/streams/ghost/records"))
            .header("content-type", "application/x-ndjson")
            .body("{}\n")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "ResourceNotFoundException");

        let resp = http
            .post(format!("{ep}/v1/streams/lines/records"))
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", "gzip")
            .body("definitely not gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);

        let metrics = http
            .get(format!("{ep}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let acked = metrics
            .lines()
            .find(|l| l.starts_with("lakehose_ingest_records_acked_total"))
            .unwrap();
        assert!(acked.ends_with(" 500"), "{acked}");
    });
    server.terminate();
    let rows = parquet_rows(&dir.path().join("ndj/logs"));
    let mut ns: Vec<i64> = rows.iter().map(|(_, r)| r["n"].as_i64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, (0..500).collect::<Vec<_>>());
    assert_eq!(
        count_by(&rows, "service")
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [200, 300]
    );
}
