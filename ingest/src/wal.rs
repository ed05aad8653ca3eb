//! The ingest write-ahead log.
//!
//! Every acknowledged record is first appended here and fsynced. Appends are
//! group-committed: one writer thread takes everything queued since its last
//! fsync, writes it with one `write`, fsyncs once and only then answers every
//! waiting request, in log order. After the fsync it hands each entry to a
//! [`DurableSink`] in log order, which is how the buffers receive records in
//! exactly the order of their positions.
//!
//! ```text
//! append() ─┐
//! append() ─┼─▶ channel ─▶ writer thread: write all ─▶ fsync ─▶ sink.durable(seq, entry) ─▶ reply
//! append() ─┘
//! ```
//!
//! On disk the log is a folder of segments named after the sequence number of
//! their first entry. Each entry is `[len u32][crc32 u32][kind u8][seq u64][payload]`.
//! A torn tail (a crash mid-write) is detected by length and checksum and cut
//! off on open; it was never acknowledged.
//!
//! The log fails closed: when a write or fsync fails (a full disk, EIO)
//! the requests of that group get the error (they were not acknowledged),
//! and the segment is truncated back to its last good entry before anything
//! else is appended. Until that truncation succeeds every append is
//! refused; the log never rotates past a torn segment nor writes after
//! garbage. File operations go through a [`FileLayer`], so tests can inject
//! faults.
//!
//! Besides records the log holds flush intents and flush completions, which
//! make delivery exactly-once across crashes (see `service.rs`). A segment is
//! deleted once every record in it has been delivered: callers
//! [`retain`](Wal::retain) records when they are buffered and
//! [`release`](Wal::release) them when their object is written.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Default size at which a segment is closed and a new one started.
pub(crate) const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Largest group written with one fsync.
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// Largest log entry (its body, after the 8-byte header), in bytes. The
/// length field is a `u32`; an append above this is refused with
/// [`Error::WalEntryTooLarge`], and a header claiming more is read as a torn
/// tail.
pub(crate) const MAX_ENTRY_BYTES: usize = 1 << 30;

const KIND_RECORDS: u8 = 1;
const KIND_INTENT: u8 = 2;
const KIND_DONE: u8 = 3;
const HEADER: usize = 8;

/// The position of one record: the sequence number of its log entry and its
/// index inside that entry. Positions are totally ordered in log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pos {
    /// Sequence number of the log entry.
    pub seq: u64,
    /// Index of the record inside the entry.
    pub idx: u32,
}

/// Why a record cannot be delivered as data; it goes to the error prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    /// Firehose's error output type, e.g. `processing-failed`.
    pub output_type: String,
    /// A short error code, e.g. `Invalid.JSON`.
    pub code: String,
    /// A readable message naming what was wrong.
    pub message: String,
}

/// One record as logged: the buffer (evaluated prefix) it belongs to, or the
/// reason it failed, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// The evaluated S3 prefix of the record's buffer (data or error prefix).
    pub prefix: String,
    /// Set when the record goes to the error prefix.
    pub error: Option<RecordError>,
    /// The record's bytes (for an undecodable record, the raw input).
    pub data: Bytes,
}

/// A batch of records accepted by one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsEntry {
    /// The stream's internal id (not its name: a re-created stream is new).
    pub stream_id: u64,
    /// Arrival time, epoch milliseconds.
    pub arrival_ms: i64,
    /// The records.
    pub records: Vec<WalRecord>,
}

/// Identifies one buffer of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BufferKey {
    /// The evaluated prefix.
    pub prefix: String,
    /// Whether this buffer holds error records.
    pub error: bool,
}

/// Logged (and fsynced) before a flush writes any object. It names exactly
/// which records the flush delivers: every record of `buffer` with a
/// position in `from..=to`. Replaying an intent rewrites the same objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushIntent {
    /// Stream id.
    pub stream_id: u64,
    /// The buffer flushed.
    pub buffer: BufferKey,
    /// First position delivered.
    pub from: Pos,
    /// Last position delivered.
    pub to: Pos,
    /// Number of records delivered.
    pub count: u32,
    /// The Arrow schema (JSON) the data file is written with, if Parquet.
    pub schema: Option<String>,
}

/// A log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Accepted records.
    Records(RecordsEntry),
    /// A flush is about to write objects.
    Intent(FlushIntent),
    /// The flush logged at `intent_seq` has written all its objects.
    Done {
        /// Sequence number of the intent entry.
        intent_seq: u64,
    },
}

impl Entry {
    fn kind(&self) -> u8 {
        match self {
            Entry::Records(_) => KIND_RECORDS,
            Entry::Intent(_) => KIND_INTENT,
            Entry::Done { .. } => KIND_DONE,
        }
    }

    fn record_count(&self) -> u64 {
        match self {
            Entry::Records(r) => r.records.len() as u64,
            _ => 0,
        }
    }

