//! Partition keys from records with JQ (Firehose's `MetadataExtraction`
//! processor), evaluated by the `jaq` interpreter.
//!
//! The query is run once per record and must produce one JSON object whose
//! values are scalars, e.g. `{service: .service, day: .timestamp[0:10]}`.
//! Those values fill `!{partitionKeyFromQuery:<key>}` in the prefix.
//!
//! **Bounds.** A query and a record both come from outside, so nothing here
//! may run forever, recurse without a limit or take the process down:
//!
//! - a record nested deeper than [`MAX_JSON_DEPTH`] is refused by a flat
//!   byte scan before any recursive parser sees it;
//! - a query is at most [`MAX_QUERY_LEN`] characters, and is compiled and
//!   evaluated on the threads of [`pool`], whose stacks are large;
//! - every definition call, every loop (`reduce`/`foreach`), every output
//!   of a filter argument, every array element collected, every value
//!   piped on and every `//` and `try` attempt is one step: the query is rewritten so each passes a native
//!   filter that fails the evaluation past [`MAX_EVAL_STEPS`] steps, past
//!   [`MAX_EVAL_TIME`], or when little stack is left;
//! - a value passing a step (the accumulator of every `reduce`/`foreach`
//!   iteration included) may be at most [`MAX_EVAL_VALUE_BYTES`] long as
//!   JSON text, and a string may not be repeated (`"x" * n`) past it, so a
//!   query cannot build a value that exhausts memory;
//! - builtins that read the server's environment or write to its output
//!   (`env`, `$ENV`, `debug`, `stderr`, `input`, `halt`, ...) do not exist
//!   here, and `fromjson` refuses text nested deeper than
//!   [`MAX_JSON_DEPTH`];
//! - what is shown of a value in an error is at most a few hundred bytes,
//!   however large the value;
//! - a query is tried on an empty object when it is compiled, so one that
//!   never ends is refused by `CreateDeliveryStream`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use std::borrow::Cow;

use jaq_core::box_iter::box_once;
use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::load::{Arena, File, Lexer, Loader, Parser};
use jaq_core::ops::Math;
use jaq_core::path::Part;
use jaq_core::{Bind, Compiler, Ctx, Exn, Native, Vars, data, unwrap_valr};
use jaq_json::Val;

/// The deepest nesting of arrays and objects a record may have for a JQ
/// query to see it (serde_json's own recursion limit, which the Parquet
/// conversion applies as well).
pub(crate) const MAX_JSON_DEPTH: usize = 128;
/// The longest `MetadataExtractionQuery` (Firehose's `ParameterValue`
/// limit).
pub(crate) const MAX_QUERY_LEN: usize = 5120;
/// Steps (definition calls, loop iterations, collected elements, piped
/// values) one evaluation may take.
pub(crate) const MAX_EVAL_STEPS: u64 = 100_000;
/// Time one evaluation may take.
pub(crate) const MAX_EVAL_TIME: Duration = Duration::from_millis(250);
/// The longest value (as JSON text) an evaluation may build.
pub(crate) const MAX_EVAL_VALUE_BYTES: u64 = 16 << 20;
/// Builtins a query may not call: they read the server's environment or
/// write to its output.
const DENIED_BUILTINS: &[&str] = &[
    "env",
    "debug",
    "stderr",
    "debug_empty",
    "stderr_empty",
    "halt",
    "halt_error",
    "input",
    "inputs",
    "input_filename",
    "input_line_number",
];
/// The native that multiplies `[l, r]` (bounding string repetition).
const MUL: &str = "_lakehose_mul";
/// Stack an evaluation step must leave free; a deeper recursion fails.
const STACK_RED_ZONE: usize = 1024 * 1024;
/// The native filter every step passes through.
const STEP: &str = "_lakehose_step";
/// The definition the user's query is compiled into.
const QUERY_DEF: &str = "_lakehose_query";

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
pub(crate) struct KeyCache {
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
    /// The record nests arrays and objects too deeply to be evaluated.
    #[error(
        "record nests arrays and objects more than {MAX_JSON_DEPTH} levels deep; JQ queries are not run on it"
    )]
    TooDeep,
    /// The evaluation hit one of its bounds.
    #[error("JQ query stopped: {0}")]
    Bound(String),
}

impl MetadataQuery {
    /// Compiles a query; the error names what is wrong. The query is tried
    /// on an empty object with the evaluation bounds, so one that never
    /// ends is refused here. Runs on the [`pool`].
    pub fn compile(text: &str) -> Result<Self, String> {
        if text.len() > MAX_QUERY_LEN {
            return Err(format!(
                "MetadataExtractionQuery is {} characters long; at most {MAX_QUERY_LEN} are allowed",
                text.len()
            ));
        }
        let owned = text.to_string();
        pool::run_blocking(move || Self::compile_here(&owned, true))
            .map_err(|panic| format!("invalid JQ query {text:?}: the compiler failed ({panic})"))?
    }

