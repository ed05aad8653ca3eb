//! Ingest benchmarks.
//!
//! - `e2e_http`: records sent over HTTP with `PutRecordBatch` (500 records a
//!   call, 8 calls in flight) to an in-process server, acknowledged after the
//!   write-ahead log fsync, partitioned with JQ and written as zstd Parquet;
//!   each iteration ends when every record is in a Parquet file. Once
//!   unsigned against a server without keys, once with every call SigV4
//!   signed (ahead of time) against a server that verifies signatures and
//!   policies.
//! - `direct_parquet`: the same records parsed by arrow-json and written by
//!   the parquet crate directly: the physical limit of this machine.
//!
//! - `e2e_nodes`: the end-to-end figure with one and with two nodes over
//!   one S3 bucket, records sent round-robin to the nodes; run through
//!   `scripts/ingest-nodes.sh`, which starts moto in server mode on
//!   loopback (skipped otherwise).
//!
//! It also prints the size of the Parquet output against gzip'd JSON of the
//! same records. Run with `cargo bench --bench ingest`.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lakehose::loggen::LogGenerator;
use lakehose::server::{self, ServerOptions};

const BATCH: usize = 500;
const BATCHES_PER_ITER: usize = 80; // 40,000 records per iteration
const IN_FLIGHT: usize = 8;

fn records(n: usize) -> Vec<Vec<u8>> {
    let mut gens: Vec<LogGenerator> = (0..12).map(|i| LogGenerator::new(i, 42)).collect();
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let n = gens.len();
            let mut line = gens[i % n].record(now).to_string().into_bytes();
            line.push(b'\n');
            line
        })
        .collect()
}

fn batch_bodies(records: &[Vec<u8>], stream: &str) -> Vec<Bytes> {
    let engine = base64::engine::general_purpose::STANDARD;
    records
        .chunks(BATCH)
        .map(|chunk| {
            let recs: Vec<serde_json::Value> = chunk
                .iter()
                .map(|r| serde_json::json!({"Data": engine.encode(r)}))
                .collect();
            Bytes::from(
                serde_json::json!({"DeliveryStreamName": stream, "Records": recs}).to_string(),
            )
        })
        .collect()
}

fn create_stream_body(stream: &str) -> String {
    serde_json::json!({
        "DeliveryStreamName": stream,
        "ExtendedS3DestinationConfiguration": {
            "RoleARN": "arn:aws:iam::000000000000:role/bench",
            "BucketARN": "arn:aws:s3:::bench",
            "Prefix": "logs/service=!{partitionKeyFromQuery:service}/dt=!{timestamp:yyyy-MM-dd}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 900},
            "DynamicPartitioningConfiguration": {"Enabled": true},
            "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "MetadataExtraction",
                "Parameters": [{"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{service: .service}"},
                               {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]},
            "DataFormatConversionConfiguration": {"Enabled": true,
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}}
        }
    })
    .to_string()
}

/// Requests as sent: the target header and body, plus the SigV4 headers
/// of a key when the server requires signatures (signed once, before the
/// measurement, so the figure is the server's verification cost, not the
/// client's signing).
struct Prepared {
    headers: Vec<(String, String)>,
    body: Bytes,
}

fn prepare(endpoint: &str, target: &str, body: Bytes, key: Option<&(String, String)>) -> Prepared {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let mut headers = vec![
        ("x-amz-target".to_string(), target.to_string()),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
    ];
    if let Some((id, secret)) = key {
        let identity =
            aws_credential_types::Credentials::new(id, secret, None, None, "bench").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("firehose")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let host = endpoint.trim_start_matches("http://").to_string();
        let mut signed: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        signed.push(("host", &host));
        let request = SignableRequest::new(
            "POST",
            endpoint,
            signed.into_iter(),
            SignableBody::Bytes(&body),
        )
        .expect("signable");
        let (instructions, _) = sign(request, &params).expect("sign").into_parts();
        let (added, _) = instructions.into_parts();
        for h in added {
            headers.push((h.name().to_string(), h.value().to_string()));
        }
    }
    Prepared { headers, body }
}

fn send(http: &reqwest::Client, endpoint: &str, p: &Prepared) -> reqwest::RequestBuilder {
    let mut r = http.post(endpoint).body(p.body.clone());
    for (k, v) in &p.headers {
        r = r.header(k, v);
    }
    r
}

fn e2e_http(c: &mut Criterion) {
    e2e(c, "e2e_http_firehose_to_parquet", false);
    e2e(c, "e2e_http_firehose_to_parquet_sigv4", true);
}