    fn approx_len(&self) -> usize {
        match self {
            Entry::Records(r) => r
                .records
                .iter()
                .map(|rec| rec.data.len() + rec.prefix.len() + 16)
                .sum(),
            _ => 256,
        }
    }

    /// Appends the entry's bytes to `out`; when its body would be larger
    /// than `max` (at most [`MAX_ENTRY_BYTES`]), leaves `out` as it was and
    /// returns the size.
    fn encode_into(
        &self,
        seq: u64,
        out: &mut BytesMut,
        max: usize,
    ) -> std::result::Result<(), usize> {
        let start = out.len();
        out.put_u32_le(0);
        out.put_u32_le(0);
        out.put_u8(self.kind());
        out.put_u64_le(seq);
        match self {
            Entry::Records(r) => {
                out.put_u64_le(r.stream_id);
                out.put_i64_le(r.arrival_ms);
                out.put_u32_le(r.records.len() as u32);
                for rec in &r.records {
                    out.put_u8(u8::from(rec.error.is_some()));
                    put_str(out, &rec.prefix);
                    if let Some(err) = &rec.error {
                        put_str(out, &err.output_type);
                        put_str(out, &err.code);
                        put_str(out, &err.message);
                    }
                    out.put_u32_le(rec.data.len() as u32);
                    out.put_slice(&rec.data);
                }
            }
            Entry::Intent(intent) => {
                // Serialising a plain struct of strings and numbers cannot fail.
                let json = serde_json::to_vec(intent).unwrap_or_default();
                out.put_slice(&json);
            }
            Entry::Done { intent_seq } => out.put_u64_le(*intent_seq),
        }
        let body_len = out.len() - start - HEADER;
        let Some(len_field) = u32::try_from(body_len)
            .ok()
            .filter(|_| body_len <= max.min(MAX_ENTRY_BYTES))
        else {
            out.truncate(start);
            return Err(body_len);
        };
        let crc = crc32fast::hash(&out[start + HEADER..]);
        out[start..start + 4].copy_from_slice(&len_field.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    fn decode(mut body: Bytes) -> Option<(u64, Entry)> {
        if body.remaining() < 9 {
            return None;
        }
        let kind = body.get_u8();
        let seq = body.get_u64_le();
        let entry = match kind {
            KIND_RECORDS => {
                if body.remaining() < 20 {
                    return None;
                }
                let stream_id = body.get_u64_le();
                let arrival_ms = body.get_i64_le();
                let n = body.get_u32_le() as usize;
                let mut records = Vec::with_capacity(n.min(10_000));
                for _ in 0..n {
                    if body.remaining() < 1 {
                        return None;
                    }
                    let is_error = body.get_u8() == 1;
                    let prefix = get_str(&mut body)?;
                    let error = if is_error {
                        Some(RecordError {
                            output_type: get_str(&mut body)?,
                            code: get_str(&mut body)?,
                            message: get_str(&mut body)?,
                        })
                    } else {
                        None
                    };
                    if body.remaining() < 4 {
                        return None;
                    }
                    let len = body.get_u32_le() as usize;
                    if body.remaining() < len {
                        return None;
                    }
                    let data = body.split_to(len);
                    records.push(WalRecord {
                        prefix,
                        error,
                        data,
                    });
                }
                Entry::Records(RecordsEntry {
                    stream_id,
                    arrival_ms,
                    records,
                })
            }
            KIND_INTENT => Entry::Intent(serde_json::from_slice(&body).ok()?),
            KIND_DONE => {
                if body.remaining() < 8 {
                    return None;
                }
                Entry::Done {
                    intent_seq: body.get_u64_le(),
                }
            }
            _ => return None,
        };
        Some((seq, entry))
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32_le(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn get_str(body: &mut Bytes) -> Option<String> {
    if body.remaining() < 4 {
        return None;
    }
    let len = body.get_u32_le() as usize;
    if body.remaining() < len {
        return None;
    }
    String::from_utf8(body.split_to(len).to_vec()).ok()
}

/// Receives every entry after it is durable, in log order, on the writer
/// thread. Implementations must be quick and must not block on the log.
pub(crate) trait DurableSink: Send + Sync + 'static {
    /// Called once per entry, after the fsync that made it durable.
    fn durable(&self, seq: u64, entry: Entry);
}

/// One open segment, as the writer uses it.
pub trait SegmentFile: Send {
    /// Appends all of `buf` at the end of the file.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()>;
    /// Makes everything written durable (`fdatasync`).
    fn sync_data(&mut self) -> std::io::Result<()>;
    /// Cuts the file to `len` bytes and makes that durable.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
}

/// How the log opens segments: the real file system, or a test double
/// that injects faults.
pub trait FileLayer: Send + Sync + std::fmt::Debug {
    /// Opens `path` for appending, creating it if missing.
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RealFiles;

impl SegmentFile for File {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        Write::write_all(self, buf)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        File::sync_data(self)
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)?;
        self.sync_all()
    }
}

impl FileLayer for RealFiles {
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(file))
    }
}

/// The real file system, shared.
pub(crate) fn real_files() -> Arc<dyn FileLayer> {
    Arc::new(RealFiles)
}

/// A [`FileLayer`] over the real file system that fails on purpose: the
/// `n`th write (1-based, counted over every segment) writes only half its
/// bytes and then fails, and the `n`th `fsync` fails after the data
/// reached the file. For fault-injection tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct FaultyFiles {
    writes: std::sync::atomic::AtomicU64,
    syncs: std::sync::atomic::AtomicU64,
    truncates: std::sync::atomic::AtomicU64,
    /// Writes that fail (their numbers).
    pub fail_writes: Mutex<Vec<u64>>,
    /// Fsyncs that fail (their numbers).
    pub fail_syncs: Mutex<Vec<u64>>,
    /// Truncations (repairs) that fail (their numbers).
    pub fail_truncates: Mutex<Vec<u64>>,
}

