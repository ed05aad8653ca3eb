//! Bound parameters of the extended query protocol, turned into SQL
//! literals that replace `$n` in the statement text.

use chrono::{DateTime, NaiveDate};
use pgwire::api::Type;
use pgwire::api::results::FieldFormat;

use lakehose_query::sql_text::{Placeholder, quote_literal};

/// Why a parameter could not be turned into a literal.
#[derive(Debug)]
pub(crate) struct ParamError {
    /// SQLSTATE.
    pub code: &'static str,
    /// Message for the client.
    pub message: String,
}

fn invalid(number: usize, ty: &Type, why: impl std::fmt::Display) -> ParamError {
    ParamError {
        code: "22P02",
        message: format!(
            "invalid value for parameter ${number} of type {}: {why}",
            ty.name()
        ),
    }
}

/// The Postgres type named in a cast such as `$1::int4` or
/// `CAST($1 AS bigint)`.
pub(crate) fn type_from_name(name: &str) -> Option<Type> {
    let name = name.trim().to_lowercase();
    let name = name
        .split('(')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    Some(match name.as_str() {
        "bool" | "boolean" => Type::BOOL,
        "int2" | "smallint" | "tinyint" => Type::INT2,
        "int4" | "int" | "integer" => Type::INT4,
        "int8" | "bigint" => Type::INT8,
        "float4" | "real" | "float" => Type::FLOAT4,
        "float8" | "double precision" | "double" => Type::FLOAT8,
        "numeric" | "decimal" => Type::NUMERIC,
        "text" | "string" => Type::TEXT,
        "varchar" | "character varying" => Type::VARCHAR,
        "char" | "character" | "bpchar" => Type::BPCHAR,
        "name" => Type::NAME,
        "bytea" | "varbinary" | "binary" => Type::BYTEA,
        "date" => Type::DATE,
        "timestamp" | "timestamp without time zone" => Type::TIMESTAMP,
        "timestamptz" | "timestamp with time zone" => Type::TIMESTAMPTZ,
        "time" | "time without time zone" => Type::TIME,
        "interval" => Type::INTERVAL,
        "json" => Type::JSON,
        "jsonb" => Type::JSONB,
        "uuid" => Type::UUID,
        _ => return None,
    })
}

/// Guesses the types of a statement's untyped parameters from their
/// surroundings: an explicit cast right after (`$1::int8`), an enclosing
/// `CAST($1 AS type)`, or `LIMIT $1` / `OFFSET $1`. Other parameters are
/// `text`, the type Postgres also gives to unknown literals.
pub(crate) fn infer_types(sql: &str, placeholders: &[Placeholder], count: usize) -> Vec<Type> {
    let mut types: Vec<Option<Type>> = vec![None; count];
    for p in placeholders {
        let Some(slot) = p.number.checked_sub(1).and_then(|i| types.get_mut(i)) else {
            continue;
        };
        if slot.is_some() {
            continue;
        }
        let after = &sql[p.end..];
        let before = &sql[..p.start];
        if let Some(rest) = after.trim_start().strip_prefix("::") {
            *slot = type_from_name(&cast_target(rest));
        } else if let Some(name) = enclosing_cast(before, after) {
            *slot = type_from_name(&name);
        } else if ends_with_keyword(before, &["limit", "offset", "fetch first", "fetch next"]) {
            *slot = Some(Type::INT8);
        }
    }
    types.into_iter().map(|t| t.unwrap_or(Type::TEXT)).collect()
}

