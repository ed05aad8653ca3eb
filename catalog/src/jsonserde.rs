//! JSON records to Arrow rows of a table's exact Hive types, the way the
//! OpenX and Hive JSON SerDes read them: what Firehose's format conversion
//! does with a Glue table's schema, and what queries do with records still
//! in ingest buffers.
//!
//! | column type               | accepts                                                     |
//! |---------------------------|-------------------------------------------------------------|
//! | `tinyint` … `bigint`      | integers, integral numbers, integer text (`"42"`), in range |
//! | `float`, `double`         | numbers, numeric text                                       |
//! | `decimal(p,s)`            | numbers, numeric text; rounded half up to `s` digits, at most `p` digits |
//! | `boolean`                 | `true`/`false`, and that text in any case                   |
//! | `string`                  | text; numbers and booleans as written; objects and arrays as JSON text |
//! | `varchar(n)`, `char(n)`   | as `string`, cut to `n` characters (`char` space-padded to `n`) |
//! | `binary`                  | base64 text                                                 |
//! | `date`                    | `yyyy-[M]M-[d]d`, or a timestamp's date                     |
//! | `timestamp`               | `yyyy-MM-dd'T'HH:mm:ss[.S…]` with `Z` or an offset (or none: UTC), `yyyy-[M]M-[d]d HH:mm:ss[.S…]`, epoch seconds (integer or fractional; also as text), epoch milliseconds (integers of 12 or more digits, or every integer with the `millis` format) |
//! | `array<t>`                | arrays                                                      |
//! | `map<k,v>`                | objects; keys converted to `k`                              |
//! | `struct<…>`               | objects; fields matched by name, others ignored             |
//!
//! `null` or a missing key is NULL for every type. A value that does not
//! fit (text in an `int`, `300` in a `tinyint`, an object in an `array`)
//! makes the record not fit: the error names the field and the value.
//!
//! Object keys are matched to column and field names ignoring case when
//! the SerDe is case-insensitive (OpenX's default), with dots read as
//! underscores when asked; map keys are kept as written.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, ListArray, MapArray, RecordBatch,
    RecordBatchOptions, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

use crate::hive::HiveType;

/// How keys are matched and timestamps read.
#[derive(Debug, Clone, Default)]
pub struct SerDeOptions {
    /// Match keys to names ignoring case (OpenX `CaseInsensitive`).
    pub case_insensitive: bool,
    /// Read dots in keys as underscores
    /// (`ConvertDotsInJsonKeysToUnderscores`).
    pub dots_to_underscores: bool,
    /// Column name → the JSON key holding it (`ColumnToJsonKeyMappings`).
    pub column_keys: BTreeMap<String, String>,
    /// Integer timestamps are epoch milliseconds (Hive SerDe
    /// `TimestampFormats: ["millis"]`).
    pub timestamp_millis: bool,
    /// Timestamp patterns tried before the default forms (Hive SerDe
    /// `TimestampFormats`), compiled by [`joda_pattern`].
    pub timestamp_formats: Vec<TimestampFormat>,
}

/// A Joda-Time pattern compiled for parsing timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampFormat {
    /// The pattern as given.
    pub joda: String,
    /// The same pattern in `chrono`'s strftime syntax.
    strftime: String,
    /// Whether the pattern reads a zone offset.
    zoned: bool,
    /// Whether the pattern reads a time of day (else midnight).
    timed: bool,
}

/// Compiles a Joda-Time pattern (`yyyy-MM-dd'T'HH:mm:ss.SSSZ`,
/// `dd/MMM/yyyy:HH:mm:ss Z`, ...) for parsing: years `yyyy`/`yy`, months
/// `M`/`MM`/`MMM`/`MMMM`, days `d`/`dd`, day of year `D`, weekdays `E`,
/// hours `H`/`HH`/`h`/`hh`, `a`, minutes, seconds, fractions of 3, 6 or 9
/// `S`, offsets `Z`/`ZZ`, and quoted text. Other letters are an error
/// naming them.
pub fn joda_pattern(joda: &str) -> Result<TimestampFormat, String> {
    if joda.is_empty() || joda.len() > 256 {
        return Err(format!(
            "timestamp pattern {joda:?} must have 1 to 256 characters"
        ));
    }
    let chars: Vec<char> = joda.chars().collect();
    let mut out = String::new();
    let (mut zoned, mut timed) = (false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted text; '' is a quote.
            i += 1;
            if chars.get(i) == Some(&'\'') {
                out.push('\'');
                i += 1;
                continue;
            }
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!("unterminated quote in timestamp pattern {joda:?}"));
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        out.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('%') => {
                        out.push_str("%%");
                        i += 1;
                    }
                    Some(&q) => {
                        out.push(q);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if c == '%' {
                out.push_str("%%");
            } else {
                out.push(c);
            }
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        i += run;
        let spec = match (c, run) {
            ('y' | 'Y' | 'u', 2) => "%y",
            ('y' | 'Y' | 'u', _) => "%Y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1 | 2) => "%d",
            ('D', _) => "%j",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('H', 1 | 2) => {
                timed = true;
                "%H"
            }
            ('h', 1 | 2) => {
                timed = true;
                "%I"
            }
            ('a', _) => "%p",
            ('m', 1 | 2) => "%M",
            ('s', 1 | 2) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('Z', 1) => {
                zoned = true;
                "%z"
            }
            ('Z', 2) => {
                zoned = true;
                "%:z"
            }
            _ => {
                return Err(format!(
                    "timestamp pattern {joda:?}: {:?} is not supported",
                    c.to_string().repeat(run)
                ));
            }
        };
        out.push_str(spec);
    }
    Ok(TimestampFormat {
        joda: joda.to_string(),
        strftime: out,
        zoned,
        timed,
    })
}

