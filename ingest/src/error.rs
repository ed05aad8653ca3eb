//! Errors of the ingest crate.

use std::path::PathBuf;

/// Errors of the ingest crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local file operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A write-ahead log segment is damaged somewhere other than its tail.
    #[error(
        "write-ahead log segment {path} is corrupt at byte {offset}; move it aside to start without it (its records would be lost)"
    )]
    WalCorrupt {
        /// The segment.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
    },
    /// Another process holds the write-ahead log.
    #[error(
        "the write-ahead log in {path} is in use by another lakehose process; stop it or give this one its own --data-dir / --wal-dir"
    )]
    WalLocked {
        /// The log folder.
        path: PathBuf,
    },
    /// An entry too large for the write-ahead log's length field.
    #[error(
        "a write-ahead log entry of {bytes} bytes is larger than the most one entry may hold ({max} bytes); send fewer or smaller records per request"
    )]
    WalEntryTooLarge {
        /// The entry's size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// The write-ahead log refuses appends after a failed write it could
    /// not repair.
    #[error("the write-ahead log segment {path} refuses appends: {reason}")]
    WalUnavailable {
        /// The segment.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The write-ahead log is shut down.
    #[error("the write-ahead log is closed")]
    WalClosed,
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] lakehose_catalog::StorageError),
    /// Object store failure.
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Arrow failure.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Parquet failure.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A persisted file could not be read.
    #[error("could not parse {what}: {source}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A background task panicked or was cancelled.
    #[error("invalid ingest configuration: {0}")]
    Config(String),
    /// A background task failed.
    #[error("background task failed: {0}")]
    Task(String),
}

/// Result type of the ingest crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
