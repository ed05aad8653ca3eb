//! Shared fixtures: a server process, clients, and readers for what landed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use aws_sdk_firehose::Client;
use aws_sdk_firehose::types::Record;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// A `lakehose serve` process on a random loopback port.
pub struct Server {
    child: Child,
    pub endpoint: String,
    /// The Postgres wire address.
    pub pg_addr: String,
}

impl Server {
    /// A tokio-postgres client connected to the server's Postgres port as
    /// `analyst`, in `database`.
    pub async fn pg(&self, database: &str) -> tokio_postgres::Client {
        let (host, port) = self.pg_addr.rsplit_once(':').unwrap();
        let (pg, connection) = tokio_postgres::connect(
            &format!("host={host} port={port} user=analyst dbname={database} connect_timeout=10"),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect over the Postgres wire protocol");
        tokio::spawn(connection);
        pg
    }

    /// Starts a server over `data_dir` with extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_with_stderr(data_dir, extra, Stdio::inherit())
    }

    /// [`start`](Self::start) with the server's log (stderr) sent to `stderr`.
    pub fn start_with_stderr(data_dir: &Path, extra: &[&str], stderr: Stdio) -> Server {
        Self::start_full(data_dir, extra, stderr, &[])
    }

    /// [`start_with_stderr`](Self::start_with_stderr) with environment
    /// variables set for the server.
    pub fn start_full(
        data_dir: &Path,
        extra: &[&str],
        stderr: Stdio,
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakehose"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--pg-listen",
                "127.0.0.1:0",
                "--log",
                "warn",
            ])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start lakehose");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .expect("the server printed nothing")
            .expect("read stdout");
        let endpoint = first
            .strip_prefix("lakehose listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        let second = lines
            .next()
            .expect("the server printed one line only")
            .expect("read stdout");
        let pg_addr = second
            .strip_prefix("postgres wire listening on ")
            .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
            .to_string();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            endpoint,
            pg_addr,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A Firehose client for this server.
    pub fn client(&self) -> Client {
        lakehose::commands::demo::firehose_client(&self.endpoint, 3)
    }

    /// SIGTERM, then wait for a clean exit (which flushes every buffer).
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "lakehose exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lakehose did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` (recursively) whose name ends with `suffix`,
/// skipping hidden files and lakehose's own state.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name == "_lakehose" {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Reads a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Rows of Parquet files as JSON objects, each with the file it came from.
pub fn parquet_rows(dir: &Path) -> Vec<(PathBuf, serde_json::Map<String, Value>)> {
    let mut rows = Vec::new();
    for path in files(dir, ".parquet") {
        for batch in read_parquet(&path) {
            rows.extend(json_rows(&batch).into_iter().map(|v| (path.clone(), v)));
        }
    }
    rows
}

/// A batch's rows as JSON objects.
pub fn json_rows(batch: &RecordBatch) -> Vec<serde_json::Map<String, Value>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write(batch).unwrap();
    writer.finish().unwrap();
    let buf = writer.into_inner();
    if buf.is_empty() {
        return Vec::new();
    }
    serde_json::from_slice(&buf).unwrap()
}

/// Asserts that every id in `acked` is among `ids` and none of `ids` is
/// there twice; returns how many times each id is there.
pub fn assert_exactly_once<'a>(
    ids: impl IntoIterator<Item = &'a str>,
    acked: &std::collections::HashSet<String>,
) -> std::collections::HashMap<String, usize> {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for id in ids {
        *seen.entry(id.to_string()).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "records delivered more than once: {:?}",
        &duplicated[..duplicated.len().min(10)]
    );
    let lost: Vec<_> = acked.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    seen
}

/// Puts batches of 50 records (`{"id", "service", "pad"}`, ids
/// `<round>-<task>-<n>`) to `stream` from four tasks until the server
/// stops answering; the ids of acknowledged records go to `acked`.
/// Returns how many records were sent. The client should not retry, so
/// an acknowledgement means exactly one accepted call.
pub fn send_until_refused(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    stream: &str,
    round: usize,
    pad: usize,
    acked: &std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..4)
        .map(|task| {
            let client = client.clone();
            let acked = std::sync::Arc::clone(acked);
            let stream = stream.to_string();
            rt.spawn(async move {
                let mut n = 0;
                loop {
                    let ids: Vec<String> = (0..50)
                        .map(|i| format!("{round}-{task}-{}", n + i))
                        .collect();
                    n += 50;
                    let records = ids
                        .iter()
                        .map(|id| {
                            let service = ["a", "b", "c"][task % 3];
                            let row = serde_json::json!({"id": id, "service": service, "pad": "x".repeat(pad)});
                            record(row.to_string())
                        })
                        .collect();
                    match client
                        .put_record_batch()
                        .delivery_stream_name(&stream)
                        .set_records(Some(records))
                        .send()
                        .await
                    {
                        Ok(out) => {
                            assert_eq!(out.failed_put_count(), 0);
                            acked.lock().unwrap().extend(ids);
                        }
                        Err(_) => return n,
                    }
                }
            })
        })
        .collect()
}

