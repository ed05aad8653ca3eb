//! Trino's `format(format, args...)`: Java `String.format` conversions —
//! `%s`, `%d`, `%f`, `%e`, `%g`, `%x`, `%X`, `%o`, `%b`, `%c`, `%%`, `%n`,
//! with an argument index (`%2$s`), flags (`-`, `0`, `+`, space, `,`),
//! width and precision. A conversion whose argument has the wrong type, or
//! a missing argument, fails the query naming the specifier.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::error::Result;

use super::{Func, MAX_STRING_CHARS, fail, is_string, ret_utf8, str_at, strs};

/// The `format` function.
pub(crate) fn functions() -> Vec<Func> {
    vec![Func::new("format", coerce_format, ret_utf8, format)]
}

fn coerce_format(a: &[DataType]) -> Result<Vec<DataType>> {
    if a.is_empty() || a.len() > 128 {
        return plan_err!("format takes a format string and up to 127 arguments");
    }
    if !is_string(&a[0]) {
        return plan_err!("the format must be a string, got {}", a[0]);
    }
    let mut out = vec![DataType::Utf8];
    out.extend(a[1..].iter().cloned());
    Ok(out)
}

/// One piece of a compiled format.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Spec(Spec),
}

#[derive(Debug, Clone, PartialEq)]
struct Spec {
    /// 0-based argument, after the format.
    arg: usize,
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    group: bool,
    width: usize,
    precision: Option<usize>,
    conversion: char,
}

/// Widths and precisions above this are refused (the result is bounded
/// by [`MAX_STRING_CHARS`] as well).
const MAX_WIDTH: usize = 10_000;

