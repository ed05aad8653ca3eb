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
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Largest group written with one fsync.
const MAX_GROUP_BYTES: usize = 16 * 1024 * 1024;

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

    fn encode_into(&self, seq: u64, out: &mut BytesMut) {
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
        let crc = crc32fast::hash(&out[start + HEADER..]);
        out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
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
pub trait DurableSink: Send + Sync + 'static {
    /// Called once per entry, after the fsync that made it durable.
    fn durable(&self, seq: u64, entry: Entry);
}

/// Settings of the log.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Folder of the segments.
    pub dir: PathBuf,
    /// Segment size at which a new segment starts.
    pub segment_bytes: u64,
    /// Counts fsyncs (one per group commit).
    pub fsyncs: prometheus_client::metrics::counter::Counter,
    /// Counts entries written; entries per fsync is the group size.
    pub entries: prometheus_client::metrics::counter::Counter,
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
pub struct Wal {
    tx: mpsc::UnboundedSender<Msg>,
    live: Arc<Mutex<Live>>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// What [`Wal::open`] found on disk, in log order.
pub struct Replay {
    /// Every intact entry with its sequence number.
    pub entries: Vec<(u64, Entry)>,
}

/// An opened log that is not yet accepting appends.
pub struct OpenedWal {
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
        let (file, path) = create_segment(&opts.dir, next_seq)?;
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

    /// Number of segment files currently kept.
    pub fn segment_count(&self) -> usize {
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
    if rest.len() < HEADER + len {
        return None;
    }
    let body = data.slice(offset + HEADER..offset + HEADER + len);
    if crc32fast::hash(&body) != crc {
        return None;
    }
    let (seq, entry) = Entry::decode(body)?;
    Some((HEADER + len, seq, entry))
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(format!("{first_seq:020}.wal"));
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
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
    file: File,
    path: PathBuf,
    segment_start: u64,
    written: u64,
    next_seq: u64,
    live: Arc<Mutex<Live>>,
    sink: Arc<dyn DurableSink>,
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
        let _ = self.file.sync_all();
    }

    fn commit(&mut self, buf: &mut BytesMut, group: Vec<Request>) {
        buf.clear();
        let mut seqs = Vec::with_capacity(group.len());
        let mut records = 0u64;
        for req in &group {
            let seq = self.next_seq;
            self.next_seq += 1;
            req.entry.encode_into(seq, buf);
            records += req.entry.record_count();
            seqs.push(seq);
        }
        let result = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = result {
            tracing::error!(path = %self.path.display(), error = %source, "Write-ahead log write failed; requests are refused.");
            let msg = source.to_string();
            for req in group {
                let _ = req.reply.send(Err(Error::Io {
                    path: self.path.clone(),
                    source: std::io::Error::other(msg.clone()),
                }));
            }
            // The tail may be torn now; start a fresh segment so later
            // entries are not written after garbage.
            self.rotate();
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
        match create_segment(&self.opts.dir, self.next_seq) {
            Ok((file, path)) => {
                let _ = self.file.sync_all();
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
        records(1, 5).encode_into(3, &mut torn);
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
        // Deletion happens after the next commit.
        wal.append(Entry::Done { intent_seq: 99 }).await.unwrap();
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
}
