//! Regular expression functions (`regexp_like`, `regexp_extract`, ...) with
//! Presto semantics over the `regex` crate's syntax, which matches Java's for
//! everything but look-around and back-references.
//!
//! Compiled patterns are cached process-wide, so a constant pattern is
//! compiled once however many batches use it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use regex::Regex;

use super::{
    Func, arity, fail, int_at, ints, ret_bool, ret_i64, ret_utf8, ret_utf8_list, str_at, strs,
    want_int, want_string,
};

/// The regular expression functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new(
            "regexp_like",
            |a| strs_then_ints(a, 2, 2),
            ret_bool,
            regexp_like,
        ),
        Func::new(
            "regexp_extract",
            |a| strs_then_ints(a, 2, 3),
            ret_utf8,
            regexp_extract,
        ),
        Func::new(
            "regexp_extract_all",
            |a| strs_then_ints(a, 2, 3),
            ret_utf8_list,
            regexp_extract_all,
        ),
        Func::new(
            "regexp_replace",
            |a| strs_then_ints(a, 2, 3),
            ret_utf8,
            regexp_replace,
        ),
        Func::new(
            "regexp_count",
            |a| strs_then_ints(a, 2, 2),
            ret_i64,
            regexp_count,
        ),
        Func::new(
            "regexp_split",
            |a| strs_then_ints(a, 2, 2),
            ret_utf8_list,
            regexp_split,
        ),
        Func::new(
            "regexp_position",
            |a| strs_then_ints(a, 2, 4),
            ret_i64,
            regexp_position,
        ),
    ]
}

/// Two strings, then either a string (the replacement of `regexp_replace`)
/// or integers.
fn strs_then_ints(a: &[DataType], min: usize, max: usize) -> Result<Vec<DataType>> {
    arity(a, min, max)?;
    let mut out = vec![
        want_string(&a[0], "string")?,
        want_string(&a[1], "pattern")?,
    ];
    for (i, t) in a.iter().enumerate().skip(2) {
        out.push(if super::is_string(t) && !matches!(t, DataType::Null) {
            DataType::Utf8
        } else {
            want_int(t, &format!("argument {}", i + 1))?
        });
    }
    Ok(out)
}

static CACHE: LazyLock<Mutex<HashMap<String, Arc<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const CACHE_LIMIT: usize = 512;

/// A compiled pattern, from the process-wide cache.
pub(crate) fn compile(pattern: &str) -> Result<Arc<Regex>> {
    if let Some(r) = CACHE.lock().expect("regex cache").get(pattern) {
        return Ok(r.clone());
    }
    let re = match Regex::new(pattern) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            let msg = e.to_string();
            let hint = if pattern.contains("(?=")
                || pattern.contains("(?!")
                || pattern.contains("(?<=")
                || pattern.contains("(?<!")
            {
                " (look-around is not supported)"
            } else {
                ""
            };
            return fail(format!(
                "invalid regular expression '{pattern}'{hint}: {msg}"
            ));
        }
    };
    let mut cache = CACHE.lock().expect("regex cache");
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

/// Per-call memo of the last pattern, to skip the shared cache's lock.
#[derive(Default)]
struct Last(Option<(String, Arc<Regex>)>);

impl Last {
    fn get(&mut self, p: &str) -> Result<Arc<Regex>> {
        match &self.0 {
            Some((s, r)) if s == p => Ok(r.clone()),
            _ => {
                let r = compile(p)?;
                self.0 = Some((p.to_string(), r.clone()));
                Ok(r)
            }
        }
    }
}

fn group_arg(args: &[ArrayRef], i: usize) -> Result<Option<Option<i64>>> {
    match args.get(2) {
        None => Ok(Some(Some(0))),
        Some(g) => Ok(Some(int_at(ints(g)?, i))),
    }
}

