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
/// embedded store, the `s3://` location itself otherwise.
pub fn table_url(storage: &Storage, location: &Location) -> Result<Url, String> {
    match storage.local_root() {
        Some(root) => {
            let path = root
                .join(location.bucket())
                .join(location.key().trim_end_matches('/'));
            Url::from_directory_path(&path)
                .map_err(|_| format!("{} is not an absolute folder", path.display()))
        }
        None => Url::parse(&format!(
            "s3://{}/{}",
            location.bucket(),
            location.key().trim_end_matches('/')
        ))
        .map_err(|e| e.to_string()),
    }
}

/// A builder for the Delta table at `location`, over lakehose's own
/// storage: on the embedded store deltalake opens the folder itself; on
/// any other store the table is read and committed through lakehose's
/// object store (its S3 clients, retries and credentials), and commits
/// use conditional writes (`PUT` with `If-None-Match: *`), so two writers
/// never both commit the same version.
pub fn table_builder(
    storage: &Storage,
    location: &Location,
) -> Result<deltalake::DeltaTableBuilder, String> {
    let url = table_url(storage, location)?;
    let builder = deltalake::DeltaTableBuilder::from_url(url.clone()).map_err(|e| e.to_string())?;
    if storage.local_root().is_some() {
        return Ok(builder);
    }
    register_log_store();
    let bucket: Arc<dyn object_store::ObjectStore> = Arc::new(
        object_store::prefix::PrefixStore::new(Arc::clone(storage.store()), location.bucket()),
    );
    Ok(builder.with_storage_backend(bucket, url))
}

/// Makes deltalake's log store (commits by conditional put) the one for
/// `s3://` tables whose object store lakehose hands it.
fn register_log_store() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let scheme = Url::parse("s3://").expect("valid scheme URL");
        deltalake::logstore::logstore_factories()
            .entry(scheme)
            .or_insert_with(|| Arc::new(ConditionalPutLogStores));
    });
}

/// Log stores that commit a version by writing its file only if it does
/// not exist yet.
struct ConditionalPutLogStores;

impl deltalake::logstore::LogStoreFactory for ConditionalPutLogStores {
    fn with_options(
        &self,
        prefixed_store: deltalake::logstore::ObjectStoreRef,
        root_store: deltalake::logstore::ObjectStoreRef,
        location: &Url,
        options: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
        Ok(deltalake::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
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
    provider_as_of(storage, table, &AsOf::Latest, false).await
}

/// A DataFusion table for one version of a Delta table. With `plain_files`
/// (for queries across workers) a version that needs nothing of the Delta
/// protocol at read time is read as its list of Parquet files
/// ([`crate::delta_files::DeltaFiles`]), which workers can be sent.
pub(crate) async fn provider_as_of(
    storage: &Storage,
    table: &Table,
    as_of: &AsOf,
    plain_files: bool,
) -> Result<Arc<dyn TableProvider>, String> {
    let location = table
        .storage_descriptor
        .as_ref()
        .and_then(|sd| sd.location.as_deref())
        .ok_or("the Delta table has no location")?;
    let location = Location::parse(location).map_err(|e| e.to_string())?;
    let builder = table_builder(storage, &location)?;
    let builder = match as_of {
        AsOf::Latest => Ok(builder),
        AsOf::Version(v) => Ok(builder.with_version(*v)),
        AsOf::Timestamp(t) => builder.with_datestring(t),
    };
    let delta = match builder {
        Ok(b) => b.load().await,
        Err(e) => Err(e),
    }
    .map_err(|e| match as_of {
        AsOf::Latest => format!("could not open the Delta table at {location}: {e}"),
        AsOf::Version(v) => format!("version {v} of the Delta table at {location}: {e}"),
        AsOf::Timestamp(t) => format!("the Delta table at {location} as of {t}: {e}"),
    })?;
    if plain_files {
        match crate::delta_files::DeltaFiles::new(storage, &location, &delta) {
            Ok(files) => return Ok(Arc::new(files)),
            Err(why) => tracing::debug!(
                %location,
                reason = %why,
                "the Delta table is read by deltalake's scan, on the coordinator"
            ),
        }
    }
    let provider = delta
        .table_provider()
        .await
        .map_err(|e| format!("could not read the Delta table at {location}: {e}"))?;
    Ok(if plain_files {
        Arc::new(crate::delta_files::CoordinatorOnly(provider))
    } else {
        provider
    })
}
