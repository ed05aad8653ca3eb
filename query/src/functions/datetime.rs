//! Date and time functions: MySQL-style `date_format`/`date_parse`,
//! Joda-style `format_datetime`/`parse_datetime`, ISO 8601, Unix time,
//! `date_add`/`date_diff` and the field extractors (`year`, `day_of_week`, ...).
//!
//! Timestamps are computed as microseconds; a timestamp with a time zone is
//! interpreted in that zone for calendar fields and formatting.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Float64Array, Int64Array, IntervalMonthDayNanoArray, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::{DataFusionError, Result};

use super::{
    Func, all_strings, arity, fail, int_at, ints, ret_i64, ret_utf8, str_at, strs, want_int,
    want_string, want_timestamp,
};

/// The date and time functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new("date_format", coerce_ts_str, ret_utf8, date_format),
        Func::new("format_datetime", coerce_ts_str, ret_utf8, format_datetime),
        Func::new(
            "date_parse",
            |a| all_strings(a, 2, 2),
            ret_naive_ts,
            date_parse,
        ),
        Func::new(
            "parse_datetime",
            |a| all_strings(a, 2, 2),
            ret_utc_ts,
            parse_datetime,
        ),
        Func::new(
            "from_iso8601_timestamp",
            |a| all_strings(a, 1, 1),
            ret_utc_ts,
            from_iso8601_timestamp,
        ),
        Func::new(
            "from_iso8601_date",
            |a| all_strings(a, 1, 1),
            |_| Ok(DataType::Date32),
            from_iso8601_date,
        ),
        Func::new("to_iso8601", coerce_date_or_ts, super::ret_utf8, to_iso8601),
        Func::new(
            "from_unixtime",
            coerce_from_unixtime,
            ret_utc_ts,
            from_unixtime,
        )
        .ret_scalar(ret_from_unixtime),
        Func::new("at_timezone", coerce_at_timezone, ret_utc_ts, at_timezone)
            .ret_scalar(ret_at_timezone),
        Func::new(
            "with_timezone",
            coerce_at_timezone,
            ret_utc_ts,
            with_timezone,
        )
        .ret_scalar(ret_at_timezone),
        Func::new("to_milliseconds", coerce_interval, ret_i64, to_milliseconds),
        Func::new(
            "human_readable_seconds",
            |a| {
                arity(a, 1, 1)?;
                Ok(vec![DataType::Float64])
            },
            ret_utf8,
            human_readable_seconds,
        ),
        Func::new(
            "parse_duration",
            |a| all_strings(a, 1, 1),
            |_| Ok(DataType::Interval(IntervalUnit::MonthDayNano)),
            parse_duration,
        ),
        Func::new(
            "to_unixtime",
            |a| {
                arity(a, 1, 1)?;
                Ok(vec![want_timestamp(&a[0], "argument")?])
            },
            |_| Ok(DataType::Float64),
            to_unixtime,
        ),
        Func::new("date_add", coerce_date_add, |a| Ok(a[2].clone()), date_add),
        Func::new("date_diff", coerce_date_diff, ret_i64, date_diff),
        Func::new(
            "date_trunc",
            coerce_date_trunc,
            |a| Ok(a[1].clone()),
            date_trunc,
        ),
        Func::new(
            "last_day_of_month",
            coerce_one_ts,
            |_| Ok(DataType::Date32),
            last_day,
        ),
        Func::new("year", coerce_one_ts, ret_i64, extract::<{ F_YEAR }>),
        Func::new("quarter", coerce_one_ts, ret_i64, extract::<{ F_QUARTER }>),
        Func::new("month", coerce_one_ts, ret_i64, extract::<{ F_MONTH }>),
        Func::new("week", coerce_one_ts, ret_i64, extract::<{ F_WEEK }>).alias(&["week_of_year"]),
        Func::new("year_of_week", coerce_one_ts, ret_i64, extract::<{ F_YOW }>).alias(&["yow"]),
        Func::new("day", coerce_one_ts, ret_i64, extract::<{ F_DAY }>).alias(&["day_of_month"]),
        Func::new("day_of_week", coerce_one_ts, ret_i64, extract::<{ F_DOW }>).alias(&["dow"]),
        Func::new("day_of_year", coerce_one_ts, ret_i64, extract::<{ F_DOY }>).alias(&["doy"]),
        Func::new("hour", coerce_one_ts, ret_i64, extract::<{ F_HOUR }>),
        Func::new("minute", coerce_one_ts, ret_i64, extract::<{ F_MINUTE }>),
        Func::new("second", coerce_one_ts, ret_i64, extract::<{ F_SECOND }>),
        Func::new(
            "millisecond",
            coerce_one_ts,
            ret_i64,
            extract::<{ F_MILLI }>,
        ),
    ]
}

const UTC: &str = "+00:00";

fn ret_naive_ts(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
}

fn ret_utc_ts(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())))
}

fn coerce_ts_str(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    Ok(vec![
        want_timestamp(&a[0], "argument 1")?,
        want_string(&a[1], "format")?,
    ])
}

fn coerce_one_ts(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    Ok(vec![want_timestamp(&a[0], "argument")?])
}

fn coerce_date_or_ts(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    match &a[0] {
        DataType::Date32 | DataType::Date64 => Ok(vec![DataType::Date32]),
        t => Ok(vec![want_timestamp(t, "argument")?]),
    }
}

// ---------------------------------------------------------------------------
// Time zone helpers

/// The time zone of a timestamp type, if any.
fn zone_of(t: &DataType) -> Result<Option<Tz>> {
    match t {
        DataType::Timestamp(_, Some(z)) => parse_zone(z).map(Some),
        _ => Ok(None),
    }
}

/// Parses a zone name (`UTC`, `+05:30`, `America/New_York`).
fn parse_zone(z: &str) -> Result<Tz> {
    let z = z.trim();
    let z = if z.eq_ignore_ascii_case("utc") || z.eq_ignore_ascii_case("z") {
        UTC
    } else {
        z
    };
    Tz::from_str(z).or_else(|_| fail(format!("unknown time zone: {z}")))
}

/// The wall-clock time of `us` (microseconds since the epoch) in `tz`.
fn local(us: i64, tz: Option<&Tz>) -> Result<NaiveDateTime> {
    let utc = match DateTime::from_timestamp_micros(us) {
        Some(d) => d.naive_utc(),
        None => return fail(format!("timestamp out of range: {us}")),
    };
    Ok(match tz {
        Some(tz) => utc + Duration::seconds(offset_secs(tz, &utc) as i64),
        None => utc,
    })
}

/// The UTC offset of `tz` at the UTC instant `utc`, in seconds.
fn offset_secs(tz: &Tz, utc: &NaiveDateTime) -> i32 {
    tz.offset_from_utc_datetime(utc).fix().local_minus_utc()
}