    /// Compiles a stored query without trying it (so a stream stored
    /// before queries were tried keeps working; each record it cannot
    /// finish on goes to the error prefix). Runs on the [`pool`].
    pub fn load(text: &str) -> Result<Self, String> {
        let owned = text.to_string();
        pool::run_blocking(move || Self::compile_here(&owned, false))
            .map_err(|panic| format!("invalid JQ query {text:?}: the compiler failed ({panic})"))?
    }

    fn compile_here(text: &str, try_it: bool) -> Result<Self, String> {
        // The step filter and the query's definition must be lakehose's own.
        if text.contains("_lakehose") {
            return Err(format!(
                "invalid JQ query {text:?}: names starting with _lakehose are reserved"
            ));
        }
        let tokens = Lexer::new(text)
            .lex()
            .map_err(|errs| format!("invalid JQ query {text:?}: {}", describe(&errs)))?;
        let mut term = Parser::new(&tokens)
            .parse(Parser::term)
            .map_err(|errs| format!("invalid JQ query {text:?}: {}", describe(&errs)))?;
        let mut read = Vec::new();
        let fields = reads_only_fields(&term, &mut read).then_some(read);
        instrument(&mut term);
        let prelude = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs())
            .map(|mut def| -> Def<&str> {
                instrument_def(&mut def);
                def
            })
            .chain([Def {
                name: QUERY_DEF,
                args: Vec::new(),
                body: term,
            }]);
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|(name, _, _)| *name != "fromjson")
            .map(|(name, binds, native)| {
                if DENIED_BUILTINS.contains(&name) {
                    (name, binds, denied_filter())
                } else {
                    (name, binds, native)
                }
            })
            .chain([step_filter(), mul_filter(), fromjson_filter()]);
        let loader = Loader::new(prelude);
        let arena = Arena::default();
        let program = File {
            code: QUERY_DEF,
            path: (),
        };
        let modules = loader
            .load(&arena, program)
            .map_err(|errs| format!("invalid JQ query {text:?}: {}", describe(&errs)))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| format!("invalid JQ query {text:?}: {}", describe(&errs)))?;
        let query = Self {
            text: text.to_string(),
            filter,
            fields,
            pure: is_pure(text),
        };
        // A query that cannot finish on the simplest record never will.
        if try_it && let Err(ExtractError::Bound(why)) = query.run(b"{}") {
            return Err(format!(
                "JQ query {text:?} does not finish on an empty record: {why}"
            ));
        }
        Ok(query)
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
    pub(crate) fn extract_cached(
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
        // jaq's reader recurses once per level, without a limit.
        if nesting_exceeds(input, MAX_JSON_DEPTH) {
            return Err(ExtractError::TooDeep);
        }
        let input = jaq_json::read::parse_single(input)
            .map_err(|e| ExtractError::InvalidJson(e.to_string()))?;
        let (first, more) = {
            let _budget = Budget::start();
            let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
            let mut outputs = self.filter.id.run((ctx, input)).map(unwrap_valr);
            let first = outputs.next();
            let more = first.as_ref().is_some_and(Result::is_ok) && outputs.next().is_some();
            // A bound hit is final even when `try` or `//` caught its error.
            if let Some(why) = Budget::hit() {
                return Err(ExtractError::Bound(why));
            }
            (first, more)
        };
        let first = match first {
            None => return Err(ExtractError::NotAnObject("no output".into())),
            Some(Err(e)) => return Err(ExtractError::Query(shown(&e))),
            Some(Ok(v)) => v,
        };
        if more {
            return Err(ExtractError::NotAnObject("more than one output".into()));
        }
        let Val::Obj(map) = first else {
            return Err(ExtractError::NotAnObject(shown(&first)));
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
                        shown(v)
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
            // `get`: an escape may be the last byte, leaving `i` past the end.
            i += memchr::memchr2(b'"', b'\\', rec.get(i..)?)?;
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
                            depth = depth.saturating_sub(1);
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

/// Whether `json` nests arrays and objects more than `limit` deep. A flat
/// scan (brackets inside strings do not count), so it is safe on any input;
/// malformed JSON is left for the parser to report.
pub(crate) fn nesting_exceeds(json: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&c) = json.get(i) {
        match c {
            b'"' => {
                i += 1;
                loop {
                    let Some(k) = json.get(i..).and_then(|r| memchr::memchr2(b'"', b'\\', r))
                    else {
                        return false;
                    };
                    i += k;
                    if json[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// The bounds of the evaluation running on this thread.
struct Budget {
    steps: u64,
    deadline: Instant,
    hit: Option<String>,
    /// The JSON size of each array and object seen, by address (the value
    /// is kept so the address is not reused while the evaluation runs).
    sizes: HashMap<usize, (Val, u64)>,
}

thread_local! {
    static BUDGET: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// Starts a bounded evaluation on this thread; dropping it ends it.
struct BudgetGuard;

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        BUDGET.with(|b| b.borrow_mut().take());
    }
}

impl Budget {
    fn start() -> BudgetGuard {
        BUDGET.with(|b| {
            *b.borrow_mut() = Some(Budget {
                steps: 0,
                deadline: Instant::now() + MAX_EVAL_TIME,
                hit: None,
                sizes: HashMap::new(),
            })
        });
        BudgetGuard
    }

    /// Why the running evaluation was stopped, if it was.
    fn hit() -> Option<String> {
        BUDGET.with(|b| b.borrow().as_ref().and_then(|b| b.hit.clone()))
    }

    /// Counts one step; `Err` once any bound is passed (and from then on).
    fn step() -> Result<(), String> {
        Self::step_with(None)
    }

    /// Counts one step of `value`, which must not be longer than
    /// [`MAX_EVAL_VALUE_BYTES`].
    fn step_value(value: &Val) -> Result<(), String> {
        Self::step_with(Some(value))
    }

    fn step_with(value: Option<&Val>) -> Result<(), String> {
        BUDGET.with(|b| {
            let mut b = b.borrow_mut();
            let Some(b) = b.as_mut() else {
                return Ok(());
            };
            if let Some(hit) = &b.hit {
                return Err(hit.clone());
            }
            b.steps += 1;
            let size = value.map_or(0, |v| json_size(v, &mut b.sizes));
            let hit = if size > MAX_EVAL_VALUE_BYTES {
                Some(if size == u64::MAX {
                    "it built a value nested too deeply".to_string()
                } else {
                    format!(
                        "it built a value longer than {} MiB",
                        MAX_EVAL_VALUE_BYTES >> 20
                    )
                })
            } else if b.steps > MAX_EVAL_STEPS {
                Some(format!(
                    "it took more than {MAX_EVAL_STEPS} evaluation steps on one record"
                ))
            } else if b.steps % 64 == 0 && Instant::now() > b.deadline {
                Some(format!(
                    "it ran longer than {} ms on one record",
                    MAX_EVAL_TIME.as_millis()
                ))
            } else if stacker::remaining_stack().is_some_and(|left| left < STACK_RED_ZONE) {
                Some("it recursed too deeply".to_string())
            } else {
                None
            };
            match hit {
                Some(why) => {
                    b.hit = Some(why.clone());
                    Err(why)
                }
                None => Ok(()),
            }
        })
    }
}

type Data = data::JustLut<Val>;

fn step_error<'a, T>(why: String) -> jaq_core::ValXs<'a, T, Val>
where
    T: 'a,
{
    box_once(Err(Exn::from(jaq_core::Error::str(why))))
}

/// The length of `value` as JSON text, roughly (numbers count 8), up to a
/// little past [`MAX_EVAL_VALUE_BYTES`]; `u64::MAX` when it is nested too
/// deeply to measure. Arrays and objects already measured are looked up in
/// `sizes`, so a value shared by many others is walked once.
fn json_size(value: &Val, sizes: &mut HashMap<usize, (Val, u64)>) -> u64 {
    let key = match value {
        Val::Null => return 4,
        Val::Bool(_) => return 5,
        Val::Num(_) => return 8,
        Val::TStr(b) | Val::BStr(b) => return b.len() as u64 + 2,
        Val::Arr(a) => std::rc::Rc::as_ptr(a) as *const () as usize,
        Val::Obj(o) => std::rc::Rc::as_ptr(o) as *const () as usize,
    };
    if let Some((_, n)) = sizes.get(&key) {
        return *n;
    }
    if stacker::remaining_stack().is_some_and(|left| left < STACK_RED_ZONE) {
        return u64::MAX;
    }
    let mut n = 2u64;
    let mut add = |part: u64| {
        n = n.saturating_add(part).saturating_add(1);
        n <= MAX_EVAL_VALUE_BYTES
    };
    let complete = match value {
        Val::Arr(a) => a.iter().all(|x| add(json_size(x, sizes))),
        Val::Obj(o) => o
            .iter()
            .all(|(k, v)| add(json_size(k, sizes)) && add(json_size(v, sizes))),
        _ => true,
    };
    if complete {
        sizes.insert(key, (value.clone(), n));
    }
    n
}

/// `_lakehose_mul`: `[l, r] | l * r`, refusing a string repeated past
/// [`MAX_EVAL_VALUE_BYTES`].
fn mul_filter() -> jaq_core::native::Fun<Data> {
    let native = Native::<Data>::new(|cv| {
        let (l, r) = match &cv.1 {
            Val::Arr(pair) if pair.len() == 2 => (pair[0].clone(), pair[1].clone()),
            _ => return step_error("internal: multiplication of a non-pair".into()),
        };
        let repeated = match (&l, &r) {
            (Val::TStr(s) | Val::BStr(s), Val::Num(n))
            | (Val::Num(n), Val::TStr(s) | Val::BStr(s)) => {
                let times = n.to_string().parse::<f64>().unwrap_or(0.0).max(0.0);
                Some(s.len() as f64 * times)
            }
            _ => None,
        };
        if repeated.is_some_and(|bytes| bytes > MAX_EVAL_VALUE_BYTES as f64) {
            return stop(format!(
                "it repeated a string into more than {} MiB",
                MAX_EVAL_VALUE_BYTES >> 20
            ));
        }
        box_once((l * r).map_err(Exn::from))
    });
    (MUL, Box::<[Bind]>::default(), native)
}

/// What the builtins in [`DENIED_BUILTINS`] become: a call stops the
/// evaluation (so a query calling one unconditionally is refused when the
/// stream is created).
fn denied_filter() -> Native<Data> {
    fn deny<'a, T: 'a>() -> jaq_core::ValXs<'a, T, Val> {
        stop("it calls a builtin that reads the server's environment or writes to its output (env, debug, stderr, input, halt), which lakehose does not offer".to_string())
    }
    Native::new(|_| deny())
        .with_paths(|_| deny())
        .with_update(|_, _| deny())
}

/// `fromjson`, refusing text nested deeper than [`MAX_JSON_DEPTH`] (the
/// reader recurses once per level).
fn fromjson_filter() -> jaq_core::native::Fun<Data> {
    let native = Native::<Data>::new(|cv| {
        let text = match &cv.1 {
            Val::TStr(b) | Val::BStr(b) => b.clone(),
            other => {
                return step_error(format!("{} cannot be parsed as JSON", shown(other)));
            }
        };
        if nesting_exceeds(&text, MAX_JSON_DEPTH) {
            return step_error(format!(
                "fromjson: the text nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"
            ));
        }
        let values: Vec<_> = jaq_json::read::parse_many(&text)
            .map(|v| v.map_err(|e| Exn::from(jaq_core::Error::str(format!("fromjson: {e}")))))
            .collect();
        Box::new(values.into_iter())
    });
    ("fromjson", Box::<[Bind]>::default(), native)
}

/// Stops the running evaluation for `why`: a bound hit, final even when
/// `try` or `//` catches the error.
fn stop<'a, T: 'a>(why: String) -> jaq_core::ValXs<'a, T, Val> {
    BUDGET.with(|b| {
        if let Some(b) = b.borrow_mut().as_mut() {
            b.hit.get_or_insert_with(|| why.clone());
        }
    });
    step_error(why)
}

/// `_lakehose_step`: the identity, counting one step (for values, paths
/// and updates alike, so it may stand in any path expression).
fn step_filter() -> jaq_core::native::Fun<Data> {
    let native = Native::<Data>::new(|cv| match Budget::step_value(&cv.1) {
        Ok(()) => box_once(Ok(cv.1)),
        Err(why) => step_error(why),
    })
    .with_paths(|cv| match Budget::step() {
        Ok(()) => box_once(Ok(cv.1)),
        Err(why) => step_error(why),
    })
    .with_update(|cv, f| match Budget::step() {
        Ok(()) => f(cv.1),
        Err(why) => step_error(why),
    });
    (STEP, Box::<[Bind]>::default(), native)
}

fn step_term<'s>() -> Term<&'s str> {
    Term::Call(STEP, Vec::new())
}

fn pipe<'s>(l: Term<&'s str>, r: Term<&'s str>) -> Term<&'s str> {
    Term::BinOp(Box::new(l), BinaryOp::Pipe(None), Box::new(r))
}

/// `body` becomes `step | body`.
fn step_before(body: &mut Term<&str>) {
    let inner = std::mem::take(body);
    *body = pipe(step_term(), inner);
}

/// `body` becomes `body | step`.
fn step_after(body: &mut Term<&str>) {
    let inner = std::mem::take(body);
    *body = pipe(inner, step_term());
}

fn instrument_def(def: &mut Def<&str>) {
    instrument(&mut def.body);
    step_before(&mut def.body);
}

const MUL_L: &str = "$__lakehose_l";
const MUL_R: &str = "$__lakehose_r";
const MUL_BY: &str = "$__lakehose_by";

/// `l * r` as `l as $l | r as $r | [$l, $r] | _lakehose_mul`: the same
/// outputs in the same order (every `r` for each `l`), with string
/// repetition bounded.
fn checked_mul<'s>(l: Term<&'s str>, r: Term<&'s str>) -> Term<&'s str> {
    let pair = Term::Arr(Some(Box::new(Term::BinOp(
        Box::new(Term::Var(MUL_L)),
        BinaryOp::Comma,
        Box::new(Term::Var(MUL_R)),
    ))));
    let apply = pipe(pair, Term::Call(MUL, Vec::new()));
    let inner = Term::BinOp(
        Box::new(r),
        BinaryOp::Pipe(Some(Pattern::Var(MUL_R))),
        Box::new(apply),
    );
    Term::BinOp(
        Box::new(l),
        BinaryOp::Pipe(Some(Pattern::Var(MUL_L))),
        Box::new(inner),
    )
}

/// Instruments the operands of a [`checked_mul`] term (not its own
/// plumbing, which must stay as it is).
fn instrument_mul(t: &mut Term<&str>) {
    if let Term::BinOp(l, _, inner) = t {
        instrument(l);
        if let Term::BinOp(r, _, _) = inner.as_mut() {
            instrument(r);
        }
    }
}

/// Rewrites a query so that everything that can repeat passes a step: a
/// call of a definition (recursion), each output of a filter argument,
/// each value a pipe's right side runs on, each value a `reduce`/`foreach`
/// folds, each element an array collects, each value `//` tries and each
/// `try` attempt.
fn instrument(t: &mut Term<&str>) {
    match t {
        Term::Id
        | Term::Recurse
        | Term::Num(_)
        | Term::Var(_)
        | Term::Break(_)
        | Term::Arr(None) => {}
        Term::Str(_, parts) => {
            for part in parts {
                if let StrPart::Term(t) = part {
                    instrument(t);
                }
            }
        }
        Term::Arr(Some(t)) => {
            instrument(t);
            step_after(t);
        }
        Term::Obj(entries) => {
            for (k, v) in entries {
                instrument(k);
                if let Some(v) = v {
                    instrument(v);
                }
            }
        }
        Term::Neg(t) | Term::Label(_, t) => instrument(t),
        Term::BinOp(_, BinaryOp::Math(Math::Mul), _) => {
            let Term::BinOp(l, _, r) = std::mem::take(t) else {
                unreachable!()
            };
            *t = checked_mul(*l, *r);
            instrument_mul(t);
        }
        Term::BinOp(_, BinaryOp::UpdateMath(Math::Mul), _) => {
            // `l *= r` is `r as $m | l |= . * $m`.
            let Term::BinOp(l, _, r) = std::mem::take(t) else {
                unreachable!()
            };
            let by = Term::Var(MUL_BY);
            let update = Term::BinOp(l, BinaryOp::Update, Box::new(checked_mul(Term::Id, by)));
            *t = Term::BinOp(
                r,
                BinaryOp::Pipe(Some(Pattern::Var(MUL_BY))),
                Box::new(update),
            );
            if let Term::BinOp(r, _, update) = t {
                instrument(r);
                if let Term::BinOp(l, _, m) = update.as_mut() {
                    instrument(l);
                    instrument_mul(m);
                }
            }
        }
        Term::BinOp(l, op, r) => {
            instrument(l);
            instrument(r);
            match op {
                BinaryOp::Pipe(_) => step_before(r),
                BinaryOp::Alt => step_after(l),
                _ => {}
            }
        }
        Term::Fold(_, xs, _, args) => {
            instrument(xs);
            step_after(xs);
            for a in args.iter_mut() {
                instrument(a);
            }
            // The accumulator passes a step at each iteration.
            if let Some(update) = args.get_mut(1) {
                step_before(update);
            }
        }
        Term::TryCatch(t, catch) => {
            instrument(t);
            step_before(t);
            if let Some(c) = catch {
                instrument(c);
            }
        }
        Term::IfThenElse(branches, otherwise) => {
            for (c, b) in branches {
                instrument(c);
                instrument(b);
            }
            if let Some(o) = otherwise {
                instrument(o);
            }
        }
        Term::Def(defs, rest) => {
            for def in defs {
                instrument(&mut def.body);
                step_before(&mut def.body);
            }
            instrument(rest);
        }
        Term::Call(_, args) => {
            // Natives such as `last(f)` or `limit(n; f)` consume `f`'s
            // outputs themselves.
            for a in args {
                instrument(a);
                step_after(a);
            }
        }
        Term::Path(head, path) => {
            instrument(head);
            for (part, _) in &mut path.0 {
                match part {
                    Part::Index(i) => instrument(i),
                    Part::Range(a, b) => {
                        if let Some(a) = a {
                            instrument(a);
                        }
                        if let Some(b) = b {
                            instrument(b);
                        }
                    }
                }
            }
        }
    }
}

/// The threads JQ queries are compiled and evaluated on. Their stacks are
/// large ([`pool::STACK_BYTES`]): the parser, the compiler and the
/// evaluator recurse, and so does dropping a deeply nested value a query
/// built; the step filter keeps [`STACK_RED_ZONE`] of it free.
pub mod pool {
    use std::cell::Cell;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::mpsc::{Receiver, Sender, channel};
    use std::sync::{Arc, Mutex, OnceLock};

    /// Stack of each thread.
    pub(crate) const STACK_BYTES: usize = 64 * 1024 * 1024;
    /// Most threads (fewer on machines with fewer cores).
    pub(crate) const MAX_THREADS: usize = 8;

    type Job = Box<dyn FnOnce() + Send>;

    thread_local! {
        static ON_POOL: Cell<bool> = const { Cell::new(false) };
    }

    fn sender() -> &'static Mutex<Sender<Job>> {
        static POOL: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
        POOL.get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            let threads = std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(1, MAX_THREADS);
            for i in 0..threads {
                let rx: Arc<Mutex<Receiver<Job>>> = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name(format!("lakehose-jq-{i}"))
                    .stack_size(STACK_BYTES)
                    .spawn(move || {
                        ON_POOL.with(|p| p.set(true));
                        loop {
                            let job = match rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(poisoned) => poisoned.into_inner().recv(),
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => break,
                            }
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "Could not start a JQ thread.");
                }
            }
            Mutex::new(tx)
        })
    }

    fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
        p.downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into())
    }

    fn submit<R: Send + 'static>(
        f: impl FnOnce() -> R + Send + 'static,
        reply: impl FnOnce(Result<R, String>) + Send + 'static,
    ) {
        let job: Job = Box::new(move || {
            reply(catch_unwind(AssertUnwindSafe(f)).map_err(panic_text));
        });
        let tx = sender().lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(e) = tx.send(job) {
            // No thread is left to run it: run it here instead.
            (e.0)();
        }
    }

    /// Runs `f` on the pool and waits; `Err` holds a panic's message. On a
    /// pool thread, runs `f` right away.
    pub fn run_blocking<R: Send + 'static>(
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, String> {
        if ON_POOL.with(Cell::get) {
            return catch_unwind(AssertUnwindSafe(f)).map_err(panic_text);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        submit(f, move |r| {
            let _ = tx.send(r);
        });
        rx.recv()
            .unwrap_or_else(|_| Err("the JQ thread stopped".into()))
    }

    /// Runs `f` on the pool; `Err` holds a panic's message. Dropping the
    /// future does not stop `f`, only discards its result.
    pub async fn run<R: Send + 'static>(
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        submit(f, move |r| {
            let _ = tx.send(r);
        });
        rx.await
            .unwrap_or_else(|_| Err("the JQ thread stopped".into()))
    }
}

