//! lakehose over real S3: `--storage s3` against `moto` in server mode (an
//! S3-compatible server with conditional writes, started here on
//! loopback), reached through a proxy that answers a share of requests
//! with 503 SlowDown and resets a share of connections. The same flows as
//! on the embedded default: ingest exactly-once under SIGKILL, the
//! crawler, Athena queries, ETL into Delta tables, DynamoDB import; what
//! landed is read back from the bucket directly, past the proxy. With
//! `--catalog glue` the same flows register in moto's Glue.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use serde_json::{Value, json};

use crate::athena::{athena_client, run, run_ok, select};
use crate::util::*;

/// The bucket of lakehose's own state in these tests.
const SYSTEM_BUCKET: &str = "lakehose-system";

/// A `moto_server` process on a free loopback port.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (pip install 'moto[server]'; .ci/run installs it)");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        wait_until(60, "moto_server to answer", || {
            http(&moto.endpoint, "GET", "/").is_some()
        });
        moto
    }

    /// Creates buckets.
    pub fn create_buckets(&self, names: &[&str]) {
        for name in names {
            let status = http(&self.endpoint, "PUT", &format!("/{name}")).expect("moto answers");
            assert_eq!(status, 200, "create bucket {name}");
        }
    }

    /// A client of one bucket, straight to moto.
    pub fn bucket(&self, name: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_bucket_name(name)
                .with_region("us-east-1")
                .with_access_key_id("test")
                .with_secret_access_key("test")
                .build()
                .unwrap(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One bodiless HTTP/1.1 request; the status code, or `None` when nothing
/// answers.
fn http(endpoint: &str, method: &str, path: &str) -> Option<u16> {
    let addr = endpoint.strip_prefix("http://")?;
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// What the proxy does to requests.
#[derive(Clone, Copy)]
struct Faults {
    /// Share answered 503 SlowDown without reaching the server.
    slow_down: f64,
    /// Share whose connection is closed without an answer, before the
    /// request reaches the server.
    reset_before: f64,
    /// Share of reads (GET, HEAD) whose answer is dropped after the server
    /// answered.
    reset_after_read: f64,
}

/// An HTTP proxy in front of moto that injects [`Faults`].
struct FaultProxy {
    endpoint: String,
    injected: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    /// Parts of multipart uploads forwarded.
    parts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    fn start(rt: &tokio::runtime::Runtime, target: &str, faults: Faults) -> FaultProxy {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let injected = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let parts = Arc::new(AtomicU64::new(0));
        let target = target.to_string();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let rng = Arc::new(Mutex::new(
            <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(18),
        ));
        let (inj, fwd, prt) = (
            Arc::clone(&injected),
            Arc::clone(&forwarded),
            Arc::clone(&parts),
        );
        let task = rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, target, rng) = (client.clone(), target.clone(), Arc::clone(&rng));
                let counters = [Arc::clone(&inj), Arc::clone(&fwd), Arc::clone(&prt)];
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (client, target, rng) =
                            (client.clone(), target.clone(), Arc::clone(&rng));
                        let counters = counters.clone();
                        async move { proxy(req, client, &target, faults, rng, counters).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            endpoint: format!("http://{addr}"),
            injected,
            forwarded,
            parts,
            task,
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy(
    req: hyper::Request<hyper::body::Incoming>,
    client: reqwest::Client,
    target: &str,
    faults: Faults,
    rng: Arc<Mutex<rand::rngs::StdRng>>,
    [injected, forwarded, parts]: [Arc<AtomicU64>; 3],
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    use rand::Rng;
    let (roll, after) = {
        let mut rng = rng.lock().unwrap();
        (rng.random::<f64>(), rng.random::<f64>())
    };
    if roll < faults.slow_down {
        injected.fetch_add(1, Ordering::Relaxed);
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        return Ok(hyper::Response::builder()
            .status(503)
            .header("content-type", "application/xml")
            .body(Full::new(Bytes::from(body)))
            .unwrap());
    }
    if roll < faults.slow_down + faults.reset_before {
        injected.fetch_add(1, Ordering::Relaxed);
        return Err(std::io::Error::other("injected connection reset"));
    }
    let (head, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let url = format!(
        "{target}{}",
        head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let method = reqwest::Method::from_bytes(head.method.as_str().as_bytes()).unwrap();
    let is_read = method == reqwest::Method::GET || method == reqwest::Method::HEAD;
    let mut out = client.request(method, url).body(body);
    for (name, value) in head.headers.iter() {
        if name == "host" || name == "content-length" {
            continue;
        }
        out = out.header(name.as_str(), value.as_bytes());
    }
    let answer = out.send().await.map_err(std::io::Error::other)?;
    forwarded.fetch_add(1, Ordering::Relaxed);
    if uploads_a_part(&head.uri) {
        parts.fetch_add(1, Ordering::Relaxed);
    }
    if is_read && after < faults.reset_after_read {
        injected.fetch_add(1, Ordering::Relaxed);
        return Err(std::io::Error::other("injected reset after the answer"));
    }
    let mut response = hyper::Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        // Content-Length stays: a HEAD answer carries the object's size.
        if name == "transfer-encoding" || name == "connection" {
            continue;
        }
        response = response.header(name.as_str(), value.as_bytes());
    }
    let bytes = answer.bytes().await.map_err(std::io::Error::other)?;
    Ok(response.body(Full::new(bytes)).unwrap())
}

/// Whether a request uploads one part of a multipart upload.
fn uploads_a_part(uri: &hyper::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("partNumber=")))
}

/// The environment a lakehose process needs to reach S3 at `endpoint`.
fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        // No profile files of the machine running the tests.
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

fn start_on_s3(data_dir: &std::path::Path, endpoint: &str) -> Server {
    start_on_s3_with(data_dir, endpoint, &[])
}

/// [`start_on_s3`] with `extra` flags.
fn start_on_s3_with(data_dir: &std::path::Path, endpoint: &str, extra: &[&str]) -> Server {
    let env = aws_env(endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut flags = vec!["--storage", "s3", "--system-bucket", SYSTEM_BUCKET];
    flags.extend_from_slice(extra);
    Server::start_full(data_dir, &flags, Stdio::inherit(), &env)
}

/// Runs the `lakehose` CLI on S3 at `endpoint`: `args`, the storage
/// flags, then `then` (a subcommand of a command whose flags they are).
fn cli_on_s3_then(
    endpoint: &str,
    data_dir: &std::path::Path,
    args: &[&str],
    then: &[&str],
) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(args)
        .args(["--storage", "s3", "--system-bucket", SYSTEM_BUCKET])
        .arg("--data-dir")
        .arg(data_dir)
        .args(then)
        .envs(aws_env(endpoint))
        .output()
        .expect("run lakehose");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the `lakehose` CLI on S3 at `endpoint`, storage flags last.
fn cli_on_s3(endpoint: &str, data_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    cli_on_s3_then(endpoint, data_dir, args, &[])
}

/// Every row of the Parquet objects under `prefix` of `bucket`, read
/// straight from the store.
async fn s3_parquet_rows(
    bucket: &Arc<dyn ObjectStore>,
    prefix: &str,
) -> Vec<serde_json::Map<String, Value>> {
    use futures::TryStreamExt;
    let listed: Vec<_> = bucket
        .list(Some(&object_store::path::Path::from(prefix)))
        .try_collect()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for meta in listed {
        if !meta.location.as_ref().ends_with(".parquet") {
            continue;
        }
        let bytes = bucket
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            rows.extend(json_rows(&batch.unwrap()));
        }
    }
    rows
}

#[test]
fn s3_ingest_is_exactly_once_under_sigkill_and_storage_faults() {
    let moto = Moto::start();
    moto.create_buckets(&[SYSTEM_BUCKET, "s3crash", "athena-results"]);
    let rt = rt();
    let proxy = FaultProxy::start(
        &rt,
        &moto.endpoint,
        Faults {
            slow_down: 0.08,
            reset_before: 0.04,
            reset_after_read: 0.04,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    for (round, run_ms) in [(0usize, 2500u64), (1, 1200), (2, 1800)] {
        let server = start_on_s3(dir.path(), &proxy.endpoint);
        if round == 0 {
            rt.block_on(create_parquet_stream_with_table(
                &server.client(),
                "s3crash",
                "s3crash",
                1,
                Some(("default", "s3crash_logs")),
            ));
        }
        let client = lakehose::commands::demo::firehose_client(&server.endpoint, 1);
        let tasks = send_until_refused(&rt, &client, "s3crash", round, 0, &acked);
        std::thread::sleep(Duration::from_millis(run_ms));
        server.kill();
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 500,
        "too few records were acknowledged to prove anything: {}",
        acked.len()
    );

    // Restart: the write-ahead log replays what was acknowledged but not
    // yet in the bucket; a clean stop flushes the rest.
    let server = start_on_s3(dir.path(), &proxy.endpoint);
    server.terminate();

    let bucket = moto.bucket("s3crash");
    let rows = rt.block_on(s3_parquet_rows(&bucket, "logs"));
    let seen = assert_exactly_once(rows.iter().map(|r| r["id"].as_str().unwrap()), &acked);

    // Every partition the flushes registered is in the catalog on S3, so
    // a query over the table sees every row in the bucket.
    let server = start_on_s3(dir.path(), &proxy.endpoint);
    rt.block_on(async {
        let athena = athena_client(&server.endpoint);
        let got = select(
            &athena,
            "SELECT count(*), count(DISTINCT id) FROM s3crash_logs",
            "default",
        )
        .await;
        assert_eq!(
            got,
            vec![vec![
                Some(rows.len().to_string()),
                Some(seen.len().to_string())
            ]]
        );
    });
    server.terminate();
    eprintln!(
        "s3 ingest: {} acknowledged, {} rows landed; {} faults injected in {} forwarded requests",
        acked.len(),
        rows.len(),
        proxy.injected.load(Ordering::Relaxed),
        proxy.forwarded.load(Ordering::Relaxed)
    );
    assert!(
        proxy.injected.load(Ordering::Relaxed) > 20,
        "the proxy injected {} faults in {} requests: too few to prove anything",
        proxy.injected.load(Ordering::Relaxed),
        proxy.forwarded.load(Ordering::Relaxed)
    );
}

const DAILY: &str = "-- target: curated.daily
-- mode: overwrite
SELECT service, count(*) AS requests, count_if(status >= 500) AS errors
FROM raw.requests
GROUP BY service
";

const DASHBOARD: &str = r#"
title = "Daily"

[datasets.per_service]
sql = "SELECT service, requests FROM curated.daily"

[[visuals]]
id = "services"
title = "Services"
type = "kpi"
dataset = "per_service"
y = "count(*)"
"#;

#[test]
fn s3_crawler_athena_etl_and_dynamodb_import() {
    let moto = Moto::start();
    moto.create_buckets(&[
        SYSTEM_BUCKET,
        "rawlake",
        "curated",
        "exports",
        "lakehose-warehouse",
        "athena-results",
    ]);
    let rt = rt();
    let proxy = FaultProxy::start(
        &rt,
        &moto.endpoint,
        Faults {
            slow_down: 0.05,
            reset_before: 0.03,
            reset_after_read: 0.03,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");

    // Raw JSON lines in two Hive partitions, written straight to S3.
    let raw = moto.bucket("rawlake");
    rt.block_on(async {
        for (dt, n) in [("2026-11-01", 40), ("2026-11-02", 60)] {
            let lines: String = (0..n)
                .map(|i| {
                    format!(
                        "{}\n",
                        json!({"service": format!("svc{}", i % 4), "status": if i % 10 == 0 { 500 } else { 200 }})
                    )
                })
                .collect();
            raw.put(
                &object_store::path::Path::from(format!("requests/dt={dt}/part-0.json")),
                lines.into(),
            )
            .await
            .unwrap();
        }
    });

    // The crawler walks the bucket and registers the table in the catalog
    // in the system bucket.
    let (ok, out, err) = cli_on_s3(
        &proxy.endpoint,
        &data,
        &["crawl", "s3://rawlake/requests/", "--database", "raw"],
    );
    assert!(ok, "{out}\n{err}");

    // A DynamoDB export written in DynamoDB's layout, uploaded to S3.
    let local_exports = dir.path().join("exports");
    lakehose::usersgen::write_full(&local_exports, "users", 120, 1_763_000_000_000, 2, 150)
        .unwrap();
    let exports = moto.bucket("exports");
    rt.block_on(async {
        for file in files(&local_exports, "") {
            let key = file.strip_prefix(&local_exports).unwrap();
            let body = std::fs::read(&file).unwrap();
            exports
                .put(
                    &object_store::path::Path::from(format!("users/{}", key.to_string_lossy())),
                    body.into(),
                )
                .await
                .unwrap();
        }
    });
    let (ok, out, err) = cli_on_s3(
        &proxy.endpoint,
        &data,
        &[
            "import",
            "dynamodb-export",
            "s3://exports/users/",
            "--database",
            "app",
            "--table",
            "users",
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("120 records"), "{out}");

    // ETL into a Delta table on S3.
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(jobs.join("daily.sql"), DAILY).unwrap();
    let jobs_arg = jobs.to_str().unwrap();
    let (ok, out, err) = cli_on_s3_then(
        &proxy.endpoint,
        &data,
        &["etl", "--jobs", jobs_arg],
        &["run", "--all"],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("daily SUCCEEDED"), "{out}");

    // A server on another data folder (a second node) answers from the
    // same catalog and buckets.
    let other = dir.path().join("other-node");
    let server = start_on_s3(&other, &proxy.endpoint);
    rt.block_on(async {
        let athena = athena_client(&server.endpoint);
        let got = select(
            &athena,
            "SELECT dt, count(*) FROM raw.requests GROUP BY dt ORDER BY dt",
            "default",
        )
        .await;
        assert_eq!(
            got,
            vec![
                vec![Some("2026-11-01".into()), Some("40".into())],
                vec![Some("2026-11-02".into()), Some("60".into())],
            ]
        );
        let got = select(
            &athena,
            "SELECT sum(requests), sum(errors) FROM curated.daily",
            "default",
        )
        .await;
        assert_eq!(got, vec![vec![Some("100".into()), Some("10".into())]]);
        let got = select(&athena, "SELECT count(*) FROM app.users", "default").await;
        assert_eq!(got, vec![vec![Some("120".into())]]);
        // CTAS and INSERT write to S3; the answer reads them back.
        let ctas = "CREATE TABLE web.summary WITH (format = 'PARQUET', external_location = 's3://curated/summary/') \
             AS SELECT service, requests FROM curated.daily";
        let (_, state, _) = run(&athena, ctas, "default").await;
        assert_eq!(
            state,
            aws_sdk_athena::types::QueryExecutionState::Failed,
            "web does not exist yet"
        );
        run_ok(&athena, "CREATE DATABASE web", "default").await;
        run_ok(&athena, ctas, "default").await;
        run_ok(&athena, "INSERT INTO web.summary VALUES ('svc9', 7)", "default").await;
        let got = select(&athena, "SELECT count(*), sum(requests) FROM web.summary", "default").await;
        assert_eq!(got, vec![vec![Some("5".into()), Some("107".into())]]);
        run_ok(
            &athena,
            "UNLOAD (SELECT service, requests FROM curated.daily) TO 's3://curated/unloaded/' WITH (format = 'JSON')",
            "default",
        )
        .await;
    });
    server.terminate();

    // Compaction of a Parquet table (two files: the CTAS and the INSERT)
    // and of a Delta table, on S3.
    let (ok, out, err) = cli_on_s3(
        &proxy.endpoint,
        &data,
        &[
            "optimize",
            "web.summary",
            "--min-age",
            "0s",
            "--grace",
            "0s",
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("web.summary"), "{out}");
    let (ok, out, err) = cli_on_s3(
        &proxy.endpoint,
        &data,
        &["optimize", "curated.daily", "--min-age", "0s"],
    );
    assert!(ok, "{out}\n{err}");

    // A dashboard's cached dataset is refreshed into the system bucket and
    // read back by another process.
    let specs = dir.path().join("dashboards");
    std::fs::create_dir_all(&specs).unwrap();
    std::fs::write(specs.join("daily.toml"), DASHBOARD).unwrap();
    let specs_arg = specs.to_str().unwrap();
    let (ok, out, err) = cli_on_s3_then(
        &proxy.endpoint,
        &data,
        &["dashboard", "--dashboards", specs_arg],
        &["refresh", "daily"],
    );
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = cli_on_s3_then(
        &proxy.endpoint,
        &other,
        &["dashboard", "--dashboards", specs_arg],
        &["list"],
    );
    assert!(ok && out.contains("4 rows"), "{out}\n{err}");

    // What landed is in the buckets, not on local disk.
    let warehouse = moto.bucket("lakehose-warehouse");
    let delta_log: Vec<_> = rt.block_on(async {
        use futures::TryStreamExt;
        warehouse
            .list(Some(&object_store::path::Path::from(
                "curated/curated/daily/_delta_log",
            )))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
    assert!(
        !delta_log.is_empty(),
        "the Delta log of curated.daily is on S3"
    );
    let again = start_on_s3(&other, &proxy.endpoint);
    let after_queries = rt.block_on(async {
        let query = athena_client(&again.endpoint);
        select(
            &query,
            "SELECT count(*), sum(requests) FROM web.summary",
            "default",
        )
        .await
    });
    again.terminate();
    assert_eq!(
        after_queries,
        vec![vec![Some("5".into()), Some("107".into())]],
        "the same rows after compaction"
    );
    let unloaded: Vec<_> = rt.block_on(async {
        use futures::TryStreamExt;
        moto.bucket("curated")
            .list(Some(&object_store::path::Path::from("unloaded")))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
    assert!(!unloaded.is_empty(), "UNLOAD wrote to S3");
    let cached = rt.block_on(async {
        moto.bucket(SYSTEM_BUCKET)
            .head(&object_store::path::Path::from(
                "_lakehose/dashboards/cache/daily/per_service.arrow",
            ))
            .await
    });
    assert!(
        cached.is_ok(),
        "the dashboards' cache is in the system bucket"
    );
    assert!(
        files(&data, ".parquet").is_empty() && files(&other, ".parquet").is_empty(),
        "no table data in the local folders"
    );
    assert!(proxy.injected.load(Ordering::Relaxed) > 5);
}

#[test]
fn s3_storage_refuses_bad_setups_with_the_reason() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    // No system bucket named.
    let out = Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args(["query", "SELECT 1", "--storage", "s3", "--data-dir"])
        .arg(dir.path())
        .envs(aws_env(&moto.endpoint))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--system-bucket"),
        "{err}"
    );
    // A system bucket that does not exist.
    let (ok, _, err) = cli_on_s3(&moto.endpoint, dir.path(), &["query", "SELECT 1"]);
    assert!(
        !ok && err.contains("system bucket") && err.contains(SYSTEM_BUCKET),
        "{err}"
    );
    // A system bucket name S3 would refuse.
    let out = Command::new(env!("CARGO_BIN_EXE_lakehose"))
        .args([
            "query",
            "SELECT 1",
            "--storage",
            "s3",
            "--system-bucket",
            "../etc",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .envs(aws_env(&moto.endpoint))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bucket name"),
        "{err}"
    );
    // lakehose's own state is not reachable as data, even when the system
    // bucket also holds tables.
    moto.create_buckets(&[SYSTEM_BUCKET, "lakehose-athena-results"]);
    let (ok, out, err) = cli_on_s3(
        &moto.endpoint,
        dir.path(),
        &[
            "query",
            "CREATE EXTERNAL TABLE peek (x string) LOCATION 's3://lakehose-system/_lakehose/catalog/'; SELECT * FROM peek",
        ],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("lakehose's own state"), "{err}");
}

/// The flags of the Glue catalog.
fn glue_flags() -> [&'static str; 2] {
    ["--catalog", "glue"]
}

#[test]
fn glue_catalog_backs_ingest_crawler_ddl_etl_and_the_glue_api() {
    let moto = Moto::start();
    moto.create_buckets(&[
        SYSTEM_BUCKET,
        "gluelake",
        "lakehose-warehouse",
        "athena-results",
    ]);
    let rt = rt();
    // S3 and Glue calls both cross the faulty proxy.
    let proxy = FaultProxy::start(
        &rt,
        &moto.endpoint,
        Faults {
            slow_down: 0.05,
            reset_before: 0.03,
            reset_after_read: 0.0,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let server = start_on_s3_with(&data, &proxy.endpoint, &glue_flags());
    // Straight to the Glue-compatible server, past lakehose.
    let glue = glue_client(&moto.endpoint);
    rt.block_on(async {
        create_parquet_stream_with_table(
            &server.client(),
            "glued",
            "gluelake",
            1,
            Some(("default", "glued_logs")),
        )
        .await;
        let records = (0..300)
            .map(|i| {
                let service = ["a", "b", "c"][i % 3];
                record(json!({"id": i, "service": service}).to_string())
            })
            .collect();
        let out = server
            .client()
            .put_record_batch()
            .delivery_stream_name("glued")
            .set_records(Some(records))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_put_count(), 0);
    });
    // The flush registers the table's partitions in Glue.
    wait_until(60, "partitions registered in Glue", || {
        rt.block_on(async {
            glue.get_partitions()
                .database_name("default")
                .table_name("glued_logs")
                .send()
                .await
                .map(|p| p.partitions().len() == 3)
                .unwrap_or(false)
        })
    });
    rt.block_on(async {
        let athena = athena_client(&server.endpoint);
        let got = select(
            &athena,
            "SELECT service, count(*) FROM glued_logs GROUP BY service ORDER BY service",
            "default",
        )
        .await;
        assert_eq!(
            got,
            ["a", "b", "c"]
                .iter()
                .map(|s| vec![Some(s.to_string()), Some("100".to_string())])
                .collect::<Vec<_>>()
        );
        // Athena DDL registers in Glue.
        run_ok(&athena, "CREATE DATABASE reports", "default").await;
        run_ok(
            &athena,
            "CREATE TABLE reports.per_service AS SELECT service, count(*) AS n FROM default.glued_logs GROUP BY service",
            "default",
        )
        .await;
        let table = glue
            .get_table()
            .database_name("reports")
            .name("per_service")
            .send()
            .await
            .expect("CTAS registered the table in Glue")
            .table
            .unwrap();
        let location = table.storage_descriptor().unwrap().location().unwrap();
        assert!(location.starts_with("s3://lakehose-warehouse/"), "{location}");
        // lakehose's own Glue API answers from Glue.
        let front = glue_client(&server.endpoint);
        let names: Vec<String> = front
            .get_tables()
            .database_name("reports")
            .send()
            .await
            .unwrap()
            .table_list()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        assert_eq!(names, vec!["per_service".to_string()]);
    });
    server.terminate();

    // The crawler and an ETL run register there too.
    rt.block_on(async {
        moto.bucket("gluelake")
            .put(
                &object_store::path::Path::from("raw/events/dt=2026-11-01/part-0.json"),
                "{\"kind\":\"click\",\"n\":1}\n{\"kind\":\"view\",\"n\":2}\n".into(),
            )
            .await
            .unwrap();
    });
    let mut crawl = vec!["crawl", "s3://gluelake/raw/events/", "--database", "raw"];
    crawl.extend(glue_flags());
    let (ok, out, err) = cli_on_s3(&proxy.endpoint, &data, &crawl);
    assert!(ok, "{out}\n{err}");
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(
        jobs.join("kinds.sql"),
        "-- target: curated.kinds\n-- mode: overwrite\nSELECT kind, sum(n) AS n FROM raw.events GROUP BY kind\n",
    )
    .unwrap();
    let mut etl = vec!["etl", "--jobs", jobs.to_str().unwrap()];
    etl.extend(glue_flags());
    let (ok, out, err) = cli_on_s3_then(&proxy.endpoint, &data, &etl, &["run", "--all"]);
    assert!(ok, "{out}\n{err}");
    rt.block_on(async {
        for (db, table) in [("raw", "events"), ("curated", "kinds")] {
            glue.get_table()
                .database_name(db)
                .name(table)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{db}.{table} is in Glue: {e:?}"));
        }
    });
    let mut query = vec!["query", "SELECT kind, n FROM curated.kinds ORDER BY kind"];
    query.extend(glue_flags());
    let (ok, out, err) = cli_on_s3(&proxy.endpoint, &data, &query);
    assert!(
        ok && out.contains("click") && out.contains("view"),
        "{out}\n{err}"
    );
    // Nothing went to the embedded catalog in the system bucket.
    let embedded: Vec<_> = rt.block_on(async {
        use futures::TryStreamExt;
        moto.bucket(SYSTEM_BUCKET)
            .list(Some(&object_store::path::Path::from("_lakehose/catalog")))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
    assert!(embedded.is_empty(), "{embedded:?}");
    assert!(proxy.injected.load(Ordering::Relaxed) > 3);
}

#[test]
fn three_nodes_share_a_bucket_and_a_killed_one_loses_and_duplicates_nothing() {
    let moto = Moto::start();
    moto.create_buckets(&[SYSTEM_BUCKET, "shared", "athena-results"]);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let folders: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("node{i}")))
        .collect();
    let mut nodes: Vec<Option<Server>> = folders
        .iter()
        .map(|f| Some(start_on_s3(f, &moto.endpoint)))
        .collect();
    rt.block_on(create_parquet_stream_with_table(
        &nodes[0].as_ref().unwrap().client(),
        "shared",
        "shared",
        1,
        Some(("default", "shared_logs")),
    ));
    // A second create of the same stream on another node is refused: one
    // definition, one id.
    let again = rt.block_on(async {
        let dest = lakehose::commands::demo::parquet_destination(
            "shared",
            "other/",
            "errors/",
            "{service: .service}",
            1,
            None,
        )
        .unwrap();
        nodes[1]
            .as_ref()
            .unwrap()
            .client()
            .create_delivery_stream()
            .delivery_stream_name("shared")
            .extended_s3_destination_configuration(dest)
            .send()
            .await
    });
    let err = again.expect_err("a second definition of the stream");
    assert_eq!(
        err.as_service_error().and_then(|e| e.meta().code()),
        Some("ResourceInUseException"),
        "{err:?}"
    );
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    // Round-robin: each node gets its own senders; the others learn of the
    // stream from storage on their first record.
    let send_round = |nodes: &Vec<Option<Server>>, round: usize| {
        nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
            .flat_map(|(i, n)| {
                let client = lakehose::commands::demo::firehose_client(&n.endpoint, 1);
                send_until_refused(&rt, &client, "shared", round * 10 + i, 0, &acked)
            })
            .collect::<Vec<_>>()
    };
    let first = send_round(&nodes, 0);
    std::thread::sleep(Duration::from_millis(1500));
    // Node 1 dies mid-ingest; its senders see refusals, the others go on.
    nodes[1].take().unwrap().kill();
    std::thread::sleep(Duration::from_millis(800));
    nodes[1] = Some(start_on_s3(&folders[1], &moto.endpoint));
    let second = send_round(&nodes, 1);
    std::thread::sleep(Duration::from_millis(1000));
    for node in nodes.iter_mut() {
        node.take().unwrap().terminate();
    }
    rt.block_on(async {
        for t in first.into_iter().chain(second) {
            t.await.unwrap();
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 300, "too few acknowledged: {}", acked.len());
    let rows = rt.block_on(s3_parquet_rows(&moto.bucket("shared"), "logs"));
    let seen = assert_exactly_once(rows.iter().map(|r| r["id"].as_str().unwrap()), &acked);
    // Every node wrote objects of its own (names carry the node's id).
    let names: HashSet<String> = rt.block_on(async {
        use futures::TryStreamExt;
        moto.bucket("shared")
            .list(Some(&object_store::path::Path::from("logs")))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| {
                let file = m.location.filename()?.to_string();
                Some(file.split('-').nth(8)?.to_string())
            })
            .collect()
    });
    assert_eq!(names.len(), 3, "objects by node: {names:?}");
    // Every partition the three nodes registered is in the shared catalog:
    // any node answers with every row; an execution started on one node is
    // read, with its results, from another.
    let reader = start_on_s3(&folders[2], &moto.endpoint);
    let other = start_on_s3(&folders[0], &moto.endpoint);
    let expected = vec![vec![
        Some(rows.len().to_string()),
        Some(seen.len().to_string()),
    ]];
    rt.block_on(async {
        let id = run_ok(
            &athena_client(&reader.endpoint),
            "SELECT count(*), count(DISTINCT id) FROM shared_logs",
            "default",
        )
        .await;
        let elsewhere = athena_client(&other.endpoint);
        let execution = elsewhere
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .expect("the execution is visible from another node")
            .query_execution
            .unwrap();
        assert_eq!(
            execution.status().unwrap().state(),
            Some(&aws_sdk_athena::types::QueryExecutionState::Succeeded)
        );
        assert_eq!(
            crate::athena::results(&elsewhere, &id, true).await,
            expected
        );
    });
    reader.terminate();
    other.terminate();
}

#[test]
fn a_stream_created_or_deleted_on_one_node_is_so_on_another() {
    let moto = Moto::start();
    moto.create_buckets(&[SYSTEM_BUCKET, "burst"]);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let a = start_on_s3(&dir.path().join("a"), &moto.endpoint);
    let b = start_on_s3(&dir.path().join("b"), &moto.endpoint);
    rt.block_on(async {
        create_parquet_stream_with_table(&a.client(), "burst", "burst", 900, None).await;
        // Sixteen calls at once to a node that has not seen the stream
        // yet: the first looks it up, the others wait for that lookup.
        let client = b.client();
        let calls = (0..16).map(|i| {
            let client = client.clone();
            async move {
                client
                    .put_record()
                    .delivery_stream_name("burst")
                    .record(record(format!(r#"{{"service":"s{i}"}}"#).into_bytes()))
                    .send()
                    .await
            }
        });
        for sent in futures::future::join_all(calls).await {
            sent.expect("every call of the burst is accepted");
        }
        // Deleted on the first node: within a sync (10 s) the second stops
        // taking records, and delivers the 16 it acknowledged.
        a.client()
            .delete_delivery_stream()
            .delivery_stream_name("burst")
            .send()
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let sent = client
                .put_record()
                .delivery_stream_name("burst")
                .record(record(br#"{"service":"late"}"#.to_vec()))
                .send()
                .await;
            match sent {
                Err(e) => {
                    let code = e.as_service_error().and_then(|e| e.meta().code());
                    assert_eq!(code, Some("ResourceNotFoundException"), "{e:?}");
                    break;
                }
                Ok(_) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the deleted stream still takes records"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        let rows = s3_parquet_rows(&moto.bucket("burst"), "logs").await;
        let early = rows
            .iter()
            .filter(|r| r.get("service").and_then(Value::as_str) != Some("late"))
            .count();
        assert_eq!(early, 16, "{rows:?}");
    });
}

#[test]
fn queries_of_a_node_that_stops_are_reported_failed_by_the_others() {
    use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
    let moto = Moto::start();
    moto.create_buckets(&[SYSTEM_BUCKET, "athena-results"]);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let lease = ["--node-lease-secs", "2"];
    let a = start_on_s3_with(&dir.path().join("a"), &moto.endpoint, &lease);
    let b = start_on_s3_with(&dir.path().join("b"), &moto.endpoint, &lease);
    let state = |athena: aws_sdk_athena::Client, id: String| async move {
        let status = athena
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .unwrap()
            .query_execution
            .unwrap()
            .status
            .unwrap();
        (status.state.unwrap(), status.state_change_reason)
    };
    let on_b = athena_client(&b.endpoint);
    let id = rt.block_on(async {
        // 10^12 rows: this runs far longer than the test.
        let id = athena_client(&a.endpoint)
            .start_query_execution()
            .query_string(
                "SELECT count(*) FROM UNNEST(sequence(1, 10000)) AS x(i) \
                 CROSS JOIN UNNEST(sequence(1, 10000)) AS y(j) \
                 CROSS JOIN UNNEST(sequence(1, 10000)) AS z(k)",
            )
            .query_execution_context(QueryExecutionContext::builder().database("default").build())
            .result_configuration(
                ResultConfiguration::builder()
                    .output_location("s3://athena-results/slow/")
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .query_execution_id
            .unwrap();
        // The node that runs it is alive: the others report it as it is.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (s, reason) = state(on_b.clone(), id.clone()).await;
        assert!(
            matches!(
                s,
                QueryExecutionState::Queued | QueryExecutionState::Running
            ),
            "{s:?} {reason:?}"
        );
        id
    });
    a.kill();
    rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (s, reason) = state(on_b.clone(), id.clone()).await;
            if s == QueryExecutionState::Failed {
                let reason = reason.unwrap_or_default();
                assert!(reason.contains("stopped before it finished"), "{reason}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still {s:?} on the other node"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
}

#[test]
fn maintenance_rounds_split_their_tables_between_nodes() {
    let moto = Moto::start();
    moto.create_buckets(&[SYSTEM_BUCKET, "lake"]);
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let setup = dir.path().join("setup");
    // Four Parquet tables of three small files each.
    let mut statements = vec!["CREATE DATABASE m".to_string()];
    for t in 0..4 {
        statements.push(format!(
            "CREATE TABLE m.t{t} WITH (format = 'PARQUET', external_location = 's3://lake/t{t}/') \
             AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)"
        ));
        for n in 3..5 {
            statements.push(format!("INSERT INTO m.t{t} VALUES ({n}, 'c')"));
        }
    }
    for statement in &statements {
        let (ok, out, err) = cli_on_s3(&moto.endpoint, &setup, &["query", statement]);
        assert!(ok, "{statement}: {out}\n{err}");
    }
    let flags = ["--maintenance", "* * * * * *", "--compact-min-age", "0s"];
    let a = start_on_s3_with(&dir.path().join("a"), &moto.endpoint, &flags);
    let b = start_on_s3_with(&dir.path().join("b"), &moto.endpoint, &flags);
    let lake = moto.bucket("lake");
    let list = |store: &Arc<dyn ObjectStore>, prefix: &str| -> Vec<String> {
        use futures::TryStreamExt;
        rt.block_on(
            store
                .list(Some(&object_store::path::Path::from(prefix)))
                .map_ok(|m| m.location.to_string())
                .try_collect::<Vec<_>>(),
        )
        .unwrap()
    };
    wait_until(60, "every table compacted", || {
        (0..4).all(|t| {
            list(&lake, &format!("t{t}"))
                .iter()
                .any(|p| p.contains("/_compacted-"))
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    let (pid_a, pid_b) = (a.pid(), b.pid());
    a.terminate();
    b.terminate();
    // Each table was compacted once, into one file, with every row.
    for t in 0..4 {
        let files = list(&lake, &format!("t{t}"));
        let compacted: HashSet<&str> = files
            .iter()
            .filter_map(|p| p.split('/').find(|s| s.starts_with("_compacted-")))
            .collect();
        assert_eq!(compacted.len(), 1, "t{t}: {files:?}");
    }
    let (ok, out, err) = cli_on_s3(
        &moto.endpoint,
        &setup,
        &[
            "query",
            "--format",
            "csv",
            "SELECT (SELECT count(*) FROM m.t0) + (SELECT count(*) FROM m.t1) + (SELECT count(*) FROM m.t2) + (SELECT count(*) FROM m.t3)",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.trim().ends_with("16"), "{out}");
    // The rounds were claimed table by table, each claim by one node.
    let system = moto.bucket(SYSTEM_BUCKET);
    let claims = list(&system, "_lakehose/schedule/claims/maintenance");
    let tables: HashSet<&str> = claims.iter().filter_map(|p| p.split('/').nth(4)).collect();
    assert_eq!(tables.len(), 4, "{claims:?}");
    let mut by = HashSet::new();
    for path in &claims {
        let body = rt.block_on(async {
            system
                .get(&object_store::path::Path::from(path.as_str()))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
        let claim: Value = serde_json::from_slice(&body).unwrap();
        let pid = claim["process"].as_u64().unwrap() as u32;
        assert!(pid == pid_a || pid == pid_b, "{claim}");
        by.insert(pid);
    }
    eprintln!("{} claims, by {} node(s)", claims.len(), by.len());
}

#[test]
fn a_schedule_runs_once_across_nodes() {
    let moto = Moto::start();
    moto.create_buckets(&[SYSTEM_BUCKET, "lakehose-warehouse", "athena-results"]);
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    // Every two seconds, on both nodes.
    std::fs::write(
        jobs.join("often.sql"),
        "-- target: curated.often\n-- mode: overwrite\n-- schedule: */2 * * * * *\nSELECT 1 AS n\n",
    )
    .unwrap();
    let jobs_arg = jobs.to_str().unwrap();
    let started = std::time::Instant::now();
    let nodes: Vec<Server> = (0..2)
        .map(|i| {
            let folder = dir.path().join(format!("node{i}"));
            start_on_s3_with(&folder, &moto.endpoint, &["--etl-jobs", jobs_arg])
        })
        .collect();
    std::thread::sleep(Duration::from_secs(9));
    for node in nodes {
        node.terminate();
    }
    let elapsed = started.elapsed().as_secs();
    let (ok, history, err) = cli_on_s3_then(
        &moto.endpoint,
        &dir.path().join("node0"),
        &["etl", "--jobs", jobs_arg],
        &["history", "often"],
    );
    assert!(ok, "{history}\n{err}");
    let runs = history.matches("SUCCEEDED").count();
    eprintln!("two nodes, one schedule every 2 s: {runs} runs in {elapsed} s");
    assert_eq!(history.matches("FAILED").count(), 0, "{history}");
    // One run per occurrence (every 2 s), not one per node and occurrence.
    assert!(
        (2..=(elapsed as usize / 2 + 1)).contains(&runs),
        "{runs} runs in {elapsed} s:\n{history}"
    );
    let claims = rt().block_on(async {
        use futures::TryStreamExt;
        moto.bucket(SYSTEM_BUCKET)
            .list(Some(&object_store::path::Path::from(
                "_lakehose/schedule/claims/jobs/often",
            )))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len()
    });
    assert_eq!(claims, runs, "one claim per run:\n{history}");
}

#[test]
fn requests_naming_unknown_streams_do_not_flood_storage() {
    let moto = Moto::start();
    moto.create_buckets(&[SYSTEM_BUCKET, "athena-results"]);
    let rt = rt();
    let counter = FaultProxy::start(
        &rt,
        &moto.endpoint,
        Faults {
            slow_down: 0.0,
            reset_before: 0.0,
            reset_after_read: 0.0,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_s3(dir.path(), &counter.endpoint);
    let client = lakehose::commands::demo::firehose_client(&server.endpoint, 1);
    std::thread::sleep(Duration::from_millis(300));
    let before = counter.forwarded.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let refused = rt.block_on(async {
        let mut refused = 0;
        for i in 0..300 {
            let name = match i % 3 {
                0 => format!("nope-{i}"),
                1 => "../../_lakehose/catalog".to_string(),
                _ => "x".repeat(70),
            };
            let sent = client
                .put_record()
                .delivery_stream_name(name)
                .record(record(b"{}".to_vec()))
                .send()
                .await;
            if let Err(e) = sent {
                let code = e.as_service_error().and_then(|e| e.meta().code());
                assert!(
                    matches!(
                        code,
                        Some("ResourceNotFoundException") | Some("InvalidArgumentException")
                    ),
                    "{e:?}"
                );
                refused += 1;
            }
        }
        refused
    });
    let reads = counter.forwarded.load(Ordering::Relaxed) - before;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(refused, 300);
    // At most one look every 200 ms, plus the periodic sync's listings.
    assert!(
        (reads as f64) <= seconds / 0.2 + seconds / 10.0 + 3.0,
        "{reads} storage requests for 300 unknown streams in {seconds:.1} s"
    );
    server.terminate();
}

#[test]
fn large_flushes_go_up_as_multipart_uploads() {
    use base64::Engine;
    use rand::RngCore;
    let moto = Moto::start();
    moto.create_buckets(&[SYSTEM_BUCKET, "bigflush"]);
    let rt = rt();
    let counter = FaultProxy::start(
        &rt,
        &moto.endpoint,
        Faults {
            slow_down: 0.02,
            reset_before: 0.0,
            reset_after_read: 0.0,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_s3(dir.path(), &counter.endpoint);
    let client = server.client();
    // About 48 MiB of incompressible text in one partition, flushed at
    // shutdown as one Parquet object of over 32 MiB.
    rt.block_on(async {
        let dest = lakehose::commands::demo::parquet_destination(
            "bigflush",
            "logs/",
            "errors/",
            "{service: .service}",
            900,
            None,
        )
        .unwrap();
        client
            .create_delivery_stream()
            .delivery_stream_name("big")
            .extended_s3_destination_configuration(dest)
            .send()
            .await
            .unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        for batch in 0..16 {
            let records = (0..48)
                .map(|i| {
                    let mut raw = vec![0u8; 48 * 1024];
                    rng.fill_bytes(&mut raw);
                    let blob = base64::engine::general_purpose::STANDARD.encode(raw);
                    let id = batch * 48 + i;
                    record(json!({"id": id, "service": "big", "blob": blob}).to_string())
                })
                .collect();
            let out = client
                .put_record_batch()
                .delivery_stream_name("big")
                .set_records(Some(records))
                .send()
                .await
                .unwrap();
            assert_eq!(out.failed_put_count(), 0);
        }
    });
    // /metrics counts every S3 request the server sent, faulted or not:
    // as many as the proxy saw.
    let sent = || {
        let text = rt.block_on(async {
            reqwest::get(format!("{}/metrics", server.endpoint))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        text.lines()
            .filter(|l| l.starts_with("lakehose_s3_requests_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    wait_until(10, "the S3 request count to match the proxy's", || {
        let seen =
            counter.forwarded.load(Ordering::Relaxed) + counter.injected.load(Ordering::Relaxed);
        sent() == seen && seen > 0
    });
    server.terminate();
    let objects: Vec<_> = rt.block_on(async {
        use futures::TryStreamExt;
        moto.bucket("bigflush")
            .list(Some(&object_store::path::Path::from("logs")))
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
    });
    let largest = objects.iter().map(|m| m.size).max().unwrap_or(0);
    assert!(largest > 32 << 20, "largest object {largest} bytes");
    assert!(
        counter.parts.load(Ordering::Relaxed) >= 2,
        "{} parts uploaded",
        counter.parts.load(Ordering::Relaxed)
    );
    let rows = rt.block_on(s3_parquet_rows(&moto.bucket("bigflush"), "logs"));
    assert_eq!(rows.len(), 16 * 48);
}
