//! Firehose S3 prefix templates.
//!
//! A prefix is text with `!{namespace:value}` expressions:
//!
//! - `!{timestamp:<Java DateTimeFormatter pattern>}`: the record's arrival
//!   time, in UTC (e.g. `!{timestamp:yyyy/MM/dd/HH}`, or Hive style
//!   `year=!{timestamp:yyyy}/`).
//! - `!{partitionKeyFromQuery:<key>}`: a key extracted from the record by the
//!   stream's JQ `MetadataExtractionQuery`.
//! - `!{firehose:error-output-type}` (error prefix only) and
//!   `!{firehose:random-string}` (11 characters; derived from the record's
//!   write-ahead-log position so a replay renders the same text).
//!
//! Rules follow Firehose: `!{` only opens an expression, `error-output-type`
//! belongs only in the error prefix and `partitionKeyFrom*` never does, and a
//! prefix is at most 512 characters once evaluated.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The longest an evaluated prefix may be.
pub(crate) const MAX_EVALUATED_LEN: usize = 512;

/// Which prefix a template is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixKind {
    /// `Prefix`.
    Data,
    /// `ErrorOutputPrefix`.
    Error,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Timestamp(Vec<DateItem>),
    QueryKey(String),
    ErrorOutputType,
    RandomString,
}

#[derive(Debug, Clone, PartialEq)]
enum DateItem {
    Literal(String),
    Year(usize),
    Month(usize),
    Day(usize),
    DayOfYear(usize),
    Hour24(usize),
    Hour12(usize),
    Minute(usize),
    Second(usize),
    Fraction(usize),
    AmPm,
    DayName(usize),
}

/// A parsed prefix template.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixTemplate {
    parts: Vec<Part>,
}

/// What a template is rendered with.
#[derive(Clone, Copy)]
pub struct RenderContext<'a> {
    /// The timestamp for `!{timestamp:...}`.
    pub time: DateTime<Utc>,
    /// Looks up `!{partitionKeyFromQuery:key}`.
    pub keys: &'a dyn Fn(&str) -> Option<String>,
    /// The value of `!{firehose:error-output-type}`.
    pub error_output_type: Option<&'a str>,
    /// Seed for `!{firehose:random-string}`.
    pub random_seed: u64,
}

/// Why a template could not be rendered for one record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The record has no value for a partition key.
    #[error("partition key {0:?} is missing from the record (the JQ query gave null or nothing)")]
    MissingKey(String),
    /// The evaluated prefix is too long.
    #[error("the evaluated prefix is {0} characters long; at most 512 are allowed")]
    TooLong(usize),
}

impl PrefixTemplate {
    /// Parses a template; the error names what is wrong.
    pub fn parse(text: &str, kind: PrefixKind) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("!{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated expression in {text:?}: '!{{' has no '}}'"))?;
            let expr = &after[..end];
            let (namespace, value) = expr.split_once(':').ok_or_else(|| {
                format!("expression '!{{{expr}}}' in {text:?} must be '!{{namespace:value}}'")
            })?;
            let part = match namespace {
                "timestamp" => Part::Timestamp(parse_date_pattern(value)?),
                "partitionKeyFromQuery" => {
                    if kind == PrefixKind::Error {
                        return Err(format!(
                            "'!{{partitionKeyFromQuery:{value}}}' is not allowed in ErrorOutputPrefix"
                        ));
                    }
                    if value.is_empty() {
                        return Err("'!{partitionKeyFromQuery:}' needs a key name".into());
                    }
                    Part::QueryKey(value.to_string())
                }
                "partitionKeyFromLambda" => {
                    return Err(
                        "'!{partitionKeyFromLambda:...}' needs a Lambda processor, which lakehose does not run; use partitionKeyFromQuery with a MetadataExtraction JQ query".into(),
                    );
                }
                "firehose" => match value {
                    "error-output-type" => {
                        if kind == PrefixKind::Data {
                            return Err(
                                "'!{firehose:error-output-type}' is only allowed in ErrorOutputPrefix".into(),
                            );
                        }
                        Part::ErrorOutputType
                    }
                    "random-string" => Part::RandomString,
                    other => {
                        return Err(format!(
                            "unknown firehose expression '!{{firehose:{other}}}' (expected error-output-type or random-string)"
                        ));
                    }
                },
                other => {
                    return Err(format!(
                        "unknown namespace {other:?} in '!{{{expr}}}' (expected timestamp, partitionKeyFromQuery or firehose)"
                    ));
                }
            };
            parts.push(part);
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        let template = Self { parts };
        if kind == PrefixKind::Error
            && template.has_expressions()
            && !template.parts.contains(&Part::ErrorOutputType)
        {
            return Err(
                "ErrorOutputPrefix uses expressions, so it must contain '!{firehose:error-output-type}'".into(),
            );
        }
        Ok(template)
    }

    /// Whether the template has any `!{...}` expression.
    pub(crate) fn has_expressions(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Literal(_)))
    }

    /// Whether the template has a `!{timestamp:...}` expression.
    pub(crate) fn has_timestamp(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Timestamp(_)))
    }

    /// Whether the template has `!{firehose:random-string}` (which renders
    /// differently for every record).
    pub(crate) fn has_random_string(&self) -> bool {
        self.parts.contains(&Part::RandomString)
    }

    /// The partition keys the template refers to.
    pub(crate) fn query_keys(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::QueryKey(k) => Some(k.as_str()),
            _ => None,
        })
    }

    /// Appends Firehose's default time prefix, `!{timestamp:yyyy/MM/dd/HH/}`,
    /// (after a `/` when the text does not end in one).
    pub fn with_default_time_suffix(mut self) -> Self {
        if let Some(Part::Literal(last)) = self.parts.last()
            && !last.ends_with('/')
        {
            self.parts.push(Part::Literal("/".into()));
        }
        self.parts.push(Part::Timestamp(
            parse_date_pattern("yyyy/MM/dd/HH/").unwrap_or_default(),
        ));
        self
    }

    /// Renders the template.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(64);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Timestamp(items) => format_date(&mut out, items, ctx.time),
                Part::QueryKey(key) => match (ctx.keys)(key) {
                    Some(v) => out.push_str(&v),
                    None => return Err(RenderError::MissingKey(key.clone())),
                },
                Part::ErrorOutputType => {
                    out.push_str(ctx.error_output_type.unwrap_or("processing-failed"))
                }
                Part::RandomString => push_random_string(&mut out, ctx.random_seed),
            }
        }
        if out.len() > MAX_EVALUATED_LEN {
            return Err(RenderError::TooLong(out.len()));
        }
        Ok(out)
    }
}

