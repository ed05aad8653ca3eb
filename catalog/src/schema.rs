//! Schema inference and evolution for JSON records: used by the ingester to
//! convert records to Parquet and by the crawler to type JSON files.
//!
//! Each stream keeps a running schema. A flush first tries to decode its
//! records against that schema in strict mode (the fast path: no new field,
//! no new type). When that fails it infers a type for every record and merges
//! them into the running schema with these rules:
//!
//! | seen                               | column becomes              |
//! |------------------------------------|-----------------------------|
//! | a new field                        | added at the end, nullable  |
//! | only `null` so far                 | the first non-null type     |
//! | integer and float                  | `double`                    |
//! | timestamp string and other string  | `string`                    |
//! | any two different scalars          | `string` (values as text)   |
//! | objects                            | `struct`, fields merged     |
//! | arrays                             | `array`, elements merged    |
//! | object or array vs anything else   | **conflict**                |
//!
//! So a type conflict between scalars *widens*, and never fails. A record
//! whose object or array meets a scalar column (or the reverse) cannot be
//! stored without losing its shape: that record goes to the error prefix as
//! `format-conversion-failed`, naming the field, and its neighbours are
//! written normally. Widening is sticky: a column never narrows again.
//!
//! Strings in RFC 3339 form (`2026-11-23T08:00:00.123Z`) are stored as
//! `timestamp` (microseconds, UTC).
//!
//! Field names follow Firehose's OpenX JSON SerDe: lowercased by default
//! (`CaseInsensitive`), and dots turned into underscores when
//! `ConvertDotsInJsonKeysToUnderscores` is set.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hive::HiveType;
use crate::hive::hive_field_name;
pub use crate::hive::{MAX_TYPE_DEPTH, MAX_TYPE_LENGTH, quote_type};

/// The type of a JSON value as lakehose stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum JType {
    /// Only nulls seen.
    Null,
    /// Booleans.
    Bool,
    /// 64-bit integers.
    Int,
    /// Doubles.
    Float,
    /// RFC 3339 strings, stored as UTC microsecond timestamps.
    Timestamp,
    /// Text.
    String,
    /// Arrays.
    List {
        /// Element type.
        item: Box<JType>,
    },
    /// Objects.
    Struct {
        /// Fields in first-seen order.
        fields: Vec<(String, JType)>,
    },
}

/// Two types that cannot be merged, at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The dotted path of the field.
    pub path: String,
    /// The column's type.
    pub column: String,
    /// The value's type.
    pub value: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "field {:?} is {} in this record but the column is {}",
            self.path, self.value, self.column
        )
    }
}

impl JType {
    /// The type of one JSON value.
    pub fn of(value: &Value) -> JType {
        match value {
            Value::Null => JType::Null,
            Value::Bool(_) => JType::Bool,
            Value::Number(n) => {
                if n.is_i64() {
                    JType::Int
                } else {
                    JType::Float
                }
            }
            Value::String(s) => {
                if looks_like_timestamp(s) {
                    JType::Timestamp
                } else {
                    JType::String
                }
            }
            Value::Array(items) => {
                let mut item = JType::Null;
                for v in items {
                    // Elements that conflict make the element type text.
                    item = item.merge(&JType::of(v), "").unwrap_or(JType::String);
                }
                JType::List {
                    item: Box::new(item),
                }
            }
            Value::Object(map) => JType::Struct {
                fields: map.iter().map(|(k, v)| (k.clone(), JType::of(v))).collect(),
            },
        }
    }

    fn name(&self) -> String {
        match self {
            JType::Null => "null".into(),
            JType::Bool => "boolean".into(),
            JType::Int => "bigint".into(),
            JType::Float => "double".into(),
            JType::Timestamp => "timestamp".into(),
            JType::String => "string".into(),
            JType::List { item } => format!("array<{}>", item.name()),
            JType::Struct { .. } => "struct".into(),
        }
    }

