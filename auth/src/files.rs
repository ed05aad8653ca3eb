//! Reading and writing lakehose's small private files (keys, policies):
//! size-capped reads, versioned JSON, and whole-file writes readable by
//! their owner only.

use std::path::Path;

use crate::error::KeyError;

/// Largest key file read (a file past it is refused, not parsed).
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 16 << 20;

/// Writes `bytes` to `path` readable by its owner only, whole or not at all.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A file's bytes (`None` when it does not exist), refused past
/// [`MAX_KEY_FILE_BYTES`].
pub(crate) fn read_limited(path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_KEY_FILE_BYTES} bytes"),
        });
    }
    std::fs::read(path)
        .map(Some)
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// A JSON file of lakehose's (`None` when it does not exist), refused
/// unless `version` says version 1.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    version: impl Fn(&T) -> u32,
) -> Result<Option<T>, KeyError> {
    let Some(bytes) = read_limited(path)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| KeyError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file: T = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    match version(&file) {
        1 => Ok(Some(file)),
        v => Err(corrupt(format!(
            "version {v} (this lakehose reads version 1)"
        ))),
    }
}
