//! The [`Catalog`] kept in AWS Glue's Data Catalog (or any server speaking
//! its API), through `aws-sdk-glue`.
//!
//! With it, lakehose reads and writes the same databases, tables and
//! partitions as Athena, EMR and Glue jobs, instead of its embedded catalog
//! under `_lakehose/catalog/`.
//!
//! # Settings
//!
//! Region, credentials and endpoint come from the standard AWS environment
//! and config files (`AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL_GLUE`,
//! `AWS_ENDPOINT_URL`, `~/.aws/config`, web identity, ECS and instance
//! credentials), resolved by `aws-config` exactly as the AWS SDKs do;
//! [`GlueOptions`] may override the endpoint, the region and the catalog
//! (`CatalogId`, the AWS account that owns it). Throttled (`Throttling*`),
//! failed (5xx) and interrupted requests are retried by the SDK's standard
//! retry mode with exponential backoff, up to
//! [`GlueOptions::max_attempts`] attempts.
//!
//! # How the contract maps onto Glue
//!
//! - Names are checked and lowercased as the embedded catalog does before
//!   anything is sent; a name the embedded catalog refuses never reaches
//!   Glue.
//! - Listings follow `NextToken` and are sorted here (databases and tables
//!   by name, partitions by their values). A listing stops with an error
//!   after [`MAX_PAGES`] pages or when Glue hands back the same token twice.
//! - [`Catalog::update_table`] with an expected version sends it as
//!   `VersionId`: Glue refuses a stale one with
//!   `ConcurrentModificationException`, reported as
//!   [`CatalogError::ConcurrentModification`]. Without one, a
//!   `ConcurrentModificationException` is retried a few times.
//! - Glue creates, updates and deletes partitions in batches of at most
//!   100, 100 and 25. Larger calls are split; each batch is atomic on its
//!   own, the whole call is not. Partitions Glue refuses are returned with
//!   their error; a batch that fails as a whole (the table is missing,
//!   Glue is unreachable after the retries) fails the call, and batches
//!   sent before it stay applied.
//! - Partition indexes are given to `CreateTable`, read back by
//!   [`Catalog::get_table`] through `GetPartitionIndexes` (only for tables
//!   with partition keys; [`Catalog::list_tables`] and
//!   [`Catalog::table_versions`] leave them `None`), and an update that
//!   names indexes creates and deletes indexes to match after
//!   `UpdateTable`, which is not atomic with it.
//!
//! # Errors
//!
//! `EntityNotFoundException`, `AlreadyExistsException`,
//! `InvalidInputException` (and `ValidationException`) and
//! `ConcurrentModificationException` map onto the variants of the same
//! name. Everything else (throttling and 5xx still failing after the
//! retries, timeouts, connection failures, denied access) is a
//! [`CatalogError::Storage`] fault that callers treat as transient. Errors
//! and logs name the operation, the entity and Glue's message, never
//! credentials.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_glue::Client;
use aws_sdk_glue::config::Region;
use aws_sdk_glue::config::retry::RetryConfig;
use aws_sdk_glue::config::timeout::TimeoutConfig;
use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_glue::primitives::DateTime;
use aws_sdk_glue::types as glue;
use futures::StreamExt;

use crate::catalog::{
    Catalog, CatalogError, PartitionUpdate, Result, check_column_types, check_partition_index,
    check_table_types, normalize_name,
};
use crate::model::{
    Column, Database, Order, Parameters, Partition, PartitionIndex, SerDeInfo, StorageDescriptor,
    Table,
};
use crate::storage::StorageError;

/// The most pages one listing reads before it stops with an error (a
/// server that keeps handing out tokens must not keep a caller busy
/// forever).
pub const MAX_PAGES: usize = 10_000;

/// Partitions per `BatchCreatePartition` (Glue's limit).
const CREATE_BATCH: usize = 100;
/// Partitions per `BatchDeletePartition` (Glue's limit).
const DELETE_BATCH: usize = 25;
/// Partitions per `BatchUpdatePartition` (Glue's limit).
const UPDATE_BATCH: usize = 100;
/// Partitions per `BatchGetPartition` (Glue's limit).
const GET_BATCH: usize = 1000;
/// Batches of one call in flight at once.
const CONCURRENT_BATCHES: usize = 4;
/// Longest `Expression` Glue accepts in `GetPartitions`.
const MAX_EXPRESSION_CHARS: usize = 2048;
/// Longest catalog id Glue accepts.
const MAX_CATALOG_ID_CHARS: usize = 255;
/// How often an update without an expected version is tried again after
/// Glue reported a concurrent modification.
const UPDATE_RETRIES: usize = 8;

/// Where and how lakehose reaches Glue.
#[derive(Clone)]
pub struct GlueOptions {
    /// Glue's `CatalogId` (the AWS account owning the catalog); `None` is
    /// the caller's own account.
    pub catalog_id: Option<String>,
    /// The endpoint; `None` reads `AWS_ENDPOINT_URL_GLUE`, then the
    /// endpoint of the AWS config (`AWS_ENDPOINT_URL`, the profile), and
    /// falls back to AWS's own.
    pub endpoint: Option<String>,
    /// The region; `None` reads the AWS environment and config (and falls
    /// back to `us-east-1`).
    pub region: Option<String>,
    /// Attempts per request (the first and the retries) of throttled,
    /// failed (5xx) and interrupted requests, with exponential backoff.
    pub max_attempts: u32,
    /// How long one operation may take, retries included.
    pub operation_timeout: Duration,
    /// How long one attempt may take before it is abandoned and retried.
    pub attempt_timeout: Duration,
}

impl Default for GlueOptions {
    fn default() -> Self {
        Self {
            catalog_id: None,
            endpoint: None,
            region: None,
            max_attempts: 8,
            operation_timeout: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for GlueOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlueOptions")
            .field("catalog_id", &self.catalog_id)
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(crate::endpoint::redact),
            )
            .field("region", &self.region)
            .field("max_attempts", &self.max_attempts)
            .field("operation_timeout", &self.operation_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish()
    }
}

/// Errors setting up the Glue catalog.
#[derive(Debug, thiserror::Error)]
pub enum GlueSetupError {
    /// The endpoint is not an http(s) URL without credentials.
    #[error("invalid Glue endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint as given (any user information left out).
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The catalog id is empty, too long or has control characters.
    #[error(
        "invalid Glue catalog id {0:?}: must be 1 to 255 characters without control characters"
    )]
    CatalogId(String),
    /// Other options out of range.
    #[error("invalid Glue options: {0}")]
    Options(String),
}

/// The [`Catalog`] in AWS Glue. Cloning shares the client.
#[derive(Clone)]
pub struct GlueCatalog {
    client: Client,
    catalog_id: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    max_pages: usize,
}

