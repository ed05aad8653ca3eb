//! String and binary functions that DataFusion lacks or defines differently:
//! `split`, `split_part`, `codepoint`, `to_hex`/`from_hex`,
//! `to_utf8`/`from_utf8`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, Int64Array, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::error::Result;

use super::{
    Func, all_strings, arity, fail, int_at, ints, ret_i64, ret_utf8, ret_utf8_list, str_at, strs,
    want_int, want_string,
};

/// The string functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new("split", coerce_split, ret_utf8_list, split),
        Func::new("split_part", coerce_split_part, ret_utf8, split_part),
        Func::new("codepoint", |a| all_strings(a, 1, 1), ret_i64, codepoint),
        Func::new("to_hex", coerce_to_hex, ret_utf8, to_hex),
        Func::new("from_hex", |a| all_strings(a, 1, 1), ret_binary, from_hex),
        Func::new("to_utf8", |a| all_strings(a, 1, 1), ret_binary, to_utf8),
        Func::new("from_utf8", coerce_from_utf8, ret_utf8, from_utf8),
    ]
}

fn ret_binary(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Binary)
}

fn coerce_split(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 3)?;
    let mut out = vec![
        want_string(&a[0], "string")?,
        want_string(&a[1], "delimiter")?,
    ];
    if a.len() == 3 {
        out.push(want_int(&a[2], "limit")?);
    }
    Ok(out)
}

fn coerce_split_part(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 3, 3)?;
    Ok(vec![
        want_string(&a[0], "string")?,
        want_string(&a[1], "delimiter")?,
        want_int(&a[2], "index")?,
    ])
}

fn split(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, d) = (strs(&args[0])?, strs(&args[1])?);
    let limit = args.get(2).map(ints).transpose()?;
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..s.len() {
        let lim = match limit {
            None => Some(i64::MAX),
            Some(l) => int_at(l, i),
        };
        let (Some(v), Some(delim), Some(lim)) = (str_at(s, i), str_at(d, i), lim) else {
            b.append(false);
            continue;
        };
        if lim <= 0 {
            return fail("Limit must be positive");
        }
        if delim.is_empty() {
            // Presto splits between every character.
            let chars: Vec<&str> = v
                .char_indices()
                .map(|(k, c)| &v[k..k + c.len_utf8()])
                .collect();
            let n = (lim as usize).min(chars.len().max(1));
            for part in chars.iter().take(n.saturating_sub(1)) {
                b.values().append_value(part);
            }
            let used: usize = chars
                .iter()
                .take(n.saturating_sub(1))
                .map(|p| p.len())
                .sum();
            b.values().append_value(&v[used..]);
        } else {
            for part in v.splitn(usize::try_from(lim).unwrap_or(usize::MAX), delim) {
                b.values().append_value(part);
            }
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

fn split_part(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, d, idx) = (strs(&args[0])?, strs(&args[1])?, ints(&args[2])?);
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let (Some(v), Some(delim), Some(n)) = (str_at(s, i), str_at(d, i), int_at(idx, i)) else {
            out.push(None);
            continue;
        };
        if n <= 0 {
            return fail("Index must be greater than zero");
        }
        out.push(if delim.is_empty() {
            (n == 1).then(|| v.to_string())
        } else {
            v.split(delim).nth(n as usize - 1).map(str::to_string)
        });
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn codepoint(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        out.push(match str_at(s, i) {
            None => None,
            Some(v) => {
                let mut it = v.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => Some(c as i64),
                    _ => {
                        return fail(format!(
                            "Input to codepoint function must be a single character string, got '{v}'"
                        ));
                    }
                }
            }
        });
    }
    Ok(Arc::new(Int64Array::from(out)))
}

fn coerce_to_hex(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    Ok(vec![match &a[0] {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => DataType::Binary,
        DataType::FixedSizeBinary(_) => DataType::Binary,
        t if super::is_string(t) => DataType::Binary,
        t if t.is_integer() => DataType::Int64,
        t => return plan_err!("expects varbinary, got {t}"),
    }])
}

fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn to_hex(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    if let Some(n) = args[0].as_any().downcast_ref::<Int64Array>() {
        let out: StringArray = n.iter().map(|v| v.map(|v| format!("{v:X}"))).collect();
        return Ok(Arc::new(out));
    }
    let b = binaries(&args[0])?;
    let out: StringArray = b.iter().map(|v| v.map(hex_upper)).collect();
    Ok(Arc::new(out))
}

