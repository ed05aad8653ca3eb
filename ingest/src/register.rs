//! Registering delivered partitions in the catalog, so new data is
//! queryable without a crawl.
//!
//! A stream whose `DataFormatConversionConfiguration.SchemaConfiguration`
//! names a database and table registers each partition it writes. When the
//! table does not exist yet, it is created (and its database, if needed)
//! from the stream's inferred schema; when the schema gains columns, the
//! table gains them too. Partition keys come from the Hive-style
//! (`key=value`) folders of the prefix; a record field with the same name
//! as a partition key is not repeated as a data column. A prefix with other
//! dynamic folders is not registered (a crawler can catalog it).

use lakehose_catalog::catalog::{Catalog, CatalogError};
use lakehose_catalog::model::{Column, Database, Partition, StorageDescriptor, Table};

use lakehose_catalog::hive::HiveType;

use crate::schema::{JType, hive_type};

/// The data columns of a catalog table as one `struct<..>` type, for
/// converting records to exactly those types. Fails, naming the column,
/// when a column's type is unknown or cannot hold JSON values, or when the
/// table has no data columns.
pub fn table_columns(table: &Table) -> Result<HiveType, String> {
    let columns = table
        .storage_descriptor
        .as_ref()
        .map(|sd| sd.columns.as_slice())
        .unwrap_or_default();
    if columns.is_empty() {
        return Err("it has no columns".into());
    }
    let mut fields = Vec::with_capacity(columns.len());
    for c in columns {
        let text = c.data_type.as_deref().unwrap_or("string");
        let t = HiveType::parse(text).map_err(|e| format!("column {:?}: {e}", c.name))?;
        fields.push((c.name.to_lowercase(), t));
    }
    let schema = HiveType::Struct(fields);
    if let HiveType::Struct(fields) = &schema {
        lakehose_catalog::jsonserde::JsonSerDe::new(fields.clone(), Default::default())?;
    }
    Ok(schema)
}

/// Where a table's data starts, and its partition keys, from an evaluated
/// prefix: `logs/service=web/dt=2026-11-23/` → (`logs/`, [service, dt],
/// [web, 2026-11-23]). `None` when a folder after the root is not
/// `key=value`.
pub(crate) fn split_prefix(prefix: &str) -> Option<(String, Vec<String>, Vec<String>)> {
    let segments: Vec<&str> = prefix.trim_end_matches('/').split('/').collect();
    let first_hive = segments.iter().position(|s| s.contains('='))?;
    let root: String = segments[..first_hive]
        .iter()
        .map(|s| format!("{s}/"))
        .collect();
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for seg in &segments[first_hive..] {
        let (k, v) = lakehose_catalog::partition_path::parse_segment(seg)?;
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        keys.push(k.to_lowercase());
        values.push(v);
    }
    Some((root, keys, values))
}

fn columns(schema: &JType) -> Vec<Column> {
    match schema {
        JType::Struct { fields } => fields
            .iter()
            .map(|(n, t)| Column {
                name: n.clone(),
                data_type: Some(hive_type(t)),
                ..Default::default()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Registers one delivered partition: creates or widens the table (with
/// `schema`, the stream's inferred one; `None` leaves the columns as they
/// are), then adds the partition (already registered is fine).
pub(crate) async fn register_partition(
    catalog: &dyn Catalog,
    stream: &str,
    (database, table): (&str, &str),
    bucket: &str,
    prefix: &str,
    schema: Option<&JType>,
) -> Result<(), CatalogError> {
    let Some((root, keys, values)) = split_prefix(prefix) else {
        return Err(CatalogError::InvalidInput(format!(
            "prefix {prefix:?} has dynamic folders that are not key=value; its partitions cannot be registered"
        )));
    };
    // A partition key is not also a data column (Athena refuses tables
    // where it is); the value comes from the folder.
    let new_columns: Vec<Column> = schema
        .map(columns)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !keys.iter().any(|k| k.eq_ignore_ascii_case(&c.name)))
        .collect();
    match catalog.get_table(database, table).await {
        Ok(mut existing) => {
            let sd = existing
                .storage_descriptor
                .get_or_insert_with(Default::default);
            let missing: Vec<Column> = new_columns
                .into_iter()
                .filter(|c| {
                    !sd.columns
                        .iter()
                        .any(|e| e.name.eq_ignore_ascii_case(&c.name))
                })
                .collect();
            if !missing.is_empty() {
                sd.columns.extend(missing);
                let version = existing.version_id.clone();
                match catalog
                    .update_table(database, existing, version.as_deref())
                    .await
                {
                    // Someone else changed it first; the next flush retries.
                    Ok(()) | Err(CatalogError::ConcurrentModification(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Err(CatalogError::NotFound(_)) => {
            match catalog
                .create_database(Database {
                    name: database.to_string(),
                    description: Some("Created by lakehose ingest".into()),
                    ..Default::default()
                })
                .await
            {
                Ok(()) | Err(CatalogError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
            let definition = Table {
                name: table.to_string(),
                table_type: Some(lakehose_catalog::model::EXTERNAL_TABLE.into()),
                parameters: [
                    ("classification".to_string(), "parquet".to_string()),
                    ("typeOfData".to_string(), "file".to_string()),
                    ("lakehose.stream".to_string(), stream.to_string()),
                ]
                .into(),
                partition_keys: keys
                    .iter()
                    .map(|k| Column {
                        name: k.clone(),
                        data_type: Some("string".into()),
                        ..Default::default()
                    })
                    .collect(),
                storage_descriptor: Some(StorageDescriptor::parquet(
                    format!("s3://{bucket}/{root}"),
                    new_columns,
                )),
                ..Default::default()
            };
            match catalog.create_table(database, definition).await {
                Ok(()) | Err(CatalogError::AlreadyExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    let partition = Partition {
        values,
        storage_descriptor: Some(StorageDescriptor::parquet(
            format!("s3://{bucket}/{prefix}"),
            Vec::new(),
        )),
        ..Default::default()
    };
    let errors = catalog
        .create_partitions(database, table, vec![partition])
        .await?;
    match errors.into_iter().next() {
        None | Some((_, CatalogError::AlreadyExists(_))) => Ok(()),
        Some((_, e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_types_and_prefixes() {
        let t = JType::Struct {
            fields: vec![
                ("a".into(), JType::Int),
                (
                    "b".into(),
                    JType::List {
                        item: Box::new(JType::Timestamp),
                    },
                ),
                (
                    "c".into(),
                    JType::Struct {
                        fields: vec![("d".into(), JType::Bool)],
                    },
                ),
            ],
        };
        assert_eq!(
            hive_type(&t),
            "struct<a:bigint,b:array<timestamp>,c:struct<d:boolean>>"
        );
        assert_eq!(
            split_prefix("logs/service=web/dt=2026-11-23/"),
            Some((
                "logs/".into(),
                vec!["service".into(), "dt".into()],
                vec!["web".into(), "2026-11-23".into()]
            ))
        );
        assert_eq!(split_prefix("logs/2026/11/23/"), None);
        assert_eq!(split_prefix("a=1/2026/"), None);
    }
}