impl TimestampFormat {
    /// Microseconds since the epoch (UTC unless the text has an offset).
    fn parse(&self, text: &str) -> Option<i64> {
        if self.zoned {
            return DateTime::parse_from_str(text, &self.strftime)
                .ok()
                .map(|t| t.timestamp_micros());
        }
        if self.timed {
            return NaiveDateTime::parse_from_str(text, &self.strftime)
                .ok()
                .map(|t| t.and_utc().timestamp_micros());
        }
        NaiveDate::parse_from_str(text, &self.strftime)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
    }
}

/// A table's columns, ready to convert records.
#[derive(Debug, Clone)]
pub struct JsonSerDe {
    columns: Vec<(String, HiveType)>,
    schema: SchemaRef,
    options: SerDeOptions,
}

/// Longest text a decimal or number is read from.
const MAX_NUMBER_TEXT: usize = 200;

impl JsonSerDe {
    /// A converter for `columns`. Map keys must be of a scalar type.
    pub fn new(columns: Vec<(String, HiveType)>, options: SerDeOptions) -> Result<Self, String> {
        fn check_keys(t: &HiveType, path: &str) -> Result<(), String> {
            match t {
                HiveType::Map(k, v) => {
                    if matches!(
                        **k,
                        HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_)
                    ) {
                        return Err(format!(
                            "column {path}: map keys must be of a scalar type, not {k}"
                        ));
                    }
                    check_keys(v, path)
                }
                HiveType::Array(item) => check_keys(item, path),
                HiveType::Struct(fields) => fields
                    .iter()
                    .try_for_each(|(n, t)| check_keys(t, &format!("{path}.{n}"))),
                _ => Ok(()),
            }
        }
        if columns.is_empty() {
            return Err("the table has no columns".into());
        }
        for (name, t) in &columns {
            check_keys(t, name)?;
        }
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, t)| Field::new(n, t.to_arrow(), true))
                .collect::<Fields>(),
        ));
        Ok(JsonSerDe {
            columns,
            schema,
            options,
        })
    }

    /// A converter for the columns of an Arrow schema: each field's Hive
    /// type from its metadata (`varchar(n)`, `char(n)`) or its Arrow type.
    pub fn for_schema(schema: &Schema, options: SerDeOptions) -> Result<Self, String> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let t = match HiveType::of_field(f) {
                    Some(t) => t,
                    None => HiveType::from_arrow(f.data_type())?,
                };
                Ok((f.name().clone(), t))
            })
            .collect::<Result<Vec<_>, String>>()?;
        JsonSerDe::new(columns, options)
    }

    /// The Arrow schema of converted rows.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The value a column takes from a record.
    fn column_value<'a>(&self, record: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
        match self.options.column_keys.get(name) {
            Some(key) => lookup(record, key, &self.options),
            None => lookup(record, name, &self.options),
        }
    }

    /// Whether a record fits the columns; the error names the field, the
    /// value and the type.
    pub fn check(&self, record: &Map<String, Value>) -> Result<(), String> {
        for (name, t) in &self.columns {
            if let Some(v) = self.column_value(record, name) {
                check(t, v, &self.options).map_err(|m| m.describe(name))?;
            }
        }
        Ok(())
    }

    /// Converts records (each of which [`JsonSerDe::check`] accepted) to
    /// one batch.
    pub fn decode(&self, records: &[&Map<String, Value>]) -> Result<RecordBatch, String> {
        let mut arrays = Vec::with_capacity(self.columns.len());
        for (name, t) in &self.columns {
            let values: Vec<Option<&Value>> =
                records.iter().map(|r| self.column_value(r, name)).collect();
            arrays.push(column(t, &values, &self.options).map_err(|m| m.describe(name))?);
        }
        RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(records.len())),
        )
        .map_err(|e| e.to_string())
    }
}

/// Why a value does not fit, and where (innermost field last).
#[derive(Debug)]
struct Misfit {
    path: Vec<String>,
    reason: String,
}