fn check_group(re: &Regex, g: i64) -> Result<usize> {
    let groups = re.captures_len() as i64 - 1;
    if g < 0 || g > groups {
        fail(format!(
            "Pattern has {groups} groups. Cannot access group {g}"
        ))
    } else {
        Ok(g as usize)
    }
}

fn regexp_like(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, p) = (strs(&args[0])?, strs(&args[1])?);
    let mut last = Last::default();
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        out.push(match (str_at(s, i), str_at(p, i)) {
            (Some(v), Some(pat)) => Some(last.get(pat)?.is_match(v)),
            _ => None,
        });
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

fn regexp_extract(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, p) = (strs(&args[0])?, strs(&args[1])?);
    let mut last = Last::default();
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let (Some(v), Some(pat), Some(Some(g))) = (str_at(s, i), str_at(p, i), group_arg(args, i)?)
        else {
            out.push(None);
            continue;
        };
        let re = last.get(pat)?;
        let g = check_group(&re, g)?;
        out.push(
            re.captures(v)
                .and_then(|c| c.get(g).map(|m| m.as_str().to_string())),
        );
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn regexp_extract_all(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, p) = (strs(&args[0])?, strs(&args[1])?);
    let mut last = Last::default();
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..s.len() {
        let (Some(v), Some(pat), Some(Some(g))) = (str_at(s, i), str_at(p, i), group_arg(args, i)?)
        else {
            b.append(false);
            continue;
        };
        let re = last.get(pat)?;
        let g = check_group(&re, g)?;
        for c in re.captures_iter(v) {
            b.values().append_option(c.get(g).map(|m| m.as_str()));
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

/// Converts a Java replacement string (`$1`, `${name}`, `\$`) to the
/// `regex` crate's syntax for a pattern with `groups` numbered groups.
fn java_replacement(r: &str, groups: usize) -> Result<String> {
    let chars: Vec<char> = r.chars().collect();
    let mut out = String::with_capacity(r.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let Some(&c) = chars.get(i + 1) else {
                    return fail("character to be escaped is missing in the replacement");
                };
                if c == '$' {
                    out.push_str("$$");
                } else {
                    out.push(c);
                }
                i += 2;
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    let end = chars[i..].iter().position(|c| *c == '}');
                    let Some(end) = end else {
                        return fail("named capturing group is missing trailing '}'");
                    };
                    let name: String = chars[i + 1..i + end].iter().collect();
                    out.push_str(&format!("${{{name}}}"));
                    i += end + 1;
                    continue;
                }
                let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) else {
                    return fail("Illegal group reference in the replacement");
                };
                let mut n = d as usize;
                i += 1;
                // Like Java: take further digits while they name an existing group.
                while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                    let m = n * 10 + d as usize;
                    if m > groups {
                        break;
                    }
                    n = m;
                    i += 1;
                }
                if n > groups {
                    return fail(format!("No group {n} in the pattern"));
                }
                out.push_str(&format!("${{{n}}}"));
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The one value of a string argument that is the same, non-null, on
/// every row (a constant), if it is.
fn constant(a: &StringArray) -> Option<&str> {
    if a.is_empty() || a.null_count() > 0 {
        return None;
    }
    let first = a.value(0);
    a.iter().all(|v| v == Some(first)).then_some(first)
}

/// The bytes of a pattern that is one ASCII character class repeated
/// (`[0-9]+`, `[a-f0-9]+`, `[ \t]+`): its matches are the maximal runs of
/// those bytes, found with a table instead of the regex engine. ASCII
/// bytes never occur inside a multi-byte UTF-8 character, so runs start
/// and end on character boundaries.
fn ascii_class_run(pattern: &str) -> Option<[bool; 256]> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let HirKind::Repetition(rep) = hir.kind() else {
        return None;
    };
    if rep.min != 1 || rep.max.is_some() || !rep.greedy {
        return None;
    }
    let HirKind::Class(class) = rep.sub.kind() else {
        return None;
    };
    let mut table = [false; 256];
    let mut mark = |start: u32, end: u32| {
        if end > 127 {
            return false;
        }
        for b in start..=end {
            table[b as usize] = true;
        }
        true
    };
    let ascii = match class {
        Class::Unicode(u) => u
            .ranges()
            .iter()
            .all(|r| mark(r.start() as u32, r.end() as u32)),
        Class::Bytes(b) => b
            .ranges()
            .iter()
            .all(|r| mark(u32::from(r.start()), u32::from(r.end()))),
    };
    ascii.then_some(table)
}

