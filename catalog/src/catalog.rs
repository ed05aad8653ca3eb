//! The [`Catalog`] trait and its embedded implementation.
//!
//! # Contract
//!
//! - Names of databases and tables are case-insensitive and stored
//!   lowercase, as Glue does.
//! - Every update is atomic: a reader sees a table before or after an
//!   update, never in between.
//! - Updates are versioned: every create, update and delete of a table is a
//!   new version (`VersionId`), and [`Catalog::table_versions`] lists them.
//! - Several processes may share one catalog. A lost race is retried where
//!   the operation is defined without a precondition (creating a database
//!   that does not exist yet, updating without an expected version) and
//!   reported where it is not ([`CatalogError::ConcurrentModification`]);
//!   an update is never silently lost from the version history.
//!
//! # The embedded catalog
//!
//! State lives in the warehouse under `_lakehose/catalog/`, one folder per
//! entity holding numbered, immutable versions:
//!
//! ```text
//! _lakehose/catalog/databases/<db>/00000000000000000001.json
//! _lakehose/catalog/tables/<db>/<table>/00000000000000000003.json
//! ```
//!
//! A change writes version N+1 with a create-only conditional put
//! (object_store's `PutMode::Create`, which the local store implements with
//! an atomic no-clobber link and S3 with `If-None-Match`); when another
//! process took N+1 first, the write fails and the change is re-read and
//! retried or reported. A delete writes a tombstone version.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use crate::expr::PartitionFilter;
use crate::model::{Column, Database, Partition, PartitionIndex, Table};
use crate::storage::{Storage, StorageError};

/// Errors of the catalog, mapped one to one onto Glue's exceptions.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// `EntityNotFoundException`.
    #[error("{0} not found.")]
    NotFound(String),
    /// `AlreadyExistsException`.
    #[error("{0} already exists.")]
    AlreadyExists(String),
    /// `InvalidInputException`.
    #[error("{0}")]
    InvalidInput(String),
    /// `ConcurrentModificationException`: another writer changed the entity.
    #[error("{0}")]
    ConcurrentModification(String),
    /// Storage failed (`InternalServiceException`).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A persisted version could not be read.
    #[error("catalog object {path} is corrupt: {source}")]
    Corrupt {
        /// The object.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
}

impl From<object_store::Error> for CatalogError {
    fn from(e: object_store::Error) -> Self {
        CatalogError::Storage(StorageError::ObjectStore(e))
    }
}

/// Result type of the catalog.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// A shared catalog.
pub type CatalogRef = Arc<dyn Catalog>;

/// A Glue-style data catalog. See the module docs for the contract.
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// Creates a database.
    async fn create_database(&self, database: Database) -> Result<()>;
    /// A database by name.
    async fn get_database(&self, name: &str) -> Result<Database>;
    /// Every database, sorted by name.
    async fn list_databases(&self) -> Result<Vec<Database>>;
    /// Deletes a database and every table in it.
    async fn delete_database(&self, name: &str) -> Result<()>;
    /// Creates a table in an existing database.
    async fn create_table(&self, database: &str, table: Table) -> Result<()>;
    /// A table by name.
    async fn get_table(&self, database: &str, name: &str) -> Result<Table>;
    /// Every table of a database, sorted by name.
    async fn list_tables(&self, database: &str) -> Result<Vec<Table>>;
    /// Replaces a table's definition. With `expected_version`, fails with
    /// [`CatalogError::ConcurrentModification`] unless that is the current
    /// version.
    async fn update_table(
        &self,
        database: &str,
        table: Table,
        expected_version: Option<&str>,
    ) -> Result<()>;
    /// Deletes a table.
    async fn delete_table(&self, database: &str, name: &str) -> Result<()>;
    /// One page of the versions of a table since it was last created,
    /// newest first: at most `limit` after skipping `skip`, and whether
    /// more follow. Only the versions returned are read.
    async fn table_versions(
        &self,
        database: &str,
        name: &str,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<Table>, bool)>;

    /// Adds partitions in one atomic batch. Partitions that cannot be added
    /// (already there, wrong number of values, repeated in the batch) are
    /// returned with their error; the others are added.
    async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: Vec<Partition>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>>;
    /// One partition by its values.
    async fn get_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
    ) -> Result<Partition>;
    /// The table's partitions that pass the Glue `expression` (all without
    /// one), sorted by their values.
    async fn get_partitions(
        &self,
        database: &str,
        table: &str,
        expression: Option<&str>,
    ) -> Result<Vec<Partition>>;
    /// Deletes partitions in one atomic batch; those not found are returned
    /// with their error.
    async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: Vec<Vec<String>>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>>;
    /// Replaces partitions' definitions in one atomic batch (Glue's
    /// UpdatePartition). Updates that cannot apply (partition not found,
    /// its location no longer the expected one) are returned with their
    /// error; the others are applied.
    async fn update_partitions(
        &self,
        database: &str,
        table: &str,
        updates: Vec<PartitionUpdate>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>>;
}

/// A new definition for an existing partition.
#[derive(Debug, Clone)]
pub struct PartitionUpdate {
    /// The values of the partition to replace.
    pub values: Vec<String>,
    /// Its new definition (its values may differ: the partition is then
    /// renamed).
    pub partition: Partition,
    /// When set, the update applies only while the partition's location is
    /// still this one (compare-and-swap for writers that move data).
    pub expected_location: Option<String>,
}

/// Checks a database or table name and returns it lowercased. Names become
/// path segments, so separators, dot segments and control characters are
/// refused; Glue allows 1–255 characters.
pub(crate) fn normalize_name(kind: &str, name: &str) -> Result<String> {
    let bad = |why: &str| CatalogError::InvalidInput(format!("{kind} name {name:?} {why}"));
    if name.is_empty() || name.chars().count() > 255 {
        return Err(bad("must be 1 to 255 characters long"));
    }
    if name == "."
        || name == ".."
        || name.starts_with('_') && kind == "database" && name == "_lakehose"
    {
        return Err(bad("is reserved"));
    }
    if name.chars().any(|c| {
        c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
    }) {
        return Err(bad(
            "must not contain control characters or any of / \\ : * ? \" < > |",
        ));
    }
    Ok(name.to_lowercase())
}

