//! The catalog's data model: AWS Glue's shapes, serialized exactly as the
//! Glue JSON API spells them, so the same values are persisted, returned by
//! the Glue API and read by the query engine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Key/value parameters.
pub type Parameters = BTreeMap<String, String>;

fn is_empty_map(m: &Parameters) -> bool {
    m.is_empty()
}

/// A database (Athena: a schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Database {
    /// Name (stored lowercase).
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default location of its tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_uri: Option<String>,
    /// Parameters.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub parameters: Parameters,
    /// Creation time, epoch seconds (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<f64>,
    /// Catalog id (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
}

/// A column: name, Hive type string (`bigint`, `array<struct<a:string>>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Column {
    /// Name.
    pub name: String,
    /// Hive type.
    #[serde(default, rename = "Type", skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Parameters.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub parameters: Parameters,
}

/// How rows are (de)serialized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SerDeInfo {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E.g. `org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serialization_library: Option<String>,
    /// SerDe parameters (`field.delim`, `input.regex`, ...).
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub parameters: Parameters,
}

/// A sort column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Order {
    /// Column.
    pub column: String,
    /// 1 ascending, 0 descending.
    pub sort_order: i32,
}

/// Where and how a table's (or partition's) data is stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StorageDescriptor {
    /// Data columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<Column>,
    /// `s3://bucket/prefix/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Hadoop input format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_format: Option<String>,
    /// Hadoop output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// Whether files are compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed: Option<bool>,
    /// Buckets (crawlers write -1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_buckets: Option<i32>,
    /// SerDe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serde_info: Option<SerDeInfo>,
    /// Bucket columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucket_columns: Vec<String>,
    /// Sort columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort_columns: Vec<Order>,
    /// Parameters.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub parameters: Parameters,
    /// Whether data sits in sub-directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_as_sub_directories: Option<bool>,
}

/// The Hive classes that name a storage format in a
/// [`StorageDescriptor`], as Glue, Athena and Hive spell them.
pub mod formats {
    /// SerDe of Parquet tables.
    pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
    /// Input format of Parquet tables.
    pub const PARQUET_INPUT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
    /// Output format of Parquet tables.
    pub const PARQUET_OUTPUT: &str =
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
    /// SerDe of delimited text tables.
    pub const LAZY_SIMPLE_SERDE: &str = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
    /// SerDe of quoted CSV tables.
    pub(crate) const OPEN_CSV_SERDE: &str = "org.apache.hadoop.hive.serde2.OpenCSVSerde";
    /// SerDe of JSON-lines tables (the OpenX JSON SerDe).
    pub const JSON_SERDE: &str = "org.openx.data.jsonserde.JsonSerDe";
    /// Input format of text tables (delimited and JSON lines).
    pub const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
    /// Output format of text tables.
    pub const TEXT_OUTPUT: &str = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat";
}

impl StorageDescriptor {
    /// Parquet files under `location`.
    pub fn parquet(location: impl Into<String>, columns: Vec<Column>) -> Self {
        Self::of_format(
            location.into(),
            columns,
            (formats::PARQUET_INPUT, formats::PARQUET_OUTPUT),
            formats::PARQUET_SERDE,
            Parameters::new(),
        )
    }

    /// Text files under `location` (delimited, CSV or JSON lines) read by
    /// the SerDe `serde` with `parameters` (`field.delim`, `paths`, ...).
    pub fn text(
        location: impl Into<String>,
        columns: Vec<Column>,
        serde: impl Into<String>,
        parameters: Parameters,
    ) -> Self {
        Self::of_format(
            location.into(),
            columns,
            (formats::TEXT_INPUT, formats::TEXT_OUTPUT),
            serde,
            parameters,
        )
    }

    fn of_format(
        location: String,
        columns: Vec<Column>,
        (input, output): (&str, &str),
        serde: impl Into<String>,
        parameters: Parameters,
    ) -> Self {
        Self {
            columns,
            location: Some(location),
            input_format: Some(input.into()),
            output_format: Some(output.into()),
            compressed: Some(false),
            number_of_buckets: Some(-1),
            serde_info: Some(SerDeInfo {
                serialization_library: Some(serde.into()),
                parameters,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// `Table.TableType` of a table over files, as Athena, the crawler and
/// ingest create them.
pub const EXTERNAL_TABLE: &str = "EXTERNAL_TABLE";

/// `Table.TableType` of a view.
pub const VIRTUAL_VIEW: &str = "VIRTUAL_VIEW";

/// A table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Table {
    /// Name (stored lowercase).
    pub name: String,
    /// Database (server-managed in responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Creation time, epoch seconds (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<f64>,
    /// Last update, epoch seconds (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<f64>,
    /// Last access, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access_time: Option<f64>,
    /// Retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<i32>,
    /// Storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<StorageDescriptor>,
    /// Partition columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_keys: Vec<Column>,
    /// View text as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_original_text: Option<String>,
    /// View text expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_expanded_text: Option<String>,
    /// `EXTERNAL_TABLE`, `VIRTUAL_VIEW`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_type: Option<String>,
    /// Parameters (`classification`, ...).
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub parameters: Parameters,
    /// Who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Version (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Catalog id (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
    /// Partition indexes (Glue's `CreatePartitionIndex`, listed by
    /// `GetPartitionIndexes`). In an update, `None` keeps the table's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_indexes: Option<Vec<PartitionIndex>>,
}

impl Table {
    /// Whether this is a view (`TableType` `VIRTUAL_VIEW`).
    pub fn is_view(&self) -> bool {
        self.table_type.as_deref() == Some(VIRTUAL_VIEW)
    }
}

/// An index over some of a table's partition keys (Glue's
/// `PartitionIndex`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartitionIndex {
    /// Its name, unique within the table.
    pub index_name: String,
    /// Partition keys, in order.
    pub keys: Vec<String>,
}

/// A partition of a table: its values (one per partition key, in order) and
/// where its data is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Partition {
    /// Values, one per partition key.
    #[serde(default)]
    pub values: Vec<String>,
    /// Database (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    /// Table (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// Creation time, epoch seconds (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<f64>,
    /// Last access, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_access_time: Option<f64>,
    /// Storage (location of the partition's files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_descriptor: Option<StorageDescriptor>,
    /// Parameters.
    #[serde(default, skip_serializing_if = "is_empty_map")]
    pub parameters: Parameters,
    /// Last analyzed, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analyzed_time: Option<f64>,
    /// Catalog id (server-managed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glue_shapes_round_trip() {
        let wire = serde_json::json!({
            "Name": "requests",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet"},
            "PartitionKeys": [{"Name": "dt", "Type": "string"}],
            "StorageDescriptor": {
                "Columns": [{"Name": "status", "Type": "bigint", "Comment": "HTTP status"}],
                "Location": "s3://lake/logs/",
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
                "NumberOfBuckets": -1
            },
            "IsRegisteredWithLakeFormation": false
        });
        let table: Table = serde_json::from_value(wire).unwrap();
        assert_eq!(table.partition_keys[0].data_type.as_deref(), Some("string"));
        let sd = table.storage_descriptor.as_ref().unwrap();
        assert_eq!(sd.columns[0].comment.as_deref(), Some("HTTP status"));
        assert_eq!(sd.number_of_buckets, Some(-1));
        let back = serde_json::to_value(&table).unwrap();
        assert_eq!(
            back["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"],
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
        );
        assert!(back.get("Description").is_none());
    }
}