/// The type name at the start of `rest` (after `::`).
fn cast_target(rest: &str) -> String {
    let rest = rest.trim_start();
    let lower = rest.to_lowercase();
    for long in [
        "double precision",
        "character varying",
        "timestamp with time zone",
        "timestamp without time zone",
        "time without time zone",
    ] {
        if lower.starts_with(long) {
            return long.to_string();
        }
    }
    rest.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// For `CAST($1 AS type)`: the type name.
fn enclosing_cast(before: &str, after: &str) -> Option<String> {
    let before = before
        .trim_end()
        .strip_suffix('(')?
        .trim_end()
        .to_lowercase();
    if !(before.ends_with("cast") || before.ends_with("try_cast")) {
        return None;
    }
    let after = after.trim_start();
    let lower = after.to_lowercase();
    let rest = lower.strip_prefix("as")?;
    let end = rest.find(')')?;
    Some(rest[..end].trim().to_string())
}

fn ends_with_keyword(before: &str, keywords: &[&str]) -> bool {
    let lower = before.trim_end().to_lowercase();
    keywords.iter().any(|kw| {
        lower.ends_with(kw)
            && !lower[..lower.len() - kw.len()]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// SQL spelling of a Postgres type for `CAST(... AS ...)`.
fn sql_type(ty: &Type) -> &'static str {
    match *ty {
        Type::BOOL => "BOOLEAN",
        Type::INT2 => "SMALLINT",
        Type::INT4 => "INTEGER",
        Type::INT8 => "BIGINT",
        Type::FLOAT4 => "REAL",
        Type::FLOAT8 => "DOUBLE",
        Type::DATE => "DATE",
        Type::TIMESTAMP | Type::TIMESTAMPTZ => "TIMESTAMP",
        Type::TIME => "TIME",
        Type::BYTEA => "BYTEA",
        _ => "VARCHAR",
    }
}

/// The literal used for a parameter while describing a statement (no value
/// is bound yet): a typed NULL, or `0` where only a number is allowed.
pub(crate) fn describe_literal(ty: &Type, in_limit: bool) -> String {
    if in_limit {
        return "0".to_string();
    }
    match *ty {
        Type::NUMERIC => "CAST(NULL AS DECIMAL(38, 10))".to_string(),
        Type::INTERVAL => "NULL".to_string(),
        _ => format!("CAST(NULL AS {})", sql_type(ty)),
    }
}

/// Whether the placeholder follows `LIMIT`/`OFFSET`.
pub(crate) fn in_limit_clause(sql: &str, p: &Placeholder) -> bool {
    ends_with_keyword(
        &sql[..p.start],
        &["limit", "offset", "fetch first", "fetch next"],
    )
}

fn int_literal(n: i64, ty: &Type) -> String {
    let text = if n < 0 {
        format!("({n})")
    } else {
        n.to_string()
    };
    match *ty {
        Type::INT2 => format!("CAST({text} AS SMALLINT)"),
        Type::INT4 => format!("CAST({text} AS INTEGER)"),
        _ => text,
    }
}

fn float_literal(f: f64, ty: &Type) -> String {
    let text = if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f < 0.0 { "-inf" } else { "inf" }.to_string()
    } else if *ty == Type::FLOAT4 {
        (f as f32).to_string()
    } else {
        f.to_string()
    };
    format!("CAST('{text}' AS {})", sql_type(ty))
}

/// `CAST('123.45' AS DECIMAL(p, s))` for a decimal string that was
/// checked to hold only a sign, digits and one point.
fn numeric_literal(text: &str, number: usize, ty: &Type) -> Result<String, ParamError> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(invalid(number, ty, "not a decimal number"));
    }
    let int = int.trim_start_matches('0');
    let precision = (int.len() + frac.len()).max(1);
    if precision > 38 {
        return Err(ParamError {
            code: "22003",
            message: format!("parameter ${number}: numeric value has more than 38 digits"),
        });
    }
    Ok(format!(
        "CAST('{text}' AS DECIMAL({}, {}))",
        precision.max(frac.len()),
        frac.len()
    ))
}

fn fixed(bytes: &[u8], number: usize, ty: &Type, width: usize) -> Result<[u8; 8], ParamError> {
    if bytes.len() != width {
        return Err(invalid(
            number,
            ty,
            format!("expected {width} bytes, got {}", bytes.len()),
        ));
    }
    let mut out = [0u8; 8];
    out[8 - width..].copy_from_slice(bytes);
    Ok(out)
}

