//! Type names: Hive types (what the catalog stores) to Arrow types (what the
//! engine computes with) and back, and the Trino names Athena reports.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
pub use lakehose_catalog::schema::{MAX_TYPE_DEPTH, MAX_TYPE_LENGTH, quote_type};

/// The time zone lakehose timestamps carry (UTC, spelled as an offset so no
/// time-zone database is needed to read them).
pub const UTC: &str = "+00:00";

/// The Arrow type of `timestamp` columns.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
}

/// Parses a Hive type (`bigint`, `decimal(10,2)`, `varchar(20)`,
/// `array<struct<a:string,b:map<string,int>>>`) into an Arrow type.
/// Types nested deeper than [`MAX_TYPE_DEPTH`] levels of `<..>` are an
/// error, as are types longer than [`MAX_TYPE_LENGTH`] bytes.
pub fn hive_to_arrow(hive: &str) -> Result<DataType, String> {
    if hive.len() > MAX_TYPE_LENGTH {
        return Err(format!(
            "type {} is longer than {MAX_TYPE_LENGTH} bytes",
            quote_type(hive)
        ));
    }
    let mut parser = TypeParser {
        text: hive,
        pos: 0,
        depth: 0,
    };
    let t = parser.parse()?;
    parser.skip_ws();
    if parser.pos != hive.len() {
        return Err(format!(
            "unexpected {} in type {}",
            quote_type(&hive[parser.pos..]),
            quote_type(hive)
        ));
    }
    Ok(t)
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
    /// Levels of `<..>` around the current position.
    depth: usize,
}

impl TypeParser<'_> {
    fn skip_ws(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Enters one level of `<..>`.
    fn open(&mut self) -> Result<(), String> {
        self.expect('<')?;
        self.depth += 1;
        if self.depth > MAX_TYPE_DEPTH {
            return Err(format!(
                "type {} is nested deeper than {MAX_TYPE_DEPTH} levels",
                quote_type(self.text)
            ));
        }
        Ok(())
    }

    /// Leaves one level of `<..>`.
    fn close(&mut self) -> Result<(), String> {
        self.expect('>')?;
        self.depth -= 1;
        Ok(())
    }

    fn word(&mut self) -> String {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        rest[..len].to_ascii_lowercase()
    }

    fn field_name(&mut self) -> Result<String, String> {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        if let Some(quoted) = rest.strip_prefix('`') {
            let end = quoted
                .find('`')
                .ok_or_else(|| format!("unterminated `name` in type {}", quote_type(self.text)))?;
            self.pos += end + 2;
            return Ok(quoted[..end].to_string());
        }
        let len = rest
            .find(|c: char| c == ':' || c.is_whitespace())
            .unwrap_or(rest.len());
        self.pos += len;
        if len == 0 {
            return Err(format!(
                "a struct field has no name in type {}",
                quote_type(self.text)
            ));
        }
        Ok(rest[..len].to_string())
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(format!(
                "expected {c:?} at {} in type {}",
                quote_type(&self.text[self.pos..]),
                quote_type(self.text)
            ))
        }
    }

    fn peek(&mut self, c: char) -> bool {
        self.skip_ws();
        self.text[self.pos..].starts_with(c)
    }

    fn number(&mut self) -> Result<u32, String> {
        let w = self.word();
        w.parse().map_err(|_| {
            format!(
                "expected a number, found {} in type {}",
                quote_type(&w),
                quote_type(self.text)
            )
        })
    }

    fn parse(&mut self) -> Result<DataType, String> {
        let name = self.word();
        Ok(match name.as_str() {
            "tinyint" => DataType::Int8,
            "smallint" => DataType::Int16,
            "int" | "integer" => DataType::Int32,
            "bigint" | "long" => DataType::Int64,
            "float" | "real" => DataType::Float32,
            "double" => DataType::Float64,
            "boolean" | "bool" => DataType::Boolean,
            "string" | "json" => DataType::Utf8,
            "varchar" | "char" => {
                if self.peek('(') {
                    self.expect('(')?;
                    self.number()?;
                    self.expect(')')?;
                }
                DataType::Utf8
            }
            "binary" | "varbinary" => DataType::Binary,
            "date" => DataType::Date32,
            "timestamp" => timestamp_type(),
            "decimal" | "numeric" => {
                let (mut p, mut s) = (10, 0);
                if self.peek('(') {
                    self.expect('(')?;
                    p = self.number()?;
                    if self.peek(',') {
                        self.expect(',')?;
                        s = self.number()?;
                    }
                    self.expect(')')?;
                }
                if !(1..=38).contains(&p) || s > p {
                    return Err(format!(
                        "decimal({p},{s}) is out of range (precision 1–38, scale ≤ precision)"
                    ));
                }
                DataType::Decimal128(p as u8, s as i8)
            }
            "array" => {
                self.open()?;
                let item = self.parse()?;
                self.close()?;
                DataType::List(Arc::new(Field::new("item", item, true)))
            }
            "map" => {
                self.open()?;
                let key = self.parse()?;
                self.expect(',')?;
                let value = self.parse()?;
                self.close()?;
                map_type(key, value)
            }
            "struct" | "row" => {
                self.open()?;
                let mut fields = Vec::new();
                loop {
                    let name = self.field_name()?;
                    self.expect(':')?;
                    let t = self.parse()?;
                    fields.push(Field::new(name, t, true));
                    if self.peek(',') {
                        self.expect(',')?;
                    } else {
                        break;
                    }
                }
                self.close()?;
                DataType::Struct(Fields::from(fields))
            }
            "" => return Err(format!("missing type in {}", quote_type(self.text))),
            other => {
                return Err(format!(
                    "unknown type {} in {}",
                    quote_type(other),
                    quote_type(self.text)
                ));
            }
        })
    }
}

