//! URL functions: `url_extract_*`, `url_encode`, `url_decode`.
//!
//! Like Presto (which uses `java.net.URI`), components are returned raw (not
//! percent-decoded) and a string that is not a valid URI yields NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;

use super::{Func, all_strings, fail, ret_i64, ret_utf8, str_at, strs};

/// The URL functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new(
            "url_extract_protocol",
            one,
            ret_utf8,
            part::<{ P_PROTOCOL }>,
        ),
        Func::new("url_extract_host", one, ret_utf8, part::<{ P_HOST }>),
        Func::new("url_extract_path", one, ret_utf8, part::<{ P_PATH }>),
        Func::new("url_extract_query", one, ret_utf8, part::<{ P_QUERY }>),
        Func::new(
            "url_extract_fragment",
            one,
            ret_utf8,
            part::<{ P_FRAGMENT }>,
        ),
        Func::new("url_extract_port", one, ret_i64, port),
        Func::new(
            "url_extract_parameter",
            |a| all_strings(a, 2, 2),
            ret_utf8,
            parameter,
        ),
        Func::new("url_encode", one, ret_utf8, encode),
        Func::new("url_decode", one, ret_utf8, decode),
    ]
}

fn one(a: &[DataType]) -> Result<Vec<DataType>> {
    all_strings(a, 1, 1)
}

/// The components of a URI reference.
#[derive(Debug, Default, PartialEq)]
struct Url<'a> {
    scheme: Option<&'a str>,
    host: Option<&'a str>,
    port: Option<i64>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn parse(s: &str) -> Option<Url<'_>> {
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "\"<>\\^`{|}".contains(c))
    {
        return None;
    }
    let mut u = Url::default();
    let mut rest = s;
    if let Some(i) = s.find(':') {
        let cand = &s[..i];
        let valid = cand.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && cand
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if valid {
            u.scheme = Some(cand);
            rest = &s[i + 1..];
        }
    }
    if let Some(i) = rest.find('#') {
        u.fragment = Some(&rest[i + 1..]);
        rest = &rest[..i];
    }
    if let Some(i) = rest.find('?') {
        u.query = Some(&rest[i + 1..]);
        rest = &rest[..i];
    }
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        u.path = &after[end..];
        let hostport = match authority.rfind('@') {
            Some(i) => &authority[i + 1..],
            None => authority,
        };
        let (host, port) = if hostport.starts_with('[') {
            let close = hostport.find(']')?;
            let tail = &hostport[close + 1..];
            (&hostport[..=close], tail.strip_prefix(':'))
        } else {
            match hostport.rfind(':') {
                Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
                None => (hostport, None),
            }
        };
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            u.port = Some(p.parse().ok()?);
        }
        if !host.is_empty() {
            u.host = Some(host);
        }
    } else {
        u.path = rest;
    }
    Some(u)
}

const P_PROTOCOL: u8 = 0;
const P_HOST: u8 = 1;
const P_PATH: u8 = 2;
const P_QUERY: u8 = 3;
const P_FRAGMENT: u8 = 4;

fn part<const P: u8>(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let out: StringArray = (0..s.len())
        .map(|i| {
            let u = parse(str_at(s, i)?)?;
            match P {
                P_PROTOCOL => u.scheme,
                P_HOST => u.host,
                P_PATH => Some(u.path),
                P_QUERY => u.query,
                _ => u.fragment,
            }
        })
        .collect();
    Ok(Arc::new(out))
}

fn port(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let out: Int64Array = (0..s.len()).map(|i| parse(str_at(s, i)?)?.port).collect();
    Ok(Arc::new(out))
}

fn parameter(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, names) = (strs(&args[0])?, strs(&args[1])?);
    let out: StringArray = (0..s.len())
        .map(|i| {
            let name = str_at(names, i)?;
            let query = parse(str_at(s, i)?)?.query?;
            query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then_some(v)
            })
        })
        .collect();
    Ok(Arc::new(out))
}

fn encode(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let out: StringArray = s
        .iter()
        .map(|v| {
            v.map(|v| {
                let mut o = String::with_capacity(v.len());
                for b in v.bytes() {
                    match b {
                        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                            o.push(b as char)
                        }
                        b' ' => o.push('+'),
                        _ => o.push_str(&format!("%{b:02X}")),
                    }
                }
                o
            })
        })
        .collect();
    Ok(Arc::new(out))
}

fn decode_one(v: &str) -> Result<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(x) => out.push(x),
                    None => return fail(format!("url_decode: invalid escape in '{v}'")),
                }
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn decode(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let s = strs(&args[0])?;
    let out = (0..s.len())
        .map(|i| str_at(s, i).map(decode_one).transpose())
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(StringArray::from(out)))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{ctx, err, run};

    #[tokio::test]
    async fn extract_parts() {
        let c = ctx();
        let q = "SELECT url_extract_protocol(u), url_extract_host(u), url_extract_port(u), url_extract_path(u), url_extract_query(u), url_extract_fragment(u), url_extract_parameter(u, 'b'), url_extract_parameter(u, 'z') FROM (VALUES ('https://user@Example.com:8080/a/b%20c?a=1&b=x%3Dy&b=2#frag')) t(u)";
        assert_eq!(
            run(&c, q).await.unwrap()[0],
            [
                "https",
                "Example.com",
                "8080",
                "/a/b%20c",
                "a=1&b=x%3Dy&b=2",
                "frag",
                "x%3Dy",
                "NULL"
            ]
        );
        let q = "SELECT url_extract_host(u), url_extract_port(u), url_extract_path(u), url_extract_query(u) FROM (VALUES ('http://example.com')) t(u)";
        assert_eq!(
            run(&c, q).await.unwrap()[0],
            ["example.com", "NULL", "", "NULL"]
        );
        let q = "SELECT url_extract_host(u), url_extract_path(u) FROM (VALUES ('not a url')) t(u)";
        assert_eq!(run(&c, q).await.unwrap()[0], ["NULL", "NULL"]);
        let q = "SELECT url_extract_protocol(u), url_extract_path(u), url_extract_parameter(u, 'q') FROM (VALUES ('/search?q')) t(u)";
        assert_eq!(run(&c, q).await.unwrap()[0], ["NULL", "/search", ""]);
    }

    #[tokio::test]
    async fn encode_decode() {
        let c = ctx();
        let q = "SELECT url_encode('a b&c=d/é*'), url_decode('a+b%26c%3Dd%2F%C3%A9*')";
        assert_eq!(
            run(&c, q).await.unwrap()[0],
            ["a+b%26c%3Dd%2F%C3%A9*", "a b&c=d/é*"]
        );
        assert!(
            err(&c, "SELECT url_decode('%zz')")
                .await
                .contains("invalid escape")
        );
    }
}
