//! The ingest service: delivery streams, admission, buffering, flushing and
//! crash recovery.
//!
//! ```text
//! put_records ─▶ route (JQ, prefix) ─▶ WAL append + fsync ─▶ ack
//!                                         │ (writer thread, log order)
//!                                         ▼
//!                          buffers per (stream, evaluated prefix)
//!                                         │ size / interval / shutdown
//!                                         ▼
//!   encode (blocking pool) ─▶ WAL: FlushIntent ─▶ put objects ─▶ WAL: FlushDone
//! ```
//!
//! **Exactly once.** A flush intent names precisely which records a flush
//! delivers (every record of one buffer between two log positions) and the
//! schema it writes them with. Object names derive from the first position,
//! and the intent is durable before any object is written. On restart the
//! log is replayed: records covered by a completed intent are skipped, an
//! intent without its completion is executed again (rewriting the same
//! objects with the same rows), and every other record is buffered again.
//! So an acknowledged record lands exactly once, whenever the process dies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;
use lakehose_catalog::awsjson::AwsError;
use lakehose_catalog::{CatalogRef, Location, Storage};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use tokio::sync::{Notify, Semaphore};

use crate::config::{DeliveryPlan, OutputFormat, PrefixCache, S3Destination, StreamDefinition};
use crate::encode::{self, ErrorDocument, KeyOptions};
use crate::encode::{Conversion, FlushSchema};
use crate::error::{Error, Result};
use crate::metrics::IngestMetrics;
use crate::schema::JType;
use crate::wal::{
    BufferKey, DurableSink, Entry, FlushIntent, OpenedWal, Pos, RecordError, RecordsEntry, Wal,
    WalOptions, WalRecord,
};

/// Default bound on bytes accepted but not yet delivered.
pub(crate) const DEFAULT_MAX_BUFFER_BYTES: u64 = 512 * 1024 * 1024;
/// Default number of flushes encoding or writing at once.
pub(crate) const DEFAULT_MAX_CONCURRENT_FLUSHES: usize = 4;
/// Most delivery streams one server holds.
pub(crate) const MAX_STREAMS: usize = 5000;
/// Default most records in one NDJSON request.
pub const DEFAULT_MAX_NDJSON_RECORDS: usize = 100_000;
/// Default most bytes of an NDJSON body once decompressed.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;
/// What one accepted record costs in memory besides its bytes, counted
/// against `max_buffer_bytes`: its place in a buffer and its log record
/// (the evaluated prefix and error reason it carries).
pub(crate) const RECORD_OVERHEAD_BYTES: u64 =
    (std::mem::size_of::<Buffered>() + std::mem::size_of::<WalRecord>() + 64) as u64;

/// The memory a record of `len` bytes is accounted for until delivered.
fn record_cost(len: usize) -> u64 {
    len as u64 + RECORD_OVERHEAD_BYTES
}
/// Default bound on how long graceful shutdown waits for buffers to be
/// delivered; past it the process stops and undelivered records stay in
/// the write-ahead log for the next start.
pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// First wait before retrying an object write that failed transiently.
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between retries of an object write (they go on until the
/// write succeeds or the server shuts down, as Firehose retries S3 for a
/// day).
const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);
/// Error code of records whose object could not be written for a reason
/// retrying cannot fix (an invalid path, a name the store refuses).
pub(crate) const PERMANENT_WRITE_FAILURE: &str = "S3.PermanentWriteFailure";

const STREAMS_DIR: &str = "firehose/streams";

/// Settings of the ingest service.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Folder of the write-ahead log (local disk).
    pub wal_dir: std::path::PathBuf,
    /// Bytes accepted but not yet delivered, past which requests get
    /// `ServiceUnavailableException`.
    pub max_buffer_bytes: u64,
    /// Write-ahead log segment size.
    pub wal_segment_bytes: u64,
    /// How often buffers are checked against their interval hint.
    pub flush_tick: Duration,
    /// Flushes encoding or writing at once.
    pub max_concurrent_flushes: usize,
    /// Most records in one NDJSON request (413 past it).
    pub max_ndjson_records: usize,
    /// Most bytes of an NDJSON body once decompressed (413 past it).
    pub max_decompressed_bytes: usize,
    /// Account id used in ARNs.
    pub account_id: String,
    /// Region used in ARNs.
    pub region: String,
    /// The file layer of the write-ahead log (the real file system unless a
    /// test injects faults).
    pub wal_files: Option<Arc<dyn crate::wal::FileLayer>>,
    /// This node's name in the objects it writes, when several nodes
    /// deliver the same streams to one storage: their write-ahead-log
    /// positions overlap, the node name keeps their objects apart.
    pub node_id: Option<String>,
    /// How often stream definitions made by other nodes are looked for.
    pub stream_sync: Duration,
}

impl IngestConfig {
    /// Defaults with the log in `wal_dir`.
    pub fn new(wal_dir: impl Into<std::path::PathBuf>) -> Self {
        Self {
            wal_dir: wal_dir.into(),
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
            wal_segment_bytes: crate::wal::DEFAULT_SEGMENT_BYTES,
            flush_tick: Duration::from_millis(100),
            max_concurrent_flushes: DEFAULT_MAX_CONCURRENT_FLUSHES,
            max_ndjson_records: DEFAULT_MAX_NDJSON_RECORDS,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            wal_files: None,
            node_id: None,
            stream_sync: Duration::from_secs(10),
        }
    }
}

pub use lakehose_catalog::storage::validate_node_id;

/// One record waiting in a buffer.
#[derive(Debug, Clone)]
struct Buffered {
    pos: Pos,
    arrival_ms: i64,
    data: Bytes,
    error: Option<RecordError>,
}

/// A buffer being delivered: its flush id, key and records.
type Flushing = (u64, BufferKey, Arc<Vec<Buffered>>);

#[derive(Debug, Default)]
struct Buffer {
    records: Vec<Buffered>,
    bytes: u64,
    oldest_ms: i64,
}

struct Stream {
    name: String,
    id: u64,
    plan: DeliveryPlan,
    def: Mutex<StreamDefinition>,
    buffers: Mutex<HashMap<BufferKey, Buffer>>,
    /// Buffers taken for delivery whose objects are not written yet (kept
    /// visible to queries until they are).
    flushing: Mutex<Vec<Flushing>>,
    schema: Mutex<JType>,
    deleting: AtomicBool,
    /// Puts hold it shared while they append; delete takes it exclusively.
    puts: tokio::sync::RwLock<()>,
    inflight: AtomicUsize,
    idle: Notify,
    /// Prefixes registered in the catalog, and the schema they were
    /// registered with.
    registered: Mutex<(HashSet<String>, Option<JType>)>,
    /// This node's id in object names (several nodes).
    node: Option<String>,
}

impl Stream {
    /// Appends records of log entry `seq` (with their indexes in it) to
    /// their buffers. Returns their bytes and whether a buffer reached the
    /// size hint.
    fn enqueue(
        &self,
        seq: u64,
        arrival_ms: i64,
        records: impl IntoIterator<Item = (u32, WalRecord)>,
    ) -> (u64, bool) {
        let mut buffers = lock(&self.buffers);
        let (mut bytes, mut over_size) = (0, false);
        for (idx, mut rec) in records {
            if let Some(error) = &rec.error
                && self.plan.bucket.join(&rec.prefix).is_err()
            {
                // Logged before error prefixes were checked at creation.
                let fallback = crate::config::fallback_error_prefix(&error.output_type);
                tracing::error!(stream = %self.name, prefix = %rec.prefix, fallback = %fallback, "A logged error prefix is not a valid key; its records go to the fallback folder.");
                rec.prefix = fallback;
            }
            let key = BufferKey {
                prefix: rec.prefix,
                error: rec.error.is_some(),
            };
            let buffer = buffers.entry(key).or_default();
            if buffer.records.is_empty() {
                buffer.oldest_ms = arrival_ms;
            }
            let len = rec.data.len() as u64;
            buffer.bytes += len;
            bytes += record_cost(rec.data.len());
            over_size |= buffer.bytes >= self.plan.size_bytes;
            buffer.records.push(Buffered {
                pos: Pos { seq, idx },
                arrival_ms,
                data: rec.data,
                error: rec.error,
            });
        }
        (bytes, over_size)
    }
}