/// At most the first 200 bytes of `value`'s text, however long it is: the
/// text is written through a writer that stops there (a value of a few
/// shared parts may print as gigabytes).
fn shown(value: &impl std::fmt::Display) -> String {
    struct Capped(String);
    impl std::fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            if self.0.len() > 200 {
                return Err(std::fmt::Error);
            }
            self.0.push_str(s);
            Ok(())
        }
    }
    let mut out = Capped(String::new());
    let _ = std::fmt::write(&mut out, format_args!("{value}"));
    truncate(out.0)
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

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn the_fast_scan_never_panics() {
        // A record ending in a backslash inside a string used to index past
        // the end.
        for rec in [
            &br#"{"a":"x\"#[..],
            br#"{"a\"#,
            br#"{"a":1,"b":"\"#,
            br#"{"a":{"b":"\"#,
            br"{\",
            br"\",
            br#"{"a":"\\\"#,
        ] {
            assert!(
                scan_top_level(rec).is_none(),
                "{}",
                String::from_utf8_lossy(rec)
            );
            assert!(!nesting_exceeds(rec, 2));
        }
        let q = MetadataQuery::compile("{s: .s}").unwrap();
        let mut cache = KeyCache::default();
        assert!(q.extract_cached(br#"{"s":"x\"#, &mut cache, true).is_err());
        // Mutations of valid records: the scan never panics, and whatever it
        // accepts the parser reads the same way.
        let seeds: &[&[u8]] = &[
            br#"{"a": 1, "s": "x,}]", "n": {"b": [1, {"c": "]"}]}, "e": "q\"uote", "t": true}"#,
            br#"{"k": "\\", "u": "\u00e9", "arr": [[], {}, [[1]]]}"#,
            br#"  {"a":-1.5e3,"s":null}  "#,
        ];
        let alphabet = b"{}[]\\\":,\\ \nabc01";
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..200_000 {
            let mut rec = seeds[rng.below(seeds.len())].to_vec();
            for _ in 0..1 + rng.below(4) {
                match rng.below(4) {
                    0 if !rec.is_empty() => {
                        let at = rng.below(rec.len());
                        rec.truncate(at);
                    }
                    1 if !rec.is_empty() => {
                        let at = rng.below(rec.len());
                        rec[at] = alphabet[rng.below(alphabet.len())];
                    }
                    2 => {
                        let at = rng.below(rec.len() + 1);
                        rec.insert(at, alphabet[rng.below(alphabet.len())]);
                    }
                    _ if !rec.is_empty() => {
                        let at = rng.below(rec.len());
                        rec.remove(at);
                    }
                    _ => {}
                }
            }
            let _ = nesting_exceeds(&rec, 2);
            if let Some(fast) = scan_top_level(&rec)
                && let Ok(slow) = serde_json::from_slice::<TopLevel<'_>>(&rec)
            {
                let fast: Vec<(String, Vec<u8>)> = fast
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_vec()))
                    .collect();
                let slow: Vec<(String, Vec<u8>)> = slow
                    .0
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.get().as_bytes().to_vec()))
                    .collect();
                assert_eq!(fast, slow, "{}", String::from_utf8_lossy(&rec));
            }
        }
    }

    #[test]
    fn nesting_is_measured_without_recursion() {
        let deep = |n: usize| {
            let mut v = br#"{"service":"web","x":"#.to_vec();
            v.extend(std::iter::repeat_n(b'[', n));
            v.extend(std::iter::repeat_n(b']', n));
            v.push(b'}');
            v
        };
        assert!(!nesting_exceeds(&deep(MAX_JSON_DEPTH - 1), MAX_JSON_DEPTH));
        assert!(nesting_exceeds(&deep(MAX_JSON_DEPTH), MAX_JSON_DEPTH));
        assert!(nesting_exceeds(&deep(1_000_000), MAX_JSON_DEPTH));
        // Brackets in strings, and escaped quotes, do not count.
        let text = format!(r#"{{"a": "{}\"{}"}}"#, "[".repeat(500), "{".repeat(500));
        assert!(!nesting_exceeds(text.as_bytes(), 2));
        // A record nested 100,000 deep is refused before jaq reads it, when
        // the query reads the deep part (projected or whole-record queries).
        for query in ["{service: .service, n: (.x | length)}", "{a: (. | length)}"] {
            let q = MetadataQuery::compile(query).unwrap();
            assert_eq!(
                q.extract(&deep(100_000)),
                Err(ExtractError::TooDeep),
                "{query}"
            );
            for lenient in [false, true] {
                let mut cache = KeyCache::default();
                assert_eq!(
                    q.extract_cached(&deep(100_000), &mut cache, lenient),
                    Err(ExtractError::TooDeep),
                    "{query}"
                );
            }
        }
        // A query that reads only shallow fields never parses the deep one.
        let q = MetadataQuery::compile("{service: .service}").unwrap();
        assert_eq!(q.extract(&deep(100_000)).unwrap()["service"], "web");
        let mut cache = KeyCache::default();
        let keys = q.extract_cached(&deep(100_000), &mut cache, true).unwrap();
        assert_eq!(keys["service"], "web");
    }

    #[test]
    fn queries_that_never_end_are_refused_or_stopped() {
        let endless = [
            "{service: (def f: f; f)}",
            "{a: (def f: [f]; f)}",
            "{a: (def f: 1 + f; f)}",
            "{a: until(false; .)}",
            "{a: ([repeat(1)] | length)}",
            "{a: ([range(1e18)] | length)}",
            "{a: (reduce range(1e18) as $x (0; .))}",
            "{a: last(range(1e18))}",
            "{a: first(range(1e18) | select(. < 0))}",
            "{a: ((range(1e18) | false) // 1)}",
            "{a: (try (def f: f; f) catch 1)}",
            "{a: (def f: try f catch f; f)}",
            "{a: ([range(1e18) | .x?] | length)}",
            "{a: ([0 | recurse(. + 1)] | length)}",
        ];
        for text in endless {
            let started = Instant::now();
            let err = MetadataQuery::compile(text).unwrap_err();
            assert!(err.contains("does not finish"), "{text}: {err}");
            assert!(started.elapsed() < Duration::from_secs(5), "{text}");
            // A stream stored with it: each record is stopped, and reported.
            let q = MetadataQuery::load(text).unwrap();
            let run = pool::run_blocking(move || q.extract(br#"{"service":"web"}"#)).unwrap();
            assert!(
                matches!(run, Err(ExtractError::Bound(_))),
                "{text}: {run:?}"
            );
        }
        // Bounded work that is merely large is fine.
        let q = MetadataQuery::compile(
            r#"{n: ([range(1000)] | length), s: (reduce range(100) as $x (0; . + $x)), d: (reduce range(2000) as $i (null; [.]) | length)}"#,
        )
        .unwrap();
        let keys = pool::run_blocking(move || q.extract(b"{}"))
            .unwrap()
            .unwrap();
        assert_eq!(keys["n"], "1000");
        assert_eq!(keys["s"], "4950");
        assert_eq!(keys["d"], "1");
        // Too long a query.
        let long = format!("{{a: {}}}", ".a".repeat(MAX_QUERY_LEN));
        assert!(
            MetadataQuery::compile(&long)
                .unwrap_err()
                .contains("at most 5120")
        );
        // Deep nesting in the query text only costs stack on the pool.
        let nested = format!("{{a: {}1{}}}", "(".repeat(2000), ")".repeat(2000));
        let q = MetadataQuery::compile(&nested).unwrap();
        assert_eq!(
            pool::run_blocking(move || q.extract(b"{}"))
                .unwrap()
                .unwrap()["a"],
            "1"
        );
    }

    #[test]
    fn steps_do_not_change_what_queries_mean() {
        let q = MetadataQuery::compile(
            r#"{
                f: first(.xs[]),
                u: (.xs |= map(. * 2) | .xs[1]),
                d: (del(.b) | keys | join(",")),
                w: (walk(if type == "number" then . + 1 else . end) | .xs[0]),
                g: getpath(["o", "p"]),
                p: ([paths] | length),
                e: (to_entries | map(.key) | join(",")),
                t: (try error("x") catch .),
                alt: (.missing // "dflt"),
                s: ([.xs[] | select(. > 1)] | add),
                r: (reduce .xs[] as $x (0; . + $x)),
                l: ([limit(2; .xs[])] | length),
                up: (.o.p += 1 | .o.p),
                pth: (path(.o.p) | join("."))
            }"#,
        )
        .unwrap();
        let keys = q
            .extract(br#"{"xs": [1, 2, 3], "b": 0, "o": {"p": 5}}"#)
            .unwrap();
        let expect = [
            ("f", "1"),
            ("u", "4"),
            ("d", "o,xs"),
            ("w", "2"),
            ("g", "5"),
            ("p", "7"),
            ("e", "xs,b,o"),
            ("t", "x"),
            ("alt", "dflt"),
            ("s", "5"),
            ("r", "6"),
            ("l", "2"),
            ("up", "6"),
            ("pth", "o.p"),
        ];
        for (k, v) in expect {
            assert_eq!(keys[k], v, "{k}");
        }
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

    #[test]
    fn queries_cannot_build_values_that_exhaust_memory() {
        let bound = |query: &str, record: &[u8]| {
            let q = MetadataQuery::compile(query).unwrap();
            match q.extract(record) {
                Err(ExtractError::Bound(why)) => why,
                other => panic!("{query}: {other:?}"),
            }
        };
        // One repetition into a gigabyte.
        let why = bound(r#"{k: ("x" * .n)}"#, br#"{"n": 1000000000}"#);
        assert!(why.contains("repeated"), "{why}");
        let why = bound(r#"{k: (.n * "xy")}"#, br#"{"n": 1e12}"#);
        assert!(why.contains("repeated"), "{why}");
        let why = bound(r#"{k: (.s *= .n | .s)}"#, br#"{"s": "ab", "n": 1e10}"#);
        assert!(why.contains("repeated"), "{why}");
        // Doubling a string, and an array of shared halves, in a loop.
        let why = bound(
            r#"{k: (reduce range(.n) as $i ("ab"; . + .) | length)}"#,
            br#"{"n": 64}"#,
        );
        assert!(why.contains("MiB"), "{why}");
        let why = bound(
            r#"{k: (reduce range(.n) as $i ([1]; [., .]) | tojson | length)}"#,
            br#"{"n": 64}"#,
        );
        assert!(why.contains("MiB"), "{why}");
        let err = MetadataQuery::compile(
            r#"def f: if length > 1e9 then . else [., .] | f end; {k: ([.a] | f | length)}"#,
        )
        .unwrap_err();
        assert!(err.contains("MiB"), "{err}");
        // A bomb that needs no record is refused when the stream is created.
        let err = MetadataQuery::compile(r#"{k: ("x" * 1e10)}"#).unwrap_err();
        assert!(err.contains("repeated"), "{err}");
        // Small ones still work.
        let q =
            MetadataQuery::compile(r#"{k: ("ab" * .n), m: (reduce range(3) as $i ("a"; . + .))}"#)
                .unwrap();
        let keys = q.extract(br#"{"n": 3}"#).unwrap();
        assert_eq!(keys["k"], "ababab");
        assert_eq!(keys["m"], "aaaaaaaa");
    }

    #[test]
    fn multiplication_keeps_its_meaning() {
        let q = MetadataQuery::compile(
            r#"{
                order: ([(1,2) * (10,20)] | tostring),
                num: (.a * 3),
                merge: (({"x": {"y": 1}} * {"x": {"z": 2}}) | tojson),
                upd: (.o.p *= 4 | .o.p),
                neg: ("ab" * -1 | tostring),
                prec: (1 + 2 * 3)
            }"#,
        )
        .unwrap();
        let keys = q.extract(br#"{"a": 1.5, "o": {"p": 5}}"#).unwrap();
        assert_eq!(keys["order"], "[10,20,20,40]");
        assert_eq!(keys["num"], "4.5");
        assert_eq!(keys["merge"], r#"{"x":{"y":1,"z":2}}"#);
        assert_eq!(keys["upd"], "20");
        assert_eq!(keys["neg"], "null");
        assert_eq!(keys["prec"], "7");
    }

    #[test]
    fn queries_cannot_read_the_environment_or_write_to_the_log() {
        for query in [
            "{k: env.HOME}",
            "{k: $ENV.HOME}",
            "{k: (1 | debug)}",
            "{k: (1 | stderr)}",
            "{k: input}",
            "{k: (1 | halt_error)}",
        ] {
            let err = MetadataQuery::compile(query).unwrap_err();
            assert!(
                err.contains("invalid JQ query") || err.contains("reads the server's environment"),
                "{query}: {err}"
            );
        }
        // Called only for some records: those go to the error prefix.
        let q = MetadataQuery::compile("{k: (if .x then env.HOME else 1 end)}").unwrap();
        assert_eq!(q.extract(br#"{"x": false}"#).unwrap()["k"], "1");
        assert!(matches!(
            q.extract(br#"{"x": true}"#),
            Err(ExtractError::Bound(why)) if why.contains("environment")
        ));
    }

    #[test]
    fn fromjson_refuses_deep_text_and_errors_show_little() {
        let q = MetadataQuery::compile("{k: (.s | fromjson | length)}").unwrap();
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let record = serde_json::to_vec(&serde_json::json!({ "s": deep })).unwrap();
        match q.extract(&record) {
            Err(ExtractError::Query(why)) => assert!(why.contains("levels deep"), "{why}"),
            other => panic!("{other:?}"),
        }
        let keys = q.extract(br#"{"s": "[1, [2, 3]]"}"#).unwrap();
        assert_eq!(keys["k"], "2");
        // An error about a value of a million parts shows a few hundred bytes.
        let q = MetadataQuery::compile("{k: (reduce range(.n) as $i ([1]; [., .]) | .x)}").unwrap();
        match q.extract(br#"{"n": 20}"#) {
            Err(ExtractError::Query(why)) => assert!(why.len() < 400, "{}", why.len()),
            other => panic!("{other:?}"),
        }
    }
}
