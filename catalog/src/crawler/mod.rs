//! The crawler: walks `s3://` paths, classifies and samples files, infers
//! and merges schemas, finds partitions, groups folders into tables and
//! writes them to the catalog.
//!
//! ```text
//! list target ─▶ leaf folders ─▶ sample files (classify.rs) ─▶ folder schemas
//!      ─▶ group: one table per root when compatible, else split by sub-folder
//!      ─▶ catalog: create / update (SchemaChangePolicy) tables, add partitions
//! ```
//!
//! **Grouping.** Files under a target form one table when all leaf folders
//! sit at the same depth and their schemas are compatible: the same
//! classification, types that merge (scalars widen by the rules of
//! [`crate::schema`]), and each folder sharing at least half of the
//! table's columns (Glue's "most schemas are similar"). Otherwise each
//! sub-folder is crawled as a table of its own. Folders between the table's
//! root and its files become partition keys: `key=value` folders give `key`,
//! other folders `partition_0`, `partition_1`, ... (all `string`).
//!
//! **Bad files** (empty, corrupt, unrecognized) are reported and skipped;
//! the crawl goes on.

pub mod classify;
pub mod service;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use crate::catalog::{Catalog, CatalogError, PartitionUpdate};
use crate::model::{
    Column, Database, Partition, PartitionIndex, StorageDescriptor, Table, formats,
};
use crate::schema::{JType, hive_type, scalar_of_hive};
use crate::storage::{Location, Storage};
use classify::{FileSchema, classify};

/// Bytes read from a text file to infer its schema.
pub(crate) const DEFAULT_SAMPLE_BYTES: usize = 1024 * 1024;
/// Files sampled per leaf folder.
pub const DEFAULT_SAMPLE_FILES: usize = 3;

/// What happens to an existing table whose schema changed
/// (`SchemaChangePolicy.UpdateBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateBehavior {
    /// `UPDATE_IN_DATABASE`: add new columns, widen changed types.
    UpdateInDatabase,
    /// `LOG`: leave the table as it is.
    Log,
}

/// What to do with a table whose data is gone
/// (`SchemaChangePolicy.DeleteBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteBehavior {
    /// `DELETE_FROM_DATABASE`.
    DeleteFromDatabase,
    /// `DEPRECATE_IN_DATABASE`: mark it with `DEPRECATED_BY_CRAWLER`.
    DeprecateInDatabase,
    /// `LOG`.
    Log,
}

/// The name of the partition index a crawler gives the tables it creates
/// (`CreatePartitionIndex`).
pub(crate) const CRAWLER_INDEX: &str = "crawler_partition_index";

/// The options of a crawler's `Configuration` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrawlerConfiguration {
    /// `CrawlerOutput.Tables.AddOrUpdateBehavior = MergeNewColumns`: a
    /// table's update only adds the new columns; existing ones keep their
    /// types and are never dropped.
    pub merge_new_columns: bool,
    /// `CrawlerOutput.Partitions.AddOrUpdateBehavior = InheritFromTable`:
    /// partitions take the table's schema, formats and SerDe (new ones when
    /// added, existing ones when the table changes).
    pub inherit_from_table: bool,
    /// `Grouping.TableGroupingPolicy = CombineCompatibleSchemas`: sibling
    /// folders of one format form one table whatever their columns.
    pub combine_compatible_schemas: bool,
    /// `Grouping.TableLevelConfiguration`: tables are made at this folder
    /// level (the bucket is level 1), one per folder there.
    pub table_level: Option<usize>,
    /// `CrawlerOutput.Tables.TableThreshold`: a crawl that would make more
    /// tables fails without changing the catalog.
    pub table_threshold: Option<usize>,
    /// `CreatePartitionIndex` (default true): tables the crawler creates
    /// get a partition index over their partition keys.
    pub create_partition_index: bool,
}

impl Default for CrawlerConfiguration {
    fn default() -> Self {
        Self {
            merge_new_columns: false,
            inherit_from_table: false,
            combine_compatible_schemas: false,
            table_level: None,
            table_threshold: None,
            create_partition_index: true,
        }
    }
}