impl fmt::Debug for GlueCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only where the catalog is: the client's configuration (and its
        // credentials) is never printed.
        f.debug_struct("GlueCatalog")
            .field("catalog_id", &self.catalog_id)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl fmt::Display for GlueCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self
            .endpoint
            .as_deref()
            .or(self.region.as_deref())
            .unwrap_or("AWS");
        match &self.catalog_id {
            Some(id) => write!(f, "Glue({at}, catalog {id})"),
            None => write!(f, "Glue({at})"),
        }
    }
}

/// Checks an endpoint override (see [`crate::endpoint::check`]).
fn check_endpoint(endpoint: &str) -> std::result::Result<(), GlueSetupError> {
    crate::endpoint::check(endpoint).map_err(|reason| GlueSetupError::Endpoint {
        endpoint: crate::endpoint::redact(endpoint),
        reason,
    })
}

fn check_catalog_id(id: &str) -> std::result::Result<(), GlueSetupError> {
    if id.is_empty()
        || id.chars().count() > MAX_CATALOG_ID_CHARS
        || id.chars().any(char::is_control)
    {
        return Err(GlueSetupError::CatalogId(id.chars().take(64).collect()));
    }
    Ok(())
}

impl GlueCatalog {
    /// Resolves region, endpoint and credentials from `options` and the AWS
    /// environment and config files, and makes the client. Nothing is
    /// requested from Glue yet.
    pub async fn connect(options: GlueOptions) -> std::result::Result<Self, GlueSetupError> {
        if let Some(id) = &options.catalog_id {
            check_catalog_id(id)?;
        }
        if options.max_attempts == 0 {
            return Err(GlueSetupError::Options(
                "max_attempts must be at least 1".into(),
            ));
        }
        if options.operation_timeout.is_zero() || options.attempt_timeout.is_zero() {
            return Err(GlueSetupError::Options(
                "timeouts must be longer than zero".into(),
            ));
        }
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let endpoint = options
            .endpoint
            .clone()
            .filter(|e| !e.is_empty())
            .or_else(|| {
                std::env::var("AWS_ENDPOINT_URL_GLUE")
                    .ok()
                    .filter(|e| !e.is_empty())
            })
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        if let Some(e) = &endpoint {
            check_endpoint(e)?;
        }
        let region = options
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut config = aws_sdk_glue::config::Builder::from(&sdk)
            .region(Region::new(region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(options.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(options.attempt_timeout)
                    .operation_timeout(options.operation_timeout)
                    .build(),
            );
        if let Some(e) = &endpoint {
            config = config.endpoint_url(e.trim_end_matches('/'));
        }
        Ok(Self {
            client: Client::from_conf(config.build()),
            catalog_id: options.catalog_id,
            region: Some(region),
            endpoint: endpoint.as_deref().map(crate::endpoint::redact),
            max_pages: MAX_PAGES,
        })
    }

    /// A catalog over a client made by the caller (tests, custom HTTP
    /// stacks), in the catalog `catalog_id` (`None`: the caller's
    /// account).
    pub fn from_client(client: Client, catalog_id: Option<String>) -> Self {
        let region = client.config().region().map(|r| r.to_string());
        Self {
            client,
            catalog_id,
            region,
            endpoint: None,
            max_pages: MAX_PAGES,
        }
    }

    /// The same catalog with listings stopped after `pages` pages (at
    /// least 1) instead of [`MAX_PAGES`].
    pub fn with_page_limit(mut self, pages: usize) -> Self {
        self.max_pages = pages.max(1);
        self
    }

    /// The catalog id requests name (`None`: the caller's account).
    pub fn catalog_id(&self) -> Option<&str> {
        self.catalog_id.as_deref()
    }

    fn cid(&self) -> Option<String> {
        self.catalog_id.clone()
    }

    fn pager(&self, op: &'static str, what: What<'_>) -> Pager {
        Pager {
            op,
            what: what.to_string(),
            max: self.max_pages,
            pages: 0,
            token: None,
        }
    }

    /// Checks `database` and `table` names and lowercases them.
    fn names(database: &str, table: &str) -> Result<(String, String)> {
        Ok((
            normalize_name("database", database)?,
            normalize_name("table", table)?,
        ))
    }

    async fn fetch_table(&self, db: &str, name: &str) -> Result<Table> {
        let out = self
            .client
            .get_table()
            .set_catalog_id(self.cid())
            .database_name(db)
            .name(name)
            .send()
            .await
            .map_err(|e| sdk_error("GetTable", What::Table(db, name), e))?;
        let table = out
            .table
            .ok_or_else(|| missing_member("GetTable", What::Table(db, name), "Table"))?;
        Ok(table_from_glue(table))
    }

    /// The table's partition indexes (those not being deleted).
    async fn fetch_partition_indexes(&self, db: &str, name: &str) -> Result<Vec<PartitionIndex>> {
        let what = What::Table(db, name);
        let mut pager = self.pager("GetPartitionIndexes", what);
        let mut out = Vec::new();
        loop {
            let page = self
                .client
                .get_partition_indexes()
                .set_catalog_id(self.cid())
                .database_name(db)
                .table_name(name)
                .set_next_token(pager.token())
                .send()
                .await
                .map_err(|e| sdk_error("GetPartitionIndexes", what, e))?;
            out.extend(
                page.partition_index_descriptor_list
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|d| d.index_status != glue::PartitionIndexStatus::Deleting)
                    .map(|d| PartitionIndex {
                        index_name: d.index_name,
                        keys: d.keys.into_iter().map(|k| k.name).collect(),
                    }),
            );
            if !pager.advance(page.next_token)? {
                return Ok(out);
            }
        }
    }

    /// Creates and deletes partition indexes so the table has `wanted`
    /// (less those over keys it no longer has).
    async fn reconcile_partition_indexes(
        &self,
        db: &str,
        table: &Table,
        wanted: Vec<PartitionIndex>,
    ) -> Result<()> {
        let name = table.name.as_str();
        let what = What::Table(db, name);
        let wanted: Vec<PartitionIndex> = wanted
            .into_iter()
            .filter(|i| {
                i.keys.iter().all(|k| {
                    table
                        .partition_keys
                        .iter()
                        .any(|c| c.name.eq_ignore_ascii_case(k))
                })
            })
            .collect();
        let current = if table.partition_keys.is_empty() && wanted.is_empty() {
            Vec::new()
        } else {
            self.fetch_partition_indexes(db, name).await?
        };
        let same = |a: &PartitionIndex, b: &PartitionIndex| {
            a.index_name.eq_ignore_ascii_case(&b.index_name)
        };
        for old in current
            .iter()
            .filter(|c| !wanted.iter().any(|w| same(w, c) && w.keys == c.keys))
        {
            self.client
                .delete_partition_index()
                .set_catalog_id(self.cid())
                .database_name(db)
                .table_name(name)
                .index_name(&old.index_name)
                .send()
                .await
                .map_err(|e| sdk_error("DeletePartitionIndex", what, e))?;
        }
        for new in wanted
            .iter()
            .filter(|w| !current.iter().any(|c| same(w, c) && w.keys == c.keys))
        {
            self.client
                .create_partition_index()
                .set_catalog_id(self.cid())
                .database_name(db)
                .table_name(name)
                .partition_index(partition_index_to_glue(new)?)
                .send()
                .await
                .map_err(|e| sdk_error("CreatePartitionIndex", what, e))?;
        }
        Ok(())
    }

    /// Reads the partitions `values` (those that exist), in batches.
    async fn fetch_partitions(
        &self,
        db: &str,
        name: &str,
        values: Vec<Vec<String>>,
    ) -> Result<HashMap<Vec<String>, Partition>> {
        let what = What::Table(db, name);
        let mut found = HashMap::new();
        for chunk in values.chunks(GET_BATCH) {
            let keys = chunk
                .iter()
                .map(|v| value_list(v))
                .collect::<Result<Vec<_>>>()?;
            let out = self
                .client
                .batch_get_partition()
                .set_catalog_id(self.cid())
                .database_name(db)
                .table_name(name)
                .set_partitions_to_get(Some(keys))
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetPartition", what, e))?;
            for p in out.partitions.unwrap_or_default() {
                let p = partition_from_glue(p);
                found.insert(p.values.clone(), p);
            }
            // Keys Glue did not get to are read one by one.
            for key in out.unprocessed_keys.unwrap_or_default() {
                match self.get_partition_named(db, name, &key.values).await {
                    Ok(p) => {
                        found.insert(key.values, p);
                    }
                    Err(CatalogError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(found)
    }

    async fn get_partition_named(
        &self,
        db: &str,
        name: &str,
        values: &[String],
    ) -> Result<Partition> {
        let what = What::Partition(db, name, values);
        let out = self
            .client
            .get_partition()
            .set_catalog_id(self.cid())
            .database_name(db)
            .table_name(name)
            .set_partition_values(Some(values.to_vec()))
            .send()
            .await
            .map_err(|e| sdk_error("GetPartition", what, e))?;
        let p = out
            .partition
            .ok_or_else(|| missing_member("GetPartition", what, "Partition"))?;
        Ok(partition_from_glue(p))
    }
}

/// Follows `NextToken` through at most `max` pages.
struct Pager {
    op: &'static str,
    what: String,
    max: usize,
    pages: usize,
    token: Option<String>,
}

impl Pager {
    /// The token of the next request.
    fn token(&self) -> Option<String> {
        self.token.clone()
    }

    /// Takes the `NextToken` of the page just read: `false` when it was
    /// the last page, an error when the page limit is reached or the
    /// server repeats itself.
    fn advance(&mut self, next: Option<String>) -> Result<bool> {
        self.pages += 1;
        let Some(next) = next.filter(|t| !t.is_empty()) else {
            return Ok(false);
        };
        if self.token.as_deref() == Some(next.as_str()) {
            return Err(permanent(format!(
                "{} for {} returned the same NextToken twice; the listing is stopped",
                self.op, self.what
            )));
        }
        if self.pages >= self.max {
            return Err(permanent(format!(
                "{} for {} returned more than {} pages, the most lakehose reads; the listing is stopped",
                self.op, self.what, self.max
            )));
        }
        self.token = Some(next);
        Ok(true)
    }
}

/// What a request is about, for errors.
#[derive(Clone, Copy)]
enum What<'a> {
    Catalog,
    Database(&'a str),
    Table(&'a str, &'a str),
    Partition(&'a str, &'a str, &'a [String]),
}

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Catalog => write!(f, "the catalog"),
            What::Database(db) => write!(f, "Database {db}"),
            What::Table(db, t) => write!(f, "Table {db}.{t}"),
            What::Partition(db, t, values) => write!(f, "Partition {values:?} of table {db}.{t}"),
        }
    }
}

impl What<'_> {
    /// What Glue reports missing: the database or table a request goes
    /// through when its message names one, else the entity itself.
    fn missing(&self, message: &str) -> String {
        let says = |word: &str| {
            message
                .trim_start()
                .get(..word.len())
                .is_some_and(|m| m.eq_ignore_ascii_case(word))
        };
        match *self {
            What::Table(db, _) | What::Partition(db, _, _) if says("database") => {
                format!("Database {db}")
            }
            What::Partition(db, t, _) if says("table") => format!("Table {db}.{t}"),
            _ => self.to_string(),
        }
    }
}

/// The cause of a failed Glue request, carried inside a storage error.
#[derive(Debug)]
struct GlueFailure(String);

impl fmt::Display for GlueFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GlueFailure {}

/// A fault worth retrying (throttling, 5xx, timeouts, transport).
fn transient(message: String) -> CatalogError {
    CatalogError::Storage(StorageError::ObjectStore(object_store::Error::Generic {
        store: "Glue",
        source: Box::new(GlueFailure(message)),
    }))
}

/// A fault retrying cannot clear.
fn permanent(message: String) -> CatalogError {
    CatalogError::Storage(StorageError::ObjectStore(
        object_store::Error::NotSupported {
            source: Box::new(GlueFailure(message)),
        },
    ))
}

fn missing_member(op: &str, what: What<'_>, member: &str) -> CatalogError {
    transient(format!("{op} for {what} answered without {member}"))
}

fn build_error(e: aws_sdk_glue::error::BuildError) -> CatalogError {
    CatalogError::InvalidInput(format!("invalid Glue request: {e}"))
}

/// Maps one of Glue's error codes (of a request or of one partition in a
/// batch) onto the catalog's errors.
fn glue_error(op: &str, what: What<'_>, code: &str, message: Option<&str>) -> CatalogError {
    let message = message.map(str::trim).unwrap_or_default();
    let detail = if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    };
    match code {
        "EntityNotFoundException" => CatalogError::NotFound(what.missing(message)),
        "AlreadyExistsException" => CatalogError::AlreadyExists(what.to_string()),
        "InvalidInputException" | "ValidationException" => {
            CatalogError::InvalidInput(if message.is_empty() {
                format!("Glue refused {op} for {what} as invalid")
            } else {
                message.to_string()
            })
        }
        "ResourceNumberLimitExceededException" => {
            CatalogError::InvalidInput(format!("{op} for {what} exceeds a Glue limit: {message}"))
        }
        "ConcurrentModificationException" => CatalogError::ConcurrentModification(format!(
            "{what} was changed by another writer ({detail})"
        )),
        "AccessDeniedException" => CatalogError::Storage(StorageError::ObjectStore(
            object_store::Error::PermissionDenied {
                path: what.to_string(),
                source: Box::new(GlueFailure(format!("{op} was denied: {detail}"))),
            },
        )),
        _ => transient(format!("{op} for {what} failed: {detail}")),
    }
}

/// Maps a failed request onto the catalog's errors.
fn sdk_error<E>(op: &str, what: What<'_>, err: SdkError<E>) -> CatalogError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => match ctx.err().code() {
            Some(code) => glue_error(op, what, code, ctx.err().message()),
            None => transient(format!(
                "{op} for {what} failed with HTTP status {} and no error code",
                ctx.raw().status().as_u16()
            )),
        },
        SdkError::ConstructionFailure(_) => CatalogError::InvalidInput(format!(
            "{op} for {what} could not be sent: {}",
            DisplayErrorContext(&err)
        )),
        _ => transient(format!(
            "{op} for {what} failed: {}",
            DisplayErrorContext(&err)
        )),
    }
}