/// 11 lowercase alphanumerics from a seed (splitmix64), deterministic.
fn push_random_string(out: &mut String, seed: u64) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    for _ in 0..11 {
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        out.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
    }
}

/// Parses the subset of Java's `DateTimeFormatter` patterns used in S3
/// prefixes: `y M d D H h m s S a E`, quoted literals (`'T'`, `''`) and any
/// other non-letter as itself.
fn parse_date_pattern(pattern: &str) -> Result<Vec<DateItem>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; '' is a single quote.
            if chars.get(i + 1) == Some(&'\'') {
                items.push(DateItem::Literal("'".into()));
                i += 2;
                continue;
            }
            let mut lit = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "unterminated quote in timestamp pattern {pattern:?}"
                        ));
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        lit.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        lit.push(ch);
                        i += 1;
                    }
                }
            }
            items.push(DateItem::Literal(lit));
            continue;
        }
        if c.is_ascii_alphabetic() {
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            let item = match c {
                'y' | 'u' => DateItem::Year(n),
                'M' | 'L' => {
                    if n > 2 {
                        return Err(format!(
                            "month names ({}) are not supported in timestamp pattern {pattern:?}; use MM",
                            "M".repeat(n)
                        ));
                    }
                    DateItem::Month(n)
                }
                'd' => DateItem::Day(n),
                'D' => DateItem::DayOfYear(n),
                'H' => DateItem::Hour24(n),
                'h' => DateItem::Hour12(n),
                'm' => DateItem::Minute(n),
                's' => DateItem::Second(n),
                'S' => DateItem::Fraction(n),
                'a' => DateItem::AmPm,
                'E' => DateItem::DayName(n),
                other => {
                    return Err(format!(
                        "unsupported letter {other:?} in timestamp pattern {pattern:?} (supported: y M d D H h m s S a E and quoted text)"
                    ));
                }
            };
            items.push(item);
            i += n;
            continue;
        }
        items.push(DateItem::Literal(c.to_string()));
        i += 1;
    }
    Ok(items)
}