struct Inner {
    config: IngestConfig,
    storage: Storage,
    catalog: Option<CatalogRef>,
    wal: std::sync::OnceLock<Wal>,
    streams: RwLock<HashMap<String, Arc<Stream>>>,
    by_id: RwLock<HashMap<u64, Arc<Stream>>>,
    buffered: AtomicU64,
    metrics: IngestMetrics,
    permits: Semaphore,
    inflight: AtomicUsize,
    idle: Notify,
    wake: Notify,
    closing: AtomicBool,
    /// Set when graceful shutdown gives up waiting: flushes still retrying
    /// stop, leaving their records in the write-ahead log.
    abandon: tokio::sync::watch::Sender<bool>,
    control: tokio::sync::Mutex<()>,
    /// When a stream unknown here was last looked for in storage.
    looked_up: Mutex<Instant>,
}

static FLUSH_IDS: AtomicU64 = AtomicU64::new(0);

/// Records of one buffer not yet written to an object.
#[derive(Debug, Clone)]
pub struct PendingBuffer {
    /// The folder its object will be written to.
    pub folder: Location,
    /// How that object's name will end (it derives from the buffer's first
    /// write-ahead-log position): once a listing shows an object with this
    /// suffix in `folder`, these records are in it.
    pub object_suffix: String,
    /// The records as received (JSON).
    pub records: Vec<Bytes>,
    /// How the stream's JSON SerDe reads them.
    pub serde: lakehose_catalog::jsonserde::SerDeOptions,
}

/// The ingest service. Cloning shares it.
#[derive(Clone)]
pub struct IngestService {
    inner: Arc<Inner>,
}

/// The outcome of accepting one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The record id (derived from its log position).
    pub record_id: String,
}

/// What a `lakehose` client sees of a stream.
pub(crate) type StreamDescription = StreamDefinition;

/// A record's id: its log position as 24 hex digits.
fn record_id(pos: Pos) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(24);
    for shift in (0..16).rev() {
        id.push(HEX[((pos.seq >> (shift * 4)) & 0xf) as usize] as char);
    }
    for shift in (0..8).rev() {
        id.push(HEX[((pos.idx >> (shift * 4)) & 0xf) as usize] as char);
    }
    id
}

/// The shortest time between two looks in storage for a stream this node
/// does not know (another node may have created it): requests naming
/// streams that do not exist cannot turn into a flood of storage reads.
const LOOKUP_GAP: Duration = Duration::from_millis(200);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn not_found(name: &str) -> AwsError {
    AwsError::client(
        "ResourceNotFoundException",
        format!("Firehose {name} not found."),
    )
}

/// A logged flush, as replay sees it.
struct LoggedFlush {
    from: Pos,
    to: Pos,
    intent_seq: u64,
    completed: bool,
}

/// Records of one log entry that replay buffers again.
struct Requeue {
    seq: u64,
    stream_id: u64,
    arrival_ms: i64,
    records: Vec<(u32, WalRecord)>,
}

struct Sink(Weak<Inner>);

impl DurableSink for Sink {
    fn durable(&self, seq: u64, entry: Entry) {
        let (Some(inner), Entry::Records(entry)) = (self.0.upgrade(), entry) else {
            return;
        };
        inner.buffer_records(seq, entry);
    }
}

impl Inner {
    fn wal(&self) -> Result<&Wal> {
        self.wal.get().ok_or(Error::WalClosed)
    }