/// The folder level of a target's root: the bucket is level 1, each folder
/// of its key one more.
pub(crate) fn target_level(target: &Location) -> usize {
    1 + target.key().split('/').filter(|s| !s.is_empty()).count()
}

/// How to crawl.
#[derive(Debug, Clone)]
pub struct CrawlOptions {
    /// Name of the crawler (recorded on the tables it writes).
    pub name: String,
    /// Database the tables go to (created when missing).
    pub database: String,
    /// Prefix of every table name.
    pub table_prefix: String,
    /// Glob patterns (relative to each target) of keys to skip.
    pub exclusions: Vec<String>,
    /// Files sampled per leaf folder.
    pub sample_files: usize,
    /// Bytes read from each sampled text file.
    pub sample_bytes: usize,
    /// Schema-change policy.
    pub update: UpdateBehavior,
    /// Deleted-data policy.
    pub delete: DeleteBehavior,
    /// `RecrawlPolicy` `CRAWL_NEW_FOLDERS_ONLY`: folders already cataloged
    /// by this crawler are not read again, and table definitions are left
    /// as they are (update and delete behaviours are `LOG`); new folders
    /// still add partitions and tables.
    pub new_folders_only: bool,
    /// The `Configuration` document's options.
    pub configuration: CrawlerConfiguration,
}

impl CrawlOptions {
    /// Defaults for a crawl into `database`.
    pub fn new(name: &str, database: &str) -> Self {
        Self {
            name: name.to_string(),
            database: database.to_string(),
            table_prefix: String::new(),
            exclusions: Vec::new(),
            sample_files: DEFAULT_SAMPLE_FILES,
            sample_bytes: DEFAULT_SAMPLE_BYTES,
            update: UpdateBehavior::UpdateInDatabase,
            delete: DeleteBehavior::DeprecateInDatabase,
            new_folders_only: false,
            configuration: CrawlerConfiguration::default(),
        }
    }
}

/// Reports progress of a crawl.
pub trait CrawlProgress: Send + Sync {
    /// `n` more files were found.
    fn found(&self, _n: u64) {}
    /// One file was sampled or skipped.
    fn scanned(&self) {}
}

/// No progress reporting.
pub struct NoProgress;
impl CrawlProgress for NoProgress {}