/// Microseconds since the epoch of the wall-clock time `n` in `tz`.
fn unlocal(n: NaiveDateTime, tz: Option<&Tz>) -> Result<i64> {
    match tz {
        None => Ok(n.and_utc().timestamp_micros()),
        Some(tz) => match tz.from_local_datetime(&n).earliest() {
            Some(d) => Ok(d.timestamp_micros()),
            // A wall-clock time skipped by a DST change: move past the gap.
            None => match tz.from_local_datetime(&(n + Duration::hours(1))).earliest() {
                Some(d) => Ok(d.timestamp_micros()),
                None => fail(format!("invalid local time {n}")),
            },
        },
    }
}

fn ts_array(a: &ArrayRef) -> Result<&TimestampMicrosecondArray> {
    a.as_any().downcast_ref().ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!(
            "expected microsecond timestamp, got {}",
            a.data_type()
        ))
    })
}

fn ts_out(values: Vec<Option<i64>>, ret: &DataType) -> ArrayRef {
    let tz = match ret {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(tz))
}

// ---------------------------------------------------------------------------
// Patterns shared by the MySQL and Joda flavours

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Year,
    Year2,
    Month,
    Day,
    DayOfYear,
    Hour24,
    Hour12,
    Minute,
    Second,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(String),
    Num(Field, usize),
    Frac(usize),
    MonthText(bool),
    WeekdayText(bool),
    AmPm,
    Offset(bool),
    ZoneId,
}

/// How a two-digit year is widened when parsing.
#[derive(Clone, Copy)]
enum Pivot {
    /// MySQL: 70–99 → 19xx, 00–69 → 20xx.
    MySql,
    /// Joda: 50–99 → 19xx, 00–49 → 20xx.
    Joda,
}

fn lit(out: &mut Vec<Tok>, c: char) {
    if let Some(Tok::Lit(s)) = out.last_mut() {
        s.push(c);
    } else {
        out.push(Tok::Lit(c.to_string()));
    }
}

/// Compiles a MySQL `date_format` pattern.
fn mysql_pattern(p: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit(&mut out, c);
            continue;
        }
        let Some(s) = chars.next() else {
            lit(&mut out, '%');
            break;
        };
        match s {
            'Y' => out.push(Tok::Num(Field::Year, 4)),
            'y' => out.push(Tok::Num(Field::Year2, 2)),
            'm' => out.push(Tok::Num(Field::Month, 2)),
            'c' => out.push(Tok::Num(Field::Month, 1)),
            'b' => out.push(Tok::MonthText(false)),
            'M' => out.push(Tok::MonthText(true)),
            'd' => out.push(Tok::Num(Field::Day, 2)),
            'e' => out.push(Tok::Num(Field::Day, 1)),
            'j' => out.push(Tok::Num(Field::DayOfYear, 3)),
            'H' => out.push(Tok::Num(Field::Hour24, 2)),
            'k' => out.push(Tok::Num(Field::Hour24, 1)),
            'h' | 'I' => out.push(Tok::Num(Field::Hour12, 2)),
            'l' => out.push(Tok::Num(Field::Hour12, 1)),
            'i' => out.push(Tok::Num(Field::Minute, 2)),
            's' | 'S' => out.push(Tok::Num(Field::Second, 2)),
            'f' => out.push(Tok::Frac(6)),
            'p' => out.push(Tok::AmPm),
            'a' => out.push(Tok::WeekdayText(false)),
            'W' => out.push(Tok::WeekdayText(true)),
            'T' => {
                out.push(Tok::Num(Field::Hour24, 2));
                lit(&mut out, ':');
                out.push(Tok::Num(Field::Minute, 2));
                lit(&mut out, ':');
                out.push(Tok::Num(Field::Second, 2));
            }
            'r' => {
                out.push(Tok::Num(Field::Hour12, 2));
                lit(&mut out, ':');
                out.push(Tok::Num(Field::Minute, 2));
                lit(&mut out, ':');
                out.push(Tok::Num(Field::Second, 2));
                lit(&mut out, ' ');
                out.push(Tok::AmPm);
            }
            'D' | 'U' | 'u' | 'V' | 'v' | 'w' | 'X' | 'x' => {
                return fail(format!("date format specifier %{s} is not supported"));
            }
            other => lit(&mut out, other),
        }
    }
    Ok(out)
}

