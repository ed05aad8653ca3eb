//! How dashboards fail.

use std::path::PathBuf;

use lakehose_query::QueryError;

/// A dashboard failure. Every variant names what it is about: the file,
/// the dashboard and dataset or visual, the parameter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A dashboard file is invalid.
    #[error("{}: {message}", path.display())]
    Spec {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A dataset failed to plan, run or refresh.
    #[error("dashboard {dashboard}, dataset {dataset}: {message}")]
    Dataset {
        /// The dashboard.
        dashboard: String,
        /// The dataset.
        dataset: String,
        /// What went wrong.
        message: String,
    },
    /// A visual failed to plan or run.
    #[error("dashboard {dashboard}, visual {visual}: {message}")]
    Visual {
        /// The dashboard.
        dashboard: String,
        /// The visual.
        visual: String,
        /// What went wrong.
        message: String,
    },
    /// A filter or parameter value from a request is invalid.
    #[error("{name}: {message}")]
    Input {
        /// The filter or parameter.
        name: String,
        /// What is wrong with the value.
        message: String,
    },
    /// No such dashboard, visual or dataset.
    #[error("{0} not found")]
    NotFound(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The engine refused or failed a statement.
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// Dashboards' results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the request was at fault (400/404) rather than the server.
    pub fn is_client(&self) -> bool {
        matches!(self, Self::Input { .. } | Self::NotFound(_))
    }
}