/// What a crawl did.
#[derive(Debug, Default, Clone)]
pub struct CrawlSummary {
    /// Tables created.
    pub tables_created: Vec<String>,
    /// Tables whose definition changed.
    pub tables_updated: Vec<String>,
    /// Tables deleted or deprecated.
    pub tables_deleted: Vec<String>,
    /// Partitions added.
    pub partitions_added: usize,
    /// Files seen.
    pub files: u64,
    /// Bytes of the files seen.
    pub bytes: u64,
    /// Files skipped, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Errors of a crawl as a whole (a bad file is not one: it is skipped).
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// A target or option is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Listing or reading storage failed.
    #[error("storage error: {0}")]
    Storage(#[from] object_store::Error),
}

/// One leaf folder: its files and merged schema.
#[derive(Debug, Clone)]
struct Leaf {
    /// Folder segments below the target.
    segments: Vec<String>,
    files: u64,
    bytes: u64,
    schema: Option<FileSchema>,
}

/// A table the crawl found.
#[derive(Debug, Clone)]
struct Found {
    name: String,
    location: String,
    schema: FileSchema,
    keys: Vec<String>,
    partitions: Vec<(Vec<String>, String)>,
    files: u64,
    bytes: u64,
}

/// Crawls `targets` into the catalog.
pub async fn crawl(
    storage: &Storage,
    catalog: &dyn Catalog,
    targets: &[Location],
    options: &CrawlOptions,
    progress: &dyn CrawlProgress,
) -> Result<CrawlSummary, CrawlError> {
    let started = Instant::now();
    let mut summary = CrawlSummary::default();
    let mut globs = globset::GlobSetBuilder::new();
    for pattern in &options.exclusions {
        globs.add(
            globset::Glob::new(pattern)
                .map_err(|e| CrawlError::Invalid(format!("exclusion {pattern:?}: {e}")))?,
        );
    }
    let exclusions = globs
        .build()
        .map_err(|e| CrawlError::Invalid(e.to_string()))?;
    let known = if options.new_folders_only {
        known_folders(catalog, options).await?
    } else {
        HashMap::new()
    };
    let mut found = Vec::new();
    for target in targets {
        let leaves = scan(
            storage,
            target,
            &exclusions,
            options,
            &known,
            progress,
            &mut summary,
        )
        .await?;
        let root_name = target
            .key()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or(target.bucket());
        let grouping = Grouping {
            target,
            combine: options.configuration.combine_compatible_schemas,
        };
        match options.configuration.table_level {
            Some(level) => {
                let depth = level.saturating_sub(target_level(target));
                table_level_groups(
                    &grouping,
                    root_name,
                    depth,
                    leaves,
                    &mut found,
                    &mut summary,
                );
            }
            None => grouping.group(root_name, &[], leaves, &mut found),
        }
    }
    if let Some(threshold) = options.configuration.table_threshold
        && found.len() > threshold
    {
        return Err(CrawlError::Invalid(format!(
            "the crawl found {} tables, more than the {threshold} CrawlerOutput.Tables.TableThreshold allows; the catalog was not changed",
            found.len()
        )));
    }
    let mut effective = options.clone();
    if options.new_folders_only {
        effective.update = UpdateBehavior::Log;
        effective.delete = DeleteBehavior::Log;
    }
    apply(catalog, &effective, found, targets, &mut summary).await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Lists a target and samples every leaf folder.
async fn scan(
    storage: &Storage,
    target: &Location,
    exclusions: &globset::GlobSet,
    options: &CrawlOptions,
    known: &HashMap<String, FileSchema>,
    progress: &dyn CrawlProgress,
    summary: &mut CrawlSummary,
) -> Result<Vec<Leaf>, CrawlError> {
    let base = target.object_path();
    let base_str = base.as_ref().to_string();
    let mut folders: BTreeMap<Vec<String>, Vec<(ObjectPath, u64)>> = BTreeMap::new();
    let mut listing = storage.store().list(Some(&base));
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        let full = meta.location.as_ref();
        let rel = full
            .strip_prefix(base_str.as_str())
            .unwrap_or(full)
            .trim_start_matches('/');
        let mut segments: Vec<String> = rel.split('/').map(str::to_string).collect();
        let file = segments.pop().unwrap_or_default();
        // Hidden files and folders (`_SUCCESS`, `_started`, `.tmp`) are not data.
        if file.starts_with(['_', '.']) || segments.iter().any(|s| s.starts_with(['_', '.'])) {
            continue;
        }
        if exclusions.is_match(rel) {
            continue;
        }
        summary.files += 1;
        summary.bytes += meta.size;
        progress.found(1);
        folders
            .entry(segments)
            .or_default()
            .push((meta.location.clone(), meta.size));
    }
    let mut leaves = Vec::new();
    for (segments, files) in folders {
        let location = {
            let rel: String = segments.iter().map(|s| format!("{s}/")).collect();
            let key = target.key();
            let sep = if key.is_empty() || key.ends_with('/') {
                ""
            } else {
                "/"
            };
            format!("s3://{}/{key}{sep}{rel}", target.bucket())
        };
        if let Some(schema) = known.get(&location) {
            // Cataloged before: not read again.
            for _ in &files {
                progress.scanned();
            }
            leaves.push(Leaf {
                segments,
                files: files.len() as u64,
                bytes: files.iter().map(|(_, s)| *s).sum(),
                schema: Some(schema.clone()),
            });
            continue;
        }
        let mut schema: Option<FileSchema> = None;
        let mut sampled = 0;
        for (path, size) in &files {
            if sampled >= options.sample_files {
                progress.scanned();
                continue;
            }
            let data = read_sample(storage, path, *size, options.sample_bytes).await?;
            progress.scanned();
            match classify(&data) {
                Ok(file) => {
                    sampled += 1;
                    schema = Some(match schema {
                        None => file,
                        Some(s) if s.classification == file.classification => merge_file(s, file),
                        Some(s) => {
                            summary.skipped.push((
                                format!("s3://{path}"),
                                format!(
                                    "{} file among {} files in the same folder",
                                    file.classification, s.classification
                                ),
                            ));
                            s
                        }
                    });
                }
                Err(why) => summary.skipped.push((format!("s3://{path}"), why)),
            }
        }
        leaves.push(Leaf {
            segments,
            files: files.len() as u64,
            bytes: files.iter().map(|(_, s)| *s).sum(),
            schema,
        });
    }
    Ok(leaves)
}

/// Folders this crawler cataloged before (table and partition locations),
/// with the schema of their table.
async fn known_folders(
    catalog: &dyn Catalog,
    options: &CrawlOptions,
) -> Result<HashMap<String, FileSchema>, CrawlError> {
    let mut known = HashMap::new();
    let tables = match catalog.list_tables(&options.database).await {
        Ok(t) => t,
        Err(CatalogError::NotFound(_)) => return Ok(known),
        Err(e) => return Err(e.into()),
    };
    for table in tables {
        if table.parameters.get("UPDATED_BY_CRAWLER") != Some(&options.name) {
            continue;
        }
        let Some(schema) = table_file_schema(&table) else {
            continue;
        };
        if let Some(loc) = table
            .storage_descriptor
            .as_ref()
            .and_then(|sd| sd.location.clone())
        {
            known.insert(loc, schema.clone());
        }
        for p in catalog
            .get_partitions(&options.database, &table.name, None)
            .await?
        {
            if let Some(loc) = p.storage_descriptor.and_then(|sd| sd.location) {
                known.insert(loc, schema.clone());
            }
        }
    }
    Ok(known)
}

/// A cataloged table's format and columns, as a file schema.
fn table_file_schema(table: &Table) -> Option<FileSchema> {
    let classification = match table.parameters.get("classification")?.as_str() {
        "parquet" => "parquet",
        "json" => "json",
        "csv" => "csv",
        _ => return None,
    };
    let sd = table.storage_descriptor.as_ref()?;
    let mut fields = Vec::new();
    for c in &sd.columns {
        fields.push((
            c.name.clone(),
            crate::schema::parse_hive_type(c.data_type.as_deref()?).ok()?,
        ));
    }
    let csv = (classification == "csv").then(|| classify::CsvFormat {
        delimiter: table
            .parameters
            .get("delimiter")
            .and_then(|d| d.bytes().next())
            .unwrap_or(b','),
        header: table.parameters.contains_key("skip.header.line.count"),
        quoted: table
            .parameters
            .get("areColumnsQuoted")
            .is_some_and(|q| q == "true"),
    });
    Some(FileSchema {
        classification,
        gzip: table
            .parameters
            .get("compressionType")
            .is_some_and(|c| c == "gzip"),
        csv,
        schema: JType::Struct { fields },
        rows: 0,
    })
}

async fn read_sample(
    storage: &Storage,
    path: &ObjectPath,
    size: u64,
    sample_bytes: usize,
) -> Result<bytes::Bytes, object_store::Error> {
    if size == 0 {
        return Ok(bytes::Bytes::new());
    }
    let head = storage.store().get_range(path, 0..size.min(4)).await?;
    // Parquet needs its footer, so it is read whole; text files are sampled.
    if head.as_ref() == b"PAR1" || size as usize <= sample_bytes {
        storage.store().get(path).await?.bytes().await
    } else {
        storage
            .store()
            .get_range(path, 0..sample_bytes as u64)
            .await
    }
}

fn merge_file(mut a: FileSchema, b: FileSchema) -> FileSchema {
    a.schema = merge_widening(&a.schema, &b.schema);
    a.rows += b.rows;
    a.gzip |= b.gzip;
    a
}

/// Merges two struct schemas; a field whose types conflict becomes text.
fn merge_widening(a: &JType, b: &JType) -> JType {
    if let Ok(m) = a.merge(b, "") {
        return m;
    }
    let (JType::Struct { fields: fa }, JType::Struct { fields: fb }) = (a, b) else {
        return JType::String;
    };
    let mut fields = fa.clone();
    for (name, t) in fb {
        match fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, cur)) => *cur = cur.merge(t, name).unwrap_or(JType::String),
            None => fields.push((name.clone(), t.clone())),
        }
    }
    JType::Struct { fields }
}

