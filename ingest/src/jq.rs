//! Partition keys from records with JQ (Firehose's `MetadataExtraction`
//! processor), evaluated by the `jaq` interpreter.
//!
//! The query is run once per record and must produce one JSON object whose
//! values are scalars, e.g. `{service: .service, day: .timestamp[0:10]}`.
//! Those values fill `!{partitionKeyFromQuery:<key>}` in the prefix.

use std::collections::HashMap;

use std::borrow::Cow;

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Term};
use jaq_core::load::{Arena, File, Lexer, Loader, Parser};
use jaq_core::path::Part;
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;

type JqFilter = jaq_core::Filter<data::JustLut<Val>>;

/// A compiled `MetadataExtractionQuery`.
pub struct MetadataQuery {
    text: String,
    filter: JqFilter,
    /// When the query provably reads the record only through top-level
    /// fields (`.service`, `.http.method`, `{level}`, ...), their names: the
    /// query then runs on just those fields, which spares parsing the rest
    /// of every record into jq values. `None` runs it on the whole record.
    fields: Option<Vec<String>>,
    /// Whether equal inputs always give equal outputs (no `now`, `input`,
    /// `$ENV`, ...), so results may be reused for records whose projected
    /// fields are equal.
    pure: bool,
}

/// Partition keys extracted from one record.
pub type Keys = std::sync::Arc<HashMap<String, String>>;

/// Reuses extraction results within a batch: records that agree on the
/// fields the query reads get the same keys without running it again.
#[derive(Debug, Default)]
pub struct KeyCache {
    map: HashMap<Vec<u8>, Result<Keys, ExtractError>>,
}

/// Most results a [`KeyCache`] holds before it starts over.
const KEY_CACHE_ENTRIES: usize = 4096;

/// Builtins whose result does not depend on the input alone.
const IMPURE: &[&str] = &[
    "now",
    "input",
    "inputs",
    "debug",
    "stderr",
    "env",
    "$ENV",
    "halt",
    "halt_error",
    "input_filename",
    "input_line_number",
    "$__loc__",
    "$__prog_args",
];

fn is_pure(text: &str) -> bool {
    let words = text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'));
    !words.into_iter().any(|w| IMPURE.contains(&w))
}

impl std::fmt::Debug for MetadataQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataQuery")
            .field("text", &self.text)
            .finish()
    }
}

/// Why extracting keys from one record failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The record is not valid JSON.
    #[error("record is not valid JSON: {0}")]
    InvalidJson(String),
    /// The query failed on the record.
    #[error("JQ query failed on the record: {0}")]
    Query(String),
    /// The query produced something other than one object.
    #[error("JQ query must produce one JSON object of partition keys, got {0}")]
    NotAnObject(String),
}

impl MetadataQuery {
    /// Compiles a query; the error names what is wrong.
    pub fn compile(text: &str) -> Result<Self, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let program = File {
            code: text,
            path: (),
        };
        let modules = loader
            .load(&arena, program)
            .map_err(|errs| format!("invalid JQ query {text:?}: {}", describe(&errs)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| format!("invalid JQ query {text:?}: {}", describe(&errs)))?;
        Ok(Self {
            text: text.to_string(),
            filter,
            fields: record_fields(text),
            pure: is_pure(text),
        })
    }

    /// The top-level fields the query reads, when that is provable.
    pub fn fields(&self) -> Option<&[String]> {
        self.fields.as_deref()
    }

    /// The query text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Runs the query on one JSON record and returns its partition keys.
    /// Keys whose value is `null` are left out (so a prefix that needs them
    /// reports a missing key).
    pub fn extract(&self, record: &[u8]) -> Result<Keys, ExtractError> {
        self.extract_with(record, None, false)
    }

    /// [`extract`](Self::extract), reusing results from `cache` when the
    /// query reads only top-level fields and is pure.
    ///
    /// With `lenient`, the record's JSON is checked later (Parquet
    /// conversion), so only the fields the query reads are checked here.
    pub fn extract_cached(
        &self,
        record: &[u8],
        cache: &mut KeyCache,
        lenient: bool,
    ) -> Result<Keys, ExtractError> {
        self.extract_with(record, Some(cache), lenient)
    }