/// Replaces each maximal run of `table`'s bytes in `v` by `rep`, into
/// `buf`; false (and `buf` untouched) when there is none.
fn replace_runs(v: &str, table: &[bool; 256], rep: &str, buf: &mut String) -> bool {
    let bytes = v.as_bytes();
    let Some(first) = bytes.iter().position(|b| table[*b as usize]) else {
        return false;
    };
    buf.clear();
    let (mut i, mut last) = (first, 0);
    while i < bytes.len() {
        if table[bytes[i] as usize] {
            buf.push_str(&v[last..i]);
            buf.push_str(rep);
            while i < bytes.len() && table[bytes[i] as usize] {
                i += 1;
            }
            last = i;
        } else {
            i += 1;
        }
    }
    buf.push_str(&v[last..]);
    true
}

/// `regexp_replace` with a constant pattern and replacement (the usual
/// case): compiled once, and without group references, matches are
/// replaced into one reused buffer instead of a new string per row.
fn replace_constant(s: &StringArray, pattern: &str, replacement: &str) -> Result<ArrayRef> {
    let re = compile(pattern)?;
    let conv = java_replacement(replacement, re.captures_len() - 1)?;
    let literal = !conv.contains('$');
    let runs = if literal {
        ascii_class_run(pattern)
    } else {
        None
    };
    let mut out = StringBuilder::with_capacity(s.len(), s.value_data().len());
    let mut buf = String::new();
    for v in s.iter() {
        let Some(v) = v else {
            out.append_null();
            continue;
        };
        if let Some(table) = &runs {
            if replace_runs(v, table, &conv, &mut buf) {
                out.append_value(&buf);
            } else {
                out.append_value(v);
            }
        } else if literal {
            buf.clear();
            let mut last = 0;
            for m in re.find_iter(v) {
                buf.push_str(&v[last..m.start()]);
                buf.push_str(&conv);
                last = m.end();
            }
            if last == 0 && buf.is_empty() {
                out.append_value(v);
            } else {
                buf.push_str(&v[last..]);
                out.append_value(&buf);
            }
        } else {
            out.append_value(re.replace_all(v, conv.as_str()));
        }
    }
    Ok(Arc::new(out.finish()))
}

fn regexp_replace(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, p) = (strs(&args[0])?, strs(&args[1])?);
    let r = args.get(2).map(strs).transpose()?;
    let rep_constant = match r {
        None => Some(""),
        Some(r) => constant(r),
    };
    if let (Some(pattern), Some(rep)) = (constant(p), rep_constant) {
        return replace_constant(s, pattern, rep);
    }
    let mut last = Last::default();
    let mut last_rep: Option<(String, String, String)> = None;
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let rep = match r {
            None => Some(""),
            Some(r) => str_at(r, i),
        };
        let (Some(v), Some(pat), Some(rep)) = (str_at(s, i), str_at(p, i), rep) else {
            out.push(None);
            continue;
        };
        let re = last.get(pat)?;
        let fresh = !matches!(&last_rep, Some((lp, lr, _)) if lp == pat && lr == rep);
        if fresh {
            let conv = java_replacement(rep, re.captures_len() - 1)?;
            last_rep = Some((pat.to_string(), rep.to_string(), conv));
        }
        let conv = &last_rep.as_ref().expect("set above").2;
        out.push(Some(re.replace_all(v, conv.as_str()).into_owned()));
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn regexp_count(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, p) = (strs(&args[0])?, strs(&args[1])?);
    let mut last = Last::default();
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        out.push(match (str_at(s, i), str_at(p, i)) {
            (Some(v), Some(pat)) => Some(last.get(pat)?.find_iter(v).count() as i64),
            _ => None,
        });
    }
    Ok(Arc::new(Int64Array::from(out)))
}