fn names(schema: &JType) -> Vec<&str> {
    match schema {
        JType::Struct { fields } => fields.iter().map(|(n, _)| n.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// With `Grouping.TableLevelConfiguration`: the leaves under each folder
/// `depth` levels below the target form one table named after that folder
/// (when their formats and depths agree; else that folder is grouped as
/// usual). Files above that level are skipped, with the reason.
fn table_level_groups(
    grouping: &Grouping<'_>,
    root_name: &str,
    depth: usize,
    leaves: Vec<Leaf>,
    found: &mut Vec<Found>,
    summary: &mut CrawlSummary,
) {
    let mut tables: BTreeMap<Vec<String>, Vec<Leaf>> = BTreeMap::new();
    for mut leaf in leaves {
        if leaf.segments.len() < depth {
            let folder: String = leaf.segments.iter().map(|s| format!("{s}/")).collect();
            summary.skipped.push((
                format!("{}{folder}", grouping.target),
                format!(
                    "{} files above Grouping.TableLevelConfiguration's level",
                    leaf.files
                ),
            ));
            continue;
        }
        let rest = leaf.segments.split_off(depth);
        let head = std::mem::replace(&mut leaf.segments, rest);
        tables.entry(head).or_default().push(leaf);
    }
    for (path, leaves) in tables {
        let name = path.last().map_or(root_name, String::as_str);
        grouping.table_at(name, &path, leaves, found);
    }
}

/// Whether the leaves can form one table, and its merged schema: one
/// format and depth, and (unless `any_columns`, `CombineCompatibleSchemas`)
/// each leaf has at least half the merged columns.
fn compatible_with(leaves: &[Leaf], any_columns: bool) -> Option<FileSchema> {
    let schemas: Vec<&FileSchema> = leaves.iter().filter_map(|l| l.schema.as_ref()).collect();
    let first = (*schemas.first()?).clone();
    let depth = leaves[0].segments.len();
    if leaves.iter().any(|l| l.segments.len() != depth) {
        return None;
    }
    let mut merged = first;
    for s in &schemas[1..] {
        if s.classification != merged.classification
            || s.csv.map(|c| c.delimiter) != merged.csv.map(|c| c.delimiter)
        {
            return None;
        }
        merged = merge_file(merged, (*s).clone());
    }
    let all = names(&merged.schema).len().max(1);
    let similar = any_columns || schemas.iter().all(|s| names(&s.schema).len() * 2 >= all);
    similar.then_some(merged)
}

fn table_name(prefix: &str, raw: &str) -> String {
    let clean: String = raw
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}{clean}")
}

/// How leaves become tables.
struct Grouping<'a> {
    target: &'a Location,
    /// `CombineCompatibleSchemas`.
    combine: bool,
}

impl Grouping<'_> {
    /// The location of the folder `path` below the target.
    fn location(&self, path: &[String]) -> String {
        let rel: String = path.iter().map(|s| format!("{s}/")).collect();
        let key = self.target.key();
        let sep = if key.is_empty() || key.ends_with('/') {
            ""
        } else {
            "/"
        };
        format!("s3://{}/{key}{sep}{rel}", self.target.bucket())
    }

    /// Groups leaves below the target + `path` into tables.
    fn group(&self, name: &str, path: &[String], leaves: Vec<Leaf>, out: &mut Vec<Found>) {
        let leaves: Vec<Leaf> = leaves.into_iter().filter(|l| l.schema.is_some()).collect();
        if leaves.is_empty() {
            return;
        }
        if let Some(schema) = compatible_with(&leaves, self.combine) {
            out.push(found_table(name, self.location(path), schema, &leaves));
            return;
        }
        // Not one table: files right here form one, each sub-folder another.
        let mut here = Vec::new();
        let mut below: BTreeMap<String, Vec<Leaf>> = BTreeMap::new();
        for mut leaf in leaves {
            if leaf.segments.is_empty() {
                here.push(leaf);
            } else {
                let first = leaf.segments.remove(0);
                below.entry(first).or_default().push(leaf);
            }
        }
        if !here.is_empty() {
            self.group(name, path, here, out);
        }
        for (folder, leaves) in below {
            let mut sub = path.to_vec();
            sub.push(folder.clone());
            self.group(&folder, &sub, leaves, out);
        }
    }

    /// One table at the folder `path` whatever its leaves' columns, when
    /// their formats and depths allow; else the folder is grouped as usual.
    fn table_at(&self, name: &str, path: &[String], leaves: Vec<Leaf>, out: &mut Vec<Found>) {
        let leaves: Vec<Leaf> = leaves.into_iter().filter(|l| l.schema.is_some()).collect();
        if leaves.is_empty() {
            return;
        }
        match compatible_with(&leaves, true) {
            Some(schema) => out.push(found_table(name, self.location(path), schema, &leaves)),
            None => self.group(name, path, leaves, out),
        }
    }
}

