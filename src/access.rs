//! Who may call the server: the principals' keys, checked on every request.
//!
//! - HTTP: every request but `GET /health` and `GET /metrics` must carry a
//!   valid SigV4 signature (AWS JSON calls scoped to `firehose`, `glue` or
//!   `athena` after their `X-Amz-Target`; NDJSON ingest to `firehose`),
//!   else it gets AWS's error and nothing happens. The verified caller
//!   travels with the request as a [`Caller`] extension.
//! - NDJSON ingest also takes `Authorization: Bearer <JWT>` from an
//!   identity provider when `--jwt-jwks` is set ([`lakehose_auth::jwt`]);
//!   a bad token gets 401 `NotAuthorizedException`.
//! - Postgres wire: SCRAM-SHA-256, the access key id as user name and the
//!   secret access key as password.
//!
//! Authentication is required once any key exists, and always when the
//! server listens beyond loopback (it refuses to start there without a
//! key). On loopback with no key at all, requests are let in, as before
//! keys existed.
//!
//! An authenticated call is then authorized: its IAM action and resources
//! ([`lakehose_auth::actions`]) against the caller's and its groups'
//! policies ([`lakehose_auth::policy`]); a call no policy allows, or one a
//! policy denies, gets `AccessDeniedException` and does nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::bail;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lakehose_auth::audit::AuditLog;
use lakehose_auth::jwt::{JwtConfig, JwtVerifier};
use lakehose_auth::keys::KeyPaths;
use lakehose_auth::policy::Policies;
use lakehose_auth::{AuthError, KeyStore, actions, sigv4};
use lakehose_catalog::awsjson::AwsError;
use lakehose_query::contract::{Privilege, Securable, TableAccess};
use serde_json::json;

pub use lakehose_auth::Caller;

/// The host names requests may address the server by (the `Host` header):
/// IP literals and `localhost` always, and the allow-list's names
/// (`*` wildcards). A name outside them is how a DNS-rebinding page in a
/// browser would reach a server on loopback, so it is refused.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    patterns: Vec<String>,
}

impl AllowedHosts {
    /// The allow-list (host names or patterns such as `*.example.com`).
    pub fn new(patterns: impl IntoIterator<Item = String>) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// Whether `host` (a `Host` header value, port included or not) is
    /// allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = if let Some(v6) = host.strip_prefix('[') {
            return v6
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        } else {
            host.rsplit_once(':')
                .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                .map_or(host.as_str(), |(name, _)| name)
        };
        name.parse::<std::net::Ipv4Addr>().is_ok()
            || name == "localhost"
            || self
                .patterns
                .iter()
                .any(|p| lakehose_auth::policy::wildcard_match(p, name, true))
    }
}

/// The middleware that refuses requests addressed by a host name the
/// server does not answer to.
pub async fn check_host(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if hosts.allows(&h) => next.run(request).await,
        other => {
            tracing::warn!(host = ?other.as_deref().map(|h| h.chars().take(100).collect::<String>()), "request refused: host not allowed");
            (
                StatusCode::FORBIDDEN,
                axum::Json(json!({
                    "error": "HostNotAllowed",
                    "message": "this server is not addressed by that host name; add it to --allowed-hosts",
                })),
            )
                .into_response()
        }
    }
}

/// The environment variables of the single admin key.
pub const ACCESS_KEY_ENV: &str = "LAKEHOSE_ACCESS_KEY_ID";
/// See [`ACCESS_KEY_ENV`].
pub const SECRET_KEY_ENV: &str = "LAKEHOSE_SECRET_ACCESS_KEY";

/// The admin key of the environment: both variables set and non-empty, or
/// neither set. Anything in between refuses to start.
pub fn env_admin_key() -> anyhow::Result<Option<(String, String)>> {
    let id = std::env::var(ACCESS_KEY_ENV).ok();
    let secret = std::env::var(SECRET_KEY_ENV).ok();
    match (id, secret) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.is_empty() => {
            Ok(Some((id.trim().to_string(), secret)))
        }
        (Some(_), Some(_)) => {
            bail!("{ACCESS_KEY_ENV} and {SECRET_KEY_ENV} must both be non-empty (or both unset)")
        }
        (Some(_), None) => {
            bail!("{ACCESS_KEY_ENV} is set but {SECRET_KEY_ENV} is not: set both or neither")
        }
        (None, Some(_)) => {
            bail!("{SECRET_KEY_ENV} is set but {ACCESS_KEY_ENV} is not: set both or neither")
        }
    }
}