impl Misfit {
    fn new(reason: String) -> Misfit {
        Misfit {
            path: Vec::new(),
            reason,
        }
    }

    fn at(mut self, step: String) -> Misfit {
        self.path.push(step);
        self
    }

    fn describe(self, column: &str) -> String {
        let mut path = column.to_string();
        for step in self.path.iter().rev() {
            path.push_str(step);
        }
        format!("field {path:?}: {}", self.reason)
    }
}

/// A value for an error message: whole when short, else its start.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 60 {
        text
    } else {
        format!("{}…", text.chars().take(60).collect::<String>())
    }
}

fn not_a(v: &Value, t: &HiveType) -> Misfit {
    Misfit::new(format!("{} is not a valid {t}", shown(v)))
}

/// The value under `name` in an object: the exact key first, else a key
/// that matches once case and dots are treated as the options say.
fn lookup<'a>(obj: &'a Map<String, Value>, name: &str, o: &SerDeOptions) -> Option<&'a Value> {
    if let Some(v) = obj.get(name) {
        return Some(v);
    }
    if !o.case_insensitive && !o.dots_to_underscores {
        return None;
    }
    obj.iter()
        .find(|(k, _)| {
            let k: Cow<'_, str> = if o.dots_to_underscores && k.contains('.') {
                Cow::Owned(k.replace('.', "_"))
            } else {
                Cow::Borrowed(k.as_str())
            };
            if o.case_insensitive {
                k.eq_ignore_ascii_case(name)
                    || (!k.is_ascii() && k.to_lowercase() == name.to_lowercase())
            } else {
                k == name
            }
        })
        .map(|(_, v)| v)
}

fn check(t: &HiveType, v: &Value, o: &SerDeOptions) -> Result<(), Misfit> {
    if v.is_null() {
        return Ok(());
    }
    match t {
        HiveType::Array(item) => {
            let Value::Array(items) = v else {
                return Err(not_a(v, t));
            };
            for (i, x) in items.iter().enumerate() {
                check(item, x, o).map_err(|m| m.at(format!("[{i}]")))?;
            }
            Ok(())
        }
        HiveType::Map(key, value) => {
            let Value::Object(entries) = v else {
                return Err(not_a(v, t));
            };
            for (k, x) in entries {
                let key_value = Value::String(k.clone());
                scalar(key, &key_value, o).map_err(|m| m.at(format!("[key {k:?}]")))?;
                check(value, x, o).map_err(|m| m.at(format!("[{k:?}]")))?;
            }
            Ok(())
        }
        HiveType::Struct(fields) => {
            let Value::Object(obj) = v else {
                return Err(not_a(v, t));
            };
            for (name, ft) in fields {
                if let Some(x) = lookup(obj, name, o) {
                    check(ft, x, o).map_err(|m| m.at(format!(".{name}")))?;
                }
            }
            Ok(())
        }
        _ => scalar(t, v, o).map(|_| ()),
    }
}

/// One converted scalar.
enum Scalar {
    Int(i64),
    Float(f64),
    Decimal(i128),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    Date(i32),
    Micros(i64),
}

fn scalar(t: &HiveType, v: &Value, o: &SerDeOptions) -> Result<Scalar, Misfit> {
    let bad = || not_a(v, t);
    Ok(match t {
        HiveType::TinyInt | HiveType::SmallInt | HiveType::Int | HiveType::BigInt => {
            let (min, max) = match t {
                HiveType::TinyInt => (i8::MIN as i64, i8::MAX as i64),
                HiveType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
                HiveType::Int => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            let n = integer(v).ok_or_else(bad)?;
            if !(min..=max).contains(&n) {
                return Err(Misfit::new(format!("{} is out of range for {t}", shown(v))));
            }
            Scalar::Int(n)
        }
        HiveType::Float | HiveType::Double => {
            let x = match v {
                Value::Number(n) => n.as_f64().ok_or_else(bad)?,
                Value::String(s) if s.len() <= MAX_NUMBER_TEXT => {
                    s.trim().parse::<f64>().map_err(|_| bad())?
                }
                _ => return Err(bad()),
            };
            if matches!(t, HiveType::Float) && x.is_finite() && (x as f32).is_infinite() {
                return Err(Misfit::new(format!(
                    "{} is out of range for float",
                    shown(v)
                )));
            }
            Scalar::Float(x)
        }
        HiveType::Decimal { precision, scale } => {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim().to_string(),
                _ => return Err(bad()),
            };
            Scalar::Decimal(
                parse_decimal(&text, *precision, *scale)
                    .map_err(|why| Misfit::new(format!("{} {why}", shown(v))))?,
            )
        }
        HiveType::Boolean => match v {
            Value::Bool(b) => Scalar::Bool(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Scalar::Bool(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Scalar::Bool(false),
            _ => return Err(bad()),
        },
        HiveType::String | HiveType::Varchar(_) | HiveType::Char(_) => {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Scalar::Text(match t {
                HiveType::Varchar(n) => cut(text, *n as usize),
                HiveType::Char(n) => {
                    let n = *n as usize;
                    let mut text = cut(text, n);
                    let len = text.chars().count();
                    text.extend(std::iter::repeat_n(' ', n.saturating_sub(len)));
                    text
                }
                _ => text,
            })
        }
        HiveType::Binary => match v {
            Value::String(s) => Scalar::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|_| Misfit::new(format!("{} is not base64 text", shown(v))))?,
            ),
            _ => return Err(bad()),
        },
        HiveType::Date => match v {
            Value::String(s) => Scalar::Date(parse_date(s.trim()).ok_or_else(bad)?),
            _ => return Err(bad()),
        },
        HiveType::Timestamp => {
            let patterned = match v {
                Value::String(s) if s.len() <= 256 => {
                    o.timestamp_formats.iter().find_map(|f| f.parse(s.trim()))
                }
                _ => None,
            };
            match patterned {
                Some(us) => Scalar::Micros(us),
                None => Scalar::Micros(timestamp(v, o.timestamp_millis).ok_or_else(bad)?),
            }
        }
        HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_) => return Err(bad()),
    })
}

