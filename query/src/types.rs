//! Type names: Hive types (what the catalog stores) to Arrow types (what the
//! engine computes with) and back, and the Trino names Athena reports.

use datafusion::arrow::datatypes::DataType;
pub use lakehose_catalog::schema::{MAX_TYPE_DEPTH, MAX_TYPE_LENGTH, quote_type};

pub use lakehose_catalog::hive::{HiveType, UTC, map_type, timestamp_type};

/// Parses a Hive type (`bigint`, `decimal(10,2)`, `varchar(20)`,
/// `array<struct<a:string,b:map<string,int>>>`) into an Arrow type.
/// Types nested deeper than [`MAX_TYPE_DEPTH`] levels of `<..>` are an
/// error, as are types longer than [`MAX_TYPE_LENGTH`] bytes.
pub fn hive_to_arrow(hive: &str) -> Result<DataType, String> {
    HiveType::parse(hive).map(|t| t.to_arrow())
}

/// The Hive type of an Arrow type, as stored in the catalog.
pub fn arrow_to_hive(t: &DataType) -> Result<String, String> {
    HiveType::from_arrow(t).map(|h| h.to_string())
}

/// The Arrow type a column of type `t` is written to files with (views and
/// dictionaries resolved, unsigned widened).
pub(crate) fn storable(t: &DataType) -> DataType {
    hive_to_arrow(&arrow_to_hive(t).unwrap_or_else(|_| "string".into())).unwrap_or(DataType::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Fields};

    #[test]
    fn hive_types_round_trip() {
        for hive in [
            "bigint",
            "int",
            "smallint",
            "tinyint",
            "double",
            "float",
            "boolean",
            "string",
            "binary",
            "date",
            "timestamp",
            "decimal(15,2)",
            "array<string>",
            "map<string,bigint>",
            "struct<a:string,b:array<struct<c:int>>>",
        ] {
            let arrow = hive_to_arrow(hive).unwrap();
            assert_eq!(arrow_to_hive(&arrow).unwrap(), hive, "{hive}");
        }
        assert_eq!(hive_to_arrow("VARCHAR(20)").unwrap(), DataType::Utf8);
        assert_eq!(hive_to_arrow("char(1)").unwrap(), DataType::Utf8);
        assert_eq!(hive_to_arrow("integer").unwrap(), DataType::Int32);
        assert_eq!(
            hive_to_arrow("struct< `x y` : int >").unwrap(),
            DataType::Struct(Fields::from(vec![Field::new("x y", DataType::Int32, true)]))
        );
    }

    #[test]
    fn bad_types_are_named() {
        assert!(hive_to_arrow("bignum").unwrap_err().contains("bignum"));
        assert!(
            hive_to_arrow("array<int")
                .unwrap_err()
                .contains("expected '>'")
        );
        assert!(
            hive_to_arrow("decimal(40,2)")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(hive_to_arrow("int extra").unwrap_err().contains("extra"));
    }

    #[test]
    fn non_ascii_whitespace_is_an_error_not_a_panic() {
        // U+3000 is whitespace of three bytes: skipping it one byte at a
        // time sliced inside the character.
        assert_eq!(
            hive_to_arrow("\u{3000}int\u{3000}").unwrap(),
            DataType::Int32
        );
        assert_eq!(
            hive_to_arrow("array<\u{3000}int>").unwrap(),
            hive_to_arrow("array<int>").unwrap()
        );
        assert!(hive_to_arrow("struct<a\u{3000}:int>").is_ok());
        assert!(hive_to_arrow("in\u{3000}t").is_err());
        assert!(hive_to_arrow("\u{3000}").is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |d: usize| format!("{}int{}", "array<".repeat(d), ">".repeat(d));
        assert!(hive_to_arrow(&nested(MAX_TYPE_DEPTH)).is_ok());
        for depth in [MAX_TYPE_DEPTH + 1, 5000, 15_000] {
            let err = hive_to_arrow(&nested(depth)).unwrap_err();
            assert!(err.contains("nested deeper than 64 levels"), "{err}");
            assert!(err.len() < 400, "{err}");
        }
        let err = hive_to_arrow(&nested(100_000)).unwrap_err();
        assert!(err.contains("nested deeper than 64 levels"), "{err}");
        let maps = format!("{}int{}", "map<int,".repeat(100), ">".repeat(100));
        assert!(hive_to_arrow(&maps).unwrap_err().contains("nested deeper"));
        let long = format!("struct<{}:int>", "a".repeat(MAX_TYPE_LENGTH));
        assert!(hive_to_arrow(&long).unwrap_err().contains("longer than"));
    }
}
