//! Arrow values on the Postgres wire: the type mapping and the text and
//! binary encodings of each value.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use pgwire::api::Type;
use pgwire::api::results::FieldFormat;

/// Microseconds between the Unix epoch and the Postgres epoch (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between the Unix epoch and the Postgres epoch.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Unpacks dictionary and run-end encoded columns into plain arrays.
pub(crate) fn normalize(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Dictionary(_, value) => cast(array, value),
        DataType::RunEndEncoded(_, value) => cast(array, value.data_type()),
        _ => Ok(array.clone()),
    }
}

/// One non-null value taken out of an Arrow array.
enum Value<'a> {
    Bool(bool),
    Int(i64),
    Float4(f32),
    Float8(f64),
    /// A decimal number: sign, digits without leading zeros (or `0`) and
    /// the number of those digits that are after the point.
    Numeric {
        negative: bool,
        digits: String,
        scale: usize,
    },
    Str(&'a str),
    Bytes(&'a [u8]),
    /// Days since 1970-01-01.
    Date(i64),
    /// Microseconds since 1970-01-01 (UTC when `zoned`).
    Timestamp {
        micros: i64,
        zoned: bool,
    },
    /// Microseconds since midnight.
    Time(i64),
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    /// Already-rendered JSON or display text.
    Owned(String),
}

fn numeric_from_string(text: &str, scale: i64) -> Value<'static> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut digits = digits.to_string();
    let scale = if scale < 0 {
        digits.push_str(&"0".repeat(scale.unsigned_abs() as usize));
        0
    } else {
        scale as usize
    };
    let negative = negative && digits.bytes().any(|b| b != b'0');
    Value::Numeric {
        negative,
        digits,
        scale,
    }
}

fn timestamp_micros(value: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => value.saturating_mul(1_000_000),
        TimeUnit::Millisecond => value.saturating_mul(1_000),
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => value.div_euclid(1_000),
    }
}