/// Cuts text to at most `n` characters.
fn cut(mut text: String, n: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(n) {
        text.truncate(at);
    }
    text
}

/// An integer from a JSON number (integral) or integer text.
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let x = n.as_f64()?;
            (x.fract() == 0.0 && x >= i64::MIN as f64 && x < i64::MAX as f64).then_some(x as i64)
        }),
        Value::String(s) if s.len() <= MAX_NUMBER_TEXT => {
            let s = s.trim();
            s.strip_prefix('+').unwrap_or(s).parse().ok()
        }
        _ => None,
    }
}

/// Parses decimal text (`-12.345`, `1e3`, `.5`) into an unscaled value
/// with `scale` digits after the point, rounding half away from zero.
/// Errors say why (after the value in the message).
pub(crate) fn parse_decimal(text: &str, precision: u8, scale: u8) -> Result<i128, String> {
    const INVALID: &str = "is not a valid decimal";
    if text.is_empty() || text.len() > MAX_NUMBER_TEXT {
        return Err(INVALID.into());
    }
    let (negative, rest) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (
            &rest[..i],
            rest[i + 1..]
                .parse::<i32>()
                .map_err(|_| INVALID.to_string())?,
        ),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || !(-400..=400).contains(&exponent)
    {
        return Err(INVALID.into());
    }
    // All digits, and where the point falls after the exponent.
    let digits: Vec<u8> = whole
        .bytes()
        .chain(fraction.bytes())
        .map(|b| b - b'0')
        .collect();
    let point = whole.len() as i64 + exponent as i64;
    let keep = point + scale as i64; // digits that stay left of the cut
    let mut value: i128 = 0;
    let mut count = 0u32; // significant digits kept
    for i in 0..keep.max(0) {
        let d = if (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            0
        };
        if value == 0 && d == 0 {
            continue;
        }
        count += 1;
        if count > precision as u32 {
            return Err(format!("does not fit decimal({precision},{scale})"));
        }
        value = value * 10 + d as i128;
    }
    let next = usize::try_from(keep)
        .ok()
        .and_then(|k| digits.get(k).copied())
        .unwrap_or(0);
    if keep >= 0 && next >= 5 {
        value += 1;
        if value >= 10i128.pow(precision as u32) {
            return Err(format!("does not fit decimal({precision},{scale})"));
        }
    }
    Ok(if negative { -value } else { value })
}

/// `yyyy-[M]M-[d]d`, or the date of a timestamp in one of the accepted
/// forms; days since 1970-01-01.
fn parse_date(s: &str) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| text_timestamp(s).map(|(d, _)| d.date()))?;
    i32::try_from((date - epoch).num_days()).ok()
}

/// A timestamp in text: the naive date-time and, when the text has a zone,
/// its offset in seconds east of UTC.
fn text_timestamp(s: &str) -> Option<(NaiveDateTime, i32)> {
    if s.len() < 10 || s.len() > 40 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some((t.naive_local(), t.offset().local_minus_utc()));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some((t, 0));
        }
    }
    // `yyyy-MM-dd HH:mm:ss` with a zone: `Z` or an offset.
    let t = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z")
        .or_else(|_| DateTime::parse_from_str(&s.replace('Z', "+00:00"), "%Y-%m-%d %H:%M:%S%.f%:z"))
        .ok()?;
    Some((t.naive_local(), t.offset().local_minus_utc()))
}