/// The table `leaves` (all at one depth below `location`) form.
fn found_table(name: &str, location: String, schema: FileSchema, leaves: &[Leaf]) -> Found {
    let depth = leaves[0].segments.len();
    let keys: Vec<String> = (0..depth)
        .map(|i| {
            let hive: Option<&str> = leaves[0].segments[i].split_once('=').map(|(k, _)| k);
            match hive {
                Some(k)
                    if !k.is_empty()
                        && leaves.iter().all(|l| {
                            l.segments[i].split_once('=').map(|(k2, _)| k2) == Some(k)
                        }) =>
                {
                    k.to_lowercase()
                }
                _ => format!("partition_{i}"),
            }
        })
        .collect();
    let partitions = leaves
        .iter()
        .filter(|l| depth > 0 && !l.segments.is_empty())
        .map(|l| {
            let values = l
                .segments
                .iter()
                .map(|s| {
                    crate::partition_path::parse_segment(s).map_or_else(|| s.clone(), |(_, v)| v)
                })
                .collect();
            let rel: String = l.segments.iter().map(|s| format!("{s}/")).collect();
            (values, format!("{location}{rel}"))
        })
        .collect();
    Found {
        name: name.to_string(),
        location,
        schema,
        keys,
        partitions,
        files: leaves.iter().map(|l| l.files).sum(),
        bytes: leaves.iter().map(|l| l.bytes).sum(),
    }
}