    fn extract_with(
        &self,
        record: &[u8],
        cache: Option<&mut KeyCache>,
        lenient: bool,
    ) -> Result<Keys, ExtractError> {
        let projected = self
            .fields
            .as_deref()
            .and_then(|f| project(record, f, lenient));
        if let (Some(p), Some(cache), true) = (&projected, cache, self.pure) {
            if let Some(hit) = cache.map.get(p) {
                return hit.clone();
            }
            let result = self.run(p);
            if cache.map.len() >= KEY_CACHE_ENTRIES {
                cache.map.clear();
            }
            cache.map.insert(p.clone(), result.clone());
            return result;
        }
        self.run(projected.as_deref().unwrap_or(record))
    }

    fn run(&self, input: &[u8]) -> Result<Keys, ExtractError> {
        let input = jaq_json::read::parse_single(input)
            .map_err(|e| ExtractError::InvalidJson(e.to_string()))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = self.filter.id.run((ctx, input)).map(unwrap_valr);
        let first = match outputs.next() {
            None => return Err(ExtractError::NotAnObject("no output".into())),
            Some(Err(e)) => return Err(ExtractError::Query(e.to_string())),
            Some(Ok(v)) => v,
        };
        if outputs.next().is_some() {
            return Err(ExtractError::NotAnObject("more than one output".into()));
        }
        let Val::Obj(map) = first else {
            return Err(ExtractError::NotAnObject(truncate(first.to_string())));
        };
        let mut keys = HashMap::with_capacity(map.len());
        for (k, v) in map.iter() {
            let key = match k {
                Val::TStr(s) | Val::BStr(s) => String::from_utf8_lossy(s).into_owned(),
                other => other.to_string(),
            };
            let value = match v {
                Val::Null => continue,
                Val::TStr(s) | Val::BStr(s) => String::from_utf8_lossy(s).into_owned(),
                Val::Bool(_) | Val::Num(_) => v.to_string(),
                Val::Arr(_) | Val::Obj(_) => {
                    return Err(ExtractError::Query(format!(
                        "partition key {key:?} must be a scalar, got {}",
                        truncate(v.to_string())
                    )));
                }
            };
            keys.insert(key, value);
        }
        Ok(Keys::new(keys))
    }
}