    fn stream_by_name(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn stream_by_id(&self, id: u64) -> Option<Arc<Stream>> {
        self.by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    fn buffer_records(&self, seq: u64, entry: RecordsEntry) {
        let Some(stream) = self.stream_by_id(entry.stream_id) else {
            tracing::warn!(
                stream_id = entry.stream_id,
                records = entry.records.len(),
                "Records logged for a deleted stream are dropped."
            );
            if let Ok(wal) = self.wal() {
                wal.release(entry.records.iter().map(|_| seq));
            }
            return;
        };
        let (_, over_size) = stream.enqueue(
            seq,
            entry.arrival_ms,
            entry
                .records
                .into_iter()
                .enumerate()
                .map(|(i, r)| (i as u32, r)),
        );
        if over_size {
            self.wake.notify_one();
        }
    }
}

/// Everything one flush writes.
struct Encoded {
    objects: Vec<Output>,
    schema: Option<FlushSchema>,
    delivered: u64,
    failed: u64,
}

/// One object a flush writes.
struct Output {
    /// Where; `Err` says why no valid path could be made for it.
    path: std::result::Result<ObjectPath, String>,
    data: Bytes,
    /// The buffer's records it holds (indexes), each with its error when
    /// the object holds error documents.
    members: Vec<(usize, Option<RecordError>)>,
    /// Whether it holds data (not error documents).
    is_data: bool,
    /// 0: as encoded; 1: redirected to the rendered error prefix; 2:
    /// redirected to the fixed folder `<error output type>/`.
    depth: u8,
    /// Names redirected objects uniquely and deterministically, so a replay
    /// rewrites the same objects.
    tag: String,
}

/// How writing one object ended.
enum Written {
    Ok,
    /// Retrying cannot help; the reason names the object and the error.
    Permanent(String),
    /// Shutdown gave up waiting; the records stay in the write-ahead log.
    Abandoned,
}

impl IngestService {
    /// Opens the service over `storage`: loads stream definitions, replays the
    /// write-ahead log (re-running interrupted flushes), and starts the
    /// flusher.
    ///
    /// With a `catalog`, streams that name a catalog table register every
    /// partition they deliver (see [`crate::register`]).
    pub async fn open(
        config: IngestConfig,
        storage: Storage,
        catalog: Option<CatalogRef>,
    ) -> Result<Self> {
        let inner = Arc::new(Inner {
            permits: Semaphore::new(config.max_concurrent_flushes.max(1)),
            config,
            storage,
            catalog,
            wal: std::sync::OnceLock::new(),
            streams: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
            buffered: AtomicU64::new(0),
            metrics: IngestMetrics::default(),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            abandon: tokio::sync::watch::Sender::new(false),
            control: tokio::sync::Mutex::new(()),
            looked_up: Mutex::new(
                Instant::now()
                    .checked_sub(LOOKUP_GAP)
                    .unwrap_or_else(Instant::now),
            ),
        });
        if let Some(id) = &inner.config.node_id {
            validate_node_id(id).map_err(Error::Config)?;
        }
        let service = Self { inner };
        let unreadable = service.load_streams().await?;
        let (opened, replay) = Wal::open(WalOptions {
            dir: service.inner.config.wal_dir.clone(),
            segment_bytes: service.inner.config.wal_segment_bytes,
            fsyncs: service.inner.metrics.wal_fsyncs.clone(),
            entries: service.inner.metrics.wal_entries.clone(),
            files: service
                .inner
                .config
                .wal_files
                .clone()
                .unwrap_or_else(crate::wal::real_files),
            max_entry_bytes: crate::wal::MAX_ENTRY_BYTES,
        })?;
        service.recover(opened, replay.entries, unreadable).await?;
        let syncer = service.clone();
        tokio::spawn(async move { syncer.sync_loop().await });
        let flusher = service.clone();
        // A panic in the loop is logged and the loop starts again: flushing
        // never silently stops.
        tokio::spawn(async move {
            loop {
                let run = flusher.clone().flush_loop();
                match lakehose_catalog::supervise::catch_panic("flush loop", run).await {
                    Ok(()) => break,
                    Err(_) => tokio::time::sleep(lakehose_catalog::supervise::MIN_BACKOFF).await,
                }
            }
        });
        Ok(service)
    }

    /// The metrics.
    pub fn metrics(&self) -> &IngestMetrics {
        &self.inner.metrics
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Records accepted (durable in the write-ahead log) but not yet in
    /// objects, of the streams that register into catalog table
    /// `database.table`: what queries add to the table's files so a record
    /// is queryable as soon as it is acknowledged.
    pub fn pending_records(&self, database: &str, table: &str) -> Vec<PendingBuffer> {
        self.pending_where(
            |s| {
                matches!(s.plan.output, OutputFormat::Parquet(_))
                    && s.plan
                        .catalog_table
                        .as_ref()
                        .is_some_and(|(d, t)| d == database && t == table)
            },
            |_| true,
        )
    }

    /// The pending records of every stream writing objects under
    /// `location` (a table's, say: any table over a stream's output), of
    /// streams writing Parquet when `parquet`, else of streams writing
    /// uncompressed JSON lines.
    pub fn pending_under(&self, location: &Location, parquet: bool) -> Vec<PendingBuffer> {
        let base = location.to_string();
        let base = if base.ends_with('/') {
            base
        } else {
            format!("{base}/")
        };
        self.pending_where(
            |s| match s.plan.output {
                OutputFormat::Parquet(_) => parquet,
                OutputFormat::Json(compression) => {
                    !parquet && matches!(compression, crate::config::FileCompression::Uncompressed)
                }
            },
            |folder| {
                let folder = folder.to_string();
                folder.starts_with(&base) || format!("{folder}/").starts_with(&base)
            },
        )
    }

    fn pending_where(
        &self,
        stream_filter: impl Fn(&Stream) -> bool,
        folder_filter: impl Fn(&Location) -> bool,
    ) -> Vec<PendingBuffer> {
        let streams: Vec<Arc<Stream>> = self
            .inner
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| stream_filter(s))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for stream in streams {
            let mut push = |key: &BufferKey, records: &[Buffered]| {
                if key.error || records.is_empty() {
                    return;
                }
                let Ok(folder) = stream.plan.bucket.join(&key.prefix) else {
                    return;
                };
                if !folder_filter(&folder) {
                    return;
                }
                let first = records[0].pos;
                out.push(PendingBuffer {
                    folder,
                    object_suffix: format!(
                        "-{:016x}-{:08x}{}",
                        first.seq, first.idx, stream.plan.extension
                    ),
                    records: records.iter().map(|r| r.data.clone()).collect(),
                    serde: stream.plan.serde_options(),
                });
            };
            for (_, key, records) in lock(&stream.flushing).iter() {
                push(key, records);
            }
            for (key, buffer) in lock(&stream.buffers).iter() {
                push(key, &buffer.records);
            }
        }
        out
    }

    /// The settings.
    pub fn config(&self) -> &IngestConfig {
        &self.inner.config
    }

    /// Bytes accepted but not yet delivered.
    pub fn buffered_bytes(&self) -> u64 {
        self.inner.buffered.load(Ordering::Relaxed)
    }

    /// Refuses, before a request's body is read, a request announcing
    /// `bytes` that admission would refuse now (buffers full), so a client
    /// retrying against full buffers costs no body in memory. Admission
    /// proper happens per record once the body is read.
    pub(crate) fn check_room(&self, bytes: u64) -> std::result::Result<(), AwsError> {
        let buffered = self.buffered_bytes();
        if buffered > 0 && buffered.saturating_add(bytes) > self.inner.config.max_buffer_bytes {
            self.inner.metrics.requests_throttled.inc();
            return Err(unavailable("buffers are full; slow down and retry"));
        }
        Ok(())
    }

    /// Loads the stream definitions. Returns whether one could not be read
    /// (it is skipped, with an error naming its file).
    async fn load_streams(&self) -> Result<bool> {
        self.load_streams_listed(&mut HashSet::new()).await
    }

    /// [`Self::load_streams`], noting in `listed` the names of every
    /// definition found.
    async fn load_streams_listed(&self, listed: &mut HashSet<String>) -> Result<bool> {
        let mut unreadable = false;
        let store = self.inner.storage.store();
        let prefix = self.inner.storage.system_path(STREAMS_DIR);
        let mut listing = store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(file) = meta.location.filename() else {
                continue;
            };
            let Some(name) = file.strip_suffix(".json") else {
                continue;
            };
            listed.insert(name.to_string());
            if self.inner.stream_by_name(name).is_some() {
                continue;
            }
            let bytes = match store.get(&meta.location).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            };
            let def = match bytes.map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice::<StreamDefinition>(&b).map_err(|e| e.to_string())
            }) {
                Ok(def) => def,
                Err(e) => {
                    tracing::error!(file = %meta.location, error = %e, "A stream definition file is unreadable (truncated or corrupt); that stream is skipped and its records stay in the write-ahead log. Fix or remove the file and restart to serve it again.");
                    unreadable = true;
                    continue;
                }
            };
            let plan = match DeliveryPlan::compile(&def.destination) {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::error!(stream = %def.name, file = %meta.location, error = %e, "Stream definition no longer valid; skipped, and its records stay in the write-ahead log.");
                    unreadable = true;
                    continue;
                }
            };
            self.insert_stream(def, plan);
        }
        Ok(unreadable)
    }

    /// Every `stream_sync`, loads the definitions of streams other nodes
    /// created since, and retires the streams whose definitions other
    /// nodes deleted (after delivering what this node acknowledged).
    async fn sync_loop(self) {
        loop {
            tokio::time::sleep(self.inner.config.stream_sync).await;
            if self.inner.closing.load(Ordering::SeqCst) {
                break;
            }
            let _control = self.inner.control.lock().await;
            let mut listed = HashSet::new();
            if let Err(e) = self.load_streams_listed(&mut listed).await {
                tracing::warn!(error = %e, "Could not look for streams created by other nodes");
                continue;
            }
            let gone: Vec<Arc<Stream>> = self
                .inner
                .streams
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .filter(|s| !listed.contains(&s.name))
                .cloned()
                .collect();
            for stream in gone {
                self.drain(&stream).await;
                self.forget(&stream);
                tracing::info!(
                    stream = %stream.name,
                    "Delivery stream deleted on another node; retired here."
                );
            }
        }
    }

    /// The stream `name`: known here, or (another node may just have
    /// created it) read from storage, at most once every [`LOOKUP_GAP`];
    /// concurrent calls wait for a lookup in flight.
    async fn stream_or_load(&self, name: &str) -> Option<Arc<Stream>> {
        if let Some(s) = self.inner.stream_by_name(name) {
            return Some(s);
        }
        validate_stream_name(name).ok()?;
        let may_read = {
            let mut last = lock(&self.inner.looked_up);
            let due = last.elapsed() >= LOOKUP_GAP;
            if due {
                *last = Instant::now();
            }
            due
        };
        // A lookup in flight holds this lock: calls that arrive meanwhile
        // (the first burst of records for a stream another node just
        // created) wait for it rather than being refused.
        let _control = self.inner.control.lock().await;
        if let Some(s) = self.inner.stream_by_name(name) {
            return Some(s);
        }
        if !may_read {
            return None;
        }
        let path = self
            .inner
            .storage
            .system_path(&format!("{STREAMS_DIR}/{name}.json"));
        let bytes = match self.inner.storage.store().get(&path).await {
            Ok(got) => got.bytes().await.ok()?,
            Err(_) => return None,
        };
        let def: StreamDefinition = serde_json::from_slice(&bytes).ok()?;
        if def.name != name {
            return None;
        }
        let plan = match DeliveryPlan::compile(&def.destination) {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!(stream = name, error = %e, "Stream definition made by another node is not valid here; not served");
                return None;
            }
        };
        tracing::info!(
            stream = name,
            "Delivery stream created by another node loaded."
        );
        Some(self.insert_stream(def, plan))
    }

    fn insert_stream(&self, def: StreamDefinition, plan: DeliveryPlan) -> Arc<Stream> {
        let stream = Arc::new(Stream {
            name: def.name.clone(),
            id: def.id,
            plan,
            schema: Mutex::new(def.schema.clone().unwrap_or(JType::Null)),
            def: Mutex::new(def),
            buffers: Mutex::new(HashMap::new()),
            flushing: Mutex::new(Vec::new()),
            deleting: AtomicBool::new(false),
            puts: tokio::sync::RwLock::new(()),
            inflight: AtomicUsize::new(0),
            idle: Notify::new(),
            registered: Mutex::default(),
            node: self.inner.config.node_id.clone(),
        });
        self.inner
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.name.clone(), Arc::clone(&stream));
        self.inner
            .by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.id, Arc::clone(&stream));
        stream
    }

    /// Saves a new stream's definition only if no node saved one of that
    /// name (a conditional write); `false` when one exists.
    async fn create_definition(&self, def: &StreamDefinition) -> Result<bool> {
        let path = self
            .inner
            .storage
            .system_path(&format!("{STREAMS_DIR}/{}.json", def.name));
        let bytes = serde_json::to_vec_pretty(def).unwrap_or_default();
        Ok(self
            .inner
            .storage
            .create_durable(&path, bytes.into())
            .await?)
    }

    async fn save_definition(&self, def: &StreamDefinition) -> Result<()> {
        let path = self
            .inner
            .storage
            .system_path(&format!("{STREAMS_DIR}/{}.json", def.name));
        let bytes = serde_json::to_vec_pretty(def).unwrap_or_default();
        self.inner.storage.put_durable(&path, bytes.into()).await?;
        Ok(())
    }

    /// Replays the log: skips delivered records, re-runs interrupted
    /// flushes, and buffers the rest.
    ///
    /// With `unreadable` (a stream definition could not be read), records
    /// of unknown streams are kept in the log rather than dropped: they may
    /// belong to that stream.
    async fn recover(
        &self,
        mut opened: OpenedWal,
        entries: Vec<(u64, Entry)>,
        unreadable: bool,
    ) -> Result<()> {
        let mut done = HashSet::new();
        let mut intents: BTreeMap<u64, FlushIntent> = BTreeMap::new();
        for (seq, entry) in &entries {
            match entry {
                Entry::Intent(i) => {
                    intents.insert(*seq, i.clone());
                }
                Entry::Done { intent_seq } => {
                    done.insert(*intent_seq);
                }
                Entry::Records(_) => {}
            }
        }
        // (stream, buffer) -> [(from, to, intent seq, completed)]
        let mut ranges: HashMap<(u64, BufferKey), Vec<LoggedFlush>> = HashMap::new();
        for (seq, i) in &intents {
            ranges
                .entry((i.stream_id, i.buffer.clone()))
                .or_default()
                .push(LoggedFlush {
                    from: i.from,
                    to: i.to,
                    intent_seq: *seq,
                    completed: done.contains(seq),
                });
        }
        let mut redo: BTreeMap<u64, Vec<Buffered>> = BTreeMap::new();
        let mut pending: Vec<Requeue> = Vec::new();
        let (mut skipped, mut requeued) = (0u64, 0u64);
        for (seq, entry) in entries {
            let Entry::Records(entry) = entry else {
                continue;
            };
            let mut keep = Vec::new();
            let mut retained = 0;
            for (idx, rec) in entry.records.into_iter().enumerate() {
                let pos = Pos {
                    seq,
                    idx: idx as u32,
                };
                let key = BufferKey {
                    prefix: rec.prefix.clone(),
                    error: rec.error.is_some(),
                };
                let covering = ranges.get(&(entry.stream_id, key)).and_then(|flushes| {
                    flushes
                        .iter()
                        .find(|f| f.from <= pos && pos <= f.to)
                        .map(|f| (f.intent_seq, f.completed))
                });
                match covering {
                    Some((_, true)) => skipped += 1,
                    Some((intent_seq, false)) => {
                        retained += 1;
                        redo.entry(intent_seq).or_default().push(Buffered {
                            pos,
                            arrival_ms: entry.arrival_ms,
                            data: rec.data,
                            error: rec.error,
                        });
                    }
                    None => {
                        retained += 1;
                        requeued += 1;
                        keep.push((idx as u32, rec));
                    }
                }
            }
            opened.retain(seq, retained);
            if !keep.is_empty() {
                pending.push(Requeue {
                    seq,
                    stream_id: entry.stream_id,
                    arrival_ms: entry.arrival_ms,
                    records: keep,
                });
            }
        }
        let wal = opened.start(Arc::new(Sink(Arc::downgrade(&self.inner))))?;
        let _ = self.inner.wal.set(wal);

        // Re-run interrupted flushes with exactly their recorded records.
        let redone = redo.len();
        for (intent_seq, records) in redo {
            let Some(intent) = intents.remove(&intent_seq) else {
                continue;
            };
            let Some(stream) = self.inner.stream_by_id(intent.stream_id) else {
                if unreadable {
                    tracing::warn!(
                        stream_id = intent.stream_id,
                        "Interrupted flush of a stream whose definition is unreadable is kept in the write-ahead log."
                    );
                    continue;
                }
                tracing::warn!(
                    stream_id = intent.stream_id,
                    "Interrupted flush of a deleted stream skipped."
                );
                if let Ok(wal) = self.inner.wal() {
                    wal.release(records.iter().map(|r| r.pos.seq));
                }
                continue;
            };
            if records.len() as u32 != intent.count {
                tracing::warn!(
                    stream = %stream.name,
                    expected = intent.count,
                    found = records.len(),
                    "Interrupted flush has a different record count than logged."
                );
            }
            let bytes: u64 = records.iter().map(|r| record_cost(r.data.len())).sum();
            self.inner.buffered.fetch_add(bytes, Ordering::Relaxed);
            let fixed = intent.schema.as_deref().and_then(encode::parse_schema_text);
            // In the background: the server serves (and queries see these
            // records) while interrupted flushes are re-run.
            self.spawn_flush(
                &stream,
                intent.buffer.clone(),
                records,
                Some((intent_seq, fixed)),
            );
        }

        // Buffer what was never flushed, with its original positions.
        for Requeue {
            seq,
            stream_id,
            arrival_ms,
            records,
        } in pending
        {
            let Some(stream) = self.inner.stream_by_id(stream_id) else {
                if unreadable {
                    tracing::warn!(
                        stream_id,
                        records = records.len(),
                        "Records of a stream whose definition is unreadable are kept in the write-ahead log."
                    );
                    continue;
                }
                tracing::warn!(stream_id, "Records of a deleted stream dropped on replay.");
                if let Ok(wal) = self.inner.wal() {
                    wal.release(records.iter().map(|_| seq));
                }
                continue;
            };
            let (bytes, _) = stream.enqueue(seq, arrival_ms, records);
            self.inner.buffered.fetch_add(bytes, Ordering::Relaxed);
        }
        self.inner
            .metrics
            .buffer_bytes
            .set(self.buffered_bytes() as i64);
        if skipped + requeued > 0 || redone > 0 {
            tracing::info!(
                delivered_before = skipped,
                requeued,
                flushes_redone = redone,
                "Write-ahead log replayed."
            );
        }
        Ok(())
    }

    // ---- control plane -------------------------------------------------

    /// `CreateDeliveryStream`. Returns the ARN.
    pub async fn create_stream(
        &self,
        name: &str,
        stream_type: Option<&str>,
        destination: S3Destination,
    ) -> Result<String, AwsError> {
        validate_stream_name(name)?;
        let stream_type = stream_type.unwrap_or("DirectPut");
        if stream_type != "DirectPut" {
            return Err(AwsError::client(
                "InvalidArgumentException",
                format!(
                    "DeliveryStreamType {stream_type:?} is not supported; lakehose streams are DirectPut"
                ),
            ));
        }
        // Compiling tries a JQ query with its bounds: off the runtime.
        let plan = {
            let destination = destination.clone();
            tokio::task::spawn_blocking(move || DeliveryPlan::create(&destination))
                .await
                .map_err(|e| AwsError::internal("InternalFailure", e.to_string()))?
                .map_err(|e| AwsError::client("InvalidArgumentException", e))?
        };
        self.check_schema_table(&plan).await?;
        let _control = self.inner.control.lock().await;
        if self.inner.stream_by_name(name).is_some() {
            return Err(AwsError::client(
                "ResourceInUseException",
                format!(
                    "Firehose {name} under account {} already exists.",
                    self.inner.config.account_id
                ),
            ));
        }
        if self
            .inner
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
            >= MAX_STREAMS
        {
            return Err(AwsError::client(
                "LimitExceededException",
                format!("at most {MAX_STREAMS} delivery streams may exist"),
            ));
        }
        let arn = format!(
            "arn:aws:firehose:{}:{}:deliverystream/{name}",
            self.inner.config.region, self.inner.config.account_id
        );
        let def = StreamDefinition {
            name: name.to_string(),
            id: loop {
                let id = rand_id();
                if !self
                    .inner
                    .by_id
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&id)
                {
                    break id;
                }
            },
            arn: arn.clone(),
            created_ms: Utc::now().timestamp_millis(),
            version_id: 1,
            stream_type: stream_type.to_string(),
            destination,
            schema: None,
        };
        let created = self.create_definition(&def).await.map_err(|e| {
            AwsError::internal("InternalFailure", format!("could not save the stream: {e}"))
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        })?;
        if !created {
            return Err(AwsError::client(
                "ResourceInUseException",
                format!(
                    "Firehose {name} under account {} already exists (another node created it).",
                    self.inner.config.account_id
                ),
            ));
        }
        self.insert_stream(def, plan);
        tracing::info!(stream = name, "Delivery stream created.");
        Ok(arn)
    }

    /// `DescribeDeliveryStream`.
    pub(crate) async fn describe_stream(&self, name: &str) -> Result<StreamDescription, AwsError> {
        let stream = self
            .stream_or_load(name)
            .await
            .ok_or_else(|| not_found(name))?;
        Ok(lock(&stream.def).clone())
    }

    /// `ListDeliveryStreams`: names in alphabetical order after
    /// `exclusive_start`, at most `limit`, and whether more exist.
    pub fn list_streams(&self, limit: usize, exclusive_start: Option<&str>) -> (Vec<String>, bool) {
        let streams = self.inner.streams.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = streams
            .keys()
            .filter(|n| exclusive_start.is_none_or(|s| n.as_str() > s))
            .collect();
        names.sort();
        let more = names.len() > limit;
        (names.into_iter().take(limit).cloned().collect(), more)
    }

    /// `DeleteDeliveryStream`: stops accepting records, delivers everything
    /// buffered, then removes the stream.
    pub async fn delete_stream(&self, name: &str) -> Result<(), AwsError> {
        let _control = self.inner.control.lock().await;
        let stream = self
            .inner
            .stream_by_name(name)
            .ok_or_else(|| not_found(name))?;
        self.drain(&stream).await;
        let path = self
            .inner
            .storage
            .system_path(&format!("{STREAMS_DIR}/{name}.json"));
        if let Err(e) = self.inner.storage.store().delete(&path).await {
            tracing::warn!(stream = name, error = %e, "Could not delete the stream definition.");
        }
        self.forget(&stream);
        tracing::info!(stream = name, "Delivery stream deleted.");
        Ok(())
    }

    /// Stops `stream` taking records and delivers every record it has
    /// acknowledged.
    async fn drain(&self, stream: &Arc<Stream>) {
        stream.deleting.store(true, Ordering::SeqCst);
        // Wait for puts that already passed the lookup.
        drop(stream.puts.write().await);
        self.flush_stream(stream, true).await;
        loop {
            let idle = stream.idle.notified();
            if stream.inflight.load(Ordering::SeqCst) == 0 {
                break;
            }
            idle.await;
        }
    }

    /// Removes a drained stream from this node.
    fn forget(&self, stream: &Stream) {
        self.inner
            .streams
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&stream.name);
        self.inner
            .by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&stream.id);
    }

    // ---- data plane ----------------------------------------------------

    /// Accepts records (already base64-decoded; an `Err` holds the raw text
    /// of a record that could not be decoded). Returns once they are durable.
    pub async fn put_records(
        &self,
        name: &str,
        records: Vec<std::result::Result<Bytes, Bytes>>,
    ) -> Result<Vec<Accepted>, AwsError> {
        let inner = &self.inner;
        let n = records.len() as u64;
        let (payload, cost) = records.iter().fold((0u64, 0u64), |(p, c), r| match r {
            Ok(b) | Err(b) => (p + b.len() as u64, c + record_cost(b.len())),
        });
        inner.metrics.records_received.inc_by(n);
        inner.metrics.bytes_received.inc_by(payload);
        let stream = self
            .stream_or_load(name)
            .await
            .filter(|s| !s.deleting.load(Ordering::SeqCst))
            .ok_or_else(|| not_found(name))?;
        let _put = stream.puts.read().await;
        if stream.deleting.load(Ordering::SeqCst) {
            return Err(not_found(name));
        }
        if inner.closing.load(Ordering::SeqCst) {
            return Err(unavailable("the server is shutting down"));
        }
        // Reserved until the records are handed to the log, released on
        // every other way out (errors, panics, a dropped request).
        let admission = Admission::reserve(inner, cost)?;
        let arrival = Utc::now();
        let stream_for_route = Arc::clone(&stream);
        // A dropped request (client gone) stops routing its records.
        let dropped = DropFlag::default();
        let stop = Arc::clone(&dropped.0);
        let route = move || route_records(&stream_for_route.plan, records, arrival, &stop);
        let failed = |e: String| {
            tracing::error!(stream = name, error = %e, "Routing records failed.");
            AwsError::internal(
                "InternalFailure",
                format!("routing the records failed: {e}"),
            )
        };
        let routed = if stream.plan.query.is_some() {
            // JQ runs on threads with room for its recursion.
            crate::jq::pool::run(route).await.map_err(failed)?
        } else if stream.plan.needs_json() {
            tokio::task::spawn_blocking(route)
                .await
                .map_err(|e| failed(e.to_string()))?
        } else {
            route()
        };
        let entry = Entry::Records(RecordsEntry {
            stream_id: stream.id,
            arrival_ms: arrival.timestamp_millis(),
            records: routed,
        });
        let appended = match inner.wal() {
            Ok(wal) => {
                // Once the append is sent, the records are the log's: the
                // flush that delivers them releases their space.
                let bytes = admission.hand_over();
                wal.append(entry).await.inspect_err(|_| {
                    inner.buffered.fetch_sub(bytes, Ordering::SeqCst);
                })
            }
            Err(e) => Err(e),
        };
        let seq = match appended {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!(error = %e, "Write-ahead log append failed.");
                return Err(unavailable("the write-ahead log is unavailable"));
            }
        };
        inner.metrics.records_acked.inc_by(n);
        inner.metrics.buffer_bytes.set(self.buffered_bytes() as i64);
        Ok((0..n as u32)
            .map(|idx| Accepted {
                record_id: record_id(Pos { seq, idx }),
            })
            .collect())
    }

    // ---- flushing ------------------------------------------------------

    async fn flush_loop(self) {
        let tick = self.inner.config.flush_tick;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = self.inner.wake.notified() => {}
            }
            if self.inner.closing.load(Ordering::SeqCst) {
                break;
            }
            let streams: Vec<Arc<Stream>> = self
                .inner
                .streams
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            for stream in streams {
                self.flush_stream(&stream, false).await;
            }
        }
    }

    /// Takes the due buffers of a stream (all of them when `force`) and
    /// starts their flushes.
    async fn flush_stream(&self, stream: &Arc<Stream>, force: bool) {
        let now = Utc::now().timestamp_millis();
        let interval = stream.plan.interval.as_millis() as i64;
        let due: Vec<(BufferKey, Buffer)> = {
            let mut buffers = lock(&stream.buffers);
            let keys: Vec<BufferKey> = buffers
                .iter()
                .filter(|(_, b)| {
                    !b.records.is_empty()
                        && (force
                            || b.bytes >= stream.plan.size_bytes
                            || now - b.oldest_ms >= interval)
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| buffers.remove(&k).map(|b| (k, b)))
                .collect()
        };
        for (key, buffer) in due {
            self.spawn_flush(stream, key, buffer.records, None);
        }
    }

    /// Starts delivering one buffer in a task of its own, keeping its
    /// records visible to queries until their objects are written.
    fn spawn_flush(
        &self,
        stream: &Arc<Stream>,
        key: BufferKey,
        records: Vec<Buffered>,
        replay: Option<(u64, Option<FlushSchema>)>,
    ) {
        self.inner.inflight.fetch_add(1, Ordering::SeqCst);
        stream.inflight.fetch_add(1, Ordering::SeqCst);
        let service = self.clone();
        let stream = Arc::clone(stream);
        let records = Arc::new(records);
        let flush_id = FLUSH_IDS.fetch_add(1, Ordering::Relaxed);
        lock(&stream.flushing).push((flush_id, key.clone(), Arc::clone(&records)));
        tokio::spawn(async move {
            let owned = Arc::unwrap_or_clone(Arc::clone(&records));
            drop(records);
            let flush = service.run_flush(&stream, key, owned, replay);
            if lakehose_catalog::supervise::catch_panic("flush", flush)
                .await
                .is_err()
            {
                tracing::error!(stream = %stream.name, "A flush failed unexpectedly; its records stay in the write-ahead log and are delivered at the next start.");
            }
            lock(&stream.flushing).retain(|(id, _, _)| *id != flush_id);
            service.inner.inflight.fetch_sub(1, Ordering::SeqCst);
            stream.inflight.fetch_sub(1, Ordering::SeqCst);
            service.inner.idle.notify_waiters();
            stream.idle.notify_waiters();
        });
    }

    /// Delivers one buffer. With `replay`, re-runs a logged intent (its
    /// sequence number and schema) instead of logging a new one.
    ///
    /// A global flush permit is held only while encoding and while an
    /// object write is in progress, never while waiting to retry, so a
    /// failing partition does not hold up other partitions or streams.
    /// Write failures retrying cannot fix (an invalid path, a name the
    /// store refuses) send the object's records to the error prefix with
    /// the reason; other failures are retried with backoff until they
    /// succeed or shutdown gives up waiting (the records then stay in the
    /// write-ahead log for the next start).
    async fn run_flush(
        &self,
        stream: &Arc<Stream>,
        key: BufferKey,
        records: Vec<Buffered>,
        replay: Option<(u64, Option<FlushSchema>)>,
    ) {
        let started = Instant::now();
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return;
        };
        let (from, to) = (first.pos, last.pos);
        let count = records.len();
        let bytes: u64 = records.iter().map(|r| record_cost(r.data.len())).sum();
        let seqs: Vec<u64> = records.iter().map(|r| r.pos.seq).collect();
        let (intent_seq, fixed) = match replay {
            Some((seq, fixed)) => (Some(seq), fixed),
            None => (None, None),
        };
        let records = Arc::new(records);
        let encoded = {
            let Some(_permit) = self.permit().await else {
                return;
            };
            // A stream converting with a catalog table's schema (one the
            // user defined, not one ingest created) writes exactly those
            // columns; a replay writes with the schema its intent logged.
            let fixed = match fixed {
                Some(f) => Some(Ok(f)),
                None if !key.error => self.table_schema(stream).await.transpose(),
                None => None,
            };
            let running = lock(&stream.schema).clone();
            let job = {
                let stream = Arc::clone(stream);
                let key = key.clone();
                let records = Arc::clone(&records);
                move || {
                    let options = stream.plan.serde_options();
                    let conversion = match &fixed {
                        None => Conversion::Infer {
                            running: &running,
                            fixed: None,
                        },
                        Some(Ok(FlushSchema::Inferred(f))) => Conversion::Infer {
                            running: &running,
                            fixed: Some(f),
                        },
                        Some(Ok(FlushSchema::Table(t))) => Conversion::Table(t, &options),
                        Some(Err(reason)) => Conversion::Unusable(reason),
                    };
                    encode_buffer(&stream, &key, &records, conversion)
                }
            };
            let failure = match tokio::task::spawn_blocking(job).await {
                Ok(Ok(e)) => Ok(e),
                Ok(Err(e)) => Err(format!("the buffer could not be encoded: {e}")),
                Err(e) => Err(format!("encoding the buffer failed: {e}")),
            };
            match failure {
                Ok(encoded) => encoded,
                Err(reason) => {
                    tracing::error!(stream = %stream.name, prefix = %key.prefix, error = %reason, "Encoding a buffer failed; its records go to the error prefix.");
                    unencodable(&key, &records, reason)
                }
            }
        };
        let Ok(wal) = self.inner.wal() else { return };
        let intent_seq = match intent_seq {
            Some(seq) => seq,
            None => {
                let intent = FlushIntent {
                    stream_id: stream.id,
                    buffer: key.clone(),
                    from,
                    to,
                    count: count as u32,
                    schema: encoded.schema.as_ref().map(encode::schema_text),
                };
                let mut delay = RETRY_FIRST_DELAY;
                loop {
                    match wal.append(Entry::Intent(intent.clone())).await {
                        Ok(seq) => break seq,
                        Err(Error::WalClosed) => return,
                        Err(e) => {
                            tracing::error!(stream = %stream.name, error = %e, "Could not log a flush; retrying.");
                            if !self.backoff(&mut delay).await {
                                return;
                            }
                        }
                    }
                }
            }
        };
        let mut queue: std::collections::VecDeque<Output> = encoded.objects.into();
        let (mut delivered, mut failed) = (encoded.delivered, encoded.failed);
        let (mut objects, mut object_bytes, mut data_written) = (0u64, 0u64, false);
        while let Some(out) = queue.pop_front() {
            match self.write_object(&out).await {
                Written::Ok => {
                    objects += 1;
                    object_bytes += out.data.len() as u64;
                    data_written |= out.is_data;
                }
                Written::Abandoned => return,
                Written::Permanent(reason) => {
                    let n = out.members.len() as u64;
                    if out.is_data {
                        delivered = delivered.saturating_sub(n);
                        failed += n;
                    }
                    let next = redirect(stream, &records, &out, &reason);
                    if next.is_empty() {
                        tracing::error!(stream = %stream.name, records = n, error = %reason, "Error documents could not be written to any error folder; these records are dropped.");
                    } else {
                        tracing::error!(stream = %stream.name, records = n, error = %reason, "An object cannot be written; its records go to the error prefix.");
                    }
                    queue.extend(next);
                }
            }
        }
        if !key.error && data_written {
            match &encoded.schema {
                Some(FlushSchema::Inferred(schema)) => {
                    self.register(stream, &key.prefix, Some(schema)).await;
                }
                Some(FlushSchema::Table(_)) => self.register(stream, &key.prefix, None).await,
                None => {}
            }
        }
        if let Err(e) = wal.append(Entry::Done { intent_seq }).await {
            tracing::warn!(error = %e, "Could not log a flush completion; the next start rewrites the same objects.");
        }
        wal.release(seqs);
        self.inner.buffered.fetch_sub(bytes, Ordering::SeqCst);
        let m = &self.inner.metrics;
        m.buffer_bytes.set(self.buffered_bytes() as i64);
        m.records_delivered.inc_by(delivered);
        m.records_failed.inc_by(failed);
        m.objects_written.inc_by(objects);
        m.object_bytes_written.inc_by(object_bytes);
        m.flush_latency.observe(started.elapsed().as_secs_f64());
        tracing::debug!(stream = %stream.name, prefix = %key.prefix, records = count, objects, "Buffer delivered.");
        if let Some(FlushSchema::Inferred(schema)) = encoded.schema.filter(|_| data_written) {
            let changed = {
                let mut running = lock(&stream.schema);
                let merged = running.merge(&schema, "").unwrap_or(schema);
                let changed = *running != merged;
                *running = merged;
                changed
            };
            if changed {
                let def = {
                    let mut def = lock(&stream.def);
                    def.schema = Some(lock(&stream.schema).clone());
                    def.clone()
                };
                if !stream.deleting.load(Ordering::SeqCst)
                    && let Err(e) = self.save_definition(&def).await
                {
                    tracing::warn!(stream = %stream.name, error = %e, "Could not save the stream's schema.");
                }
            }
        }
    }

    /// A global flush permit, or `None` once shutdown gave up waiting.
    async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let mut abandon = self.inner.abandon.subscribe();
        if *abandon.borrow() {
            return None;
        }
        tokio::select! {
            permit = self.inner.permits.acquire() => permit.ok(),
            _ = abandon.wait_for(|a| *a) => None,
        }
    }

    /// Waits `delay` (then doubles it, up to [`RETRY_MAX_DELAY`]) holding
    /// no permit. `false` when shutdown gave up waiting meanwhile.
    async fn backoff(&self, delay: &mut Duration) -> bool {
        let mut abandon = self.inner.abandon.subscribe();
        if *abandon.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(*delay) => {}
            _ = abandon.wait_for(|a| *a) => return false,
        }
        *delay = (*delay * 2).min(RETRY_MAX_DELAY);
        !*abandon.borrow()
    }

    /// Writes one object, retrying transient failures with backoff.
    async fn write_object(&self, out: &Output) -> Written {
        let path = match &out.path {
            Ok(path) => path,
            Err(reason) => return Written::Permanent(reason.clone()),
        };
        let mut delay = RETRY_FIRST_DELAY;
        loop {
            let result = {
                let Some(_permit) = self.permit().await else {
                    return Written::Abandoned;
                };
                self.inner.storage.put_durable(path, out.data.clone()).await
            };
            match result {
                Ok(()) => return Written::Ok,
                Err(e) if e.is_permanent() => {
                    return Written::Permanent(format!("writing object {path} failed: {e}"));
                }
                Err(e) => {
                    self.inner.metrics.flush_retries.inc();
                    tracing::warn!(path = %path, error = %e, retry_in = ?delay, "Writing an object failed; retrying.");
                    if !self.backoff(&mut delay).await {
                        return Written::Abandoned;
                    }
                }
            }
        }
    }

    /// The schema of the catalog table a stream converts with: `None` when
    /// the stream infers (no table is named, the table does not exist yet,
    /// or ingest created it), an error saying why when the named table
    /// cannot be read or used (its records then go to the error prefix;
    /// a configured schema is never silently replaced).
    async fn table_schema(&self, stream: &Stream) -> Result<Option<FlushSchema>, String> {
        let (Some(catalog), Some((db, table))) = (&self.inner.catalog, &stream.plan.catalog_table)
        else {
            return Ok(None);
        };
        if !matches!(stream.plan.output, OutputFormat::Parquet(_)) {
            return Ok(None);
        }
        let table = match catalog.get_table(db, table).await {
            Ok(t) => t,
            Err(lakehose_catalog::CatalogError::NotFound(_)) => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "the catalog table {db}.{table} could not be read: {e}"
                ));
            }
        };
        if table.parameters.contains_key("lakehose.stream") {
            return Ok(None);
        }
        crate::register::table_columns(&table)
            .map(|t| Some(FlushSchema::Table(t)))
            .map_err(|e| format!("the catalog table {db}.{} cannot be used: {e}", table.name))
    }

    /// Refuses a stream whose `SchemaConfiguration` names an existing
    /// catalog table that records cannot be converted to (an unknown
    /// column type, no columns, a map with complex keys). A table that
    /// does not exist yet is created from the records when they arrive.
    async fn check_schema_table(&self, plan: &DeliveryPlan) -> Result<(), AwsError> {
        let (Some(catalog), Some((db, name))) = (&self.inner.catalog, &plan.catalog_table) else {
            return Ok(());
        };
        if !matches!(plan.output, OutputFormat::Parquet(_)) {
            return Ok(());
        }
        match catalog.get_table(db, name).await {
            Ok(table) if !table.parameters.contains_key("lakehose.stream") => {
                crate::register::table_columns(&table).map_err(|e| {
                    AwsError::client(
                        "InvalidArgumentException",
                        format!(
                            "DataFormatConversionConfiguration.SchemaConfiguration names table {db}.{name}, which cannot be used for conversion: {e}"
                        ),
                    )
                })?;
                Ok(())
            }
            Ok(_) | Err(lakehose_catalog::CatalogError::NotFound(_)) => Ok(()),
            Err(e) => Err(AwsError::internal(
                "ServiceUnavailableException",
                format!("the catalog table {db}.{name} could not be read: {e}"),
            )),
        }
    }

    /// Registers a delivered partition in the catalog, once per prefix and
    /// schema; failures are logged (the data is delivered either way, and a
    /// crawler can catalog it).
    async fn register(&self, stream: &Stream, prefix: &str, schema: Option<&JType>) {
        let (Some(catalog), Some((db, table))) = (&self.inner.catalog, &stream.plan.catalog_table)
        else {
            return;
        };
        {
            let registered = lock(&stream.registered);
            if registered.0.contains(prefix) && registered.1.as_ref() == schema {
                return;
            }
        }
        match crate::register::register_partition(
            catalog.as_ref(),
            &stream.name,
            (db, table),
            stream.plan.bucket.bucket(),
            prefix,
            schema,
        )
        .await
        {
            Ok(()) => {
                let mut registered = lock(&stream.registered);
                registered.0.insert(prefix.to_string());
                registered.1 = schema.cloned();
            }
            Err(e) => {
                tracing::warn!(stream = %stream.name, table = %format!("{db}.{table}"), prefix, error = %e, "Could not register a partition in the catalog.");
            }
        }
    }

    /// Delivers every buffer now and waits for all flushes to finish.
    pub async fn flush_all(&self) {
        let streams: Vec<Arc<Stream>> = self
            .inner
            .streams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for stream in &streams {
            self.flush_stream(stream, true).await;
        }
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.inflight.load(Ordering::SeqCst) == 0 {
                break;
            }
            idle.await;
        }
    }

    /// Graceful shutdown: refuses new records, delivers every buffer, and
    /// closes the write-ahead log, waiting at most
    /// [`DEFAULT_SHUTDOWN_TIMEOUT`] (see [`shutdown_within`](Self::shutdown_within)).
    pub async fn shutdown(&self) {
        self.shutdown_within(DEFAULT_SHUTDOWN_TIMEOUT).await;
    }

    /// Graceful shutdown bounded by `timeout`: refuses new records, delivers
    /// every buffer it can within `timeout`, then closes the write-ahead
    /// log. Flushes still failing then are given up: their records stay in
    /// the log (nothing acknowledged is lost) and are delivered on the next
    /// start. Returns whether everything was delivered.
    pub async fn shutdown_within(&self, timeout: Duration) -> bool {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let delivered = tokio::time::timeout(timeout, self.flush_all())
            .await
            .is_ok();
        if !delivered {
            let flushes = self.inner.inflight.load(Ordering::SeqCst);
            tracing::warn!(
                timeout_secs = timeout.as_secs_f64(),
                flushes,
                undelivered_bytes = self.buffered_bytes(),
                "Shutdown timed out before every buffer was delivered; the undelivered records stay in the write-ahead log and are delivered on the next start."
            );
            self.inner.abandon.send_replace(true);
            // Flushes waiting to retry stop at once; give one caught in a
            // write a moment to finish it.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    let idle = self.inner.idle.notified();
                    if self.inner.inflight.load(Ordering::SeqCst) == 0 {
                        break;
                    }
                    idle.await;
                }
            })
            .await;
        }
        if let Some(wal) = self.inner.wal.get() {
            let wal = wal.clone();
            let _ = tokio::task::spawn_blocking(move || wal.close()).await;
        }
        if delivered {
            tracing::info!("Ingest buffers flushed; write-ahead log closed.");
        } else {
            tracing::info!(
                "Write-ahead log closed with undelivered records kept for the next start."
            );
        }
        delivered
    }
}