/// The server's keys and whether they must be used.
#[derive(Clone)]
pub struct Access {
    keys: Arc<KeyStore>,
    policies: Arc<Policies>,
    audit: AuditLog,
    /// Bearer tokens accepted on NDJSON ingest.
    jwt: Option<Arc<JwtVerifier>>,
    /// The Athena API, to find the workgroup of a query execution.
    athena: Option<lakehose_athena::AthenaApi>,
    /// Listening beyond loopback: authentication is required even when
    /// every key has been revoked.
    always: bool,
    /// Largest body read to check a signature.
    max_body_bytes: usize,
    /// Per-principal request rates and concurrent queries.
    limits: Arc<PrincipalLimits>,
    /// Dashboard viewers signed in with a key, by their cookie's hash.
    sessions: Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], Session>>>,
    /// Cookies get `Secure` (the HTTP port speaks TLS).
    secure_cookies: bool,
}

/// A dashboard viewer's sign-in.
#[derive(Debug, Clone)]
struct Session {
    caller: Caller,
    expires: std::time::Instant,
}

/// How long a dashboard sign-in lasts.
const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(8 * 3600);
/// Sign-ins held at most; the one closest to expiry goes first past it.
const MAX_SESSIONS: usize = 10_000;
/// The dashboards' sign-in cookie.
const SESSION_COOKIE: &str = "lakehose_session";

/// What one principal may do at once.
#[derive(Debug, Clone, Copy)]
pub struct PrincipalCaps {
    /// Requests a second (a bucket of twice as many); 0 = no limit.
    pub requests_per_sec: u32,
    /// Athena queries queued or running at once; 0 = no limit.
    pub queries: usize,
}

impl Default for PrincipalCaps {
    fn default() -> Self {
        Self {
            requests_per_sec: 2000,
            queries: 20,
        }
    }
}

/// Principals tracked at most (token buckets, running queries); the
/// longest idle is forgotten past it, so many bearer-token subjects cannot
/// grow the maps without bound.
const MAX_TRACKED_PRINCIPALS: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: std::time::Instant,
}

#[derive(Debug, Default)]
struct PrincipalLimits {
    caps: Option<PrincipalCaps>,
    buckets: std::sync::Mutex<std::collections::HashMap<String, Bucket>>,
    queries: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
}

