//! JSON functions with Presto semantics. JSON values are carried as varchar
//! holding JSON text.
//!
//! Paths follow Presto's JSONPath subset: `$`, `.name`, `["name"]`,
//! `['name']`, `[index]` and `[*]`-free combinations such as `$.a[1].b`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::error::Result;
use serde_json::Value;

use super::{
    Func, all_strings, arity, fail, ret_bool, ret_i64, ret_utf8, str_at, strs, want_string,
};

/// The JSON functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new(
            "json_extract",
            |a| all_strings(a, 2, 2),
            ret_utf8,
            json_extract,
        ),
        Func::new(
            "json_extract_scalar",
            |a| all_strings(a, 2, 2),
            ret_utf8,
            json_extract_scalar,
        ),
        Func::new("json_parse", |a| all_strings(a, 1, 1), ret_utf8, json_parse),
        Func::new(
            "json_format",
            |a| all_strings(a, 1, 1),
            ret_utf8,
            json_format,
        ),
        Func::new(
            "json_array_length",
            |a| all_strings(a, 1, 1),
            ret_i64,
            json_array_length,
        ),
        Func::new(
            "json_array_contains",
            coerce_contains,
            ret_bool,
            json_array_contains,
        ),
        Func::new("json_size", |a| all_strings(a, 2, 2), ret_i64, json_size),
        Func::new(
            "is_json_scalar",
            |a| all_strings(a, 1, 1),
            ret_bool,
            is_json_scalar,
        ),
        Func::new("json_array_get", coerce_array_get, ret_utf8, json_array_get),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Parses a JSONPath such as `$.a["b c"][0]`.
fn parse_path(p: &str) -> Result<Vec<Step>> {
    let bad = |why: &str| fail(format!("Invalid JSON path: '{p}' ({why})"));
    let chars: Vec<char> = p.trim().chars().collect();
    if chars.first() != Some(&'$') {
        return bad("must start with $");
    }
    let mut steps = Vec::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                if i == start {
                    return bad("empty key");
                }
                let key: String = chars[start..i].iter().collect();
                if key == "*" {
                    return bad("wildcards are not supported");
                }
                steps.push(Step::Key(key));
            }
            '[' => {
                i += 1;
                match chars.get(i) {
                    Some(&q @ ('"' | '\'')) => {
                        i += 1;
                        let mut key = String::new();
                        loop {
                            match chars.get(i) {
                                None => return bad("unterminated quoted key"),
                                Some('\\') if chars.get(i + 1).is_some() => {
                                    key.push(chars[i + 1]);
                                    i += 2;
                                }
                                Some(&c) if c == q => {
                                    i += 1;
                                    break;
                                }
                                Some(&c) => {
                                    key.push(c);
                                    i += 1;
                                }
                            }
                        }
                        if chars.get(i) != Some(&']') {
                            return bad("expected ]");
                        }
                        i += 1;
                        steps.push(Step::Key(key));
                    }
                    _ => {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        if i >= chars.len() {
                            return bad("expected ]");
                        }
                        let idx: String = chars[start..i].iter().collect();
                        i += 1;
                        match idx.trim().parse::<usize>() {
                            Ok(n) => steps.push(Step::Index(n)),
                            Err(_) => return bad("array index must be a non-negative integer"),
                        }
                    }
                }
            }
            c => return bad(&format!("unexpected '{c}'")),
        }
    }
    Ok(steps)
}