/// Reads row `row` of `array`; `None` for NULL.
fn value(array: &dyn Array, row: usize) -> Option<Value<'_>> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Null => return None,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Value::Int(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Value::Int(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Value::Int(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::Int(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Value::Int(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Value::Int(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => numeric_from_string(
            &array.as_primitive::<UInt64Type>().value(row).to_string(),
            0,
        ),
        DataType::Float16 => Value::Float4(array.as_primitive::<Float16Type>().value(row).to_f32()),
        DataType::Float32 => Value::Float4(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Value::Float8(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal32(_, s) => numeric_from_string(
            &array.as_primitive::<Decimal32Type>().value(row).to_string(),
            (*s).into(),
        ),
        DataType::Decimal64(_, s) => numeric_from_string(
            &array.as_primitive::<Decimal64Type>().value(row).to_string(),
            (*s).into(),
        ),
        DataType::Decimal128(_, s) => numeric_from_string(
            &array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_string(),
            (*s).into(),
        ),
        DataType::Decimal256(_, s) => numeric_from_string(
            &array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string(),
            (*s).into(),
        ),
        DataType::Utf8 => Value::Str(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::Str(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Value::Str(array.as_string_view().value(row)),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => Value::Bytes(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => Value::Bytes(array.as_fixed_size_binary().value(row)),
        DataType::Date32 => Value::Date(array.as_primitive::<Date32Type>().value(row).into()),
        DataType::Date64 => Value::Date(
            array
                .as_primitive::<Date64Type>()
                .value(row)
                .div_euclid(86_400_000),
        ),
        DataType::Timestamp(unit, zone) => {
            let raw = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            Value::Timestamp {
                micros: timestamp_micros(raw, unit),
                zoned: zone.is_some(),
            }
        }
        DataType::Time32(TimeUnit::Second) => {
            Value::Time(i64::from(array.as_primitive::<Time32SecondType>().value(row)) * 1_000_000)
        }
        DataType::Time32(_) => {
            Value::Time(i64::from(array.as_primitive::<Time32MillisecondType>().value(row)) * 1_000)
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            Value::Time(array.as_primitive::<Time64NanosecondType>().value(row) / 1_000)
        }
        DataType::Time64(_) => {
            Value::Time(array.as_primitive::<Time64MicrosecondType>().value(row))
        }
        DataType::Interval(IntervalUnit::YearMonth) => Value::Interval {
            months: array.as_primitive::<IntervalYearMonthType>().value(row),
            days: 0,
            micros: 0,
        },
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = array.as_primitive::<IntervalDayTimeType>().value(row);
            Value::Interval {
                months: 0,
                days: v.days,
                micros: i64::from(v.milliseconds) * 1_000,
            }
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            Value::Interval {
                months: v.months,
                days: v.days,
                micros: v.nanoseconds / 1_000,
            }
        }
        DataType::Duration(unit) => {
            let raw = match unit {
                TimeUnit::Second => array.as_primitive::<DurationSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<DurationNanosecondType>().value(row),
            };
            Value::Interval {
                months: 0,
                days: 0,
                micros: match unit {
                    TimeUnit::Nanosecond => raw / 1_000,
                    _ => timestamp_micros(raw, unit),
                },
            }
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..)
        | DataType::Union(..) => {
            let mut out = String::new();
            write_json(array, row, &mut out);
            Value::Owned(out)
        }
        DataType::Dictionary(..) | DataType::RunEndEncoded(..) => {
            let slice = array.slice(row, 1);
            let plain = normalize(&slice).ok()?;
            let mut out = Vec::new();
            value(plain.as_ref(), 0).map(|v| write_text(&v, &mut out))?;
            Value::Owned(String::from_utf8_lossy(&out).into_owned())
        }
    })
}

/// Postgres' rendering of a float: shortest round-trip digits, fixed
/// notation for decimal exponents in `[-4, limit)`, else `1e+20` style.
fn format_float(
    out: &mut Vec<u8>,
    scientific: String,
    is_nan: bool,
    is_inf: bool,
    negative: bool,
    limit: i32,
) {
    if is_nan {
        out.extend_from_slice(b"NaN");
        return;
    }
    if is_inf {
        out.extend_from_slice(if negative { b"-Infinity" } else { b"Infinity" });
        return;
    }
    // `scientific` looks like `-1.2345e-7` or `5e3`.
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut text = String::from(sign);
    if digits == "0" {
        text.push('0');
    } else if (-4..limit).contains(&exponent) {
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            if digits.len() <= int_len {
                text.push_str(&digits);
                text.push_str(&"0".repeat(int_len - digits.len()));
            } else {
                text.push_str(&digits[..int_len]);
                text.push('.');
                text.push_str(&digits[int_len..]);
            }
        } else {
            text.push_str("0.");
            text.push_str(&"0".repeat((-exponent - 1) as usize));
            text.push_str(&digits);
        }
    } else {
        text.push_str(&digits[..1]);
        if digits.len() > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        let _ = write!(
            text,
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        );
    }
    out.extend_from_slice(text.as_bytes());
}

fn write_numeric_text(out: &mut Vec<u8>, negative: bool, digits: &str, scale: usize) {
    if negative {
        out.push(b'-');
    }
    if scale == 0 {
        out.extend_from_slice(digits.as_bytes());
    } else if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    } else {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    }
}

fn write_date(out: &mut Vec<u8>, days: i64) {
    let date = i32::try_from(days)
        .ok()
        .and_then(|d| NaiveDate::from_num_days_from_ce_opt(d.checked_add(719_163)?));
    match date {
        Some(date) => write_naive_date(out, date),
        None => out.extend_from_slice(days.to_string().as_bytes()),
    }
}

fn write_naive_date(out: &mut Vec<u8>, date: NaiveDate) {
    let year = date.year();
    let text = if year <= 0 {
        format!("{:04}-{:02}-{:02} BC", 1 - year, date.month(), date.day())
    } else {
        format!("{:04}-{:02}-{:02}", year, date.month(), date.day())
    };
    out.extend_from_slice(text.as_bytes());
}

fn write_fraction(out: &mut Vec<u8>, micros: i64) {
    if micros != 0 {
        let text = format!("{micros:06}");
        out.push(b'.');
        out.extend_from_slice(text.trim_end_matches('0').as_bytes());
    }
}