impl PrincipalLimits {
    /// Takes a request from the principal's bucket; `false` when empty.
    fn take(&self, principal: &str) -> bool {
        let Some(caps) = self.caps.filter(|c| c.requests_per_sec > 0) else {
            return true;
        };
        let rate = f64::from(caps.requests_per_sec);
        let burst = rate * 2.0;
        let now = std::time::Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED_PRINCIPALS && !buckets.contains_key(principal) {
            let idle = buckets
                .iter()
                .max_by_key(|(_, b)| now - b.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = idle {
                buckets.remove(&k);
            }
        }
        let bucket = buckets.entry(principal.to_string()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        bucket.tokens = (bucket.tokens + (now - bucket.last).as_secs_f64() * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the principal may start another query now (its queued and
    /// running ones counted with `active`).
    fn may_start_query(&self, principal: &str, active: &dyn Fn(&str) -> bool) -> bool {
        let Some(max) = self.caps.map(|c| c.queries).filter(|m| *m > 0) else {
            return true;
        };
        let mut queries = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(ids) = queries.get_mut(principal) else {
            return true;
        };
        ids.retain(|id| active(id));
        let free = ids.len() < max;
        if ids.is_empty() {
            queries.remove(principal);
        }
        free
    }

    fn started_query(&self, principal: &str, id: String) {
        if self.caps.is_none_or(|c| c.queries == 0) {
            return;
        }
        let mut queries = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        if queries.len() >= MAX_TRACKED_PRINCIPALS && !queries.contains_key(principal) {
            // Rather than grow: the principal's queries go uncounted.
            return;
        }
        queries.entry(principal.to_string()).or_default().push(id);
    }
}

/// The error a throttled call gets, as its service answers it.
fn throttled(action: &str) -> Response {
    let (code, status, message) = match action {
        "firehose:PutRecord" | "firehose:PutRecordBatch" => (
            "ServiceUnavailableException",
            StatusCode::SERVICE_UNAVAILABLE,
            "Slow down.",
        ),
        a if a.starts_with("firehose:") => (
            "LimitExceededException",
            StatusCode::BAD_REQUEST,
            "Rate exceeded for this principal.",
        ),
        _ => (
            "ThrottlingException",
            StatusCode::BAD_REQUEST,
            "Rate exceeded",
        ),
    };
    AwsError::client(code, message)
        .with_status(status)
        .into_response()
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("always", &self.always)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// The keys of `paths` (and the environment's admin key) for a server
    /// listening on `addrs`. Refuses a listener beyond loopback when no key
    /// exists.
    pub fn open(
        paths: KeyPaths,
        jwt: Option<JwtConfig>,
        data_dir: &std::path::Path,
        addrs: &[SocketAddr],
        max_body_bytes: usize,
    ) -> anyhow::Result<Self> {
        let keys = Arc::new(KeyStore::open(paths.clone(), env_admin_key()?)?);
        let policies = Arc::new(Policies::open(paths.policies.clone())?);
        let exposed: Vec<&SocketAddr> = addrs.iter().filter(|a| !a.ip().is_loopback()).collect();
        if !exposed.is_empty() && !keys.is_enabled() {
            bail!(
                "refusing to listen on {} without access keys: anyone who can reach it could read and change everything. Create a key first (lakehose admin keys create --principal <name>, kept in {}), or set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV}, or listen on 127.0.0.1",
                exposed
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" and "),
                paths.keys.display()
            );
        }
        let audit = AuditLog::open(lakehose_auth::audit::dir_in(data_dir))?;
        let jwt = match jwt {
            Some(config) => Some(Arc::new(JwtVerifier::open(config)?)),
            None => None,
        };
        Ok(Self {
            limits: Arc::new(PrincipalLimits::default()),
            keys,
            policies,
            audit,
            always: !exposed.is_empty() || jwt.is_some(),
            jwt,
            athena: None,
            max_body_bytes,
            sessions: Arc::default(),
            secure_cookies: false,
        })
    }

    /// With `Secure` sign-in cookies (when the HTTP port speaks TLS).
    pub fn with_secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// With per-principal caps on requests and queries.
    pub fn with_caps(mut self, caps: PrincipalCaps) -> Self {
        self.limits = Arc::new(PrincipalLimits {
            caps: Some(caps),
            ..Default::default()
        });
        self
    }

    /// With the Athena API whose executions' workgroups policies name.
    pub fn with_athena(mut self, athena: lakehose_athena::AthenaApi) -> Self {
        self.athena = Some(athena);
        self
    }

    /// The IAM action and resources of a call; the body is read for its
    /// resources only when `caller`'s policies could decide differently
    /// by resource (a batch of records is not parsed twice when they
    /// cannot).
    fn request_of(
        &self,
        parts: &axum::http::request::Parts,
        body: &[u8],
        caller: &Caller,
    ) -> actions::Request {
        // Athena in REST-JSON: the call's members are in its path and
        // query string as well as its body.
        if let Some(Ok((operation, members))) = lakehose_athena::rest::operation(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query(),
            body,
        ) {
            let lookup = |id: &str| self.athena.as_ref().and_then(|a| a.workgroup_of(id));
            return actions::athena(
                &caller.region,
                operation,
                &actions::call_fields(&members),
                &lookup,
            );
        }
        let action_only = self.request_from(parts, &serde_json::Value::Null, &caller.region);
        if !self.policies.needs_resources(caller, &action_only.action)
            && !changes_something(&action_only.action)
        {
            return action_only;
        }
        self.request_from(parts, &actions::call_fields(body), &caller.region)
    }

    fn request_from(
        &self,
        parts: &axum::http::request::Parts,
        json: &serde_json::Value,
        region: &str,
    ) -> actions::Request {
        let path = parts.uri.path();
        if let Some(rest) = path.strip_prefix("/v1/streams/") {
            let stream = rest.split('/').next().unwrap_or_default();
            return actions::ndjson(region, stream);
        }
        if path.starts_with("/accounts/") {
            return actions::quicksight(region, parts.method.as_str(), path);
        }
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (prefix, operation) = target.split_once('.').unwrap_or(("", target));
        match prefix {
            lakehose_ingest::firehose::TARGET_PREFIX => actions::firehose(region, operation, json),
            lakehose_catalog::glue::TARGET_PREFIX => actions::glue(region, operation, json),
            lakehose_athena::TARGET_PREFIX => {
                let lookup = |id: &str| self.athena.as_ref().and_then(|a| a.workgroup_of(id));
                actions::athena(region, operation, json, &lookup)
            }
            _ => actions::Request {
                action: format!("unknown:{}", operation.chars().take(64).collect::<String>()),
                resources: vec!["*".into()],
            },
        }
    }

    /// Whether requests must be authenticated now.
    pub fn required(&self) -> bool {
        self.always || self.keys.is_enabled()
    }

    /// The Postgres wire server's users: the keys.
    pub fn passwords(&self) -> Arc<dyn lakehose_pgwire::Passwords> {
        Arc::new(self.clone())
    }

    /// Where the Postgres wire server reports statements that change
    /// something: the audit log.
    pub fn statement_audit(&self) -> Arc<dyn lakehose_pgwire::StatementAudit> {
        Arc::new(self.clone())
    }
}

/// The region of grant ARNs for callers that signed for none (Postgres
/// logins, ETL jobs).
const GRANTS_REGION: &str = "us-east-1";

/// A caller's table grants: its and its groups' policies, read when a
/// grant is asked (a changed policy applies to the next check).
///
/// | what a statement does | IAM action | resources |
/// |---|---|---|
/// | reads a table or view, sees it listed | `lakehose:Select` | the table |
/// | inserts into a table (INSERT, CTAS, an ETL job's target) | `lakehose:Insert` | the table |
/// | points a table or partition at a location, writes there (UNLOAD) | `lakehose:DataLocationAccess` | `arn:aws:s3:::bucket/prefix/` |
/// | CREATE TABLE / VIEW, CTAS | `glue:CreateTable` | catalog, database, table |
/// | ALTER TABLE, CREATE OR REPLACE VIEW | `glue:UpdateTable` | catalog, database, table |
/// | ADD PARTITION, MSCK REPAIR | `glue:BatchCreatePartition` | catalog, database, table |
/// | DROP PARTITION | `glue:BatchDeletePartition` | catalog, database, table |
/// | DROP TABLE / VIEW | `glue:DeleteTable` | catalog, database, table |
/// | CREATE / DROP DATABASE | `glue:CreateDatabase` / `glue:DeleteDatabase` | catalog, database |
///
/// DDL needs the Glue actions the same change made through the Glue API
/// needs, so one policy governs both.
#[derive(Debug)]
struct Grants {
    /// `None`: a login whose key is gone, granted nothing.
    caller: Option<Caller>,
    principal: String,
    policies: Arc<Policies>,
}

impl Grants {
    /// The IAM action and resources of `privilege` on `on`.
    fn request(region: &str, privilege: Privilege, on: Securable<'_>) -> actions::Request {
        let action = match privilege {
            Privilege::Select => "lakehose:Select",
            Privilege::Insert => "lakehose:Insert",
            Privilege::DataLocation => "lakehose:DataLocationAccess",
            Privilege::CreateTable => "glue:CreateTable",
            Privilege::AlterTable => "glue:UpdateTable",
            Privilege::AddPartitions => "glue:BatchCreatePartition",
            Privilege::DropPartitions => "glue:BatchDeletePartition",
            Privilege::DropTable => "glue:DeleteTable",
            Privilege::CreateDatabase => "glue:CreateDatabase",
            Privilege::DropDatabase => "glue:DeleteDatabase",
        };
        let resources = match (privilege, on) {
            (Privilege::Select | Privilege::Insert, Securable::Table { database, table }) => {
                vec![actions::table_arn(region, database, table)]
            }
            (_, Securable::Table { database, table }) => vec![
                actions::catalog_arn(region),
                actions::database_arn(region, database),
                actions::table_arn(region, database, table),
            ],
            (_, Securable::Database(database)) => vec![
                actions::catalog_arn(region),
                actions::database_arn(region, database),
            ],
            // A location that is no S3 URL matches only `*`.
            (_, Securable::Location(location)) => {
                vec![actions::location_arn(location).unwrap_or_else(|| "*".into())]
            }
        };
        actions::Request {
            action: action.into(),
            resources,
        }
    }
}

impl TableAccess for Grants {
    fn principal(&self) -> &str {
        &self.principal
    }

    fn allows(&self, privilege: Privilege, on: Securable<'_>) -> bool {
        let Some(caller) = &self.caller else {
            return false;
        };
        let region = if caller.region.is_empty() {
            GRANTS_REGION
        } else {
            &caller.region
        };
        let request = Self::request(region, privilege, on);
        self.policies
            .authorize(caller, &request.action, &request.resources)
            .is_ok()
    }
}

impl Access {
    /// The table grants of an authenticated caller.
    pub fn grants(&self, caller: &Caller) -> Arc<dyn TableAccess> {
        Arc::new(Grants {
            principal: caller.principal.clone(),
            caller: Some(caller.clone()),
            policies: Arc::clone(&self.policies),
        })
    }

    /// The table grants of a named principal that holds no key (the ETL
    /// jobs' principal): its own policies, in no group. `None` when
    /// requests need no authentication (nothing is checked then).
    pub fn principal_grants(&self, principal: &str) -> Option<Arc<dyn TableAccess>> {
        self.required().then(|| {
            self.grants(&Caller {
                principal: principal.to_string(),
                groups: Vec::new(),
                access_key_id: String::new(),
                region: GRANTS_REGION.into(),
            })
        })
    }
}

impl lakehose_pgwire::Passwords for Access {
    fn password(&self, user: &str) -> Option<String> {
        let key = self.keys.lookup(user)?;
        // Temporary keys need their session token, which a Postgres login
        // cannot carry: they are for the AWS APIs only.
        if !key.token_matches(None) {
            return None;
        }
        Some(key.secret().to_string())
    }

    fn required(&self) -> bool {
        Access::required(self)
    }

    fn principal(&self, user: &str) -> String {
        self.keys
            .lookup(user)
            .map_or_else(|| user.to_string(), |k| k.principal)
    }

    fn access(&self, user: &str) -> Option<Arc<dyn TableAccess>> {
        if !self.required() {
            return None;
        }
        Some(match self.keys.lookup(user) {
            Some(key) => self.grants(&key.caller()),
            None => Arc::new(Grants {
                caller: None,
                principal: user.to_string(),
                policies: Arc::clone(&self.policies),
            }),
        })
    }
}

/// What an ETL run's audit event says of it.
pub fn etl_run_event(record: &lakehose_transform::RunRecord) -> serde_json::Value {
    json!({
        "job": record.job,
        "run_id": record.run_id,
        "attempt": record.attempt,
        "target": record.target,
        "mode": record.mode,
        "state": record.state,
        "rows_written": record.rows_written,
        "table_version": record.table_version,
        "error": record.error.as_deref().map(|e| e.chars().take(2048).collect::<String>()),
    })
}

impl lakehose_transform::RunAudit for Access {
    fn run_ended(&self, principal: Option<&str>, record: &lakehose_transform::RunRecord) {
        let mut event = etl_run_event(record);
        event["principal"] = json!(principal);
        event["via"] = json!("scheduler");
        self.audit.record("etl_run", event);
    }
}

impl lakehose_pgwire::StatementAudit for Access {
    fn statement(&self, user: &str, kind: &str, sql: &str) {
        let principal = self.keys.lookup(user).map(|k| k.principal);
        self.audit.record(
            "sql_statement",
            json!({
                "principal": principal,
                "user": user,
                "via": "postgres",
                "kind": kind,
                "query": sql.chars().take(8192).collect::<String>(),
            }),
        );
    }
}

/// The service a request's signature must be scoped to.
fn service_of(request: &Request) -> Option<&'static str> {
    if request.uri().path().starts_with("/v1/streams/") {
        return Some("firehose");
    }
    if request.uri().path().starts_with("/accounts/") {
        return Some("quicksight");
    }
    if lakehose_athena::rest::is_rest_path(request.uri().path()) {
        return Some("athena");
    }
    let target = request.headers().get("x-amz-target")?.to_str().ok()?;
    match target.split_once('.')?.0 {
        lakehose_ingest::firehose::TARGET_PREFIX => Some("firehose"),
        lakehose_catalog::glue::TARGET_PREFIX => Some("glue"),
        lakehose_athena::TARGET_PREFIX => Some("athena"),
        _ => None,
    }
}

/// The middleware: verifies the request's signature, or answers AWS's
/// error without running the handler.
pub async fn authenticate(State(access): State<Access>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/health" || path == "/metrics" || !access.required() {
        return next.run(request).await;
    }
    if path == "/favicon.ico" {
        return StatusCode::NOT_FOUND.into_response();
    }
    if path == "/dashboards" || path.starts_with("/dashboards/") {
        return dashboards(&access, request, next).await;
    }
    let service = service_of(&request);
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, access.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {} bytes", access.max_body_bytes),
            )
                .into_response();
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        let ndjson = parts.uri.path().starts_with("/v1/streams/");
        let verified = match (&access.jwt, ndjson) {
            (Some(jwt), true) => jwt.verify(token.trim()).map_err(|e| e.to_string()),
            (None, true) => {
                Err("bearer tokens are not configured on this server (--jwt-jwks)".to_string())
            }
            (_, false) => Err(
                "bearer tokens are accepted on NDJSON ingest only; sign AWS API calls with SigV4"
                    .to_string(),
            ),
        };
        return match verified {
            Ok(caller) => authorized(&access, parts, bytes, caller, next).await,
            Err(message) => {
                access.audit.record(
                    "authentication_failed",
                    json!({"code": "NotAuthorizedException", "path": parts.uri.path(), "reason": message}),
                );
                tracing::warn!(path = %parts.uri.path(), reason = %message, "request refused: bad bearer token");
                AwsError::client("NotAuthorizedException", message)
                    .with_status(StatusCode::UNAUTHORIZED)
                    .into_response()
            }
        };
    }
    let verified = match service {
        Some(service) => sigv4::verify(
            sigv4::Request {
                method: parts.method.as_str(),
                path_and_query,
                headers: &parts.headers,
                body: &bytes,
            },
            &access.keys,
            service,
            SystemTime::now(),
        ),
        None if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION) =>
        {
            Err(AuthError::InvalidSignature(
                "the request names no lakehose service".into(),
            ))
        }
        None => Err(AuthError::Missing),
    };
    match verified {
        Ok(caller) => authorized(&access, parts, bytes, caller, next).await,
        Err(e) => {
            access.audit.record(
                "authentication_failed",
                json!({
                    "code": e.code(),
                    "access_key_id": key_id(&parts.headers),
                    "path": parts.uri.path(),
                    "target": parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()),
                }),
            );
            tracing::warn!(
                code = e.code(),
                path = %parts.uri.path(),
                key = %key_id(&parts.headers),
                "request refused: not authenticated"
            );
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN);
            AwsError::client(e.code(), e.to_string())
                .with_status(status)
                .into_response()
        }
    }
}

