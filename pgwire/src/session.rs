//! Per-connection session state and the commands answered by the wire
//! server itself: `SET`/`SHOW`/`RESET`, `USE`, transaction control, and the
//! small identity queries (`SELECT version()`, `current_schema()`, ...)
//! that drivers and BI tools send.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::auth::{SERVER_VERSION, default_parameters};
use lakehose_query::sql_text::{Token, tokenize};

/// Startup database names that mean "the default database".
const DEFAULT_ALIASES: &[&str] = &["", "postgres", "template0", "template1", "default"];

/// State of one connection.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The current (Athena) database; `None` is the engine's default.
    pub database: Option<String>,
    /// Values set with `SET`, by lower-case name.
    pub settings: BTreeMap<String, String>,
    /// Backend process id reported to the client.
    pub pid: i32,
    /// The user the client logged in as.
    pub user: String,
}

impl Session {
    /// A session for a client that asked for `database` at startup.
    pub(crate) fn new(database: Option<&str>, application_name: Option<&str>, pid: i32) -> Self {
        let mut session = Self {
            database: database_from_name(database),
            pid,
            ..Default::default()
        };
        if let Some(name) = application_name {
            session
                .settings
                .insert("application_name".to_string(), name.to_string());
        }
        session
    }

    fn database_name(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| "default".to_string())
    }

    /// The value `SHOW name` returns, if the setting is known.
    fn setting(&self, name: &str) -> Option<String> {
        let name = name.to_lowercase();
        if name == "search_path" {
            return Some(self.database_name());
        }
        if let Some(value) = self.settings.get(&name) {
            return Some(value.clone());
        }
        let fixed = default_parameters()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.to_string());
        fixed.or_else(|| {
            Some(
                match name.as_str() {
                    "transaction_isolation" | "default_transaction_isolation" => "read committed",
                    "transaction_read_only" => "off",
                    "application_name" => "",
                    "extra_float_digits" => "1",
                    "max_identifier_length" => "63",
                    "statement_timeout"
                    | "lock_timeout"
                    | "idle_in_transaction_session_timeout" => "0",
                    "bytea_output" => "hex",
                    "lc_collate" | "lc_ctype" | "lc_messages" | "lc_monetary" | "lc_numeric"
                    | "lc_time" => "C.UTF-8",
                    "max_connections" => "100",
                    "block_size" => "8192",
                    _ => return None,
                }
                .to_string(),
            )
        })
    }

    /// The settings this connection's queries run with (`SET
    /// lakehose.*`).
    pub(crate) fn query_settings(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .filter(|(k, _)| k.starts_with("lakehose."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn all_settings(&self) -> BTreeMap<String, String> {
        let mut all: BTreeMap<String, String> = [
            "application_name",
            "bytea_output",
            "default_transaction_isolation",
            "extra_float_digits",
            "max_identifier_length",
            "search_path",
            "transaction_isolation",
            "transaction_read_only",
        ]
        .iter()
        .filter_map(|k| self.setting(k).map(|v| (k.to_string(), v)))
        .collect();
        for (k, v) in default_parameters() {
            all.insert(k.to_lowercase(), v.to_string());
        }
        for (k, v) in &self.settings {
            all.insert(k.clone(), v.clone());
        }
        all.insert("search_path".to_string(), self.database_name());
        all
    }
}

/// Maps a startup or `USE` database name to the current database.
fn database_from_name(name: Option<&str>) -> Option<String> {
    let name = name?.trim();
    if DEFAULT_ALIASES.contains(&name.to_lowercase().as_str()) {
        None
    } else {
        Some(name.to_string())
    }
}

/// A command handled without the engine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Local {
    /// `BEGIN` / `START TRANSACTION` (tag given).
    Begin(&'static str),
    /// `COMMIT` / `ROLLBACK` and friends (tag given).
    End(&'static str),
    /// Accepted and ignored (`SAVEPOINT`, `DISCARD ALL`, `SET TRANSACTION`...).
    Ignore(&'static str),
    /// `SET name TO values`.
    Set(String, Vec<String>),
    /// `RESET name` / `RESET ALL` (`None`).
    Reset(Option<String>),
    /// `USE db`.
    Use(String),
    /// `SHOW name`.
    Show(String),
    /// `SHOW ALL`.
    ShowAll,
    /// `SELECT f(), g()` over identity functions.
    Select(Vec<IdentityFn>),
}

/// The identity functions answered locally.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IdentityFn {
    Version,
    CurrentSchema,
    CurrentDatabase,
    CurrentUser(&'static str),
    BackendPid,
    CurrentSetting(String),
}

/// Recognises a command the wire server answers itself.
pub(crate) fn parse(sql: &str) -> Option<Local> {
    let tokens = tokenize(sql)?;
    let first = tokens.first()?;
    let rest = &tokens[1..];
    let word = |i: usize, kw: &str| rest.get(i).is_some_and(|t| t.is(kw));
    match first {
        Token::Word(w) => match w.as_str() {
            "begin" => Some(Local::Begin("BEGIN")),
            "start" if word(0, "transaction") => Some(Local::Begin("START TRANSACTION")),
            "commit" | "end" => Some(Local::End("COMMIT")),
            "rollback" | "abort" => Some(Local::End("ROLLBACK")),
            "savepoint" => Some(Local::Ignore("SAVEPOINT")),
            "release" => Some(Local::Ignore("RELEASE")),
            "discard" => Some(Local::Ignore("DISCARD ALL")),
            "deallocate" => Some(Local::Ignore("DEALLOCATE")),
            "set" => parse_set(rest),
            "reset" => match rest {
                [t] if t.is("all") => Some(Local::Reset(None)),
                [t] => Some(Local::Reset(Some(t.text().to_lowercase()))),
                // A dotted name (`lakehose.share_subplans`): word, '.', word.
                [first, more @ ..]
                    if more.len() % 2 == 0 && more.chunks(2).all(|c| c[0] == Token::Punct('.')) =>
                {
                    let mut name = first.text().to_lowercase();
                    for part in more.chunks(2) {
                        name.push('.');
                        name.push_str(&part[1].text().to_lowercase());
                    }
                    Some(Local::Reset(Some(name)))
                }
                _ => None,
            },
            "use" => match rest {
                [t @ (Token::Word(_) | Token::Quoted(_) | Token::Str(_))] => {
                    Some(Local::Use(t.text()))
                }
                _ => None,
            },
            "show" => parse_show(rest),
            "select" => parse_identity_select(rest),
            _ => None,
        },
        _ => None,
    }
}

fn parse_set(tokens: &[Token]) -> Option<Local> {
    let mut tokens = tokens;
    if tokens
        .first()
        .is_some_and(|t| t.is("session") || t.is("local"))
    {
        // `SET SESSION CHARACTERISTICS AS TRANSACTION ...`
        if tokens.get(1).is_some_and(|t| t.is("characteristics")) {
            return Some(Local::Ignore("SET"));
        }
        tokens = &tokens[1..];
    }
    let first = tokens.first()?;
    if first.is("transaction") {
        return Some(Local::Ignore("SET"));
    }
    if first.is("time") && tokens.get(1).is_some_and(|t| t.is("zone")) {
        let values = tokens[2..].iter().map(Token::text).collect::<Vec<_>>();
        return Some(Local::Set("timezone".to_string(), vec![values.join(" ")]));
    }
    if first.is("names") {
        let values = tokens[1..].iter().map(Token::text).collect::<Vec<_>>();
        return Some(Local::Set("client_encoding".to_string(), values));
    }
    let name = match first {
        Token::Word(w) => w.clone(),
        Token::Quoted(q) => q.to_lowercase(),
        _ => return None,
    };
    // Dotted names (`a.b`) arrive as word, '.', word.
    let mut idx = 1;
    let mut name = name;
    while tokens.get(idx) == Some(&Token::Punct('.')) {
        name.push('.');
        name.push_str(&tokens.get(idx + 1)?.text().to_lowercase());
        idx += 2;
    }
    let sep = tokens.get(idx)?;
    if !(sep.is("to") || *sep == Token::Punct('=')) {
        return None;
    }
    let values: Vec<String> = tokens[idx + 1..]
        .split(|t| *t == Token::Punct(','))
        .map(|part| part.iter().map(Token::text).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(Local::Set(name, values))
}

/// Settings whose `SHOW` the wire server answers; other `SHOW`s (`SHOW
/// TABLES`, `SHOW DATABASES`, ...) go to the engine.
fn parse_show(tokens: &[Token]) -> Option<Local> {
    match tokens {
        [t] if t.is("all") => Some(Local::ShowAll),
        [a, b, c] if a.is("transaction") && b.is("isolation") && c.is("level") => {
            Some(Local::Show("transaction_isolation".to_string()))
        }
        [a, b] if a.is("time") && b.is("zone") => Some(Local::Show("TimeZone".to_string())),
        [Token::Word(name)] | [Token::Quoted(name)] => {
            let probe = Session::default();
            let known = probe.setting(name).is_some();
            known.then(|| Local::Show(display_name(name)))
        }
        _ => None,
    }
}

/// The column name Postgres uses for `SHOW name` (its canonical spelling).
fn display_name(name: &str) -> String {
    default_parameters()
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(k, _)| k.to_string())
        .unwrap_or_else(|| name.to_lowercase())
}

fn parse_identity_select(tokens: &[Token]) -> Option<Local> {
    let mut items = Vec::new();
    for part in tokens.split(|t| *t == Token::Punct(',')) {
        let item = match part {
            [Token::Word(f), Token::Punct('('), Token::Punct(')')] => match f.as_str() {
                "version" => IdentityFn::Version,
                "current_schema" => IdentityFn::CurrentSchema,
                "current_database" => IdentityFn::CurrentDatabase,
                "pg_backend_pid" => IdentityFn::BackendPid,
                _ => return None,
            },
            [Token::Word(f)] => match f.as_str() {
                "current_schema" => IdentityFn::CurrentSchema,
                "current_catalog" => IdentityFn::CurrentDatabase,
                "current_user" => IdentityFn::CurrentUser("current_user"),
                "session_user" => IdentityFn::CurrentUser("session_user"),
                "user" => IdentityFn::CurrentUser("current_user"),
                _ => return None,
            },
            [
                Token::Word(f),
                Token::Punct('('),
                Token::Str(name),
                Token::Punct(')'),
            ] if f == "current_setting" => IdentityFn::CurrentSetting(name.clone()),
            _ => return None,
        };
        items.push(item);
    }
    (!items.is_empty()).then_some(Local::Select(items))
}

/// A command's effect on the connection.
pub(crate) enum LocalResult {
    /// Rows to return.
    Rows(SchemaRef, RecordBatch),
    /// A command tag.
    Tag(&'static str),
    /// Transaction start, with its tag.
    Begin(&'static str),
    /// Transaction end, with its tag.
    End(&'static str),
}

/// Why a local command failed: SQLSTATE and message.
pub(crate) type LocalError = (&'static str, String);

fn text_rows(columns: Vec<(String, Vec<String>)>) -> LocalResult {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, _)| Field::new(name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|(_, values)| Arc::new(StringArray::from(values)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .unwrap_or_else(|_| RecordBatch::new_empty(schema.clone()));
    LocalResult::Rows(schema, batch)
}

/// Whether running `command` changes the session (describing must not run
/// such commands).
pub(crate) fn is_read_only(command: &Local) -> bool {
    matches!(command, Local::Show(_) | Local::ShowAll | Local::Select(_))
}

/// Runs `command` against the session of user `user`.
pub(crate) fn run(
    command: &Local,
    session: &mut Session,
    user: &str,
) -> Result<LocalResult, LocalError> {
    match command {
        Local::Begin(tag) => Ok(LocalResult::Begin(tag)),
        Local::End(tag) => Ok(LocalResult::End(tag)),
        Local::Ignore(tag) => Ok(LocalResult::Tag(tag)),
        Local::Use(db) => {
            session.database = database_from_name(Some(db));
            Ok(LocalResult::Tag("SET"))
        }
        Local::Set(name, values) => {
            set(session, name, values)?;
            Ok(LocalResult::Tag("SET"))
        }
        Local::Reset(None) => {
            session.settings.clear();
            Ok(LocalResult::Tag("RESET"))
        }
        Local::Reset(Some(name)) => {
            session.settings.remove(name);
            Ok(LocalResult::Tag("RESET"))
        }
        Local::Show(name) => {
            let value = session.setting(name).ok_or_else(|| {
                (
                    "42704",
                    format!("unrecognized configuration parameter \"{name}\""),
                )
            })?;
            Ok(text_rows(vec![(name.clone(), vec![value])]))
        }
        Local::ShowAll => {
            let all = session.all_settings();
            let (names, values): (Vec<String>, Vec<String>) = all.into_iter().unzip();
            let descriptions = vec![String::new(); names.len()];
            Ok(text_rows(vec![
                ("name".to_string(), names),
                ("setting".to_string(), values),
                ("description".to_string(), descriptions),
            ]))
        }
        Local::Select(items) => select(items, session, user),
    }
}

/// Settings one connection may hold (`SET` of new names past it fails).
const MAX_SETTINGS: usize = 256;

fn set(session: &mut Session, name: &str, values: &[String]) -> Result<(), LocalError> {
    if !session.settings.contains_key(name) && session.settings.len() >= MAX_SETTINGS {
        return Err((
            "53400",
            format!("a connection may hold at most {MAX_SETTINGS} settings; RESET some first"),
        ));
    }
    match name {
        "search_path" => {
            // The first entry that is not a Postgres system schema becomes
            // the current database; `public` alone leaves it unchanged.
            let chosen = values.iter().map(|v| v.trim()).find(|v| {
                !matches!(
                    v.to_lowercase().as_str(),
                    "public" | "pg_catalog" | "$user" | "\"$user\"" | "information_schema"
                )
            });
            if let Some(db) = chosen {
                session.database = database_from_name(Some(db));
            }
            Ok(())
        }
        "client_encoding" => {
            let value = values.join(",");
            let normalized = value.to_lowercase().replace(['-', '_'], "");
            if normalized == "utf8" || normalized == "unicode" {
                Ok(())
            } else {
                Err((
                    "22023",
                    format!(
                        "lakehose only speaks UTF8; client_encoding \"{value}\" is not supported"
                    ),
                ))
            }
        }
        // lakehose's planner switches, applied to this connection's
        // queries: checked now, so a typo fails the SET, not later queries.
        _ if name.starts_with("lakehose.") => {
            let value = values.join(",");
            lakehose_query::check_session_setting(name, value.trim()).map_err(|e| {
                (
                    "22023",
                    format!("invalid value for parameter \"{name}\": {e}"),
                )
            })?;
            session
                .settings
                .insert(name.to_string(), value.trim().to_string());
            Ok(())
        }
        _ => {
            session.settings.insert(name.to_string(), values.join(", "));
            Ok(())
        }
    }
}

fn select(items: &[IdentityFn], session: &Session, user: &str) -> Result<LocalResult, LocalError> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for item in items {
        let (name, value): (&str, ArrayRef) = match item {
            IdentityFn::Version => (
                "version",
                Arc::new(StringArray::from(vec![format!(
                    "PostgreSQL {SERVER_VERSION}, lakehose query service on {}",
                    std::env::consts::ARCH
                )])),
            ),
            IdentityFn::CurrentSchema => (
                "current_schema",
                Arc::new(StringArray::from(vec![session.database_name()])),
            ),
            IdentityFn::CurrentDatabase => (
                "current_database",
                Arc::new(StringArray::from(vec![session.database_name()])),
            ),
            IdentityFn::CurrentUser(name) => {
                (*name, Arc::new(StringArray::from(vec![user.to_string()])))
            }
            IdentityFn::BackendPid => (
                "pg_backend_pid",
                Arc::new(Int32Array::from(vec![session.pid])),
            ),
            IdentityFn::CurrentSetting(setting) => {
                let value = session.setting(setting).ok_or_else(|| {
                    (
                        "42704",
                        format!("unrecognized configuration parameter \"{setting}\""),
                    )
                })?;
                ("current_setting", Arc::new(StringArray::from(vec![value])))
            }
        };
        fields.push(Field::new(name, value.data_type().clone(), true));
        arrays.push(value);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema.clone(), arrays).map_err(|e| ("XX000", e.to_string()))?;
    Ok(LocalResult::Rows(schema, batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_session_commands_are_recognised() {
        assert_eq!(parse("BEGIN"), Some(Local::Begin("BEGIN")));
        assert_eq!(parse("commit work"), Some(Local::End("COMMIT")));
        assert_eq!(
            parse("SET extra_float_digits = 3"),
            Some(Local::Set("extra_float_digits".into(), vec!["3".into()]))
        );
        assert_eq!(
            parse("SET application_name = 'Power BI'"),
            Some(Local::Set(
                "application_name".into(),
                vec!["Power BI".into()]
            ))
        );
        assert_eq!(
            parse("SET DateStyle TO ISO, MDY"),
            Some(Local::Set(
                "datestyle".into(),
                vec!["iso".into(), "mdy".into()]
            ))
        );
        assert_eq!(
            parse("SHOW TRANSACTION ISOLATION LEVEL"),
            Some(Local::Show("transaction_isolation".into()))
        );
        assert_eq!(parse("SHOW TABLES"), None);
        assert_eq!(
            parse("SHOW datestyle"),
            Some(Local::Show("DateStyle".into()))
        );
        assert_eq!(
            parse("select version()"),
            Some(Local::Select(vec![IdentityFn::Version]))
        );
        assert_eq!(parse("SELECT version() FROM t"), None);
        assert_eq!(parse("SELECT 1"), None);
        assert_eq!(parse("USE sales"), Some(Local::Use("sales".into())));
    }

    #[test]
    fn pg_search_path_switches_database() {
        let mut session = Session::new(Some("postgres"), None, 1);
        assert_eq!(session.database, None);
        let cmd = parse("SET search_path TO \"$user\", public, sales").unwrap();
        run(&cmd, &mut session, "u").unwrap();
        assert_eq!(session.database.as_deref(), Some("sales"));
        run(
            &parse("SET search_path = public").unwrap(),
            &mut session,
            "u",
        )
        .unwrap();
        assert_eq!(session.database.as_deref(), Some("sales"));
        run(&parse("USE default").unwrap(), &mut session, "u").unwrap();
        assert_eq!(session.database, None);
        assert!(
            run(
                &parse("SET client_encoding = 'LATIN1'").unwrap(),
                &mut session,
                "u"
            )
            .is_err()
        );
    }

    #[test]
    fn pg_lakehose_settings_are_checked_kept_and_reset() {
        let mut session = Session::new(None, None, 1);
        let set = |s: &mut Session, sql: &str| run(&parse(sql).unwrap(), s, "u");
        set(&mut session, "SET lakehose.share_subplans = false").unwrap();
        set(&mut session, "SET lakehose.runtime_filters TO 'false'").unwrap();
        let mut got = session.query_settings();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("lakehose.runtime_filters".to_string(), "false".to_string()),
                ("lakehose.share_subplans".to_string(), "false".to_string()),
            ]
        );
        // A bad value or an unknown switch fails the SET and changes nothing.
        let Err(err) = set(&mut session, "SET lakehose.filter_order = sometimes") else {
            panic!("a bad value was accepted");
        };
        assert_eq!(err.0, "22023");
        assert!(err.1.contains("sometimes"), "{}", err.1);
        assert!(set(&mut session, "SET lakehose.no_such_rule = true").is_err());
        assert_eq!(session.query_settings().len(), 2);
        // Other settings never reach the engine.
        set(&mut session, "SET application_name = 'x'").unwrap();
        assert_eq!(session.query_settings().len(), 2);
        set(&mut session, "RESET lakehose.share_subplans").unwrap();
        assert_eq!(session.query_settings().len(), 1);
        set(&mut session, "RESET ALL").unwrap();
        assert!(session.query_settings().is_empty());
    }

    #[test]
    fn pg_a_connection_holds_a_bounded_number_of_settings() {
        let mut session = Session::new(None, None, 1);
        let mut refused = None;
        for i in 0..10_000 {
            let sql = format!("SET app.setting_{i} = {i}");
            if let Err(e) = run(&parse(&sql).unwrap(), &mut session, "u") {
                refused = Some((i, e));
                break;
            }
        }
        let (at, (code, _)) = refused.expect("refused at some point");
        assert_eq!(code, "53400");
        assert!(at <= MAX_SETTINGS, "{at}");
        // Changing a setting it holds still works; RESET ALL frees them.
        run(&parse("SET app.setting_0 = 5").unwrap(), &mut session, "u").unwrap();
        run(&parse("RESET ALL").unwrap(), &mut session, "u").unwrap();
        run(&parse("SET app.setting_x = 1").unwrap(), &mut session, "u").unwrap();
    }
}
