//! Object store faults, driven through the ingest service's API: a store
//! that fails chosen puts (transiently or permanently) must never hold up
//! other partitions or streams, and everything acknowledged must land
//! exactly once, after the fault clears or after a restart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use lakehose_catalog::Storage;
use lakehose_ingest::config::S3Destination;
use lakehose_ingest::{IngestConfig, IngestService};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// How a chosen put fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// An I/O error that may clear (EIO, a 5xx).
    Transient,
    /// A name the file system refuses (ENAMETOOLONG): retrying cannot help.
    Permanent,
}

/// An object store that fails puts on purpose: the puts numbered in
/// `nth` (1-based, over all puts), and every put whose path contains
/// `matching`.
#[derive(Debug)]
struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    puts: AtomicU64,
    failed: AtomicU64,
    nth: Mutex<Vec<u64>>,
    matching: Mutex<Option<(String, Fault)>>,
}

impl FailingStore {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(InMemory::new()),
            puts: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            nth: Mutex::new(Vec::new()),
            matching: Mutex::new(None),
        })
    }

    fn fail_matching(&self, needle: &str, fault: Fault) {
        *self.matching.lock().unwrap() = Some((needle.to_string(), fault));
    }

    fn clear(&self) {
        *self.matching.lock().unwrap() = None;
        self.nth.lock().unwrap().clear();
    }

    fn failure(&self, location: &Path) -> Option<object_store::Error> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = if self.nth.lock().unwrap().contains(&n) {
            Some(Fault::Transient)
        } else {
            self.matching
                .lock()
                .unwrap()
                .as_ref()
                .filter(|(needle, _)| location.as_ref().contains(needle.as_str()))
                .map(|(_, f)| *f)
        }?;
        self.failed.fetch_add(1, Ordering::SeqCst);
        let source = match fault {
            Fault::Transient => std::io::Error::other("injected: input/output error"),
            Fault::Permanent => std::io::Error::new(
                std::io::ErrorKind::InvalidFilename,
                "injected: file name too long",
            ),
        };
        Some(object_store::Error::Generic {
            store: "FailingStore",
            source: Box::new(source),
        })
    }
}

