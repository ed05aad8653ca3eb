//! What every writer of curated Delta tables shares: opening (or starting)
//! the Delta table at a location, and registering it in the catalog.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::Field;
use deltalake::DeltaTable;
use futures::StreamExt;
use lakehose_catalog::model::{Column, Database, StorageDescriptor, Table};
use lakehose_catalog::{CatalogError, CatalogRef, Location, Storage};

use crate::error::{Error, Result, ResultExt};

/// The Delta table at `location`: opened when it has a log, a new
/// (version-less) table otherwise. Local folders are created first.
/// Errors are transient (storage) unless the location is invalid.
pub(crate) async fn open_or_new(storage: &Storage, location: &str) -> Result<DeltaTable> {
    let loc = Location::parse(location)?;
    let builder = lakehose_query::delta::table_builder(storage, &loc).map_err(Error::Invalid)?;
    if let Some(root) = storage.local_root() {
        let folder = root.join(loc.bucket()).join(loc.key());
        std::fs::create_dir_all(&folder).map_err(|source| Error::Io {
            path: folder.clone(),
            source,
        })?;
    }
    let log = object_store::path::Path::from(format!(
        "{}/_delta_log",
        loc.object_path().as_ref().trim_end_matches('/')
    ));
    let has_log = storage.store().list(Some(&log)).next().await.is_some();
    let context = || format!("opening the Delta table at {location}");
    if has_log {
        builder.load().await.with_context(context)
    } else {
        // A new table (opening it would log an error for the missing log).
        builder.build().with_context(context)
    }
}

/// The files of the table's current version and their sizes.
pub(crate) fn files_of(table: &DeltaTable) -> std::collections::HashMap<String, u64> {
    let Ok(state) = table.snapshot() else {
        return Default::default();
    };
    state
        .log_data()
        .iter()
        .map(|f| (f.path().to_string(), f.size().max(0) as u64))
        .collect()
}

/// A Delta table to register in the catalog.
pub struct Registration<'a> {
    /// The database (created when missing).
    pub database: &'a str,
    /// The table name.
    pub name: &'a str,
    /// Where the Delta table is.
    pub location: &'a str,
    /// The table's description.
    pub description: Option<String>,
    /// Parameters besides `table_type` and `classification`.
    pub parameters: BTreeMap<String, String>,
    /// The parameter naming what owns the table (e.g. `lakehose.etl.job`):
    /// an existing catalog table over the same location must not be owned
    /// by something else.
    pub owner_key: &'a str,
}

/// Creates or updates the catalog table over the Delta table `table`.
/// A catalog table of that name over anything else is an error.
pub async fn register(
    catalog: &CatalogRef,
    reg: Registration<'_>,
    table: &DeltaTable,
) -> Result<()> {
    let state = table.snapshot()?;
    let schema = state.snapshot().arrow_schema();
    let partitions: Vec<String> = state.metadata().partition_columns().to_vec();
    let column = |f: &Field| -> Result<Column> {
        Ok(Column {
            name: f.name().clone(),
            data_type: Some(
                lakehose_query::types::arrow_to_hive(f.data_type())
                    .map_err(|m| Error::invalid(format!("column {:?}: {m}", f.name())))?,
            ),
            ..Default::default()
        })
    };
    let mut data = Vec::new();
    let mut keys = Vec::new();
    for f in schema.fields() {
        if !partitions.contains(f.name()) {
            data.push(column(f)?);
        }
    }
    for p in &partitions {
        let f = schema.field_with_name(p)?;
        keys.push(column(f)?);
    }
    let mut parameters = reg.parameters.clone();
    parameters.insert("table_type".to_string(), "DELTA".to_string());
    parameters.insert("classification".to_string(), "delta".to_string());
    let definition = Table {
        name: reg.name.to_string(),
        description: reg.description.clone(),
        storage_descriptor: Some(StorageDescriptor {
            compressed: None,
            number_of_buckets: None,
            ..StorageDescriptor::parquet(reg.location.to_string(), data)
        }),
        partition_keys: keys,
        table_type: Some(lakehose_catalog::model::EXTERNAL_TABLE.into()),
        parameters: parameters.clone().into_iter().collect(),
        ..Default::default()
    };
    match catalog.get_database(reg.database).await {
        Ok(_) => {}
        Err(CatalogError::NotFound(_)) => {
            let db = Database {
                name: reg.database.to_string(),
                ..Default::default()
            };
            match catalog.create_database(db).await {
                Ok(()) | Err(CatalogError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(other) => return Err(other.into()),
    }
    match catalog.get_table(reg.database, reg.name).await {
        Ok(existing) => {
            let same_table = existing.parameters.get("table_type").map(String::as_str)
                == Some("DELTA")
                && existing
                    .storage_descriptor
                    .as_ref()
                    .and_then(|sd| sd.location.as_deref())
                    == Some(reg.location)
                && existing
                    .parameters
                    .get(reg.owner_key)
                    .is_none_or(|owner| Some(owner) == parameters.get(reg.owner_key));
            if !same_table {
                return Err(Error::invalid(format!(
                    "{}.{} exists in the catalog and is not the Delta table at {}",
                    reg.database, reg.name, reg.location
                )));
            }
            let unchanged = existing.storage_descriptor == definition.storage_descriptor
                && existing.partition_keys == definition.partition_keys
                && existing.description == definition.description
                && existing.parameters == definition.parameters;
            if unchanged {
                return Ok(());
            }
            Ok(catalog.update_table(reg.database, definition, None).await?)
        }
        Err(CatalogError::NotFound(_)) => {
            Ok(catalog.create_table(reg.database, definition).await?)
        }
        Err(e) => Err(e.into()),
    }
}
