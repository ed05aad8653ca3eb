//! Hive column types, as the catalog stores them (`bigint`,
//! `decimal(10,2)`, `varchar(20)`, `array<struct<a:string,b:map<string,int>>>`):
//! parsed once into [`HiveType`], which knows its Arrow type and its
//! canonical spelling. The engine, ingest's format conversion and the JSON
//! SerDe all read column types through it, so they agree on what a type
//! means.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// How many levels of `<..>` (and, separately, `(..)`) a Hive type may nest:
/// `array<array<int>>` is two. Every reader of catalog types (these parsers,
/// the engine's Arrow conversion, the Parquet writers, the Postgres
/// encoders) walks a type recursively, so an unbounded type overflows a
/// thread's stack, which aborts the process. Real schemas stay within a
/// dozen levels; 64 leaves ample room while keeping every such walk at a
/// few hundred KiB of stack at most.
pub const MAX_TYPE_DEPTH: usize = 64;

/// The longest Hive type string a column may have: Glue's documented
/// maximum for `Column.Type`.
pub const MAX_TYPE_LENGTH: usize = 131_072;

/// At most this many characters of a type are quoted in an error message.
const QUOTED_TYPE_CHARS: usize = 80;

/// A type string for an error message: whole when short, else its start.
pub fn quote_type(hive: &str) -> String {
    if hive.chars().count() <= QUOTED_TYPE_CHARS {
        format!("{hive:?}")
    } else {
        let head: String = hive.chars().take(QUOTED_TYPE_CHARS).collect();
        format!("{head:?}… ({} bytes)", hive.len())
    }
}

/// A struct field name as a Hive type spells it: back-quoted unless it is
/// a plain identifier, so names holding `<`, `,`, `:` or spaces read back
/// as one name.
pub(crate) fn hive_field_name(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(format!("`{name}`"))
    }
}

/// The zone of `timestamp with time zone` values (UTC, spelled as an
/// offset so no time-zone database is needed to read them).
pub const UTC: &str = "+00:00";

/// The Arrow type of `timestamp` columns: Trino's `timestamp`, a date and
/// time of day without a zone, in microseconds. lakehose's own files hold
/// UTC instants; read into a `timestamp` column they are that UTC wall
/// time, which is what Athena shows for them.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// The field metadata key that carries a column's Hive type where its
/// Arrow type says less: `varchar(n)` and `char(n)` are Arrow text.
pub(crate) const HIVE_TYPE_KEY: &str = "lakehose.hive_type";

/// A Hive column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiveType {
    /// `tinyint`: 8-bit integer.
    TinyInt,
    /// `smallint`: 16-bit integer.
    SmallInt,
    /// `int` (`integer`): 32-bit integer.
    Int,
    /// `bigint` (`long`): 64-bit integer.
    BigInt,
    /// `float` (`real`): 32-bit float.
    Float,
    /// `double`.
    Double,
    /// `decimal(p,s)` (`numeric`): `p` digits, `s` after the point.
    Decimal {
        /// Total digits, 1–38.
        precision: u8,
        /// Digits after the point, at most `precision`.
        scale: u8,
    },
    /// `boolean`.
    Boolean,
    /// `string` (and `json`).
    String,
    /// `varchar(n)`: text of at most `n` characters (no length: `string`).
    Varchar(u32),
    /// `char(n)`: text of exactly `n` characters, space-padded.
    Char(u32),
    /// `binary` (`varbinary`).
    Binary,
    /// `date`.
    Date,
    /// `timestamp`.
    Timestamp,
    /// `array<item>`.
    Array(Box<HiveType>),
    /// `map<key,value>`.
    Map(Box<HiveType>, Box<HiveType>),
    /// `struct<name:type,...>` (`row(...)`).
    Struct(Vec<(String, HiveType)>),
}

/// Longest `varchar(n)` Hive allows.
pub(crate) const MAX_VARCHAR_LENGTH: u32 = 65_535;

/// Longest `char(n)` Hive allows.
pub(crate) const MAX_CHAR_LENGTH: u32 = 255;

