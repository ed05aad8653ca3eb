//! The AWS Glue Data Catalog JSON 1.1 API (`X-Amz-Target: AWSGlue.*`) over a
//! [`Catalog`].
//!
//! Databases: `CreateDatabase`, `GetDatabase`, `GetDatabases`,
//! `DeleteDatabase`. Tables: `CreateTable`, `GetTable`, `GetTables` (with
//! `Expression`), `UpdateTable`, `DeleteTable`, `GetTableVersions`. Lists
//! page with `MaxResults` and an opaque `NextToken`. Errors use Glue's
//! shapes (`EntityNotFoundException`, `AlreadyExistsException`,
//! `InvalidInputException`, `ConcurrentModificationException`, with a
//! `Message` member).

use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::awsjson::{self, AwsError};
use crate::catalog::{Catalog, CatalogError, CatalogRef, PartitionUpdate, check_partition_index};
use crate::crawler::service::{CrawlerDefinition, CrawlerError, CrawlerService};
use crate::model::{Database, Partition, PartitionIndex, Table};

/// The `X-Amz-Target` prefix of Glue.
pub const TARGET_PREFIX: &str = "AWSGlue";

impl From<CatalogError> for AwsError {
    fn from(e: CatalogError) -> Self {
        let code = match &e {
            CatalogError::NotFound(_) => "EntityNotFoundException",
            CatalogError::AlreadyExists(_) => "AlreadyExistsException",
            CatalogError::InvalidInput(_) => "InvalidInputException",
            CatalogError::ConcurrentModification(_) => "ConcurrentModificationException",
            CatalogError::Storage(_) | CatalogError::Corrupt { .. } => {
                // Internal causes are logged, not returned to clients.
                tracing::error!(error = %e, "Catalog storage failed.");
                return AwsError::internal(
                    "InternalServiceException",
                    "the catalog's storage failed",
                )
                .upper_case();
            }
        };
        AwsError::client(code, e.to_string()).upper_case()
    }
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidInputException", message).upper_case()
}

fn required<T>(value: Option<T>, member: &str) -> Result<T, AwsError> {
    value.ok_or_else(|| invalid(format!("{member} is required")))
}

/// What the Glue API serves: the catalog and its crawlers.
#[derive(Debug, Clone)]
pub struct GlueApi {
    /// The catalog.
    pub catalog: CatalogRef,
    /// The crawlers.
    pub crawlers: CrawlerService,
}

impl From<CrawlerError> for AwsError {
    fn from(e: CrawlerError) -> Self {
        match e {
            CrawlerError::Catalog(e) => e.into(),
            CrawlerError::Running(_) => {
                AwsError::client("CrawlerRunningException", e.to_string()).upper_case()
            }
            CrawlerError::NotRunning(_) => {
                AwsError::client("CrawlerNotRunningException", e.to_string()).upper_case()
            }
        }
    }
}