impl std::fmt::Display for FailingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FailingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if let Some(e) = self.failure(location) {
            return Err(e);
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if let Some(e) = self.failure(location) {
            return Err(e);
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn config(wal: &std::path::Path) -> IngestConfig {
    let mut c = IngestConfig::new(wal);
    // One permit: a flush that held it while retrying would stop every
    // other delivery.
    c.max_concurrent_flushes = 1;
    c.flush_tick = Duration::from_millis(20);
    c
}

async fn open(wal: &std::path::Path, store: &Arc<FailingStore>) -> IngestService {
    IngestService::open(config(wal), Storage::from_store(store.clone()), None)
        .await
        .expect("open")
}

/// A JSON-lines stream into bucket `lake`, partitioned by the record's
/// `tenant`, flushed as soon as possible.
fn partitioned(prefix: &str) -> S3Destination {
    serde_json::from_value(serde_json::json!({
        "BucketARN": "arn:aws:s3:::lake",
        "Prefix": format!("{prefix}/tenant=!{{partitionKeyFromQuery:tenant}}/"),
        "ErrorOutputPrefix": format!("errors/{prefix}/!{{firehose:error-output-type}}/"),
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
        "DynamicPartitioningConfiguration": {"Enabled": true},
        "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "MetadataExtraction", "Parameters": [
            {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{tenant: .tenant}"},
            {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]}
    }))
    .unwrap()
}

fn record(tenant: &str, id: usize) -> Result<Bytes, Bytes> {
    Ok(Bytes::from(format!(r#"{{"tenant":"{tenant}","id":{id}}}"#)))
}

/// Every record id found under `s3://lake/<prefix>`: (id, folder) for data
/// objects, and (id, "error:<code>: <message>") for error documents.
async fn landed(store: &Arc<FailingStore>, prefix: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let root = Path::from(format!("lake/{prefix}"));
    let metas: Vec<ObjectMeta> = store.list(Some(&root)).map(|m| m.unwrap()).collect().await;
    for meta in metas {
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let folder = meta
            .location
            .as_ref()
            .rsplit_once('/')
            .unwrap()
            .0
            .to_string();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            if let Some(raw) = v.get("rawData").and_then(|r| r.as_str()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(raw)
                    .unwrap();
                let rec: serde_json::Value = serde_json::from_slice(&raw).unwrap();
                out.push((
                    rec["id"].as_u64().unwrap(),
                    format!(
                        "error:{}: {}",
                        v["errorCode"].as_str().unwrap(),
                        v["errorMessage"].as_str().unwrap()
                    ),
                ));
            } else {
                out.push((v["id"].as_u64().unwrap(), folder.clone()));
            }
        }
    }
    out.sort();
    out
}

/// Waits until `check` holds, for at most `secs`.
async fn until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids, sorted (duplicates kept, so a record landing twice shows).
fn ids(landed: &[(u64, String)]) -> Vec<u64> {
    let mut ids: Vec<u64> = landed.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_failing_to_write_holds_up_no_other_partition_or_stream() {
    let wal = tempfile::tempdir().unwrap();
    let store = FailingStore::new();
    let service = open_with_streams(wal.path(), &store, &["a", "b"]).await;
    store.fail_matching("tenant=bad/", Fault::Transient);

    // Several failing flushes in a row (each batch is its own buffer once
    // the previous one is flushing), then good ones.
    for id in 0..3 {
        service
            .put_records("a", vec![record("bad", id)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let good: Vec<u64> = (100..110).collect();
    for id in &good {
        let stream = if id % 2 == 0 { "a" } else { "b" };
        service
            .put_records(stream, vec![record("good", *id as usize)])
            .await
            .unwrap();
    }
    // The healthy partitions of both streams land while the bad one still
    // fails (with one flush permit, a retrying flush holding it would stop
    // them).
    until(10, "the healthy partitions landed", || async {
        let mut all = landed(&store, "a").await;
        all.extend(landed(&store, "b").await);
        ids(&all) == good
    })
    .await;
    assert!(service.metrics().flush_retries.get() > 0);
    assert!(landed(&store, "a/tenant=bad").await.is_empty());

    // Once the fault clears, the bad partition lands too, exactly once.
    store.clear();
    until(10, "the failing partition landed", || async {
        ids(&landed(&store, "a/tenant=bad").await) == [0, 1, 2]
    })
    .await;
    service.shutdown_within(Duration::from_secs(10)).await;
    let mut all = landed(&store, "a").await;
    all.extend(landed(&store, "b").await);
    let mut want: Vec<u64> = vec![0, 1, 2];
    want.extend(&good);
    want.sort();
    assert_eq!(ids(&all), want, "{all:?}");
    assert!(landed(&store, "errors").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_failing_object_sends_its_records_to_the_error_prefix() {
    let wal = tempfile::tempdir().unwrap();
    let store = FailingStore::new();
    let service = open(wal.path(), &store).await;
    service
        .create_stream("a", None, partitioned("a"))
        .await
        .unwrap();
    store.fail_matching("tenant=bad/", Fault::Permanent);
    service
        .put_records(
            "a",
            vec![record("bad", 1), record("good", 2), record("bad", 3)],
        )
        .await
        .unwrap();
    until(10, "every record landed", || async {
        let mut all = landed(&store, "a").await;
        all.extend(landed(&store, "errors/a").await);
        ids(&all) == [1, 2, 3]
    })
    .await;
    let errors = landed(&store, "errors/a/processing-failed").await;
    assert_eq!(ids(&errors), [1, 3], "{errors:?}");
    for (_, reason) in &errors {
        assert!(
            reason.contains("S3.PermanentWriteFailure") && reason.contains("tenant=bad"),
            "{reason}"
        );
    }
    assert!(service.shutdown_within(Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_value_too_long_for_a_folder_goes_to_the_error_prefix_up_front() {
    let wal = tempfile::tempdir().unwrap();
    let store = FailingStore::new();
    let service = open(wal.path(), &store).await;
    service
        .create_stream("a", None, partitioned("a"))
        .await
        .unwrap();
    let long = "x".repeat(300);
    service
        .put_records("a", vec![record(&long, 1), record("good", 2)])
        .await
        .unwrap();
    assert!(service.shutdown_within(Duration::from_secs(10)).await);
    let mut all = landed(&store, "a").await;
    all.extend(landed(&store, "errors/a").await);
    assert_eq!(ids(&all), [1, 2], "{all:?}");
    let (_, reason) = all.iter().find(|(id, _)| *id == 1).unwrap();
    assert!(
        reason.contains("DynamicPartitioning.InvalidPrefix") && reason.contains("255"),
        "{reason}"
    );
    // No put was ever attempted at the invalid path.
    assert_eq!(store.failed.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_land_exactly_once_despite_failing_puts() {
    let wal = tempfile::tempdir().unwrap();
    let store = FailingStore::new();
    let service = open(wal.path(), &store).await;
    service
        .create_stream("a", None, partitioned("a"))
        .await
        .unwrap();
    // Put 1 (the stream definition) is done; fail several of the next.
    store.nth.lock().unwrap().extend([3, 4, 6, 9, 10, 13]);
    let mut want = Vec::new();
    for batch in 0..6 {
        let recs: Vec<_> = (0..5)
            .map(|i| {
                let id = batch * 10 + i;
                want.push(id as u64);
                record(["t1", "t2", "t3"][i % 3], id)
            })
            .collect();
        service.put_records("a", recs).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(service.shutdown_within(Duration::from_secs(30)).await);
    assert!(store.failed.load(Ordering::SeqCst) > 0);
    assert_eq!(ids(&landed(&store, "a").await), want);
}

/// A service over `wal` and `store` with a partitioned stream per name.
async fn open_with_streams(
    wal: &std::path::Path,
    store: &Arc<FailingStore>,
    names: &[&str],
) -> IngestService {
    let service = open(wal, store).await;
    for name in names {
        service
            .create_stream(name, None, partitioned(name))
            .await
            .unwrap();
    }
    service
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_left_undelivered_at_shutdown_land_exactly_once_after_a_restart() {
    let wal = tempfile::tempdir().unwrap();
    let store = FailingStore::new();
    let service = open_with_streams(wal.path(), &store, &["a", "b"]).await;
    store.fail_matching("lake/a/", Fault::Transient);
    service
        .put_records("a", vec![record("t1", 1), record("t2", 2)])
        .await
        .unwrap();
    service
        .put_records("b", vec![record("t1", 3)])
        .await
        .unwrap();
    until(10, "stream b landed", || async {
        ids(&landed(&store, "b").await) == [3]
    })
    .await;
    // The fault does not clear: shutdown gives up after its timeout
    // instead of hanging, leaving stream a's records in the log.
    let started = Instant::now();
    assert!(!service.shutdown_within(Duration::from_millis(500)).await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(service);
    assert!(landed(&store, "a").await.is_empty());

    // Restart with the store still failing: opening does not wait for the
    // interrupted flushes (they run in the background).
    let started = Instant::now();
    let service = open(wal.path(), &store).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // New records are accepted meanwhile.
    service
        .put_records("a", vec![record("t3", 4)])
        .await
        .unwrap();
    store.clear();
    until(10, "stream a landed", || async {
        ids(&landed(&store, "a").await) == [1, 2, 4]
    })
    .await;
    assert!(service.shutdown_within(Duration::from_secs(10)).await);
    drop(service);

    // A second restart replays nothing again.
    let service = open(wal.path(), &store).await;
    assert!(service.shutdown_within(Duration::from_secs(10)).await);
    let mut all = landed(&store, "a").await;
    all.extend(landed(&store, "b").await);
    let by_id: BTreeMap<u64, usize> = all.iter().fold(BTreeMap::new(), |mut m, (id, _)| {
        *m.entry(*id).or_default() += 1;
        m
    });
    assert_eq!(by_id, BTreeMap::from([(1, 1), (2, 1), (3, 1), (4, 1)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_stream_definition_is_skipped_and_its_records_are_kept() {
    let wal = tempfile::tempdir().unwrap();
    let store = FailingStore::new();
    let service = open_with_streams(wal.path(), &store, &["a", "b"]).await;
    store.fail_matching("lake/", Fault::Transient);
    service
        .put_records("a", vec![record("t", 1)])
        .await
        .unwrap();
    service
        .put_records("b", vec![record("t", 2)])
        .await
        .unwrap();
    assert!(!service.shutdown_within(Duration::from_millis(300)).await);
    drop(service);

    // The definition of stream a is truncated (a crash of an older
    // release, a disk fault).
    let def = Path::from("_lakehose/firehose/streams/a.json");
    let good = store.get(&def).await.unwrap().bytes().await.unwrap();
    store
        .put(&def, good.slice(..good.len() / 2).into())
        .await
        .unwrap();
    store.clear();
    let service = open(wal.path(), &store).await;
    assert_eq!(service.list_streams(10, None).0, ["b"]);
    until(10, "stream b landed", || async {
        ids(&landed(&store, "b").await) == [2]
    })
    .await;
    assert!(service.shutdown_within(Duration::from_secs(10)).await);
    drop(service);
    assert!(landed(&store, "a").await.is_empty());

    // Stream a's acknowledged record was kept: once its definition is
    // readable again it lands.
    store.put(&def, good.into()).await.unwrap();
    let service = open(wal.path(), &store).await;
    until(10, "stream a landed", || async {
        ids(&landed(&store, "a").await) == [1]
    })
    .await;
    assert!(service.shutdown_within(Duration::from_secs(10)).await);
    assert_eq!(ids(&landed(&store, "b").await), [2]);
}
