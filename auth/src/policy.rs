//! What a principal may do: identity policies in IAM's JSON grammar.
//!
//! The policy file (`policies.json` beside the key file) holds one policy
//! document per principal and per group. A request is the action
//! (`firehose:PutRecord`) and the resources it touches (ARNs, or `*` for
//! calls that name none). It is allowed when a statement of the caller's
//! policy or of one of its groups' allows the action on every resource and
//! no statement denies it on any: default deny, explicit deny wins.
//! `Action`/`NotAction` match case-insensitively, `Resource`/`NotResource`
//! case-sensitively, both with `*` and `?` wildcards. The principal `admin`
//! (the environment's admin key) and the group `admins` are allowed every
//! action unless a statement denies it. A document with an element this
//! evaluator does not implement (`Condition`, `Principal`, ...) is refused
//! when loaded rather than half-applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::KeyError;
use crate::files::{read_json, write_private};
use crate::keys::{Caller, ENV_PRINCIPAL, check_name};
use crate::watch::Watched;

/// The group whose members may do everything not explicitly denied.
pub const ADMIN_GROUP: &str = "admins";

/// Longest action or resource pattern accepted.
const MAX_PATTERN_BYTES: usize = 2048;
/// Most statements in one document.
const MAX_STATEMENTS: usize = 1000;

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Allows what it matches.
    Allow,
    /// Denies what it matches, whatever allows it.
    Deny,
}

/// Patterns, or everything but them (`NotAction`, `NotResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Patterns {
    Any(Vec<String>),
    AllBut(Vec<String>),
}

impl Patterns {
    fn matches(&self, text: &str, ignore_case: bool) -> bool {
        match self {
            Self::Any(p) => p.iter().any(|p| wildcard_match(p, text, ignore_case)),
            Self::AllBut(p) => !p.iter().any(|p| wildcard_match(p, text, ignore_case)),
        }
    }
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    effect: Effect,
    actions: Patterns,
    resources: Patterns,
}

/// A policy document, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
    /// The document as given (kept to be shown and saved).
    source: Value,
}

fn invalid(message: impl Into<String>) -> KeyError {
    KeyError::Invalid(message.into())
}

fn patterns_of(v: &Value, what: &str) -> Result<Vec<String>, KeyError> {
    let list: Vec<&Value> = match v {
        Value::String(_) => vec![v],
        Value::Array(items) if !items.is_empty() => items.iter().collect(),
        _ => {
            return Err(invalid(format!(
                "{what} must be a string or a non-empty list of strings"
            )));
        }
    };
    list.into_iter()
        .map(|p| match p {
            Value::String(s) if !s.is_empty() && s.len() <= MAX_PATTERN_BYTES => Ok(s.clone()),
            Value::String(_) => Err(invalid(format!(
                "{what} patterns must be 1 to {MAX_PATTERN_BYTES} bytes"
            ))),
            _ => Err(invalid(format!("{what} must hold strings only"))),
        })
        .collect()
}

fn pair(
    statement: &serde_json::Map<String, Value>,
    name: &str,
    not_name: &str,
    n: usize,
) -> Result<Patterns, KeyError> {
    match (statement.get(name), statement.get(not_name)) {
        (Some(v), None) => Ok(Patterns::Any(patterns_of(v, name)?)),
        (None, Some(v)) => Ok(Patterns::AllBut(patterns_of(v, not_name)?)),
        (Some(_), Some(_)) => Err(invalid(format!(
            "statement {n}: {name} and {not_name} cannot both be given"
        ))),
        (None, None) => Err(invalid(format!(
            "statement {n}: {name} (or {not_name}) is required"
        ))),
    }
}