/// Buffer space reserved by one request, released when dropped unless
/// handed over to the write-ahead log.
struct Admission<'a> {
    inner: &'a Inner,
    bytes: u64,
}

impl<'a> Admission<'a> {
    /// Reserves `bytes`, or refuses with `ServiceUnavailableException`
    /// when buffers are full (a request alone larger than the limit is
    /// let in when nothing else is buffered, so it is not refused forever).
    fn reserve(inner: &'a Inner, bytes: u64) -> Result<Self, AwsError> {
        let reserved = inner.buffered.fetch_add(bytes, Ordering::SeqCst) + bytes;
        let admission = Self { inner, bytes };
        if reserved > inner.config.max_buffer_bytes && reserved > bytes {
            drop(admission);
            inner.metrics.requests_throttled.inc();
            return Err(unavailable("buffers are full; slow down and retry"));
        }
        Ok(admission)
    }

    /// The reservation now belongs to the records' buffers; returns it.
    fn hand_over(mut self) -> u64 {
        std::mem::take(&mut self.bytes)
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.inner.buffered.fetch_sub(self.bytes, Ordering::SeqCst);
            self.inner
                .metrics
                .buffer_bytes
                .set(self.inner.buffered.load(Ordering::Relaxed) as i64);
        }
    }
}

