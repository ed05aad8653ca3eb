//! The Glue conventions Athena's statements share: a name's database,
//! Athena's wording for a missing table, table and partition locations,
//! and catalog errors as query errors.

use lakehose_catalog::model::{Partition, StorageDescriptor, Table};
use lakehose_catalog::{CatalogError, Location};

use crate::contract::{QueryError, QueryErrorKind};
use crate::ddl::Name;
use crate::engine::QueryEngine;
use crate::error::ErrorCode;
use crate::table::with_slash;

/// A catalog failure as a query error: the user's to fix when a name is
/// missing, taken or invalid, else internal.
pub(crate) fn catalog_error(e: CatalogError) -> QueryError {
    let code = match e {
        CatalogError::AlreadyExists(_) => ErrorCode::AlreadyExists,
        CatalogError::NotFound(_) | CatalogError::InvalidInput(_) => ErrorCode::GenericUserError,
        _ => ErrorCode::InternalError,
    };
    QueryError::coded(code, e.to_string())
}

fn semantic(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Semantic, message)
}

/// The database of a name, defaulting to the current one.
pub(crate) fn database_of(name: &Name, current: &str) -> String {
    name.database.clone().unwrap_or_else(|| current.to_string())
}

/// Reads a table, with Athena's wording when it is missing.
pub async fn get_table(
    engine: &QueryEngine,
    database: &str,
    name: &str,
) -> Result<Table, QueryError> {
    engine
        .catalog()
        .get_table(database, name)
        .await
        .map_err(|e| match e {
            CatalogError::NotFound(_) => QueryError::named(
                ErrorCode::TableNotFound,
                format!("Table 'awsdatacatalog.{database}.{name}' does not exist"),
            ),
            other => catalog_error(other),
        })
}

/// A table location as a folder URL, validated.
pub(crate) fn folder_location(location: &str) -> Result<Location, QueryError> {
    let parsed = Location::parse(location).map_err(|e| semantic(e.to_string()))?;
    if location.contains('*') || location.contains('?') {
        return Err(semantic(format!(
            "LOCATION {location:?} must be a folder, without wildcards"
        )));
    }
    Ok(with_slash(&parsed))
}

/// The folder of a table.
pub fn table_location(table: &Table) -> Result<Location, QueryError> {
    let l = table
        .storage_descriptor
        .as_ref()
        .and_then(|sd| sd.location.as_deref())
        .ok_or_else(|| semantic(format!("table {} has no location", table.name)))?;
    folder_location(l)
}

/// A partition of `table` with `values` at `location`, with the table's
/// storage settings.
pub fn partition(table: &Table, values: Vec<String>, location: String) -> Partition {
    let mut sd: StorageDescriptor = table.storage_descriptor.clone().unwrap_or_default();
    sd.location = Some(location);
    Partition {
        values,
        storage_descriptor: Some(sd),
        ..Default::default()
    }
}