/// Compiles a Joda-Time `DateTimeFormat` pattern.
fn joda_pattern(p: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                lit(&mut out, '\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match chars.get(i) {
                    None => return fail(format!("unterminated quote in pattern: {p}")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        lit(&mut out, '\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        lit(&mut out, ch);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            lit(&mut out, c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        i += n;
        out.push(match c {
            'y' | 'Y' | 'x' => {
                if n == 2 {
                    Tok::Num(Field::Year2, 2)
                } else {
                    Tok::Num(Field::Year, n)
                }
            }
            'M' => match n {
                1 | 2 => Tok::Num(Field::Month, n),
                3 => Tok::MonthText(false),
                _ => Tok::MonthText(true),
            },
            'd' => Tok::Num(Field::Day, n),
            'D' => Tok::Num(Field::DayOfYear, n),
            'H' => Tok::Num(Field::Hour24, n),
            'h' => Tok::Num(Field::Hour12, n),
            'm' => Tok::Num(Field::Minute, n),
            's' => Tok::Num(Field::Second, n),
            'S' => Tok::Frac(n.min(9)),
            'a' => Tok::AmPm,
            'E' => Tok::WeekdayText(n >= 4),
            'Z' => match n {
                1 => Tok::Offset(false),
                2 => Tok::Offset(true),
                _ => Tok::ZoneId,
            },
            'z' => Tok::ZoneId,
            other => return fail(format!("pattern letter '{other}' is not supported: {p}")),
        });
    }
    Ok(out)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats the wall-clock time `t` whose UTC offset is `offset` seconds.
fn format_with(toks: &[Tok], t: &NaiveDateTime, offset: i32, zone: &str) -> String {
    let mut s = String::new();
    for tok in toks {
        match tok {
            Tok::Lit(l) => s.push_str(l),
            Tok::Num(f, w) => {
                let v: i64 = match f {
                    Field::Year => t.year() as i64,
                    Field::Year2 => (t.year() as i64).rem_euclid(100),
                    Field::Month => t.month() as i64,
                    Field::Day => t.day() as i64,
                    Field::DayOfYear => t.ordinal() as i64,
                    Field::Hour24 => t.hour() as i64,
                    Field::Hour12 => match t.hour() % 12 {
                        0 => 12,
                        h => h as i64,
                    },
                    Field::Minute => t.minute() as i64,
                    Field::Second => t.second() as i64,
                };
                s.push_str(&format!("{v:0w$}"));
            }
            Tok::Frac(n) => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                s.push_str(&nanos[..*n]);
            }
            Tok::MonthText(full) => {
                let m = MONTHS[t.month0() as usize];
                s.push_str(if *full { m } else { &m[..3] });
            }
            Tok::WeekdayText(full) => {
                let d = WEEKDAYS[t.weekday().num_days_from_monday() as usize];
                s.push_str(if *full { d } else { &d[..3] });
            }
            Tok::AmPm => s.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Tok::Offset(colon) => {
                let sign = if offset < 0 { '-' } else { '+' };
                let a = offset.abs();
                let (h, m) = (a / 3600, (a % 3600) / 60);
                if *colon {
                    s.push_str(&format!("{sign}{h:02}:{m:02}"));
                } else {
                    s.push_str(&format!("{sign}{h:02}{m:02}"));
                }
            }
            Tok::ZoneId => s.push_str(zone),
        }
    }
    s
}

/// What a parse produced: the wall-clock time and, if the input named one,
/// its UTC offset in seconds (at that wall-clock time).
struct Parsed {
    time: NaiveDateTime,
    offset: Option<i32>,
}

fn parse_with(toks: &[Tok], input: &str, pivot: Pivot) -> Result<Parsed> {
    let bad = |at: usize| -> Result<Parsed> {
        fail(format!(
            "Invalid format: \"{input}\" is malformed at \"{}\"",
            &input[at.min(input.len())..]
        ))
    };
    let b = input.as_bytes();
    let mut pos = 0usize;
    let (mut year, mut month, mut day, mut doy) = (1970i64, 1i64, 1i64, None::<i64>);
    let (mut hour, mut minute, mut second, mut nanos) = (0i64, 0i64, 0i64, 0i64);
    let (mut h12, mut pm) = (None::<i64>, None::<bool>);
    let mut offset = None::<i32>;
    let mut zone: Option<Tz> = None;
    for (k, tok) in toks.iter().enumerate() {
        let next_numeric = matches!(toks.get(k + 1), Some(Tok::Num(..) | Tok::Frac(_)));
        match tok {
            Tok::Lit(l) => {
                if input[pos..].starts_with(l.as_str()) {
                    pos += l.len();
                } else {
                    return bad(pos);
                }
            }
            Tok::Num(f, w) => {
                let max = if next_numeric { (*w).max(1) } else { 9 };
                let start = pos;
                let neg = *f == Field::Year && b.get(pos) == Some(&b'-');
                if neg {
                    pos += 1;
                }
                let digits_start = pos;
                while pos < b.len() && b[pos].is_ascii_digit() && pos - digits_start < max {
                    pos += 1;
                }
                if pos == digits_start {
                    return bad(start);
                }
                let mut v: i64 = input[digits_start..pos].parse().unwrap_or(i64::MAX);
                if neg {
                    v = -v;
                }
                match f {
                    Field::Year => year = v,
                    Field::Year2 => {
                        let cut = match pivot {
                            Pivot::MySql => 70,
                            Pivot::Joda => 50,
                        };
                        year = if pos - digits_start > 2 {
                            v
                        } else if v < cut {
                            2000 + v
                        } else {
                            1900 + v
                        };
                    }
                    Field::Month => month = v,
                    Field::Day => day = v,
                    Field::DayOfYear => doy = Some(v),
                    Field::Hour24 => hour = v,
                    Field::Hour12 => h12 = Some(v),
                    Field::Minute => minute = v,
                    Field::Second => second = v,
                }
            }
            Tok::Frac(n) => {
                let max = if next_numeric { *n } else { 9 };
                let start = pos;
                while pos < b.len() && b[pos].is_ascii_digit() && pos - start < max {
                    pos += 1;
                }
                if pos == start {
                    return bad(start);
                }
                let digits = &input[start..pos];
                nanos = digits.parse::<i64>().unwrap_or(0) * 10i64.pow(9 - digits.len() as u32);
            }
            Tok::MonthText(_) => {
                let rest = &input[pos..];
                let found = MONTHS.iter().enumerate().find_map(|(i, m)| {
                    [m.len(), 3].into_iter().find_map(|n| {
                        let cand = &m[..n];
                        (rest.len() >= n && rest[..n].eq_ignore_ascii_case(cand)).then_some((i, n))
                    })
                });
                match found {
                    Some((i, n)) => {
                        month = i as i64 + 1;
                        pos += n;
                    }
                    None => return bad(pos),
                }
            }
            Tok::WeekdayText(_) => {
                let rest = &input[pos..];
                let found = WEEKDAYS.iter().find_map(|d| {
                    [d.len(), 3]
                        .into_iter()
                        .find(|&n| rest.len() >= n && rest[..n].eq_ignore_ascii_case(&d[..n]))
                });
                match found {
                    Some(n) => pos += n,
                    None => return bad(pos),
                }
            }
            Tok::AmPm => {
                let rest = &input[pos..];
                if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("AM") {
                    pm = Some(false);
                } else if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("PM") {
                    pm = Some(true);
                } else {
                    return bad(pos);
                }
                pos += 2;
            }
            Tok::Offset(_) => {
                let rest = &b[pos..];
                if rest.first() == Some(&b'Z') {
                    offset = Some(0);
                    pos += 1;
                    continue;
                }
                let sign = match rest.first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return bad(pos),
                };
                let digits: String = input[pos + 1..]
                    .chars()
                    .take(5)
                    .take_while(|c| c.is_ascii_digit() || *c == ':')
                    .collect();
                let plain: String = digits.chars().filter(|c| *c != ':').collect();
                if plain.len() != 4 && plain.len() != 2 {
                    return bad(pos);
                }
                let h: i32 = plain[..2].parse().unwrap_or(0);
                let m: i32 = if plain.len() == 4 {
                    plain[2..].parse().unwrap_or(0)
                } else {
                    0
                };
                offset = Some(sign * (h * 3600 + m * 60));
                pos += 1 + digits.len();
            }
            Tok::ZoneId => {
                let start = pos;
                while pos < b.len()
                    && (b[pos].is_ascii_alphanumeric() || b"_/+-:".contains(&b[pos]))
                {
                    pos += 1;
                }
                match parse_zone(&input[start..pos]) {
                    Ok(z) => zone = Some(z),
                    Err(_) => return bad(start),
                }
            }
        }
    }
    if pos != input.len() {
        return bad(pos);
    }
    if let Some(h) = h12 {
        if !(1..=12).contains(&h) {
            return fail(format!(
                "Cannot parse \"{input}\": hour {h} must be in [1,12]"
            ));
        }
        hour = h % 12 + if pm == Some(true) { 12 } else { 0 };
    } else if pm == Some(true) && hour < 12 {
        hour += 12;
    }
    let range = |what: &str, v: i64, lo: i64, hi: i64| -> Result<u32> {
        if (lo..=hi).contains(&v) {
            Ok(v as u32)
        } else {
            fail(format!(
                "Cannot parse \"{input}\": Value {v} for {what} must be in the range [{lo},{hi}]"
            ))
        }
    };
    let y = i32::try_from(year).or_else(|_| fail(format!("year out of range: {year}")))?;
    let date = match doy {
        Some(d) => NaiveDate::from_yo_opt(y, range("dayOfYear", d, 1, 366)?),
        None => NaiveDate::from_ymd_opt(
            y,
            range("monthOfYear", month, 1, 12)?,
            range("dayOfMonth", day, 1, 31)?,
        ),
    };
    let Some(date) = date else {
        return fail(format!("Cannot parse \"{input}\": no such date"));
    };
    let time = date
        .and_hms_nano_opt(
            range("hourOfDay", hour, 0, 23)?,
            range("minuteOfHour", minute, 0, 59)?,
            range("secondOfMinute", second, 0, 59)?,
            nanos as u32,
        )
        .ok_or_else(|| DataFusionError::Execution(format!("Cannot parse \"{input}\"")))?;
    if let (None, Some(z)) = (offset, zone) {
        match z.from_local_datetime(&time).earliest() {
            Some(d) => offset = Some(d.offset().fix().local_minus_utc()),
            None => {
                return fail(format!(
                    "Cannot parse \"{input}\": time skipped in its zone"
                ));
            }
        }
    }
    Ok(Parsed { time, offset })
}

/// Compiles a pattern from a constant or per-row argument, reusing the last.
struct PatternCache {
    last: Option<(String, Vec<Tok>)>,
    compile: fn(&str) -> Result<Vec<Tok>>,
}

impl PatternCache {
    fn new(compile: fn(&str) -> Result<Vec<Tok>>) -> Self {
        Self {
            last: None,
            compile,
        }
    }

    fn get(&mut self, p: &str) -> Result<&[Tok]> {
        if self.last.as_ref().map(|(s, _)| s.as_str()) != Some(p) {
            self.last = Some((p.to_string(), (self.compile)(p)?));
        }
        Ok(&self.last.as_ref().expect("just set").1)
    }
}

fn format_impl(args: &[ArrayRef], compile: fn(&str) -> Result<Vec<Tok>>) -> Result<ArrayRef> {
    let ts = ts_array(&args[0])?;
    let fmt = strs(&args[1])?;
    let tz = zone_of(args[0].data_type())?;
    let zone_name = match args[0].data_type() {
        DataType::Timestamp(_, Some(z)) if z.as_ref() == UTC || z.as_ref() == "+00" => "UTC".into(),
        DataType::Timestamp(_, Some(z)) => z.to_string(),
        _ => "UTC".to_string(),
    };
    let mut cache = PatternCache::new(compile);
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        let (Some(p), false) = (str_at(fmt, i), ts.is_null(i)) else {
            out.push(None);
            continue;
        };
        let us = ts.value(i);
        let toks = cache.get(p)?;
        let t = local(us, tz.as_ref())?;
        let off = match &tz {
            Some(z) => offset_secs(z, &local(us, None)?),
            None => 0,
        };
        out.push(Some(format_with(toks, &t, off, &zone_name)));
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn date_format(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    format_impl(args, mysql_pattern)
}

fn format_datetime(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    format_impl(args, joda_pattern)
}

fn parse_impl(
    args: &[ArrayRef],
    ret: &DataType,
    compile: fn(&str) -> Result<Vec<Tok>>,
    pivot: Pivot,
) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let fmt = strs(&args[1])?;
    let mut cache = PatternCache::new(compile);
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let (Some(v), Some(p)) = (str_at(s, i), str_at(fmt, i)) else {
            out.push(None);
            continue;
        };
        let parsed = parse_with(cache.get(p)?, v, pivot)?;
        let us = parsed.time.and_utc().timestamp_micros()
            - parsed.offset.unwrap_or(0) as i64 * 1_000_000;
        out.push(Some(us));
    }
    Ok(ts_out(out, ret))
}

