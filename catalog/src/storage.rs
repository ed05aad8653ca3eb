//! Storage locations and the object store behind them.
//!
//! Every location an API accepts is an `s3://bucket/key` URL. lakehose runs
//! over one [`ObjectStore`]; a location maps onto it as the object path
//! `bucket/key`. On the embedded default that store is a local folder, so
//! bucket `B` is the folder `<data-dir>/B/`. lakehose's own state lives under
//! the system prefix [`SYSTEM_PREFIX`] (`_lakehose/`), which can never collide
//! with a bucket because bucket names may not contain `_`.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The folder (object prefix) that holds lakehose's own state.
pub(crate) const SYSTEM_PREFIX: &str = "_lakehose";

/// Errors about locations and storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A location string that is not a valid `s3://bucket/key` URL.
    #[error("invalid location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bucket ARN that is not `arn:<partition>:s3:::<bucket>`.
    #[error("invalid bucket ARN {arn:?}: expected arn:aws:s3:::<bucket>")]
    InvalidBucketArn {
        /// The ARN as given.
        arn: String,
    },
    /// The object store failed.
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// A local file operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl StorageError {
    /// Whether retrying the same operation can never succeed: the path is
    /// invalid (too long, a name the file system refuses, an invalid
    /// argument) or the operation is not supported. Other failures (I/O
    /// errors, a full disk, permissions, network and 5xx errors) may clear
    /// and are worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            StorageError::InvalidLocation { .. } | StorageError::InvalidBucketArn { .. } => true,
            StorageError::ObjectStore(e) => is_permanent_store_error(e),
            StorageError::Io { source, .. } => is_permanent_io_error(source),
        }
    }
}

/// Whether an object store error can never clear by retrying (see
/// [`StorageError::is_permanent`]).
pub fn is_permanent_store_error(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::InvalidPath { .. } | E::NotSupported { .. } | E::NotImplemented { .. } => true,
        E::Generic { source, .. } => {
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(err) = cur {
                if let Some(io) = err.downcast_ref::<std::io::Error>() {
                    return is_permanent_io_error(io);
                }
                if let Some(inner) = err.downcast_ref::<object_store::Error>() {
                    return is_permanent_store_error(inner);
                }
                cur = err.source();
            }
            // The local store's own refusal of a file name.
            source.to_string().contains("are not supported")
        }
        _ => false,
    }
}

/// Whether an I/O error is about the request itself (a name too long or
/// refused, an invalid argument or data) rather than the device's state.
pub(crate) fn is_permanent_io_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::InvalidFilename | K::InvalidInput | K::InvalidData | K::Unsupported
    )
}

/// Result type of this module.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A parsed `s3://bucket/key` location.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    bucket: String,
    key: String,
}