fn regexp_split(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, p) = (strs(&args[0])?, strs(&args[1])?);
    let mut last = Last::default();
    let mut b = ListBuilder::new(StringBuilder::new());
    for i in 0..s.len() {
        let (Some(v), Some(pat)) = (str_at(s, i), str_at(p, i)) else {
            b.append(false);
            continue;
        };
        for part in last.get(pat)?.split(v) {
            b.values().append_value(part);
        }
        b.append(true);
    }
    Ok(Arc::new(b.finish()))
}

fn regexp_position(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, p) = (strs(&args[0])?, strs(&args[1])?);
    let start = args.get(2).map(ints).transpose()?;
    let occ = args.get(3).map(ints).transpose()?;
    let mut last = Last::default();
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let from = match start {
            None => Some(1),
            Some(a) => int_at(a, i),
        };
        let nth = match occ {
            None => Some(1),
            Some(a) => int_at(a, i),
        };
        let (Some(v), Some(pat), Some(from), Some(nth)) = (str_at(s, i), str_at(p, i), from, nth)
        else {
            out.push(None);
            continue;
        };
        if from < 1 {
            return fail("start position must be a positive integer");
        }
        if nth < 1 {
            return fail("occurrence must be a positive integer");
        }
        let re = last.get(pat)?;
        // Character positions are 1-based; the search starts at character `from`.
        let offset = match v.char_indices().nth(from as usize - 1) {
            Some((b, _)) => b,
            None => {
                out.push(Some(-1));
                continue;
            }
        };
        let hit = re.find_iter(&v[offset..]).nth(nth as usize - 1);
        out.push(Some(match hit {
            Some(m) => v[..offset + m.start()].chars().count() as i64 + 1,
            None => -1,
        }));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ascii_class_runs_are_recognised() {
        use super::ascii_class_run;
        assert!(ascii_class_run("[0-9]+").is_some());
        assert!(ascii_class_run("[a-f0-9]+").is_some());
        assert!(ascii_class_run("[0-9]*").is_none());
        assert!(ascii_class_run("[0-9]+?").is_none());
        assert!(ascii_class_run("\\d+").is_none(), "Unicode digits");
        assert!(ascii_class_run("[0-9é]+").is_none());
        assert!(ascii_class_run("a+").is_none(), "a literal, not a class");
    }

    use super::super::test_util::{ctx, err, one};
    use super::java_replacement;

    #[test]
    fn replacement_syntax() {
        assert_eq!(java_replacement("<$1>", 1).unwrap(), "<${1}>");
        assert_eq!(java_replacement("$10", 1).unwrap(), "${1}0");
        assert_eq!(java_replacement("\\$x", 0).unwrap(), "$$x");
        assert_eq!(java_replacement("${name}", 1).unwrap(), "${name}");
        assert!(java_replacement("$2", 1).is_err());
        assert!(java_replacement("$x", 1).is_err());
    }

    #[tokio::test]
    async fn regex_functions() {
        let c = ctx();
        assert_eq!(
            one(&c, "SELECT regexp_like('1a 2b 14m', '\\d+b')").await,
            "true"
        );
        assert_eq!(one(&c, "SELECT regexp_like('abc', '^b')").await, "false");
        assert_eq!(
            one(&c, "SELECT regexp_extract('1a 2b 14m', '\\d+')").await,
            "1"
        );
        assert_eq!(
            one(
                &c,
                "SELECT regexp_extract('1a 2b 14m', '(\\d+)([a-z]+)', 2)"
            )
            .await,
            "a"
        );
        assert_eq!(one(&c, "SELECT regexp_extract('abc', '\\d')").await, "NULL");
        assert_eq!(
            one(&c, "SELECT regexp_extract_all('1a 2b 14m', '\\d+')").await,
            "[1, 2, 14]"
        );
        assert_eq!(
            one(
                &c,
                "SELECT regexp_extract_all('1a 2b 14m', '(\\d+)([a-z]+)', 2)"
            )
            .await,
            "[a, b, m]"
        );
        assert_eq!(
            one(&c, "SELECT regexp_extract_all('abc', '\\d')").await,
            "[]"
        );
        assert_eq!(
            one(&c, "SELECT regexp_replace('1a 2b 14m', '\\d+[ab] ')").await,
            "14m"
        );
        assert_eq!(
            one(
                &c,
                "SELECT regexp_replace('1a 2b 14m', '(\\d+)([ab]) ', '3c$2 ')"
            )
            .await,
            "3ca 3cb 14m"
        );
        assert_eq!(
            one(&c, "SELECT regexp_replace('abc', 'x*', '-')").await,
            "-a-b-c-"
        );
        // Runs of one ASCII class (matched without the regex engine), next
        // to multi-byte characters.
        assert_eq!(
            one(&c, "SELECT regexp_replace('é12ü3x45', '[0-9]+', '#')").await,
            "é#ü#x#"
        );
        assert_eq!(
            one(&c, "SELECT regexp_replace('a  b\t c', '[ \t]+', ' ')").await,
            "a b c"
        );
        assert_eq!(
            one(&c, "SELECT regexp_replace('99', '[0-9]+', '')").await,
            ""
        );
        // Constant pattern over a column, and a pattern that varies by row.
        assert_eq!(
            one(
                &c,
                "SELECT array_join(array_agg(regexp_replace(p, '[0-9]+', '{id}') ORDER BY p), ',') \
                 FROM (VALUES ('/u/12/x/7'), ('/a'), (NULL), ('9')) AS t(p)"
            )
            .await,
            "/a,/u/{id}/x/{id},{id}"
        );
        assert_eq!(
            one(
                &c,
                "SELECT array_join(array_agg(regexp_replace(s, p, 'X') ORDER BY s), ',') \
                 FROM (VALUES ('a1b', '[0-9]'), ('a1b', '[a-z]')) AS t(s, p)"
            )
            .await,
            "aXb,X1X"
        );
        assert_eq!(
            one(&c, "SELECT regexp_count('1a 2b 14m', '\\s*[a-z]+\\s*')").await,
            "3"
        );
        assert_eq!(
            one(&c, "SELECT regexp_split('1a 2b 14m', '\\s*[a-z]+\\s*')").await,
            "[1, 2, 14, ]"
        );
        assert_eq!(
            one(
                &c,
                "SELECT regexp_position('I have 23 apples, 5 pears', '\\d', 5, 2)"
            )
            .await,
            "9"
        );
        assert_eq!(one(&c, "SELECT regexp_position('abc', 'z')").await, "-1");
        assert_eq!(one(&c, "SELECT regexp_like(NULL, 'a')").await, "NULL");
        let e = err(&c, "SELECT regexp_like('a', '(')").await;
        assert!(e.contains("invalid regular expression"), "{e}");
        let e = err(&c, "SELECT regexp_like('a', 'a(?=b)')").await;
        assert!(e.contains("look-around"), "{e}");
        let e = err(&c, "SELECT regexp_extract('a', 'a', 1)").await;
        assert!(e.contains("Cannot access group 1"), "{e}");
    }

    #[tokio::test]
    async fn column_patterns() {
        let c = ctx();
        let rows = super::super::test_util::run(
            &c,
            "SELECT regexp_extract(s, p) FROM (VALUES ('a1', '\\d'), ('b2', '[a-z]'), ('c', NULL)) t(s, p)",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["1"], vec!["b"], vec!["NULL"]]);
    }
}