/// Handles one Glue operation.
pub async fn handle(api: &GlueApi, operation: &str, body: &[u8]) -> Response {
    let catalog = api.catalog.as_ref();
    let crawlers = &api.crawlers;
    let result = match operation {
        "CreateCrawler" => create_crawler(crawlers, body).await,
        "GetCrawler" => get_crawler(crawlers, body).await,
        "GetCrawlers" => get_crawlers(crawlers, body).await,
        "UpdateCrawler" => update_crawler(crawlers, body).await,
        "DeleteCrawler" => delete_crawler(crawlers, body).await,
        "StartCrawler" => start_crawler(crawlers, body).await,
        "StopCrawler" => stop_crawler(crawlers, body).await,
        "GetCrawlerMetrics" => get_crawler_metrics(crawlers, body).await,
        "CreateDatabase" => create_database(catalog, body).await,
        "GetDatabase" => get_database(catalog, body).await,
        "GetDatabases" => get_databases(catalog, body).await,
        "DeleteDatabase" => delete_database(catalog, body).await,
        "CreateTable" => create_table(catalog, body).await,
        "GetTable" => get_table(catalog, body).await,
        "GetTables" => get_tables(catalog, body).await,
        "UpdateTable" => update_table(catalog, body).await,
        "DeleteTable" => delete_table(catalog, body).await,
        "GetTableVersions" => get_table_versions(catalog, body).await,
        "CreatePartition" => create_partition(catalog, body).await,
        "BatchCreatePartition" => batch_create_partition(catalog, body).await,
        "GetPartition" => get_partition(catalog, body).await,
        "GetPartitions" => get_partitions(catalog, body).await,
        "BatchDeletePartition" => batch_delete_partition(catalog, body).await,
        "UpdatePartition" => update_partition(catalog, body).await,
        "BatchUpdatePartition" => batch_update_partition(catalog, body).await,
        "CreatePartitionIndex" => create_partition_index(catalog, body).await,
        "GetPartitionIndexes" => get_partition_indexes(catalog, body).await,
        "DeletePartitionIndex" => delete_partition_index(catalog, body).await,
        other => Err(AwsError::unknown_operation(&format!("{TARGET_PREFIX}.{other}")).upper_case()),
    };
    match result {
        Ok(v) => awsjson::ok(v),
        Err(e) => e.into_response(),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, AwsError> {
    awsjson::parse(body).map_err(AwsError::upper_case)
}

/// Pages `items` (sorted by `key`) after the token, at most `max`.
fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    token: Option<&str>,
    max: Option<i64>,
    limit: i64,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let max = max.unwrap_or(limit);
    if !(1..=limit).contains(&max) {
        return Err(invalid(format!(
            "MaxResults must be between 1 and {limit}, got {max}"
        )));
    }
    let after = match token {
        None | Some("") => None,
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid("NextToken is not valid"))?,
        ),
    };
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|i| after.as_deref().is_none_or(|a| key(i) > a))
        .collect();
    let more = rest.len() > max as usize;
    rest.truncate(max as usize);
    let next = more
        .then(|| {
            rest.last()
                .map(|i| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key(i)))
        })
        .flatten();
    Ok((rest, next))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateDatabaseInput {
    database_input: Option<Database>,
}

