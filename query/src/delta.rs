//! Delta Lake tables, read through the `deltalake` crate's DataFusion
//! integration.

use std::sync::Arc;

use datafusion::datasource::TableProvider;
use lakehose_catalog::model::Table;
use lakehose_catalog::{Location, Storage};
use url::Url;

/// Whether a catalog table is a Delta table (`table_type=DELTA`, as Athena
/// and Glue mark them, or Spark's `spark.sql.sources.provider=delta`).
pub fn is_delta(table: &Table) -> bool {
    let is = |key: &str| {
        table
            .parameters
            .get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("delta"))
    };
    is("table_type") || is("spark.sql.sources.provider")
}

/// The URL deltalake opens a location with: a `file://` folder on the
/// embedded store.
pub fn table_url(storage: &Storage, location: &Location) -> Result<Url, String> {
    match storage.local_root() {
        Some(root) => {
            let path = root
                .join(location.bucket())
                .join(location.key().trim_end_matches('/'));
            Url::from_directory_path(&path)
                .map_err(|_| format!("{} is not an absolute folder", path.display()))
        }
        None => Url::parse(&location.to_string()).map_err(|e| e.to_string()),
    }
}

/// Which version of a Delta table a query reads: the table name's suffix
/// `@v<N>` (version N) or `@<RFC 3339 timestamp>` (the version current
/// then), e.g. `curated."metrics@v3"` or
/// `curated."metrics@2026-11-23T10:00:00Z"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AsOf {
    /// The newest version.
    Latest,
    /// A version number.
    Version(u64),
    /// A point in time (RFC 3339).
    Timestamp(String),
}

/// Splits `name@spec` into the table name and the version it asks for.
pub(crate) fn split_as_of(name: &str) -> Result<(&str, AsOf), String> {
    let Some((base, spec)) = name.split_once('@') else {
        return Ok((name, AsOf::Latest));
    };
    if let Some(n) = spec.strip_prefix('v').or_else(|| spec.strip_prefix('V'))
        && let Ok(version) = n.parse::<u64>()
    {
        return Ok((base, AsOf::Version(version)));
    }
    match chrono::DateTime::parse_from_rfc3339(spec) {
        Ok(_) => Ok((base, AsOf::Timestamp(spec.to_string()))),
        Err(_) => Err(format!(
            "{name:?}: after @ write v<version> (e.g. @v3) or an RFC 3339 timestamp (e.g. @2026-11-23T10:00:00Z)"
        )),
    }
}

/// A DataFusion table for the current version of a Delta table.
pub(crate) async fn provider(
    storage: &Storage,
    table: &Table,
) -> Result<Arc<dyn TableProvider>, String> {
    provider_as_of(storage, table, &AsOf::Latest).await
}

/// A DataFusion table for one version of a Delta table.
pub(crate) async fn provider_as_of(
    storage: &Storage,
    table: &Table,
    as_of: &AsOf,
) -> Result<Arc<dyn TableProvider>, String> {
    let location = table
        .storage_descriptor
        .as_ref()
        .and_then(|sd| sd.location.as_deref())
        .ok_or("the Delta table has no location")?;
    let location = Location::parse(location).map_err(|e| e.to_string())?;
    let url = table_url(storage, &location)?;
    let delta = match as_of {
        AsOf::Latest => deltalake::open_table(url).await,
        AsOf::Version(v) => deltalake::open_table_with_version(url, *v).await,
        AsOf::Timestamp(t) => deltalake::open_table_with_ds(url, t).await,
    }
    .map_err(|e| match as_of {
        AsOf::Latest => format!("could not open the Delta table at {location}: {e}"),
        AsOf::Version(v) => format!("version {v} of the Delta table at {location}: {e}"),
        AsOf::Timestamp(t) => format!("the Delta table at {location} as of {t}: {e}"),
    })?;
    delta
        .table_provider()
        .await
        .map_err(|e| format!("could not read the Delta table at {location}: {e}"))
}