#[cfg(test)]
impl FaultyFiles {
    /// Fails the `n`th write (counting from 1).
    pub(crate) fn fail_write(&self, n: u64) {
        self.fail_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(n);
    }
    /// Fails the `n`th fsync (counting from 1).
    pub(crate) fn fail_sync(&self, n: u64) {
        self.fail_syncs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(n);
    }
    /// Fails the `n`th truncation (counting from 1).
    pub(crate) fn fail_truncate(&self, n: u64) {
        self.fail_truncates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(n);
    }
    /// Writes attempted so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
struct FaultyFile {
    file: File,
    layer: Arc<FaultyFiles>,
}

#[cfg(test)]
fn injected(what: &str) -> std::io::Error {
    std::io::Error::other(format!("injected fault: {what} failed"))
}

#[cfg(test)]
/// Counts one more call and tells whether it is one chosen to fail.
fn is_chosen(calls: &std::sync::atomic::AtomicU64, chosen: &Mutex<Vec<u64>>) -> bool {
    let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    chosen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&n)
}

#[cfg(test)]
impl SegmentFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if is_chosen(&self.layer.writes, &self.layer.fail_writes) {
            // A torn write: part of the bytes reach the file.
            Write::write_all(&mut self.file, &buf[..buf.len() / 2])?;
            return Err(injected("write"));
        }
        Write::write_all(&mut self.file, buf)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        if is_chosen(&self.layer.syncs, &self.layer.fail_syncs) {
            return Err(injected("fsync"));
        }
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        if is_chosen(&self.layer.truncates, &self.layer.fail_truncates) {
            return Err(injected("truncate"));
        }
        SegmentFile::truncate(&mut self.file, len)
    }
}

/// Shares a [`FaultyFiles`] as the log's file layer.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct SharedFaultyFiles(pub Arc<FaultyFiles>);

#[cfg(test)]
impl FileLayer for SharedFaultyFiles {
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(FaultyFile {
            file,
            layer: Arc::clone(&self.0),
        }))
    }
}

/// Settings of the log.
#[derive(Debug, Clone)]
pub(crate) struct WalOptions {
    /// Folder of the segments.
    pub dir: PathBuf,
    /// Segment size at which a new segment starts.
    pub segment_bytes: u64,
    /// Counts fsyncs (one per group commit).
    pub fsyncs: prometheus_client::metrics::counter::Counter,
    /// Counts entries written; entries per fsync is the group size.
    pub entries: prometheus_client::metrics::counter::Counter,
    /// How segments are opened ([`real_files`] outside fault tests).
    pub files: Arc<dyn FileLayer>,
    /// Largest entry body accepted, in bytes (at most [`MAX_ENTRY_BYTES`]).
    pub max_entry_bytes: usize,
}

struct Request {
    entry: Entry,
    reply: oneshot::Sender<Result<u64>>,
}

enum Msg {
    Append(Request),
    Close,
}

/// Live (undelivered) record counts per segment, keyed by the segment's
/// first sequence number.
#[derive(Default)]
struct Live {
    segments: BTreeMap<u64, u64>,
}

impl Live {
    fn segment_of(&self, seq: u64) -> Option<u64> {
        self.segments.range(..=seq).next_back().map(|(k, _)| *k)
    }
}

/// The write-ahead log. Cloning shares the same log.
#[derive(Clone)]
pub(crate) struct Wal {
    tx: mpsc::UnboundedSender<Msg>,
    live: Arc<Mutex<Live>>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// What [`Wal::open`] found on disk, in log order.
pub(crate) struct Replay {
    /// Every intact entry with its sequence number.
    pub entries: Vec<(u64, Entry)>,
}

/// An opened log that is not yet accepting appends.
pub(crate) struct OpenedWal {
    opts: WalOptions,
    next_seq: u64,
    live: Live,
    lock: File,
}

impl OpenedWal {
    /// Marks `count` records of entry `seq` (found by replay) as not yet
    /// delivered, so their segment is kept.
    pub fn retain(&mut self, seq: u64, count: u64) {
        if let Some(seg) = self.live.segment_of(seq) {
            *self.live.segments.entry(seg).or_default() += count;
        }
    }