impl Policy {
    /// Checks a policy document: `Version` (optional, `2012-10-17` or
    /// `2008-10-17`), `Id`, and `Statement` (one or a list) of `Sid`,
    /// `Effect`, `Action`/`NotAction`, `Resource`/`NotResource`.
    pub fn parse(doc: &Value) -> Result<Self, KeyError> {
        let Value::Object(map) = doc else {
            return Err(invalid("a policy is a JSON object"));
        };
        for key in map.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(invalid(format!("policy element {key:?} is not supported")));
            }
        }
        match map.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(other) => {
                return Err(invalid(format!("policy Version {other} is not 2012-10-17")));
            }
        }
        let statements: Vec<&Value> = match map.get("Statement") {
            Some(Value::Array(items)) if !items.is_empty() => items.iter().collect(),
            Some(v @ Value::Object(_)) => vec![v],
            _ => {
                return Err(invalid(
                    "a policy needs a Statement (an object or a non-empty list)",
                ));
            }
        };
        if statements.len() > MAX_STATEMENTS {
            return Err(invalid(format!(
                "a policy holds at most {MAX_STATEMENTS} statements"
            )));
        }
        let mut out = Vec::with_capacity(statements.len());
        for (i, st) in statements.into_iter().enumerate() {
            let n = i + 1;
            let Value::Object(st) = st else {
                return Err(invalid(format!("statement {n} is not an object")));
            };
            for key in st.keys() {
                if !matches!(
                    key.as_str(),
                    "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource"
                ) {
                    return Err(invalid(format!(
                        "statement {n}: element {key:?} is not supported by lakehose's policy evaluator"
                    )));
                }
            }
            let effect = match st.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => {
                    return Err(invalid(format!(
                        "statement {n}: Effect must be Allow or Deny"
                    )));
                }
            };
            let actions = pair(st, "Action", "NotAction", n)?;
            if let Patterns::Any(a) | Patterns::AllBut(a) = &actions
                && let Some(bad) = a.iter().find(|a| *a != "*" && !a.contains(':'))
            {
                return Err(invalid(format!(
                    "statement {n}: action {bad:?} should be service:Operation (e.g. firehose:PutRecord)"
                )));
            }
            let resources = pair(st, "Resource", "NotResource", n)?;
            out.push(Statement {
                effect,
                actions,
                resources,
            });
        }
        Ok(Self {
            statements: out,
            source: doc.clone(),
        })
    }

    /// The document as given.
    pub fn document(&self) -> &Value {
        &self.source
    }
}

/// `*` any run of characters, `?` any one character; the rest literal.
/// Linear in practice, and O(pattern × text) at worst (no exponential
/// backtracking).
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let eq = |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The policy file as stored.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PolicyFile {
    version: u32,
    #[serde(default)]
    principals: BTreeMap<String, Value>,
    #[serde(default)]
    groups: BTreeMap<String, Value>,
}

/// Every principal's and group's policy.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    principals: BTreeMap<String, Policy>,
    groups: BTreeMap<String, Policy>,
}

/// Why a request is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "User: {principal} is not authorized to perform: {action} on resource: {resource} because {reason}"
)]
pub struct Denied {
    /// The caller's ARN.
    pub principal: String,
    /// The action.
    pub action: String,
    /// The first resource refused.
    pub resource: String,
    /// Why.
    pub reason: &'static str,
}

