//! Arrow values in Presto's text forms: what Athena returns for every
//! value (`VarCharValue`) and writes to its CSV result files, what
//! `format()` and the CLI print. The forms follow what Athena engine 3
//! (Trino) prints:
//!
//! - booleans `true`/`false`; integers in decimal; decimals with their scale
//!   (`12.30`);
//! - `double`/`real` like Java's `Double.toString`: `1.0`, `0.25`, `1.0E7`,
//!   `1.5E-4`, `NaN`, `Infinity`;
//! - dates `2024-01-02`; timestamps `2024-01-02 03:04:05.000` (milliseconds,
//!   widened to 6 or 9 digits only when the value has sub-millisecond
//!   digits); a timestamp with a time zone adds the zone (`… UTC`, or the
//!   fixed offset it was given, e.g. `… +05:30`); times `03:04:05.000`;
//! - `varbinary` as space-separated hex bytes (`68 65 6c`);
//! - arrays `[a, b]`, maps `{k=v, k2=v2}`, rows `{a=1, b=x}`, with `null`
//!   for nulls inside them;
//! - other types (intervals, durations) in Arrow's own display form.

use chrono::{DateTime, FixedOffset, NaiveTime, TimeZone, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, FixedSizeBinaryArray, LargeBinaryArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Formats the values of one column: `None` for NULL.
pub fn column_text(array: &ArrayRef) -> Result<Vec<Option<String>>, ArrowError> {
    let array = plain(array)?;
    (0..array.len())
        .map(|i| {
            if array.is_null(i) {
                Ok(None)
            } else {
                value_text(array.as_ref(), i).map(Some)
            }
        })
        .collect()
}

/// Dictionary and run-end encoded columns decoded to their value type.
fn plain(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match array.data_type() {
        DataType::Dictionary(_, value) => datafusion::arrow::compute::cast(array, value.as_ref()),
        DataType::RunEndEncoded(_, value) => {
            datafusion::arrow::compute::cast(array, value.data_type())
        }
        _ => Ok(array.clone()),
    }
}

/// The text of one non-null value.
fn value_text(array: &dyn Array, i: usize) -> Result<String, ArrowError> {
    Ok(match array.data_type() {
        DataType::Boolean => array.as_boolean().value(i).to_string(),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).to_string(),
        DataType::Float16 => java_double(f64::from(
            array.as_primitive::<Float16Type>().value(i).to_f32(),
        )),
        DataType::Float32 => java_float(array.as_primitive::<Float32Type>().value(i)),
        DataType::Float64 => java_double(array.as_primitive::<Float64Type>().value(i)),
        DataType::Decimal128(_, _) => array.as_primitive::<Decimal128Type>().value_as_string(i),
        DataType::Decimal256(_, _) => array.as_primitive::<Decimal256Type>().value_as_string(i),
        DataType::Utf8 => array.as_string::<i32>().value(i).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i).to_string(),
        DataType::Utf8View => array.as_string_view().value(i).to_string(),
        DataType::Binary => hex(array
            .as_any()
            .downcast_ref::<BinaryArray>()
            .map(|a| a.value(i))),
        DataType::LargeBinary => hex(array
            .as_any()
            .downcast_ref::<LargeBinaryArray>()
            .map(|a| a.value(i))),
        DataType::BinaryView => hex(array
            .as_any()
            .downcast_ref::<BinaryViewArray>()
            .map(|a| a.value(i))),
        DataType::FixedSizeBinary(_) => hex(array
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .map(|a| a.value(i))),
        DataType::Date32 => {
            date_text(i64::from(array.as_primitive::<Date32Type>().value(i)) * 86_400_000)
        }
        DataType::Date64 => date_text(array.as_primitive::<Date64Type>().value(i)),
        DataType::Time32(TimeUnit::Second) => {
            time_text(i64::from(array.as_primitive::<Time32SecondType>().value(i)) * 1_000_000_000)
        }
        DataType::Time32(_) => {
            time_text(i64::from(array.as_primitive::<Time32MillisecondType>().value(i)) * 1_000_000)
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            time_text(array.as_primitive::<Time64MicrosecondType>().value(i) * 1_000)
        }
        DataType::Time64(_) => time_text(array.as_primitive::<Time64NanosecondType>().value(i)),
        DataType::Timestamp(unit, tz) => {
            let (secs, nanos) = match unit {
                TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().value(i), 0),
                TimeUnit::Millisecond => split(
                    array.as_primitive::<TimestampMillisecondType>().value(i),
                    1_000,
                    1_000_000,
                ),
                TimeUnit::Microsecond => split(
                    array.as_primitive::<TimestampMicrosecondType>().value(i),
                    1_000_000,
                    1_000,
                ),
                TimeUnit::Nanosecond => split(
                    array.as_primitive::<TimestampNanosecondType>().value(i),
                    1_000_000_000,
                    1,
                ),
            };
            timestamp_text(secs, nanos, tz.as_deref())
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            sequence_text(&list.value(i))?
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            sequence_text(&list.value(i))?
        }
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list();
            sequence_text(&list.value(i))?
        }
        DataType::Map(_, _) => {
            let map = array.as_map();
            let entries = map.value(i);
            let keys = column_text(entries.column(0))?;
            let values = column_text(entries.column(1))?;
            let parts: Vec<String> = keys
                .into_iter()
                .zip(values)
                .map(|(k, v)| format!("{}={}", nested(k), nested(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        DataType::Struct(fields) => {
            let row = array.as_struct();
            let mut parts = Vec::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(row.columns()) {
                let v = column_text(&column.slice(i, 1))?.pop().flatten();
                parts.push(format!("{}={}", field.name(), nested(v)));
            }
            format!("{{{}}}", parts.join(", "))
        }
        _ => {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            formatter.value(i).to_string()
        }
    })
}

fn nested(v: Option<String>) -> String {
    v.unwrap_or_else(|| "null".to_string())
}

fn sequence_text(values: &ArrayRef) -> Result<String, ArrowError> {
    let parts: Vec<String> = column_text(values)?.into_iter().map(nested).collect();
    Ok(format!("[{}]", parts.join(", ")))
}

fn split(v: i64, per_second: i64, nanos_per_unit: i64) -> (i64, u32) {
    let secs = v.div_euclid(per_second);
    let nanos = v.rem_euclid(per_second) * nanos_per_unit;
    (secs, nanos as u32)
}

fn hex(bytes: Option<&[u8]>) -> String {
    bytes
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn date_text(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(|d| d.date_naive().format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("{millis}"))
}

fn fraction(nanos: u32) -> String {
    if nanos.is_multiple_of(1_000_000) {
        format!("{:03}", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{:06}", nanos / 1_000)
    } else {
        format!("{nanos:09}")
    }
}

fn time_text(nanos_of_day: i64) -> String {
    let secs = nanos_of_day.div_euclid(1_000_000_000);
    let nanos = nanos_of_day.rem_euclid(1_000_000_000) as u32;
    match NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, 0) {
        Some(t) => format!("{}.{}", t.format("%H:%M:%S"), fraction(nanos)),
        None => nanos_of_day.to_string(),
    }
}

/// A timestamp as Athena prints it, with the zone when it has one.
pub fn timestamp_text(secs: i64, nanos: u32, tz: Option<&str>) -> String {
    let Some(utc) = DateTime::<Utc>::from_timestamp(secs, nanos) else {
        return format!("{secs}");
    };
    let local = |naive: chrono::NaiveDateTime| {
        format!("{}.{}", naive.format("%Y-%m-%d %H:%M:%S"), fraction(nanos))
    };
    match tz {
        None => local(utc.naive_utc()),
        Some(zone) => match fixed_offset(zone) {
            Some(offset) if offset.local_minus_utc() != 0 => {
                let shifted = offset.from_utc_datetime(&utc.naive_utc());
                format!("{} {}", local(shifted.naive_local()), offset)
            }
            Some(_) => format!("{} UTC", local(utc.naive_utc())),
            // Named zones other than UTC are printed as the UTC instant.
            None => format!("{} UTC", local(utc.naive_utc())),
        },
    }
}

fn fixed_offset(zone: &str) -> Option<FixedOffset> {
    if zone.eq_ignore_ascii_case("utc") || zone == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
}

/// A `double` as Java's `Double.toString` prints it.
pub(crate) fn java_double(v: f64) -> String {
    java_style(v, format!("{v}"), format!("{v:E}"))
}

/// A `real` as Java's `Float.toString` prints it.
pub(crate) fn java_float(v: f32) -> String {
    java_style(f64::from(v), format!("{v}"), format!("{v:E}"))
}

fn java_style(v: f64, plain: String, scientific: String) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let magnitude = v.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        // Rust prints `1.5E-4` / `1E7`; Java always has a fraction digit.
        match scientific.split_once('E') {
            Some((mantissa, exp)) if !mantissa.contains('.') => format!("{mantissa}.0E{exp}"),
            _ => scientific,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Builder, Int64Array,
        ListArray, MapBuilder, StringArray, StringBuilder, StructArray, TimestampMillisecondArray,
        TimestampNanosecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Fields};

    use super::*;

    fn texts(array: ArrayRef) -> Vec<Option<String>> {
        column_text(&array).unwrap()
    }

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.25), "0.25");
        assert_eq!(java_double(-3.5), "-3.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(12345678.9), "1.23456789E7");
        assert_eq!(java_double(0.00015), "1.5E-4");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(f64::NAN), "NaN");
        assert_eq!(java_double(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(java_float(0.1), "0.1");
    }

    #[test]
    fn scalars() {
        assert_eq!(
            texts(Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false)
            ]))),
            vec![Some("true".into()), None, Some("false".into())]
        );
        assert_eq!(
            texts(Arc::new(Int64Array::from(vec![-5]))),
            vec![Some("-5".into())]
        );
        assert_eq!(
            texts(Arc::new(Float64Array::from(vec![2.0]))),
            vec![Some("2.0".into())]
        );
        let dec = Decimal128Array::from(vec![1230])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(texts(Arc::new(dec)), vec![Some("12.30".into())]);
        assert_eq!(
            texts(Arc::new(Date32Array::from(vec![19724]))),
            vec![Some("2024-01-02".into())]
        );
    }

    #[test]
    fn timestamps() {
        // 2024-01-02 03:04:05.000 UTC
        let ms = 1_704_164_645_000;
        assert_eq!(
            texts(Arc::new(TimestampMillisecondArray::from(vec![ms]))),
            vec![Some("2024-01-02 03:04:05.000".into())]
        );
        assert_eq!(
            texts(Arc::new(TimestampNanosecondArray::from(vec![
                ms * 1_000_000 + 123_000_000,
                ms * 1_000_000 + 123_456_000
            ]))),
            vec![
                Some("2024-01-02 03:04:05.123".into()),
                Some("2024-01-02 03:04:05.123456".into())
            ]
        );
        let with_tz = TimestampMillisecondArray::from(vec![ms]).with_timezone("+00:00");
        assert_eq!(
            texts(Arc::new(with_tz)),
            vec![Some("2024-01-02 03:04:05.000 UTC".into())]
        );
        let with_offset = TimestampMillisecondArray::from(vec![ms]).with_timezone("+05:30");
        assert_eq!(
            texts(Arc::new(with_offset)),
            vec![Some("2024-01-02 08:34:05.000 +05:30".into())]
        );
    }

    #[test]
    fn nested_values() {
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
            Some(vec![]),
        ]);
        assert_eq!(
            texts(Arc::new(list)),
            vec![Some("[1, null, 3]".into()), None, Some("[]".into())]
        );

        let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        map.keys().append_value("a");
        map.values().append_value(1);
        map.keys().append_value("b");
        map.values().append_null();
        map.append(true).unwrap();
        assert_eq!(
            texts(Arc::new(map.finish())),
            vec![Some("{a=1, b=null}".into())]
        );

        let row = StructArray::new(
            Fields::from(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
            ]),
            vec![
                Arc::new(Int64Array::from(vec![1])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
            None,
        );
        assert_eq!(texts(Arc::new(row)), vec![Some("{a=1, b=x}".into())]);
    }
}
