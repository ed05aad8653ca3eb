//! The SPICE-like cache: each cached dataset's rows as one Arrow IPC object
//! at `_lakehose/dashboards/cache/<dashboard>/<dataset>.arrow` in
//! lakehose's storage (the data folder, or the system bucket on S3, so
//! every node sees one copy) beside a JSON object of its freshness (when it
//! was refreshed, how many rows, the last error). Objects are replaced
//! whole (a temporary file renamed on a local folder, one PUT on S3), so a
//! crash leaves the previous copy and a page always reads a complete one.
//! Dashboard and dataset names are plain identifiers (checked when a spec
//! is loaded), so no path leaves the folder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use lakehose_catalog::Storage;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::data::Rows;
use crate::error::{Error, Result};

/// Bytes of Arrow data one cached dataset may hold in memory.
pub const MAX_CACHED_BYTES: usize = 512 << 20;

/// A cached dataset's freshness.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    /// When its rows were last refreshed (ms since the epoch).
    pub refreshed_ms: Option<i64>,
    /// Rows held.
    pub rows: usize,
    /// Bytes held (Arrow, in memory).
    pub bytes: usize,
    /// How long the last successful refresh took.
    pub duration_ms: u64,
    /// Whether the last successful refresh was incremental.
    pub incremental: bool,
    /// The last refresh's error, when it failed (the rows before it stay).
    pub error: Option<String>,
    /// When a refresh was last tried.
    pub attempted_ms: Option<i64>,
    /// The sources' state the rows were read at (new files change it).
    pub sources: Option<String>,
}

/// One cached dataset.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its freshness.
    pub freshness: Freshness,
    /// Its rows (none before the first refresh).
    pub rows: Option<Rows>,
}

/// The cache in one storage.
#[derive(Debug)]
pub struct Cache {
    storage: Storage,
    entries: Mutex<HashMap<(String, String), Arc<Entry>>>,
}