fn date_parse(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    parse_impl(args, ret, mysql_pattern, Pivot::MySql)
}

fn parse_datetime(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    parse_impl(args, ret, joda_pattern, Pivot::Joda)
}

// ---------------------------------------------------------------------------
// ISO 8601

/// Parses an ISO 8601 date-time: `2024-01-02`, `2024-01-02T03:04`,
/// `2024-01-02T03:04:05.678+01:00`, `...Z`. A missing zone means UTC.
fn parse_iso_timestamp(s: &str) -> Result<i64> {
    let s = s.trim();
    let err = || DataFusionError::Execution(format!("Invalid format: \"{s}\""));
    let num = |p: &str| p.parse::<u32>().map_err(|_| err());
    let (date_part, rest) = match s.find(['T', 't']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let date = parse_iso_date_str(date_part).map_err(|_| err())?;
    let Some(rest) = rest else {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros());
    };
    let (time_str, zone_str) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut parts = time_str.splitn(3, ':');
    let h = num(parts.next().unwrap_or(""))?;
    let m = parts.next().map(num).transpose()?.unwrap_or(0);
    let (sec, nanos) = match parts.next() {
        Some(p) => {
            let (whole, frac) = p.split_once(['.', ',']).unwrap_or((p, ""));
            if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
                return Err(err());
            }
            let nanos = if frac.is_empty() {
                0
            } else {
                num(frac)? * 10u32.pow(9 - frac.len() as u32)
            };
            (num(whole)?, nanos)
        }
        None => (0, 0),
    };
    let t = date.and_hms_nano_opt(h, m, sec, nanos).ok_or_else(err)?;
    let offset = if zone_str.is_empty() || zone_str.eq_ignore_ascii_case("z") {
        0
    } else {
        let sign = if zone_str.starts_with('-') { -1 } else { 1 };
        let digits: String = zone_str[1..].chars().filter(|c| *c != ':').collect();
        if !(digits.len() == 2 || digits.len() == 4) || !digits.chars().all(|c| c.is_ascii_digit())
        {
            return Err(err());
        }
        let hh = num(&digits[..2])? as i64;
        let mm = if digits.len() == 4 {
            num(&digits[2..])? as i64
        } else {
            0
        };
        sign * (hh * 3600 + mm * 60)
    };
    Ok(t.and_utc().timestamp_micros() - offset * 1_000_000)
}

fn parse_iso_date_str(s: &str) -> Result<NaiveDate> {
    let bad = || DataFusionError::Execution(format!("Invalid format: \"{s}\""));
    let num = |p: &str| p.parse::<u32>().map_err(|_| bad());
    let year = |p: &str| p.parse::<i32>().map_err(|_| bad());
    let parts: Vec<&str> = s.split('-').collect();
    let (y, m, d) = match parts.as_slice() {
        [y] if y.len() == 4 => (year(y)?, 1, 1),
        [y, m] => (year(y)?, num(m)?, 1),
        [y, m, d] => (year(y)?, num(m)?, num(d)?),
        _ => return Err(bad()),
    };
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(bad)
}