/// The record reduced to the given top-level fields, as JSON text; `None`
/// when it is not a JSON object (the query then sees the whole record and
/// reports the problem itself).
fn project(record: &[u8], fields: &[String], lenient: bool) -> Option<Vec<u8>> {
    let scanned;
    let parsed;
    let top: Vec<(Cow<'_, str>, &[u8])> = match lenient.then(|| scan_top_level(record)).flatten() {
        Some(members) => {
            scanned = members;
            scanned
        }
        None => {
            parsed = serde_json::from_slice::<TopLevel<'_>>(record).ok()?.0;
            parsed
                .into_iter()
                .map(|(k, v)| (k, v.get().as_bytes()))
                .collect()
        }
    };
    let mut out = Vec::with_capacity(64);
    out.push(b'{');
    // Later duplicates win, as in jq.
    for (i, (key, value)) in top.iter().enumerate() {
        if !fields.iter().any(|f| f == key) || top[i + 1..].iter().any(|(k, _)| k == key) {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.push(b'}');
    Some(out)
}

/// A fast structural scan of a JSON object's top-level members, for records
/// whose JSON is validated later anyway (Parquet conversion): strings and
/// brackets are matched, but values are not checked. Gives up (`None`) on
/// anything unusual — escaped keys, malformed structure — and the caller
/// parses properly instead.
fn scan_top_level(rec: &[u8]) -> Option<Vec<(Cow<'_, str>, &[u8])>> {
    fn ws(rec: &[u8], mut i: usize) -> usize {
        while i < rec.len() && matches!(rec[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }
    /// `i` is just after an opening quote; returns the index after the
    /// closing one.
    fn string_end(rec: &[u8], mut i: usize) -> Option<usize> {
        loop {
            i += memchr::memchr2(b'"', b'\\', &rec[i..])?;
            if rec[i] == b'"' {
                return Some(i + 1);
            }
            i += 2;
        }
    }
    fn value_end(rec: &[u8], i: usize) -> Option<usize> {
        match *rec.get(i)? {
            b'"' => string_end(rec, i + 1),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                while j < rec.len() {
                    match rec[j] {
                        b'"' => {
                            j = string_end(rec, j + 1)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                None
            }
            _ => {
                let mut j = i;
                while j < rec.len()
                    && !matches!(rec[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    j += 1;
                }
                (j > i).then_some(j)
            }
        }
    }
    let mut members = Vec::with_capacity(16);
    let mut i = ws(rec, 0);
    if rec.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(rec, i + 1);
    if rec.get(i) == Some(&b'}') {
        return (ws(rec, i + 1) == rec.len()).then_some(members);
    }
    loop {
        if rec.get(i) != Some(&b'"') {
            return None;
        }
        let end = string_end(rec, i + 1)?;
        let key = &rec[i + 1..end - 1];
        if key.contains(&b'\\') {
            return None;
        }
        let key = std::str::from_utf8(key).ok()?;
        i = ws(rec, end);
        if rec.get(i) != Some(&b':') {
            return None;
        }
        let start = ws(rec, i + 1);
        let stop = value_end(rec, start)?;
        members.push((Cow::Borrowed(key), &rec[start..stop]));
        i = ws(rec, stop);
        match rec.get(i) {
            Some(b',') => i = ws(rec, i + 1),
            Some(b'}') => return (ws(rec, i + 1) == rec.len()).then_some(members),
            _ => return None,
        }
    }
}

/// A JSON object's top-level members in order, values left unparsed.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    members.push((key.0, map.next_value()?));
                }
                Ok(TopLevel(members))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A string borrowed from the input unless it has escapes.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// The top-level fields through which the query reads its input, when the
/// query reads it in no other way; `None` when that cannot be shown (a bare
/// `.`, `..`, a call of a filter, a variable binding over the input, ...).
fn record_fields(text: &str) -> Option<Vec<String>> {
    let tokens = Lexer::new(text).lex().ok()?;
    let term = Parser::new(&tokens).parse(Parser::term).ok()?;
    let mut fields = Vec::new();
    reads_only_fields(&term, &mut fields).then_some(fields)
}

/// A string literal without interpolation.
fn const_str(t: &Term<&str>) -> Option<String> {
    match t {
        Term::Str(None, parts) => {
            let mut s = String::new();
            for p in parts {
                match p {
                    StrPart::Str(x) => s.push_str(x),
                    StrPart::Char(c) => s.push(*c),
                    StrPart::Term(_) => return None,
                }
            }
            Some(s)
        }
        _ => None,
    }
}

/// Whether `t`, run with the record as its input, reads the record only
/// through top-level fields (collected into `fields`).
fn reads_only_fields(t: &Term<&str>, fields: &mut Vec<String>) -> bool {
    let add = |name: String, fields: &mut Vec<String>| {
        if !fields.contains(&name) {
            fields.push(name);
        }
    };
    match t {
        Term::Num(_) | Term::Var(_) | Term::Break(_) => true,
        Term::Str(None, parts) => parts.iter().all(|p| match p {
            StrPart::Term(t) => reads_only_fields(t, fields),
            _ => true,
        }),
        Term::Arr(None) => true,
        Term::Arr(Some(t)) | Term::Neg(t) => reads_only_fields(t, fields),
        Term::Obj(entries) => entries.iter().all(|(k, v)| match v {
            // `{name}` and `{"name"}` read `.name`.
            None => match const_str(k) {
                Some(name) => {
                    add(name, fields);
                    true
                }
                None => matches!(k, Term::Var(_)),
            },
            Some(v) => reads_only_fields(k, fields) && reads_only_fields(v, fields),
        }),
        Term::BinOp(l, op, r) => match op {
            // The right side runs on the left side's outputs, not on the record.
            BinaryOp::Pipe(None) => reads_only_fields(l, fields),
            BinaryOp::Comma
            | BinaryOp::Alt
            | BinaryOp::Or
            | BinaryOp::And
            | BinaryOp::Math(_)
            | BinaryOp::Cmp(_) => reads_only_fields(l, fields) && reads_only_fields(r, fields),
            _ => false,
        },
        Term::IfThenElse(branches, otherwise) => {
            branches
                .iter()
                .all(|(c, b)| reads_only_fields(c, fields) && reads_only_fields(b, fields))
                && otherwise
                    .as_deref()
                    .is_none_or(|o| reads_only_fields(o, fields))
        }
        // A catch handler runs on the error, not on the record.
        Term::TryCatch(t, _) => reads_only_fields(t, fields),
        Term::Call(name, args) => {
            args.is_empty() && matches!(*name, "null" | "true" | "false" | "empty")
        }
        Term::Path(head, path) => {
            let mut parts = path.0.iter();
            let head_ok = match head.as_ref() {
                // `.name...`: the first part must be a constant field name.
                Term::Id => match parts.next() {
                    Some((Part::Index(k), _)) => match const_str(k) {
                        Some(name) => {
                            add(name, fields);
                            true
                        }
                        None => false,
                    },
                    _ => false,
                },
                other => reads_only_fields(other, fields),
            };
            // Index and range expressions run on the record too.
            head_ok
                && parts.all(|(part, _)| match part {
                    Part::Index(i) => reads_only_fields(i, fields),
                    Part::Range(a, b) => {
                        a.as_ref().is_none_or(|a| reads_only_fields(a, fields))
                            && b.as_ref().is_none_or(|b| reads_only_fields(b, fields))
                    }
                })
        }
        _ => false,
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn describe<T: std::fmt::Debug>(errs: &T) -> String {
    truncate(format!("{errs:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_keys() {
        let q = MetadataQuery::compile(
            r#"{service: .service, device: .type.device, status: .status, day: .ts[0:10], ok: (.status < 500)}"#,
        )
        .unwrap();
        let keys = q
            .extract(br#"{"service":"web","type":{"device":"phone"},"status":200,"ts":"2026-01-02T03:04:05Z"}"#)
            .unwrap();
        assert_eq!(keys["service"], "web");
        assert_eq!(keys["device"], "phone");
        assert_eq!(keys["status"], "200");
        assert_eq!(keys["day"], "2026-01-02");
        assert_eq!(keys["ok"], "true");
    }

    #[test]
    fn jq_standard_library_works() {
        // Firehose's guide uses strftime over an epoch field.
        let q = MetadataQuery::compile(r#"{year: (.event_timestamp | strftime("%Y"))}"#).unwrap();
        let keys = q.extract(br#"{"event_timestamp": 1700000000}"#).unwrap();
        assert_eq!(keys["year"], "2023");
    }

    #[test]
    fn field_analysis_is_conservative() {
        let fields = |q: &str| {
            MetadataQuery::compile(q)
                .unwrap()
                .fields()
                .map(<[String]>::to_vec)
        };
        assert_eq!(
            fields("{service: .service}"),
            Some(vec!["service".to_string()])
        );
        assert_eq!(
            fields(
                r#"{a: .http.method, b: (.ts | strftime("%Y")), c: .x[0:2], level, "q": (.s // "none")}"#
            ),
            Some(vec![
                "http".into(),
                "ts".into(),
                "x".into(),
                "level".into(),
                "s".into()
            ])
        );
        assert_eq!(
            fields(r#"{a: (if .n > 1 then "big" else .m end)}"#),
            Some(vec!["n".into(), "m".into()])
        );
        // Anything that can see the whole record runs on the whole record.
        for q in [
            "{a: .}",
            "{a: keys[0]}",
            "{a: (. | length)}",
            "{a: ..}",
            ".a as $x | {a: .b}",
            "{a: .[.k]}",
            "{a: tojson}",
            "def f: .; {a: f}",
            "{a: .[]}",
        ] {
            assert_eq!(fields(q), None, "{q}");
        }
        // .[.k] reads .k as well as the field it names: not provable.
        assert_eq!(fields("{a: .x[.k]}"), Some(vec!["x".into(), "k".into()]));
    }

    #[test]
    fn projection_gives_the_same_keys() {
        let q = MetadataQuery::compile(r#"{service: .service, m: .http.method}"#).unwrap();
        assert!(q.fields().is_some());
        let rec = br#"{"big": {"deep": [1,2,3]}, "service": "x", "http": {"method": "GET"}, "service": "last", "esc\u0061ped": 1}"#;
        let keys = q.extract(rec).unwrap();
        assert_eq!(keys["service"], "last");
        assert_eq!(keys["m"], "GET");
        // Escaped keys still match.
        let q = MetadataQuery::compile("{a: .escaped}").unwrap();
        assert_eq!(q.extract(rec).unwrap()["a"], "1");
        // Results are reused for equal projections, and only then.
        let q = MetadataQuery::compile("{s: .service}").unwrap();
        let mut cache = KeyCache::default();
        let a = q
            .extract_cached(br#"{"service":"web","n":1}"#, &mut cache, false)
            .unwrap();
        let b = q
            .extract_cached(br#"{"n":2,"service":"web"}"#, &mut cache, false)
            .unwrap();
        let c = q
            .extract_cached(br#"{"service":"api"}"#, &mut cache, false)
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert_eq!(c["s"], "api");
        assert!(!MetadataQuery::compile("{t: (.x | now)}").unwrap().pure);
        let q = MetadataQuery::compile("{a: .escaped}").unwrap();
        // Not an object: the full query reports the problem.
        assert!(q.extract(b"[1]").is_err());
        assert!(matches!(
            q.extract(b"{bad"),
            Err(ExtractError::InvalidJson(_))
        ));
    }

    #[test]
    fn the_fast_scan_agrees_with_the_parser() {
        let records: &[&[u8]] = &[
            br#"{"a": 1, "s": "x,}]", "n": {"b": [1, {"c": "]"}]}, "e": "q\"uote", "t": true}"#,
            br#"  {"a":-1.5e3,"s":null}  "#,
            br#"{}"#,
            br#"{"k\u0061": 1, "a": 2}"#,
            br#"{"a": 1,}"#,
            br#"{"a" 1}"#,
            br#"[1]"#,
            br#"{"a": {"unclosed": 1}"#,
        ];
        for rec in records {
            let fast = scan_top_level(rec);
            let slow = serde_json::from_slice::<TopLevel<'_>>(rec).ok();
            match (&fast, &slow) {
                (Some(f), Some(s)) => {
                    let s: Vec<(String, String)> =
                        s.0.iter()
                            .map(|(k, v)| (k.to_string(), v.get().to_string()))
                            .collect();
                    let f: Vec<(String, String)> = f
                        .iter()
                        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v).to_string()))
                        .collect();
                    assert_eq!(f, s, "{}", String::from_utf8_lossy(rec));
                }
                // The scan may give up where the parser succeeds (escaped
                // keys), never the reverse on valid JSON.
                (None, _) => {}
                (Some(_), None) => panic!("scan accepted invalid {}", String::from_utf8_lossy(rec)),
            }
        }
        assert!(scan_top_level(br#"{"k\u0061": 1}"#).is_none());
        let q = MetadataQuery::compile("{s: .s}").unwrap();
        let mut cache = KeyCache::default();
        let keys = q.extract_cached(records[0], &mut cache, true).unwrap();
        assert_eq!(keys["s"], "x,}]");
    }

    #[test]
    fn null_keys_are_missing_and_errors_are_reported() {
        let q = MetadataQuery::compile("{a: .a}").unwrap();
        assert!(q.extract(br#"{"b":1}"#).unwrap().is_empty());
        assert!(matches!(
            q.extract(b"{not json"),
            Err(ExtractError::InvalidJson(_))
        ));
        let q = MetadataQuery::compile(".a").unwrap();
        assert!(matches!(
            q.extract(br#"{"a":1}"#),
            Err(ExtractError::NotAnObject(_))
        ));
        let q = MetadataQuery::compile("{a: .a}").unwrap();
        assert!(matches!(
            q.extract(br#"{"a":[1]}"#),
            Err(ExtractError::Query(_))
        ));
        assert!(MetadataQuery::compile("{a: .a").is_err());
        assert!(MetadataQuery::compile("{a: nosuchfn}").is_err());
    }
}
