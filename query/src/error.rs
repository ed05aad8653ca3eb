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

/// What went wrong, as a machine reads it: Trino's error names (Athena
/// engine 3 reports the same), each with its category, its Postgres
/// SQLSTATE and its Athena `ErrorType`. Front ends decide from the code,
/// never from the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The SQL does not parse.
    SyntaxError,
    /// A statement or construct lakehose does not run.
    NotSupported,
    /// No such catalog.
    CatalogNotFound,
    /// No such database (schema).
    SchemaNotFound,
    /// No such table or view.
    TableNotFound,
    /// No such column.
    ColumnNotFound,
    /// No such function (or none for these argument types).
    FunctionNotFound,
    /// A database, table or partition of that name exists.
    AlreadyExists,
    /// A write's target folder holds files already.
    PathAlreadyExists,
    /// The statement nests too deeply to plan safely.
    QueryTooComplex,
    /// A location outside lakehose's storage, or a grant the caller
    /// lacks.
    PermissionDenied,
    /// Any other mistake of the statement's (types, arguments, names).
    GenericUserError,
    /// A value that cannot be cast.
    InvalidCastArgument,
    /// Division by zero.
    DivisionByZero,
    /// A function argument out of its domain, or bad data met while
    /// running.
    InvalidFunctionArgument,
    /// Operators ran out of memory (and could not spill).
    ExceededMemoryLimit,
    /// The statement ran past the timeout.
    ExceededTimeLimit,
    /// The statement would scan more than the workgroup allows.
    ExceededScanLimit,
    /// Stopped by the user.
    UserCanceled,
    /// A fault of lakehose or its storage.
    InternalError,
}

impl ErrorCode {
    /// The code's name, as Trino spells it (`TABLE_NOT_FOUND`, ...).
    pub fn name(self) -> &'static str {
        self.facts().0
    }

    /// Its category.
    pub fn kind(self) -> QueryErrorKind {
        self.facts().1
    }

    /// The Postgres SQLSTATE a Postgres client gets.
    pub fn sqlstate(self) -> &'static str {
        self.facts().2
    }

    /// Athena's `AthenaError.ErrorType` (Athena's error catalog: 0 query
    /// exhausted resources, 100 internal service error, 206 query timeout,
    /// 1000 user error, 1001 data error).
    pub fn athena_error_type(self) -> u32 {
        self.facts().3
    }

    /// The one table: name, category, SQLSTATE, Athena error type.
    fn facts(self) -> (&'static str, QueryErrorKind, &'static str, u32) {
        use QueryErrorKind::*;
        match self {
            Self::SyntaxError => ("SYNTAX_ERROR", Syntax, "42601", 1000),
            Self::NotSupported => ("NOT_SUPPORTED", Semantic, "0A000", 1000),
            Self::CatalogNotFound => ("CATALOG_NOT_FOUND", Semantic, "3D000", 1000),
            Self::SchemaNotFound => ("SCHEMA_NOT_FOUND", Semantic, "3F000", 1000),
            Self::TableNotFound => ("TABLE_NOT_FOUND", Semantic, "42P01", 1000),
            Self::ColumnNotFound => ("COLUMN_NOT_FOUND", Semantic, "42703", 1000),
            Self::FunctionNotFound => ("FUNCTION_NOT_FOUND", Semantic, "42883", 1000),
            Self::AlreadyExists => ("ALREADY_EXISTS", Semantic, "42P07", 1000),
            Self::PathAlreadyExists => ("HIVE_PATH_ALREADY_EXISTS", Semantic, "58P02", 1000),
            Self::QueryTooComplex => ("QUERY_TOO_COMPLEX", Limit, "54001", 1000),
            Self::PermissionDenied => ("PERMISSION_DENIED", Semantic, "42501", 1000),
            Self::GenericUserError => ("GENERIC_USER_ERROR", Semantic, "42000", 1000),
            Self::InvalidCastArgument => ("INVALID_CAST_ARGUMENT", Data, "22018", 1001),
            Self::DivisionByZero => ("DIVISION_BY_ZERO", Data, "22012", 1001),
            Self::InvalidFunctionArgument => ("INVALID_FUNCTION_ARGUMENT", Data, "22023", 1001),
            Self::ExceededMemoryLimit => ("EXCEEDED_LOCAL_MEMORY_LIMIT", Limit, "53200", 0),
            Self::ExceededTimeLimit => ("EXCEEDED_TIME_LIMIT", Limit, "57014", 206),
            Self::ExceededScanLimit => ("EXCEEDED_SCAN_LIMIT", Limit, "54000", 1000),
            Self::UserCanceled => ("USER_CANCELED", Cancelled, "57014", 1000),
            Self::InternalError => ("GENERIC_INTERNAL_ERROR", Internal, "XX000", 100),
        }
    }

    /// The code of an error known only by its category.
    pub(crate) fn of_kind(kind: QueryErrorKind) -> Self {
        match kind {
            QueryErrorKind::Syntax => Self::SyntaxError,
            QueryErrorKind::Semantic => Self::GenericUserError,
            QueryErrorKind::Data => Self::InvalidFunctionArgument,
            QueryErrorKind::Limit => Self::ExceededMemoryLimit,
            QueryErrorKind::Cancelled => Self::UserCanceled,
            QueryErrorKind::Internal => Self::InternalError,
        }
    }
}