/// An Arrow map type with nullable values.
pub fn map_type(key: DataType, value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ])),
            false,
        )),
        false,
    )
}

/// The Hive type of an Arrow type, as stored in the catalog.
pub fn arrow_to_hive(t: &DataType) -> Result<String, String> {
    Ok(match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            "string".into()
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => format!("array<{}>", arrow_to_hive(f.data_type())?),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| {
                    Ok(format!(
                        "{}:{}",
                        lakehose_catalog::schema::hive_field_name(f.name()),
                        arrow_to_hive(f.data_type())?
                    ))
                })
                .collect::<Result<Vec<_>, String>>()?
                .join(",")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                arrow_to_hive(kv[0].data_type())?,
                arrow_to_hive(kv[1].data_type())?
            ),
            other => return Err(format!("unexpected map entries type {other}")),
        },
        DataType::Dictionary(_, value) => arrow_to_hive(value)?,
        other => return Err(format!("type {other} cannot be stored in a table")),
    })
}

/// The Arrow type a column of type `t` is written to files with (views and
/// dictionaries resolved, unsigned widened).
pub fn storable(t: &DataType) -> DataType {
    hive_to_arrow(&arrow_to_hive(t).unwrap_or_else(|_| "string".into())).unwrap_or(DataType::Utf8)
}

/// The Trino type name Athena reports for an Arrow type (ColumnInfo.Type).
pub fn athena_type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "boolean",
        DataType::Int8 => "tinyint",
        DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint",
        DataType::Float16 | DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "decimal",
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "varbinary",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, _) => "timestamp",
        DataType::Time32(_) | DataType::Time64(_) => "time",
        DataType::Interval(_) | DataType::Duration(_) => "interval day to second",
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..) => "array",
        DataType::Map(..) => "map",
        DataType::Struct(_) => "row",
        DataType::Dictionary(_, v) => athena_type_name(v),
        DataType::Null => "unknown",
        _ => "varchar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(err.contains("longer than 131072 bytes"), "{err}");
        let maps = format!("{}int{}", "map<int,".repeat(100), ">".repeat(100));
        assert!(hive_to_arrow(&maps).unwrap_err().contains("nested deeper"));
        let long = format!("struct<{}:int>", "a".repeat(MAX_TYPE_LENGTH));
        assert!(hive_to_arrow(&long).unwrap_err().contains("longer than"));
    }

    #[test]
    fn athena_names() {
        assert_eq!(athena_type_name(&DataType::Utf8View), "varchar");
        assert_eq!(athena_type_name(&DataType::Int64), "bigint");
        assert_eq!(athena_type_name(&DataType::Int32), "integer");
        assert_eq!(
            athena_type_name(&hive_to_arrow("array<int>").unwrap()),
            "array"
        );
    }
}