fn walk<'a>(v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let mut cur = v;
    for s in steps {
        cur = match (s, cur) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            // Presto also lets a numeric key index an array (`$.a.0`).
            (Step::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Applies `f` to each (json, path) pair; invalid JSON yields NULL like Presto.
fn with_path<T>(
    args: &[ArrayRef],
    mut f: impl FnMut(&Value) -> Option<T>,
) -> Result<Vec<Option<T>>> {
    let docs = strs(&args[0])?;
    let paths = strs(&args[1])?;
    let mut cached: Option<(String, Vec<Step>)> = None;
    let mut out = Vec::with_capacity(docs.len());
    for i in 0..docs.len() {
        let (Some(doc), Some(p)) = (str_at(docs, i), str_at(paths, i)) else {
            out.push(None);
            continue;
        };
        if cached.as_ref().map(|(s, _)| s.as_str()) != Some(p) {
            cached = Some((p.to_string(), parse_path(p)?));
        }
        let steps = &cached.as_ref().expect("just set").1;
        let Ok(v) = serde_json::from_str::<Value>(doc) else {
            out.push(None);
            continue;
        };
        out.push(walk(&v, steps).and_then(&mut f));
    }
    Ok(out)
}

fn json_extract(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let out = with_path(args, |v| Some(v.to_string()))?;
    Ok(Arc::new(StringArray::from(out)))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn json_extract_scalar(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let out = with_path(args, scalar_text)?;
    Ok(Arc::new(StringArray::from(out)))
}

fn json_size(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let out = with_path(args, |v| {
        Some(match v {
            Value::Array(a) => a.len() as i64,
            Value::Object(o) => o.len() as i64,
            _ => 0,
        })
    })?;
    Ok(Arc::new(Int64Array::from(out)))
}

fn json_parse(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        out.push(match str_at(s, i) {
            None => None,
            Some(t) => match serde_json::from_str::<Value>(t) {
                Ok(v) => Some(v.to_string()),
                Err(e) => return fail(format!("Cannot convert value to JSON: '{t}' ({e})")),
            },
        });
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn json_format(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        out.push(match str_at(s, i) {
            None => None,
            Some(t) => match serde_json::from_str::<Value>(t) {
                Ok(v) => Some(v.to_string()),
                Err(_) => return fail(format!("json_format: not valid JSON: '{t}'")),
            },
        });
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn json_array_length(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let out: Int64Array = (0..s.len())
        .map(|i| {
            let v = serde_json::from_str::<Value>(str_at(s, i)?).ok()?;
            v.as_array().map(|a| a.len() as i64)
        })
        .collect();
    Ok(Arc::new(out))
}

/// `is_json_scalar(json)`: whether the value is a number, string, boolean
/// or null rather than an array or object; text that is not JSON fails.
fn is_json_scalar(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let Some(text) = str_at(s, i) else {
            out.push(None);
            continue;
        };
        match serde_json::from_str::<Value>(text) {
            Ok(v) => out.push(Some(!(v.is_array() || v.is_object()))),
            Err(e) => return fail(format!("is_json_scalar: invalid JSON value '{text}' ({e})")),
        }
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

fn coerce_array_get(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    Ok(vec![
        want_string(&a[0], "json")?,
        super::want_int(&a[1], "index")?,
    ])
}

/// `json_array_get(json_array, index)`: the element at the 0-based `index`
/// (negative from the end) as JSON text; NULL out of range or when the
/// value is not an array.
fn json_array_get(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, idx) = (strs(&args[0])?, super::ints(&args[1])?);
    let out: StringArray = (0..s.len())
        .map(|i| {
            let k = super::int_at(idx, i)?;
            let v = serde_json::from_str::<Value>(str_at(s, i)?).ok()?;
            let items = v.as_array()?;
            let n = items.len() as i64;
            let at = if k >= 0 { k } else { n + k };
            (0..n).contains(&at).then(|| items[at as usize].to_string())
        })
        .collect();
    Ok(Arc::new(out))
}

fn coerce_contains(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    let v = match &a[1] {
        DataType::Boolean => DataType::Boolean,
        t if t.is_integer() => DataType::Int64,
        t if t.is_numeric() => DataType::Float64,
        t if super::is_string(t) => DataType::Utf8,
        t => return plan_err!("json_array_contains: unsupported value type {t}"),
    };
    Ok(vec![want_string(&a[0], "json")?, v])
}

fn json_array_contains(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    use datafusion::arrow::array::Float64Array;
    let docs = strs(&args[0])?;
    let needle = &args[1];
    let mut out = Vec::with_capacity(docs.len());
    for i in 0..docs.len() {
        let Some(doc) = str_at(docs, i) else {
            out.push(None);
            continue;
        };
        if needle.is_null(i) {
            out.push(None);
            continue;
        }
        let Ok(Value::Array(items)) = serde_json::from_str::<Value>(doc) else {
            out.push(None);
            continue;
        };
        let hit = match needle.data_type() {
            DataType::Boolean => {
                let b = needle
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .expect("coerced")
                    .value(i);
                items.iter().any(|x| x.as_bool() == Some(b))
            }
            DataType::Int64 => {
                let n = needle
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("coerced")
                    .value(i);
                items.iter().any(|x| x.as_i64() == Some(n))
            }
            DataType::Float64 => {
                let n = needle
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("coerced")
                    .value(i);
                items.iter().any(|x| x.as_f64() == Some(n))
            }
            _ => {
                let s = strs(needle)?.value(i);
                items.iter().any(|x| x.as_str() == Some(s))
            }
        };
        out.push(Some(hit));
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{ctx, err, one};
    use super::{Step, parse_path};

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("$.a['b c'][2].d").unwrap(),
            vec![
                Step::Key("a".into()),
                Step::Key("b c".into()),
                Step::Index(2),
                Step::Key("d".into())
            ]
        );
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$[x]").is_err());
    }

    #[tokio::test]
    async fn extract() {
        let c = ctx();
        let doc = r#"'{"a": {"b": [10, {"c": "x"}], "n": null}, "k y": true}'"#;
        assert_eq!(
            one(&c, &format!("SELECT json_extract({doc}, '$.a.b')")).await,
            r#"[10,{"c":"x"}]"#
        );
        assert_eq!(
            one(&c, &format!("SELECT json_extract({doc}, '$.a.b[1].c')")).await,
            r#""x""#
        );
        assert_eq!(
            one(
                &c,
                &format!("SELECT json_extract_scalar({doc}, '$.a.b[1].c')")
            )
            .await,
            "x"
        );
        assert_eq!(
            one(
                &c,
                &format!("SELECT json_extract_scalar({doc}, '$.a.b[0]')")
            )
            .await,
            "10"
        );
        assert_eq!(
            one(
                &c,
                &format!("SELECT json_extract_scalar({doc}, '$[\"k y\"]')")
            )
            .await,
            "true"
        );
        assert_eq!(
            one(&c, &format!("SELECT json_extract_scalar({doc}, '$.a.b')")).await,
            "NULL"
        );
        assert_eq!(
            one(&c, &format!("SELECT json_extract_scalar({doc}, '$.a.n')")).await,
            "NULL"
        );
        assert_eq!(
            one(&c, &format!("SELECT json_extract({doc}, '$.missing')")).await,
            "NULL"
        );
        assert_eq!(
            one(&c, "SELECT json_extract('not json', '$.a')").await,
            "NULL"
        );
        assert_eq!(
            one(&c, &format!("SELECT json_size({doc}, '$.a')")).await,
            "2"
        );
        assert_eq!(
            one(&c, &format!("SELECT json_size({doc}, '$.a.b[0]')")).await,
            "0"
        );
        let e = err(&c, "SELECT json_extract('{}', 'a')").await;
        assert!(e.contains("Invalid JSON path"), "{e}");
    }

    #[tokio::test]
    async fn parse_format_arrays() {
        let c = ctx();
        assert_eq!(
            one(&c, r#"SELECT json_format(json_parse('{"a": [1, 2]}'))"#).await,
            r#"{"a":[1,2]}"#
        );
        assert!(
            err(&c, "SELECT json_parse('{oops')")
                .await
                .contains("Cannot convert")
        );
        assert_eq!(one(&c, "SELECT json_array_length('[1, 2, 3]')").await, "3");
        assert_eq!(one(&c, "SELECT json_array_length('{}')").await, "NULL");
        assert_eq!(
            one(&c, "SELECT json_array_contains('[1, 2]', 2)").await,
            "true"
        );
        assert_eq!(
            one(&c, r#"SELECT json_array_contains('["a"]', 'b')"#).await,
            "false"
        );
        assert_eq!(
            one(&c, "SELECT json_array_contains('[true]', true)").await,
            "true"
        );
        assert_eq!(
            one(&c, "SELECT json_array_contains('[1.5]', 1.5)").await,
            "true"
        );
        assert_eq!(one(&c, "SELECT json_array_contains(NULL, 1)").await, "NULL");
    }
}
