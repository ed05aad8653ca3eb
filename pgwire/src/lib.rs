//! The Postgres wire protocol front end, so `psql`, drivers and BI tools can
//! query lakehose.
//!
//! [`serve`] accepts connections on a listener and runs each in its own
//! task; statements go to a [`SqlRunner`].
//!
//! # Authentication
//!
//! With [`PgConfig::passwords`] set, clients authenticate with
//! SCRAM-SHA-256 (what libpq, JDBC and tokio-postgres use by default) as a
//! user the [`Passwords`] source knows; a wrong password or unknown user
//! gets `28P01 password authentication failed for user "..."`, after the
//! same work either way. Without a source every client is trusted, which
//! is only reasonable on a loopback listener (the default). Passwords are
//! never logged, and never sent: SCRAM proves them.
//!
//! # Databases
//!
//! The database named in the startup packet is the connection's current
//! (Athena) database. No name, `postgres`, `template0`, `template1` and
//! `default` all mean the `default` database. `USE db` and `SET
//! search_path TO db` switch it (`public`, `pg_catalog` and `"$user"` in a
//! search path are skipped). The name is not checked at connect time; an
//! unknown database shows up as an error on the first query. Note that psql
//! and libpq use the user name as database name when none is given.
//!
//! # Statements
//!
//! The simple query protocol runs the statements of a query string one by
//! one and stops at the first error. The extended protocol takes one
//! statement per Parse; `$n` parameters are replaced by SQL literals of the
//! bound values (strings quoted and escaped, numbers checked, casts for the
//! other types) before the statement reaches the engine. Parameter types are
//! the ones the client declares, else guessed from the text (`$1::int8`,
//! `CAST($1 AS date)`, `LIMIT $1`), else `text`.
//!
//! Describe plans a query as `SELECT * FROM (query) LIMIT 0` with typed
//! NULLs for the parameters, which returns the columns without scanning
//! data; SHOW, DESCRIBE and EXPLAIN are run to describe them. Results are
//! then converted to the described column types if a bound value changed
//! them.
//!
//! The wire server answers some commands itself: `BEGIN`/`COMMIT`/
//! `ROLLBACK` (accepted; lakehose has no transactions), `SET`, `RESET`,
//! `SHOW` of session settings, `USE`, `DISCARD ALL`, and `SELECT`s of
//! `version()`, `current_schema()`, `current_database()`, `current_user`,
//! `current_setting('...')` and `pg_backend_pid()`. `SET` values are only
//! kept for `SHOW`: output is always ISO dates and UTC timestamps (with
//! their `+00` offset), whatever `DateStyle` or `TimeZone` says.
//!
//! Statements that read Postgres's system catalog (`pg_catalog` and its
//! tables: psql's `\d`, `\dt`, `\dn`, `\l`, drivers' and BI tools'
//! schema browsers) are parsed as Postgres SQL and answered from the
//! lakehose catalog, each database a schema (see `catalog`).
//!
//! # Types
//!
//! Arrow types map to `bool`, `int2`/`int4`/`int8`, `float4`/`float8`,
//! `numeric` (decimals and `UInt64`), `text`, `bytea`, `date`, `time`,
//! `timestamp`, `timestamptz`, `interval`, and `json` for lists, structs,
//! maps and unions. Every type has a text encoding and a binary encoding.
//!
//! # Cancellation
//!
//! A CancelRequest stops the running statement (`57014`). When the client
//! disconnects, its connection task is dropped within a fraction of a
//! second, together with the statement it was running.

mod auth;
mod encode;
mod guard;
mod handler;
mod params;
mod session;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pgwire::api::ConnectionManager;
use pgwire::api::PgWireServerHandlers;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use lakehose_query::contract::{SqlRunner, TableAccess};

/// The default address of the Postgres listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";

/// The default of [`PgLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;
/// Default of [`PgLimits::max_connections_per_principal`].
pub const DEFAULT_MAX_CONNECTIONS_PER_PRINCIPAL: usize = 20;
/// The default of [`PgLimits::startup_timeout`], seconds.
pub const DEFAULT_STARTUP_TIMEOUT_SECS: u64 = 30;
/// The default of [`PgLimits::idle_timeout`], seconds (above the default
/// query timeout, as a statement that sends nothing counts as idle).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 3600;
/// The default of [`PgLimits::max_message_bytes`].
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Limits of the Postgres wire server (see the `guard` module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgLimits {
    /// Connections served at once; further clients are turned away with
    /// `53300 too many connections`.
    pub max_connections: usize,
    /// Time from connecting to the end of startup and authentication.
    pub startup_timeout: Duration,
    /// Time a connection may pass without traffic either way (`None`:
    /// forever).
    pub idle_timeout: Option<Duration>,
    /// Bytes one frontend message may take.
    pub max_message_bytes: usize,
    /// Connections one principal may hold at once (each runs one
    /// statement at a time, so this bounds its concurrent queries);
    /// further logins get `53300 too many connections for role`. 0: no
    /// limit.
    pub max_connections_per_principal: usize,
}

impl Default for PgLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            startup_timeout: Duration::from_secs(DEFAULT_STARTUP_TIMEOUT_SECS),
            idle_timeout: Some(Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS)),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_connections_per_principal: DEFAULT_MAX_CONNECTIONS_PER_PRINCIPAL,
        }
    }
}

/// Who may log in: the password of a user name, `None` for an unknown
/// user.
pub trait Passwords: Send + Sync {
    /// The password `user` must prove.
    fn password(&self, user: &str) -> Option<String>;