    /// Starts the writer thread; entries are handed to `sink` once durable.
    pub fn start(self, sink: Arc<dyn DurableSink>) -> Result<Wal> {
        let OpenedWal {
            opts,
            next_seq,
            mut live,
            lock,
        } = self;
        let (file, path) = create_segment(opts.files.as_ref(), &opts.dir, next_seq)?;
        live.segments.insert(next_seq, 0);
        let live = Arc::new(Mutex::new(live));
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            opts,
            file,
            path,
            segment_start: next_seq,
            written: 0,
            next_seq,
            live: Arc::clone(&live),
            sink,
            broken: None,
            _lock: lock,
        };
        let thread = std::thread::Builder::new()
            .name("lakehose-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| Error::Io {
                path: PathBuf::from("<wal thread>"),
                source,
            })?;
        // Delete segments that replay found fully delivered.
        Ok(Wal {
            tx,
            live,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `opts.dir` and reads every
    /// intact entry. A torn tail in the newest segment is cut off.
    pub fn open(opts: WalOptions) -> Result<(OpenedWal, Replay)> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(&opts.dir).map_err(io(&opts.dir))?;
        // One process per log: a second one would interleave writes.
        let lock_path = opts.dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::WalLocked {
                    path: opts.dir.clone(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
                    path: lock_path,
                    source,
                });
            }
        }
        let mut segments: Vec<(u64, PathBuf)> = Vec::new();
        for item in std::fs::read_dir(&opts.dir).map_err(io(&opts.dir))? {
            let item = item.map_err(io(&opts.dir))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if let Some(num) = name.strip_suffix(".wal")
                && let Ok(first) = num.parse::<u64>()
            {
                segments.push((first, item.path()));
            }
        }
        segments.sort();
        let mut entries = Vec::new();
        let mut live = Live::default();
        let mut next_seq = 1;
        let count = segments.len();
        for (i, (first, path)) in segments.iter().enumerate() {
            live.segments.insert(*first, 0);
            let data = Bytes::from(std::fs::read(path).map_err(io(path))?);
            let mut offset = 0usize;
            let mut torn = false;
            while offset < data.len() {
                match read_entry(&data, offset) {
                    Some((len, seq, entry)) => {
                        next_seq = next_seq.max(seq + 1);
                        entries.push((seq, entry));
                        offset += len;
                    }
                    None => {
                        torn = true;
                        break;
                    }
                }
            }
            if torn {
                if i + 1 == count {
                    tracing::warn!(
                        path = %path.display(),
                        offset,
                        "Cutting a torn tail off the write-ahead log; it was never acknowledged."
                    );
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(io(path))?;
                    file.set_len(offset as u64).map_err(io(path))?;
                    file.sync_all().map_err(io(path))?;
                } else {
                    return Err(Error::WalCorrupt {
                        path: path.clone(),
                        offset: offset as u64,
                    });
                }
            }
        }
        Ok((
            OpenedWal {
                opts,
                next_seq,
                live,
                lock,
            },
            Replay { entries },
        ))
    }

    /// Appends an entry and waits until it is durable. Returns its sequence
    /// number.
    pub async fn append(&self, entry: Entry) -> Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Append(Request { entry, reply }))
            .map_err(|_| Error::WalClosed)?;
        rx.await.map_err(|_| Error::WalClosed)?
    }

    /// Marks records as delivered: `seqs` holds one sequence number per
    /// record. Segments whose records are all delivered are deleted by the
    /// writer.
    pub fn release(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        for seq in seqs {
            if let Some(seg) = live.segment_of(seq)
                && let Some(n) = live.segments.get_mut(&seg)
            {
                *n = n.saturating_sub(1);
            }
        }
    }

    #[cfg(test)]
    /// Number of segment files currently kept.
    pub(crate) fn segment_count(&self) -> usize {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .segments
            .len()
    }

    /// Stops accepting appends and waits for the writer to finish what was
    /// queued.
    pub fn close(&self) {
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = self.tx.send(Msg::Close);
            drop(handle.join());
        }
    }
}

fn read_entry(data: &Bytes, offset: usize) -> Option<(usize, u64, Entry)> {
    let rest = &data[offset..];
    if rest.len() < HEADER {
        return None;
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().ok()?);
    if len > MAX_ENTRY_BYTES || rest.len() < HEADER + len {
        return None;
    }
    let body = data.slice(offset + HEADER..offset + HEADER + len);
    if crc32fast::hash(&body) != crc {
        return None;
    }
    let (seq, entry) = Entry::decode(body)?;
    Some((HEADER + len, seq, entry))
}

fn create_segment(
    files: &dyn FileLayer,
    dir: &Path,
    first_seq: u64,
) -> Result<(Box<dyn SegmentFile>, PathBuf)> {
    let path = dir.join(format!("{first_seq:020}.wal"));
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let file = files.open_append(&path).map_err(io)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok((file, path))
}