/// Microseconds since the epoch, UTC.
fn timestamp(v: &Value, millis: bool) -> Option<i64> {
    let epoch = |x: f64| -> Option<i64> {
        let seconds = if millis { x / 1000.0 } else { x };
        let micros = (seconds * 1e6).round();
        (micros.abs() < 9.2e18).then_some(micros as i64)
    };
    let whole = |n: i64| -> Option<i64> {
        // 12 or more digits are milliseconds (as seconds they would be
        // after the year 5000).
        if millis || n.unsigned_abs() >= 100_000_000_000 {
            n.checked_mul(1000)
        } else {
            n.checked_mul(1_000_000)
        }
    };
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => whole(i),
            None => epoch(n.as_f64()?),
        },
        Value::String(s) => {
            let s = s.trim();
            if let Some((t, offset)) = text_timestamp(s) {
                let utc = t.and_utc().timestamp_micros() - offset as i64 * 1_000_000;
                return Some(utc);
            }
            if s.len() > MAX_NUMBER_TEXT {
                return None;
            }
            match s.parse::<i64>() {
                Ok(i) => whole(i),
                Err(_) => epoch(s.parse::<f64>().ok().filter(|x| x.is_finite())?),
            }
        }
        _ => None,
    }
}

fn nulls(values: &[Option<&Value>]) -> Option<NullBuffer> {
    let valid: NullBuffer = values
        .iter()
        .map(|v| v.is_some_and(|v| !v.is_null()))
        .collect::<Vec<bool>>()
        .into();
    (valid.null_count() > 0).then_some(valid)
}

/// Converts the scalars of one column.
fn scalars<T>(
    t: &HiveType,
    values: &[Option<&Value>],
    o: &SerDeOptions,
    mut pick: impl FnMut(Scalar) -> Option<T>,
) -> Result<Vec<Option<T>>, Misfit> {
    values
        .iter()
        .map(|v| match v {
            Some(v) if !v.is_null() => Ok(pick(scalar(t, v, o)?)),
            _ => Ok(None),
        })
        .collect()
}

