//! The audit log: JSON lines under `<data-dir>/_lakehose/audit/`, one file
//! a day (`audit-YYYY-MM-DD.jsonl`, a new numbered file past 64 MiB), files
//! older than the retention removed.
//!
//! Each line is one event with its UTC `time`, its `event` name and the
//! principal it concerns: failed authentications, refused calls, calls that
//! change something (and every query started), key and policy changes. No
//! secret is ever written. A server hands events to a writer thread
//! through a bounded queue: when the disk falls behind a flood (of failed
//! logins, say) events are dropped and counted rather than held in memory
//! or slowing requests; the count is written as an event of its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::error::KeyError;

/// Events queued for the writer at most.
const QUEUE: usize = 10_000;
/// A day's file is continued in a new one past this size.
const MAX_FILE_BYTES: u64 = 64 << 20;
/// Days of files kept.
const RETENTION_DAYS: i64 = 90;

/// The audit folder of a data folder.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join("_lakehose").join("audit")
}

fn line(event: &str, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "time".into(),
        Value::String(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    out.insert("event".into(), Value::String(event.into()));
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// Appends lines to the day's file, rotating by day and size.
struct Files {
    dir: PathBuf,
    day: Option<NaiveDate>,
    file: Option<std::fs::File>,
    written: u64,
}

impl Files {
    fn write(&mut self, lines: &[Value]) -> std::io::Result<()> {
        let today = Utc::now().date_naive();
        if self.day != Some(today) || self.written >= MAX_FILE_BYTES {
            self.open(today)?;
        }
        let mut buf = Vec::new();
        for l in lines {
            serde_json::to_writer(&mut buf, l).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        let file = self.file.as_mut().expect("opened above");
        file.write_all(&buf)?;
        file.flush()?;
        self.written += buf.len() as u64;
        Ok(())
    }

    fn open(&mut self, day: NaiveDate) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        if self.day != Some(day) {
            self.prune(day);
        }
        for n in 0..10_000u32 {
            let name = match n {
                0 => format!("audit-{day}.jsonl"),
                n => format!("audit-{day}.{n}.jsonl"),
            };
            let path = self.dir.join(name);
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if size >= MAX_FILE_BYTES {
                continue;
            }
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            self.file = Some(options.open(&path)?);
            self.written = size;
            self.day = Some(day);
            return Ok(());
        }
        Err(std::io::Error::other("too many audit files for one day"))
    }

    /// Removes files of days before the retention.
    fn prune(&self, today: NaiveDate) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(day) = name
                .strip_prefix("audit-")
                .and_then(|rest| rest.get(..10))
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            else {
                continue;
            };
            if (today - day).num_days() > RETENTION_DAYS {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Appends one event now (for the command line, which writes a few).
pub fn append(dir: &Path, event: &str, fields: Value) -> Result<(), KeyError> {
    let mut files = Files {
        dir: dir.to_path_buf(),
        day: None,
        file: None,
        written: 0,
    };
    files
        .write(&[line(event, fields)])
        .map_err(|source| KeyError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// A server's audit log: events go through a bounded queue to a writer
/// thread.
#[derive(Clone)]
pub struct AuditLog {
    tx: SyncSender<Value>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer of `dir`. The thread ends when every handle is
    /// dropped, after writing what is queued.
    pub fn open(dir: PathBuf) -> Result<Self, KeyError> {
        std::fs::create_dir_all(&dir).map_err(|source| KeyError::Io {
            path: dir.clone(),
            source,
        })?;
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("lakehose-audit".into())
            .spawn(move || writer(dir, rx, seen))
            .map_err(|source| KeyError::Io {
                path: PathBuf::from("lakehose-audit thread"),
                source,
            })?;
        Ok(Self { tx, dropped })
    }

    /// Queues an event (dropped and counted when the queue is full).
    pub fn record(&self, event: &str, fields: Value) {
        match self.tx.try_send(line(event, fields)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn writer(dir: PathBuf, rx: Receiver<Value>, dropped: Arc<AtomicU64>) {
    let mut files = Files {
        dir,
        day: None,
        file: None,
        written: 0,
    };
    let mut reported = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match rx.recv_timeout(Duration::from_millis(0)) {
                Ok(v) => batch.push(v),
                Err(_) => break,
            }
        }
        let now_dropped = dropped.load(Ordering::Relaxed);
        if now_dropped > reported {
            batch.push(line(
                "events_dropped",
                serde_json::json!({"count": now_dropped - reported}),
            ));
            reported = now_dropped;
        }
        if let Err(e) = files.write(&batch) {
            tracing::error!(error = %e, events = batch.len(), "could not write the audit log");
            files.file = None;
            files.day = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dir: &Path) -> Vec<Value> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            for l in std::fs::read_to_string(e.path()).unwrap().lines() {
                out.push(serde_json::from_str(l).unwrap());
            }
        }
        out
    }

    #[test]
    fn events_are_written_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit");
        append(&audit, "key_created", serde_json::json!({"principal": "p"})).unwrap();
        let log = AuditLog::open(audit.clone()).unwrap();
        for i in 0..100 {
            log.record("api_call", serde_json::json!({"n": i}));
        }
        drop(log);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while lines(&audit).len() < 101 {
            assert!(
                std::time::Instant::now() < deadline,
                "events were not written"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let all = lines(&audit);
        assert_eq!(all[0]["event"], "key_created");
        assert!(
            all.iter()
                .all(|l| l["time"].as_str().is_some_and(|t| t.ends_with('Z')))
        );
    }

    #[test]
    fn old_files_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("audit-2000-01-01.jsonl"), b"{}\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"keep").unwrap();
        append(dir.path(), "x", Value::Null).unwrap();
        assert!(!dir.path().join("audit-2000-01-01.jsonl").exists());
        assert!(dir.path().join("notes.txt").exists());
    }
}