impl PolicySet {
    fn read(path: &Path) -> Result<Self, KeyError> {
        let Some(file) = read_json(path, |f: &PolicyFile| f.version)? else {
            return Ok(Self::default());
        };
        let parse = |kind: &str, map: BTreeMap<String, Value>| {
            map.into_iter()
                .map(|(name, doc)| {
                    Policy::parse(&doc)
                        .map(|p| (name.clone(), p))
                        .map_err(|e| KeyError::Corrupt {
                            path: path.to_path_buf(),
                            reason: format!("the policy of {kind} {name}: {e}"),
                        })
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
        };
        Ok(Self {
            principals: parse("principal", file.principals)?,
            groups: parse("group", file.groups)?,
        })
    }

    fn write(&self, path: &Path) -> Result<(), KeyError> {
        let file = PolicyFile {
            version: 1,
            principals: self
                .principals
                .iter()
                .map(|(k, v)| (k.clone(), v.source.clone()))
                .collect(),
            groups: self
                .groups
                .iter()
                .map(|(k, v)| (k.clone(), v.source.clone()))
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| KeyError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_private(path, &bytes)
    }

    /// Whether `caller` may perform `action` on every one of `resources`.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resources: &[String],
    ) -> Result<(), Denied> {
        let admin =
            caller.principal == ENV_PRINCIPAL || caller.groups.iter().any(|g| g == ADMIN_GROUP);
        let policies: Vec<&Policy> = self
            .principals
            .get(&caller.principal)
            .into_iter()
            .chain(caller.groups.iter().filter_map(|g| self.groups.get(g)))
            .collect();
        let matching = |effect: Effect, resource: &str| {
            policies.iter().flat_map(|p| &p.statements).any(|s| {
                s.effect == effect
                    && s.actions.matches(action, true)
                    && s.resources.matches(resource, false)
            })
        };
        let denied = |resource: &str, reason| Denied {
            principal: format!("arn:aws:iam::000000000000:user/{}", caller.principal),
            action: action.to_string(),
            resource: resource.to_string(),
            reason,
        };
        let resources: Vec<&str> = if resources.is_empty() {
            vec!["*"]
        } else {
            resources.iter().map(String::as_str).collect()
        };
        for r in &resources {
            if matching(Effect::Deny, r) {
                return Err(denied(
                    r,
                    "an explicit deny in an identity-based policy applies",
                ));
            }
        }
        for r in &resources {
            if !admin && !matching(Effect::Allow, r) {
                return Err(denied(r, "no identity-based policy allows the action"));
            }
        }
        Ok(())
    }

    /// Whether the decision on `action` for `caller` can depend on the
    /// resources: `false` when every statement that matches the action
    /// (in the caller's and its groups' policies) has `Resource: "*"`, so
    /// a call's body need not be read to find them.
    pub fn needs_resources(&self, caller: &Caller, action: &str) -> bool {
        self.principals
            .get(&caller.principal)
            .into_iter()
            .chain(caller.groups.iter().filter_map(|g| self.groups.get(g)))
            .flat_map(|p| &p.statements)
            .filter(|s| s.actions.matches(action, true))
            .any(|s| !matches!(&s.resources, Patterns::Any(p) if p.iter().all(|r| r == "*")))
    }

    /// The policy of a principal, or of a group.
    pub fn get(&self, target: &Target) -> Option<&Policy> {
        match target {
            Target::Principal(n) => self.principals.get(n),
            Target::Group(n) => self.groups.get(n),
        }
    }
}

/// Whose policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A principal's.
    Principal(String),
    /// A group's.
    Group(String),
}

/// Sets (replaces) the policy of a principal or group in the policy file.
pub fn put_policy(path: &Path, target: &Target, doc: &Value) -> Result<(), KeyError> {
    let policy = Policy::parse(doc)?;
    let mut set = PolicySet::read(path)?;
    match target {
        Target::Principal(n) => {
            check_name("principal", n)?;
            set.principals.insert(n.clone(), policy);
        }
        Target::Group(n) => {
            check_name("group", n)?;
            set.groups.insert(n.clone(), policy);
        }
    }
    set.write(path)
}

/// Removes the policy of a principal or group; `false` when it had none.
pub fn delete_policy(path: &Path, target: &Target) -> Result<bool, KeyError> {
    let mut set = PolicySet::read(path)?;
    let removed = match target {
        Target::Principal(n) => set.principals.remove(n).is_some(),
        Target::Group(n) => set.groups.remove(n).is_some(),
    };
    if removed {
        set.write(path)?;
    }
    Ok(removed)
}

/// Every policy of the file, as `(principal or group, document)`.
pub fn list_policies(path: &Path) -> Result<Vec<(Target, Value)>, KeyError> {
    let set = PolicySet::read(path)?;
    Ok(set
        .principals
        .into_iter()
        .map(|(n, p)| (Target::Principal(n), p.source))
        .chain(
            set.groups
                .into_iter()
                .map(|(n, p)| (Target::Group(n), p.source)),
        )
        .collect())
}

/// The policy file a server evaluates requests against, read again when
/// it changes.
#[derive(Debug)]
pub struct Policies {
    watched: Watched<PolicySet>,
}

impl Policies {
    /// The policies of `path` (none when it does not exist).
    pub fn open(path: PathBuf) -> Result<Self, KeyError> {
        Ok(Self {
            watched: Watched::open(path, PolicySet::read)?,
        })
    }