fn be_i64(bytes: &[u8], number: usize, ty: &Type, width: usize) -> Result<i64, ParamError> {
    let raw = fixed(bytes, number, ty, width)?;
    let unsigned = u64::from_be_bytes(raw);
    let shift = 64 - 8 * width as u32;
    Ok(((unsigned << shift) as i64) >> shift)
}

fn timestamp_text(micros: i64, number: usize, ty: &Type) -> Result<String, ParamError> {
    let unix = micros
        .checked_add(946_684_800_000_000)
        .ok_or_else(|| invalid(number, ty, "out of range"))?;
    let dt =
        DateTime::from_timestamp_micros(unix).ok_or_else(|| invalid(number, ty, "out of range"))?;
    Ok(dt.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

fn time_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        micros.rem_euclid(1_000_000)
    )
}

/// Decodes Postgres' binary `numeric` into a decimal string.
fn numeric_from_binary(bytes: &[u8], number: usize, ty: &Type) -> Result<String, ParamError> {
    let bad = || invalid(number, ty, "malformed numeric");
    if bytes.len() < 8 {
        return Err(bad());
    }
    let word = |i: usize| i16::from_be_bytes([bytes[i], bytes[i + 1]]);
    let ndigits = usize::try_from(word(0)).map_err(|_| bad())?;
    let weight = i32::from(word(2));
    let sign = u16::from_be_bytes([bytes[4], bytes[5]]);
    let dscale = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
    if bytes.len() != 8 + 2 * ndigits || dscale > 1000 || weight.abs() > 1000 {
        return Err(bad());
    }
    if sign == 0xC000 || sign == 0xD000 || sign == 0xF000 {
        return Err(invalid(number, ty, "NaN and infinity are not supported"));
    }
    let groups: Vec<i16> = (0..ndigits).map(|i| word(8 + 2 * i)).collect();
    if groups.iter().any(|g| !(0..10_000).contains(g)) {
        return Err(bad());
    }
    // Integer part: groups with weight >= 0.
    let mut int = String::new();
    for w in (0..=weight.max(-1)).rev() {
        let idx = weight - w;
        let g = usize::try_from(idx)
            .ok()
            .and_then(|i| groups.get(i))
            .copied()
            .unwrap_or(0);
        int.push_str(&format!("{g:04}"));
    }
    let int = int.trim_start_matches('0');
    let mut frac = String::new();
    let mut w = -1;
    while frac.len() < dscale {
        let idx = weight - w;
        let g = usize::try_from(idx)
            .ok()
            .and_then(|i| groups.get(i))
            .copied()
            .unwrap_or(0);
        frac.push_str(&format!("{g:04}"));
        w -= 1;
    }
    frac.truncate(dscale);
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    } else if sign != 0 {
        return Err(bad());
    }
    text.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        text.push('.');
        text.push_str(&frac);
    }
    Ok(text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The SQL literal for parameter `$number` of type `ty`, sent in `format`
/// (`None` is SQL NULL).
pub(crate) fn literal(
    number: usize,
    ty: &Type,
    format: FieldFormat,
    value: Option<&[u8]>,
) -> Result<String, ParamError> {
    let Some(bytes) = value else {
        return Ok(match *ty {
            Type::TEXT | Type::VARCHAR | Type::UNKNOWN => "NULL".to_string(),
            Type::NUMERIC | Type::INTERVAL => "NULL".to_string(),
            _ => format!("CAST(NULL AS {})", sql_type(ty)),
        });
    };
    match format {
        FieldFormat::Binary => binary_literal(number, ty, bytes),
        FieldFormat::Text => {
            let text = std::str::from_utf8(bytes).map_err(|_| ParamError {
                code: "22021",
                message: format!("parameter ${number} is not valid UTF-8"),
            })?;
            text_literal(number, ty, text)
        }
    }
}

fn checked_text(number: usize, text: &str) -> Result<&str, ParamError> {
    if text.contains('\0') {
        return Err(ParamError {
            code: "22021",
            message: format!("parameter ${number} contains a NUL character"),
        });
    }
    Ok(text)
}

fn text_literal(number: usize, ty: &Type, text: &str) -> Result<String, ParamError> {
    let text = checked_text(number, text)?;
    match *ty {
        Type::BOOL => parse_bool(text)
            .map(|b| if b { "TRUE" } else { "FALSE" }.to_string())
            .ok_or_else(|| invalid(number, ty, "not a boolean")),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => text
            .trim()
            .parse::<i64>()
            .map(|n| int_literal(n, ty))
            .map_err(|e| invalid(number, ty, e)),
        Type::FLOAT4 | Type::FLOAT8 => text
            .trim()
            .parse::<f64>()
            .map(|f| float_literal(f, ty))
            .map_err(|e| invalid(number, ty, e)),
        Type::NUMERIC => numeric_literal(text.trim(), number, ty),
        Type::BYTEA => {
            let hexed = text
                .strip_prefix("\\x")
                .ok_or_else(|| invalid(number, ty, "expected \\x hex format"))?;
            if hexed.len() % 2 != 0 || !hexed.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(number, ty, "bad hex digits"));
            }
            Ok(format!("X'{hexed}'"))
        }
        Type::DATE => Ok(format!("CAST({} AS DATE)", quote_literal(text))),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            Ok(format!("CAST({} AS TIMESTAMP)", quote_literal(text)))
        }
        Type::TIME => Ok(format!("CAST({} AS TIME)", quote_literal(text))),
        Type::INTERVAL => Ok(format!("INTERVAL {}", quote_literal(text))),
        _ => Ok(quote_literal(text)),
    }
}