/// The error Glue reported for one partition of a batch.
fn partition_error(
    op: &str,
    db: &str,
    table: &str,
    values: &[String],
    detail: Option<glue::ErrorDetail>,
) -> CatalogError {
    let (code, message) = detail
        .map(|d| (d.error_code, d.error_message))
        .unwrap_or_default();
    glue_error(
        op,
        What::Partition(db, table, values),
        code.as_deref().unwrap_or("InternalServiceException"),
        message.as_deref(),
    )
}

// ---------------------------------------------------------------------
// Conversions between lakehose's model and the SDK's shapes.
// ---------------------------------------------------------------------

fn parameters_to_glue(p: &Parameters) -> Option<HashMap<String, String>> {
    (!p.is_empty()).then(|| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn parameters_from_glue(p: Option<HashMap<String, String>>) -> Parameters {
    p.unwrap_or_default()
        .into_iter()
        .collect::<BTreeMap<_, _>>()
}

fn time_to_glue(t: Option<f64>) -> Option<DateTime> {
    t.filter(|t| t.is_finite()).map(DateTime::from_secs_f64)
}

fn time_from_glue(t: Option<DateTime>) -> Option<f64> {
    t.map(|t| t.as_secs_f64())
}

fn column_to_glue(c: &Column) -> Result<glue::Column> {
    glue::Column::builder()
        .name(&c.name)
        .set_type(c.data_type.clone())
        .set_comment(c.comment.clone())
        .set_parameters(parameters_to_glue(&c.parameters))
        .build()
        .map_err(build_error)
}

fn column_from_glue(c: glue::Column) -> Column {
    Column {
        name: c.name,
        data_type: c.r#type,
        comment: c.comment,
        parameters: parameters_from_glue(c.parameters),
    }
}

fn columns_to_glue(columns: &[Column]) -> Result<Vec<glue::Column>> {
    columns.iter().map(column_to_glue).collect()
}

fn columns_from_glue(columns: Option<Vec<glue::Column>>) -> Vec<Column> {
    columns
        .unwrap_or_default()
        .into_iter()
        .map(column_from_glue)
        .collect()
}

fn serde_to_glue(s: &SerDeInfo) -> glue::SerDeInfo {
    glue::SerDeInfo::builder()
        .set_name(s.name.clone())
        .set_serialization_library(s.serialization_library.clone())
        .set_parameters(parameters_to_glue(&s.parameters))
        .build()
}

fn serde_from_glue(s: glue::SerDeInfo) -> SerDeInfo {
    SerDeInfo {
        name: s.name,
        serialization_library: s.serialization_library,
        parameters: parameters_from_glue(s.parameters),
    }
}

fn storage_to_glue(sd: &StorageDescriptor) -> Result<glue::StorageDescriptor> {
    let sort_columns = sd
        .sort_columns
        .iter()
        .map(|o| {
            glue::Order::builder()
                .column(&o.column)
                .sort_order(o.sort_order)
                .build()
                .map_err(build_error)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(glue::StorageDescriptor::builder()
        .set_columns(Some(columns_to_glue(&sd.columns)?))
        .set_location(sd.location.clone())
        .set_input_format(sd.input_format.clone())
        .set_output_format(sd.output_format.clone())
        .set_compressed(sd.compressed)
        .set_number_of_buckets(sd.number_of_buckets)
        .set_serde_info(sd.serde_info.as_ref().map(serde_to_glue))
        .set_bucket_columns((!sd.bucket_columns.is_empty()).then(|| sd.bucket_columns.clone()))
        .set_sort_columns((!sort_columns.is_empty()).then_some(sort_columns))
        .set_parameters(parameters_to_glue(&sd.parameters))
        .set_stored_as_sub_directories(sd.stored_as_sub_directories)
        .build())
}

/// Glue's wire format leaves out `false` and `0`, so `Compressed`,
/// `NumberOfBuckets` and `StoredAsSubDirectories` always read back as set.
fn storage_from_glue(sd: glue::StorageDescriptor) -> StorageDescriptor {
    StorageDescriptor {
        columns: columns_from_glue(sd.columns),
        location: sd.location,
        input_format: sd.input_format,
        output_format: sd.output_format,
        compressed: Some(sd.compressed),
        number_of_buckets: Some(sd.number_of_buckets),
        serde_info: sd.serde_info.map(serde_from_glue),
        bucket_columns: sd.bucket_columns.unwrap_or_default(),
        sort_columns: sd
            .sort_columns
            .unwrap_or_default()
            .into_iter()
            .map(|o| Order {
                column: o.column,
                sort_order: o.sort_order,
            })
            .collect(),
        parameters: parameters_from_glue(sd.parameters),
        stored_as_sub_directories: Some(sd.stored_as_sub_directories),
    }
}

fn database_to_glue(d: &Database) -> Result<glue::DatabaseInput> {
    glue::DatabaseInput::builder()
        .name(&d.name)
        .set_description(d.description.clone())
        .set_location_uri(d.location_uri.clone())
        .set_parameters(parameters_to_glue(&d.parameters))
        .build()
        .map_err(build_error)
}

fn database_from_glue(d: glue::Database) -> Database {
    Database {
        name: d.name,
        description: d.description,
        location_uri: d.location_uri,
        parameters: parameters_from_glue(d.parameters),
        create_time: time_from_glue(d.create_time),
        catalog_id: d.catalog_id,
    }
}

fn table_to_glue(t: &Table) -> Result<glue::TableInput> {
    glue::TableInput::builder()
        .name(&t.name)
        .set_description(t.description.clone())
        .set_owner(t.owner.clone())
        .set_last_access_time(time_to_glue(t.last_access_time))
        .set_retention(t.retention)
        .set_storage_descriptor(
            t.storage_descriptor
                .as_ref()
                .map(storage_to_glue)
                .transpose()?,
        )
        // Always sent, empty or not: Athena reads a missing list as a
        // broken table.
        .set_partition_keys(Some(columns_to_glue(&t.partition_keys)?))
        .set_view_original_text(t.view_original_text.clone())
        .set_view_expanded_text(t.view_expanded_text.clone())
        .set_table_type(t.table_type.clone())
        .set_parameters(parameters_to_glue(&t.parameters))
        .build()
        .map_err(build_error)
}

/// Glue's wire format leaves out a zero `Retention`, so it always reads
/// back as set. Partition indexes are not part of Glue's `Table`.
fn table_from_glue(t: glue::Table) -> Table {
    Table {
        name: t.name,
        database_name: t.database_name,
        description: t.description,
        owner: t.owner,
        create_time: time_from_glue(t.create_time),
        update_time: time_from_glue(t.update_time),
        last_access_time: time_from_glue(t.last_access_time),
        retention: Some(t.retention),
        storage_descriptor: t.storage_descriptor.map(storage_from_glue),
        partition_keys: columns_from_glue(t.partition_keys),
        view_original_text: t.view_original_text,
        view_expanded_text: t.view_expanded_text,
        table_type: t.table_type,
        parameters: parameters_from_glue(t.parameters),
        created_by: t.created_by,
        version_id: t.version_id,
        catalog_id: t.catalog_id,
        partition_indexes: None,
    }
}

fn partition_index_to_glue(i: &PartitionIndex) -> Result<glue::PartitionIndex> {
    glue::PartitionIndex::builder()
        .index_name(&i.index_name)
        .set_keys(Some(i.keys.clone()))
        .build()
        .map_err(build_error)
}

fn partition_to_glue(p: &Partition) -> Result<glue::PartitionInput> {
    Ok(glue::PartitionInput::builder()
        .set_values(Some(p.values.clone()))
        .set_last_access_time(time_to_glue(p.last_access_time))
        .set_storage_descriptor(
            p.storage_descriptor
                .as_ref()
                .map(storage_to_glue)
                .transpose()?,
        )
        .set_parameters(parameters_to_glue(&p.parameters))
        .set_last_analyzed_time(time_to_glue(p.last_analyzed_time))
        .build())
}

fn partition_from_glue(p: glue::Partition) -> Partition {
    Partition {
        values: p.values.unwrap_or_default(),
        database_name: p.database_name,
        table_name: p.table_name,
        creation_time: time_from_glue(p.creation_time),
        last_access_time: time_from_glue(p.last_access_time),
        storage_descriptor: p.storage_descriptor.map(storage_from_glue),
        parameters: parameters_from_glue(p.parameters),
        last_analyzed_time: time_from_glue(p.last_analyzed_time),
        catalog_id: p.catalog_id,
    }
}

fn value_list(values: &[String]) -> Result<glue::PartitionValueList> {
    glue::PartitionValueList::builder()
        .set_values(Some(values.to_vec()))
        .build()
        .map_err(build_error)
}

/// Checks an `s3://` location as the embedded catalog does.
fn check_location(location: Option<&String>) -> Result<()> {
    if let Some(loc) = location
        && !loc.is_empty()
    {
        crate::Location::parse(loc).map_err(|e| CatalogError::InvalidInput(e.to_string()))?;
    }
    Ok(())
}

/// Checks a partition against its table: one value per key, valid column
/// types.
fn check_partition(db: &str, table: &Table, p: &Partition) -> Result<()> {
    let keys = table.partition_keys.len();
    if p.values.len() != keys {
        return Err(CatalogError::InvalidInput(format!(
            "the table has {keys} partition keys but {} values were given",
            p.values.len()
        )));
    }
    match &p.storage_descriptor {
        Some(sd) => check_column_types(
            &format!("partition {:?} of table {db}.{}", p.values, table.name),
            "Column",
            &sd.columns,
        ),
        None => Ok(()),
    }
}

fn location_of(p: &Partition) -> Option<&str> {
    p.storage_descriptor
        .as_ref()
        .and_then(|sd| sd.location.as_deref())
}

/// Per-partition errors in the order of the call's input.
#[derive(Default)]
struct Refusals(Vec<(usize, Vec<String>, CatalogError)>);

impl Refusals {
    fn push(&mut self, index: usize, values: Vec<String>, error: CatalogError) {
        self.0.push((index, values, error));
    }

    fn into_sorted(mut self) -> Vec<(Vec<String>, CatalogError)> {
        self.0.sort_by_key(|(i, _, _)| *i);
        self.0.into_iter().map(|(_, v, e)| (v, e)).collect()
    }
}

/// `items` in batches of at most `size`.
fn split<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut batches = Vec::with_capacity(items.len().div_ceil(size));
    let mut rest = items.into_iter().peekable();
    while rest.peek().is_some() {
        batches.push(rest.by_ref().take(size).collect());
    }
    batches
}

/// Where each partition of a batch came from in the call's input.
fn positions(batch: &[(usize, Vec<String>)]) -> HashMap<&[String], usize> {
    batch.iter().map(|(i, v)| (v.as_slice(), *i)).collect()
}

/// The partitions a batch call refused: their values and Glue's reason.
type BatchErrors = Vec<(Vec<String>, Option<glue::ErrorDetail>)>;

/// Sends `items` (each with its position in the call's input and its
/// values) in batches of at most `size` through `send`, at most
/// [`CONCURRENT_BATCHES`] at once, and adds every partition Glue refused
/// to `refused` at its position. A batch that fails as a whole fails the
/// call.
async fn in_batches<T, F, Fut>(
    op: &str,
    (db, table): (&str, &str),
    items: Vec<(usize, Vec<String>, T)>,
    size: usize,
    refused: &mut Refusals,
    send: F,
) -> Result<()>
where
    F: Fn(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<BatchErrors>>,
{
    let send = &send;
    let results: Vec<_> = futures::stream::iter(split(items, size))
        .map(|batch| async move {
            let (origin, inputs): (Vec<(usize, Vec<String>)>, Vec<T>) =
                batch.into_iter().map(|(i, v, t)| ((i, v), t)).unzip();
            (send(inputs).await, origin)
        })
        .buffered(CONCURRENT_BATCHES)
        .collect()
        .await;
    for (sent, origin) in results {
        let at = positions(&origin);
        for (values, detail) in sent? {
            let index = at.get(values.as_slice()).copied().unwrap_or(usize::MAX);
            let error = partition_error(op, db, table, &values, detail);
            refused.push(index, values, error);
        }
    }
    Ok(())
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn create_database(&self, mut database: Database) -> Result<()> {
        let name = normalize_name("database", &database.name)?;
        check_location(database.location_uri.as_ref())?;
        database.name = name.clone();
        self.client
            .create_database()
            .set_catalog_id(self.cid())
            .database_input(database_to_glue(&database)?)
            .send()
            .await
            .map_err(|e| sdk_error("CreateDatabase", What::Database(&name), e))?;
        Ok(())
    }

    async fn get_database(&self, name: &str) -> Result<Database> {
        let name = normalize_name("database", name)?;
        let what = What::Database(&name);
        let out = self
            .client
            .get_database()
            .set_catalog_id(self.cid())
            .name(&name)
            .send()
            .await
            .map_err(|e| sdk_error("GetDatabase", what, e))?;
        let d = out
            .database
            .ok_or_else(|| missing_member("GetDatabase", what, "Database"))?;
        Ok(database_from_glue(d))
    }

    async fn list_databases(&self) -> Result<Vec<Database>> {
        let mut pager = self.pager("GetDatabases", What::Catalog);
        let mut out = Vec::new();
        loop {
            let page = self
                .client
                .get_databases()
                .set_catalog_id(self.cid())
                .max_results(100)
                .set_next_token(pager.token())
                .send()
                .await
                .map_err(|e| sdk_error("GetDatabases", What::Catalog, e))?;
            out.extend(page.database_list.into_iter().map(database_from_glue));
            if !pager.advance(page.next_token)? {
                break;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Glue deletes the database's tables (and their partitions) with it.
    async fn delete_database(&self, name: &str) -> Result<()> {
        let name = normalize_name("database", name)?;
        self.client
            .delete_database()
            .set_catalog_id(self.cid())
            .name(&name)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteDatabase", What::Database(&name), e))?;
        Ok(())
    }

    async fn create_table(&self, database: &str, mut table: Table) -> Result<()> {
        let (db, name) = Self::names(database, &table.name)?;
        check_location(
            table
                .storage_descriptor
                .as_ref()
                .and_then(|sd| sd.location.as_ref()),
        )?;
        table.name = name.clone();
        check_table_types(&db, &table)?;
        table
            .table_type
            .get_or_insert_with(|| crate::model::EXTERNAL_TABLE.into());
        // Each index is checked against the keys and the ones before it.
        let requested = table.partition_indexes.take().unwrap_or_default();
        let mut indexes = Vec::with_capacity(requested.len());
        for index in requested {
            table.partition_indexes = Some(indexes.clone());
            check_partition_index(&table, &index)?;
            indexes.push(index);
        }
        table.partition_indexes = None;
        let indexes = indexes
            .iter()
            .map(partition_index_to_glue)
            .collect::<Result<Vec<_>>>()?;
        self.client
            .create_table()
            .set_catalog_id(self.cid())
            .database_name(&db)
            .table_input(table_to_glue(&table)?)
            .set_partition_indexes((!indexes.is_empty()).then_some(indexes))
            .send()
            .await
            .map_err(|e| sdk_error("CreateTable", What::Table(&db, &name), e))?;
        Ok(())
    }

    /// One `GetTable`, and a `GetPartitionIndexes` for tables with
    /// partition keys.
    async fn get_table(&self, database: &str, name: &str) -> Result<Table> {
        let (db, name) = Self::names(database, name)?;
        let mut table = self.fetch_table(&db, &name).await?;
        if !table.partition_keys.is_empty() {
            let indexes = self.fetch_partition_indexes(&db, &name).await?;
            table.partition_indexes = (!indexes.is_empty()).then_some(indexes);
        }
        Ok(table)
    }

    /// The tables without their partition indexes (see
    /// [`Catalog::get_table`]).
    async fn list_tables(&self, database: &str) -> Result<Vec<Table>> {
        let db = normalize_name("database", database)?;
        let what = What::Database(&db);
        let mut pager = self.pager("GetTables", what);
        let mut out = Vec::new();
        loop {
            let page = self
                .client
                .get_tables()
                .set_catalog_id(self.cid())
                .database_name(&db)
                .max_results(100)
                .set_next_token(pager.token())
                .send()
                .await
                .map_err(|e| sdk_error("GetTables", what, e))?;
            out.extend(
                page.table_list
                    .unwrap_or_default()
                    .into_iter()
                    .map(table_from_glue),
            );
            if !pager.advance(page.next_token)? {
                break;
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `UpdateTable`, with `VersionId` set to `expected_version`. When the
    /// table names partition indexes, indexes are then created and deleted
    /// to match; that step is not atomic with the update.
    async fn update_table(
        &self,
        database: &str,
        mut table: Table,
        expected_version: Option<&str>,
    ) -> Result<()> {
        let (db, name) = Self::names(database, &table.name)?;
        table.name = name.clone();
        check_table_types(&db, &table)?;
        table
            .table_type
            .get_or_insert_with(|| crate::model::EXTERNAL_TABLE.into());
        let indexes = table.partition_indexes.take();
        let input = table_to_glue(&table)?;
        let what = What::Table(&db, &name);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .client
                .update_table()
                .set_catalog_id(self.cid())
                .database_name(&db)
                .table_input(input.clone())
                .set_version_id(expected_version.map(str::to_string))
                .send()
                .await
                .map_err(|e| sdk_error("UpdateTable", what, e));
            match sent {
                Ok(_) => break,
                // Without a precondition a lost race is tried again.
                Err(CatalogError::ConcurrentModification(_))
                    if expected_version.is_none() && attempt < UPDATE_RETRIES =>
                {
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(indexes) = indexes {
            self.reconcile_partition_indexes(&db, &table, indexes)
                .await?;
        }
        Ok(())
    }

    async fn delete_table(&self, database: &str, name: &str) -> Result<()> {
        let (db, name) = Self::names(database, name)?;
        self.client
            .delete_table()
            .set_catalog_id(self.cid())
            .database_name(&db)
            .name(&name)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteTable", What::Table(&db, &name), e))?;
        Ok(())
    }

    /// Pages through `GetTableVersions`. While Glue lists versions newest
    /// first, reading stops once the page and one more are known; a server
    /// that lists them in another order is read to the end and sorted.
    async fn table_versions(
        &self,
        database: &str,
        name: &str,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<Table>, bool)> {
        let (db, name) = Self::names(database, name)?;
        let what = What::Table(&db, &name);
        let needed = skip.saturating_add(limit).saturating_add(1);
        let number = |t: &Table| t.version_id.as_deref().and_then(|v| v.parse::<u64>().ok());
        let mut versions: Vec<Table> = Vec::new();
        let mut newest_first = true;
        let mut pager = self.pager("GetTableVersions", what);
        loop {
            let page = self
                .client
                .get_table_versions()
                .set_catalog_id(self.cid())
                .database_name(&db)
                .table_name(&name)
                .max_results(100)
                .set_next_token(pager.token())
                .send()
                .await
                .map_err(|e| sdk_error("GetTableVersions", what, e))?;
            for v in page.table_versions.unwrap_or_default() {
                let Some(t) = v.table else { continue };
                let mut t = table_from_glue(t);
                if v.version_id.is_some() {
                    t.version_id = v.version_id;
                }
                let ordered = match (versions.last(), number(&t)) {
                    (None, Some(_)) => true,
                    (Some(before), Some(this)) => number(before).is_some_and(|b| this < b),
                    _ => false,
                };
                newest_first &= ordered;
                versions.push(t);
            }
            if newest_first && versions.len() >= needed {
                break;
            }
            if !pager.advance(page.next_token)? {
                break;
            }
        }
        if !newest_first {
            // Numbered versions newest first, any others after them.
            versions.sort_by(|a, b| {
                number(b)
                    .cmp(&number(a))
                    .then_with(|| b.version_id.cmp(&a.version_id))
            });
        }
        let more = versions.len() > skip.saturating_add(limit);
        let page = versions.into_iter().skip(skip).take(limit).collect();
        Ok((page, more))
    }

    /// Reads the table (for its partition keys), checks every partition,
    /// then sends `BatchCreatePartition` in batches of 100.
    async fn create_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: Vec<Partition>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>> {
        let (db, name) = Self::names(database, table)?;
        let definition = self.fetch_table(&db, &name).await?;
        let mut refused = Refusals::default();
        let mut seen = HashSet::new();
        let mut accepted: Vec<(usize, Vec<String>, glue::PartitionInput)> = Vec::new();
        for (i, p) in partitions.into_iter().enumerate() {
            if let Err(e) = check_partition(&db, &definition, &p) {
                refused.push(i, p.values, e);
            } else if !seen.insert(p.values.clone()) {
                let e =
                    CatalogError::AlreadyExists(What::Partition(&db, &name, &p.values).to_string());
                refused.push(i, p.values, e);
            } else {
                match partition_to_glue(&p) {
                    Ok(input) => accepted.push((i, p.values, input)),
                    Err(e) => refused.push(i, p.values, e),
                }
            }
        }
        let what = What::Table(&db, &name);
        let (dbr, namer) = (db.as_str(), name.as_str());
        let send = |inputs| async move {
            let out = self
                .client
                .batch_create_partition()
                .set_catalog_id(self.cid())
                .database_name(dbr)
                .table_name(namer)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| sdk_error("BatchCreatePartition", what, e))?;
            Ok(out
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.partition_values.unwrap_or_default(), e.error_detail))
                .collect())
        };
        let op = "BatchCreatePartition";
        in_batches(op, (dbr, namer), accepted, CREATE_BATCH, &mut refused, send).await?;
        Ok(refused.into_sorted())
    }

    async fn get_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
    ) -> Result<Partition> {
        let (db, name) = Self::names(database, table)?;
        self.get_partition_named(&db, &name, values).await
    }

    /// `GetPartitions` with Glue's own `Expression`, paged.
    async fn get_partitions(
        &self,
        database: &str,
        table: &str,
        expression: Option<&str>,
    ) -> Result<Vec<Partition>> {
        let (db, name) = Self::names(database, table)?;
        let expression = expression.map(str::trim).filter(|e| !e.is_empty());
        if let Some(e) = expression
            && e.chars().count() > MAX_EXPRESSION_CHARS
        {
            return Err(CatalogError::InvalidInput(format!(
                "Expression must be at most {MAX_EXPRESSION_CHARS} characters, got {}",
                e.chars().count()
            )));
        }
        let what = What::Table(&db, &name);
        let mut pager = self.pager("GetPartitions", what);
        let mut out = Vec::new();
        loop {
            let page = self
                .client
                .get_partitions()
                .set_catalog_id(self.cid())
                .database_name(&db)
                .table_name(&name)
                .set_expression(expression.map(str::to_string))
                .max_results(1000)
                .set_next_token(pager.token())
                .send()
                .await
                .map_err(|e| sdk_error("GetPartitions", what, e))?;
            out.extend(
                page.partitions
                    .unwrap_or_default()
                    .into_iter()
                    .map(partition_from_glue),
            );
            if !pager.advance(page.next_token)? {
                break;
            }
        }
        out.sort_by(|a, b| a.values.cmp(&b.values));
        Ok(out)
    }

    /// `BatchDeletePartition` in batches of 25; a partition named twice is
    /// not found the second time.
    async fn delete_partitions(
        &self,
        database: &str,
        table: &str,
        values: Vec<Vec<String>>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>> {
        let (db, name) = Self::names(database, table)?;
        let mut refused = Refusals::default();
        let mut seen = HashSet::new();
        let mut accepted = Vec::new();
        for (i, v) in values.into_iter().enumerate() {
            if seen.insert(v.clone()) {
                accepted.push((i, v));
            } else {
                let e = CatalogError::NotFound(What::Partition(&db, &name, &v).to_string());
                refused.push(i, v, e);
            }
        }
        let accepted = accepted
            .into_iter()
            .map(|(i, v)| {
                let key = value_list(&v)?;
                Ok((i, v, key))
            })
            .collect::<Result<Vec<_>>>()?;
        let what = What::Table(&db, &name);
        let (dbr, namer) = (db.as_str(), name.as_str());
        let send = |keys| async move {
            let out = self
                .client
                .batch_delete_partition()
                .set_catalog_id(self.cid())
                .database_name(dbr)
                .table_name(namer)
                .set_partitions_to_delete(Some(keys))
                .send()
                .await
                .map_err(|e| sdk_error("BatchDeletePartition", what, e))?;
            Ok(out
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.partition_values.unwrap_or_default(), e.error_detail))
                .collect())
        };
        let op = "BatchDeletePartition";
        in_batches(op, (dbr, namer), accepted, DELETE_BATCH, &mut refused, send).await?;
        Ok(refused.into_sorted())
    }

    /// Reads the table (for its partition keys) and, for updates with an
    /// expected location, the partitions (`BatchGetPartition`); then sends
    /// `BatchUpdatePartition` in batches of 100.
    ///
    /// The expected-location check is **not atomic** on Glue: Glue has no
    /// conditional partition update, so a writer that moves the partition
    /// between the read and the update is not detected. Writers that rely
    /// on it must not race each other on one partition.
    async fn update_partitions(
        &self,
        database: &str,
        table: &str,
        updates: Vec<PartitionUpdate>,
    ) -> Result<Vec<(Vec<String>, CatalogError)>> {
        let (db, name) = Self::names(database, table)?;
        let definition = self.fetch_table(&db, &name).await?;
        let mut refused = Refusals::default();
        let mut seen = HashSet::new();
        let mut checked: Vec<(usize, PartitionUpdate)> = Vec::new();
        for (i, mut u) in updates.into_iter().enumerate() {
            if u.partition.values.is_empty() {
                u.partition.values = u.values.clone();
            }
            if let Err(e) = check_partition(&db, &definition, &u.partition) {
                refused.push(i, u.values, e);
            } else if !seen.insert(u.values.clone()) {
                let e = CatalogError::InvalidInput(format!(
                    "{} is updated twice in one call",
                    What::Partition(&db, &name, &u.values)
                ));
                refused.push(i, u.values, e);
            } else {
                checked.push((i, u));
            }
        }
        let guarded: Vec<Vec<String>> = checked
            .iter()
            .filter(|(_, u)| u.expected_location.is_some())
            .map(|(_, u)| u.values.clone())
            .collect();
        let current = if guarded.is_empty() {
            HashMap::new()
        } else {
            self.fetch_partitions(&db, &name, guarded).await?
        };
        let mut accepted: Vec<(usize, Vec<String>, glue::BatchUpdatePartitionRequestEntry)> =
            Vec::new();
        for (i, u) in checked {
            if let Some(expected) = &u.expected_location {
                let Some(now) = current.get(&u.values) else {
                    let e =
                        CatalogError::NotFound(What::Partition(&db, &name, &u.values).to_string());
                    refused.push(i, u.values, e);
                    continue;
                };
                if location_of(now) != Some(expected.as_str()) {
                    let e = CatalogError::ConcurrentModification(format!(
                        "{} moved to {} meanwhile",
                        What::Partition(&db, &name, &u.values),
                        location_of(now).unwrap_or_default()
                    ));
                    refused.push(i, u.values, e);
                    continue;
                }
            }
            let entry = partition_to_glue(&u.partition).and_then(|input| {
                glue::BatchUpdatePartitionRequestEntry::builder()
                    .set_partition_value_list(Some(u.values.clone()))
                    .partition_input(input)
                    .build()
                    .map_err(build_error)
            });
            match entry {
                Ok(entry) => accepted.push((i, u.values, entry)),
                Err(e) => refused.push(i, u.values, e),
            }
        }
        let what = What::Table(&db, &name);
        let (dbr, namer) = (db.as_str(), name.as_str());
        let send = |entries| async move {
            let out = self
                .client
                .batch_update_partition()
                .set_catalog_id(self.cid())
                .database_name(dbr)
                .table_name(namer)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error("BatchUpdatePartition", what, e))?;
            Ok(out
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| (e.partition_value_list.unwrap_or_default(), e.error_detail))
                .collect())
        };
        let op = "BatchUpdatePartition";
        in_batches(op, (dbr, namer), accepted, UPDATE_BATCH, &mut refused, send).await?;
        Ok(refused.into_sorted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_and_never_shown_with_credentials() {
        assert!(check_endpoint("http://127.0.0.1:5000").is_ok());
        assert!(check_endpoint("https://glue.eu-west-1.amazonaws.com/").is_ok());
        for bad in ["ftp://x", "glue.amazonaws.com", "http://", ""] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        let err = check_endpoint("https://AKIDEXAMPLE:s3cr3t@glue.example.com")
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("s3cr3t") && !err.contains("AKIDEXAMPLE"),
            "{err}"
        );
        let options = GlueOptions {
            endpoint: Some("https://user:hunter2@glue.example.com/".into()),
            ..Default::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }

    #[test]
    fn missing_entities_are_named_from_glues_message() {
        let values = vec!["2026".to_string()];
        let p = What::Partition("db", "t", &values);
        assert_eq!(p.missing("Database db not found."), "Database db");
        assert_eq!(p.missing("Table t not found."), "Table db.t");
        assert_eq!(
            p.missing("Cannot find partition."),
            "Partition [\"2026\"] of table db.t"
        );
        assert_eq!(
            What::Table("db", "t").missing("Database db not found."),
            "Database db"
        );
    }

    #[test]
    fn error_codes_map_onto_variants_and_faults_are_transient() {
        let what = What::Table("db", "t");
        assert!(matches!(
            glue_error("GetTable", what, "EntityNotFoundException", Some("Table t not found.")),
            CatalogError::NotFound(m) if m == "Table db.t"
        ));
        assert!(matches!(
            glue_error("CreateTable", what, "AlreadyExistsException", None),
            CatalogError::AlreadyExists(_)
        ));
        assert!(matches!(
            glue_error("UpdateTable", what, "ConcurrentModificationException", None),
            CatalogError::ConcurrentModification(_)
        ));
        assert!(matches!(
            glue_error("GetPartitions", what, "InvalidInputException", Some("bad expr")),
            CatalogError::InvalidInput(m) if m == "bad expr"
        ));
        for code in [
            "ThrottlingException",
            "InternalServiceException",
            "OperationTimeoutException",
            "AccessDeniedException",
        ] {
            match glue_error("GetTable", what, code, Some("x")) {
                CatalogError::Storage(e) => assert!(!e.is_permanent(), "{code}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        let mut pager = Pager {
            op: "GetTables",
            what: "Database db".into(),
            max: 2,
            pages: 0,
            token: None,
        };
        assert!(pager.advance(Some("a".into())).unwrap());
        match pager.advance(Some("b".into())) {
            Err(CatalogError::Storage(e)) => {
                assert!(e.is_permanent());
                assert!(e.to_string().contains("more than 2 pages"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn storage_descriptors_convert_both_ways() {
        let sd = StorageDescriptor {
            columns: vec![Column {
                name: "status".into(),
                data_type: Some("bigint".into()),
                comment: Some("HTTP status".into()),
                parameters: [("k".to_string(), "v".to_string())].into(),
            }],
            location: Some("s3://lake/logs/".into()),
            input_format: Some(crate::model::formats::PARQUET_INPUT.into()),
            output_format: Some(crate::model::formats::PARQUET_OUTPUT.into()),
            compressed: Some(true),
            number_of_buckets: Some(4),
            serde_info: Some(SerDeInfo {
                name: Some("s".into()),
                serialization_library: Some(crate::model::formats::PARQUET_SERDE.into()),
                parameters: [("serialization.format".to_string(), "1".to_string())].into(),
            }),
            bucket_columns: vec!["status".into()],
            sort_columns: vec![Order {
                column: "status".into(),
                sort_order: 0,
            }],
            parameters: [("p".to_string(), "q".to_string())].into(),
            stored_as_sub_directories: Some(true),
        };
        assert_eq!(storage_from_glue(storage_to_glue(&sd).unwrap()), sd);
    }
}