/// Dashboards in a browser: a viewer signs in with an access key (a form
/// at `/dashboards/login`; an `HttpOnly`, `SameSite=Strict` cookie then)
/// or sends a bearer token of the identity provider. Viewing needs
/// `quicksight:DescribeDashboard` on `arn:aws:quicksight:<region>:000000000000:dashboard/<name>`
/// (the index `quicksight:ListDashboards`); row-level security keys on the
/// viewer's principal and groups.
async fn dashboards(access: &Access, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/dashboards/static/") {
        return next.run(request).await;
    }
    if path == "/dashboards/login" {
        return login(access, request).await;
    }
    let caller = session_caller(access, request.headers()).or_else(|| {
        let token = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        access.jwt.as_ref()?.verify(token.trim()).ok()
    });
    let Some(caller) = caller else {
        if request.method() == axum::http::Method::GET {
            let next_path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/dashboards/");
            let to = format!(
                "/dashboards/login?{}",
                lakehose_dashboards::data::encode_query([("next", next_path)])
            );
            return axum::response::Redirect::to(&to).into_response();
        }
        return (StatusCode::UNAUTHORIZED, "sign in at /dashboards/login").into_response();
    };
    let name = path
        .trim_start_matches("/dashboards")
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let (action, resource) = if name.is_empty() {
        ("quicksight:ListDashboards", "*".to_string())
    } else {
        (
            "quicksight:DescribeDashboard",
            format!(
                "arn:aws:quicksight:{GRANTS_REGION}:{}:dashboard/{name}",
                actions::ACCOUNT
            ),
        )
    };
    if let Err(denied) = access
        .policies
        .authorize(&caller, action, std::slice::from_ref(&resource))
    {
        access.audit.record(
            "access_denied",
            json!({"principal": caller.principal, "action": action, "resource": denied.resource}),
        );
        return (StatusCode::FORBIDDEN, denied.to_string()).into_response();
    }
    let mut request = request;
    request
        .extensions_mut()
        .insert(lakehose_dashboards::Viewer {
            principal: caller.principal.clone(),
            groups: caller.groups.clone(),
        });
    next.run(request).await
}