fn write_timestamp(out: &mut Vec<u8>, micros: i64, with_zone: bool) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let Some(dt) = DateTime::from_timestamp(secs, 0) else {
        out.extend_from_slice(micros.to_string().as_bytes());
        return;
    };
    let naive = dt.naive_utc();
    let year = naive.year();
    let date = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        if year <= 0 { 1 - year } else { year },
        naive.month(),
        naive.day(),
        naive.hour(),
        naive.minute(),
        naive.second()
    );
    out.extend_from_slice(date.as_bytes());
    write_fraction(out, frac);
    if with_zone {
        out.extend_from_slice(b"+00");
    }
    if year <= 0 {
        out.extend_from_slice(b" BC");
    }
}

fn write_time(out: &mut Vec<u8>, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let text = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    out.extend_from_slice(text.as_bytes());
    write_fraction(out, micros.rem_euclid(1_000_000));
}

fn write_interval(out: &mut Vec<u8>, months: i32, days: i32, micros: i64) {
    let mut parts: Vec<String> = Vec::new();
    let unit = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let years = months / 12;
    let mons = months % 12;
    if years != 0 {
        parts.push(unit(years.into(), "year", "years"));
    }
    if mons != 0 {
        parts.push(unit(mons.into(), "mon", "mons"));
    }
    if days != 0 {
        parts.push(unit(days.into(), "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let negative = micros < 0;
        let abs = micros.unsigned_abs();
        let secs = abs / 1_000_000;
        let mut time = format!(
            "{}{:02}:{:02}:{:02}",
            if negative { "-" } else { "" },
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        let frac = abs % 1_000_000;
        if frac != 0 {
            let f = format!("{frac:06}");
            time.push('.');
            time.push_str(f.trim_end_matches('0'));
        }
        parts.push(time);
    }
    out.extend_from_slice(parts.join(" ").as_bytes());
}

fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\x");
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

fn write_text(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float4(f) => format_float(
            out,
            format!("{f:e}"),
            f.is_nan(),
            f.is_infinite(),
            f.is_sign_negative(),
            6,
        ),
        Value::Float8(f) => format_float(
            out,
            format!("{f:e}"),
            f.is_nan(),
            f.is_infinite(),
            f.is_sign_negative(),
            15,
        ),
        Value::Numeric {
            negative,
            digits,
            scale,
        } => write_numeric_text(out, *negative, digits, *scale),
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        Value::Bytes(b) => write_hex(out, b),
        Value::Date(d) => write_date(out, *d),
        Value::Timestamp { micros, zoned } => write_timestamp(out, *micros, *zoned),
        Value::Time(t) => write_time(out, *t),
        Value::Interval {
            months,
            days,
            micros,
        } => write_interval(out, *months, *days, *micros),
        Value::Owned(s) => out.extend_from_slice(s.as_bytes()),
    }
}

/// Postgres' binary `numeric`: base-10000 digit groups.
fn write_numeric_binary(buf: &mut BytesMut, negative: bool, digits: &str, scale: usize) {
    let digits = digits.trim_start_matches('0');
    let (int_part, frac_part) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits)
    };
    let frac_padded = format!("{}{}", "0".repeat(scale - frac_part.len()), frac_part);
    let int_padded = format!("{}{}", "0".repeat((4 - int_part.len() % 4) % 4), int_part);
    let frac_full = format!(
        "{}{}",
        frac_padded,
        "0".repeat((4 - frac_padded.len() % 4) % 4)
    );
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
            .collect()
    };
    let int_groups = group(&int_padded);
    let frac_groups = group(&frac_full);
    let mut groups: Vec<i16> = int_groups
        .iter()
        .chain(frac_groups.iter())
        .copied()
        .collect();
    let mut weight = int_groups.len() as i32 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight as i16);
    buf.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    buf.put_u16(scale.min(0x3FFF) as u16);
    for g in groups {
        buf.put_i16(g);
    }
}