/// Set when dropped.
#[derive(Default)]
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Routes a request's records. A record whose routing panics goes to the
/// error prefix with the reason; its neighbours are routed as usual. Stops
/// early once `stop` is set (the result is then discarded).
fn route_records(
    plan: &DeliveryPlan,
    records: Vec<std::result::Result<Bytes, Bytes>>,
    arrival: DateTime<Utc>,
    stop: &AtomicBool,
) -> Vec<WalRecord> {
    let seed = arrival.timestamp_millis() as u64;
    let mut cache = PrefixCache::default();
    records
        .into_iter()
        .enumerate()
        .take_while(|_| !stop.load(Ordering::Relaxed))
        .map(|(i, r)| match r {
            Ok(data) => {
                let routed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    plan.route(data.clone(), arrival, seed ^ i as u64, &mut cache)
                }));
                routed.unwrap_or_else(|_| {
                    cache = PrefixCache::default();
                    plan.error_record(
                        data,
                        arrival,
                        seed,
                        RecordError {
                            output_type: "processing-failed".into(),
                            code: "InternalFailure".into(),
                            message: "routing this record failed unexpectedly (an internal error of lakehose, logged); the record is kept here".into(),
                        },
                    )
                })
            }
            Err(raw) => plan.error_record(
                raw,
                arrival,
                seed,
                RecordError {
                    output_type: "processing-failed".into(),
                    code: "Invalid.Base64".into(),
                    message: "record Data is not valid base64".into(),
                },
            ),
        })
        .collect()
}