struct Writer {
    opts: WalOptions,
    file: Box<dyn SegmentFile>,
    path: PathBuf,
    segment_start: u64,
    written: u64,
    next_seq: u64,
    live: Arc<Mutex<Live>>,
    sink: Arc<dyn DurableSink>,
    /// Set after a failed write or fsync until the segment is cut back to
    /// its last good entry: why appends are refused.
    broken: Option<String>,
    /// Held while the writer runs: one process per log.
    _lock: File,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut buf = BytesMut::with_capacity(1024 * 1024);
        let mut closing = false;
        while !closing {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut group = Vec::new();
            let mut bytes = 0usize;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append(req) => {
                        bytes += req.entry.approx_len();
                        group.push(req);
                    }
                    // Everything queued before the close is still committed.
                    Msg::Close => closing = true,
                }
                if bytes < MAX_GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit(&mut buf, group);
            }
        }
        let _ = self.file.sync_data();
    }

    /// Cuts the segment back to its last good entry (what was written
    /// before the failed group) and reopens it. Clears `broken` on success.
    fn repair(&mut self) {
        let result = self.file.truncate(self.written).and_then(|()| {
            self.file = self.opts.files.open_append(&self.path)?;
            Ok(())
        });
        match result {
            Ok(()) => {
                tracing::warn!(path = %self.path.display(), length = self.written, "Write-ahead log segment cut back to its last good entry; appends resume.");
                self.broken = None;
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "Could not cut the write-ahead log back to its last good entry; appends are refused until it can be.");
            }
        }
    }

    fn refuse(&self, group: Vec<Request>, reason: &str) {
        for req in group {
            let _ = req.reply.send(Err(Error::WalUnavailable {
                path: self.path.clone(),
                reason: reason.to_string(),
            }));
        }
    }

    fn commit(&mut self, buf: &mut BytesMut, group: Vec<Request>) {
        if self.broken.is_some() {
            self.repair();
        }
        if let Some(reason) = &self.broken {
            let reason = format!(
                "a write failed earlier ({reason}) and the log could not be cut back to its last good entry"
            );
            self.refuse(group, &reason);
            return;
        }
        buf.clear();
        let first_seq = self.next_seq;
        let mut seqs = Vec::with_capacity(group.len());
        let mut accepted = Vec::with_capacity(group.len());
        let mut records = 0u64;
        for req in group {
            match req
                .entry
                .encode_into(self.next_seq, buf, self.opts.max_entry_bytes)
            {
                Ok(()) => {
                    seqs.push(self.next_seq);
                    self.next_seq += 1;
                    records += req.entry.record_count();
                    accepted.push(req);
                }
                Err(bytes) => {
                    let _ = req.reply.send(Err(Error::WalEntryTooLarge {
                        bytes: bytes as u64,
                        max: self.opts.max_entry_bytes.min(MAX_ENTRY_BYTES) as u64,
                    }));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        let group = accepted;
        let result = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = result {
            tracing::error!(path = %self.path.display(), error = %source, "Write-ahead log write failed; the requests of this group are refused.");
            let msg = source.to_string();
            for req in group {
                let _ = req.reply.send(Err(Error::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(msg.clone()),
                }));
            }
            // The tail may be torn: cut it off before anything else is
            // appended (never rotate past it, never write after it).
            self.next_seq = first_seq;
            self.broken = Some(msg);
            self.repair();
            return;
        }
        self.written += buf.len() as u64;
        self.opts.fsyncs.inc();
        self.opts.entries.inc_by(seqs.len() as u64);
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            *live.segments.entry(self.segment_start).or_default() += records;
        }
        if self.written >= self.opts.segment_bytes {
            self.rotate();
        }
        for (req, seq) in group.into_iter().zip(seqs) {
            self.sink.durable(seq, req.entry);
            let _ = req.reply.send(Ok(seq));
        }
        self.delete_delivered();
    }

    fn rotate(&mut self) {
        match create_segment(self.opts.files.as_ref(), &self.opts.dir, self.next_seq) {
            Ok((file, path)) => {
                self.file = file;
                self.path = path;
                self.segment_start = self.next_seq;
                self.written = 0;
                let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                live.segments.insert(self.segment_start, 0);
            }
            Err(e) => {
                tracing::error!(error = %e, "Could not start a new write-ahead log segment.");
            }
        }
    }

    /// Deletes the oldest segments while every record in them is delivered.
    fn delete_delivered(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((&first, &n)) = live.segments.iter().next() {
            if n > 0 || first == self.segment_start {
                break;
            }
            let path = self.opts.dir.join(format!("{first:020}.wal"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "Could not delete a delivered write-ahead log segment.");
                    break;
                }
            }
            live.segments.remove(&first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Mutex<Vec<(u64, Entry)>>);
    impl DurableSink for Collect {
        fn durable(&self, seq: u64, entry: Entry) {
            self.0.lock().unwrap().push((seq, entry));
        }
    }

    fn records(stream_id: u64, n: usize) -> Entry {
        Entry::Records(RecordsEntry {
            stream_id,
            arrival_ms: 1_700_000_000_000,
            records: (0..n)
                .map(|i| WalRecord {
                    prefix: format!("p/{i}/"),
                    error: (i % 3 == 0).then(|| RecordError {
                        output_type: "processing-failed".into(),
                        code: "Invalid.JSON".into(),
                        message: "bad".into(),
                    }),
                    data: Bytes::from(format!("{{\"i\":{i}}}")),
                })
                .collect(),
        })
    }

    fn opts(dir: &Path, segment_bytes: u64) -> WalOptions {
        WalOptions {
            dir: dir.to_path_buf(),
            segment_bytes,
            fsyncs: Default::default(),
            entries: Default::default(),
            files: real_files(),
            max_entry_bytes: MAX_ENTRY_BYTES,
        }
    }

    #[tokio::test]
    async fn appends_are_durable_and_replayed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let (opened, replay) = Wal::open(opts(dir.path(), DEFAULT_SEGMENT_BYTES)).unwrap();
        assert!(replay.entries.is_empty());
        let wal = opened.start(sink.clone()).unwrap();
        let mut handles = Vec::new();
        for i in 0..20 {
            let wal = wal.clone();
            handles.push(tokio::spawn(async move { wal.append(records(i, 4)).await }));
        }
        let mut seqs = Vec::new();
        for h in handles {
            seqs.push(h.await.unwrap().unwrap());
        }
        let intent = Entry::Intent(FlushIntent {
            stream_id: 1,
            buffer: BufferKey {
                prefix: "p/".into(),
                error: false,
            },
            from: Pos { seq: 1, idx: 0 },
            to: Pos { seq: 3, idx: 2 },
            count: 3,
            schema: Some("{}".into()),
        });
        let intent_seq = wal.append(intent.clone()).await.unwrap();
        wal.append(Entry::Done { intent_seq }).await.unwrap();
        wal.close();
        seqs.sort();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        // The sink saw entries in sequence order.
        let seen: Vec<u64> = sink.0.lock().unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(seen, (1..=22).collect::<Vec<_>>());

        let (_opened, replay) = Wal::open(opts(dir.path(), DEFAULT_SEGMENT_BYTES)).unwrap();
        assert_eq!(replay.entries.len(), 22);
        assert_eq!(replay.entries, *sink.0.lock().unwrap());
        assert_eq!(replay.entries[20].1, intent);
    }

    /// Blocks the writer after its first commit, so later appends queue up.
    struct SlowFirst(Mutex<bool>);
    impl DurableSink for SlowFirst {
        fn durable(&self, _seq: u64, _entry: Entry) {
            let mut first = self.0.lock().unwrap();
            if !*first {
                *first = true;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path(), DEFAULT_SEGMENT_BYTES);
        let (fsyncs, entries) = (o.fsyncs.clone(), o.entries.clone());
        let (opened, _) = Wal::open(o).unwrap();
        let wal = opened
            .start(Arc::new(SlowFirst(Mutex::new(false))))
            .unwrap();
        let first = {
            let wal = wal.clone();
            tokio::spawn(async move { wal.append(records(1, 1)).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // These queue while the writer is busy with the first group.
        let rest: Vec<_> = (0..50)
            .map(|_| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.append(records(1, 2)).await })
            })
            .collect();
        first.await.unwrap().unwrap();
        for r in rest {
            r.await.unwrap().unwrap();
        }
        wal.close();
        assert_eq!(entries.get(), 51);
        assert!(fsyncs.get() <= 3, "51 appends took {} fsyncs", fsyncs.get());
    }

    #[test]
    fn a_second_process_cannot_open_the_same_log() {
        let dir = tempfile::tempdir().unwrap();
        let (_held, _) = Wal::open(opts(dir.path(), DEFAULT_SEGMENT_BYTES)).unwrap();
        let Err(err) = Wal::open(opts(dir.path(), DEFAULT_SEGMENT_BYTES)) else {
            panic!("opened a locked log");
        };
        assert!(matches!(err, Error::WalLocked { .. }), "{err}");
    }

    #[tokio::test]
    async fn torn_tail_is_cut_and_later_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let (opened, _) = Wal::open(opts(dir.path(), DEFAULT_SEGMENT_BYTES)).unwrap();
        let wal = opened.start(sink.clone()).unwrap();
        wal.append(records(1, 2)).await.unwrap();
        wal.append(records(1, 2)).await.unwrap();
        wal.close();
        // Simulate a crash mid-write: append half an entry.
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "wal"))
            .unwrap();
        let full = std::fs::read(&seg).unwrap();
        let mut torn = BytesMut::new();
        records(1, 5)
            .encode_into(3, &mut torn, MAX_ENTRY_BYTES)
            .unwrap();
        let mut data = full.clone();
        data.extend_from_slice(&torn[..torn.len() / 2]);
        std::fs::write(&seg, &data).unwrap();

        let (opened, replay) = Wal::open(opts(dir.path(), DEFAULT_SEGMENT_BYTES)).unwrap();
        assert_eq!(replay.entries.len(), 2);
        assert_eq!(std::fs::read(&seg).unwrap(), full);
        let mut opened = opened;
        // Both replayed entries are still undelivered.
        opened.retain(1, 2);
        opened.retain(2, 2);
        let wal = opened.start(sink).unwrap();
        assert_eq!(wal.append(records(2, 1)).await.unwrap(), 3);
        wal.close();
        let (_, replay) = Wal::open(opts(dir.path(), DEFAULT_SEGMENT_BYTES)).unwrap();
        assert_eq!(replay.entries.len(), 3);
    }

    #[tokio::test]
    async fn delivered_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        // Tiny segments: every commit rotates.
        let (opened, _) = Wal::open(opts(dir.path(), 1)).unwrap();
        let wal = opened.start(sink).unwrap();
        let s1 = wal.append(records(1, 3)).await.unwrap();
        let s2 = wal.append(records(1, 2)).await.unwrap();
        assert_eq!(
            wal.segment_count(),
            3,
            "{:?}",
            std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>()
        );
        wal.release([s1, s1, s1]);
        // Deletion happens after the next commit, off the commit path: wait
        // for it (a loaded machine may take a moment).
        wal.append(Entry::Done { intent_seq: 99 }).await.unwrap();
        for _ in 0..500 {
            if wal.segment_count() <= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            wal.segment_count(),
            3,
            "{}",
            "segment 2 holds s2, undelivered"
        );
        wal.release([s2, s2]);
        wal.append(Entry::Done { intent_seq: 100 }).await.unwrap();
        wal.close();
        let (_, replay) = Wal::open(opts(dir.path(), 1)).unwrap();
        assert!(
            replay.entries.iter().all(|(s, _)| *s > s2),
            "delivered records were not deleted: {:?}",
            replay.entries.iter().map(|(s, _)| s).collect::<Vec<_>>()
        );
    }
    fn faulty_opts(dir: &Path, segment_bytes: u64, faults: &Arc<FaultyFiles>) -> WalOptions {
        WalOptions {
            files: Arc::new(SharedFaultyFiles(Arc::clone(faults))),
            ..opts(dir, segment_bytes)
        }
    }

    /// The data of a records entry, to recognise it after replay.
    fn payload(entry: &Entry) -> Vec<Bytes> {
        match entry {
            Entry::Records(r) => r.records.iter().map(|r| r.data.clone()).collect(),
            _ => Vec::new(),
        }
    }

    fn one(tag: usize) -> Entry {
        Entry::Records(RecordsEntry {
            stream_id: 7,
            arrival_ms: 1_700_000_000_000,
            records: vec![WalRecord {
                prefix: "p/".into(),
                error: None,
                data: Bytes::from(format!("{{\"tag\":{tag}}}")),
            }],
        })
    }

    /// Replays `dir` with the real file system and checks that it holds
    /// exactly `acked` (data of acknowledged entries), once each, in
    /// sequence order, with no torn bytes anywhere.
    fn assert_replays_exactly(dir: &Path, acked: &[(u64, usize)]) {
        for seg in std::fs::read_dir(dir).unwrap() {
            let path = seg.unwrap().path();
            if path.extension().is_none_or(|e| e != "wal") {
                continue;
            }
            let data = Bytes::from(std::fs::read(&path).unwrap());
            let mut offset = 0;
            while offset < data.len() {
                let (len, _, _) = read_entry(&data, offset)
                    .unwrap_or_else(|| panic!("garbage in {} at {offset}", path.display()));
                offset += len;
            }
        }
        let (_, replay) = Wal::open(opts(dir, DEFAULT_SEGMENT_BYTES)).unwrap();
        let mut expected: Vec<(u64, usize)> = acked.to_vec();
        expected.sort();
        let got: Vec<(u64, Vec<Bytes>)> = replay
            .entries
            .iter()
            .map(|(seq, e)| (*seq, payload(e)))
            .collect();
        let want: Vec<(u64, Vec<Bytes>)> = expected
            .iter()
            .map(|(seq, tag)| (*seq, payload(&one(*tag))))
            .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_torn_write_fails_its_requests_and_the_log_goes_on_after_the_last_good_entry() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(FaultyFiles::default());
        faults.fail_write(3);
        faults.fail_write(6);
        let (opened, _) =
            Wal::open(faulty_opts(dir.path(), DEFAULT_SEGMENT_BYTES, &faults)).unwrap();
        let wal = opened
            .start(Arc::new(Collect(Mutex::new(Vec::new()))))
            .unwrap();
        let mut acked = Vec::new();
        let mut refused = 0;
        for tag in 0..10 {
            match wal.append(one(tag)).await {
                Ok(seq) => acked.push((seq, tag)),
                Err(e) => {
                    assert!(e.to_string().contains("injected fault"), "{e}");
                    refused += 1;
                }
            }
        }
        wal.close();
        assert_eq!(refused, 2);
        // Sequence numbers stay dense: a failed entry's number is reused.
        assert_eq!(
            acked.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (1..=8).collect::<Vec<_>>()
        );
        assert_replays_exactly(dir.path(), &acked);
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_its_requests_and_its_bytes_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(FaultyFiles::default());
        faults.fail_sync(2);
        let (opened, _) =
            Wal::open(faulty_opts(dir.path(), DEFAULT_SEGMENT_BYTES, &faults)).unwrap();
        let wal = opened
            .start(Arc::new(Collect(Mutex::new(Vec::new()))))
            .unwrap();
        let mut acked = Vec::new();
        for tag in 0..5 {
            if let Ok(seq) = wal.append(one(tag)).await {
                acked.push((seq, tag));
            }
        }
        wal.close();
        assert_eq!(
            acked.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
            [0, 2, 3, 4]
        );
        assert_replays_exactly(dir.path(), &acked);
    }

    #[tokio::test]
    async fn appends_are_refused_until_the_torn_tail_can_be_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(FaultyFiles::default());
        faults.fail_write(2);
        // The repair right after the failure and the one before the next
        // append fail; the third works.
        faults.fail_truncate(1);
        faults.fail_truncate(2);
        let (opened, _) = Wal::open(faulty_opts(dir.path(), 1, &faults)).unwrap();
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let wal = opened.start(sink.clone()).unwrap();
        let s1 = wal.append(one(1)).await.unwrap();
        // Tiny segments: the first commit rotated to a new segment.
        let segments = wal.segment_count();
        assert!(wal.append(one(2)).await.is_err());
        let writes = faults.writes();
        let err = wal.append(one(3)).await.unwrap_err();
        assert!(matches!(err, Error::WalUnavailable { .. }), "{err}");
        assert!(err.to_string().contains("refuses appends"), "{err}");
        // Nothing was written after the garbage, and no segment was started
        // past the torn one.
        assert_eq!(faults.writes(), writes);
        assert_eq!(wal.segment_count(), segments);
        let s4 = wal.append(one(4)).await.unwrap();
        wal.close();
        // Refused entries never reached the sink.
        let seen: Vec<u64> = sink.0.lock().unwrap().iter().map(|(s, _)| *s).collect();
        assert_eq!(seen, [s1, s4]);
        assert_replays_exactly(dir.path(), &[(s1, 1), (s4, 4)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_concurrent_appends_every_acknowledged_entry_replays_once() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Arc::new(FaultyFiles::default());
        // Group commit may take all appends in a few writes: the first one
        // always fails.
        for n in [1, 2, 5, 9, 14, 20] {
            faults.fail_write(n);
        }
        faults.fail_sync(7);
        let (opened, _) = Wal::open(faulty_opts(dir.path(), 4096, &faults)).unwrap();
        let wal = opened
            .start(Arc::new(Collect(Mutex::new(Vec::new()))))
            .unwrap();
        let handles: Vec<_> = (0..200)
            .map(|tag| {
                let wal = wal.clone();
                tokio::spawn(async move { (tag, wal.append(one(tag)).await) })
            })
            .collect();
        let mut acked = Vec::new();
        let mut refused = 0;
        for h in handles {
            match h.await.unwrap() {
                (tag, Ok(seq)) => acked.push((seq, tag)),
                (_, Err(_)) => refused += 1,
            }
        }
        wal.close();
        assert!(refused > 0, "no fault was hit");
        assert_eq!(acked.len() + refused, 200);
        assert_replays_exactly(dir.path(), &acked);
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_limit_is_refused_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let o = WalOptions {
            max_entry_bytes: 1024,
            ..opts(dir.path(), DEFAULT_SEGMENT_BYTES)
        };
        let (opened, _) = Wal::open(o).unwrap();
        let wal = opened
            .start(Arc::new(Collect(Mutex::new(Vec::new()))))
            .unwrap();
        let big = Entry::Records(RecordsEntry {
            stream_id: 1,
            arrival_ms: 0,
            records: vec![WalRecord {
                prefix: "p/".into(),
                error: None,
                data: Bytes::from(vec![b'x'; 4096]),
            }],
        });
        let err = wal.append(big).await.unwrap_err();
        assert!(
            matches!(err, Error::WalEntryTooLarge { max: 1024, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("1024"), "{err}");
        // The log goes on.
        let seq = wal.append(one(1)).await.unwrap();
        wal.close();
        assert_replays_exactly(dir.path(), &[(seq, 1)]);
    }

    #[test]
    fn a_header_claiming_more_than_the_largest_entry_is_a_torn_tail() {
        let mut data = BytesMut::new();
        data.put_u32_le(u32::MAX);
        data.put_u32_le(0);
        data.put_slice(&[0u8; 64]);
        assert!(read_entry(&data.freeze(), 0).is_none());
    }
}
