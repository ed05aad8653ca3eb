//! A file read into a value and read again when it changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::error::KeyError;

/// How often, at most, the file is looked at for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);

type Loader<T> = Box<dyn Fn() -> Result<T, KeyError> + Send + Sync>;

/// The files' modification times and lengths when read.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The value of one or more files, read again (at most once a second,
/// when a file's modification time or length changed) on use. A change
/// that cannot be read keeps the value read before, and is logged.
pub(crate) struct Watched<T> {
    paths: Vec<PathBuf>,
    load: Loader<T>,
    current: RwLock<(Arc<T>, Stamp)>,
    last_check: Mutex<Instant>,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

fn stamp(paths: &[PathBuf]) -> Stamp {
    paths
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl<T> Watched<T> {
    /// Reads `path` with `load` (an error here is returned).
    pub(crate) fn open(
        path: PathBuf,
        load: impl Fn(&Path) -> Result<T, KeyError> + Send + Sync + 'static,
    ) -> Result<Self, KeyError> {
        let p = path.clone();
        Self::open_all(vec![path], move || load(&p))
    }

    /// The value `load` makes of `paths`, read again when any changes.
    pub(crate) fn open_all(
        paths: Vec<PathBuf>,
        load: impl Fn() -> Result<T, KeyError> + Send + Sync + 'static,
    ) -> Result<Self, KeyError> {
        let stamp = stamp(&paths);
        let value = load()?;
        Ok(Self {
            paths,
            load: Box::new(load),
            current: RwLock::new((Arc::new(value), stamp)),
            last_check: Mutex::new(Instant::now()),
        })
    }

    /// The value, read again first if the file changed.
    pub(crate) fn current(&self) -> Arc<T> {
        self.refresh();
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()).0)
    }

    fn refresh(&self) {
        {
            let mut last = self.last_check.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < CHECK_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let now = stamp(&self.paths);
        if now == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return;
        }
        match (self.load)() {
            Ok(value) => {
                tracing::info!(files = ?self.paths, "read again after a change");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(value), now);
            }
            Err(e) => {
                tracing::error!(files = ?self.paths, error = %e, "a changed file cannot be read; what was read before stays in use");
                // Not tried again until the file changes once more.
                self.current.write().unwrap_or_else(|e| e.into_inner()).1 = now;
            }
        }
    }
}
