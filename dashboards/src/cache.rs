//! The SPICE-like cache: each cached dataset's rows as one Arrow IPC file
//! under `<data-dir>/_lakehose/dashboards/cache/<dashboard>/<dataset>.arrow`
//! beside a JSON file of its freshness (when it was refreshed, how many
//! rows, the last error). Files are written to a temporary name and
//! renamed, so a crash leaves the previous copy whole; a page always reads
//! a complete copy. Dashboard and dataset names are plain identifiers
//! (checked when a spec is loaded), so no path leaves the folder.

use std::collections::HashMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
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

/// The cache of one data folder.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    entries: Mutex<HashMap<(String, String), Arc<Entry>>>,
}

impl Cache {
    /// The cache under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("_lakehose").join("dashboards").join("cache"),
            entries: Mutex::default(),
        }
    }

    fn paths(&self, dashboard: &str, dataset: &str) -> (PathBuf, PathBuf) {
        let folder = self.dir.join(dashboard);
        (
            folder.join(format!("{dataset}.arrow")),
            folder.join(format!("{dataset}.json")),
        )
    }

    /// A cached dataset: from memory, else from its files (`None` when it
    /// was never refreshed).
    pub fn get(&self, dashboard: &str, dataset: &str) -> Option<Arc<Entry>> {
        let key = (dashboard.to_string(), dataset.to_string());
        if let Some(e) = self.lock().get(&key) {
            return Some(Arc::clone(e));
        }
        let (data, meta) = self.paths(dashboard, dataset);
        let freshness: Freshness = serde_json::from_slice(&std::fs::read(&meta).ok()?).ok()?;
        let rows = match read_ipc(&data) {
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

    /// Keeps `rows` as the dataset's (memory and files).
    pub fn put(
        &self,
        dashboard: &str,
        dataset: &str,
        rows: Rows,
        freshness: Freshness,
    ) -> Result<()> {
        let (data, meta) = self.paths(dashboard, dataset);
        write_ipc(&data, &rows)?;
        write_atomic(
            &meta,
            &serde_json::to_vec_pretty(&freshness).unwrap_or_default(),
        )?;
        self.lock().insert(
            (dashboard.to_string(), dataset.to_string()),
            Arc::new(Entry {
                freshness,
                rows: Some(rows),
            }),
        );
        Ok(())
    }

    /// Notes a failed refresh: the rows before it stay.
    pub fn failed(&self, dashboard: &str, dataset: &str, error: String, at_ms: i64) {
        let previous = self.get(dashboard, dataset);
        let mut freshness = previous
            .as_ref()
            .map(|e| e.freshness.clone())
            .unwrap_or_default();
        freshness.error = Some(error);
        freshness.attempted_ms = Some(at_ms);
        let (_, meta) = self.paths(dashboard, dataset);
        if let Err(e) = write_atomic(
            &meta,
            &serde_json::to_vec_pretty(&freshness).unwrap_or_default(),
        ) {
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

    /// Forgets what is held in memory for `dashboard` (its files stay).
    pub fn evict(&self, dashboard: &str) {
        self.lock().retain(|(d, _), _| d != dashboard);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn write_ipc(path: &Path, rows: &Rows) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("arrow.tmp");
    let arrow = |e: datafusion::arrow::error::ArrowError| Error::Io {
        path: tmp.clone(),
        source: std::io::Error::other(e),
    };
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let mut writer = FileWriter::try_new(BufWriter::new(file), &rows.schema).map_err(arrow)?;
    for b in rows.batches.iter() {
        writer.write(b).map_err(arrow)?;
    }
    writer.finish().map_err(arrow)?;
    let file = writer.into_inner().map_err(arrow)?;
    file.into_inner()
        .map_err(|e| Error::Io {
            path: tmp.clone(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn read_ipc(path: &Path) -> Result<Rows> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let bad = |e: datafusion::arrow::error::ArrowError| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let reader = FileReader::try_new(std::io::BufReader::new(file), None).map_err(bad)?;
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

    #[test]
    fn rows_survive_a_restart_and_a_failed_refresh_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        assert!(cache.get("d", "s").is_none());
        let fresh = Freshness {
            refreshed_ms: Some(1),
            rows: 5,
            ..Default::default()
        };
        cache.put("d", "s", rows(5), fresh.clone()).unwrap();
        let again = Cache::new(dir.path());
        let e = again.get("d", "s").unwrap();
        assert_eq!(e.freshness, fresh);
        assert_eq!(e.rows.as_ref().unwrap().len(), 5);
        again.failed("d", "s", "boom".into(), 2);
        let e = Cache::new(dir.path()).get("d", "s").unwrap();
        assert_eq!(e.freshness.error.as_deref(), Some("boom"));
        assert_eq!(e.freshness.refreshed_ms, Some(1));
        assert_eq!(e.rows.as_ref().unwrap().len(), 5);
    }

    #[test]
    fn a_torn_data_file_reads_as_no_rows() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        cache.put("d", "s", rows(3), Freshness::default()).unwrap();
        let (data, _) = cache.paths("d", "s");
        let bytes = std::fs::read(&data).unwrap();
        std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
        let e = Cache::new(dir.path()).get("d", "s").unwrap();
        assert!(e.rows.is_none());
    }
}
