//! Arrow types as Athena's `ResultSetMetadata.ColumnInfo`.

use datafusion::arrow::datatypes::{DataType, Field};
use serde::{Deserialize, Serialize};

/// One column of `ResultSetMetadata.ColumnInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ColumnInfo {
    /// Always `hive`, as Athena reports it.
    pub catalog_name: String,
    /// Empty, as Athena reports it.
    pub schema_name: String,
    /// Empty, as Athena reports it.
    pub table_name: String,
    /// Column name.
    pub name: String,
    /// Column label (the name).
    pub label: String,
    /// Lowercase Trino type name: `varchar`, `bigint`, `decimal`, `array`...
    #[serde(rename = "Type")]
    pub data_type: String,
    /// Precision (digits for numbers, length for strings).
    pub precision: i32,
    /// Scale (decimals).
    pub scale: i32,
    /// `NOT_NULL`, `NULLABLE` or `UNKNOWN` (Athena says `UNKNOWN`).
    pub nullable: String,
    /// Whether comparisons are case sensitive (strings).
    pub case_sensitive: bool,
}

impl ColumnInfo {
    /// The column info of an Arrow field.
    pub fn of(field: &Field) -> Self {
        use lakehose_catalog::hive::HiveType;
        let (data_type, precision, scale) = match HiveType::of_field(field) {
            Some(HiveType::Varchar(n)) => ("varchar", n as i32, 0),
            Some(HiveType::Char(n)) => ("char", n as i32, 0),
            _ => athena_type(field.data_type()),
        };
        Self {
            catalog_name: "hive".into(),
            schema_name: String::new(),
            table_name: String::new(),
            name: field.name().clone(),
            label: field.name().clone(),
            case_sensitive: matches!(data_type, "varchar" | "char"),
            data_type: data_type.to_string(),
            precision,
            scale,
            nullable: "UNKNOWN".into(),
        }
    }

    /// The `rows` bigint column of CTAS / INSERT INTO results.
    pub fn rows() -> Self {
        Self::of(&Field::new("rows", DataType::Int64, true))
    }
}

const VARCHAR_PRECISION: i32 = 2_147_483_647;

/// Athena's type name, precision and scale for an Arrow type.
pub fn athena_type(data_type: &DataType) -> (&'static str, i32, i32) {
    match data_type {
        DataType::Null => ("unknown", 0, 0),
        DataType::Boolean => ("boolean", 0, 0),
        DataType::Int8 => ("tinyint", 3, 0),
        DataType::Int16 | DataType::UInt8 => ("smallint", 5, 0),
        DataType::Int32 | DataType::UInt16 => ("integer", 10, 0),
        DataType::Int64 | DataType::UInt32 => ("bigint", 19, 0),
        DataType::UInt64 => ("decimal", 20, 0),
        DataType::Float16 | DataType::Float32 => ("real", 7, 0),
        DataType::Float64 => ("double", 17, 0),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => {
            ("decimal", i32::from(*p), i32::from(*s))
        }
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            ("decimal", i32::from(*p), i32::from(*s))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            ("varchar", VARCHAR_PRECISION, 0)
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ("varbinary", VARCHAR_PRECISION, 0),
        DataType::Date32 | DataType::Date64 => ("date", 0, 0),
        DataType::Time32(_) | DataType::Time64(_) => ("time", 3, 0),
        DataType::Timestamp(_, None) => ("timestamp", 3, 0),
        DataType::Timestamp(_, Some(_)) => ("timestamp with time zone", 3, 0),
        DataType::Interval(_) | DataType::Duration(_) => ("interval day to second", 0, 0),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(_, _) => ("array", 0, 0),
        DataType::Map(_, _) => ("map", 0, 0),
        DataType::Struct(_) => ("row", 0, 0),
        DataType::Dictionary(_, value) => athena_type(value),
        DataType::RunEndEncoded(_, value) => athena_type(value.data_type()),
        DataType::Union(_, _) => ("varchar", VARCHAR_PRECISION, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_info_types() {
        let info = ColumnInfo::of(&Field::new("x", DataType::Utf8, true));
        assert_eq!(
            serde_json::to_value(&info).unwrap(),
            serde_json::json!({"CatalogName":"hive","SchemaName":"","TableName":"","Name":"x",
                "Label":"x","Type":"varchar","Precision":2147483647,"Scale":0,
                "Nullable":"UNKNOWN","CaseSensitive":true})
        );
        let b = ColumnInfo::of(&Field::new("n", DataType::Int64, false));
        assert_eq!(
            (b.data_type.as_str(), b.precision, b.case_sensitive),
            ("bigint", 19, false)
        );
        let d = ColumnInfo::of(&Field::new("d", DataType::Decimal128(12, 3), true));
        assert_eq!(
            (d.data_type.as_str(), d.precision, d.scale),
            ("decimal", 12, 3)
        );
        assert_eq!(athena_type(&DataType::Date32), ("date", 0, 0));
    }
}
