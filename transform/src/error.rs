//! How a transform fails: what was being done, and the error of the layer
//! underneath (catalog, object store, Delta Lake, query engine) as a
//! source a caller can inspect.
//!
//! Messages carry their source's text, so `to_string()` alone (what run
//! records, logs and API responses keep) says everything; [`Error::root`]
//! reaches the innermost error past the added context, and
//! [`Error::is_transient`] says whether trying again may help.

use std::path::PathBuf;

use datafusion::arrow::error::ArrowError;
use datafusion::common::DataFusionError;
use datafusion::parquet::errors::ParquetError;
use lakehose_catalog::{CatalogError, StorageError};
use lakehose_query::{QueryError, QueryErrorKind};

use crate::job::JobError;

/// A transform result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a job run, an import, a compaction or a table registration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job file is wrong (its header, its SQL, its columns): the job's
    /// author has to fix it.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The request or the data breaks a rule of the operation (a text
    /// table to compact, rows that do not fit the target table, a table
    /// owned by something else).
    #[error("{0}")]
    Invalid(String),
    /// Another run or maintenance holds the job or table.
    #[error("{0}")]
    Busy(String),
    /// A DynamoDB export is malformed, incomplete or damaged.
    #[error("DynamoDB export {export}: {message}")]
    Export {
        /// The export's folder.
        export: String,
        /// What is wrong with it.
        message: String,
    },
    /// A statement lakehose ran for the transform failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The catalog failed or refused a change.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A location is not valid, or storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Listing, reading or writing objects failed.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    /// A Delta Lake operation (open, write, merge, optimize, vacuum) failed.
    #[error(transparent)]
    Delta(#[from] deltalake::DeltaTableError),
    /// Rows could not be converted.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// A Parquet file could not be read or written.
    #[error(transparent)]
    Parquet(#[from] ParquetError),
    /// DataFusion failed planning or running a plan.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A JSON document lakehose keeps (manifest, bookmark) is not readable.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A local folder or file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A worker task panicked or was cancelled.
    #[error("a worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// What was being done when `source` happened.
    #[error("{context}: {source}")]
    Context {
        /// The operation, e.g. `writing db.table`.
        context: String,
        /// What failed.
        source: Box<Error>,
    },
}

impl Error {
    /// An [`Error::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// This error, said to have happened while doing `context`.
    pub fn context(self, context: impl Into<String>) -> Self {
        Self::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// The innermost error, past every [`Error::Context`].
    pub fn root(&self) -> &Error {
        match self {
            Self::Context { source, .. } => source.root(),
            other => other,
        }
    }

    /// Whether the same operation may succeed if tried again: storage,
    /// Delta Lake and catalog faults and interrupted workers are
    /// transient; mistakes in a job, the data or the request, and corrupt
    /// documents, are not.
    pub fn is_transient(&self) -> bool {
        match self.root() {
            Self::Job(_) | Self::Invalid(_) | Self::Export { .. } | Self::Json(_) => false,
            Self::Query(e) => matches!(e.kind, QueryErrorKind::Internal | QueryErrorKind::Limit),
            Self::Catalog(CatalogError::Storage(e)) | Self::Storage(e) => !e.is_permanent(),
            Self::Catalog(e) => matches!(e, CatalogError::ConcurrentModification(_)),
            Self::ObjectStore(e) => !lakehose_catalog::storage::is_permanent_store_error(e),
            Self::Delta(_)
            | Self::Arrow(_)
            | Self::Parquet(_)
            | Self::DataFusion(_)
            | Self::Io { .. }
            | Self::Task(_)
            | Self::Busy(_) => true,
            Self::Context { .. } => unreachable!("root() is never a context"),
        }
    }
}

/// Adds what was being done to an error on its way up.
pub(crate) trait ResultExt<T> {
    /// The error, said to have happened while doing `context`.
    fn context(self, context: impl Into<String>) -> Result<T>;

    /// Like [`ResultExt::context`], the text built only on failure.
    fn with_context<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_source_and_its_text() {
        let e = Error::from(object_store::Error::NotFound {
            path: "a/b".into(),
            source: "gone".into(),
        })
        .context("reading the bookmark")
        .context("job daily");
        assert!(
            e.to_string()
                .starts_with("job daily: reading the bookmark: ")
        );
        assert!(e.to_string().contains("a/b"));
        assert!(matches!(e.root(), Error::ObjectStore(_)));
        assert!(e.is_transient());
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.to_string().starts_with("reading the bookmark: "));
    }

    #[test]
    fn mistakes_are_not_transient() {
        assert!(!Error::invalid("no").context("x").is_transient());
        let not_found = Error::from(CatalogError::NotFound("t".into()));
        assert!(!not_found.is_transient());
        let conflict = Error::from(CatalogError::ConcurrentModification("t".into()));
        assert!(conflict.is_transient());
        let syntax = Error::from(QueryError::new(QueryErrorKind::Syntax, "bad"));
        assert!(!syntax.is_transient());
    }
}