/// The caller of a request's sign-in cookie, while it lasts.
fn session_caller(access: &Access, headers: &axum::http::HeaderMap) -> Option<Caller> {
    let token = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))?;
    let key = session_key(token);
    let mut sessions = access.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let session = sessions.get(&key)?;
    if session.expires <= std::time::Instant::now() {
        sessions.remove(&key);
        return None;
    }
    // A revoked key ends its sign-ins.
    if !session.caller.access_key_id.is_empty()
        && access.keys.lookup(&session.caller.access_key_id).is_none()
    {
        sessions.remove(&key);
        return None;
    }
    Some(session.caller.clone())
}

fn session_key(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    access_key_id: String,
    secret: String,
    #[serde(default)]
    next: String,
}

/// `GET /dashboards/login` (the form) and `POST` (a sign-in).
async fn login(access: &Access, request: Request) -> Response {
    let paths = lakehose_dashboards::page::Paths::default();
    let html = |status: StatusCode, error: Option<&str>, next: &str| {
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            lakehose_dashboards::page::login(error, next, &paths),
        )
            .into_response()
    };
    if request.method() == axum::http::Method::GET {
        let next = request
            .uri()
            .query()
            .and_then(|q| {
                serde_urlencoded::from_str::<std::collections::HashMap<String, String>>(q).ok()
            })
            .and_then(|mut q| q.remove("next"))
            .unwrap_or_default();
        return html(StatusCode::OK, None, &next);
    }
    if request.method() != axum::http::Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), 16 << 10).await else {
        return html(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("the form is too large"),
            "",
        );
    };
    let Ok(form) = serde_urlencoded::from_bytes::<LoginForm>(&body) else {
        return html(StatusCode::BAD_REQUEST, Some("the form is incomplete"), "");
    };
    // Only a path of this server's dashboards (no open redirect).
    let next = if form.next.starts_with("/dashboards") && !form.next.starts_with("//") {
        form.next.clone()
    } else {
        "/dashboards/".to_string()
    };
    let id = form.access_key_id.trim();
    if !access.limits.take(&format!(
        "login:{}",
        id.chars().take(64).collect::<String>()
    )) {
        return html(
            StatusCode::TOO_MANY_REQUESTS,
            Some("too many attempts; wait a moment"),
            &next,
        );
    }
    let key = access
        .keys
        .lookup(id)
        .filter(|k| k.token_matches(None) && k.secret_matches(&form.secret));
    let Some(key) = key else {
        access.audit.record(
            "authentication_failed",
            json!({"code": "DashboardSignInFailed", "access_key_id": id.chars().take(32).collect::<String>(), "path": "/dashboards/login"}),
        );
        return html(
            StatusCode::UNAUTHORIZED,
            Some("unknown access key or wrong secret"),
            &next,
        );
    };
    let token: String = {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let caller = key.caller();
    {
        let mut sessions = access.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            session_key(&token),
            Session {
                caller: caller.clone(),
                expires: now + SESSION_TTL,
            },
        );
    }
    access.audit.record(
        "dashboard_sign_in",
        json!({"principal": caller.principal, "access_key_id": caller.access_key_id}),
    );
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/dashboards; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if access.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    (
        StatusCode::SEE_OTHER,
        [
            (axum::http::header::SET_COOKIE, cookie),
            (axum::http::header::LOCATION, next),
        ],
    )
        .into_response()
}

