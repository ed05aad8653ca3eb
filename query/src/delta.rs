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

/// A DataFusion table for the current version of a Delta table.
pub async fn provider(storage: &Storage, table: &Table) -> Result<Arc<dyn TableProvider>, String> {
    let location = table
        .storage_descriptor
        .as_ref()
        .and_then(|sd| sd.location.as_deref())
        .ok_or("the Delta table has no location")?;
    let location = Location::parse(location).map_err(|e| e.to_string())?;
    let url = table_url(storage, &location)?;
    let delta = deltalake::open_table(url)
        .await
        .map_err(|e| format!("could not open the Delta table at {location}: {e}"))?;
    delta
        .table_provider()
        .await
        .map_err(|e| format!("could not read the Delta table at {location}: {e}"))
}