    /// Whether a client must authenticate now (a source with no users yet
    /// may let clients in on a loopback listener).
    fn required(&self) -> bool {
        true
    }

    /// The table grants `user`'s statements run with (`None`: every
    /// grant). Asked on every statement, so a changed policy or a revoked
    /// key applies to sessions already open.
    fn access(&self, user: &str) -> Option<Arc<dyn TableAccess>> {
        let _ = user;
        None
    }

    /// The principal `user` logs in as (its connections are counted
    /// together); the user name itself by default.
    fn principal(&self, user: &str) -> String {
        user.to_string()
    }
}

/// Where statements that change something (DDL, and DML other than a
/// plain SELECT) are reported, with the user who ran them.
pub trait StatementAudit: Send + Sync + std::fmt::Debug {
    /// `user` ran `sql`, a statement of kind `kind` (`CREATE_TABLE`,
    /// `INSERT`, ...), and it succeeded.
    fn statement(&self, user: &str, kind: &str, sql: &str);
}

/// One user and its password.
#[derive(Clone)]
pub struct SingleUser {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl Passwords for SingleUser {
    fn password(&self, user: &str) -> Option<String> {
        (user == self.user).then(|| self.password.clone())
    }
}

/// Settings of the Postgres wire server.
#[derive(Clone, Default)]
pub struct PgConfig {
    /// The users clients must authenticate as (SCRAM-SHA-256); `None`
    /// trusts every client.
    pub passwords: Option<Arc<dyn Passwords>>,
    /// Connection limits and timeouts.
    pub limits: PgLimits,
    /// TLS for clients that ask for it (`sslmode=require` and up); `None`
    /// answers every `SSLRequest` `N`.
    pub tls: Option<Arc<pgwire::tokio::tokio_rustls::rustls::ServerConfig>>,
    /// Where statements that change something are reported.
    pub audit: Option<Arc<dyn StatementAudit>>,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("authenticated", &self.passwords.is_some())
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The protocol handlers shared by all connections.
struct Handlers {
    startup: Arc<auth::Startup>,
    queries: Arc<handler::Queries>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Serves the Postgres wire protocol on `listener` until `shutdown`
/// completes, each connection in its own task. At shutdown the listener
/// stops accepting and open connections are closed (their statements are
/// dropped).
pub async fn serve(
    listener: TcpListener,
    runner: Arc<dyn SqlRunner>,
    config: PgConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(Handlers {
        startup: Arc::new(auth::Startup::new(
            config.passwords.clone(),
            connections.clone(),
            config.limits.max_connections_per_principal,
        )),
        queries: Arc::new(handler::Queries::new(
            runner,
            config.audit.clone(),
            config.passwords.clone(),
        )),
        cancel: Arc::new(DefaultCancelHandler::new(connections.clone())),
    });
    let slots = Arc::new(Semaphore::new(config.limits.max_connections.max(1)));
    let limits = Arc::new(config.limits.clone());
    let tls = config.tls.clone().map(pgwire::tokio::TlsAcceptor::from);
    let mut tasks = JoinSet::new();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, auth = config.passwords.is_some(), "postgres wire server listening");
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning, and keep serving.
                        tracing::warn!(error = %err, "postgres accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let handlers = handlers.clone();
                        let limits = Arc::clone(&limits);
                        let connections = Arc::clone(&connections);
                        let tls = tls.clone();
                        tasks.spawn(async move {
                            let _permit = permit;
                            tracing::debug!(%peer, "postgres connection opened");
                            serve_connection(socket, handlers, &limits, &connections, tls.as_ref()).await;
                            tracing::debug!(%peer, "postgres connection closed");
                        });
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "postgres connection refused: too many connections");
                        tasks.spawn(refuse(socket));
                    }
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    tracing::info!("postgres wire server stopped");
    Ok(())
}

/// Runs one connection through the guard (limits, see `guard`), and drops
/// it (with any running statement) as soon as the client goes away.
async fn serve_connection(
    socket: TcpStream,
    handlers: Arc<Handlers>,
    limits: &PgLimits,
    connections: &ConnectionManager,
    tls: Option<&pgwire::tokio::TlsAcceptor>,
) {
    let _ = socket.set_nodelay(true);
    let (ours, theirs) = match tokio::net::UnixStream::pair() {
        Ok(pair) => pair,
        Err(err) => {
            tracing::warn!(error = %err, "postgres connection setup failed");
            return;
        }
    };
    let handler = pgwire::tokio::process_socket_unix(theirs, handlers);
    let pump = guard::pump(socket, ours, limits, connections, tls);
    tokio::pin!(handler, pump);
    tokio::select! {
        result = &mut handler => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "postgres connection ended with an error");
            }
            // What the handler wrote last (an authentication failure, say)
            // still goes to the client.
            let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
        }
        ended = &mut pump => {
            tracing::debug!(?ended, "postgres connection ended");
        }
    }
}

/// Tells a client over the connection limit so, then closes.
async fn refuse(mut socket: TcpStream) {
    let info = ErrorInfo::new(
        "FATAL".to_string(),
        "53300".to_string(),
        "sorry, too many clients already".to_string(),
    );
    let mut buf = bytes::BytesMut::new();
    if PgWireBackendMessage::ErrorResponse(info.into())
        .encode(&mut buf)
        .is_ok()
    {
        let _ = socket.write_all(&buf).await;
    }
    let _ = socket.shutdown().await;
}