fn binaries(a: &ArrayRef) -> Result<&BinaryArray> {
    a.as_any().downcast_ref().ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!(
            "expected Binary, got {}",
            a.data_type()
        ))
    })
}

fn from_hex(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let Some(v) = str_at(s, i) else {
            out.push(None);
            continue;
        };
        if v.len() % 2 != 0 {
            return fail(format!("invalid input length {} for from_hex", v.len()));
        }
        let digit = |c: u8| -> Result<u8> {
            (c as char)
                .to_digit(16)
                .map(|d| d as u8)
                .map_or_else(|| fail(format!("invalid hex character: {}", c as char)), Ok)
        };
        let bytes = v
            .as_bytes()
            .chunks(2)
            .map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?))
            .collect::<Result<Vec<u8>>>()?;
        out.push(Some(bytes));
    }
    Ok(Arc::new(BinaryArray::from_iter(out)))
}

fn to_utf8(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    Ok(Arc::new(BinaryArray::from_iter(
        s.iter().map(|v| v.map(str::as_bytes)),
    )))
}

fn coerce_from_utf8(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 2)?;
    let b = match &a[0] {
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_)
        | DataType::Null => DataType::Binary,
        t => return plan_err!("expects varbinary, got {t}"),
    };
    let mut out = vec![b];
    if a.len() == 2 {
        out.push(want_string(&a[1], "replacement")?);
    }
    Ok(out)
}

fn from_utf8(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let b = binaries(&args[0])?;
    let rep = args.get(1).map(strs).transpose()?;
    let mut out = Vec::with_capacity(b.len());
    for i in 0..b.len() {
        if b.is_null(i) {
            out.push(None);
            continue;
        }
        let r = match rep {
            None => "\u{FFFD}",
            Some(r) => match str_at(r, i) {
                Some(r) => r,
                None => {
                    out.push(None);
                    continue;
                }
            },
        };
        let mut s = String::new();
        for chunk in b.value(i).utf8_chunks() {
            s.push_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                s.push_str(r);
            }
        }
        out.push(Some(s));
    }
    Ok(Arc::new(StringArray::from(out)))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{ctx, err, one};

    #[tokio::test]
    async fn split_functions() {
        let c = ctx();
        assert_eq!(one(&c, "SELECT split('a,b,,c', ',')").await, "[a, b, , c]");
        assert_eq!(one(&c, "SELECT split('a,b,c', ',', 2)").await, "[a, b,c]");
        assert_eq!(one(&c, "SELECT split('', ',')").await, "[]");
        assert_eq!(one(&c, "SELECT cardinality(split('', ','))").await, "1");
        assert_eq!(one(&c, "SELECT split('abc', '')").await, "[a, b, c]");
        assert_eq!(one(&c, "SELECT split(NULL, ',')").await, "NULL");
        assert!(
            err(&c, "SELECT split('a', ',', 0)")
                .await
                .contains("Limit must be positive")
        );
        assert_eq!(one(&c, "SELECT split_part('a,b,c', ',', 2)").await, "b");
        assert_eq!(one(&c, "SELECT split_part('a,b,c', ',', 4)").await, "NULL");
        assert_eq!(one(&c, "SELECT split_part('a::b', '::', 2)").await, "b");
        let e = err(&c, "SELECT split_part('a,b,c', ',', 0)").await;
        assert!(e.contains("Index must be greater than zero"), "{e}");
    }

    #[tokio::test]
    async fn binary_and_codepoints() {
        let c = ctx();
        assert_eq!(one(&c, "SELECT codepoint('é')").await, "233");
        assert!(
            err(&c, "SELECT codepoint('ab')")
                .await
                .contains("single character")
        );
        assert_eq!(one(&c, "SELECT to_hex(to_utf8('Az'))").await, "417A");
        assert_eq!(one(&c, "SELECT to_hex(255)").await, "FF");
        assert_eq!(one(&c, "SELECT from_utf8(from_hex('417a'))").await, "Az");
        assert!(
            err(&c, "SELECT from_hex('abc')")
                .await
                .contains("invalid input length")
        );
        assert!(
            err(&c, "SELECT from_hex('zz')")
                .await
                .contains("invalid hex")
        );
        assert_eq!(
            one(&c, "SELECT from_utf8(from_hex('61ff62'))").await,
            "a\u{FFFD}b"
        );
        assert_eq!(
            one(&c, "SELECT from_utf8(from_hex('61ff62'), '?')").await,
            "a?b"
        );
        assert_eq!(one(&c, "SELECT to_hex(NULL)").await, "NULL");
    }
}