fn binary_literal(number: usize, ty: &Type, bytes: &[u8]) -> Result<String, ParamError> {
    match *ty {
        Type::BOOL => match bytes {
            [0] => Ok("FALSE".to_string()),
            [1] => Ok("TRUE".to_string()),
            _ => Err(invalid(number, ty, "not a boolean")),
        },
        Type::INT2 => Ok(int_literal(be_i64(bytes, number, ty, 2)?, ty)),
        Type::INT4 => Ok(int_literal(be_i64(bytes, number, ty, 4)?, ty)),
        Type::INT8 => Ok(int_literal(be_i64(bytes, number, ty, 8)?, ty)),
        Type::OID => Ok(int_literal(be_i64(bytes, number, ty, 4)? & 0xFFFF_FFFF, ty)),
        Type::FLOAT4 => {
            let raw = fixed(bytes, number, ty, 4)?;
            let f = f32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
            Ok(float_literal(f.into(), ty))
        }
        Type::FLOAT8 => Ok(float_literal(
            f64::from_be_bytes(fixed(bytes, number, ty, 8)?),
            ty,
        )),
        Type::NUMERIC => numeric_literal(&numeric_from_binary(bytes, number, ty)?, number, ty),
        Type::BYTEA => Ok(format!("X'{}'", hex(bytes))),
        Type::DATE => {
            let days = be_i64(bytes, number, ty, 4)?;
            let date = NaiveDate::from_ymd_opt(2000, 1, 1)
                .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(days)))
                .ok_or_else(|| invalid(number, ty, "out of range"))?;
            Ok(format!("CAST('{}' AS DATE)", date.format("%Y-%m-%d")))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = be_i64(bytes, number, ty, 8)?;
            Ok(format!(
                "CAST('{}' AS TIMESTAMP)",
                timestamp_text(micros, number, ty)?
            ))
        }
        Type::TIME => {
            let micros = be_i64(bytes, number, ty, 8)?;
            if !(0..=86_400_000_000).contains(&micros) {
                return Err(invalid(number, ty, "out of range"));
            }
            Ok(format!("CAST('{}' AS TIME)", time_text(micros)))
        }
        Type::INTERVAL => {
            if bytes.len() != 16 {
                return Err(invalid(number, ty, "expected 16 bytes"));
            }
            let micros = be_i64(&bytes[..8], number, ty, 8)?;
            let days = be_i64(&bytes[8..12], number, ty, 4)?;
            let months = be_i64(&bytes[12..], number, ty, 4)?;
            Ok(format!(
                "INTERVAL '{months} months {days} days {micros} microseconds'"
            ))
        }
        Type::UUID => {
            if bytes.len() != 16 {
                return Err(invalid(number, ty, "expected 16 bytes"));
            }
            let h = hex(bytes);
            Ok(format!(
                "'{}-{}-{}-{}-{}'",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        }
        Type::JSONB => {
            // Version byte 1, then the JSON text.
            match bytes.split_first() {
                Some((1, rest)) => text_from_bytes(number, rest),
                _ => Err(invalid(number, ty, "unknown jsonb version")),
            }
        }
        Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::JSON
        | Type::XML => text_from_bytes(number, bytes),
        _ => Err(ParamError {
            code: "0A000",
            message: format!(
                "parameter ${number}: binary values of type {} are not supported",
                ty.name()
            ),
        }),
    }
}