/// Checks the types of columns about to be written (`owner` names what
/// they belong to, e.g. `table db.t`): every reader walks a type
/// recursively, so a type that is malformed or nested too deep is refused
/// here, naming the column, rather than stored for every reader to trip on.
pub(crate) fn check_column_types<'a>(
    owner: &str,
    kind: &str,
    columns: impl IntoIterator<Item = &'a Column>,
) -> Result<()> {
    for c in columns {
        if let Some(t) = &c.data_type {
            crate::schema::check_hive_type(t).map_err(|why| {
                CatalogError::InvalidInput(format!(
                    "{kind} {:?} of {owner} has an invalid Type: {why}",
                    c.name
                ))
            })?;
        }
    }
    Ok(())
}

/// Checks every column type of a table: its data columns and partition
/// keys.
/// Partition indexes a table may have.
pub(crate) const MAX_PARTITION_INDEXES: usize = 3;

/// Whether every key of `index` is a partition key of `table`.
fn index_keys_exist(table: &Table, index: &PartitionIndex) -> bool {
    index.keys.iter().all(|k| {
        table
            .partition_keys
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(k))
    })
}

/// Checks a new partition index against the table's keys and indexes.
pub(crate) fn check_partition_index(table: &Table, index: &PartitionIndex) -> Result<()> {
    let owner = format!("table {}", table.name);
    if index.index_name.is_empty() || index.index_name.len() > 255 {
        return Err(CatalogError::InvalidInput(format!(
            "PartitionIndex.IndexName must be 1 to 255 characters, got {:?}",
            index.index_name
        )));
    }
    if index.keys.is_empty() {
        return Err(CatalogError::InvalidInput(
            "PartitionIndex.Keys must name at least one partition key".into(),
        ));
    }
    if let Some(k) = index.keys.iter().find(|k| {
        !table
            .partition_keys
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(k))
    }) {
        return Err(CatalogError::InvalidInput(format!(
            "PartitionIndex key {k:?} is not a partition key of {owner}"
        )));
    }
    let existing = table.partition_indexes.as_deref().unwrap_or_default();
    if existing
        .iter()
        .any(|i| i.index_name.eq_ignore_ascii_case(&index.index_name))
    {
        return Err(CatalogError::AlreadyExists(format!(
            "Partition index {} of {owner}",
            index.index_name
        )));
    }
    if existing.len() >= MAX_PARTITION_INDEXES {
        return Err(CatalogError::InvalidInput(format!(
            "{owner} already has {MAX_PARTITION_INDEXES} partition indexes, the most a table may have"
        )));
    }
    Ok(())
}

/// Checks the column types of a table: data columns and partition keys.
pub(crate) fn check_table_types(db: &str, table: &Table) -> Result<()> {
    let owner = format!("table {db}.{}", table.name);
    if let Some(sd) = &table.storage_descriptor {
        check_column_types(&owner, "Column", &sd.columns)?;
    }
    check_column_types(&owner, "Partition key", &table.partition_keys)
}

/// Checks the column types of a partition's storage descriptor.
fn check_partition_types(db: &str, table: &str, p: &Partition) -> Result<()> {
    match &p.storage_descriptor {
        Some(sd) => check_column_types(
            &format!("partition {:?} of table {db}.{table}", p.values),
            "Column",
            &sd.columns,
        ),
        None => Ok(()),
    }
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// One persisted version of an entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Version<T> {
    Put {
        value: T,
        /// The version that created this incarnation of the entity (a
        /// table deleted and created again is a new incarnation, with its
        /// own partitions).
        #[serde(default)]
        incarnation: u64,
    },
    Delete,
}

/// How many times a lost race is retried before it is reported.
const MAX_RETRIES: usize = 32;

/// A batch of partition changes: one immutable segment of a table's
/// partition log.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartitionOps {
    #[serde(default)]
    add: Vec<Partition>,
    #[serde(default)]
    delete: Vec<Vec<String>>,
}

/// A table's partitions as of segment `next - 1`.
#[derive(Debug, Default)]
struct PartitionState {
    next: u64,
    partitions: BTreeMap<Vec<String>, Partition>,
}

impl PartitionState {
    fn apply(&mut self, seq: u64, ops: PartitionOps) {
        if seq < self.next {
            return;
        }
        for p in ops.add {
            self.partitions.insert(p.values.clone(), p);
        }
        for v in ops.delete {
            self.partitions.remove(&v);
        }
        self.next = seq + 1;
    }
}

/// The embedded catalog, stored in the warehouse.
///
/// Partitions are an append-only log per table incarnation — one segment
/// per batch, so adding partitions never rewrites the others — replayed
/// into an in-memory index that later reads bring up to date by reading
/// only new segments.
#[derive(Debug, Clone)]
pub struct EmbeddedCatalog {
    storage: Storage,
    catalog_id: String,
    partitions: Arc<Mutex<HashMap<String, PartitionState>>>,
}

impl EmbeddedCatalog {
    /// The catalog in `storage`'s `_lakehose/catalog/`.
    pub fn new(storage: Storage) -> Self {
        Self {
            storage,
            catalog_id: "000000000000".into(),
            partitions: Arc::default(),
        }
    }

    /// The table, its partition-log folder and the up-to-date index.
    async fn partition_log(&self, database: &str, table: &str) -> Result<(Table, ObjectPath)> {
        let db = normalize_name("database", database)?;
        let name = normalize_name("table", table)?;
        self.require_database(&db).await?;
        let (_, current) = self
            .latest_entry::<Table>(&self.table_dir(&db, &name))
            .await?;
        let Some((table, incarnation)) = current else {
            return Err(CatalogError::NotFound(format!("Table {db}.{name}")));
        };
        let dir = self
            .storage
            .system_path("catalog/partitions")
            .join(db.as_str())
            .join(name.as_str())
            .join(format!("{incarnation:020}"));
        self.refresh_partitions(&dir).await?;
        Ok((table, dir))
    }