fn unavailable(message: &str) -> AwsError {
    AwsError::client("ServiceUnavailableException", message)
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
}

fn rand_id() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 | 1
}

/// `DeliveryStreamName`: 1–64 of `[a-zA-Z0-9_.-]`.
pub(crate) fn validate_stream_name(name: &str) -> Result<(), AwsError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AwsError::client(
            "InvalidArgumentException",
            format!(
                "DeliveryStreamName {name:?} must be 1 to 64 characters of a-z, A-Z, 0-9, '_', '.', '-'"
            ),
        ))
    }
}

fn object_time(ms: i64) -> String {
    let t: DateTime<Utc> = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    t.format("%Y-%m-%d-%H-%M-%S").to_string()
}

/// The name every object of a flush starts with; it derives from the
/// buffer's first write-ahead-log position, so a replay rewrites (rather
/// than duplicates) the same objects.
///
/// With several nodes, the node's id keeps apart the objects of nodes
/// whose log positions are the same.
fn object_name(stream: &Stream, records: &[Buffered]) -> String {
    let version = lock(&stream.def).version_id;
    let first = &records[0];
    let oldest = records
        .iter()
        .map(|r| r.arrival_ms)
        .min()
        .unwrap_or(first.arrival_ms);
    let node = stream
        .node
        .as_deref()
        .map(|n| format!("{n}-"))
        .unwrap_or_default();
    format!(
        "{}-{}-{}-{node}{:016x}-{:08x}",
        stream.name,
        version,
        object_time(oldest),
        first.pos.seq,
        first.pos.idx
    )
}