fn text_from_bytes(number: usize, bytes: &[u8]) -> Result<String, ParamError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ParamError {
        code: "22021",
        message: format!("parameter ${number} is not valid UTF-8"),
    })?;
    Ok(quote_literal(checked_text(number, text)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehose_query::sql_text::placeholders;

    #[test]
    fn pg_param_type_inference() {
        let sql =
            "SELECT * FROM t WHERE a = $1::int8 AND b = CAST($2 AS double) AND c = $3 LIMIT $4";
        let ps = placeholders(sql);
        assert_eq!(
            infer_types(sql, &ps, 4),
            vec![Type::INT8, Type::FLOAT8, Type::TEXT, Type::INT8]
        );
    }

    #[test]
    fn pg_param_literals() {
        let t = FieldFormat::Text;
        let b = FieldFormat::Binary;
        assert_eq!(
            literal(1, &Type::TEXT, t, Some(b"it's")).unwrap(),
            "'it''s'"
        );
        assert_eq!(
            literal(1, &Type::INT8, b, Some(&(-5i64).to_be_bytes())).unwrap(),
            "(-5)"
        );
        assert_eq!(
            literal(1, &Type::INT4, b, Some(&7i32.to_be_bytes())).unwrap(),
            "CAST(7 AS INTEGER)"
        );
        assert_eq!(literal(1, &Type::BOOL, b, Some(&[1])).unwrap(), "TRUE");
        assert_eq!(
            literal(1, &Type::BYTEA, b, Some(&[0xde, 0xad])).unwrap(),
            "X'dead'"
        );
        assert_eq!(
            literal(1, &Type::DATE, b, Some(&1i32.to_be_bytes())).unwrap(),
            "CAST('2000-01-02' AS DATE)"
        );
        assert!(literal(1, &Type::INT8, t, Some(b"1; DROP TABLE x")).is_err());
        assert!(literal(1, &Type::TEXT, t, Some(b"a\0b")).is_err());
        assert_eq!(
            literal(1, &Type::INT8, t, None).unwrap(),
            "CAST(NULL AS BIGINT)"
        );
        // 12345.67 in binary numeric
        let num = [0, 3, 0, 1, 0, 0, 0, 2, 0, 1, 0x09, 0x29, 0x1A, 0x2C];
        assert_eq!(
            literal(1, &Type::NUMERIC, b, Some(&num)).unwrap(),
            "CAST('12345.67' AS DECIMAL(7, 2))"
        );
        assert!(literal(1, &Type::NUMERIC, t, Some(b"1e5')--")).is_err());
    }
}

/// Property tests: any bound value of any type, in text or binary, and any
/// statement text around placeholders give a literal or an error, never a
/// panic.
#[cfg(test)]
mod proptests {
    use super::*;
    use lakehose_query::sql_text::{placeholders, split_statements, substitute, tokenize};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    const CASES: u32 = 1000;

    const TYPES: &[Type] = &[
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::NUMERIC,
        Type::BYTEA,
        Type::DATE,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::TIME,
        Type::INTERVAL,
        Type::UUID,
        Type::JSON,
        Type::JSONB,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
        Type::XML,
        Type::INET,
        Type::POINT,
    ];

    fn config() -> Config {
        Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        }
    }

    /// Values shaped like what clients send: fixed-width binary numbers of
    /// every width, binary numerics with hostile headers, huge decimal
    /// text, unicode (U+3000 included), and plain random bytes.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..=16).prop_map(|mut v| {
                v.truncate([0, 1, 2, 4, 8, 16][v.len() % 6]);
                v
            }),
            (
                any::<i16>(),
                any::<i16>(),
                any::<u16>(),
                any::<u16>(),
                0usize..8
            )
                .prop_flat_map(|(n, weight, sign, scale, extra)| {
                    let digits = usize::try_from(n).unwrap_or(0).min(8) + extra % 2;
                    prop::collection::vec(any::<i16>(), digits).prop_map(move |groups| {
                        let mut v = Vec::new();
                        v.extend(n.to_be_bytes());
                        v.extend(weight.to_be_bytes());
                        v.extend(sign.to_be_bytes());
                        v.extend(scale.to_be_bytes());
                        for g in groups {
                            v.extend(g.to_be_bytes());
                        }
                        v
                    })
                }),
            "[-+]?[0-9]{0,60}(\\.[0-9]{0,60})?([eE][-+]?[0-9]{1,6})?".prop_map(String::into_bytes),
            "\\PC{0,24}".prop_map(String::into_bytes),
            Just("\u{3000}1\u{3000}".as_bytes().to_vec()),
            Just(b"\\x".to_vec()),
            Just(b"\\xabc".to_vec()),
        ]
    }

    #[test]
    fn literals_never_panic() {
        let strategy = (
            prop::sample::select(TYPES),
            any::<bool>(),
            prop::option::weighted(0.95, value()),
        );
        TestRunner::new(config())
            .run(&strategy, |(ty, binary, value)| {
                let format = if binary {
                    FieldFormat::Binary
                } else {
                    FieldFormat::Text
                };
                if let Ok(sql) = literal(1, &ty, format, value.as_deref()) {
                    prop_assert!(!sql.contains('\0'));
                }
                Ok(())
            })
            .unwrap();
    }

    /// Statement text around placeholders: casts, quotes, comments,
    /// dollar quoting and unicode.
    fn statement() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("$1".to_string()),
            Just("$2".to_string()),
            Just("$99999999999999999999".to_string()),
            Just("$".to_string()),
            Just("::".to_string()),
            Just("int8".to_string()),
            Just("double precision".to_string()),
            Just("CAST(".to_string()),
            Just(" AS ".to_string()),
            Just(")".to_string()),
            Just("LIMIT ".to_string()),
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("--".to_string()),
            Just("/*".to_string()),
            Just("*/".to_string()),
            Just("$$".to_string()),
            Just("$tag$".to_string()),
            Just(";".to_string()),
            Just("\n".to_string()),
            Just("E'\\".to_string()),
            Just("\u{3000}".to_string()),
            Just("SELECT ".to_string()),
            "\\PC{0,6}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..30).prop_map(|v| v.concat())
    }

    #[test]
    fn statement_scanning_never_panics() {
        TestRunner::new(config())
            .run(&statement(), |sql| {
                let found = placeholders(&sql);
                let count = found.iter().map(|p| p.number).max().unwrap_or(0).min(64);
                let types = infer_types(&sql, &found, count);
                prop_assert_eq!(types.len(), count);
                for p in &found {
                    let _ = in_limit_clause(&sql, p);
                }
                let _ = substitute(&sql, |p| {
                    Ok::<_, ()>(describe_literal(&Type::TEXT, in_limit_clause(&sql, p)))
                });
                let _ = split_statements(&sql);
                let _ = tokenize(&sql);
                let _ = type_from_name(&sql);
                Ok(())
            })
            .unwrap();
    }
}