fn e2e(c: &mut Criterion, name: &str, signed: bool) {
    let rt = server::runtime(None).expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let keys_file = dir.path().join("keys/principals.json");
    let key = signed.then(|| {
        let made = lakehose_auth::keys::create_key(
            &lakehose_auth::keys::KeyPaths::new(&keys_file),
            "bench",
            &["admins".to_string()],
            None,
        )
        .expect("key");
        (made.access_key_id, made.secret_access_key)
    });
    let running = rt
        .block_on(server::start(options(
            dir.path(),
            Default::default(),
            None,
            signed.then(|| keys_file.clone()),
        )))
        .expect("server");
    let endpoint = format!("http://{}", running.addr());
    let http = reqwest::Client::new();
    let recs = records(BATCH * BATCHES_PER_ITER);
    let json_bytes: usize = recs.iter().map(Vec::len).sum();
    println!(
        "e2e: {} records per iteration, {:.0} bytes of JSON per record on average",
        recs.len(),
        json_bytes as f64 / recs.len() as f64
    );
    let bodies: Arc<Vec<Prepared>> = Arc::new(
        batch_bodies(&recs, "bench")
            .into_iter()
            .map(|b| {
                prepare(
                    &endpoint,
                    "Firehose_20150804.PutRecordBatch",
                    b,
                    key.as_ref(),
                )
            })
            .collect(),
    );
    rt.block_on(async {
        let create = prepare(
            &endpoint,
            "Firehose_20150804.CreateDeliveryStream",
            Bytes::from(create_stream_body("bench")),
            key.as_ref(),
        );
        let resp = send(&http, &endpoint, &create)
            .send()
            .await
            .expect("create");
        assert!(resp.status().is_success(), "{}", resp.status());
    });

    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(recs.len() as u64));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    send_all(&http, std::slice::from_ref(&endpoint), &bodies).await;
                    let sent = start.elapsed();
                    running.ingest().flush_all().await;
                    if std::env::var("PHASES").is_ok() {
                        eprintln!("send {:?} total {:?}", sent, start.elapsed());
                    }
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    rt.block_on(running.shutdown()).expect("shutdown");
}

/// A server on loopback over `data_dir` with `storage`.
fn options(
    data_dir: &std::path::Path,
    storage: lakehose::storage_args::StorageArgs,
    node_id: Option<String>,
    keys_file: Option<std::path::PathBuf>,
) -> ServerOptions {
    ServerOptions {
        storage,
        node_id,
        keys_file,
        ..ServerOptions::loopback(data_dir)
    }
}