fn from_iso8601_timestamp(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let out = (0..s.len())
        .map(|i| str_at(s, i).map(parse_iso_timestamp).transpose())
        .collect::<Result<Vec<_>>>()?;
    Ok(ts_out(out, ret))
}

fn from_iso8601_date(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let out = (0..s.len())
        .map(|i| {
            str_at(s, i)
                .map(|v| parse_iso_date_str(v.trim()).map(|d| (d - epoch).num_days() as i32))
                .transpose()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Date32Array::from(out)))
}

fn to_iso8601(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    if let Some(d) = args[0].as_any().downcast_ref::<Date32Array>() {
        let out: StringArray = d
            .iter()
            .map(|v| v.and_then(date32).map(|d| d.format("%Y-%m-%d").to_string()))
            .collect();
        return Ok(Arc::new(out));
    }
    let ts = ts_array(&args[0])?;
    let tz = zone_of(args[0].data_type())?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        if ts.is_null(i) {
            out.push(None);
            continue;
        }
        let us = ts.value(i);
        let t = local(us, tz.as_ref())?;
        let mut s = t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
        if let Some(z) = &tz {
            let off = offset_secs(z, &local(us, None)?);
            if off == 0 {
                s.push('Z');
            } else {
                s.push_str(&format_with(&[Tok::Offset(true)], &t, off, ""));
            }
        }
        out.push(Some(s));
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn date32(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(Duration::days(days as i64))
}

// ---------------------------------------------------------------------------
// Unix time

fn coerce_from_unixtime(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 2)?;
    if !(a[0].is_numeric() || a[0] == DataType::Null) {
        return plan_err!("unixtime must be numeric, got {}", a[0]);
    }
    let mut out = vec![DataType::Float64];
    if a.len() == 2 {
        out.push(want_string(&a[1], "zone")?);
    }
    Ok(out)
}

fn ret_from_unixtime(types: &[DataType], scalars: &[Option<&ScalarValue>]) -> Result<DataType> {
    if types.len() < 2 {
        return ret_utc_ts(types);
    }
    match scalars.get(1).copied().flatten() {
        Some(ScalarValue::Utf8(Some(z)))
        | Some(ScalarValue::LargeUtf8(Some(z)))
        | Some(ScalarValue::Utf8View(Some(z))) => {
            // Validate now so a bad zone fails at planning.
            parse_zone(z)?;
            let name = if z.eq_ignore_ascii_case("utc") || z.eq_ignore_ascii_case("z") {
                UTC.to_string()
            } else {
                z.trim().to_string()
            };
            Ok(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some(name.into()),
            ))
        }
        _ => plan_err!("from_unixtime: the zone must be a constant string"),
    }
}

fn coerce_at_timezone(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    Ok(vec![
        want_timestamp(&a[0], "timestamp")?,
        want_string(&a[1], "zone")?,
    ])
}

fn ret_at_timezone(types: &[DataType], scalars: &[Option<&ScalarValue>]) -> Result<DataType> {
    ret_from_unixtime(types, scalars)
}

/// The same instant shown in another zone; a timestamp without zone is
/// taken as UTC (the session zone).
fn at_timezone(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    let ts = ts_array(&args[0])?;
    Ok(ts_out(ts.iter().collect(), ret))
}

/// The wall-clock time of a timestamp without zone, taken in a zone: the
/// instant it names there.
fn with_timezone(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    let ts = ts_array(&args[0])?;
    let tz = match ret {
        DataType::Timestamp(_, Some(z)) => Some(parse_zone(z)?),
        _ => None,
    };
    let mut out = Vec::with_capacity(ts.len());
    for v in ts.iter() {
        out.push(match v {
            Some(us) => Some(unlocal(local(us, None)?, tz.as_ref())?),
            None => None,
        });
    }
    Ok(ts_out(out, ret))
}

fn coerce_interval(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    match &a[0] {
        DataType::Interval(_) | DataType::Duration(_) | DataType::Null => {
            Ok(vec![DataType::Interval(IntervalUnit::MonthDayNano)])
        }
        t => plan_err!("expects an interval day to second, got {t}"),
    }
}

/// Milliseconds of an interval day to second.
fn to_milliseconds(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let iv = args[0]
        .as_any()
        .downcast_ref::<IntervalMonthDayNanoArray>()
        .ok_or_else(|| DataFusionError::Internal("expected an interval".into()))?;
    let mut out = Vec::with_capacity(iv.len());
    for v in iv.iter() {
        out.push(match v {
            Some(v) if v.months != 0 => {
                return fail("to_milliseconds: the interval has months; it must be day to second");
            }
            Some(v) => Some(i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000),
            None => None,
        });
    }
    Ok(Arc::new(Int64Array::from(out)))
}

/// Seconds as weeks, days, hours, minutes and seconds, as Trino writes
/// them (`1 hour, 2 minutes, 42 seconds`).
fn human_readable_seconds(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let secs = args[0]
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| DataFusionError::Internal("expected Float64".into()))?;
    let mut out = Vec::with_capacity(secs.len());
    for v in secs.iter() {
        let Some(v) = v else {
            out.push(None);
            continue;
        };
        if !v.is_finite() {
            return fail(format!(
                "human_readable_seconds: {v} is not a number of seconds"
            ));
        }
        let mut rest = v.abs().round() as u64;
        let mut parts = Vec::new();
        for (unit, size) in [
            ("week", 604_800u64),
            ("day", 86_400),
            ("hour", 3_600),
            ("minute", 60),
            ("second", 1),
        ] {
            let n = rest / size;
            rest %= size;
            if n > 0 || (size == 1 && parts.is_empty()) {
                parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
            }
        }
        out.push(Some(parts.join(", ")));
    }
    Ok(Arc::new(StringArray::from(out)))
}

/// A duration such as `3.81 d`, `500ms` or `1.5h` as an interval day to
/// second (units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`).
fn parse_duration(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let Some(text) = str_at(s, i) else {
            out.push(None);
            continue;
        };
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = (&t[..split], t[split..].trim());
        let value: f64 = match number.parse() {
            Ok(v) if number.len() <= 40 => v,
            _ => return fail(format!("duration is not valid: {text:?}")),
        };
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3_600e9,
            "d" => 86_400e9,
            _ => return fail(format!("unknown time unit in duration {text:?}")),
        };
        let total = (value * nanos_per).round();
        if !total.is_finite() || total >= 9.2e18 {
            return fail(format!("duration is too large: {text:?}"));
        }
        let total = total as i64;
        let day = 86_400_000_000_000i64;
        out.push(Some(IntervalMonthDayNano::new(
            0,
            (total / day) as i32,
            total % day,
        )));
    }
    Ok(Arc::new(IntervalMonthDayNanoArray::from(out)))
}