fn write_binary(value: &Value<'_>, pg: &Type, buf: &mut BytesMut) {
    match value {
        Value::Bool(b) => buf.put_u8(u8::from(*b)),
        Value::Int(i) => match *pg {
            Type::INT2 => buf.put_i16(*i as i16),
            Type::INT4 => buf.put_i32(*i as i32),
            _ => buf.put_i64(*i),
        },
        Value::Float4(f) => buf.put_f32(*f),
        Value::Float8(f) => buf.put_f64(*f),
        Value::Numeric {
            negative,
            digits,
            scale,
        } => write_numeric_binary(buf, *negative, digits, *scale),
        Value::Str(s) => buf.put_slice(s.as_bytes()),
        Value::Bytes(b) => buf.put_slice(b),
        Value::Date(d) => buf.put_i32((*d as i32).wrapping_sub(PG_EPOCH_DAYS)),
        Value::Timestamp { micros, .. } => buf.put_i64(micros.saturating_sub(PG_EPOCH_MICROS)),
        Value::Time(t) => buf.put_i64(*t),
        Value::Interval {
            months,
            days,
            micros,
        } => {
            buf.put_i64(*micros);
            buf.put_i32(*days);
            buf.put_i32(*months);
        }
        Value::Owned(s) => buf.put_slice(s.as_bytes()),
    }
}

/// Appends one DataRow field (length word and bytes, or -1 for NULL) for
/// row `row` of `array`, which is announced to the client as `pg` in
/// `format`.
pub(crate) fn encode_field(
    array: &dyn Array,
    row: usize,
    pg: &Type,
    format: FieldFormat,
    buf: &mut BytesMut,
) {
    let Some(v) = value(array, row) else {
        buf.put_i32(-1);
        return;
    };
    let at = buf.len();
    buf.put_i32(0);
    match format {
        FieldFormat::Binary => write_binary(&v, pg, buf),
        FieldFormat::Text => {
            let mut text = Vec::new();
            write_text(&v, &mut text);
            buf.put_slice(&text);
        }
    }
    let len = (buf.len() - at - 4) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Renders row `row` of `array` as JSON (nested types travel as `json`).
fn write_json(array: &dyn Array, row: usize, out: &mut String) {
    if array.is_null(row) {
        out.push_str("null");
        return;
    }
    match array.data_type() {
        DataType::List(_) => write_json_list(array.as_list::<i32>().value(row).as_ref(), out),
        DataType::LargeList(_) => write_json_list(array.as_list::<i64>().value(row).as_ref(), out),
        DataType::FixedSizeList(..) => {
            write_json_list(array.as_fixed_size_list().value(row).as_ref(), out)
        }
        DataType::ListView(_) => {
            write_json_list(array.as_list_view::<i32>().value(row).as_ref(), out)
        }
        DataType::LargeListView(_) => {
            write_json_list(array.as_list_view::<i64>().value(row).as_ref(), out)
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            out.push('{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(field.name()));
                out.push(':');
                write_json(s.column(i).as_ref(), row, out);
            }
            out.push('}');
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push(',');
                }
                let key = entries.column(0);
                let mut text = Vec::new();
                if let Some(v) = value(key.as_ref(), i) {
                    write_text(&v, &mut text);
                }
                out.push_str(&json_string(&String::from_utf8_lossy(&text)));
                out.push(':');
                write_json(entries.column(1).as_ref(), i, out);
            }
            out.push('}');
        }
        DataType::Union(..) => {
            let u = array.as_union();
            let child = u.child(u.type_id(row));
            write_json(child.as_ref(), u.value_offset(row), out);
        }
        DataType::Dictionary(..) | DataType::RunEndEncoded(..) => {
            match normalize(&array.slice(row, 1)) {
                Ok(plain) => write_json(plain.as_ref(), 0, out),
                Err(_) => out.push_str("null"),
            }
        }
        _ => match value(array, row) {
            None => out.push_str("null"),
            Some(Value::Bool(b)) => out.push_str(if b { "true" } else { "false" }),
            Some(v @ (Value::Int(_) | Value::Numeric { .. })) => {
                let mut text = Vec::new();
                write_text(&v, &mut text);
                out.push_str(&String::from_utf8_lossy(&text));
            }
            Some(v @ (Value::Float4(_) | Value::Float8(_))) => {
                let finite = match v {
                    Value::Float4(f) => f.is_finite(),
                    Value::Float8(f) => f.is_finite(),
                    _ => false,
                };
                let mut text = Vec::new();
                write_text(&v, &mut text);
                let text = String::from_utf8_lossy(&text).into_owned();
                if finite {
                    out.push_str(&text);
                } else {
                    out.push_str(&json_string(&text));
                }
            }
            Some(v) => {
                let mut text = Vec::new();
                write_text(&v, &mut text);
                out.push_str(&json_string(&String::from_utf8_lossy(&text)));
            }
        },
    }
}