    fn is_scalar(&self) -> bool {
        !matches!(self, JType::List { .. } | JType::Struct { .. })
    }

    /// Merges `other` into `self` by the widening rules, or reports the
    /// conflict at `path`.
    pub fn merge(&self, other: &JType, path: &str) -> Result<JType, Conflict> {
        use JType::*;
        Ok(match (self, other) {
            (a, b) if a == b => a.clone(),
            (Null, b) => b.clone(),
            (a, Null) => a.clone(),
            (Int, Float) | (Float, Int) => Float,
            (a, b) if a.is_scalar() && b.is_scalar() => String,
            (List { item: a }, List { item: b }) => List {
                item: Box::new(a.merge(b, &format!("{path}[]"))?),
            },
            (Struct { fields: a }, Struct { fields: b }) => {
                let mut fields = a.clone();
                for (name, t) in b {
                    match fields.iter_mut().find(|(n, _)| n == name) {
                        Some((_, existing)) => {
                            let child = if path.is_empty() {
                                name.clone()
                            } else {
                                format!("{path}.{name}")
                            };
                            *existing = existing.merge(t, &child)?;
                        }
                        None => fields.push((name.clone(), t.clone())),
                    }
                }
                Struct { fields }
            }
            (a, b) => {
                return Err(Conflict {
                    path: path.to_string(),
                    column: a.name(),
                    value: b.name(),
                });
            }
        })
    }

    /// The Arrow type of this JSON type (a column of only nulls is text).
    pub fn to_arrow(&self) -> DataType {
        match self {
            JType::Null | JType::String => DataType::Utf8,
            JType::Bool => DataType::Boolean,
            JType::Int => DataType::Int64,
            JType::Float => DataType::Float64,
            JType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            JType::List { item } => {
                DataType::List(Arc::new(Field::new("item", item.to_arrow(), true)))
            }
            JType::Struct { fields } => DataType::Struct(struct_fields(fields)),
        }
    }
}

fn struct_fields(fields: &[(String, JType)]) -> Fields {
    fields
        .iter()
        .map(|(name, t)| Field::new(name, t.to_arrow(), true))
        .collect()
}

/// The Arrow schema of a record type (which must be a struct).
pub fn arrow_schema(record: &JType) -> SchemaRef {
    match record {
        JType::Struct { fields } => Arc::new(Schema::new(struct_fields(fields))),
        _ => Arc::new(Schema::empty()),
    }
}

