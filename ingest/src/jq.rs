//! Partition keys from records with JQ (Firehose's `MetadataExtraction`
//! processor), evaluated by the `jaq` interpreter.
//!
//! The query is run once per record and must produce one JSON object whose
//! values are scalars, e.g. `{service: .service, day: .timestamp[0:10]}`.
//! Those values fill `!{partitionKeyFromQuery:<key>}` in the prefix.

use std::collections::HashMap;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;

type JqFilter = jaq_core::Filter<data::JustLut<Val>>;

/// A compiled `MetadataExtractionQuery`.
pub struct MetadataQuery {
    text: String,
    filter: JqFilter,
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
        })
    }

    /// The query text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Runs the query on one JSON record and returns its partition keys.
    /// Keys whose value is `null` are left out (so a prefix that needs them
    /// reports a missing key).
    pub fn extract(&self, record: &[u8]) -> Result<HashMap<String, String>, ExtractError> {
        let input = jaq_json::read::parse_single(record)
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
        Ok(keys)
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