fn write_json_list(values: &dyn Array, out: &mut String) {
    out.push('[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        write_json(values, i, out);
    }
    out.push(']');
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Decimal128Array, Float32Array, Float64Array, Int32Array, ListArray, StringArray,
        StructArray,
    };
    use datafusion::arrow::datatypes::{Field, Int32Type};

    use super::*;
    use lakehose_query::postgres::types::pg_type;

    fn text_of(array: &dyn Array, row: usize) -> Option<String> {
        let mut buf = BytesMut::new();
        let pg = pg_type(array.data_type());
        encode_field(array, row, &pg, FieldFormat::Text, &mut buf);
        let len = i32::from_be_bytes(buf[..4].try_into().unwrap());
        (len >= 0).then(|| String::from_utf8(buf[4..].to_vec()).unwrap())
    }

    #[test]
    fn pg_float_text_matches_postgres() {
        let f8 = Float64Array::from(vec![
            1.5,
            1e20,
            1e14,
            1e15,
            0.0001,
            0.00001,
            -2.25,
            f64::NAN,
            f64::NEG_INFINITY,
            0.1,
            0.0,
        ]);
        let got: Vec<String> = (0..f8.len()).map(|i| text_of(&f8, i).unwrap()).collect();
        assert_eq!(
            got,
            vec![
                "1.5",
                "1e+20",
                "100000000000000",
                "1e+15",
                "0.0001",
                "1e-05",
                "-2.25",
                "NaN",
                "-Infinity",
                "0.1",
                "0"
            ]
        );
        let f4 = Float32Array::from(vec![0.1f32, 1234567.0, 123456.0]);
        let got: Vec<String> = (0..f4.len()).map(|i| text_of(&f4, i).unwrap()).collect();
        assert_eq!(got, vec!["0.1", "1.234567e+06", "123456"]);
    }

    #[test]
    fn pg_numeric_text_and_binary() {
        let d = Decimal128Array::from(vec![Some(12345), Some(-5), Some(0), None])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(text_of(&d, 0).unwrap(), "123.45");
        assert_eq!(text_of(&d, 1).unwrap(), "-0.05");
        assert_eq!(text_of(&d, 2).unwrap(), "0.00");
        assert_eq!(text_of(&d, 3), None);

        let mut buf = BytesMut::new();
        write_numeric_binary(&mut buf, false, "1234567", 2);
        // 12345.67 -> groups [1, 2345, 6700], weight 1, dscale 2
        assert_eq!(
            buf.to_vec(),
            vec![0, 3, 0, 1, 0, 0, 0, 2, 0, 1, 0x09, 0x29, 0x1A, 0x2C]
        );
        let mut zero = BytesMut::new();
        write_numeric_binary(&mut zero, true, "0", 3);
        assert_eq!(zero.to_vec(), vec![0, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn pg_nested_values_render_as_json() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
        ]);
        assert_eq!(text_of(&list, 0).unwrap(), "[1,null,3]");
        assert_eq!(text_of(&list, 1), None);
        let s = StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int32, true)),
                Arc::new(Int32Array::from(vec![7])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec!["x\"y"])) as ArrayRef,
            ),
        ]);
        assert_eq!(text_of(&s, 0).unwrap(), r#"{"a":7,"b":"x\"y"}"#);
    }

    #[test]
    fn pg_interval_and_time_text() {
        let mut out = Vec::new();
        write_interval(
            &mut out,
            14,
            3,
            4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1 year 2 mons 3 days 04:05:06.5"
        );
        let mut out = Vec::new();
        write_interval(&mut out, 0, 0, 0);
        assert_eq!(String::from_utf8(out).unwrap(), "00:00:00");
        let mut out = Vec::new();
        write_timestamp(&mut out, 1_700_000_000_123_000, true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2023-11-14 22:13:20.123+00"
        );
        let mut out = Vec::new();
        write_date(&mut out, 0);
        assert_eq!(String::from_utf8(out).unwrap(), "1970-01-01");
    }
}