/// `PutRecordBatch` bodies sent round-robin over `endpoints`, `IN_FLIGHT`
/// calls at a time (each worker sticks to one node).
async fn send_all(http: &reqwest::Client, endpoints: &[String], bodies: &Arc<Vec<Prepared>>) {
    let mut tasks = Vec::new();
    for worker in 0..IN_FLIGHT {
        let http = http.clone();
        let endpoint = endpoints[worker % endpoints.len()].clone();
        let bodies = Arc::clone(bodies);
        tasks.push(tokio::spawn(async move {
            for body in bodies.iter().skip(worker).step_by(IN_FLIGHT) {
                let resp = send(&http, &endpoint, body).send().await.expect("put");
                assert!(resp.status().is_success(), "{}", resp.status());
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
}

/// The end-to-end figure with one and with two nodes sharing one S3
/// bucket and system bucket (moto in server mode on loopback, started by
/// `scripts/ingest-nodes.sh`, which also sets the AWS environment): each node has its own write-ahead log and
/// data folder, records go round-robin to the nodes, and an iteration ends
/// when every node has flushed every record to S3.
fn e2e_nodes(c: &mut Criterion) {
    // scripts/ingest-nodes.sh starts moto and sets the AWS environment.
    let (Ok(endpoint), Ok(_)) = (
        std::env::var("AWS_ENDPOINT_URL"),
        std::env::var("LAKEHOSE_BENCH_S3"),
    ) else {
        eprintln!("ingest/nodes skipped: run it with scripts/ingest-nodes.sh (S3 on moto)");
        return;
    };
    let rt = server::runtime(None).expect("runtime");
    let http = reqwest::Client::new();
    rt.block_on(async {
        for bucket in ["lakehose-system", "bench"] {
            let resp = http
                .put(format!("{endpoint}/{bucket}"))
                .send()
                .await
                .expect("moto");
            assert!(resp.status().is_success(), "create bucket {bucket}");
        }
    });
    let recs = records(BATCH * BATCHES_PER_ITER);
    let partitions = recs
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(r).ok())
        .filter_map(|v| v["service"].as_str().map(str::to_string))
        .collect::<std::collections::HashSet<_>>()
        .len();
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(recs.len() as u64));
    for nodes in [1usize, 2] {
        let dirs: Vec<tempfile::TempDir> = (0..nodes)
            .map(|_| tempfile::tempdir().expect("dir"))
            .collect();
        let running: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let storage = lakehose::storage_args::StorageArgs {
                    storage: lakehose::storage_args::StorageKind::S3,
                    system_bucket: Some("lakehose-system".into()),
                    ..Default::default()
                };
                rt.block_on(server::start(options(
                    dir.path(),
                    storage,
                    Some(format!("bench{nodes}n{i}")),
                    None,
                )))
                .expect("server")
            })
            .collect();
        let endpoints: Vec<String> = running
            .iter()
            .map(|r| format!("http://{}", r.addr()))
            .collect();
        let stream = format!("nodes{nodes}");
        let bodies: Arc<Vec<Prepared>> = Arc::new(
            batch_bodies(&recs, &stream)
                .into_iter()
                .map(|b| prepare(&endpoints[0], "Firehose_20150804.PutRecordBatch", b, None))
                .collect(),
        );
        rt.block_on(async {
            let create = prepare(
                &endpoints[0],
                "Firehose_20150804.CreateDeliveryStream",
                Bytes::from(create_stream_body(&stream)),
                None,
            );
            let resp = send(&http, &endpoints[0], &create)
                .send()
                .await
                .expect("create");
            assert!(resp.status().is_success(), "{}", resp.status());
        });
        let mut requests = [0u64; 6];
        let mut iterations = 0u64;
        group.bench_function(format!("e2e_http_firehose_to_s3_{nodes}_nodes"), |b| {
            b.iter_custom(|iters| {
                let before = lakehose_catalog::s3::requests_sent();
                let took = rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        send_all(&http, &endpoints, &bodies).await;
                        for node in &running {
                            node.ingest().flush_all().await;
                        }
                    }
                    start.elapsed()
                });
                let after = lakehose_catalog::s3::requests_sent();
                for (total, (a, b)) in requests.iter_mut().zip(after.iter().zip(before)) {
                    *total += a - b;
                }
                iterations += iters;
                took
            })
        });
        let per_iteration: Vec<String> = lakehose_catalog::s3::REQUEST_METHODS
            .iter()
            .zip(requests)
            .filter(|(_, n)| *n > 0)
            .map(|(m, n)| format!("{m} {:.1}", n as f64 / iterations.max(1) as f64))
            .collect();
        println!(
            "{nodes} node(s): S3 requests per iteration ({} records, {partitions} partitions, then a flush of every node): {}",
            recs.len(),
            per_iteration.join(", ")
        );
        for node in running {
            rt.block_on(node.shutdown()).expect("shutdown");
        }
    }
    group.finish();
}

fn direct_parquet(c: &mut Criterion) {
    use arrow::json::ReaderBuilder;
    use arrow::json::reader::infer_json_schema_from_iterator;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    let recs = records(BATCH * BATCHES_PER_ITER);
    let json_bytes: usize = recs.iter().map(Vec::len).sum();
    let all: Vec<u8> = recs.concat();
    let values: Vec<serde_json::Value> = recs
        .iter()
        .map(|r| serde_json::from_slice(r).expect("json"))
        .collect();
    let schema = Arc::new(
        infer_json_schema_from_iterator(values.iter().map(|v| Ok(v.clone()))).expect("schema"),
    );
    let write = |data: &[u8]| -> Vec<u8> {
        let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
            .with_batch_size(8192)
            .build_decoder()
            .expect("decoder");
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level")))
            .build();
        let mut writer =
            ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props)).expect("writer");
        let mut rest = data;
        while !rest.is_empty() {
            let n = decoder.decode(rest).expect("decode");
            rest = &rest[n..];
            if let Some(batch) = decoder.flush().expect("flush") {
                writer.write(&batch).expect("write");
            }
        }
        if let Some(batch) = decoder.flush().expect("flush") {
            writer.write(&batch).expect("write");
        }
        writer.into_inner().expect("close")
    };

    // Size of Parquet against gzip'd JSON of the same records.
    let parquet = write(&all);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&all).expect("gzip");
    let gz = gz.finish().expect("gzip");
    println!(
        "sizes for {} records: JSON {:.2} MiB, gzip'd JSON {:.2} MiB, zstd Parquet {:.2} MiB ({:.1}% of gzip)",
        recs.len(),
        json_bytes as f64 / 1048576.0,
        gz.len() as f64 / 1048576.0,
        parquet.len() as f64 / 1048576.0,
        100.0 * parquet.len() as f64 / gz.len() as f64
    );

    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(recs.len() as u64));
    group.bench_function("direct_arrow_json_to_parquet", |b| b.iter(|| write(&all)));
    group.finish();
}

criterion_group!(benches, direct_parquet, e2e_http, e2e_nodes);
criterion_main!(benches);