/// Runs an authenticated call when the caller's policies allow it.
async fn authorized(
    access: &Access,
    mut parts: axum::http::request::Parts,
    bytes: axum::body::Bytes,
    caller: Caller,
    next: Next,
) -> Response {
    let request = access.request_of(&parts, &bytes, &caller);
    if let Err(denied) = access
        .policies
        .authorize(&caller, &request.action, &request.resources)
    {
        access.audit.record(
            "access_denied",
            json!({
                "principal": caller.principal,
                "access_key_id": caller.access_key_id,
                "action": request.action,
                "resource": denied.resource,
            }),
        );
        tracing::warn!(
            principal = %caller.principal,
            action = %request.action,
            resource = %denied.resource,
            "request refused: not authorized"
        );
        return AwsError::client("AccessDeniedException", denied.to_string()).into_response();
    }
    if changes_something(&request.action) {
        let mut event = json!({
            "principal": caller.principal,
            "access_key_id": caller.access_key_id,
            "action": request.action,
            "resources": request.resources,
        });
        if request.action == "athena:StartQueryExecution"
            && let Some(sql) = actions::call_fields(&bytes)
                .get("QueryString")
                .and_then(|q| q.as_str().map(str::to_string))
        {
            event["query"] = json!(sql.chars().take(8192).collect::<String>());
        }
        access.audit.record("api_call", event);
    }
    if !access.limits.take(&caller.principal) {
        access.audit.record(
            "throttled",
            json!({"principal": caller.principal, "action": request.action}),
        );
        return throttled(&request.action);
    }
    let starts_query = request.action == "athena:StartQueryExecution";
    if starts_query {
        let active = |id: &str| access.athena.as_ref().is_some_and(|a| a.is_active(id));
        if !access.limits.may_start_query(&caller.principal, &active) {
            return AwsError::client(
                "TooManyRequestsException",
                format!(
                    "{} has as many queries queued or running as it may (--max-queries-per-principal)",
                    caller.principal
                ),
            )
            .into_response();
        }
    }
    let principal = caller.principal.clone();
    parts.extensions.insert(caller);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !starts_query || !response.status().is_success() {
        return response;
    }
    // Note the new execution for the principal's count.
    let (head, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 10).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response too large").into_response();
    };
    if let Some(id) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("QueryExecutionId")?.as_str().map(str::to_string))
    {
        access.limits.started_query(&principal, id);
    }
    Response::from_parts(head, Body::from(body))
}