impl Cache {
    /// The cache under `_lakehose/dashboards/cache/` of `storage`.
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            entries: Mutex::default(),
        }
    }

    fn paths(&self, dashboard: &str, dataset: &str) -> (ObjectPath, ObjectPath) {
        let folder = format!("dashboards/cache/{dashboard}");
        (
            self.storage
                .system_path(&format!("{folder}/{dataset}.arrow")),
            self.storage
                .system_path(&format!("{folder}/{dataset}.json")),
        )
    }

    async fn read(&self, path: &ObjectPath) -> Result<Bytes> {
        let storage_error = |e: object_store::Error| storage(path, e);
        self.storage
            .store()
            .get(path)
            .await
            .map_err(storage_error)?
            .bytes()
            .await
            .map_err(storage_error)
    }

    /// A cached dataset: from memory, else from its objects (`None` when
    /// it was never refreshed).
    pub async fn get(&self, dashboard: &str, dataset: &str) -> Option<Arc<Entry>> {
        let key = (dashboard.to_string(), dataset.to_string());
        if let Some(e) = self.lock().get(&key) {
            return Some(Arc::clone(e));
        }
        let (data, meta) = self.paths(dashboard, dataset);
        let freshness: Freshness = serde_json::from_slice(&self.read(&meta).await.ok()?).ok()?;
        let rows = match self.read(&data).await.and_then(|b| read_ipc(&data, b)) {
            Ok(rows) => Some(rows),
            // Never refreshed successfully: no rows yet, as expected.
            Err(_) if freshness.refreshed_ms.is_none() => None,
            Err(e) => {
                tracing::warn!(dashboard, dataset, error = %e, "Cached dataset unreadable; it is refreshed again");
                None
            }
        };
        let entry = Arc::new(Entry { freshness, rows });
        self.lock().insert(key, Arc::clone(&entry));
        Some(entry)
    }

    /// Keeps `rows` as the dataset's (memory and storage).
    pub async fn put(
        &self,
        dashboard: &str,
        dataset: &str,
        rows: Rows,
        freshness: Freshness,
    ) -> Result<()> {
        let (data, meta) = self.paths(dashboard, dataset);
        let bytes = ipc_bytes(&data, &rows)?;
        self.write(&data, bytes).await?;
        self.write(
            &meta,
            serde_json::to_vec_pretty(&freshness)
                .unwrap_or_default()
                .into(),
        )
        .await?;
        self.lock().insert(
            (dashboard.to_string(), dataset.to_string()),
            Arc::new(Entry {
                freshness,
                rows: Some(rows),
            }),
        );
        Ok(())
    }

    async fn write(&self, path: &ObjectPath, bytes: Bytes) -> Result<()> {
        self.storage
            .put_durable(path, bytes)
            .await
            .map_err(|e| Error::Io {
                path: path.as_ref().into(),
                source: std::io::Error::other(e.to_string()),
            })
    }

    /// Notes a failed refresh: the rows before it stay.
    pub async fn failed(&self, dashboard: &str, dataset: &str, error: String, at_ms: i64) {
        let previous = self.get(dashboard, dataset).await;
        let mut freshness = previous
            .as_ref()
            .map(|e| e.freshness.clone())
            .unwrap_or_default();
        freshness.error = Some(error);
        freshness.attempted_ms = Some(at_ms);
        let (_, meta) = self.paths(dashboard, dataset);
        let json = serde_json::to_vec_pretty(&freshness).unwrap_or_default();
        if let Err(e) = self.write(&meta, json.into()).await {
            tracing::warn!(dashboard, dataset, error = %e, "Could not record a failed refresh");
        }
        self.lock().insert(
            (dashboard.to_string(), dataset.to_string()),
            Arc::new(Entry {
                freshness,
                rows: previous.and_then(|e| e.rows.clone()),
            }),
        );
    }

    /// Forgets what is held in memory for `dashboard` (its objects stay).
    pub fn evict(&self, dashboard: &str) {
        self.lock().retain(|(d, _), _| d != dashboard);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn storage(path: &ObjectPath, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.as_ref().into(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn ipc_bytes(path: &ObjectPath, rows: &Rows) -> Result<Bytes> {
    let arrow = |e: datafusion::arrow::error::ArrowError| storage(path, e);
    let mut writer = FileWriter::try_new(Vec::new(), &rows.schema).map_err(arrow)?;
    for b in rows.batches.iter() {
        writer.write(b).map_err(arrow)?;
    }
    writer.finish().map_err(arrow)?;
    Ok(writer.into_inner().map_err(arrow)?.into())
}

fn read_ipc(path: &ObjectPath, bytes: Bytes) -> Result<Rows> {
    let bad = |e: datafusion::arrow::error::ArrowError| storage(path, e);
    let reader = FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(bad)?;
    let schema: Arc<Schema> = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(bad)?;
    Ok(Rows {
        schema,
        batches: Arc::new(batches),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field};

    fn rows(n: i64) -> Rows {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from_iter_values(0..n))],
        )
        .unwrap();
        Rows {
            schema,
            batches: Arc::new(vec![batch]),
        }
    }

    fn cache(dir: &std::path::Path) -> Cache {
        Cache::new(Storage::local(dir).unwrap())
    }

    #[tokio::test]
    async fn rows_survive_a_restart_and_a_failed_refresh_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let first = cache(dir.path());
        assert!(first.get("d", "s").await.is_none());
        let fresh = Freshness {
            refreshed_ms: Some(1),
            rows: 5,
            ..Default::default()
        };
        first.put("d", "s", rows(5), fresh.clone()).await.unwrap();
        let again = cache(dir.path());
        let e = again.get("d", "s").await.unwrap();
        assert_eq!(e.freshness, fresh);
        assert_eq!(e.rows.as_ref().unwrap().len(), 5);
        again.failed("d", "s", "boom".into(), 2).await;
        let e = cache(dir.path()).get("d", "s").await.unwrap();
        assert_eq!(e.freshness.error.as_deref(), Some("boom"));
        assert_eq!(e.freshness.refreshed_ms, Some(1));
        assert_eq!(e.rows.as_ref().unwrap().len(), 5);
    }

    #[tokio::test]
    async fn a_torn_data_object_reads_as_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let first = cache(dir.path());
        first
            .put("d", "s", rows(3), Freshness::default())
            .await
            .unwrap();
        let data = dir.path().join("_lakehose/dashboards/cache/d/s.arrow");
        let bytes = std::fs::read(&data).unwrap();
        std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
        let e = cache(dir.path()).get("d", "s").await.unwrap();
        assert!(e.rows.is_none());
    }
}