fn from_unixtime(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    let secs = args[0]
        .as_any()
        .downcast_ref::<Float64Array>()
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("expected Float64".into()))?;
    let out = secs
        .iter()
        .map(|v| v.map(|s| (s * 1_000_000.0).round() as i64))
        .collect();
    Ok(ts_out(out, ret))
}

fn to_unixtime(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let ts = ts_array(&args[0])?;
    let out: Float64Array = ts.iter().map(|v| v.map(|us| us as f64 / 1e6)).collect();
    Ok(Arc::new(out))
}

// ---------------------------------------------------------------------------
// date_add / date_diff

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Fixed(i64),
    Months(i64),
}

fn unit(name: &str) -> Result<Unit> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "millisecond" => Unit::Fixed(1_000),
        "second" => Unit::Fixed(1_000_000),
        "minute" => Unit::Fixed(60_000_000),
        "hour" => Unit::Fixed(3_600_000_000),
        "day" => Unit::Fixed(86_400_000_000),
        "week" => Unit::Fixed(7 * 86_400_000_000),
        "month" => Unit::Months(1),
        "quarter" => Unit::Months(3),
        "year" => Unit::Months(12),
        other => return fail(format!("'{other}' is not a valid unit")),
    })
}

fn coerce_date_add(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 3, 3)?;
    let x = match &a[2] {
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        t => want_timestamp(t, "argument 3")?,
    };
    Ok(vec![
        want_string(&a[0], "unit")?,
        want_int(&a[1], "value")?,
        x,
    ])
}

fn coerce_date_diff(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 3, 3)?;
    let both_dates = matches!(a[1], DataType::Date32 | DataType::Date64)
        && matches!(a[2], DataType::Date32 | DataType::Date64);
    if both_dates {
        return Ok(vec![
            want_string(&a[0], "unit")?,
            DataType::Date32,
            DataType::Date32,
        ]);
    }
    let t1 = want_timestamp(&a[1], "argument 2")?;
    let t2 = want_timestamp(&a[2], "argument 3")?;
    // Both sides in one type: keep a zone when either side has one.
    let t = match (&t1, &t2) {
        (DataType::Timestamp(_, Some(_)), _) => t1.clone(),
        _ => t2.clone(),
    };
    Ok(vec![want_string(&a[0], "unit")?, t.clone(), t])
}

fn add_months(t: NaiveDateTime, months: i64) -> Result<NaiveDateTime> {
    let total = t.year() as i64 * 12 + t.month0() as i64 + months;
    let (y, m0) = (total.div_euclid(12), total.rem_euclid(12));
    let y = i32::try_from(y).or_else(|_| fail("date out of range"))?;
    let mut day = t.day();
    loop {
        if let Some(d) = NaiveDate::from_ymd_opt(y, m0 as u32 + 1, day) {
            return Ok(d.and_time(t.time()));
        }
        day -= 1;
        if day == 0 {
            return fail("date out of range");
        }
    }
}

fn date_add(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    let units = strs(&args[0])?;
    let n = ints(&args[1])?;
    if let Some(d) = args[2].as_any().downcast_ref::<Date32Array>() {
        let mut out = Vec::with_capacity(d.len());
        for i in 0..d.len() {
            let (Some(u), Some(k), false) = (str_at(units, i), int_at(n, i), d.is_null(i)) else {
                out.push(None);
                continue;
            };
            let date = date32(d.value(i)).map_or_else(|| fail("date out of range"), Ok)?;
            let t = date.and_hms_opt(0, 0, 0).expect("midnight");
            let r = match unit(u)? {
                Unit::Months(m) => add_months(t, m * k)?,
                Unit::Fixed(us) if us % 86_400_000_000 == 0 => {
                    t + Duration::days(k * (us / 86_400_000_000))
                }
                Unit::Fixed(_) => return fail(format!("'{u}' is not a valid DATE field")),
            };
            out.push(Some(
                (r.date() - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32,
            ));
        }
        return Ok(Arc::new(Date32Array::from(out)));
    }
    let ts = ts_array(&args[2])?;
    let tz = zone_of(args[2].data_type())?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        let (Some(u), Some(k), false) = (str_at(units, i), int_at(n, i), ts.is_null(i)) else {
            out.push(None);
            continue;
        };
        let us = ts.value(i);
        let v = match unit(u)? {
            // Days and weeks follow the calendar in the value's zone.
            Unit::Fixed(step) if step >= 86_400_000_000 && tz.is_some() => {
                let t = local(us, tz.as_ref())?;
                unlocal(t + Duration::microseconds(step * k), tz.as_ref())?
            }
            Unit::Fixed(step) => us + step * k,
            Unit::Months(m) => {
                let t = local(us, tz.as_ref())?;
                unlocal(add_months(t, m * k)?, tz.as_ref())?
            }
        };
        out.push(Some(v));
    }
    Ok(ts_out(out, ret))
}

fn coerce_date_trunc(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    let x = match &a[1] {
        DataType::Date32 | DataType::Date64 => DataType::Date32,
        t => want_timestamp(t, "argument 2")?,
    };
    Ok(vec![want_string(&a[0], "unit")?, x])
}

/// Truncates a wall-clock time to `unit`; weeks start on Monday.
fn trunc(t: NaiveDateTime, unit: &str) -> Result<NaiveDateTime> {
    let d = t.date();
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight");
    Ok(match unit.trim().to_ascii_lowercase().as_str() {
        "millisecond" => t
            .with_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
            .expect("valid"),
        "second" => t.with_nanosecond(0).expect("valid"),
        "minute" => d.and_hms_opt(t.hour(), t.minute(), 0).expect("valid"),
        "hour" => d.and_hms_opt(t.hour(), 0, 0).expect("valid"),
        "day" => midnight(d),
        "week" => midnight(d - Duration::days(d.weekday().num_days_from_monday() as i64)),
        "month" => midnight(d.with_day(1).expect("day 1")),
        "quarter" => {
            midnight(NaiveDate::from_ymd_opt(d.year(), d.month0() / 3 * 3 + 1, 1).expect("valid"))
        }
        "year" => midnight(NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("valid")),
        other => return fail(format!("'{other}' is not a valid unit")),
    })
}

fn date_trunc(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    let units = strs(&args[0])?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    if let Some(d) = args[1].as_any().downcast_ref::<Date32Array>() {
        let mut out = Vec::with_capacity(d.len());
        for i in 0..d.len() {
            let (Some(u), false) = (str_at(units, i), d.is_null(i)) else {
                out.push(None);
                continue;
            };
            let date = date32(d.value(i)).map_or_else(|| fail("date out of range"), Ok)?;
            let t = trunc(date.and_hms_opt(0, 0, 0).expect("midnight"), u)?;
            out.push(Some((t.date() - epoch).num_days() as i32));
        }
        return Ok(Arc::new(Date32Array::from(out)));
    }
    let ts = ts_array(&args[1])?;
    let tz = zone_of(args[1].data_type())?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        let (Some(u), false) = (str_at(units, i), ts.is_null(i)) else {
            out.push(None);
            continue;
        };
        let t = local(ts.value(i), tz.as_ref())?;
        out.push(Some(unlocal(trunc(t, u)?, tz.as_ref())?));
    }
    Ok(ts_out(out, ret))
}

