//! How a statement fails: Athena's error categories, and the mapping of
//! DataFusion's errors onto them.

use std::fmt;

use datafusion::common::DataFusionError;

/// Why a statement failed, in Athena's categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// The SQL does not parse.
    Syntax,
    /// Unknown table/column/function, type errors: the user's to fix.
    Semantic,
    /// Bad data met while running (cast failure, malformed file).
    Data,
    /// A limit was hit (bytes-scanned cutoff, memory, timeout).
    Limit,
    /// Stopped by the user.
    Cancelled,
    /// A fault of lakehose or its storage.
    Internal,
}

impl QueryErrorKind {
    /// Athena's `ErrorCategory`: 1 system, 2 user, 3 other.
    pub fn athena_category(self) -> u8 {
        match self {
            Self::Syntax | Self::Semantic | Self::Data | Self::Limit => 2,
            Self::Internal => 1,
            Self::Cancelled => 3,
        }
    }
}

/// A failed statement.
#[derive(Debug, Clone)]
pub struct QueryError {
    /// Category.
    pub kind: QueryErrorKind,
    /// The message shown to the user (Athena's `StateChangeReason`).
    pub message: String,
}

impl QueryError {
    /// An error of `kind`.
    pub fn new(kind: QueryErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

/// The error a statement that panicked ends with: the panic is contained
/// where it happened and reported as an internal error naming it.
pub fn panic_error(payload: &(dyn std::any::Any + Send)) -> QueryError {
    let what = lakehose_catalog::supervise::panic_message(payload);
    tracing::error!(panic = %what, "a query panicked; it fails with an internal error");
    QueryError::new(
        QueryErrorKind::Internal,
        format!(
            "INTERNAL_ERROR: lakehose failed while running the query (a bug: {what}); the query was stopped"
        ),
    )
}

/// Maps an engine error to Athena's categories and wording.
pub fn classify(error: DataFusionError) -> QueryError {
    let root = error.find_root();
    let (kind, message) = match root {
        DataFusionError::SQL(e, _) => (QueryErrorKind::Syntax, format!("SYNTAX_ERROR: {e}")),
        DataFusionError::ResourcesExhausted(m) => (
            QueryErrorKind::Limit,
            format!("Query exhausted resources: {m}"),
        ),
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
            if root.to_string().contains("table '") =>
        {
            let m = root.to_string();
            if let Some(rest) = m.find("table '").map(|i| &m[i + 7..])
                && let Some(end) = rest.find("' not found")
            {
                (
                    QueryErrorKind::Semantic,
                    format!("TABLE_NOT_FOUND: Table '{}' does not exist", &rest[..end]),
                )
            } else {
                (QueryErrorKind::Semantic, m)
            }
        }
        DataFusionError::SchemaError(..)
        | DataFusionError::Plan(_)
        | DataFusionError::NotImplemented(_) => (QueryErrorKind::Semantic, root.to_string()),
        DataFusionError::ArrowError(..) | DataFusionError::Execution(_) => {
            (QueryErrorKind::Data, root.to_string())
        }
        _ => (QueryErrorKind::Internal, root.to_string()),
    };
    QueryError::new(kind, message)
}