/// Converts one column of values (one per row; `None` when the key is
/// missing) to an array of `t`'s Arrow type.
fn column(t: &HiveType, values: &[Option<&Value>], o: &SerDeOptions) -> Result<ArrayRef, Misfit> {
    let int = |s| match s {
        Scalar::Int(i) => Some(i),
        _ => None,
    };
    let float = |s| match s {
        Scalar::Float(x) => Some(x),
        _ => None,
    };
    Ok(match t {
        HiveType::TinyInt => Arc::new(Int8Array::from(
            scalars(t, values, o, int)?
                .into_iter()
                .map(|v| v.map(|i| i as i8))
                .collect::<Vec<_>>(),
        )),
        HiveType::SmallInt => Arc::new(Int16Array::from(
            scalars(t, values, o, int)?
                .into_iter()
                .map(|v| v.map(|i| i as i16))
                .collect::<Vec<_>>(),
        )),
        HiveType::Int => Arc::new(Int32Array::from(
            scalars(t, values, o, int)?
                .into_iter()
                .map(|v| v.map(|i| i as i32))
                .collect::<Vec<_>>(),
        )),
        HiveType::BigInt => Arc::new(Int64Array::from(scalars(t, values, o, int)?)),
        HiveType::Float => Arc::new(Float32Array::from(
            scalars(t, values, o, float)?
                .into_iter()
                .map(|v| v.map(|x| x as f32))
                .collect::<Vec<_>>(),
        )),
        HiveType::Double => Arc::new(Float64Array::from(scalars(t, values, o, float)?)),
        HiveType::Decimal { precision, scale } => Arc::new(
            Decimal128Array::from(scalars(t, values, o, |s| match s {
                Scalar::Decimal(d) => Some(d),
                _ => None,
            })?)
            .with_precision_and_scale(*precision, *scale as i8)
            .map_err(|e| Misfit::new(e.to_string()))?,
        ),
        HiveType::Boolean => Arc::new(BooleanArray::from(scalars(t, values, o, |s| match s {
            Scalar::Bool(b) => Some(b),
            _ => None,
        })?)),
        HiveType::String | HiveType::Varchar(_) | HiveType::Char(_) => {
            Arc::new(StringArray::from(scalars(t, values, o, |s| match s {
                Scalar::Text(s) => Some(s),
                _ => None,
            })?))
        }
        HiveType::Binary => {
            let bytes = scalars(t, values, o, |s| match s {
                Scalar::Bytes(b) => Some(b),
                _ => None,
            })?;
            Arc::new(BinaryArray::from_iter(bytes))
        }
        HiveType::Date => Arc::new(Date32Array::from(scalars(t, values, o, |s| match s {
            Scalar::Date(d) => Some(d),
            _ => None,
        })?)),
        HiveType::Timestamp => Arc::new(TimestampMicrosecondArray::from(scalars(
            t,
            values,
            o,
            |s| match s {
                Scalar::Micros(m) => Some(m),
                _ => None,
            },
        )?)),
        HiveType::Array(item) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut children: Vec<Option<&Value>> = Vec::new();
            for v in values {
                match v {
                    Some(Value::Array(items)) => children.extend(items.iter().map(Some)),
                    Some(Value::Null) | None => {}
                    Some(other) => return Err(not_a(other, t)),
                }
                offsets.push(
                    i32::try_from(children.len())
                        .map_err(|_| Misfit::new("too many array items".into()))?,
                );
            }
            let child = column(item, &children, o).map_err(|m| m.at("[]".into()))?;
            let DataType::List(field) = t.to_arrow() else {
                unreachable!("an array is a list")
            };
            Arc::new(
                ListArray::try_new(
                    field,
                    OffsetBuffer::new(offsets.into()),
                    child,
                    nulls(values),
                )
                .map_err(|e| Misfit::new(e.to_string()))?,
            )
        }
        HiveType::Map(key, value) => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut keys: Vec<Value> = Vec::new();
            let mut children: Vec<Option<&Value>> = Vec::new();
            for v in values {
                match v {
                    Some(Value::Object(entries)) => {
                        for (k, x) in entries {
                            keys.push(Value::String(k.clone()));
                            children.push(Some(x));
                        }
                    }
                    Some(Value::Null) | None => {}
                    Some(other) => return Err(not_a(other, t)),
                }
                offsets.push(
                    i32::try_from(children.len())
                        .map_err(|_| Misfit::new("too many map entries".into()))?,
                );
            }
            let key_refs: Vec<Option<&Value>> = keys.iter().map(Some).collect();
            let keys = column(key, &key_refs, o).map_err(|m| m.at("[key]".into()))?;
            let children = column(value, &children, o).map_err(|m| m.at("[]".into()))?;
            let DataType::Map(entries_field, sorted) = t.to_arrow() else {
                unreachable!("a map is a map")
            };
            let DataType::Struct(kv) = entries_field.data_type().clone() else {
                unreachable!("map entries are a struct")
            };
            let entries = StructArray::try_new(kv, vec![keys, children], None)
                .map_err(|e| Misfit::new(e.to_string()))?;
            Arc::new(
                MapArray::try_new(
                    entries_field,
                    OffsetBuffer::new(offsets.into()),
                    entries,
                    nulls(values),
                    sorted,
                )
                .map_err(|e| Misfit::new(e.to_string()))?,
            )
        }
        HiveType::Struct(fields) => {
            let mut children = Vec::with_capacity(fields.len());
            for (name, ft) in fields {
                let inner: Vec<Option<&Value>> = values
                    .iter()
                    .map(|v| match v {
                        Some(Value::Object(obj)) => lookup(obj, name, o),
                        _ => None,
                    })
                    .collect();
                if let Some(other) = values
                    .iter()
                    .flatten()
                    .find(|v| !v.is_null() && !v.is_object())
                {
                    return Err(not_a(other, t));
                }
                children.push(column(ft, &inner, o).map_err(|m| m.at(format!(".{name}")))?);
            }
            let DataType::Struct(arrow_fields) = t.to_arrow() else {
                unreachable!("a struct is a struct")
            };
            Arc::new(
                StructArray::try_new(arrow_fields, children, nulls(values))
                    .map_err(|e| Misfit::new(e.to_string()))?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        Date32Type, Decimal128Type, Int8Type, Int32Type, Int64Type, TimestampMicrosecondType,
    };
    use serde_json::json;

    fn serde(cols: &[(&str, &str)], options: SerDeOptions) -> JsonSerDe {
        JsonSerDe::new(
            cols.iter()
                .map(|(n, t)| (n.to_string(), HiveType::parse(t).unwrap()))
                .collect(),
            options,
        )
        .unwrap()
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn converts_every_scalar_type() {
        let s = serde(
            &[
                ("t", "tinyint"),
                ("i", "int"),
                ("b", "bigint"),
                ("f", "float"),
                ("d", "decimal(6,2)"),
                ("ok", "boolean"),
                ("s", "string"),
                ("v", "varchar(3)"),
                ("c", "char(4)"),
                ("bin", "binary"),
                ("day", "date"),
                ("ts", "timestamp"),
            ],
            SerDeOptions::default(),
        );
        let r = object(json!({
            "t": "-7", "i": 200, "b": 3.0, "f": "1.5", "d": 12.345, "ok": "TRUE",
            "s": {"x": [1]}, "v": "abcdef", "c": "é", "bin": "aGk=", "day": "2026-1-5",
            "ts": "2026-11-23T08:00:00.123456789+01:00"
        }));
        s.check(&r).unwrap();
        let batch = s.decode(&[&r]).unwrap();
        assert_eq!(batch.column(0).as_primitive::<Int8Type>().value(0), -7);
        assert_eq!(batch.column(1).as_primitive::<Int32Type>().value(0), 200);
        assert_eq!(batch.column(2).as_primitive::<Int64Type>().value(0), 3);
        assert_eq!(
            batch.column(4).as_primitive::<Decimal128Type>().value(0),
            1235
        );
        assert!(batch.column(5).as_boolean().value(0));
        assert_eq!(batch.column(6).as_string::<i32>().value(0), r#"{"x":[1]}"#);
        assert_eq!(batch.column(7).as_string::<i32>().value(0), "abc");
        assert_eq!(batch.column(8).as_string::<i32>().value(0), "é   ");
        assert_eq!(batch.column(9).as_binary::<i32>().value(0), b"hi");
        assert_eq!(
            batch.column(10).as_primitive::<Date32Type>().value(0),
            20458
        );
        assert_eq!(
            batch
                .column(11)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_795_417_200_123_456
        );
    }

    /// The microseconds a `{"ts": v}` record converts to.
    fn micros(s: &JsonSerDe, v: &Value) -> i64 {
        let r = object(json!({ "ts": v }));
        s.check(&r).unwrap_or_else(|e| panic!("{v}: {e}"));
        let b = s.decode(&[&r]).unwrap();
        b.column(0)
            .as_primitive::<TimestampMicrosecondType>()
            .value(0)
    }

    #[test]
    fn timestamps_in_every_accepted_form() {
        let s = serde(&[("ts", "timestamp")], SerDeOptions::default());
        let want = 1_795_420_800_000_000i64; // 2026-11-23 08:00:00 UTC
        for v in [
            json!("2026-11-23T08:00:00Z"),
            json!("2026-11-23T08:00:00.000000Z"),
            json!("2026-11-23T09:00:00+01:00"),
            json!("2026-11-23 08:00:00"),
            json!("2026-11-23 08:00:00.0"),
            json!(1_795_420_800),
            json!(1_795_420_800_000i64),
            json!(1_795_420_800.0),
            json!("1795420800"),
        ] {
            assert_eq!(micros(&s, &v), want, "{v}");
        }
        for v in [json!("yesterday"), json!(true), json!([1])] {
            let r = object(json!({ "ts": v }));
            assert!(s.check(&r).is_err(), "{v}");
        }
        let millis = serde(
            &[("ts", "timestamp")],
            SerDeOptions {
                timestamp_millis: true,
                ..Default::default()
            },
        );
        let r = object(json!({"ts": 1000}));
        let b = millis.decode(&[&r]).unwrap();
        assert_eq!(
            b.column(0)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_000_000
        );
    }

    #[test]
    fn hive_serde_timestamp_patterns() {
        let formats = [
            "dd/MMM/yyyy:HH:mm:ss Z",
            "yyyy-MM-dd'T'HH:mm:ss.SSS",
            "yyyyMMdd",
        ]
        .iter()
        .map(|p| joda_pattern(p).unwrap())
        .collect();
        let s = serde(
            &[("ts", "timestamp")],
            SerDeOptions {
                timestamp_formats: formats,
                ..Default::default()
            },
        );
        let want = 1_795_420_800_000_000i64; // 2026-11-23 08:00:00 UTC
        for (v, us) in [
            (json!("23/Nov/2026:09:00:00 +0100"), want),
            (json!("2026-11-23T08:00:00.250"), want + 250_000),
            (json!("20261123"), want - 8 * 3_600_000_000),
            // The default forms still apply.
            (json!("2026-11-23 08:00:00"), want),
            (json!(1_795_420_800), want),
        ] {
            assert_eq!(micros(&s, &v), us, "{v}");
        }
        assert!(s.check(&object(json!({"ts": "23-11-2026"}))).is_err());
        assert!(
            joda_pattern("yyyy-QQ")
                .unwrap_err()
                .contains("\"QQ\" is not supported")
        );
        assert!(joda_pattern("'open").unwrap_err().contains("unterminated"));
        assert_eq!(joda_pattern("yyyy'%'").unwrap().strftime, "%Y%%");
    }

    #[test]
    fn records_that_do_not_fit_name_the_field() {
        let s = serde(
            &[
                ("status", "int"),
                (
                    "req",
                    "struct<headers:map<string,string>,sizes:array<tinyint>>",
                ),
                ("price", "decimal(4,2)"),
            ],
            SerDeOptions::default(),
        );
        let cases = [
            (
                json!({"status": "abc"}),
                r#"field "status": "abc" is not a valid int"#,
            ),
            (
                json!({"status": 3.5}),
                r#"field "status": 3.5 is not a valid int"#,
            ),
            (
                json!({"status": 4_000_000_000i64}),
                r#"field "status": 4000000000 is out of range for int"#,
            ),
            (
                json!({"req": {"sizes": [1, 300]}}),
                r#"field "req.sizes[1]": 300 is out of range for tinyint"#,
            ),
            (json!({"req": {"headers": {"a": [1]}}}), ""),
            (
                json!({"req": {"headers": 5}}),
                r#"field "req.headers": 5 is not a valid map<string,string>"#,
            ),
            (
                json!({"price": "123.4"}),
                r#"field "price": "123.4" does not fit decimal(4,2)"#,
            ),
        ];
        for (record, want) in cases {
            let r = object(record.clone());
            if want.is_empty() {
                // An array in a string value is its JSON text.
                s.check(&r).unwrap();
                continue;
            }
            assert_eq!(s.check(&r).unwrap_err(), want, "{record}");
        }
    }

    #[test]
    fn nested_types_keys_and_nulls() {
        let s = serde(
            &[
                (
                    "Msg",
                    "struct<Level:string,tags:map<string,int>,ids:array<bigint>>",
                ),
                ("a_b", "int"),
                ("col", "string"),
            ],
            SerDeOptions {
                case_insensitive: true,
                dots_to_underscores: true,
                column_keys: [("col".to_string(), "timestamp".to_string())].into(),
                timestamp_millis: false,
                timestamp_formats: Vec::new(),
            },
        );
        let r1 = object(json!({
            "MSG": {"level": "warn", "tags": {"Env": "3", "x": null}, "ids": [1, "2"]},
            "a.b": 5,
            "timestamp": "keyword"
        }));
        let r2 = object(json!({"msg": null}));
        s.check(&r1).unwrap();
        s.check(&r2).unwrap();
        let b = s.decode(&[&r1, &r2]).unwrap();
        let msg = b.column(0).as_struct();
        assert!(msg.is_null(1));
        assert_eq!(msg.column(0).as_string::<i32>().value(0), "warn");
        let tags = msg.column(1).as_map();
        assert_eq!(tags.value(0).column(0).as_string::<i32>().value(0), "Env");
        assert_eq!(
            tags.value(0).column(1).as_primitive::<Int32Type>().value(0),
            3
        );
        assert!(tags.value(0).column(1).is_null(1));
        let ids = msg.column(2).as_list::<i32>();
        assert_eq!(
            ids.value(0).as_primitive::<Int64Type>().values().to_vec(),
            vec![1, 2]
        );
        assert_eq!(b.column(1).as_primitive::<Int32Type>().value(0), 5);
        assert_eq!(b.column(2).as_string::<i32>().value(0), "keyword");
        assert!(b.column(1).is_null(1));
    }

    #[test]
    fn decimals_round_and_check_precision() {
        assert_eq!(parse_decimal("1.005", 5, 2), Ok(101));
        assert_eq!(parse_decimal("-1.005", 5, 2), Ok(-101));
        assert_eq!(parse_decimal("1e2", 5, 2), Ok(10000));
        assert_eq!(parse_decimal(".5", 3, 0), Ok(1));
        assert_eq!(parse_decimal("0.0001", 3, 2), Ok(0));
        assert_eq!(
            parse_decimal("999.995", 5, 2).unwrap_err(),
            "does not fit decimal(5,2)"
        );
        assert!(parse_decimal("1e99999", 5, 2).is_err());
        assert!(parse_decimal("abc", 5, 2).is_err());
        assert!(parse_decimal("", 5, 2).is_err());
        assert!(parse_decimal("-", 5, 2).is_err());
        let big = "9".repeat(38);
        assert!(parse_decimal(&big, 38, 0).is_ok());
        assert!(parse_decimal(&format!("{big}9"), 38, 0).is_err());
    }

    #[test]
    fn types_nested_to_the_depth_limit_convert() {
        use crate::schema::MAX_TYPE_DEPTH;
        let depth = MAX_TYPE_DEPTH;
        let t = format!("{}int{}", "array<".repeat(depth), ">".repeat(depth));
        let s = serde(&[("deep", t.as_str())], SerDeOptions::default());
        let mut value = json!("7");
        for _ in 0..depth {
            value = json!([value]);
        }
        let r = object(json!({ "deep": value }));
        s.check(&r).unwrap();
        assert_eq!(s.decode(&[&r]).unwrap().num_rows(), 1);
        // One level more than the type is a misfit, not a crash.
        let r = object(json!({ "deep": [value] }));
        assert!(s.check(&r).is_err());
    }

    #[test]
    fn hostile_values_are_refused_not_panicked_on() {
        let s = serde(
            &[
                ("d", "decimal(38,10)"),
                ("i", "bigint"),
                ("t", "timestamp"),
                ("x", "date"),
            ],
            SerDeOptions::default(),
        );
        for v in [
            json!({"d": "1".repeat(10_000)}),
            json!({"i": "9".repeat(100)}),
            json!({"t": 1e300}),
            json!({"t": -9_223_372_036_854_775_807i64}),
            json!({"t": "9".repeat(1000)}),
            json!({"x": "+275760-09-13"}),
            json!({"i": 1e300}),
        ] {
            let r = object(v.clone());
            assert!(s.check(&r).is_err(), "{v}");
        }
    }
}