/// Error documents (JSON lines) under a folder.
pub fn error_docs(dir: &Path) -> Vec<Value> {
    let mut docs = Vec::new();
    for path in files(dir, "") {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| !l.is_empty()) {
            docs.push(serde_json::from_str(line).unwrap());
        }
    }
    docs
}

/// Waits until `f` returns true, polling; panics after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Counts values of `key` over rows.
pub fn count_by(
    rows: &[(PathBuf, serde_json::Map<String, Value>)],
    key: &str,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, row) in rows {
        *counts.entry(row[key].to_string()).or_default() += 1;
    }
    counts
}

/// A Parquet stream partitioned by `.service` with JQ, flushing every
/// `interval` seconds.
pub async fn create_parquet_stream(client: &Client, name: &str, bucket: &str, interval: i32) {
    create_parquet_stream_with_table(client, name, bucket, interval, None).await
}

/// [`create_parquet_stream`] registering its partitions in a catalog table.
pub async fn create_parquet_stream_with_table(
    client: &Client,
    name: &str,
    bucket: &str,
    interval: i32,
    table: Option<(&str, &str)>,
) {
    let dest = lakehose::commands::demo::parquet_destination(
        bucket,
        "logs/service=!{partitionKeyFromQuery:service}/dt=!{timestamp:yyyy-MM-dd}/",
        "errors/!{firehose:error-output-type}/",
        "{service: .service}",
        interval,
        table,
    )
    .unwrap();
    client
        .create_delivery_stream()
        .delivery_stream_name(name)
        .extended_s3_destination_configuration(dest)
        .send()
        .await
        .expect("CreateDeliveryStream");
}

/// A record for `put_record_batch`.
pub fn record(data: impl Into<Vec<u8>>) -> Record {
    Record::builder()
        .data(aws_sdk_firehose::primitives::Blob::new(data.into()))
        .build()
        .unwrap()
}

/// Runs a `lakehose` CLI command to completion; panics with its stderr
/// when it fails.
pub fn cli_ok(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(args)
        .output()
        .expect("run lakehose");
    assert!(
        out.status.success(),
        "lakehose {:?}: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A current-thread runtime for a test body.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A Glue client for this server.
pub fn glue_client(endpoint: &str) -> aws_sdk_glue::Client {
    let config = aws_sdk_glue::Config::builder()
        .behavior_version(aws_sdk_glue::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_glue::config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "lakehose", "lakehose", None, None, "test",
        ))
        .build();
    aws_sdk_glue::Client::from_conf(config)
}

/// A Glue `TableInput` for a Parquet table at `location` with `columns`
/// (name, Hive type) and string partition keys.
pub fn parquet_table_input(
    name: &str,
    location: &str,
    columns: &[(&str, &str)],
    partition_keys: &[&str],
) -> aws_sdk_glue::types::TableInput {
    use aws_sdk_glue::types::{Column, SerDeInfo, StorageDescriptor, TableInput};
    let column = |n: &str, t: &str| Column::builder().name(n).r#type(t).build().unwrap();
    let sd = StorageDescriptor::builder()
        .set_columns(Some(columns.iter().map(|(n, t)| column(n, t)).collect()))
        .location(location)
        .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
        .output_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(
                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                )
                .build(),
        )
        .build();
    TableInput::builder()
        .name(name)
        .table_type("EXTERNAL_TABLE")
        .parameters("classification", "parquet")
        .set_partition_keys(Some(
            partition_keys.iter().map(|k| column(k, "string")).collect(),
        ))
        .storage_descriptor(sd)
        .build()
        .unwrap()
}

/// A `lakehose worker` process on a free loopback port.
pub struct Worker {
    pub child: std::process::Child,
    pub address: String,
}

impl Worker {
    pub fn start(data_dir: &std::path::Path, token: &str) -> Worker {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lakehose"))
            .args([
                "worker",
                "--listen",
                "127.0.0.1:0",
                "--token",
                token,
                "--data-dir",
            ])
            .arg(data_dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start lakehose worker");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().expect("the worker printed nothing").unwrap();
        let address = first
            .strip_prefix("lakehose worker listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        std::thread::spawn(move || for _ in lines {});
        Worker { child, address }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