async fn create_database(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: CreateDatabaseInput = parse(body)?;
    let db = required(input.database_input, "DatabaseInput")?;
    catalog.create_database(db).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameInput {
    name: Option<String>,
}

async fn get_database(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: NameInput = parse(body)?;
    let db = catalog.get_database(&required(input.name, "Name")?).await?;
    Ok(json!({ "Database": db }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
    database_name: Option<String>,
    table_name: Option<String>,
    expression: Option<String>,
}

async fn get_databases(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    let all = catalog.list_databases().await?;
    let (list, next) = page(
        all,
        |d| &d.name,
        input.next_token.as_deref(),
        input.max_results,
        100,
    )?;
    Ok(json!({ "DatabaseList": list, "NextToken": next }))
}

async fn delete_database(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: NameInput = parse(body)?;
    catalog
        .delete_database(&required(input.name, "Name")?)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TableInput {
    database_name: Option<String>,
    table_input: Option<Table>,
    name: Option<String>,
    version_id: Option<String>,
    /// CreateTable's indexes.
    partition_indexes: Option<Vec<PartitionIndex>>,
}

async fn create_table(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: TableInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    let mut table = required(input.table_input, "TableInput")?;
    // Indexes come from CreateTable's own member, checked one by one.
    table.partition_indexes = None;
    let mut indexes = Vec::new();
    for index in input.partition_indexes.unwrap_or_default() {
        table.partition_indexes = Some(indexes.clone());
        check_partition_index(&table, &index)?;
        indexes.push(index);
    }
    table.partition_indexes = (!indexes.is_empty()).then_some(indexes);
    catalog.create_table(&db, table).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PartitionIndexInput {
    database_name: Option<String>,
    table_name: Option<String>,
    partition_index: Option<PartitionIndex>,
    index_name: Option<String>,
    next_token: Option<String>,
}

/// `CreatePartitionIndex`.
async fn create_partition_index(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionIndexInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    let name = required(input.table_name, "TableName")?;
    let index = required(input.partition_index, "PartitionIndex")?;
    let mut table = catalog.get_table(&db, &name).await?;
    check_partition_index(&table, &index)?;
    let version = table.version_id.clone();
    table
        .partition_indexes
        .get_or_insert_with(Vec::new)
        .push(index);
    catalog.update_table(&db, table, version.as_deref()).await?;
    Ok(json!({}))
}

/// `GetPartitionIndexes`: every index is `ACTIVE` (the catalog answers
/// partition lookups from its own files; nothing is built in the
/// background).
async fn get_partition_indexes(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionIndexInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    let name = required(input.table_name, "TableName")?;
    if input.next_token.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(invalid("NextToken is not valid"));
    }
    let table = catalog.get_table(&db, &name).await?;
    let list: Vec<Value> = table
        .partition_indexes
        .unwrap_or_default()
        .iter()
        .map(|index| {
            let keys: Vec<Value> = index
                .keys
                .iter()
                .map(|k| {
                    let ty = table
                        .partition_keys
                        .iter()
                        .find(|c| c.name.eq_ignore_ascii_case(k))
                        .and_then(|c| c.data_type.clone())
                        .unwrap_or_else(|| "string".into());
                    json!({ "Name": k, "Type": ty })
                })
                .collect();
            json!({ "IndexName": index.index_name, "Keys": keys, "IndexStatus": "ACTIVE" })
        })
        .collect();
    Ok(json!({ "PartitionIndexDescriptorList": list }))
}

/// `DeletePartitionIndex`.
async fn delete_partition_index(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionIndexInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    let name = required(input.table_name, "TableName")?;
    let index_name = required(input.index_name, "IndexName")?;
    let mut table = catalog.get_table(&db, &name).await?;
    let mut indexes = table.partition_indexes.take().unwrap_or_default();
    let before = indexes.len();
    indexes.retain(|i| !i.index_name.eq_ignore_ascii_case(&index_name));
    if indexes.len() == before {
        return Err(CatalogError::NotFound(format!(
            "Partition index {index_name} of table {db}.{name}"
        ))
        .into());
    }
    let version = table.version_id.clone();
    table.partition_indexes = Some(indexes);
    catalog.update_table(&db, table, version.as_deref()).await?;
    Ok(json!({}))
}

async fn get_table(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: TableInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    let table = catalog
        .get_table(&db, &required(input.name, "Name")?)
        .await?;
    Ok(json!({ "Table": table }))
}

/// Glue's (Hive metastore's) table-name patterns: `*` matches any
/// characters, `|` separates alternatives, the rest is a regular
/// expression; names match whole and case-insensitively.
pub fn name_pattern(expression: &str) -> Result<regex::Regex, AwsError> {
    let alternatives: Vec<String> = expression
        .split('|')
        .map(|alt| {
            let mut out = String::new();
            let mut prev = '\0';
            for c in alt.chars() {
                if c == '*' && prev != '.' {
                    out.push_str(".*");
                } else {
                    out.push(c);
                }
                prev = c;
            }
            out
        })
        .collect();
    regex::RegexBuilder::new(&format!("^(?:{})$", alternatives.join("|")))
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            invalid(format!(
                "Expression {expression:?} is not a valid pattern: {e}"
            ))
        })
}

async fn get_tables(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    let pattern = match input.expression.as_deref() {
        Some(e) if e.len() > crate::expr::MAX_EXPRESSION_LENGTH => {
            return Err(invalid(format!(
                "Expression is longer than {} characters",
                crate::expr::MAX_EXPRESSION_LENGTH
            )));
        }
        Some(e) if !e.is_empty() => Some(name_pattern(e)?),
        _ => None,
    };
    let all: Vec<Table> = catalog
        .list_tables(&db)
        .await?
        .into_iter()
        .filter(|t| pattern.as_ref().is_none_or(|p| p.is_match(&t.name)))
        .collect();
    let (list, next) = page(
        all,
        |t| &t.name,
        input.next_token.as_deref(),
        input.max_results,
        100,
    )?;
    Ok(json!({ "TableList": list, "NextToken": next }))
}

async fn update_table(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: TableInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    let mut table = required(input.table_input, "TableInput")?;
    // TableInput has no indexes: the table keeps its own.
    table.partition_indexes = None;
    catalog
        .update_table(&db, table, input.version_id.as_deref())
        .await?;
    Ok(json!({}))
}

async fn delete_table(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: TableInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    catalog
        .delete_table(&db, &required(input.name, "Name")?)
        .await?;
    Ok(json!({}))
}

/// Glue's largest `MaxResults` for `GetTableVersions` (and its default).
pub(crate) const MAX_TABLE_VERSIONS_PER_PAGE: i64 = 100;

async fn get_table_versions(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    let db = required(input.database_name, "DatabaseName")?;
    let name = required(input.table_name, "TableName")?;
    // Newest first; page by position.
    let max = input.max_results.unwrap_or(MAX_TABLE_VERSIONS_PER_PAGE);
    if !(1..=MAX_TABLE_VERSIONS_PER_PAGE).contains(&max) {
        return Err(invalid(format!(
            "MaxResults must be between 1 and {MAX_TABLE_VERSIONS_PER_PAGE}, got {max}"
        )));
    }
    let start: usize = match input.next_token.as_deref() {
        None | Some("") => 0,
        Some(t) => t.parse().map_err(|_| invalid("NextToken is not valid"))?,
    };
    let (versions, more) = catalog
        .table_versions(&db, &name, start, max as usize)
        .await?;
    let end = start + versions.len();
    let list: Vec<Value> = versions
        .iter()
        .map(|t| json!({"Table": t, "VersionId": t.version_id}))
        .collect();
    let next = more.then(|| end.to_string());
    Ok(json!({ "TableVersions": list, "NextToken": next }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PartitionValuesInput {
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PartitionRequest {
    database_name: Option<String>,
    table_name: Option<String>,
    partition_input: Option<Partition>,
    partition_input_list: Option<Vec<Partition>>,
    partition_values: Option<Vec<String>>,
    partitions_to_delete: Option<Vec<PartitionValuesInput>>,
    expression: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    exclude_column_schema: Option<bool>,
    partition_value_list: Option<Vec<String>>,
    entries: Option<Vec<PartitionUpdateEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PartitionUpdateEntry {
    partition_value_list: Vec<String>,
    partition_input: Partition,
}

impl PartitionRequest {
    fn table(&self) -> Result<(String, String), AwsError> {
        Ok((
            required(self.database_name.clone(), "DatabaseName")?,
            required(self.table_name.clone(), "TableName")?,
        ))
    }
}

/// Glue's `Errors` list: `[{PartitionValues, ErrorDetail{ErrorCode, ErrorMessage}}]`.
fn partition_errors(errors: Vec<(Vec<String>, CatalogError)>) -> Value {
    errors_keyed(errors, "PartitionValues")
}

/// The one error of a single-partition call, as the call's error.
fn only_error(errors: Vec<(Vec<String>, CatalogError)>) -> Result<Value, AwsError> {
    match errors.into_iter().next() {
        Some((_, e)) => Err(e.into()),
        None => Ok(json!({})),
    }
}

/// An `Errors` list naming each partition's values under `key`.
fn errors_keyed(errors: Vec<(Vec<String>, CatalogError)>, key: &str) -> Value {
    let list: Vec<Value> = errors
        .into_iter()
        .map(|(values, e)| {
            let aws = AwsError::from(e);
            json!({
                key: values,
                "ErrorDetail": {"ErrorCode": aws.code, "ErrorMessage": aws.message},
            })
        })
        .collect();
    json!({ "Errors": list })
}

async fn create_partition(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionRequest = parse(body)?;
    let (db, table) = input.table()?;
    let partition = required(input.partition_input, "PartitionInput")?;
    only_error(
        catalog
            .create_partitions(&db, &table, vec![partition])
            .await?,
    )
}

async fn batch_create_partition(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionRequest = parse(body)?;
    let (db, table) = input.table()?;
    let list = required(input.partition_input_list, "PartitionInputList")?;
    if list.len() > 100 {
        return Err(invalid(format!(
            "PartitionInputList holds {} partitions; at most 100 are allowed",
            list.len()
        )));
    }
    Ok(partition_errors(
        catalog.create_partitions(&db, &table, list).await?,
    ))
}

async fn get_partition(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionRequest = parse(body)?;
    let (db, table) = input.table()?;
    let values = required(input.partition_values, "PartitionValues")?;
    let partition = catalog.get_partition(&db, &table, &values).await?;
    Ok(json!({ "Partition": partition }))
}

async fn get_partitions(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionRequest = parse(body)?;
    let (db, table) = input.table()?;
    if input
        .expression
        .as_ref()
        .is_some_and(|e| e.len() > crate::expr::MAX_EXPRESSION_LENGTH)
    {
        return Err(invalid(format!(
            "Expression is longer than {} characters",
            crate::expr::MAX_EXPRESSION_LENGTH
        )));
    }
    let mut all = catalog
        .get_partitions(&db, &table, input.expression.as_deref())
        .await?;
    if input.exclude_column_schema == Some(true) {
        for p in &mut all {
            if let Some(sd) = &mut p.storage_descriptor {
                sd.columns.clear();
            }
        }
    }
    // Paged in the order of their values as JSON text; the token is the
    // last one returned.
    let mut keyed: Vec<(String, Partition)> = all
        .into_iter()
        .map(|p| (serde_json::to_string(&p.values).unwrap_or_default(), p))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let (list, next) = page(
        keyed,
        |(k, _)| k,
        input.next_token.as_deref(),
        input.max_results,
        1000,
    )?;
    let list: Vec<Partition> = list.into_iter().map(|(_, p)| p).collect();
    Ok(json!({ "Partitions": list, "NextToken": next }))
}

async fn update_partition(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionRequest = parse(body)?;
    let (db, table) = input.table()?;
    let values = required(input.partition_value_list, "PartitionValueList")?;
    let partition = required(input.partition_input, "PartitionInput")?;
    let update = PartitionUpdate {
        values,
        partition,
        expected_location: None,
    };
    only_error(catalog.update_partitions(&db, &table, vec![update]).await?)
}

async fn batch_update_partition(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionRequest = parse(body)?;
    let (db, table) = input.table()?;
    let entries = required(input.entries, "Entries")?;
    if entries.is_empty() || entries.len() > 100 {
        return Err(invalid(format!(
            "Entries holds {} partitions; 1 to 100 are allowed",
            entries.len()
        )));
    }
    let updates = entries
        .into_iter()
        .map(|e| PartitionUpdate {
            values: e.partition_value_list,
            partition: e.partition_input,
            expected_location: None,
        })
        .collect();
    let errors = catalog.update_partitions(&db, &table, updates).await?;
    Ok(errors_keyed(errors, "PartitionValueList"))
}

async fn batch_delete_partition(catalog: &dyn Catalog, body: &[u8]) -> Result<Value, AwsError> {
    let input: PartitionRequest = parse(body)?;
    let (db, table) = input.table()?;
    let list = required(input.partitions_to_delete, "PartitionsToDelete")?;
    if list.len() > 25 {
        return Err(invalid(format!(
            "PartitionsToDelete holds {} partitions; at most 25 are allowed",
            list.len()
        )));
    }
    let values = list.into_iter().map(|p| p.values).collect();
    Ok(partition_errors(
        catalog.delete_partitions(&db, &table, values).await?,
    ))
}

async fn create_crawler(crawlers: &CrawlerService, body: &[u8]) -> Result<Value, AwsError> {
    let def: CrawlerDefinition = parse(body)?;
    if def.name.is_empty() {
        return Err(invalid("Name is required"));
    }
    if def.role.is_none() {
        return Err(invalid("Role is required"));
    }
    if def.targets.is_null() {
        return Err(invalid("Targets is required"));
    }
    crawlers.create(def).await?;
    Ok(json!({}))
}

async fn get_crawler(crawlers: &CrawlerService, body: &[u8]) -> Result<Value, AwsError> {
    let input: NameInput = parse(body)?;
    Ok(json!({ "Crawler": crawlers.get(&required(input.name, "Name")?).await? }))
}

async fn get_crawlers(crawlers: &CrawlerService, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    let all = crawlers.describe_all().await?;
    let keyed: Vec<(String, Value)> = all
        .into_iter()
        .map(|c| (c["Name"].as_str().unwrap_or_default().to_string(), c))
        .collect();
    let (list, next) = page(
        keyed,
        |(k, _)| k,
        input.next_token.as_deref(),
        input.max_results,
        1000,
    )?;
    let list: Vec<Value> = list.into_iter().map(|(_, c)| c).collect();
    Ok(json!({ "Crawlers": list, "NextToken": next }))
}

async fn update_crawler(crawlers: &CrawlerService, body: &[u8]) -> Result<Value, AwsError> {
    let def: CrawlerDefinition = parse(body)?;
    if def.name.is_empty() {
        return Err(invalid("Name is required"));
    }
    crawlers.update(def).await?;
    Ok(json!({}))
}

async fn delete_crawler(crawlers: &CrawlerService, body: &[u8]) -> Result<Value, AwsError> {
    let input: NameInput = parse(body)?;
    crawlers.delete(&required(input.name, "Name")?).await?;
    Ok(json!({}))
}

async fn start_crawler(crawlers: &CrawlerService, body: &[u8]) -> Result<Value, AwsError> {
    let input: NameInput = parse(body)?;
    crawlers.start(&required(input.name, "Name")?).await?;
    Ok(json!({}))
}

async fn stop_crawler(crawlers: &CrawlerService, body: &[u8]) -> Result<Value, AwsError> {
    let input: NameInput = parse(body)?;
    crawlers.stop(&required(input.name, "Name")?).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricsInput {
    crawler_name_list: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

async fn get_crawler_metrics(crawlers: &CrawlerService, body: &[u8]) -> Result<Value, AwsError> {
    let input: MetricsInput = parse(body)?;
    let names: Vec<String> = match input.crawler_name_list {
        Some(list) if !list.is_empty() => {
            if list.len() > 100 {
                return Err(invalid("CrawlerNameList holds at most 100 names"));
            }
            list
        }
        _ => crawlers.list().await?.into_iter().map(|d| d.name).collect(),
    };
    let mut metrics = Vec::new();
    for name in names {
        metrics.push((name.clone(), crawlers.metrics(&name).await?));
    }
    metrics.sort_by(|a, b| a.0.cmp(&b.0));
    let (list, next) = page(
        metrics,
        |(k, _)| k,
        input.next_token.as_deref(),
        input.max_results,
        1000,
    )?;
    let list: Vec<Value> = list.into_iter().map(|(_, m)| m).collect();
    Ok(json!({ "CrawlerMetricsList": list, "NextToken": next }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_patterns() {
        let p = name_pattern("sales*|Orders").unwrap();
        assert!(p.is_match("sales_2020"));
        assert!(p.is_match("orders"));
        assert!(!p.is_match("my_sales"));
        let p = name_pattern("req.*").unwrap();
        assert!(p.is_match("requests"));
        assert!(name_pattern("(").is_err());
    }

    #[test]
    fn paging_by_name() {
        let names: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
        let (first, next) = page(names.clone(), |s| s, None, Some(2), 100).unwrap();
        assert_eq!(first, ["t0", "t1"]);
        let (second, next) = page(names.clone(), |s| s, next.as_deref(), Some(2), 100).unwrap();
        assert_eq!(second, ["t2", "t3"]);
        let (third, next) = page(names, |s| s, next.as_deref(), Some(2), 100).unwrap();
        assert_eq!(third, ["t4"]);
        assert!(next.is_none());
    }
}