fn storage_descriptor(found: &Found) -> StorageDescriptor {
    let columns = columns(&found.schema.schema, &found.keys);
    let location = found.location.clone();
    let sd = match (found.schema.classification, found.schema.csv) {
        ("parquet", _) => StorageDescriptor::parquet(location, columns),
        ("csv", Some(csv)) => {
            let delim = (csv.delimiter as char).to_string();
            let (serde, key) = if csv.quoted {
                (formats::OPEN_CSV_SERDE, "separatorChar")
            } else {
                (formats::LAZY_SIMPLE_SERDE, "field.delim")
            };
            StorageDescriptor::text(location, columns, serde, [(key.to_string(), delim)].into())
        }
        _ => StorageDescriptor::text(
            location,
            columns,
            formats::JSON_SERDE,
            [("paths".to_string(), names(&found.schema.schema).join(","))].into(),
        ),
    };
    StorageDescriptor {
        compressed: Some(found.schema.gzip),
        ..sd
    }
}

/// Data columns, leaving out partition keys.
fn columns(schema: &JType, keys: &[String]) -> Vec<Column> {
    match schema {
        JType::Struct { fields } => fields
            .iter()
            .filter(|(n, _)| !keys.iter().any(|k| k.eq_ignore_ascii_case(n)))
            .map(|(n, t)| Column {
                name: n.to_lowercase(),
                data_type: Some(hive_type(t)),
                ..Default::default()
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn table_parameters(found: &Found, crawler: &str) -> BTreeMap<String, String> {
    let mut p: BTreeMap<String, String> = [
        ("classification", found.schema.classification.to_string()),
        (
            "compressionType",
            if found.schema.gzip { "gzip" } else { "none" }.to_string(),
        ),
        ("typeOfData", "file".to_string()),
        ("objectCount", found.files.to_string()),
        ("sizeKey", found.bytes.to_string()),
        ("recordCount", found.schema.rows.to_string()),
        ("UPDATED_BY_CRAWLER", crawler.to_string()),
        ("CrawlerSchemaSerializerVersion", "1.0".to_string()),
        ("CrawlerSchemaDeserializerVersion", "1.0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(csv) = found.schema.csv {
        p.insert("delimiter".into(), (csv.delimiter as char).to_string());
        p.insert("areColumnsQuoted".into(), csv.quoted.to_string());
        if csv.header {
            p.insert("skip.header.line.count".into(), "1".into());
        }
    }
    p
}

/// Merges new columns into existing ones: new names are added, scalar type
/// changes widen; complex type changes keep the newer type.
fn merge_columns(existing: &[Column], new: &[Column]) -> Vec<Column> {
    let mut out = existing.to_vec();
    for c in new {
        match out
            .iter_mut()
            .find(|e| e.name.eq_ignore_ascii_case(&c.name))
        {
            None => out.push(c.clone()),
            Some(e) if e.data_type != c.data_type => {
                let widened = match (
                    e.data_type.as_deref().and_then(scalar_of_hive),
                    c.data_type.as_deref().and_then(scalar_of_hive),
                ) {
                    (Some(a), Some(b)) => a.merge(&b, "").map(|t| hive_type(&t)).ok(),
                    _ => c.data_type.clone(),
                };
                e.data_type = widened.or_else(|| c.data_type.clone());
            }
            Some(_) => {}
        }
    }
    out
}

/// Adds the columns of `new` whose names `existing` lacks; existing columns
/// keep their types and none is dropped (`MergeNewColumns`).
fn add_new_columns(existing: &[Column], new: &[Column]) -> Vec<Column> {
    let mut out = existing.to_vec();
    for c in new {
        if !out.iter().any(|e| e.name.eq_ignore_ascii_case(&c.name)) {
            out.push(c.clone());
        }
    }
    out
}

/// Brings the table's existing partitions to its definition
/// (`InheritFromTable`): columns, formats and SerDe, each keeping its own
/// location.
async fn inherit_existing(
    catalog: &dyn Catalog,
    db: &str,
    table: &str,
    table_sd: &StorageDescriptor,
) -> Result<(), CrawlError> {
    let stale: Vec<PartitionUpdate> = catalog
        .get_partitions(db, table, None)
        .await?
        .into_iter()
        .filter_map(|p| {
            let sd = p.storage_descriptor.clone().unwrap_or_default();
            let inherited = StorageDescriptor {
                location: sd.location.clone(),
                ..table_sd.clone()
            };
            (sd != inherited).then(|| PartitionUpdate {
                values: p.values.clone(),
                expected_location: sd.location.clone(),
                partition: Partition {
                    storage_descriptor: Some(inherited),
                    ..p
                },
            })
        })
        .collect();
    for chunk in stale.chunks(100) {
        // A partition moved or dropped meanwhile keeps what it has.
        catalog.update_partitions(db, table, chunk.to_vec()).await?;
    }
    Ok(())
}

async fn apply(
    catalog: &dyn Catalog,
    options: &CrawlOptions,
    found: Vec<Found>,
    targets: &[Location],
    summary: &mut CrawlSummary,
) -> Result<(), CrawlError> {
    match catalog
        .create_database(Database {
            name: options.database.clone(),
            description: Some(format!("Created by crawler {}", options.name)),
            ..Default::default()
        })
        .await
    {
        Ok(()) | Err(CatalogError::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let db = options.database.to_lowercase();
    let mut produced = Vec::new();
    for f in &found {
        let name = table_name(&options.table_prefix, &f.name);
        produced.push(name.clone());
        let sd = storage_descriptor(f);
        let keys: Vec<Column> = f
            .keys
            .iter()
            .map(|k| Column {
                name: k.clone(),
                data_type: Some("string".into()),
                ..Default::default()
            })
            .collect();
        match catalog.get_table(&db, &name).await {
            Err(CatalogError::NotFound(_)) => {
                let table = Table {
                    name: name.clone(),
                    owner: Some("owner".into()),
                    retention: Some(0),
                    table_type: Some(crate::model::EXTERNAL_TABLE.into()),
                    parameters: table_parameters(f, &options.name),
                    partition_keys: keys,
                    storage_descriptor: Some(sd.clone()),
                    created_by: Some(format!("lakehose crawler {}", options.name)),
                    partition_indexes: (options.configuration.create_partition_index
                        && !f.keys.is_empty())
                    .then(|| {
                        vec![PartitionIndex {
                            index_name: CRAWLER_INDEX.into(),
                            keys: f.keys.clone(),
                        }]
                    }),
                    ..Default::default()
                };
                catalog.create_table(&db, table).await?;
                summary.tables_created.push(format!("{db}.{name}"));
            }
            Ok(existing) => {
                if options.update == UpdateBehavior::UpdateInDatabase {
                    let old_sd = existing.storage_descriptor.clone().unwrap_or_default();
                    let mut new_sd = sd.clone();
                    new_sd.columns = if options.configuration.merge_new_columns {
                        add_new_columns(&old_sd.columns, &sd.columns)
                    } else {
                        merge_columns(&old_sd.columns, &sd.columns)
                    };
                    let mut params = existing.parameters.clone();
                    params.extend(table_parameters(f, &options.name));
                    params.remove("DEPRECATED_BY_CRAWLER");
                    if new_sd.columns != old_sd.columns
                        || existing.parameters.contains_key("DEPRECATED_BY_CRAWLER")
                    {
                        let mut table = existing.clone();
                        table.storage_descriptor = Some(new_sd);
                        table.parameters = params;
                        catalog
                            .update_table(&db, table, existing.version_id.as_deref())
                            .await?;
                        summary.tables_updated.push(format!("{db}.{name}"));
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        // What partitions are described with: the table's own definition
        // (as it is now) with InheritFromTable, else what was found.
        let partition_sd = if options.configuration.inherit_from_table {
            let table_sd = catalog
                .get_table(&db, &name)
                .await?
                .storage_descriptor
                .unwrap_or_default();
            inherit_existing(catalog, &db, &name, &table_sd).await?;
            table_sd
        } else {
            sd.clone()
        };
        // New partitions are always added, whatever the policy.
        for chunk in f.partitions.chunks(100) {
            let batch = chunk
                .iter()
                .map(|(values, location)| Partition {
                    values: values.clone(),
                    storage_descriptor: Some(StorageDescriptor {
                        location: Some(location.clone()),
                        ..partition_sd.clone()
                    }),
                    ..Default::default()
                })
                .collect::<Vec<_>>();
            let n = batch.len();
            let errors = catalog.create_partitions(&db, &name, batch).await?;
            summary.partitions_added += n - errors.len();
        }
    }
    // Tables this crawler made under these targets whose data is gone.
    for table in catalog.list_tables(&db).await? {
        let ours = table.parameters.get("UPDATED_BY_CRAWLER") == Some(&options.name);
        let location = table
            .storage_descriptor
            .as_ref()
            .and_then(|sd| sd.location.clone())
            .unwrap_or_default();
        let under = targets.iter().any(|t| location.starts_with(&t.to_string()));
        if !ours || !under || produced.contains(&table.name) {
            continue;
        }
        match options.delete {
            DeleteBehavior::Log => {}
            DeleteBehavior::DeleteFromDatabase => {
                catalog.delete_table(&db, &table.name).await?;
                summary.tables_deleted.push(format!("{db}.{}", table.name));
            }
            DeleteBehavior::DeprecateInDatabase => {
                if !table.parameters.contains_key("DEPRECATED_BY_CRAWLER") {
                    let mut t = table.clone();
                    t.parameters.insert(
                        "DEPRECATED_BY_CRAWLER".into(),
                        chrono::Utc::now().timestamp().to_string(),
                    );
                    catalog
                        .update_table(&db, t, table.version_id.as_deref())
                        .await?;
                    summary.tables_deleted.push(format!("{db}.{}", table.name));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