impl HiveType {
    /// Parses a Hive type. Types nested deeper than [`MAX_TYPE_DEPTH`]
    /// levels of `<..>`, or longer than [`MAX_TYPE_LENGTH`] bytes, are an
    /// error, as are unknown type names.
    pub fn parse(hive: &str) -> Result<HiveType, String> {
        // Nesting first (one linear pass): it says more about a long,
        // deep type than its length does.
        let (mut depth, mut quoted) = (0usize, false);
        for c in hive.chars() {
            match c {
                '`' => quoted = !quoted,
                _ if quoted => {}
                '<' => {
                    depth += 1;
                    if depth > MAX_TYPE_DEPTH {
                        return Err(format!(
                            "type {} is nested deeper than {MAX_TYPE_DEPTH} levels",
                            quote_type(hive)
                        ));
                    }
                }
                '>' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if hive.len() > MAX_TYPE_LENGTH {
            return Err(format!(
                "type {} is longer than {MAX_TYPE_LENGTH} bytes",
                quote_type(hive)
            ));
        }
        let mut parser = Parser {
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

    /// The Arrow type values of this type are computed with.
    pub fn to_arrow(&self) -> DataType {
        match self {
            HiveType::TinyInt => DataType::Int8,
            HiveType::SmallInt => DataType::Int16,
            HiveType::Int => DataType::Int32,
            HiveType::BigInt => DataType::Int64,
            HiveType::Float => DataType::Float32,
            HiveType::Double => DataType::Float64,
            HiveType::Decimal { precision, scale } => {
                DataType::Decimal128(*precision, *scale as i8)
            }
            HiveType::Boolean => DataType::Boolean,
            HiveType::String | HiveType::Varchar(_) | HiveType::Char(_) => DataType::Utf8,
            HiveType::Binary => DataType::Binary,
            HiveType::Date => DataType::Date32,
            HiveType::Timestamp => timestamp_type(),
            HiveType::Array(item) => {
                DataType::List(Arc::new(Field::new("item", item.to_arrow(), true)))
            }
            HiveType::Map(key, value) => map_type(key.to_arrow(), value.to_arrow()),
            HiveType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(n, t.to_arrow(), true))
                    .collect::<Fields>(),
            ),
        }
    }

    /// An Arrow field for a column of this type; `varchar(n)` and `char(n)`
    /// carry their Hive type in the field's metadata ([`HIVE_TYPE_KEY`]).
    pub fn field(&self, name: impl Into<String>) -> Field {
        let field = Field::new(name, self.to_arrow(), true);
        match self {
            HiveType::Varchar(_) | HiveType::Char(_) => {
                field.with_metadata([(HIVE_TYPE_KEY.to_string(), self.to_string())].into())
            }
            _ => field,
        }
    }

    /// The `varchar(n)`/`char(n)` type a field's metadata records.
    pub fn of_field(field: &Field) -> Option<HiveType> {
        let t = HiveType::parse(field.metadata().get(HIVE_TYPE_KEY)?).ok()?;
        matches!(t, HiveType::Varchar(_) | HiveType::Char(_)).then_some(t)
    }

    /// The Hive type of an Arrow type (views and dictionaries resolved,
    /// unsigned integers widened to the next signed type).
    pub fn from_arrow(t: &DataType) -> Result<HiveType, String> {
        Ok(match t {
            DataType::Boolean => HiveType::Boolean,
            DataType::Int8 => HiveType::TinyInt,
            DataType::Int16 | DataType::UInt8 => HiveType::SmallInt,
            DataType::Int32 | DataType::UInt16 => HiveType::Int,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => HiveType::BigInt,
            DataType::Float16 | DataType::Float32 => HiveType::Float,
            DataType::Float64 => HiveType::Double,
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => HiveType::Decimal {
                precision: (*p).min(38),
                scale: (*s).max(0) as u8,
            },
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                HiveType::String
            }
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => HiveType::Binary,
            DataType::Date32 | DataType::Date64 => HiveType::Date,
            DataType::Timestamp(_, _) => HiveType::Timestamp,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::ListView(f)
            | DataType::LargeListView(f)
            | DataType::FixedSizeList(f, _) => {
                HiveType::Array(Box::new(HiveType::from_arrow(f.data_type())?))
            }
            DataType::Struct(fields) => HiveType::Struct(
                fields
                    .iter()
                    .map(|f| Ok((f.name().clone(), HiveType::from_arrow(f.data_type())?)))
                    .collect::<Result<_, String>>()?,
            ),
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => HiveType::Map(
                    Box::new(HiveType::from_arrow(kv[0].data_type())?),
                    Box::new(HiveType::from_arrow(kv[1].data_type())?),
                ),
                other => return Err(format!("unexpected map entries type {other}")),
            },
            DataType::Dictionary(_, value) => HiveType::from_arrow(value)?,
            other => return Err(format!("type {other} cannot be stored in a table")),
        })
    }
}