/// The path of object `name` under `prefix`, or why it is not a valid key.
fn object_path(
    plan: &DeliveryPlan,
    prefix: &str,
    name: &str,
) -> std::result::Result<ObjectPath, String> {
    plan.bucket
        .join(&format!("{prefix}{name}"))
        .map(|loc| loc.object_path())
        .map_err(|e| format!("no object can be written under prefix {prefix:?}: {e}"))
}

/// Encodes one buffer into its objects (CPU work, blocking pool).
fn encode_buffer(
    stream: &Stream,
    key: &BufferKey,
    records: &[Buffered],
    conversion: Conversion<'_>,
) -> Result<Encoded> {
    let plan = &stream.plan;
    let name = object_name(stream, records);
    if key.error {
        let members: Vec<(usize, Option<RecordError>)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.error.clone().map(|e| (i, Some(e))))
            .collect();
        let body = error_body(stream, records, &members);
        let failed = members.len() as u64;
        return Ok(Encoded {
            objects: vec![Output {
                path: object_path(plan, &key.prefix, &name),
                data: body,
                members,
                is_data: false,
                depth: 0,
                tag: "0".into(),
            }],
            schema: None,
            delivered: 0,
            failed,
        });
    }
    let data: Vec<Bytes> = records.iter().map(|r| r.data.clone()).collect();
    let data_name = format!("{name}{}", plan.extension);
    match plan.output {
        OutputFormat::Json(compression) => Ok(Encoded {
            objects: vec![Output {
                path: object_path(plan, &key.prefix, &data_name),
                data: encode::encode_json_lines(&data, compression)?,
                members: (0..records.len()).map(|i| (i, None)).collect(),
                is_data: true,
                depth: 0,
                tag: "0".into(),
            }],
            schema: None,
            delivered: records.len() as u64,
            failed: 0,
        }),
        OutputFormat::Parquet(compression) => {
            let out = encode::encode_parquet(
                &data,
                conversion,
                KeyOptions {
                    lowercase: plan.lowercase_keys,
                    dots_to_underscores: plan.dots_to_underscores,
                },
                compression,
            )?;
            let mut objects = Vec::new();
            if let Some(bytes) = out.bytes {
                let failed: HashSet<usize> = out.failed.iter().map(|(i, _)| *i).collect();
                objects.push(Output {
                    path: object_path(plan, &key.prefix, &data_name),
                    data: bytes,
                    members: (0..records.len())
                        .filter(|i| !failed.contains(i))
                        .map(|i| (i, None))
                        .collect(),
                    is_data: true,
                    depth: 0,
                    tag: "0".into(),
                });
            }
            // Conversion failures go to the error prefix, grouped by its
            // rendering (which depends on each record's arrival time).
            let mut groups: BTreeMap<String, Vec<(usize, Option<RecordError>)>> = BTreeMap::new();
            for (i, err) in &out.failed {
                let r = &records[*i];
                let prefix = plan.render_error_prefix(
                    &err.output_type,
                    Utc.timestamp_millis_opt(r.arrival_ms)
                        .single()
                        .unwrap_or_default(),
                    r.pos.seq ^ u64::from(r.pos.idx),
                );
                groups
                    .entry(prefix)
                    .or_default()
                    .push((*i, Some(err.clone())));
            }
            for (n, (prefix, members)) in groups.into_iter().enumerate() {
                objects.push(Output {
                    path: object_path(plan, &prefix, &name),
                    data: error_body(stream, records, &members),
                    members,
                    is_data: false,
                    depth: 0,
                    tag: format!("c{n}"),
                });
            }
            Ok(Encoded {
                objects,
                schema: out.schema,
                delivered: out.rows as u64,
                failed: out.failed.len() as u64,
            })
        }
    }
}