/// Whether a call is audited: everything but reads and record ingest
/// (queries are audited, with their text: they may be DDL).
fn changes_something(action: &str) -> bool {
    let operation = action.split_once(':').map_or(action, |(_, op)| op);
    !(operation.starts_with("Get")
        || operation.starts_with("List")
        || operation.starts_with("Describe")
        || operation.starts_with("BatchGet")
        || operation == "PutRecord"
        || operation == "PutRecordBatch")
}

/// The access key id a request claims (for logs; never the signature).
fn key_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| sigv4::parse_authorization(v).ok())
        .map(|a| a.access_key_id.chars().take(32).collect())
        .unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::AllowedHosts;

    /// Grants follow the policies: SELECT and INSERT by table ARN, DDL by
    /// the Glue action and catalog/database/table ARNs, locations by S3
    /// ARN; explicit deny wins; a login whose key is gone has nothing.
    #[test]
    fn grants_map_privileges_to_policy_actions() {
        use lakehose_auth::policy::{Policies, Target, put_policy};
        use lakehose_query::contract::{Privilege as P, Securable, TableAccess};
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policies.json");
        put_policy(
            &path,
            &Target::Group("analysts".into()),
            &serde_json::json!({"Statement": [
                {"Effect": "Allow", "Action": "lakehose:Select", "Resource": "arn:aws:glue:*:*:table/sales/*"},
                {"Effect": "Deny", "Action": "lakehose:Select", "Resource": "arn:aws:glue:*:*:table/sales/payroll"},
                {"Effect": "Allow", "Action": ["glue:CreateTable", "lakehose:Insert"], "Resource": [
                    "arn:aws:glue:*:*:catalog", "arn:aws:glue:*:*:database/scratch", "arn:aws:glue:*:*:table/scratch/*"]},
                {"Effect": "Allow", "Action": "lakehose:DataLocationAccess", "Resource": "arn:aws:s3:::lake/exports/*"}
            ]}),
        )
        .unwrap();
        let policies = Arc::new(Policies::open(path).unwrap());
        let grants = super::Grants {
            caller: Some(super::Caller {
                principal: "dana".into(),
                groups: vec!["analysts".into()],
                access_key_id: "LKIA".into(),
                region: String::new(),
            }),
            principal: "dana".into(),
            policies: Arc::clone(&policies),
        };
        let table = |database, table| Securable::Table { database, table };
        assert!(grants.allows(P::Select, table("sales", "orders")));
        assert!(!grants.allows(P::Select, table("sales", "payroll")));
        assert!(!grants.allows(P::Select, table("hr", "people")));
        assert!(!grants.allows(P::Insert, table("sales", "orders")));
        assert!(grants.allows(P::Insert, table("scratch", "t")));
        assert!(grants.allows(P::CreateTable, table("scratch", "t")));
        assert!(!grants.allows(P::CreateTable, table("sales", "t")));
        assert!(!grants.allows(P::DropTable, table("scratch", "t")));
        assert!(!grants.allows(P::CreateDatabase, Securable::Database("scratch")));
        assert!(grants.allows(P::DataLocation, Securable::Location("s3://lake/exports/a/")));
        assert!(!grants.allows(P::DataLocation, Securable::Location("s3://lake/raw/")));
        assert!(!grants.allows(P::DataLocation, Securable::Location("file:///etc/")));
        let gone = super::Grants {
            caller: None,
            principal: "LKIAGONE".into(),
            policies,
        };
        assert!(!gone.allows(P::Select, table("sales", "orders")));
    }

    #[test]
    fn host_names_outside_the_list_are_refused() {
        let h = AllowedHosts::new(["lake.internal".to_string(), "*.corp.example".into()]);
        for ok in [
            "127.0.0.1:4570",
            "localhost:4570",
            "LOCALHOST",
            "[::1]:4570",
            "10.0.0.7",
            "lake.internal:4570",
            "a.corp.example",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:4570",
            "lake.internal.evil",
            "corp.example",
            "",
            "[zz]:1",
            "localhost.evil:80",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }
}