impl fmt::Display for HiveType {
    /// The canonical Hive spelling, as Glue stores it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HiveType::TinyInt => f.write_str("tinyint"),
            HiveType::SmallInt => f.write_str("smallint"),
            HiveType::Int => f.write_str("int"),
            HiveType::BigInt => f.write_str("bigint"),
            HiveType::Float => f.write_str("float"),
            HiveType::Double => f.write_str("double"),
            HiveType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            HiveType::Boolean => f.write_str("boolean"),
            HiveType::String => f.write_str("string"),
            HiveType::Varchar(n) => write!(f, "varchar({n})"),
            HiveType::Char(n) => write!(f, "char({n})"),
            HiveType::Binary => f.write_str("binary"),
            HiveType::Date => f.write_str("date"),
            HiveType::Timestamp => f.write_str("timestamp"),
            HiveType::Array(item) => write!(f, "array<{item}>"),
            HiveType::Map(k, v) => write!(f, "map<{k},{v}>"),
            HiveType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{t}", hive_field_name(name))?;
                }
                f.write_str(">")
            }
        }
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

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// Levels of `<..>` around the current position.
    depth: usize,
}

impl Parser<'_> {
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

    /// `(n)` after `char`/`varchar`, if present.
    fn length(&mut self, name: &str, max: u32) -> Result<Option<u32>, String> {
        if !self.peek('(') {
            return Ok(None);
        }
        self.expect('(')?;
        let n = self.number()?;
        self.expect(')')?;
        if !(1..=max).contains(&n) {
            return Err(format!("{name}({n}) is out of range (length 1–{max})"));
        }
        Ok(Some(n))
    }

    fn parse(&mut self) -> Result<HiveType, String> {
        let name = self.word();
        Ok(match name.as_str() {
            "tinyint" => HiveType::TinyInt,
            "smallint" => HiveType::SmallInt,
            "int" | "integer" => HiveType::Int,
            "bigint" | "long" => HiveType::BigInt,
            "float" | "real" => HiveType::Float,
            "double" => HiveType::Double,
            "boolean" | "bool" => HiveType::Boolean,
            "string" | "json" => HiveType::String,
            "varchar" => self
                .length("varchar", MAX_VARCHAR_LENGTH)?
                .map_or(HiveType::String, HiveType::Varchar),
            "char" => HiveType::Char(self.length("char", MAX_CHAR_LENGTH)?.unwrap_or(1)),
            "binary" | "varbinary" => HiveType::Binary,
            "date" => HiveType::Date,
            "timestamp" => HiveType::Timestamp,
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
                HiveType::Decimal {
                    precision: p as u8,
                    scale: s as u8,
                }
            }
            "array" => {
                self.open()?;
                let item = self.parse()?;
                self.close()?;
                HiveType::Array(Box::new(item))
            }
            "map" => {
                self.open()?;
                let key = self.parse()?;
                self.expect(',')?;
                let value = self.parse()?;
                self.close()?;
                HiveType::Map(Box::new(key), Box::new(value))
            }
            "struct" | "row" => {
                self.open()?;
                let mut fields = Vec::new();
                loop {
                    let name = self.field_name()?;
                    self.expect(':')?;
                    let t = self.parse()?;
                    fields.push((name, t));
                    if self.peek(',') {
                        self.expect(',')?;
                    } else {
                        break;
                    }
                }
                self.close()?;
                HiveType::Struct(fields)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_spells_every_type() {
        let text = "struct<a:tinyint,b:smallint,c:int,d:bigint,e:float,f:double,\
                    g:decimal(12,3),h:boolean,i:string,j:varchar(5),k:char(3),l:binary,\
                    m:date,n:timestamp,o:array<map<string,array<int>>>,`p q`:struct<r:int>>";
        let t = HiveType::parse(text).unwrap();
        assert_eq!(t.to_string(), text);
        assert_eq!(HiveType::parse(&t.to_string()).unwrap(), t);
        assert_eq!(
            HiveType::parse("ROW(a INTEGER)").unwrap_err(),
            "expected '<' at \"(a INTEGER)\" in type \"ROW(a INTEGER)\""
        );
        assert_eq!(
            HiveType::parse("varchar").unwrap(),
            HiveType::String,
            "varchar without a length is unbounded text"
        );
        assert_eq!(HiveType::parse("char").unwrap(), HiveType::Char(1));
        assert!(
            HiveType::parse("char(0)")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            HiveType::parse("decimal(39,1)")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            HiveType::parse("uuid")
                .unwrap_err()
                .contains("unknown type")
        );
        let deep = format!(
            "{}int{}",
            "array<".repeat(MAX_TYPE_DEPTH + 1),
            ">".repeat(MAX_TYPE_DEPTH + 1)
        );
        assert!(HiveType::parse(&deep).unwrap_err().contains("deeper"));
    }

    #[test]
    fn arrow_round_trip() {
        let t = HiveType::parse("struct<a:map<string,decimal(5,2)>,b:array<timestamp>,c:date>")
            .unwrap();
        assert_eq!(HiveType::from_arrow(&t.to_arrow()).unwrap(), t);
        assert_eq!(
            HiveType::from_arrow(&DataType::UInt32).unwrap(),
            HiveType::BigInt
        );
    }
}