fn compile(f: &str) -> Result<Vec<Piece>> {
    let chars: Vec<char> = f.chars().collect();
    let mut out = Vec::new();
    let mut text = String::new();
    let mut next_arg = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            text.push(c);
            continue;
        }
        let start = i - 1;
        let number = |i: &mut usize| -> Option<usize> {
            let from = *i;
            while *i < chars.len() && chars[*i].is_ascii_digit() {
                *i += 1;
            }
            (*i > from).then(|| {
                chars[from..*i]
                    .iter()
                    .collect::<String>()
                    .parse()
                    .unwrap_or(usize::MAX)
            })
        };
        // An argument index `n$`.
        let save = i;
        let mut arg = None;
        if let Some(n) = number(&mut i) {
            if chars.get(i) == Some(&'$') && n > 0 {
                arg = Some(n - 1);
                i += 1;
            } else {
                i = save;
            }
        }
        let mut spec = Spec {
            arg: 0,
            left: false,
            zero: false,
            plus: false,
            space: false,
            group: false,
            width: 0,
            precision: None,
            conversion: ' ',
        };
        while let Some(&flag) = chars.get(i) {
            match flag {
                '-' => spec.left = true,
                '0' => spec.zero = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                ',' => spec.group = true,
                _ => break,
            }
            i += 1;
        }
        spec.width = number(&mut i).unwrap_or(0);
        if chars.get(i) == Some(&'.') {
            i += 1;
            spec.precision = Some(number(&mut i).unwrap_or(0));
        }
        if spec.width > MAX_WIDTH || spec.precision.is_some_and(|p| p > MAX_WIDTH) {
            return fail(format!(
                "format: a width or precision over {MAX_WIDTH} in {:?}",
                chars[start..i].iter().collect::<String>()
            ));
        }
        let Some(&conversion) = chars.get(i) else {
            return fail(format!("format: {f:?} ends inside a specifier"));
        };
        i += 1;
        match conversion {
            '%' => text.push('%'),
            'n' => text.push('\n'),
            's' | 'S' | 'd' | 'f' | 'e' | 'E' | 'g' | 'x' | 'X' | 'o' | 'b' | 'B' | 'c' => {
                spec.conversion = conversion;
                spec.arg = match arg {
                    Some(a) => a,
                    None => {
                        next_arg += 1;
                        next_arg - 1
                    }
                };
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Spec(spec));
            }
            other => {
                return fail(format!(
                    "format: unknown conversion '%{other}' in {:?}",
                    chars[start..i].iter().collect::<String>()
                ));
            }
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Inserts `,` every three digits of an unsigned digit string.
fn grouped(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A formatted number: its sign and digits, padded as the flags say.
fn number(spec: &Spec, negative: bool, body: String) -> String {
    let sign = if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let len = sign.len() + body.chars().count();
    if spec.zero && !spec.left && len < spec.width {
        format!("{sign}{}{body}", "0".repeat(spec.width - len))
    } else {
        format!("{sign}{body}")
    }
}

fn pad(spec: &Spec, s: String) -> String {
    let len = s.chars().count();
    if len >= spec.width {
        return s;
    }
    let fill = " ".repeat(spec.width - len);
    if spec.left { s + &fill } else { fill + &s }
}

/// One argument value in the form a conversion needs.
fn render(spec: &Spec, array: &ArrayRef, row: usize) -> Result<String> {
    let wrong = |what: &str| {
        fail(format!(
            "format: '%{}' needs {what}, got {}",
            spec.conversion,
            array.data_type()
        ))
    };
    if array.is_null(row) || array.data_type().is_null() {
        let text = match spec.conversion {
            'b' | 'B' => "false",
            _ => "null",
        };
        return Ok(pad(spec, text.to_string()));
    }
    let one = array.slice(row, 1);
    let text = match spec.conversion {
        's' | 'S' => {
            let text = crate::values::column_text(&one)
                .map_err(|e| datafusion::error::DataFusionError::ArrowError(Box::new(e), None))?
                .pop()
                .flatten()
                .unwrap_or_default();
            let text = match spec.precision {
                Some(p) => text.chars().take(p).collect(),
                None => text,
            };
            if spec.conversion == 'S' {
                text.to_uppercase()
            } else {
                text
            }
        }
        'd' | 'x' | 'X' | 'o' | 'c' => {
            if !array.data_type().is_integer() {
                return wrong("an integer");
            }
            let v = cast(&one, &DataType::Int64)?;
            let v = v
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .map(|a| a.value(0))
                .unwrap_or_default();
            match spec.conversion {
                'd' => {
                    let digits = v.unsigned_abs().to_string();
                    let digits = if spec.group { grouped(&digits) } else { digits };
                    number(spec, v < 0, digits)
                }
                'x' => number(spec, false, format!("{v:x}")),
                'X' => number(spec, false, format!("{v:X}")),
                'o' => number(spec, false, format!("{v:o}")),
                _ => match u32::try_from(v).ok().and_then(char::from_u32) {
                    Some(c) => c.to_string(),
                    None => return fail(format!("format: {v} is not a character")),
                },
            }
        }
        'f' | 'e' | 'E' | 'g' => {
            if !(array.data_type().is_numeric()) {
                return wrong("a number");
            }
            let v = cast(&one, &DataType::Float64)?;
            let v = v
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Float64Array>()
                .map(|a| a.value(0))
                .unwrap_or_default();
            if !v.is_finite() {
                return Ok(pad(
                    spec,
                    if v.is_nan() {
                        "NaN".into()
                    } else if v > 0.0 {
                        "Infinity".into()
                    } else {
                        "-Infinity".into()
                    },
                ));
            }
            let p = spec.precision.unwrap_or(6);
            let body = match spec.conversion {
                'f' => {
                    let text = format!("{:.p$}", v.abs());
                    if spec.group {
                        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
                        if frac.is_empty() {
                            grouped(int)
                        } else {
                            format!("{}.{frac}", grouped(int))
                        }
                    } else {
                        text
                    }
                }
                'g' => format!("{}", v.abs()),
                conversion => {
                    // Java: one digit, the fraction, then e+XX.
                    let text = format!("{:.p$e}", v.abs());
                    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
                    let exp: i32 = exp.parse().unwrap_or(0);
                    let sign = if exp < 0 { '-' } else { '+' };
                    let e = if conversion == 'E' { 'E' } else { 'e' };
                    format!("{mantissa}{e}{sign}{:02}", exp.abs())
                }
            };
            number(spec, v < 0.0, body)
        }
        'b' | 'B' => match array.data_type() {
            DataType::Boolean => {
                let b = one
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                    .is_some_and(|a| a.value(0));
                let text = b.to_string();
                if spec.conversion == 'B' {
                    text.to_uppercase()
                } else {
                    text
                }
            }
            _ => "true".into(),
        },
        other => return fail(format!("format: unknown conversion '%{other}'")),
    };
    Ok(pad(spec, text))
}

fn format(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let fmt = strs(&args[0])?;
    let rows = args.iter().map(|a| a.len()).max().unwrap_or(0);
    let mut last: Option<(String, Vec<Piece>)> = None;
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        let f_row = if fmt.len() == 1 { 0 } else { row };
        let Some(f) = str_at(fmt, f_row) else {
            out.push(None);
            continue;
        };
        if last.as_ref().map(|(s, _)| s.as_str()) != Some(f) {
            last = Some((f.to_string(), compile(f)?));
        }
        let pieces = &last.as_ref().expect("just compiled").1;
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Spec(spec) => {
                    let Some(array) = args.get(spec.arg + 1) else {
                        return fail(format!(
                            "format: '%{}' has no argument {} (format {f:?})",
                            spec.conversion,
                            spec.arg + 1
                        ));
                    };
                    let r = if array.len() == 1 { 0 } else { row };
                    text.push_str(&render(spec, array, r)?);
                }
            }
            if text.len() > MAX_STRING_CHARS {
                return fail(format!(
                    "format: the result is longer than {MAX_STRING_CHARS} bytes"
                ));
            }
        }
        out.push(Some(text));
    }
    Ok(Arc::new(StringArray::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_java_specifiers() {
        let p = compile("%2$s-%1$05d %%|%n").unwrap();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(
            compile("%q")
                .unwrap_err()
                .to_string()
                .contains("unknown conversion")
        );
        assert!(
            compile("%")
                .unwrap_err()
                .to_string()
                .contains("ends inside")
        );
        assert!(
            compile("%99999s")
                .unwrap_err()
                .to_string()
                .contains("width")
        );
        assert_eq!(grouped("1234567"), "1,234,567");
        assert_eq!(grouped("123"), "123");
    }
}