/// A failed statement.
#[derive(Debug, Clone)]
pub struct QueryError {
    /// Category.
    pub kind: QueryErrorKind,
    /// What went wrong, for machines.
    pub code: ErrorCode,
    /// The message shown to the user (Athena's `StateChangeReason`).
    pub message: String,
}

impl QueryError {
    /// An error of `kind` with the category's generic code.
    pub fn new(kind: QueryErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: ErrorCode::of_kind(kind),
            message: message.into(),
        }
    }

    /// An error with `code` and the message as given.
    pub(crate) fn coded(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            kind: code.kind(),
            code,
            message: message.into(),
        }
    }

    /// An error with `code`, its message led by the code's name as Athena
    /// prints it (`TABLE_NOT_FOUND: Table 'x' does not exist`).
    pub fn named(code: ErrorCode, detail: impl fmt::Display) -> Self {
        Self::coded(code, format!("{}: {detail}", code.name()))
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
    QueryError::coded(
        ErrorCode::InternalError,
        format!(
            "INTERNAL_ERROR: lakehose failed while running the query (a bug: {what}); the query was stopped"
        ),
    )
}

/// Maps an engine error to Athena's codes and wording. DataFusion names
/// a missing table and function only in its message text; this is the one
/// place that reads it.
pub fn classify(error: DataFusionError) -> QueryError {
    use datafusion::arrow::error::ArrowError;
    use datafusion::common::SchemaError;

    let root = error.find_root();
    match root {
        DataFusionError::External(e) => {
            if let Some(e) = e.downcast_ref::<QueryError>() {
                return e.clone();
            }
            QueryError::coded(ErrorCode::InternalError, root.to_string())
        }
        DataFusionError::SQL(e, _) => QueryError::named(ErrorCode::SyntaxError, e),
        DataFusionError::ResourcesExhausted(m) => QueryError::coded(
            ErrorCode::ExceededMemoryLimit,
            format!("Query exhausted resources: {m}"),
        ),
        DataFusionError::SchemaError(e, _) if matches!(**e, SchemaError::FieldNotFound { .. }) => {
            QueryError::coded(ErrorCode::ColumnNotFound, root.to_string())
        }
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => {
            let m = root.to_string();
            if let Some(rest) = m.find("table '").map(|i| &m[i + 7..])
                && let Some(end) = rest.find("' not found")
            {
                QueryError::named(
                    ErrorCode::TableNotFound,
                    format!("Table '{}' does not exist", &rest[..end]),
                )
            } else if m.contains("Invalid function") || m.contains("No function matches") {
                QueryError::coded(ErrorCode::FunctionNotFound, m)
            } else if matches!(root, DataFusionError::NotImplemented(_)) {
                QueryError::coded(ErrorCode::NotSupported, m)
            } else {
                QueryError::coded(ErrorCode::GenericUserError, m)
            }
        }
        DataFusionError::ArrowError(e, _) => {
            let code = match e.as_ref() {
                ArrowError::CastError(_) | ArrowError::ParseError(_) => {
                    ErrorCode::InvalidCastArgument
                }
                ArrowError::DivideByZero => ErrorCode::DivisionByZero,
                _ => ErrorCode::InvalidFunctionArgument,
            };
            QueryError::coded(code, root.to_string())
        }
        DataFusionError::Execution(_) => {
            QueryError::coded(ErrorCode::InvalidFunctionArgument, root.to_string())
        }
        _ => QueryError::coded(ErrorCode::InternalError, root.to_string()),
    }
}