/// What a flush writes when its buffer cannot be encoded at all: every
/// record goes to the error prefix with `reason`.
fn unencodable(key: &BufferKey, records: &[Buffered], reason: String) -> Encoded {
    Encoded {
        objects: vec![Output {
            path: Err(reason),
            data: Bytes::new(),
            members: records
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.error.clone()))
                .collect(),
            is_data: !key.error,
            depth: 0,
            tag: "e".into(),
        }],
        schema: None,
        delivered: if key.error { 0 } else { records.len() as u64 },
        failed: if key.error { records.len() as u64 } else { 0 },
    }
}

/// The error documents of `members` (Firehose's error output shape).
fn error_body(
    stream: &Stream,
    records: &[Buffered],
    members: &[(usize, Option<RecordError>)],
) -> Bytes {
    let items: Vec<(&Buffered, &RecordError)> = members
        .iter()
        .filter_map(|(i, e)| Some((&records[*i], e.as_ref()?)))
        .collect();
    encode::encode_errors(&stream.name, &error_docs(&items))
}

/// The objects that take the records of `failed`, an object that cannot be
/// written for `reason`: data records go to the stream's error prefix with
/// that reason; error documents that cannot be written where their prefix
/// says go to the fixed folder `<error output type>/` of the bucket. Empty
/// when even that failed.
fn redirect(stream: &Stream, records: &[Buffered], failed: &Output, reason: &str) -> Vec<Output> {
    let plan = &stream.plan;
    let depth = if failed.is_data && failed.depth == 0 {
        1
    } else {
        2
    };
    if failed.depth >= 2 || records.is_empty() {
        return Vec::new();
    }
    let name = object_name(stream, records);
    let mut groups: BTreeMap<String, Vec<(usize, Option<RecordError>)>> = BTreeMap::new();
    for (i, error) in &failed.members {
        let r = &records[*i];
        let error = match error {
            Some(e) => RecordError {
                output_type: e.output_type.clone(),
                code: e.code.clone(),
                message: format!(
                    "{}; then its error document could not be written where the error prefix says: {reason}",
                    e.message
                ),
            },
            None => RecordError {
                output_type: "processing-failed".into(),
                code: PERMANENT_WRITE_FAILURE.into(),
                message: reason.to_string(),
            },
        };
        let prefix = if depth == 1 {
            plan.render_error_prefix(
                &error.output_type,
                Utc.timestamp_millis_opt(r.arrival_ms)
                    .single()
                    .unwrap_or_default(),
                r.pos.seq ^ u64::from(r.pos.idx),
            )
        } else {
            format!("{}/", error.output_type)
        };
        groups.entry(prefix).or_default().push((*i, Some(error)));
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(n, (prefix, members))| {
            let tag = format!("{}.{n}", failed.tag);
            Output {
                path: object_path(plan, &prefix, &format!("{name}-undeliverable-{tag}")),
                data: error_body(stream, records, &members),
                members,
                is_data: false,
                depth,
                tag,
            }
        })
        .collect()
}

fn error_docs<'a>(items: &[(&'a Buffered, &'a RecordError)]) -> Vec<ErrorDocument<'a>> {
    items
        .iter()
        .map(|(r, e)| ErrorDocument {
            data: &r.data,
            error: e,
            arrival_ms: r.arrival_ms,
            record_id: record_id(r.pos),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admission_is_released_when_a_request_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path().join("data")).unwrap();
        let service = IngestService::open(IngestConfig::new(dir.path().join("wal")), storage, None)
            .await
            .unwrap();
        let dest: S3Destination = serde_json::from_value(serde_json::json!({
            "BucketARN": "arn:aws:s3:::lake",
            "Prefix": "logs/s=!{partitionKeyFromQuery:s}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "DynamicPartitioningConfiguration": {"Enabled": true},
            "ProcessingConfiguration": {"Processors": [{"Type": "MetadataExtraction", "Parameters": [
                {"ParameterName": "MetadataExtractionQuery",
                 "ParameterValue": "{s: .s, n: ([range(20000)] | length)}"}]}]}
        }))
        .unwrap();
        service.create_stream("slow", None, dest).await.unwrap();
        // Distinct records, so none reuses another's keys: routing takes a
        // while, and the request is dropped meanwhile (a client gone).
        let records: Vec<std::result::Result<Bytes, Bytes>> = (0..300)
            .map(|i| Ok(Bytes::from(format!(r#"{{"s":"{i}"}}"#))))
            .collect();
        let put = service.put_records("slow", records);
        let dropped = tokio::time::timeout(Duration::from_millis(20), put).await;
        assert!(
            dropped.is_err(),
            "the request finished before it was dropped"
        );
        assert_eq!(service.buffered_bytes(), 0);
        // Accepted records count their overhead until delivered.
        let accepted = service
            .put_records("slow", vec![Ok(Bytes::from_static(br#"{"s":"a"}"#))])
            .await
            .unwrap();
        assert_eq!(accepted.len(), 1);
        assert_eq!(service.buffered_bytes(), record_cost(9));
        service.flush_all().await;
        assert_eq!(service.buffered_bytes(), 0);
        service.shutdown().await;
    }

    #[test]
    fn record_ids_are_positions_in_hex() {
        let id = record_id(Pos {
            seq: 0x1234_abcd,
            idx: 499,
        });
        assert_eq!(id, format!("{:016x}{:08x}", 0x1234_abcdu64, 499u32));
        assert_eq!(id.len(), 24);
    }
}