fn format_date(out: &mut String, items: &[DateItem], t: DateTime<Utc>) {
    let pad = |out: &mut String, v: u32, width: usize| {
        let _ = write!(out, "{v:0width$}");
    };
    for item in items {
        match item {
            DateItem::Literal(s) => out.push_str(s),
            DateItem::Year(2) => pad(out, (t.year().rem_euclid(100)) as u32, 2),
            DateItem::Year(n) => {
                let _ = write!(out, "{:0width$}", t.year(), width = *n);
            }
            DateItem::Month(n) => pad(out, t.month(), *n),
            DateItem::Day(n) => pad(out, t.day(), *n),
            DateItem::DayOfYear(n) => pad(out, t.ordinal(), *n),
            DateItem::Hour24(n) => pad(out, t.hour(), *n),
            DateItem::Hour12(n) => {
                let h = t.hour() % 12;
                pad(out, if h == 0 { 12 } else { h }, *n)
            }
            DateItem::Minute(n) => pad(out, t.minute(), *n),
            DateItem::Second(n) => pad(out, t.second(), *n),
            DateItem::Fraction(n) => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let digits = (*n).min(9);
                out.push_str(&nanos[..digits]);
                for _ in digits..*n {
                    out.push('0');
                }
            }
            DateItem::AmPm => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            DateItem::DayName(n) => {
                let full = match t.weekday() {
                    chrono::Weekday::Mon => "Monday",
                    chrono::Weekday::Tue => "Tuesday",
                    chrono::Weekday::Wed => "Wednesday",
                    chrono::Weekday::Thu => "Thursday",
                    chrono::Weekday::Fri => "Friday",
                    chrono::Weekday::Sat => "Saturday",
                    chrono::Weekday::Sun => "Sunday",
                };
                out.push_str(if *n >= 4 { full } else { &full[..3] });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 7, 15, 4, 9).unwrap() + chrono::Duration::milliseconds(123)
    }

    fn render(tpl: &str, kind: PrefixKind) -> Result<String, RenderError> {
        let keys = |k: &str| match k {
            "service" => Some("checkout".to_string()),
            "level" => Some("ERROR".to_string()),
            _ => None,
        };
        PrefixTemplate::parse(tpl, kind)
            .unwrap()
            .render(&RenderContext {
                time: t(),
                keys: &keys,
                error_output_type: Some("format-conversion-failed"),
                random_seed: 42,
            })
    }

    #[test]
    fn renders_timestamps_and_keys() {
        assert_eq!(
            render(
                "logs/service=!{partitionKeyFromQuery:service}/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/",
                PrefixKind::Data
            )
            .unwrap(),
            "logs/service=checkout/dt=2026-03-07/hour=15/"
        );
        assert_eq!(
            render("!{timestamp:yyyy/MM/dd/HH/}", PrefixKind::Data).unwrap(),
            "2026/03/07/15/"
        );
        assert_eq!(
            render(
                "!{timestamp:yy-M-d'T'hh:mm:ss.SSS a EEE D ''}",
                PrefixKind::Data
            )
            .unwrap(),
            "26-3-7T03:04:09.123 PM Sat 66 '"
        );
    }

    #[test]
    fn renders_error_prefix_and_random_string() {
        let a = render(
            "errors/!{firehose:error-output-type}/!{firehose:random-string}/",
            PrefixKind::Error,
        )
        .unwrap();
        assert!(a.starts_with("errors/format-conversion-failed/"));
        assert_eq!(a.len(), "errors/format-conversion-failed/".len() + 12);
        // Deterministic for the same seed.
        assert_eq!(
            a,
            render(
                "errors/!{firehose:error-output-type}/!{firehose:random-string}/",
                PrefixKind::Error
            )
            .unwrap()
        );
    }

    #[test]
    fn missing_key_is_an_error() {
        assert_eq!(
            render("x=!{partitionKeyFromQuery:nope}/", PrefixKind::Data),
            Err(RenderError::MissingKey("nope".into()))
        );
    }

    #[test]
    fn rejects_invalid_templates() {
        for (tpl, kind, needle) in [
            ("a/!{timestamp:yyyy", PrefixKind::Data, "unterminated"),
            ("a/!{nope:x}/", PrefixKind::Data, "unknown namespace"),
            (
                "!{firehose:error-output-type}/",
                PrefixKind::Data,
                "only allowed",
            ),
            (
                "!{partitionKeyFromQuery:a}/",
                PrefixKind::Error,
                "not allowed",
            ),
            ("err/!{timestamp:yyyy}/", PrefixKind::Error, "must contain"),
            (
                "!{timestamp:yyyy-QQ}",
                PrefixKind::Data,
                "unsupported letter",
            ),
            ("!{partitionKeyFromLambda:a}", PrefixKind::Data, "Lambda"),
        ] {
            let err = PrefixTemplate::parse(tpl, kind).unwrap_err();
            assert!(err.contains(needle), "{tpl}: {err}");
        }
    }

    #[test]
    fn default_time_suffix() {
        let tpl = PrefixTemplate::parse("myprefix", PrefixKind::Data)
            .unwrap()
            .with_default_time_suffix();
        assert!(tpl.has_timestamp());
        let keys = |_: &str| None;
        let ctx = RenderContext {
            time: t(),
            keys: &keys,
            error_output_type: None,
            random_seed: 0,
        };
        assert_eq!(tpl.render(&ctx).unwrap(), "myprefix/2026/03/07/15/");
        let empty = PrefixTemplate::parse("", PrefixKind::Data)
            .unwrap()
            .with_default_time_suffix();
        assert_eq!(empty.render(&ctx).unwrap(), "2026/03/07/15/");
    }
}