    /// See [`PolicySet::needs_resources`].
    pub fn needs_resources(&self, caller: &Caller, action: &str) -> bool {
        self.watched.current().needs_resources(caller, action)
    }

    /// See [`PolicySet::authorize`].
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resources: &[String],
    ) -> Result<(), Denied> {
        self.watched.current().authorize(caller, action, resources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caller(principal: &str, groups: &[&str]) -> Caller {
        Caller {
            principal: principal.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            access_key_id: "K".into(),
            region: "us-east-1".into(),
        }
    }

    fn set(principals: Value, groups: Value) -> PolicySet {
        let file = PolicyFile {
            version: 1,
            principals: serde_json::from_value(principals).unwrap(),
            groups: serde_json::from_value(groups).unwrap(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        PolicySet::read(&path).unwrap()
    }

    const STREAM: &str = "arn:aws:firehose:us-east-1:000000000000:deliverystream/app-logs";

    #[test]
    fn default_deny_allow_and_explicit_deny() {
        let s = set(
            json!({"loader": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["firehose:PutRecord*", "firehose:Describe*"], "Resource": "arn:aws:firehose:*:*:deliverystream/app-*"},
                {"Effect": "Deny", "Action": "firehose:PutRecordBatch", "Resource": "*"}
            ]}}),
            json!({"readers": {"Statement": {"Effect": "Allow", "Action": "glue:Get*", "Resource": "*"}}}),
        );
        let r = |x: &str| vec![x.to_string()];
        let loader = caller("loader", &["readers"]);
        assert!(
            s.authorize(&loader, "firehose:PutRecord", &r(STREAM))
                .is_ok()
        );
        assert!(
            s.authorize(&loader, "FIREHOSE:putrecord", &r(STREAM))
                .is_ok(),
            "actions ignore case"
        );
        let err = s
            .authorize(&loader, "firehose:PutRecordBatch", &r(STREAM))
            .unwrap_err();
        assert!(err.reason.contains("explicit deny"), "{err}");
        let err = s
            .authorize(&loader, "firehose:DeleteDeliveryStream", &r(STREAM))
            .unwrap_err();
        assert!(err.to_string().contains("is not authorized to perform: firehose:DeleteDeliveryStream on resource: arn:aws:firehose"), "{err}");
        let other = "arn:aws:firehose:us-east-1:000000000000:deliverystream/billing";
        assert!(
            s.authorize(&loader, "firehose:PutRecord", &r(other))
                .is_err()
        );
        assert!(
            s.authorize(&loader, "glue:GetTable", &r("arn:aws:glue:x:y:table/a/b"))
                .is_ok(),
            "the group's policy"
        );
        assert!(
            s.authorize(&caller("nobody", &[]), "glue:GetTable", &r("*"))
                .is_err()
        );
        // Admins may do everything an explicit deny does not forbid.
        let admin = caller("ops", &["admins"]);
        assert!(
            s.authorize(&admin, "athena:DeleteWorkGroup", &r("*"))
                .is_ok()
        );
        assert!(
            s.authorize(&caller("admin", &[]), "glue:DeleteTable", &r("*"))
                .is_ok()
        );
        // Every resource must be allowed.
        let two = vec![STREAM.to_string(), other.to_string()];
        assert!(s.authorize(&loader, "firehose:PutRecord", &two).is_err());
    }

    #[test]
    fn resources_matter_only_when_a_statement_names_some() {
        let s = set(
            json!({"loader": {"Statement": [
                {"Effect": "Allow", "Action": "firehose:PutRecord*", "Resource": "*"},
                {"Effect": "Allow", "Action": "glue:*", "Resource": "arn:aws:glue:*:*:database/x"}
            ]}}),
            json!({"admins": {"Statement": [
                {"Effect": "Deny", "Action": "firehose:DeleteDeliveryStream", "Resource": "arn:aws:firehose:*:*:deliverystream/keep"}
            ]}}),
        );
        let loader = caller("loader", &[]);
        assert!(!s.needs_resources(&loader, "firehose:PutRecordBatch"));
        assert!(s.needs_resources(&loader, "glue:GetTable"));
        let admin = caller("ops", &["admins"]);
        assert!(!s.needs_resources(&admin, "firehose:PutRecordBatch"));
        assert!(s.needs_resources(&admin, "firehose:DeleteDeliveryStream"));
    }

    #[test]
    fn not_action_and_not_resource() {
        let s = set(
            json!({"p": {"Statement": [
                {"Effect": "Allow", "NotAction": "glue:Delete*", "Resource": "*"},
                {"Effect": "Deny", "Action": "*", "NotResource": ["arn:aws:glue:*:*:catalog", "arn:aws:glue:*:*:database/open*"]}
            ]}}),
            json!({}),
        );
        let p = caller("p", &[]);
        let r = |x: &str| vec![x.to_string()];
        assert!(
            s.authorize(
                &p,
                "glue:GetDatabase",
                &r("arn:aws:glue:r:a:database/open_data")
            )
            .is_ok()
        );
        assert!(
            s.authorize(
                &p,
                "glue:GetDatabase",
                &r("arn:aws:glue:r:a:database/secret")
            )
            .is_err()
        );
        assert!(
            s.authorize(
                &p,
                "glue:DeleteDatabase",
                &r("arn:aws:glue:r:a:database/open_data")
            )
            .is_err()
        );
    }

    #[test]
    fn unsupported_or_malformed_documents_are_refused() {
        for bad in [
            json!([]),
            json!({"Statement": []}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}]}),
            json!({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "PutRecord", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "NotAction": "x:y", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": [1], "Resource": "*"}]}),
            json!({"Version": "2020-01-01", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "x".repeat(5000)}]}),
        ] {
            assert!(Policy::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("a*c", "abbbc", false));
        assert!(wildcard_match("a?c", "abc", false));
        assert!(!wildcard_match("a?c", "abbc", false));
        assert!(wildcard_match("*", "", false));
        assert!(!wildcard_match("abc", "ABC", false));
        assert!(wildcard_match("abc", "ABC", true));
        assert!(wildcard_match(
            "*:*:table/db/*",
            "arn:aws:glue:r:a:table/db/t",
            false
        ));
        // A pathological pattern stays fast.
        let p = "*a".repeat(500) + "b";
        let t = "a".repeat(2000);
        let started = std::time::Instant::now();
        assert!(!wildcard_match(&p, &t, false));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn the_file_is_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policies.json");
        let doc =
            json!({"Statement": [{"Effect": "Allow", "Action": "athena:*", "Resource": "*"}]});
        put_policy(&path, &Target::Group("analysts".into()), &doc).unwrap();
        assert!(put_policy(&path, &Target::Group("bad name".into()), &doc).is_err());
        assert!(put_policy(&path, &Target::Group("../../etc".into()), &doc).is_err());
        // A policy file nested past the JSON reader's limit is refused.
        let deep = dir.path().join("deep.json");
        std::fs::write(
            &deep,
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        )
        .unwrap();
        assert!(Policies::open(deep).is_err());
        let listed = list_policies(&path).unwrap();
        assert_eq!(listed, vec![(Target::Group("analysts".into()), doc)]);
        let policies = Policies::open(path.clone()).unwrap();
        let a = caller("x", &["analysts"]);
        assert!(
            policies
                .authorize(&a, "athena:StartQueryExecution", &[])
                .is_ok()
        );
        assert!(delete_policy(&path, &Target::Group("analysts".into())).unwrap());
        assert!(!delete_policy(&path, &Target::Group("analysts".into())).unwrap());
    }
}
