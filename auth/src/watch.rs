//! A file read into a value and read again when it changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::error::KeyError;

/// How often, at most, the file is looked at for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);

type Loader<T> = Box<dyn Fn(&Path) -> Result<T, KeyError> + Send + Sync>;

/// A file's modification time and length when read.
type Stamp = Option<(SystemTime, u64)>;

/// The value of a file, read again (at most once a second, when its
/// modification time or length changed) on use. A change that cannot be
/// read keeps the value read before, and is logged.
pub(crate) struct Watched<T> {
    path: PathBuf,
    load: Loader<T>,
    current: RwLock<(Arc<T>, Stamp)>,
    last_check: Mutex<Instant>,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl<T> Watched<T> {
    /// Reads `path` with `load` (an error here is returned).
    pub(crate) fn open(
        path: PathBuf,
        load: impl Fn(&Path) -> Result<T, KeyError> + Send + Sync + 'static,
    ) -> Result<Self, KeyError> {
        let stamp = stamp(&path);
        let value = load(&path)?;
        Ok(Self {
            path,
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
        let now = stamp(&self.path);
        if now == self.current.read().unwrap_or_else(|e| e.into_inner()).1 {
            return;
        }
        match (self.load)(&self.path) {
            Ok(value) => {
                tracing::info!(file = %self.path.display(), "read again after a change");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = (Arc::new(value), now);
            }
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e, "a changed file cannot be read; what was read before stays in use");
                // Not tried again until the file changes once more.
                self.current.write().unwrap_or_else(|e| e.into_inner()).1 = now;
            }
        }
    }
}
