//! Catalog operations over the lakehose catalog: ListDataCatalogs,
//! GetDataCatalog, ListDatabases, GetDatabase, ListTableMetadata,
//! GetTableMetadata. There is one data catalog, `AwsDataCatalog` (type
//! `GLUE`).

use std::collections::BTreeMap;

use std::sync::Arc;

use lakehose_catalog::CatalogError;
use lakehose_catalog::model::{Column, Database, Table};
use lakehose_query::contract::{Privilege, Securable, TableAccess};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AthenaApi;
use crate::error::{ApiError, from_catalog};
use crate::input::{self, length, parse, required};
use crate::{now_ms, seconds};

/// The name of the one data catalog.
pub const DATA_CATALOG: &str = "AwsDataCatalog";

/// A `WorkGroup` given with a catalog call must exist.
fn check_workgroup(api: &AthenaApi, name: Option<&str>) -> Result<(), ApiError> {
    if let Some(name) = name {
        crate::workgroups::validate_name(name, "WorkGroup")?;
        api.workgroup(name)?;
    }
    Ok(())
}

fn check_catalog(name: &str, member: &str) -> Result<(), ApiError> {
    length(name, member, 1, 256)?;
    if !name.eq_ignore_ascii_case(DATA_CATALOG) {
        return Err(ApiError::metadata(format!(
            "Catalog {name} not found: lakehose has one data catalog, {DATA_CATALOG}"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListCatalogsInput {
    next_token: Option<String>,
    max_results: Option<i64>,
    work_group: Option<String>,
}

pub(super) async fn list_data_catalogs(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: ListCatalogsInput = parse(body)?;
    check_workgroup(api, input.work_group.as_deref())?;
    input::max_results(input.max_results, 2, 50, 50)?;
    // One catalog: there is never a second page.
    input::next_token(input.next_token.as_deref())?;
    Ok(json!({
        "DataCatalogsSummary": [{ "CatalogName": DATA_CATALOG, "Type": "GLUE" }]
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetCatalogInput {
    name: Option<String>,
    work_group: Option<String>,
}

pub(super) async fn get_data_catalog(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: GetCatalogInput = parse(body)?;
    check_workgroup(api, input.work_group.as_deref())?;
    let name = required(input.name, "Name")?;
    length(&name, "Name", 1, 256)?;
    if !name.eq_ignore_ascii_case(DATA_CATALOG) {
        return Err(ApiError::invalid(format!("Catalog {name} is not found.")));
    }
    Ok(json!({
        "DataCatalog": {
            "Name": DATA_CATALOG,
            "Description": "The lakehose data catalog",
            "Type": "GLUE",
            "Parameters": { "catalog-id": "000000000000" },
        }
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListInput {
    catalog_name: Option<String>,
    database_name: Option<String>,
    table_name: Option<String>,
    expression: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    work_group: Option<String>,
}

fn database_wire(db: &Database) -> Value {
    let mut v = json!({ "Name": db.name, "Parameters": db.parameters });
    if let Some(d) = &db.description {
        v["Description"] = json!(d);
    }
    v
}

pub(super) async fn list_databases(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: ListInput = parse(body)?;
    check_workgroup(api, input.work_group.as_deref())?;
    check_catalog(&required(input.catalog_name, "CatalogName")?, "CatalogName")?;
    let max = input::max_results(input.max_results, 1, 50, 50)?;
    let token = input::next_token(input.next_token.as_deref())?;
    let all = api
        .inner
        .catalog
        .list_databases()
        .await
        .map_err(from_catalog)?;
    let (page, next) = input::page_by_name(all, |d| &d.name, token, max);
    let list: Vec<Value> = page.iter().map(database_wire).collect();
    Ok(json!({ "DatabaseList": list, "NextToken": next }))
}

pub(super) async fn get_database(api: &AthenaApi, body: &[u8]) -> Result<Value, ApiError> {
    let input: ListInput = parse(body)?;
    check_workgroup(api, input.work_group.as_deref())?;
    check_catalog(&required(input.catalog_name, "CatalogName")?, "CatalogName")?;
    let name = required(input.database_name, "DatabaseName")?;
    length(&name, "DatabaseName", 1, 128)?;
    let db = api
        .inner
        .catalog
        .get_database(&name)
        .await
        .map_err(from_catalog)?;
    Ok(json!({ "Database": database_wire(&db) }))
}

fn columns_wire(columns: &[Column]) -> Vec<Value> {
    columns
        .iter()
        .map(|c| {
            let mut v = json!({ "Name": c.name });
            if let Some(t) = &c.data_type {
                v["Type"] = json!(t);
            }
            if let Some(comment) = &c.comment {
                v["Comment"] = json!(comment);
            }
            v
        })
        .collect()
}

/// Athena's flattened table parameters: the storage descriptor's formats,
/// location and SerDe, then the table's own parameters.
pub fn table_parameters(table: &Table) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(sd) = &table.storage_descriptor {
        if let Some(v) = &sd.input_format {
            out.insert("inputformat".to_string(), v.clone());
        }
        if let Some(v) = &sd.output_format {
            out.insert("outputformat".to_string(), v.clone());
        }
        if let Some(v) = &sd.location {
            out.insert("location".to_string(), v.clone());
        }
        if let Some(serde) = &sd.serde_info {
            if let Some(lib) = &serde.serialization_library {
                out.insert("serde.serialization.lib".to_string(), lib.clone());
            }
            for (k, v) in &serde.parameters {
                out.insert(format!("serde.param.{k}"), v.clone());
            }
        }
    }
    for (k, v) in &table.parameters {
        out.insert(k.clone(), v.clone());
    }
    out
}

fn table_wire(table: &Table) -> Value {
    let columns = table
        .storage_descriptor
        .as_ref()
        .map(|sd| columns_wire(&sd.columns))
        .unwrap_or_default();
    let mut v = json!({
        "Name": table.name,
        "Columns": columns,
        "PartitionKeys": columns_wire(&table.partition_keys),
        "Parameters": table_parameters(table),
    });
    if let Some(t) = table.create_time {
        v["CreateTime"] = json!(t);
    }
    if let Some(t) = table.last_access_time {
        v["LastAccessTime"] = json!(t);
    }
    if let Some(t) = &table.table_type {
        v["TableType"] = json!(t);
    }
    v
}

pub(super) async fn list_table_metadata(
    api: &AthenaApi,
    body: &[u8],
    access: Option<&Arc<dyn TableAccess>>,
) -> Result<Value, ApiError> {
    let input: ListInput = parse(body)?;
    check_workgroup(api, input.work_group.as_deref())?;
    check_catalog(&required(input.catalog_name, "CatalogName")?, "CatalogName")?;
    let db = required(input.database_name, "DatabaseName")?;
    length(&db, "DatabaseName", 1, 128)?;
    let max = input::max_results(input.max_results, 1, 50, 50)?;
    let token = input::next_token(input.next_token.as_deref())?;
    let pattern = match input.expression.as_deref() {
        Some(e) if e.chars().count() > 256 => {
            return Err(ApiError::invalid(
                "Expression must be at most 256 characters long",
            ));
        }
        Some(e) if !e.is_empty() => Some(
            lakehose_catalog::glue::name_pattern(e)
                .map_err(|err| ApiError::invalid(err.message))?,
        ),
        _ => None,
    };
    let all: Vec<Table> = api
        .inner
        .catalog
        .list_tables(&db)
        .await
        .map_err(from_catalog)?
        .into_iter()
        .filter(|t| pattern.as_ref().is_none_or(|p| p.is_match(&t.name)))
        .filter(|t| readable(access, &db, &t.name))
        .collect();
    let (page, next) = input::page_by_name(all, |t| &t.name, token, max);
    let list: Vec<Value> = page.iter().map(table_wire).collect();
    Ok(json!({ "TableMetadataList": list, "NextToken": next }))
}

pub(super) async fn get_table_metadata(
    api: &AthenaApi,
    body: &[u8],
    access: Option<&Arc<dyn TableAccess>>,
) -> Result<Value, ApiError> {
    let input: ListInput = parse(body)?;
    check_workgroup(api, input.work_group.as_deref())?;
    check_catalog(&required(input.catalog_name, "CatalogName")?, "CatalogName")?;
    let db = required(input.database_name, "DatabaseName")?;
    length(&db, "DatabaseName", 1, 128)?;
    let name = required(input.table_name, "TableName")?;
    length(&name, "TableName", 1, 128)?;
    if !readable(access, &db, &name) {
        // As a table that does not exist: a caller learns nothing of the
        // tables it may not read.
        return Err(from_catalog(CatalogError::NotFound(format!(
            "Table {db}.{name}"
        ))));
    }
    let table = api
        .inner
        .catalog
        .get_table(&db, &name)
        .await
        .map_err(from_catalog)?;
    // Athena reports when the table was last looked at.
    let mut v = table_wire(&table);
    if table.last_access_time.is_none() {
        v["LastAccessTime"] = json!(seconds(now_ms()));
    }
    Ok(json!({ "TableMetadata": v }))
}

/// Whether `access` may read (and so see) `db`.`table`.
fn readable(access: Option<&Arc<dyn TableAccess>>, db: &str, table: &str) -> bool {
    access.is_none_or(|a| {
        a.allows(
            Privilege::Select,
            Securable::Table {
                database: &db.to_ascii_lowercase(),
                table: &table.to_ascii_lowercase(),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use lakehose_catalog::model::{SerDeInfo, StorageDescriptor};

    use super::*;

    #[test]
    fn parameters_flatten_the_storage_descriptor() {
        let table = Table {
            name: "logs".into(),
            storage_descriptor: Some(StorageDescriptor {
                location: Some("s3://lake/logs/".into()),
                input_format: Some("in".into()),
                output_format: Some("out".into()),
                serde_info: Some(SerDeInfo {
                    serialization_library: Some("org.openx.data.jsonserde.JsonSerDe".into()),
                    parameters: [("case.insensitive".to_string(), "TRUE".to_string())].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            parameters: [("classification".to_string(), "json".to_string())].into(),
            ..Default::default()
        };
        let p = table_parameters(&table);
        assert_eq!(p["inputformat"], "in");
        assert_eq!(p["outputformat"], "out");
        assert_eq!(p["location"], "s3://lake/logs/");
        assert_eq!(
            p["serde.serialization.lib"],
            "org.openx.data.jsonserde.JsonSerDe"
        );
        assert_eq!(p["serde.param.case.insensitive"], "TRUE");
        assert_eq!(p["classification"], "json");
    }
}