fn months_between(a: NaiveDateTime, b: NaiveDateTime) -> Result<i64> {
    let mut m = (b.year() as i64 - a.year() as i64) * 12 + b.month() as i64 - a.month() as i64;
    if m > 0 && add_months(a, m)? > b {
        m -= 1;
    } else if m < 0 && add_months(a, m)? < b {
        m += 1;
    }
    Ok(m)
}

fn date_diff(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let units = strs(&args[0])?;
    let mut out = Vec::with_capacity(units.len());
    if let (Some(a), Some(b)) = (
        args[1].as_any().downcast_ref::<Date32Array>(),
        args[2].as_any().downcast_ref::<Date32Array>(),
    ) {
        for i in 0..a.len() {
            let (Some(u), false, false) = (str_at(units, i), a.is_null(i), b.is_null(i)) else {
                out.push(None);
                continue;
            };
            let (x, y) = (a.value(i) as i64, b.value(i) as i64);
            out.push(Some(match unit(u)? {
                Unit::Fixed(step) if step % 86_400_000_000 == 0 => {
                    (y - x) / (step / 86_400_000_000)
                }
                Unit::Fixed(_) => return fail(format!("'{u}' is not a valid DATE field")),
                Unit::Months(m) => {
                    let d = |v: i64| {
                        date32(v as i32)
                            .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
                            .map_or_else(|| fail("date out of range"), Ok)
                    };
                    months_between(d(x)?, d(y)?)? / m
                }
            }));
        }
        return Ok(Arc::new(Int64Array::from(out)));
    }
    let a = ts_array(&args[1])?;
    let b = ts_array(&args[2])?;
    let tz = zone_of(args[1].data_type())?;
    for i in 0..a.len() {
        let (Some(u), false, false) = (str_at(units, i), a.is_null(i), b.is_null(i)) else {
            out.push(None);
            continue;
        };
        let (x, y) = (a.value(i), b.value(i));
        out.push(Some(match unit(u)? {
            Unit::Fixed(step) => (y - x) / step,
            Unit::Months(m) => months_between(local(x, tz.as_ref())?, local(y, tz.as_ref())?)? / m,
        }));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

fn last_day(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let ts = ts_array(&args[0])?;
    let tz = zone_of(args[0].data_type())?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        if ts.is_null(i) {
            out.push(None);
            continue;
        }
        let t = local(ts.value(i), tz.as_ref())?;
        let first = t.date().with_day(1).expect("day 1");
        let next = add_months(first.and_hms_opt(0, 0, 0).expect("midnight"), 1)?;
        out.push(Some((next.date() - epoch).num_days() as i32 - 1));
    }
    Ok(Arc::new(Date32Array::from(out)))
}

// ---------------------------------------------------------------------------
// Field extraction

const F_YEAR: u8 = 0;
const F_QUARTER: u8 = 1;
const F_MONTH: u8 = 2;
const F_WEEK: u8 = 3;
const F_YOW: u8 = 4;
const F_DAY: u8 = 5;
const F_DOW: u8 = 6;
const F_DOY: u8 = 7;
const F_HOUR: u8 = 8;
const F_MINUTE: u8 = 9;
const F_SECOND: u8 = 10;
const F_MILLI: u8 = 11;

fn extract<const F: u8>(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let ts = ts_array(&args[0])?;
    let tz = zone_of(args[0].data_type())?;
    let mut out = Vec::with_capacity(ts.len());
    for i in 0..ts.len() {
        if ts.is_null(i) {
            out.push(None);
            continue;
        }
        let t = local(ts.value(i), tz.as_ref())?;
        out.push(Some(match F {
            F_YEAR => t.year() as i64,
            F_QUARTER => (t.month0() / 3 + 1) as i64,
            F_MONTH => t.month() as i64,
            F_WEEK => t.iso_week().week() as i64,
            F_YOW => t.iso_week().year() as i64,
            F_DAY => t.day() as i64,
            F_DOW => t.weekday().number_from_monday() as i64,
            F_DOY => t.ordinal() as i64,
            F_HOUR => t.hour() as i64,
            F_MINUTE => t.minute() as i64,
            F_SECOND => t.second() as i64,
            _ => (t.nanosecond() / 1_000_000) as i64,
        }));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{ctx, err, one};

    #[tokio::test]
    async fn mysql_format_and_parse() {
        let c = ctx();
        assert_eq!(
            one(
                &c,
                "SELECT date_format(TIMESTAMP '2024-03-05 14:07:09.123456', '%Y-%m-%d %H:%i:%s.%f')"
            )
            .await,
            "2024-03-05 14:07:09.123456"
        );
        assert_eq!(
            one(&c, "SELECT date_format(TIMESTAMP '2024-03-05 14:07:09', '%b %e %y %h:%i %p %a %W %M %j %c %T %r')").await,
            "Mar 5 24 02:07 PM Tue Tuesday March 065 3 14:07:09 02:07:09 PM"
        );
        assert_eq!(
            one(
                &c,
                "SELECT CAST(date_parse('2024-03-05 14:07:09', '%Y-%m-%d %H:%i:%s') AS VARCHAR)"
            )
            .await,
            "2024-03-05T14:07:09"
        );
        assert_eq!(
            one(
                &c,
                "SELECT CAST(date_parse('05/Mar/99 2:07:09 PM', '%d/%b/%y %l:%i:%s %p') AS VARCHAR)"
            )
            .await,
            "1999-03-05T14:07:09"
        );
        assert_eq!(
            one(
                &c,
                "SELECT CAST(date_parse('01-02-03', '%y-%m-%d') AS VARCHAR)"
            )
            .await,
            "2001-02-03T00:00:00"
        );
        assert_eq!(one(&c, "SELECT date_parse(NULL, '%Y')").await, "NULL");
        let e = err(&c, "SELECT date_parse('2024-13-01', '%Y-%m-%d')").await;
        assert!(e.contains("monthOfYear"), "{e}");
        let e = err(&c, "SELECT date_parse('2024-01-01x', '%Y-%m-%d')").await;
        assert!(e.contains("malformed"), "{e}");
        let e = err(
            &c,
            "SELECT date_format(TIMESTAMP '2024-01-01 00:00:00', '%U')",
        )
        .await;
        assert!(e.contains("not supported"), "{e}");
    }

    #[tokio::test]
    async fn joda_format_and_parse() {
        let c = ctx();
        assert_eq!(
            one(&c, "SELECT format_datetime(TIMESTAMP '2024-03-05 14:07:09.123', 'yyyy-MM-dd''T''HH:mm:ss.SSS EEE MMM a')").await,
            "2024-03-05T14:07:09.123 Tue Mar PM"
        );
        assert_eq!(
            one(
                &c,
                "SELECT to_iso8601(parse_datetime('2024-03-05 14:07 +0100', 'yyyy-MM-dd HH:mm Z'))"
            )
            .await,
            "2024-03-05T13:07:00.000Z"
        );
        assert_eq!(
            one(
                &c,
                "SELECT format_datetime(from_unixtime(0, 'Asia/Kolkata'), 'yyyy-MM-dd HH:mm ZZ')"
            )
            .await,
            "1970-01-01 05:30 +05:30"
        );
        let e = err(
            &c,
            "SELECT format_datetime(TIMESTAMP '2024-01-01 00:00:00', 'yyyy ''oops')",
        )
        .await;
        assert!(e.contains("unterminated"), "{e}");
    }

    #[tokio::test]
    async fn iso8601_and_unixtime() {
        let c = ctx();
        assert_eq!(
            one(
                &c,
                "SELECT to_iso8601(from_iso8601_timestamp('2024-03-05T14:07:09.5+02:00'))"
            )
            .await,
            "2024-03-05T12:07:09.500Z"
        );
        assert_eq!(
            one(&c, "SELECT to_iso8601(from_iso8601_date('2024-03-05'))").await,
            "2024-03-05"
        );
        assert_eq!(
            one(&c, "SELECT to_iso8601(TIMESTAMP '2024-03-05 01:02:03')").await,
            "2024-03-05T01:02:03.000"
        );
        assert_eq!(
            one(&c, "SELECT to_unixtime(from_unixtime(1700000000.5))").await,
            "1700000000.5"
        );
        assert_eq!(
            one(
                &c,
                "SELECT to_iso8601(from_unixtime(0, 'America/New_York'))"
            )
            .await,
            "1969-12-31T19:00:00.000-05:00"
        );
        assert_eq!(
            one(&c, "SELECT to_unixtime(DATE '1970-01-02')").await,
            "86400.0"
        );
        let e = err(&c, "SELECT from_iso8601_timestamp('yesterday')").await;
        assert!(e.contains("Invalid format"), "{e}");
        let e = err(&c, "SELECT from_unixtime(0, 'Mars/Base')").await;
        assert!(e.contains("unknown time zone"), "{e}");
    }

    #[tokio::test]
    async fn add_and_diff() {
        let c = ctx();
        assert_eq!(
            one(
                &c,
                "SELECT CAST(date_add('month', 1, TIMESTAMP '2024-01-31 10:00:00') AS VARCHAR)"
            )
            .await,
            "2024-02-29T10:00:00"
        );
        assert_eq!(
            one(
                &c,
                "SELECT CAST(date_add('day', -1, DATE '2024-03-01') AS VARCHAR)"
            )
            .await,
            "2024-02-29"
        );
        assert_eq!(
            one(
                &c,
                "SELECT CAST(date_add('hour', 5, TIMESTAMP '2024-01-01 22:00:00') AS VARCHAR)"
            )
            .await,
            "2024-01-02T03:00:00"
        );
        assert_eq!(
            one(&c, "SELECT date_diff('month', TIMESTAMP '2024-01-31 00:00:00', TIMESTAMP '2024-02-29 00:00:00')").await,
            "1"
        );
        assert_eq!(
            one(
                &c,
                "SELECT date_diff('month', DATE '2024-01-15', DATE '2024-03-15')"
            )
            .await,
            "2"
        );
        assert_eq!(
            one(&c, "SELECT date_diff('day', TIMESTAMP '2024-01-03 00:00:00', TIMESTAMP '2024-01-01 12:00:00')").await,
            "-1"
        );
        assert_eq!(
            one(
                &c,
                "SELECT date_diff('year', DATE '2020-03-01', DATE '2021-02-28')"
            )
            .await,
            "0"
        );
        assert_eq!(
            one(
                &c,
                "SELECT date_diff('hour', DATE '2024-01-01', TIMESTAMP '2024-01-01 05:00:00')"
            )
            .await,
            "5"
        );
        let e = err(&c, "SELECT date_add('fortnight', 1, DATE '2024-01-01')").await;
        assert!(e.contains("not a valid unit"), "{e}");
    }

    #[tokio::test]
    async fn truncation() {
        let c = ctx();
        let cases = [
            (
                "week",
                "TIMESTAMP '2024-01-07 10:11:12'",
                "2024-01-01T00:00:00",
            ),
            (
                "quarter",
                "TIMESTAMP '2024-05-07 10:11:12'",
                "2024-04-01T00:00:00",
            ),
            (
                "hour",
                "TIMESTAMP '2024-05-07 10:11:12'",
                "2024-05-07T10:00:00",
            ),
            ("month", "DATE '2024-05-17'", "2024-05-01"),
            ("year", "DATE '2024-05-17'", "2024-01-01"),
        ];
        for (unit, value, want) in cases {
            let q = format!("SELECT CAST(date_trunc('{unit}', {value}) AS VARCHAR)");
            assert_eq!(one(&c, &q).await, want, "{q}");
        }
        // Truncation happens in the value's zone: Tokyo midnight is 15:00 UTC.
        assert_eq!(
            one(
                &c,
                "SELECT to_iso8601(date_trunc('day', from_unixtime(0, 'Asia/Tokyo')))"
            )
            .await,
            "1970-01-01T00:00:00.000+09:00"
        );
        assert!(
            err(&c, "SELECT date_trunc('decade', DATE '2024-01-01')")
                .await
                .contains("not a valid unit")
        );
    }

    #[tokio::test]
    async fn fields() {
        let c = ctx();
        let q = "SELECT year(x), quarter(x), month(x), week(x), day(x), day_of_week(x), dow(x), day_of_year(x), hour(x), minute(x), second(x), millisecond(x) FROM (SELECT TIMESTAMP '2024-01-07 13:14:15.678' AS x)";
        let rows = super::super::test_util::run(&c, q).await.unwrap();
        assert_eq!(
            rows[0],
            [
                "2024", "1", "1", "1", "7", "7", "7", "7", "13", "14", "15", "678"
            ]
        );
        assert_eq!(
            one(&c, "SELECT hour(from_unixtime(0, 'Asia/Tokyo'))").await,
            "9"
        );
        assert_eq!(
            one(
                &c,
                "SELECT CAST(last_day_of_month(DATE '2024-02-10') AS VARCHAR)"
            )
            .await,
            "2024-02-29"
        );
        assert_eq!(one(&c, "SELECT year(CAST(NULL AS DATE))").await, "NULL");
    }
}