impl Location {
    /// Parses an `s3://bucket/key` URL (`s3a://` and `s3n://` are accepted as
    /// aliases). The key may be empty or end in `/`.
    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| StorageError::InvalidLocation {
            location: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = ["s3://", "s3a://", "s3n://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .ok_or_else(|| invalid("must start with s3://"))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        validate_bucket(bucket).map_err(|reason| invalid(&reason))?;
        validate_key(key).map_err(|reason| invalid(&reason))?;
        Ok(Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The location of a whole bucket, from an S3 bucket ARN
    /// (`arn:aws:s3:::my-bucket`).
    pub fn from_bucket_arn(arn: &str) -> Result<Self> {
        let invalid = || StorageError::InvalidBucketArn {
            arn: arn.to_string(),
        };
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("s3"), Some(""), Some(""), Some(bucket)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid());
        };
        if partition.is_empty() {
            return Err(invalid());
        }
        validate_bucket(bucket).map_err(|_| invalid())?;
        Ok(Self {
            bucket: bucket.to_string(),
            key: String::new(),
        })
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key (may be empty, may end in `/`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This location with `suffix` appended to the key as plain text (no
    /// separator is added, as in S3 prefixes).
    pub fn join(&self, suffix: &str) -> Result<Self> {
        let key = format!("{}{}", self.key, suffix);
        validate_key(&key).map_err(|reason| StorageError::InvalidLocation {
            location: format!("s3://{}/{}", self.bucket, key),
            reason,
        })?;
        Ok(Self {
            bucket: self.bucket.clone(),
            key,
        })
    }

    /// The object-store path of this location: `bucket/key`.
    pub fn object_path(&self) -> ObjectPath {
        // Validated at construction, so parsing cannot fail.
        ObjectPath::parse(format!("{}/{}", self.bucket, self.key))
            .unwrap_or_else(|_| ObjectPath::from(self.bucket.as_str()))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// S3's bucket naming rules: 3–63 characters of lowercase letters, digits,
/// dots and hyphens, starting and ending with a letter or digit.
pub(crate) fn validate_bucket(bucket: &str) -> std::result::Result<(), String> {
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!(
            "bucket name {bucket:?} must be 3 to 63 characters long"
        ));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    if !bucket.chars().all(ok_char) {
        return Err(format!(
            "bucket name {bucket:?} may only contain lowercase letters, digits, '.' and '-'"
        ));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(bucket.chars().next()) || !edge_ok(bucket.chars().last()) {
        return Err(format!(
            "bucket name {bucket:?} must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// Longest object key (S3's limit), in bytes.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// Longest path segment of a key (between two `/`), in bytes: the longest
/// file or folder name local file systems allow (`NAME_MAX`).
pub(crate) const MAX_KEY_SEGMENT_BYTES: usize = 255;

/// Checks that `key` is a valid object key that can also be a path in a
/// local folder: at most [`MAX_KEY_BYTES`] bytes, no empty, `.` or `..`
/// segment, no segment longer than [`MAX_KEY_SEGMENT_BYTES`] bytes, no
/// control character or backslash. The error names what is wrong.
pub(crate) fn validate_key(key: &str) -> std::result::Result<(), String> {
    if key.is_empty() {
        return Ok(());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "key is {} bytes long; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        ));
    }
    if key.starts_with('/') {
        return Err("key must not start with '/'".into());
    }
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    for segment in trimmed.split('/') {
        if segment.is_empty() {
            return Err(format!("key {key:?} has an empty path segment ('//')"));
        }
        if segment == "." || segment == ".." {
            return Err(format!("key {key:?} has a '.' or '..' segment"));
        }
        if segment.len() > MAX_KEY_SEGMENT_BYTES {
            let shown: String = segment.chars().take(32).collect();
            return Err(format!(
                "key path segment {shown:?}... is {} bytes long; a folder or file name may be at most {MAX_KEY_SEGMENT_BYTES} bytes",
                segment.len()
            ));
        }
        if segment.chars().any(|c| c.is_control() || c == '\\') {
            return Err(format!(
                "key {key:?} contains a control character or backslash"
            ));
        }
        if hides_dot_segment(segment) {
            return Err(format!(
                "key {key:?} has a percent-encoded '.' or '..' segment"
            ));
        }
    }
    ObjectPath::parse(key).map_err(|e| e.to_string())?;
    Ok(())
}

/// How many rounds of percent-decoding [`hides_dot_segment`] looks through
/// (`%252e` is `%2e` once decoded, `.` twice).
const PERCENT_DECODE_ROUNDS: usize = 4;

/// Whether a key segment, percent-decoded (repeatedly, as a layer that
/// decodes URLs would), holds a `.` or `..` path component (split on `/`
/// and `\`). Such keys name a folder literally on lakehose's own stores,
/// but would climb out of it through anything that decodes the URL.
fn hides_dot_segment(segment: &str) -> bool {
    let mut text = segment.to_string();
    for _ in 0..PERCENT_DECODE_ROUNDS {
        if !text.contains('%') {
            break;
        }
        let decoded = crate::partition_path::unescape_value(&text);
        if decoded == text {
            break;
        }
        if decoded
            .split(['/', '\\'])
            .any(|part| part == "." || part == "..")
        {
            return true;
        }
        text = decoded;
    }
    false
}

/// The object store lakehose runs over, plus the local root when it is a
/// folder on this machine.
#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    /// The local store, to map object paths to files exactly as it does.
    local: Option<Arc<LocalFileSystem>>,
}

impl Storage {
    /// The embedded default: a local folder (created if missing) holding one
    /// sub-folder per bucket plus `_lakehose/`.
    pub fn local(root: impl AsRef<FsPath>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|source| StorageError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let root = root.canonicalize().map_err(|source| StorageError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let store = Arc::new(LocalFileSystem::new_with_prefix(&root)?);
        Ok(Self {
            store: store.clone(),
            local_root: Some(root),
            local: Some(store),
        })
    }

    /// Any object store (S3 through [`crate::s3::storage`], memory, ...).
    pub fn from_store(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            local_root: None,
            local: None,
        }
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The local folder of the embedded store, if it is one.
    pub fn local_root(&self) -> Option<&FsPath> {
        self.local_root.as_deref()
    }

    /// The path of a system object, `_lakehose/<relative>`.
    pub fn system_path(&self, relative: &str) -> ObjectPath {
        ObjectPath::from(SYSTEM_PREFIX).child_path(relative)
    }

    /// Writes an object atomically (readers see the old object or the new
    /// one, never a torn one) and, on a local folder, durably: the bytes go
    /// to a hidden temporary file that is fsynced, renamed over the object,
    /// and the folder is fsynced (see [`write_file_durable`]), so a machine
    /// crash leaves the old object or the whole new one.
    pub async fn put_durable(&self, path: &ObjectPath, bytes: bytes::Bytes) -> Result<()> {
        match &self.local {
            Some(local) => {
                let file = local.path_to_filesystem(path)?;
                local_write(file, bytes, DurableMode::Replace).await?;
            }
            None if bytes.len() > MULTIPART_THRESHOLD => {
                put_multipart(self.store.as_ref(), path, bytes).await?;
            }
            None => {
                self.store.put(path, PutPayload::from(bytes)).await?;
            }
        }
        Ok(())
    }

    /// Writes an object only if none exists at `path` (atomically, also on
    /// S3 with conditional writes). Returns `false` when one already exists.
    /// On a local folder the object is written to a temporary file, fsynced,
    /// hard-linked to its name (which fails if the name exists) and the
    /// folder fsynced, so a crash never leaves a truncated version behind.
    pub async fn create_durable(&self, path: &ObjectPath, bytes: bytes::Bytes) -> Result<bool> {
        if let Some(local) = &self.local {
            let file = local.path_to_filesystem(path)?;
            return local_write(file, bytes, DurableMode::CreateNew).await;
        }
        let opts = object_store::PutOptions {
            mode: object_store::PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// Objects larger than this go to a remote store as a multipart upload
/// (S3 refuses single PUTs over 5 GiB, and parts retry on their own).
pub const MULTIPART_THRESHOLD: usize = 32 * 1024 * 1024;

/// The size of one part of a multipart upload (S3's minimum is 5 MiB).
const MULTIPART_PART: usize = 16 * 1024 * 1024;

/// Uploads `bytes` in parts, at most four in flight; the object appears
/// whole when the upload completes, and a failed upload is aborted.
async fn put_multipart(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    bytes: bytes::Bytes,
) -> object_store::Result<()> {
    let upload = store.put_multipart_opts(path, Default::default()).await?;
    let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART);
    for start in (0..bytes.len()).step_by(MULTIPART_PART) {
        writer.wait_for_capacity(4).await?;
        let end = (start + MULTIPART_PART).min(bytes.len());
        writer.put(bytes.slice(start..end));
    }
    writer.finish().await.map(|_| ())
}

/// How [`write_file_durable`] puts the new file in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DurableMode {
    /// Replace any existing file (rename).
    Replace,
    /// Only create: fail (return `false`) when the file exists (hard link).
    CreateNew,
}

async fn local_write(file: PathBuf, bytes: bytes::Bytes, mode: DurableMode) -> Result<bool> {
    let task = tokio::task::spawn_blocking(move || write_file_durable(&file, &bytes, mode));
    match task.await {
        Ok(result) => result,
        Err(e) => Err(StorageError::Io {
            path: PathBuf::from("<durable write task>"),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

static TEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `bytes` to `file` crash-safely: to a temporary file in the same
/// folder, `fsync`, then rename (or, for [`DurableMode::CreateNew`], hard
/// link, which fails if `file` exists) onto `file`, then `fsync` the folder.
/// Missing parent folders are created and their own parents fsynced. After
/// a crash `file` holds its old content (or does not exist) or all of
/// `bytes`, never a part. Returns `false` only in `CreateNew` mode when
/// `file` already exists.
///
/// The temporary name is `<name>#<digits>`, which the local object store
/// leaves out of listings, so readers never see it.
pub(crate) fn write_file_durable(file: &FsPath, bytes: &[u8], mode: DurableMode) -> Result<bool> {
    use std::io::Write;
    let io = |path: &FsPath| {
        let path = path.to_path_buf();
        move |source| StorageError::Io { path, source }
    };
    let dir = file.parent().ok_or_else(|| StorageError::Io {
        path: file.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a file path has no folder",
        ),
    })?;
    create_dirs_durable(dir)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = TEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = dir.join(format!("{name}#{}{unique:06}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(StorageError::Io { path: temp, source });
    }
    let placed = match mode {
        DurableMode::Replace => std::fs::rename(&temp, file).map(|()| true),
        DurableMode::CreateNew => {
            let linked = match std::fs::hard_link(&temp, file) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_file(&temp);
            linked
        }
    };
    let placed = match placed {
        Ok(placed) => placed,
        Err(source) => {
            let _ = std::fs::remove_file(&temp);
            return Err(StorageError::Io {
                path: file.to_path_buf(),
                source,
            });
        }
    };
    sync_file(dir).map_err(|e| match e {
        StorageError::Io { source, .. } => io(dir)(source),
        other => other,
    })?;
    Ok(placed)
}

/// `create_dir_all`, then fsyncs the parent of every folder it created so
/// the new folders survive a crash.
fn create_dirs_durable(dir: &FsPath) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_file(parent)?;
        }
    }
    Ok(())
}

fn sync_file(path: &FsPath) -> Result<()> {
    let io = |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::open(path)
        .map_err(io)?
        .sync_all()
        .map_err(io)
}

/// An object store that reaches only the objects under one prefix, minus
/// lakehose's own state (`_lakehose/`) below it: every path outside is
/// refused with [`object_store::Error::PermissionDenied`] naming it.
///
/// The query engine's stores are these: the warehouse store (all buckets,
/// not `_lakehose/`) and, on the embedded default, the `file://` store
/// that Delta tables are read through, confined to the data folder (a
/// plain `file://` store would reach every file the process may read or
/// write).
#[derive(Debug)]
pub struct ConfinedStore {
    inner: Arc<dyn ObjectStore>,
    inside: ObjectPath,
    system: ObjectPath,
    what: String,
}

impl ConfinedStore {
    /// `inner` limited to the paths under `inside` (every path when it is
    /// empty) that are not under `inside/_lakehose`. `what` names the
    /// allowed area in refusals.
    pub fn new(inner: Arc<dyn ObjectStore>, inside: ObjectPath, what: impl Into<String>) -> Self {
        let system = inside.clone().join(SYSTEM_PREFIX);
        Self {
            inner,
            inside,
            system,
            what: what.into(),
        }
    }

    /// The whole local file system confined to the data folder `root`
    /// (paths as `file://` URLs give them: absolute, without the leading
    /// `/`).
    pub fn local_folder(root: &FsPath) -> Result<Self> {
        let inside =
            ObjectPath::from_absolute_path(root).map_err(|e| StorageError::InvalidLocation {
                location: root.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self::new(
            Arc::new(LocalFileSystem::new()),
            inside,
            format!("the data folder {}", root.display()),
        ))
    }

    /// Whether `path` may be reached through this store.
    pub fn allows(&self, path: &ObjectPath) -> bool {
        path.prefix_matches(&self.inside) && !path.prefix_matches(&self.system)
    }

    fn check(&self, path: &ObjectPath) -> object_store::Result<()> {
        if self.allows(path) {
            return Ok(());
        }
        let why = if path.prefix_matches(&self.system) {
            format!(
                "{path:?} is lakehose's own state ({SYSTEM_PREFIX}/), which queries may not read or write"
            )
        } else {
            format!("{path:?} is outside {}", self.what)
        };
        Err(object_store::Error::PermissionDenied {
            path: path.to_string(),
            source: why.into(),
        })
    }

    fn check_prefix(&self, prefix: Option<&ObjectPath>) -> object_store::Result<()> {
        self.check(prefix.unwrap_or(&ObjectPath::default()))
    }

    /// A listing without the objects this store may not reach (a listing
    /// of the top folder would otherwise show `_lakehose/`).
    fn only_allowed(
        &self,
        listed: futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        use futures::{StreamExt, TryStreamExt};
        let (inside, system) = (self.inside.clone(), self.system.clone());
        listed
            .try_filter(move |m| {
                let ok = m.location.prefix_matches(&inside) && !m.location.prefix_matches(&system);
                futures::future::ready(ok)
            })
            .boxed()
    }
}

impl fmt::Display for ConfinedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Confined({}, {})", self.inner, self.what)
    }
}

#[async_trait::async_trait]
impl ObjectStore for ConfinedStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.check(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.check(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
        use futures::StreamExt;
        let guard = Arc::new(Self::new(
            Arc::clone(&self.inner),
            self.inside.clone(),
            self.what.clone(),
        ));
        let checked = locations
            .map(move |l| l.and_then(|l| guard.check(&l).map(|()| l)))
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        use futures::StreamExt;
        match self.check_prefix(prefix) {
            Ok(()) => self.only_allowed(self.inner.list(prefix)),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        use futures::StreamExt;
        match self.check_prefix(prefix) {
            Ok(()) => self.only_allowed(self.inner.list_with_offset(prefix, offset)),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<object_store::ListResult> {
        self.check_prefix(prefix)?;
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        // Listing the top folder shows no `_lakehose/`.
        listed.common_prefixes.retain(|p| self.allows(p));
        listed.objects.retain(|m| self.allows(&m.location));
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        self.check(from)?;
        self.check(to)?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// Extension to make child paths from `a/b/c` strings.
trait ChildPath {
    fn child_path(self, relative: &str) -> ObjectPath;
}

impl ChildPath for ObjectPath {
    fn child_path(self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .filter(|s| !s.is_empty())
            .fold(self, |path, part| path.join(part))
    }
}

/// Whether `id` is a usable node name (one of several nodes sharing a
/// storage): 1 to 32 lowercase letters, digits and '-'.
pub fn validate_node_id(id: &str) -> std::result::Result<(), String> {
    let ok = (1..=32).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node id {id:?} must be 1 to 32 characters of a-z, 0-9 and '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        let loc = Location::parse("s3://logs-bucket/raw/app/").unwrap();
        assert_eq!(loc.bucket(), "logs-bucket");
        assert_eq!(loc.key(), "raw/app/");
        assert_eq!(loc.to_string(), "s3://logs-bucket/raw/app/");
        assert_eq!(loc.object_path().as_ref(), "logs-bucket/raw/app");
        let bucket_only = Location::parse("s3://logs-bucket").unwrap();
        assert_eq!(bucket_only.key(), "");
        assert_eq!(bucket_only.object_path().as_ref(), "logs-bucket");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "http://bucket/key",
            "s3://Upper/key",
            "s3://ab/key",
            "s3://_lakehose/x",
            "s3://bucket//key",
            "s3://bucket/a/../b",
            "s3://-bucket/key",
        ] {
            let err = Location::parse(bad).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidLocation { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn hostile_locations_cannot_leave_their_bucket() {
        for bad in [
            // Other schemes and absolute paths.
            "file:///etc/",
            "/etc/passwd",
            "../etc",
            "hdfs://host/x",
            "S3://bucket/x",
            // Buckets that are not a folder name of their own.
            "s3://../x",
            "s3://./x",
            "s3://.../x",
            "s3://_lakehose/catalog/",
            "s3://_lakehose",
            "s3://a_lakehose/x",
            "s3://%2e%2e/x",
            "s3://bu\\ck/x",
            "s3://buc/ket/..",
            // Keys that climb, start at the root, or smuggle separators.
            "s3://bucket//etc/passwd",
            "s3://bucket/../_lakehose/catalog/",
            "s3://bucket/a/./b",
            "s3://bucket/a/..",
            "s3://bucket/..\\..\\x",
            "s3://bucket/a\\b",
            "s3://bucket/a\0b",
            "s3://bucket/a\nb",
            "s3://bucket/%2e%2e/_lakehose/",
            "s3://bucket/%2E%2e/x",
            "s3://bucket/a/%2e/b",
            "s3://bucket/%252e%252e/x",
            "s3://bucket/x%2f%2e%2e%2fy",
            "s3://bucket/x%5c..%5cy",
        ] {
            let err = Location::parse(bad).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidLocation { .. }),
                "{bad}: {err}"
            );
        }
        // Percent signs that do not hide a '.' or '..' are ordinary key
        // text (Hive escapes partition values this way).
        let hive = Location::parse("s3://bucket/t/k=a%2Fb/v=10%3A00/").unwrap();
        assert_eq!(hive.key(), "t/k=a%2Fb/v=10%3A00/");
        assert!(Location::parse("s3://bucket/t/..x/").is_ok());
        assert!(
            Location::parse("s3://bucket/t/")
                .unwrap()
                .join("../x")
                .is_err()
        );
        assert!(
            Location::parse("s3://bucket/t/")
                .unwrap()
                .join("%2e%2e/x")
                .is_err()
        );
    }

    #[tokio::test]
    async fn locations_map_inside_their_bucket_folder() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let storage = Storage::local(&data).unwrap();
        for key in ["t/k=a%2Fb/x", "t/%zz%/x", "t/..x/y", "t/%25/x"] {
            let loc = Location::parse(&format!("s3://bucket/{key}")).unwrap();
            storage
                .put_durable(&loc.object_path(), bytes::Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        // Every file landed under data/bucket/, nothing beside it.
        let mut outside = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            outside.push(entry.unwrap().file_name());
        }
        assert_eq!(outside, vec![std::ffi::OsString::from("data")]);
        let top: Vec<_> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(top, vec![std::ffi::OsString::from("bucket")]);
    }

    #[tokio::test]
    async fn a_confined_store_refuses_paths_outside_and_lakehose_state() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let storage = Storage::local(&data).unwrap();
        storage
            .put_durable(
                &storage.system_path("catalog/x.json"),
                bytes::Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        let root = storage.local_root().unwrap().to_path_buf();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        let files = ConfinedStore::local_folder(&root).unwrap();
        let abs = |p: &FsPath| ObjectPath::from_absolute_path(p).unwrap();
        // Inside the data folder: allowed.
        let inside = abs(&root.join("bucket/a.txt"));
        files
            .put(&inside, PutPayload::from_static(b"ok"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("bucket/a.txt")).unwrap(), b"ok");
        // Beside the data folder, at /, and lakehose's state: refused.
        for path in [
            abs(&dir.path().join("secret")),
            abs(&dir.path().join("new.csv")),
            abs(&root.join("_lakehose/catalog/x.json")),
            abs(&root.join("_lakehose/evil")),
            ObjectPath::from("etc/passwd"),
            ObjectPath::default(),
        ] {
            let put = files
                .put(&path, PutPayload::from_static(b"x"))
                .await
                .unwrap_err();
            assert!(
                matches!(put, object_store::Error::PermissionDenied { .. }),
                "{path}: {put}"
            );
            assert!(files.get(&path).await.is_err(), "{path}");
            assert!(files.head(&path).await.is_err(), "{path}");
            use futures::StreamExt;
            let listed: Vec<_> = files.list(Some(&path)).collect().await;
            assert!(listed.iter().all(|r| r.is_err()), "{path}: {listed:?}");
        }
        assert!(!dir.path().join("new.csv").exists());
        assert_eq!(
            std::fs::read(root.join("_lakehose/catalog/x.json")).unwrap(),
            b"{}"
        );
        let message = files
            .get(&abs(&root.join("_lakehose/catalog/x.json")))
            .await
            .unwrap_err()
            .to_string();
        assert!(message.contains("lakehose's own state"), "{message}");

        // The bucket store: every bucket, never `_lakehose/`, which a
        // listing of the top does not show either.
        let buckets = ConfinedStore::new(
            Arc::clone(storage.store()),
            ObjectPath::default(),
            "lakehose's buckets",
        );
        assert!(buckets.get(&ObjectPath::from("bucket/a.txt")).await.is_ok());
        assert!(
            buckets
                .get(&ObjectPath::from("_lakehose/catalog/x.json"))
                .await
                .is_err()
        );
        use futures::TryStreamExt;
        let all: Vec<_> = buckets.list(None).try_collect().await.unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        let top = buckets.list_with_delimiter(None).await.unwrap();
        assert_eq!(
            top.common_prefixes,
            vec![ObjectPath::from("bucket")],
            "{top:?}"
        );
    }

    #[test]
    fn parses_bucket_arns() {
        let loc = Location::from_bucket_arn("arn:aws:s3:::my.bucket-1").unwrap();
        assert_eq!(loc.bucket(), "my.bucket-1");
        assert!(Location::from_bucket_arn("arn:aws:s3:::").is_err());
        assert!(Location::from_bucket_arn("arn:aws:sqs:::bucket").is_err());
        assert!(Location::from_bucket_arn("bucket").is_err());
    }

    #[test]
    fn join_appends_text() {
        let loc = Location::parse("s3://bucket/logs/").unwrap();
        let joined = loc.join("year=2026/file.parquet").unwrap();
        assert_eq!(joined.key(), "logs/year=2026/file.parquet");
        assert!(loc.join("a//b").is_err());
    }

    #[tokio::test]
    async fn local_storage_writes_durably() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let loc = Location::parse("s3://bucket/a/b.txt").unwrap();
        storage
            .put_durable(&loc.object_path(), bytes::Bytes::from_static(b"hi"))
            .await
            .unwrap();
        let on_disk = std::fs::read(dir.path().join("bucket/a/b.txt")).unwrap();
        assert_eq!(on_disk, b"hi");
        assert_eq!(
            storage.system_path("firehose/streams/x.json").as_ref(),
            "_lakehose/firehose/streams/x.json"
        );
    }
    #[tokio::test]
    async fn durable_writes_replace_or_create_only_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let path = storage.system_path("catalog/tables/db/t/00000000000000000001.json");
        assert!(storage.create_durable(&path, "one".into()).await.unwrap());
        // Create-only: a second writer of the same version loses.
        assert!(!storage.create_durable(&path, "two".into()).await.unwrap());
        let file = dir
            .path()
            .join("_lakehose/catalog/tables/db/t/00000000000000000001.json");
        assert_eq!(std::fs::read(&file).unwrap(), b"one");
        storage.put_durable(&path, "three".into()).await.unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"three");
        let names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["00000000000000000001.json"]);
        // Readers through the store see exactly the object.
        let listed: Vec<_> = futures::StreamExt::collect::<Vec<_>>(
            storage.store().list(Some(&storage.system_path("catalog"))),
        )
        .await;
        assert_eq!(listed.len(), 1);
    }

    #[test]
    fn keys_with_a_segment_too_long_for_a_folder_are_refused() {
        let ok = format!("a/{}/b", "x".repeat(MAX_KEY_SEGMENT_BYTES));
        assert!(validate_key(&ok).is_ok());
        let long = format!("a/{}/b", "x".repeat(MAX_KEY_SEGMENT_BYTES + 1));
        let err = validate_key(&long).unwrap_err();
        assert!(err.contains("256 bytes") && err.contains("255"), "{err}");
        let err = Location::parse("s3://bucket/logs/")
            .unwrap()
            .join(&format!("tenant={}/", "y".repeat(300)))
            .unwrap_err();
        assert!(err.to_string().contains("at most 255 bytes"), "{err}");
        let total = "abcdefgh/".repeat(MAX_KEY_BYTES / 9 + 1);
        assert!(validate_key(&total).unwrap_err().contains("1024"));
    }

    #[tokio::test]
    async fn a_name_too_long_is_a_permanent_error_and_an_io_error_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        // Built without validation, as a key logged by an older release.
        let long = "z".repeat(300);
        let path = ObjectPath::from_iter(["bucket", long.as_str(), "file.json"]);
        let err = storage.put_durable(&path, "x".into()).await.unwrap_err();
        assert!(err.is_permanent(), "{err}");
        let transient = StorageError::Io {
            path: PathBuf::from("x"),
            source: std::io::Error::other("input/output error"),
        };
        assert!(!transient.is_permanent());
        let generic = StorageError::ObjectStore(object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::new(
                std::io::ErrorKind::InvalidFilename,
                "too long",
            )),
        });
        assert!(generic.is_permanent());
    }
}