/// The Hive type of a JSON type, as Glue and Athena spell it.
pub fn hive_type(t: &JType) -> String {
    match t {
        JType::Null | JType::String => "string".into(),
        JType::Bool => "boolean".into(),
        JType::Int => "bigint".into(),
        JType::Float => "double".into(),
        JType::Timestamp => "timestamp".into(),
        JType::List { item } => format!("array<{}>", hive_type(item)),
        JType::Struct { fields } => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|(n, t)| format!("{}:{}", hive_field_name(n), hive_type(t)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// The JSON type of a scalar Hive type (`None` for complex or unknown
/// types, and for `decimal`, `char(n)`, `varchar(n)`, `date` and
/// `binary`, which inference never produces), for widening catalog
/// columns with the same rules.
pub(crate) fn scalar_of_hive(hive: &str) -> Option<JType> {
    Some(match HiveType::parse(hive).ok()? {
        HiveType::TinyInt | HiveType::SmallInt | HiveType::Int | HiveType::BigInt => JType::Int,
        HiveType::Float | HiveType::Double => JType::Float,
        HiveType::Boolean => JType::Bool,
        HiveType::Timestamp => JType::Timestamp,
        HiveType::String => JType::String,
        _ => return None,
    })
}

/// Checks that a Hive type string is well formed enough to be stored in
/// the catalog: not empty, at most [`MAX_TYPE_LENGTH`] bytes, brackets
/// balanced (`<>` and `()`, each nested at most [`MAX_TYPE_DEPTH`] levels),
/// back-quoted names terminated, and no control characters or non-ASCII
/// whitespace outside back-quoted names. Type names themselves are not
/// checked (Glue stores any); readers report types they do not know.
pub fn check_hive_type(hive: &str) -> Result<(), String> {
    if hive.len() > MAX_TYPE_LENGTH {
        return Err(format!(
            "the type is {} bytes long; at most {MAX_TYPE_LENGTH} are allowed",
            hive.len()
        ));
    }
    if hive.trim().is_empty() {
        return Err("the type is empty".into());
    }
    let mut open: Vec<char> = Vec::new();
    let (mut angles, mut parens) = (0usize, 0usize);
    let mut chars = hive.chars();
    while let Some(c) = chars.next() {
        match c {
            // The guard skips a back-quoted name whole.
            '`' if !chars.by_ref().any(|q| q == '`') => {
                return Err(format!("unterminated `name` in type {}", quote_type(hive)));
            }
            '<' | '(' => {
                let level = if c == '<' { &mut angles } else { &mut parens };
                *level += 1;
                if *level > MAX_TYPE_DEPTH {
                    return Err(format!(
                        "the type is nested deeper than {MAX_TYPE_DEPTH} levels: {}",
                        quote_type(hive)
                    ));
                }
                open.push(c);
            }
            '>' | ')' => {
                let want = if c == '>' { '<' } else { '(' };
                if open.pop() != Some(want) {
                    return Err(format!("unbalanced {c:?} in type {}", quote_type(hive)));
                }
                if c == '>' {
                    angles -= 1;
                } else {
                    parens -= 1;
                }
            }
            c if c.is_control() && c != '\t' && c != '\n' && c != '\r' => {
                return Err(format!(
                    "the type has the control character U+{:04X}: {}",
                    c as u32,
                    quote_type(hive)
                ));
            }
            c if c.is_whitespace() && !c.is_ascii() => {
                return Err(format!(
                    "the type has the non-ASCII whitespace U+{:04X}: {}",
                    c as u32,
                    quote_type(hive)
                ));
            }
            _ => {}
        }
    }
    if let Some(c) = open.last() {
        return Err(format!("unclosed {c:?} in type {}", quote_type(hive)));
    }
    Ok(())
}

/// Parses a Hive type string (`bigint`, `decimal(10,2)`,
/// `array<struct<a:string,b:int>>`) into the JSON type records are
/// inferred as, through [`HiveType`]: `decimal` is a double, `date`,
/// `char(n)` and `varchar(n)` are text; `map<..>` and `binary` are not
/// supported. A type nested deeper than [`MAX_TYPE_DEPTH`] is an error.
pub fn parse_hive_type(hive: &str) -> Result<JType, String> {
    JType::of_hive(&HiveType::parse(hive)?).map_err(|t| {
        format!(
            "Hive type {} is not supported for conversion ({t})",
            quote_type(hive)
        )
    })
}

impl JType {
    /// The JSON type of a Hive type; the error is the part that has none.
    pub(crate) fn of_hive(t: &HiveType) -> Result<JType, String> {
        Ok(match t {
            HiveType::TinyInt | HiveType::SmallInt | HiveType::Int | HiveType::BigInt => JType::Int,
            HiveType::Float | HiveType::Double | HiveType::Decimal { .. } => JType::Float,
            HiveType::Boolean => JType::Bool,
            HiveType::Timestamp => JType::Timestamp,
            HiveType::String | HiveType::Varchar(_) | HiveType::Char(_) | HiveType::Date => {
                JType::String
            }
            HiveType::Array(item) => JType::List {
                item: Box::new(JType::of_hive(item)?),
            },
            HiveType::Struct(fields) => JType::Struct {
                fields: fields
                    .iter()
                    .map(|(n, t)| Ok((n.clone(), JType::of_hive(t)?)))
                    .collect::<Result<_, String>>()?,
            },
            HiveType::Binary | HiveType::Map(..) => return Err(t.to_string()),
        })
    }
}

/// RFC 3339 date-times with a `T` and a zone: what Firehose's OpenX SerDe
/// and lakehose's readers agree is a timestamp.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    (20..=35).contains(&b.len())
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[..4].iter().all(u8::is_ascii_digit)
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Rewrites object keys the OpenX JSON SerDe way. Returns whether anything
/// changed.
pub fn normalize_keys(value: &mut Value, lowercase: bool, dots_to_underscores: bool) -> bool {
    let needs = |k: &str| {
        (lowercase && k.bytes().any(|c| c.is_ascii_uppercase()))
            || (dots_to_underscores && k.contains('.'))
    };
    match value {
        Value::Object(map) => {
            let mut changed = false;
            for v in map.values_mut() {
                changed |= normalize_keys(v, lowercase, dots_to_underscores);
            }
            if map.keys().any(|k| needs(k)) {
                let old = std::mem::take(map);
                for (k, v) in old {
                    let mut k = if lowercase { k.to_lowercase() } else { k };
                    if dots_to_underscores {
                        k = k.replace('.', "_");
                    }
                    map.insert(k, v);
                }
                changed = true;
            }
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, v| {
            normalize_keys(v, lowercase, dots_to_underscores) | changed
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge_all(values: &[Value]) -> Result<JType, Conflict> {
        let mut t = JType::Struct { fields: vec![] };
        for v in values {
            t = t.merge(&JType::of(v), "")?;
        }
        Ok(t)
    }

    #[test]
    fn infers_and_widens() {
        let t = merge_all(&[
            json!({"a": 1, "b": "x", "ts": "2026-11-23T08:00:00.123Z", "n": null}),
            json!({"a": 1.5, "b": 2, "c": [1, 2], "ts": "2026-11-23T08:00:01Z"}),
            json!({"d": {"e": true}, "n": false, "ts": "not a time"}),
        ])
        .unwrap();
        let schema = arrow_schema(&t);
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["a", "b", "ts", "n", "c", "d"]);
        assert_eq!(schema.field(0).data_type(), &DataType::Float64);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(3).data_type(), &DataType::Boolean);
        assert!(
            matches!(schema.field(4).data_type(), DataType::List(f) if f.data_type() == &DataType::Int64)
        );
        assert!(
            matches!(schema.field(5).data_type(), DataType::Struct(f) if f[0].data_type() == &DataType::Boolean)
        );
    }

    #[test]
    fn timestamps_are_detected() {
        assert_eq!(JType::of(&json!("2026-11-23T08:00:00Z")), JType::Timestamp);
        assert_eq!(
            JType::of(&json!("2026-11-23T08:00:00.123456+02:00")),
            JType::Timestamp
        );
        assert_eq!(JType::of(&json!("2026-11-23 08:00:00")), JType::String);
        assert_eq!(JType::of(&json!("2026-13-23T08:00:00Z")), JType::String);
    }

    #[test]
    fn object_vs_scalar_conflicts() {
        let err = merge_all(&[json!({"a": {"b": 1}}), json!({"a": "flat"})]).unwrap_err();
        assert_eq!(err.path, "a");
        assert_eq!(err.column, "struct");
        let err = merge_all(&[json!({"a": {"b": 1}}), json!({"a": {"b": [1]}})]).unwrap_err();
        assert_eq!(err.path, "a.b");
        assert!(err.to_string().contains("array<bigint>"));
    }

    #[test]
    fn serializes_round_trip() {
        let t = JType::of(&json!({"a": [{"b": 1}], "c": "x"}));
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<JType>(&text).unwrap(), t);
    }

    #[test]
    fn parses_hive_types() {
        assert_eq!(parse_hive_type("BIGINT").unwrap(), JType::Int);
        assert_eq!(parse_hive_type("decimal(10,2)").unwrap(), JType::Float);
        assert_eq!(parse_hive_type("varchar(20)").unwrap(), JType::String);
        let t = parse_hive_type("array<struct<a:string,b:array<int>,c:decimal(3,1)>>").unwrap();
        assert_eq!(
            hive_type(&t),
            "array<struct<a:string,b:array<bigint>,c:double>>"
        );
        assert!(parse_hive_type("map<string,int>").is_err());
        assert!(parse_hive_type("struct<a>").is_err());
    }

    fn nested(depth: usize) -> String {
        format!("{}int{}", "struct<a:".repeat(depth), ">".repeat(depth))
    }

    #[test]
    fn deep_types_are_errors_not_stack_overflows() {
        assert!(parse_hive_type(&nested(MAX_TYPE_DEPTH)).is_ok());
        let err = parse_hive_type(&nested(MAX_TYPE_DEPTH + 1)).unwrap_err();
        assert!(err.contains("nested deeper than 64 levels"), "{err}");
        let err = parse_hive_type(&nested(100_000)).unwrap_err();
        assert!(err.contains("nested deeper than 64 levels"), "{err}");
        assert!(err.len() < 400, "the message quotes only the start: {err}");
        let arrays = format!("{}int{}", "array<".repeat(5000), ">".repeat(5000));
        assert!(parse_hive_type(&arrays).is_err());
    }

    #[test]
    fn checks_types_before_they_are_stored() {
        for good in [
            "bigint",
            "decimal(10,2)",
            "array<struct<a:string,`b<c`:map<string,int>>>",
            "uniontype<int,string>",
            "struct<名前:string>",
        ] {
            assert_eq!(check_hive_type(good), Ok(()), "{good}");
        }
        assert!(check_hive_type(&nested(MAX_TYPE_DEPTH)).is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("  ", "empty"),
            ("array<int", "unclosed '<'"),
            ("array<int>>", "unbalanced '>'"),
            ("decimal(10,2>", "unbalanced '>'"),
            ("struct<`a:int>", "unterminated `name`"),
            ("struct<a:\u{3000}int>", "U+3000"),
            ("big\u{0}int", "control character U+0000"),
        ] {
            let err = check_hive_type(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let err = check_hive_type(&nested(MAX_TYPE_DEPTH + 1)).unwrap_err();
        assert!(err.contains("nested deeper than 64 levels"), "{err}");
        let err = check_hive_type(&"(".repeat(1000)).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
        let long = format!("struct<{}:int>", "a".repeat(MAX_TYPE_LENGTH));
        assert!(
            check_hive_type(&long)
                .unwrap_err()
                .contains("at most 131072")
        );
    }

    #[test]
    fn odd_field_names_are_quoted_and_read_back() {
        let t = JType::Struct {
            fields: vec![
                ("plain_1".into(), JType::Int),
                ("a b<c,d:e>".into(), JType::String),
                ("名\u{3000}前".into(), JType::Bool),
            ],
        };
        let text = hive_type(&t);
        assert_eq!(
            text,
            "struct<plain_1:bigint,`a b<c,d:e>`:string,`名\u{3000}前`:boolean>"
        );
        assert_eq!(check_hive_type(&text), Ok(()));
        assert_eq!(parse_hive_type(&text).unwrap(), t);
    }

    #[test]
    fn non_ascii_whitespace_does_not_panic() {
        assert!(parse_hive_type("\u{3000}bigint\u{3000}").is_ok());
        assert!(parse_hive_type("struct<a:\u{3000}int,\u{3000}b\u{3000}:string>").is_ok());
        assert!(parse_hive_type("array<\u{3000}>").is_err());
    }

    #[test]
    fn normalizes_keys() {
        let mut v =
            json!({"Service": "web", "http.status": 200, "Nested": {"InnerKey": [{"X": 1}]}});
        assert!(normalize_keys(&mut v, true, true));
        assert_eq!(
            v,
            json!({"service": "web", "http_status": 200, "nested": {"innerkey": [{"x": 1}]}})
        );
        let mut v = json!({"plain": 1});
        assert!(!normalize_keys(&mut v, true, true));
    }
}