    /// Reads the log segments this process has not seen yet.
    async fn refresh_partitions(&self, dir: &ObjectPath) -> Result<()> {
        let have = self.partition_state(dir, |s| s.next);
        let segments: Vec<u64> = self
            .versions(dir)
            .await?
            .into_iter()
            .filter(|s| *s >= have)
            .collect();
        let reads = futures::stream::iter(segments)
            .map(|seq| async move {
                let path = dir.clone().join(format!("{seq:020}.json"));
                let bytes = self.storage.store().get(&path).await?.bytes().await?;
                let ops: PartitionOps =
                    serde_json::from_slice(&bytes).map_err(|source| CatalogError::Corrupt {
                        path: path.to_string(),
                        source,
                    })?;
                Ok::<_, CatalogError>((seq, ops))
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await;
        let mut cache = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let state = cache
            .entry(dir.to_string())
            .or_insert_with(|| PartitionState {
                next: 1,
                ..Default::default()
            });
        for read in reads {
            match read {
                Ok((seq, ops)) => state.apply(seq, ops),
                Err(CatalogError::Corrupt { path, source }) => {
                    // Its changes are lost, but the partitions before and
                    // after it stay readable; the next segment goes after it.
                    tracing::error!(file = %path, error = %source, "A catalog partition log segment is corrupt or truncated; it is skipped.");
                    let seq = path
                        .rsplit('/')
                        .next()
                        .and_then(|f| f.strip_suffix(".json"))
                        .and_then(|n| n.parse::<u64>().ok());
                    if let Some(seq) = seq {
                        state.next = state.next.max(seq + 1);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn partition_state<R>(&self, dir: &ObjectPath, f: impl FnOnce(&mut PartitionState) -> R) -> R {
        let mut cache = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        let state = cache
            .entry(dir.to_string())
            .or_insert_with(|| PartitionState {
                next: 1,
                ..Default::default()
            });
        f(state)
    }

    /// Appends one segment of partition changes, computed by `plan` from
    /// the current partitions; retried when another writer appended first.
    async fn append_partitions<F>(
        &self,
        dir: &ObjectPath,
        mut plan: F,
    ) -> Result<Vec<(Vec<String>, CatalogError)>>
    where
        F: FnMut(
            &BTreeMap<Vec<String>, Partition>,
        ) -> (PartitionOps, Vec<(Vec<String>, CatalogError)>),
    {
        for _ in 0..MAX_RETRIES {
            let (seq, ops, errors) = self.partition_state(dir, |s| {
                let (ops, errors) = plan(&s.partitions);
                (s.next, ops, errors)
            });
            if ops.add.is_empty() && ops.delete.is_empty() {
                return Ok(errors);
            }
            let path = dir.clone().join(format!("{seq:020}.json"));
            let bytes = serde_json::to_vec(&ops).map_err(|source| CatalogError::Corrupt {
                path: path.to_string(),
                source,
            })?;
            if self.storage.create_durable(&path, bytes.into()).await? {
                self.partition_state(dir, |s| s.apply(seq, ops));
                return Ok(errors);
            }
            self.refresh_partitions(dir).await?;
        }
        Err(CatalogError::ConcurrentModification(
            "partitions are being changed by other writers; try again".into(),
        ))
    }

    fn database_dir(&self, db: &str) -> ObjectPath {
        self.storage.system_path("catalog/databases").join(db)
    }

    fn table_dir(&self, db: &str, table: &str) -> ObjectPath {
        self.storage
            .system_path("catalog/tables")
            .join(db)
            .join(table)
    }

    /// Version numbers under `dir`, ascending.
    async fn versions(&self, dir: &ObjectPath) -> Result<Vec<u64>> {
        let listing = self.storage.store().list_with_delimiter(Some(dir)).await?;
        let mut versions: Vec<u64> = listing
            .objects
            .iter()
            .filter_map(|o| o.location.filename()?.strip_suffix(".json")?.parse().ok())
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    async fn read<T: DeserializeOwned>(
        &self,
        dir: &ObjectPath,
        version: u64,
    ) -> Result<Version<T>> {
        let path = dir.clone().join(format!("{version:020}.json"));
        let bytes = self.storage.store().get(&path).await?.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|source| CatalogError::Corrupt {
            path: path.to_string(),
            source,
        })
    }

    /// The newest version number and its value (`None` when never written
    /// or deleted last).
    async fn latest<T: DeserializeOwned>(&self, dir: &ObjectPath) -> Result<(u64, Option<T>)> {
        let (version, current) = self.latest_entry(dir).await?;
        Ok((version, current.map(|(value, _)| value)))
    }

    /// Like [`latest`](Self::latest), with the incarnation.
    async fn latest_entry<T: DeserializeOwned>(
        &self,
        dir: &ObjectPath,
    ) -> Result<(u64, Option<(T, u64)>)> {
        let versions = self.versions(dir).await?;
        let Some(&last) = versions.last() else {
            return Ok((0, None));
        };
        // A version that cannot be read (truncated or corrupt: a crash of
        // an older release, a disk fault) is reported by name and the one
        // before it is used; the next write still goes after it.
        for &version in versions.iter().rev() {
            match self.read(dir, version).await {
                Ok(Version::Put { value, incarnation }) => {
                    return Ok((last, Some((value, incarnation))));
                }
                Ok(Version::Delete) => return Ok((last, None)),
                Err(CatalogError::Corrupt { path, source }) => {
                    tracing::error!(file = %path, error = %source, "A catalog version file is corrupt or truncated; using the version before it.");
                }
                Err(e) => return Err(e),
            }
        }
        Ok((last, None))
    }

    /// Writes version `version`; `false` when another writer took it.
    async fn write<T: Serialize>(
        &self,
        dir: &ObjectPath,
        version: u64,
        entry: &Version<T>,
    ) -> Result<bool> {
        let path = dir.clone().join(format!("{version:020}.json"));
        let bytes = serde_json::to_vec_pretty(entry).map_err(|source| CatalogError::Corrupt {
            path: path.to_string(),
            source,
        })?;
        Ok(self.storage.create_durable(&path, bytes.into()).await?)
    }

    /// Deletes the entity in `dir` by writing a tombstone version.
    async fn tombstone<T: Serialize + DeserializeOwned>(
        &self,
        dir: &ObjectPath,
        what: &str,
    ) -> Result<()> {
        for _ in 0..MAX_RETRIES {
            let (version, current) = self.latest::<T>(dir).await?;
            if current.is_none() {
                return Err(CatalogError::NotFound(what.to_string()));
            }
            if self.write::<T>(dir, version + 1, &Version::Delete).await? {
                return Ok(());
            }
        }
        Err(CatalogError::ConcurrentModification(format!(
            "{what} is being changed by other writers; try again"
        )))
    }

    /// Entity names directly under `dir` (sub-folders).
    async fn children(&self, dir: &ObjectPath) -> Result<Vec<String>> {
        let listing = self.storage.store().list_with_delimiter(Some(dir)).await?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn require_database(&self, db: &str) -> Result<Database> {
        match self.latest::<Database>(&self.database_dir(db)).await? {
            (_, Some(d)) => Ok(d),
            _ => Err(CatalogError::NotFound(format!("Database {db}"))),
        }
    }

    fn with_version(mut table: Table, version: u64) -> Table {
        table.version_id = Some(version.to_string());
        table
    }
}

#[async_trait]
impl Catalog for EmbeddedCatalog {
    async fn create_database(&self, mut database: Database) -> Result<()> {
        let name = normalize_name("database", &database.name)?;
        if let Some(loc) = &database.location_uri
            && !loc.is_empty()
        {
            crate::Location::parse(loc).map_err(|e| CatalogError::InvalidInput(e.to_string()))?;
        }
        database.name = name.clone();
        database.create_time = Some(now_seconds());
        database.catalog_id = Some(self.catalog_id.clone());
        let dir = self.database_dir(&name);
        for _ in 0..MAX_RETRIES {
            let (version, current) = self.latest::<Database>(&dir).await?;
            if current.is_some() {
                return Err(CatalogError::AlreadyExists(format!("Database {name}")));
            }
            let entry = Version::Put {
                value: database.clone(),
                incarnation: version + 1,
            };
            if self.write(&dir, version + 1, &entry).await? {
                return Ok(());
            }
        }
        Err(CatalogError::ConcurrentModification(format!(
            "Database {name} is being changed by other writers; try again"
        )))
    }

    async fn get_database(&self, name: &str) -> Result<Database> {
        self.require_database(&normalize_name("database", name)?)
            .await
    }

    async fn list_databases(&self) -> Result<Vec<Database>> {
        let mut out = Vec::new();
        for name in self
            .children(&self.storage.system_path("catalog/databases"))
            .await?
        {
            if let (_, Some(d)) = self.latest::<Database>(&self.database_dir(&name)).await? {
                out.push(d);
            }
        }
        Ok(out)
    }

    async fn delete_database(&self, name: &str) -> Result<()> {
        let name = normalize_name("database", name)?;
        self.require_database(&name).await?;
        for table in self.list_tables(&name).await? {
            match self.delete_table(&name, &table.name).await {
                Ok(()) | Err(CatalogError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.tombstone::<Database>(&self.database_dir(&name), &format!("Database {name}"))
            .await
    }

    async fn create_table(&self, database: &str, mut table: Table) -> Result<()> {
        let db = normalize_name("database", database)?;
        let name = normalize_name("table", &table.name)?;
        self.require_database(&db).await?;
        if let Some(loc) = table
            .storage_descriptor
            .as_ref()
            .and_then(|sd| sd.location.as_ref())
            && !loc.is_empty()
        {
            crate::Location::parse(loc).map_err(|e| CatalogError::InvalidInput(e.to_string()))?;
        }
        table.name = name.clone();
        check_table_types(&db, &table)?;
        let now = now_seconds();
        table.database_name = Some(db.clone());
        table.create_time = Some(now);
        table.update_time = Some(now);
        table.catalog_id = Some(self.catalog_id.clone());
        table
            .table_type
            .get_or_insert_with(|| crate::model::EXTERNAL_TABLE.into());
        let dir = self.table_dir(&db, &name);
        for _ in 0..MAX_RETRIES {
            let (version, current) = self.latest::<Table>(&dir).await?;
            if current.is_some() {
                return Err(CatalogError::AlreadyExists(format!("Table {db}.{name}")));
            }
            let entry = Version::Put {
                value: Self::with_version(table.clone(), version + 1),
                incarnation: version + 1,
            };
            if self.write(&dir, version + 1, &entry).await? {
                return Ok(());
            }
        }
        Err(CatalogError::ConcurrentModification(format!(
            "Table {db}.{name} is being changed by other writers; try again"
        )))
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Table> {
        let db = normalize_name("database", database)?;
        let name = normalize_name("table", name)?;
        self.require_database(&db).await?;
        match self.latest::<Table>(&self.table_dir(&db, &name)).await? {
            (_, Some(t)) => Ok(t),
            _ => Err(CatalogError::NotFound(format!("Table {db}.{name}"))),
        }
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<Table>> {
        let db = normalize_name("database", database)?;
        self.require_database(&db).await?;
        let dir = self.storage.system_path("catalog/tables").join(db.as_str());
        let names = self.children(&dir).await?;
        // Read the tables concurrently: each is a listing and a get.
        let tables = futures::stream::iter(names)
            .map(|name| {
                let dir = self.table_dir(&db, &name);
                async move { self.latest::<Table>(&dir).await }
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await;
        let mut out = Vec::new();
        for t in tables {
            if let (_, Some(t)) = t? {
                out.push(t);
            }
        }
        Ok(out)
    }

    async fn update_table(
        &self,
        database: &str,
        mut table: Table,
        expected_version: Option<&str>,
    ) -> Result<()> {
        let db = normalize_name("database", database)?;
        let name = normalize_name("table", &table.name)?;
        table.name = name.clone();
        check_table_types(&db, &table)?;
        self.require_database(&db).await?;
        let dir = self.table_dir(&db, &name);
        for _ in 0..MAX_RETRIES {
            let (version, current) = self.latest_entry::<Table>(&dir).await?;
            let Some((current, incarnation)) = current else {
                return Err(CatalogError::NotFound(format!("Table {db}.{name}")));
            };
            if let Some(expected) = expected_version
                && expected != version.to_string()
            {
                return Err(CatalogError::ConcurrentModification(format!(
                    "Table {db}.{name} is at version {version}, not {expected}"
                )));
            }
            table.name = name.clone();
            table.database_name = Some(db.clone());
            table.create_time = current.create_time;
            // An update that does not name indexes keeps the table's, less
            // those over keys the table no longer has.
            let indexes = table
                .partition_indexes
                .take()
                .or_else(|| current.partition_indexes.clone());
            table.partition_indexes = indexes.map(|all| {
                all.into_iter()
                    .filter(|i| index_keys_exist(&table, i))
                    .collect()
            });
            table.update_time = Some(now_seconds());
            table.catalog_id = Some(self.catalog_id.clone());
            table
                .table_type
                .get_or_insert_with(|| crate::model::EXTERNAL_TABLE.into());
            let entry = Version::Put {
                value: Self::with_version(table.clone(), version + 1),
                incarnation,
            };
            if self.write(&dir, version + 1, &entry).await? {
                return Ok(());
            }
            if expected_version.is_some() {
                return Err(CatalogError::ConcurrentModification(format!(
                    "Table {db}.{name} was changed by another writer"
                )));
            }
        }
        Err(CatalogError::ConcurrentModification(format!(
            "Table {db}.{name} is being changed by other writers; try again"
        )))
    }

    async fn delete_table(&self, database: &str, name: &str) -> Result<()> {
        let db = normalize_name("database", database)?;
        let name = normalize_name("table", name)?;
        self.tombstone::<Table>(&self.table_dir(&db, &name), &format!("Table {db}.{name}"))
            .await
    }

    async fn table_versions(
        &self,
        database: &str,
        name: &str,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<Table>, bool)> {
        let db = normalize_name("database", database)?;
        let name = normalize_name("table", name)?;
        let dir = self.table_dir(&db, &name);
        let not_found = || CatalogError::NotFound(format!("Table {db}.{name}"));
        // Newest first.
        let mut versions = self.versions(&dir).await?;
        versions.reverse();
        let Some(&last) = versions.first() else {
            return Err(not_found());
        };
        let incarnation = match self.read::<Table>(&dir, last).await {
            Ok(Version::Put { incarnation, .. }) => incarnation,
            Ok(Version::Delete) => return Err(not_found()),
            // The newest version is unreadable: walk back version by version.
            Err(CatalogError::Corrupt { path, source }) => {
                tracing::error!(file = %path, error = %source, "A catalog version file is corrupt or truncated; it is left out.");
                0
            }
            Err(e) => return Err(e),
        };
        if incarnation > 0 {
            // The current incarnation's versions are `incarnation..=last`:
            // only the page is read.
            versions.retain(|v| *v >= incarnation);
            let more = versions.len() > skip.saturating_add(limit);
            let page: Vec<u64> = versions.into_iter().skip(skip).take(limit).collect();
            let reads = futures::stream::iter(page)
                .map(|v| {
                    let dir = &dir;
                    async move { self.read::<Table>(dir, v).await }
                })
                .buffered(16)
                .collect::<Vec<_>>()
                .await;
            let mut out = Vec::with_capacity(reads.len());
            for read in reads {
                match read {
                    Ok(Version::Put { value, .. }) => out.push(value),
                    Ok(Version::Delete) => break,
                    Err(CatalogError::Corrupt { path, source }) => {
                        tracing::error!(file = %path, error = %source, "A catalog version file is corrupt or truncated; it is left out.");
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok((out, more));
        }
        // Versions written before incarnations were recorded: walk back to
        // the last delete, reading no further than the page.
        let mut out = Vec::new();
        let mut seen = 0usize;
        for version in versions {
            match self.read::<Table>(&dir, version).await {
                Ok(Version::Put { value, .. }) => {
                    if seen >= skip.saturating_add(limit) {
                        return Ok((out, true));
                    }
                    if seen >= skip {
                        out.push(value);
                    }
                    seen += 1;
                }
                Ok(Version::Delete) => break,
                Err(CatalogError::Corrupt { path, source }) => {
                    tracing::error!(file = %path, error = %source, "A catalog version file is corrupt or truncated; it is left out.");
                }
                Err(e) => return Err(e),
            }
        }
        Ok((out, false))
    }

    async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: Vec<Partition>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>> {
        let (table, dir) = self.partition_log(database, table).await?;
        let keys = table.partition_keys.len();
        let now = now_seconds();
        let db = table.database_name.clone();
        self.append_partitions(&dir, |existing| {
            let mut ops = PartitionOps::default();
            let mut errors = Vec::new();
            let mut seen = HashSet::new();
            for p in &partitions {
                let values = p.values.clone();
                if values.len() != keys {
                    errors.push((
                        values,
                        CatalogError::InvalidInput(format!(
                            "the table has {keys} partition keys but {} values were given",
                            p.values.len()
                        )),
                    ));
                } else if let Err(e) =
                    check_partition_types(db.as_deref().unwrap_or_default(), &table.name, p)
                {
                    errors.push((values, e));
                } else if existing.contains_key(&values) || !seen.insert(values.clone()) {
                    errors.push((
                        values.clone(),
                        CatalogError::AlreadyExists(format!("Partition {values:?}")),
                    ));
                } else {
                    let mut p = p.clone();
                    p.database_name = db.clone();
                    p.table_name = Some(table.name.clone());
                    p.creation_time = Some(now);
                    p.catalog_id = Some(self.catalog_id.clone());
                    ops.add.push(p);
                }
            }
            (ops, errors)
        })
        .await
    }

    async fn get_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
    ) -> Result<Partition> {
        let (_, dir) = self.partition_log(database, table).await?;
        self.partition_state(&dir, |s| s.partitions.get(values).cloned())
            .ok_or_else(|| CatalogError::NotFound(format!("Partition {values:?}")))
    }

    async fn get_partitions(
        &self,
        database: &str,
        table: &str,
        expression: Option<&str>,
    ) -> Result<Vec<Partition>> {
        let (table, dir) = self.partition_log(database, table).await?;
        let filter = match expression.map(str::trim) {
            Some(e) if !e.is_empty() => Some(
                PartitionFilter::parse(e, &table.partition_keys).map_err(|why| {
                    CatalogError::InvalidInput(format!("invalid Expression {e:?}: {why}"))
                })?,
            ),
            _ => None,
        };
        Ok(self.partition_state(&dir, |s| {
            s.partitions
                .values()
                .filter(|p| filter.as_ref().is_none_or(|f| f.matches(&p.values)))
                .cloned()
                .collect()
        }))
    }

    async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: Vec<Vec<String>>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>> {
        let (_, dir) = self.partition_log(database, table).await?;
        self.append_partitions(&dir, |existing| {
            let mut ops = PartitionOps::default();
            let mut errors = Vec::new();
            for v in &values {
                if existing.contains_key(v) && !ops.delete.contains(v) {
                    ops.delete.push(v.clone());
                } else {
                    errors.push((
                        v.clone(),
                        CatalogError::NotFound(format!("Partition {v:?}")),
                    ));
                }
            }
            (ops, errors)
        })
        .await
    }

    async fn update_partitions(
        &self,
        database: &str,
        table: &str,
        updates: Vec<PartitionUpdate>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>> {
        let (table, dir) = self.partition_log(database, table).await?;
        let keys = table.partition_keys.len();
        let db = table.database_name.clone();
        self.append_partitions(&dir, |existing| {
            let mut ops = PartitionOps::default();
            let mut errors = Vec::new();
            for u in &updates {
                let Some(current) = existing.get(&u.values) else {
                    errors.push((
                        u.values.clone(),
                        CatalogError::NotFound(format!("Partition {:?}", u.values)),
                    ));
                    continue;
                };
                let location = |p: &Partition| {
                    p.storage_descriptor
                        .as_ref()
                        .and_then(|sd| sd.location.clone())
                };
                if let Some(expected) = &u.expected_location
                    && location(current).as_deref() != Some(expected.as_str())
                {
                    errors.push((
                        u.values.clone(),
                        CatalogError::ConcurrentModification(format!(
                            "Partition {:?} moved to {} meanwhile",
                            u.values,
                            location(current).unwrap_or_default()
                        )),
                    ));
                    continue;
                }
                let mut p = u.partition.clone();
                if p.values.is_empty() {
                    p.values = u.values.clone();
                }
                if p.values.len() != keys {
                    errors.push((
                        u.values.clone(),
                        CatalogError::InvalidInput(format!(
                            "the table has {keys} partition keys but {} values were given",
                            p.values.len()
                        )),
                    ));
                    continue;
                }
                if let Err(e) =
                    check_partition_types(db.as_deref().unwrap_or_default(), &table.name, &p)
                {
                    errors.push((u.values.clone(), e));
                    continue;
                }
                if p.values != u.values {
                    if existing.contains_key(&p.values) {
                        errors.push((
                            u.values.clone(),
                            CatalogError::AlreadyExists(format!("Partition {:?}", p.values)),
                        ));
                        continue;
                    }
                    ops.delete.push(u.values.clone());
                }
                p.database_name = db.clone();
                p.table_name = Some(table.name.clone());
                p.creation_time = current.creation_time;
                p.catalog_id = Some(self.catalog_id.clone());
                ops.add.push(p);
            }
            (ops, errors)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, StorageDescriptor};

    fn catalog() -> (tempfile::TempDir, EmbeddedCatalog) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        (dir, EmbeddedCatalog::new(storage))
    }

    fn table(name: &str, columns: &[(&str, &str)]) -> Table {
        Table {
            name: name.into(),
            storage_descriptor: Some(StorageDescriptor {
                columns: columns
                    .iter()
                    .map(|(n, t)| Column {
                        name: (*n).into(),
                        data_type: Some((*t).into()),
                        ..Default::default()
                    })
                    .collect(),
                location: Some("s3://lake/logs/".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn malformed_types_are_refused_when_written() {
        let (_dir, c) = catalog();
        c.create_database(Database {
            name: "db".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let deep = format!("{}int{}", "struct<a:".repeat(5000), ">".repeat(5000));
        let err = c
            .create_table("db", table("t", &[("ok", "int"), ("deep", &deep)]))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, CatalogError::InvalidInput(_)), "{message}");
        assert!(
            message.contains("Column \"deep\" of table db.t")
                && message.contains("nested deeper than 64 levels"),
            "{message}"
        );
        let mut keyed = table("t", &[("ok", "int")]);
        keyed.partition_keys.push(Column {
            name: "dt".into(),
            data_type: Some("str\u{3000}ing".into()),
            ..Default::default()
        });
        let message = c.create_table("db", keyed).await.unwrap_err().to_string();
        assert!(
            message.contains("Partition key \"dt\"") && message.contains("U+3000"),
            "{message}"
        );
        assert!(matches!(
            c.get_table("db", "t").await,
            Err(CatalogError::NotFound(_))
        ));

        let mut good = table("t", &[("ok", "int")]);
        good.partition_keys.push(Column {
            name: "dt".into(),
            data_type: Some("string".into()),
            ..Default::default()
        });
        c.create_table("db", good).await.unwrap();
        let message = c
            .update_table("db", table("t", &[("bad", "array<int")]), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(message.contains("Column \"bad\""), "{message}");
        assert_eq!(
            c.table_versions("db", "t", 0, 100).await.unwrap().0.len(),
            1
        );

        let partition = |value: &str, ty: &str| Partition {
            values: vec![value.into()],
            storage_descriptor: Some(StorageDescriptor {
                columns: vec![Column {
                    name: "ok".into(),
                    data_type: Some(ty.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let errors = c
            .create_partitions(
                "db",
                "t",
                vec![partition("a", &deep), partition("b", "int")],
            )
            .await
            .unwrap();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, ["a"]);
        assert!(errors[0].1.to_string().contains("nested deeper"));
        let errors = c
            .update_partitions(
                "db",
                "t",
                vec![PartitionUpdate {
                    values: vec!["b".into()],
                    partition: partition("b", &deep),
                    expected_location: None,
                }],
            )
            .await
            .unwrap();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].1.to_string().contains("nested deeper"));
        let stored = c.get_partition("db", "t", &["b".into()]).await.unwrap();
        assert_eq!(
            stored.storage_descriptor.unwrap().columns[0]
                .data_type
                .as_deref(),
            Some("int")
        );
    }

    #[tokio::test]
    async fn table_versions_read_one_page() {
        let (dir, c) = catalog();
        c.create_database(Database {
            name: "db".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        c.create_table("db", table("t", &[("a", "int")]))
            .await
            .unwrap();
        for _ in 0..6 {
            c.update_table("db", table("t", &[("a", "int")]), None)
                .await
                .unwrap();
        }
        let ids = |page: &[Table]| -> Vec<String> {
            page.iter().map(|t| t.version_id.clone().unwrap()).collect()
        };
        let (first, more) = c.table_versions("db", "t", 0, 3).await.unwrap();
        assert_eq!(
            (ids(&first), more),
            (vec!["7".into(), "6".into(), "5".into()], true)
        );
        let (last, more) = c.table_versions("db", "t", 6, 3).await.unwrap();
        assert_eq!((ids(&last), more), (vec!["1".to_string()], false));
        // A version outside the page that cannot be read does not matter
        // (only the page is read); one inside it is left out, named in the
        // log.
        let version_file = dir
            .path()
            .join("_lakehose/catalog/tables/db/t/00000000000000000002.json");
        assert!(version_file.exists(), "{}", version_file.display());
        std::fs::write(&version_file, b"{ torn").unwrap();
        let (page, _) = c.table_versions("db", "t", 0, 3).await.unwrap();
        assert_eq!(ids(&page), ["7", "6", "5"]);
        let (page, _) = c.table_versions("db", "t", 4, 3).await.unwrap();
        assert_eq!(ids(&page), ["3", "1"]);
    }

    #[tokio::test]
    async fn databases_and_tables_with_versions() {
        let (_dir, c) = catalog();
        c.create_database(Database {
            name: "Logs".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(matches!(
            c.create_database(Database {
                name: "logs".into(),
                ..Default::default()
            })
            .await,
            Err(CatalogError::AlreadyExists(_))
        ));
        assert_eq!(c.get_database("LOGS").await.unwrap().name, "logs");
        c.create_table("logs", table("Requests", &[("status", "bigint")]))
            .await
            .unwrap();
        c.create_table("logs", table("errors", &[("msg", "string")]))
            .await
            .unwrap();
        let names: Vec<String> = c
            .list_tables("logs")
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["errors", "requests"]);
        let t = c.get_table("logs", "requests").await.unwrap();
        assert_eq!(t.version_id.as_deref(), Some("1"));
        assert_eq!(t.table_type.as_deref(), Some("EXTERNAL_TABLE"));

        c.update_table(
            "logs",
            table("requests", &[("status", "bigint"), ("path", "string")]),
            Some("1"),
        )
        .await
        .unwrap();
        assert!(matches!(
            c.update_table("logs", table("requests", &[]), Some("1"))
                .await,
            Err(CatalogError::ConcurrentModification(_))
        ));
        let (versions, _) = c.table_versions("logs", "requests", 0, 100).await.unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].version_id.as_deref(), Some("2"));
        assert_eq!(
            versions[0]
                .storage_descriptor
                .as_ref()
                .unwrap()
                .columns
                .len(),
            2
        );
        assert_eq!(versions[1].create_time, versions[0].create_time);

        c.delete_table("logs", "requests").await.unwrap();
        assert!(matches!(
            c.get_table("logs", "requests").await,
            Err(CatalogError::NotFound(_))
        ));
        // Re-created: a new incarnation with its own history.
        c.create_table("logs", table("requests", &[("x", "int")]))
            .await
            .unwrap();
        assert_eq!(
            c.table_versions("logs", "requests", 0, 100)
                .await
                .unwrap()
                .0
                .len(),
            1
        );
        assert_eq!(
            c.get_table("logs", "requests")
                .await
                .unwrap()
                .version_id
                .as_deref(),
            Some("4")
        );

        c.delete_database("logs").await.unwrap();
        assert!(matches!(
            c.get_database("logs").await,
            Err(CatalogError::NotFound(_))
        ));
        assert!(c.list_databases().await.unwrap().is_empty());
        assert!(matches!(
            c.create_table("logs", table("t", &[])).await,
            Err(CatalogError::NotFound(_))
        ));
    }

    fn partition(values: &[&str]) -> Partition {
        Partition {
            values: values.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn partition_updates_swap_locations_only_from_the_expected_one() {
        let (dir, c) = catalog();
        c.create_database(Database {
            name: "db".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut t = table("events", &[("x", "int")]);
        t.partition_keys = vec![Column {
            name: "dt".into(),
            data_type: Some("string".into()),
            ..Default::default()
        }];
        c.create_table("db", t).await.unwrap();
        let at = |values: &[&str], location: &str| Partition {
            storage_descriptor: Some(StorageDescriptor {
                location: Some(location.into()),
                ..Default::default()
            }),
            ..partition(values)
        };
        c.create_partitions("db", "events", vec![at(&["a"], "s3://b/t/dt=a/")])
            .await
            .unwrap();
        let update = |expected: &str, to: &str| PartitionUpdate {
            values: vec!["a".into()],
            partition: at(&[], to),
            expected_location: Some(expected.into()),
        };
        let errors = c
            .update_partitions(
                "db",
                "events",
                vec![update("s3://b/t/dt=a/", "s3://b/t/dt=a/_c1/")],
            )
            .await
            .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        // A second writer that planned from the old location loses.
        let errors = c
            .update_partitions(
                "db",
                "events",
                vec![update("s3://b/t/dt=a/", "s3://b/t/dt=a/_c2/")],
            )
            .await
            .unwrap();
        assert!(matches!(
            errors[0].1,
            CatalogError::ConcurrentModification(_)
        ));
        let missing = PartitionUpdate {
            values: vec!["zz".into()],
            partition: at(&[], "s3://b/x/"),
            expected_location: None,
        };
        let errors = c
            .update_partitions("db", "events", vec![missing])
            .await
            .unwrap();
        assert!(matches!(errors[0].1, CatalogError::NotFound(_)));
        let other = EmbeddedCatalog::new(Storage::local(dir.path()).unwrap());
        let p = other
            .get_partition("db", "events", &["a".to_string()])
            .await
            .unwrap();
        assert_eq!(
            p.storage_descriptor.unwrap().location.as_deref(),
            Some("s3://b/t/dt=a/_c1/")
        );
        assert!(p.creation_time.is_some());
    }

    #[tokio::test]
    async fn partitions_add_filter_delete_and_reset_with_the_table() {
        let (dir, c) = catalog();
        c.create_database(Database {
            name: "db".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut t = table("events", &[("x", "int")]);
        t.partition_keys = vec![
            Column {
                name: "year".into(),
                data_type: Some("int".into()),
                ..Default::default()
            },
            Column {
                name: "service".into(),
                data_type: Some("string".into()),
                ..Default::default()
            },
        ];
        c.create_table("db", t.clone()).await.unwrap();
        let errors = c
            .create_partitions(
                "db",
                "events",
                vec![
                    partition(&["2025", "web"]),
                    partition(&["2026", "web"]),
                    partition(&["2026", "api"]),
                    partition(&["2026", "api"]),
                    partition(&["2027"]),
                ],
            )
            .await
            .unwrap();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(matches!(errors[0].1, CatalogError::AlreadyExists(_)));
        assert!(matches!(errors[1].1, CatalogError::InvalidInput(_)));
        let hits = c
            .get_partitions("db", "events", Some("year >= 2026 AND service = 'web'"))
            .await
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].table_name.as_deref(), Some("events"));
        assert_eq!(
            c.get_partitions("db", "events", None).await.unwrap().len(),
            3
        );
        assert!(matches!(
            c.get_partitions("db", "events", Some("nope = 1")).await,
            Err(CatalogError::InvalidInput(_))
        ));
        // Another process sees the same partitions (a fresh cache).
        let other = EmbeddedCatalog::new(Storage::local(dir.path()).unwrap());
        assert_eq!(
            other
                .get_partitions("db", "events", None)
                .await
                .unwrap()
                .len(),
            3
        );
        let errors = other
            .delete_partitions(
                "db",
                "events",
                vec![
                    vec!["2025".into(), "web".into()],
                    vec!["1999".into(), "x".into()],
                ],
            )
            .await
            .unwrap();
        assert_eq!(errors.len(), 1);
        // ...and the first catalog catches up on its next read.
        assert_eq!(
            c.get_partitions("db", "events", None).await.unwrap().len(),
            2
        );
        c.get_partition("db", "events", &["2026".into(), "api".into()])
            .await
            .unwrap();
        // A re-created table starts with no partitions.
        c.delete_table("db", "events").await.unwrap();
        c.create_table("db", t).await.unwrap();
        assert!(
            c.get_partitions("db", "events", None)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn invalid_names_are_refused() {
        let (_dir, c) = catalog();
        for bad in ["", "a/b", "..", "x\ny", &"n".repeat(256)] {
            let r = c
                .create_database(Database {
                    name: bad.to_string(),
                    ..Default::default()
                })
                .await;
            assert!(
                matches!(r, Err(CatalogError::InvalidInput(_))),
                "{bad:?}: {r:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // Two catalogs over one folder behave like two processes.
        let a = EmbeddedCatalog::new(Storage::local(dir.path()).unwrap());
        let b = EmbeddedCatalog::new(Storage::local(dir.path()).unwrap());
        a.create_database(Database {
            name: "db".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        a.create_table("db", table("shared", &[])).await.unwrap();
        let mut tasks = Vec::new();
        for (w, c) in [a.clone(), b.clone()].into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    c.create_table("db", table(&format!("t{w}_{i}"), &[]))
                        .await
                        .unwrap();
                    c.update_table(
                        "db",
                        table("shared", &[(&format!("c{w}_{i}"), "int")]),
                        None,
                    )
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(b.list_tables("db").await.unwrap().len(), 41);
        // Every update is a version: 1 create + 40 updates.
        let (versions, _) = a.table_versions("db", "shared", 0, 100).await.unwrap();
        assert_eq!(versions.len(), 41);
        let mut ids: Vec<u64> = versions
            .iter()
            .map(|t| t.version_id.as_ref().unwrap().parse().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, (1..=41).collect::<Vec<_>>());
    }
    #[tokio::test]
    async fn a_corrupt_newest_version_falls_back_to_the_one_before_it() {
        let (dir, c) = catalog();
        c.create_database(Database {
            name: "db".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        c.create_table("db", table("t", &[("a", "string")]))
            .await
            .unwrap();
        c.create_table("db", table("u", &[("a", "string")]))
            .await
            .unwrap();
        c.update_table("db", table("t", &[("a", "string"), ("b", "int")]), None)
            .await
            .unwrap();
        // A crash of an older release left the newest version truncated.
        let versions = dir.path().join("_lakehose/catalog/tables/db/t");
        let newest = versions.join(format!("{:020}.json", 2));
        let text = std::fs::read(&newest).unwrap();
        std::fs::write(&newest, &text[..text.len() / 3]).unwrap();

        let t = c.get_table("db", "t").await.unwrap();
        assert_eq!(t.storage_descriptor.unwrap().columns.len(), 1);
        assert_eq!(c.list_tables("db").await.unwrap().len(), 2);
        assert_eq!(
            c.table_versions("db", "t", 0, 100).await.unwrap().0.len(),
            1
        );
        // The next write goes after the corrupt version.
        c.update_table("db", table("t", &[("c", "double")]), None)
            .await
            .unwrap();
        assert!(versions.join(format!("{:020}.json", 3)).exists());
        let t = c.get_table("db", "t").await.unwrap();
        assert_eq!(t.storage_descriptor.unwrap().columns[0].name, "c");
    }

    #[tokio::test]
    async fn a_corrupt_partition_log_segment_is_skipped() {
        let (dir, c) = catalog();
        c.create_database(Database {
            name: "db".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut t = table("events", &[("x", "int")]);
        t.partition_keys = vec![Column {
            name: "dt".into(),
            data_type: Some("string".into()),
            ..Default::default()
        }];
        c.create_table("db", t).await.unwrap();
        for v in ["a", "b", "c"] {
            c.create_partitions("db", "events", vec![partition(&[v])])
                .await
                .unwrap();
        }
        let log = dir.path().join("_lakehose/catalog/partitions/db/events");
        let incarnation = std::fs::read_dir(&log)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let second = incarnation.join(format!("{:020}.json", 2));
        std::fs::write(&second, b"{\"add\": [").unwrap();
        // A fresh process reads the log from the start.
        let c = EmbeddedCatalog::new(Storage::local(dir.path()).unwrap());
        let found = c.get_partitions("db", "events", None).await.unwrap();
        let values: Vec<Vec<String>> = found.into_iter().map(|p| p.values).collect();
        assert_eq!(values, [vec!["a".to_string()], vec!["c".to_string()]]);
        c.create_partitions("db", "events", vec![partition(&["d"])])
            .await
            .unwrap();
        assert!(incarnation.join(format!("{:020}.json", 4)).exists());
    }
}
