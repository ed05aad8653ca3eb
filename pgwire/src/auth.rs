//! Connection startup: trust or SCRAM-SHA-256 password authentication, and
//! the server parameters reported to the client.

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::sasl::SaslMechanisms;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthDriver, AuthOutcome, AuthSource, LoginInfo, Password, ServerParameterProvider,
    StartupHandler, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{ClientInfo, ConnectionManager, METADATA_APPLICATION_NAME, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use crate::Passwords;

/// The `server_version` reported to clients; libpq, JDBC and friends read
/// the leading number to pick protocol features.
pub(crate) const SERVER_VERSION: &str = concat!("16.6 (lakehose ", env!("CARGO_PKG_VERSION"), ")");
/// `server_version_num` matching [`SERVER_VERSION`].
pub(crate) const SERVER_VERSION_NUM: &str = "160006";
/// PBKDF2 rounds for SCRAM (Postgres' default).
const SCRAM_ITERATIONS: usize = 4096;

/// Fixed session parameters announced at startup (and answered by `SHOW`).
pub(crate) fn default_parameters() -> Vec<(&'static str, &'static str)> {
    vec![
        ("server_version", SERVER_VERSION),
        ("server_version_num", SERVER_VERSION_NUM),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("IntervalStyle", "postgres"),
        ("TimeZone", "UTC"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("is_superuser", "off"),
        ("in_hot_standby", "off"),
        ("default_transaction_read_only", "off"),
    ]
}

/// Reports [`default_parameters`] plus the client's `application_name` and
/// user.
#[derive(Debug, Default)]
pub(crate) struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut params: HashMap<String, String> = default_parameters()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        params.insert(
            "application_name".to_string(),
            client
                .metadata()
                .get(METADATA_APPLICATION_NAME)
                .cloned()
                .unwrap_or_default(),
        );
        if let Some(user) = client.metadata().get(METADATA_USER) {
            params.insert("session_authorization".to_string(), user.clone());
        }
        Some(params)
    }
}

/// The SCRAM secret of whoever logs in: derived from the user's password
/// with a fresh salt; an unknown user gets one derived from a random
/// password (the same work), so it fails exactly like a wrong password.
struct ScramSecrets {
    passwords: Arc<dyn Passwords>,
}

impl Debug for ScramSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSecrets").finish_non_exhaustive()
    }
}

#[async_trait]
impl AuthSource for ScramSecrets {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let known = login.user().and_then(|user| self.passwords.password(user));
        let password = known.unwrap_or_else(|| {
            random_bytes(24)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        let salt = random_bytes(16);
        // PBKDF2 is CPU work: off the connection's task.
        let salted = tokio::task::spawn_blocking(move || {
            let salted = gen_salted_password(&password, &salt, SCRAM_ITERATIONS);
            (salt, salted)
        })
        .await;
        match salted {
            Ok((salt, salted)) => Ok(Password::new(Some(salt), salted)),
            Err(_) => Err(PgWireError::InvalidPassword(
                login.user().unwrap_or_default().to_string(),
            )),
        }
    }
}

/// Random bytes from the system generator (via v4 UUIDs).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

/// Runs the startup phase of every connection.
pub(crate) struct Startup {
    driver: AuthDriver<Arc<Parameters>>,
    scram: Option<(Arc<dyn Passwords>, SaslMechanisms)>,
    /// Open connections per principal, and how many one may hold (0: no
    /// limit).
    principals: Arc<Mutex<HashMap<String, usize>>>,
    per_principal: usize,
}

/// One principal's hold on a connection: counted while the connection
/// lives (kept in its session extensions, dropped with it).
struct PrincipalSlot {
    principals: Arc<Mutex<HashMap<String, usize>>>,
    principal: String,
}

impl Drop for PrincipalSlot {
    fn drop(&mut self) {
        let mut counts = self.principals.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.principal);
            }
        }
    }
}

impl Startup {
    /// Trust when `passwords` is `None`, else SCRAM-SHA-256 for the users
    /// it knows.
    pub(crate) fn new(
        passwords: Option<Arc<dyn Passwords>>,
        connections: Arc<ConnectionManager>,
        per_principal: usize,
    ) -> Self {
        let scram = passwords.map(|passwords| {
            let mut auth = ScramAuth::new(Arc::new(ScramSecrets {
                passwords: Arc::clone(&passwords),
            }));
            auth.set_iterations(SCRAM_ITERATIONS);
            (passwords, SaslMechanisms::new(vec![Arc::new(auth)]))
        });
        Self {
            driver: AuthDriver::new(Arc::new(Parameters)).with_connection_manager(connections),
            scram,
            principals: Arc::default(),
            per_principal,
        }
    }

    /// Counts an authenticated connection against its principal's cap;
    /// past it the login fails as Postgres fails a role over its
    /// `CONNECTION LIMIT`.
    fn admit<C: ClientInfo>(&self, client: &C) -> PgWireResult<()> {
        if self.per_principal == 0 {
            return Ok(());
        }
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        let principal = match &self.scram {
            Some((passwords, _)) => passwords.principal(&user),
            None => user.clone(),
        };
        {
            let mut counts = self.principals.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(principal.clone()).or_default();
            if *n >= self.per_principal {
                if *n == 0 {
                    counts.remove(&principal);
                }
                tracing::warn!(principal = %principal, peer = %client.socket_addr(), "postgres login refused: too many connections for the principal");
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".to_string(),
                    "53300".to_string(),
                    format!(
                        "too many connections for role \"{user}\": its principal holds {} (--pg-max-connections-per-principal)",
                        self.per_principal
                    ),
                ))));
            }
            *n += 1;
        }
        let slots = Arc::clone(&self.principals);
        client
            .session_extensions()
            .get_or_insert_with(move || PrincipalSlot {
                principals: slots,
                principal,
            });
        Ok(())
    }

    /// Turns a failed handshake into Postgres' own message (the user name
    /// comes from the startup packet; SCRAM clients leave theirs empty).
    fn auth_failure<C: ClientInfo>(client: &C, error: PgWireError) -> PgWireError {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default();
        match error {
            PgWireError::InvalidPassword(_)
            | PgWireError::InvalidScramMessage(_)
            | PgWireError::UnsupportedSASLAuthMethod(_)
            | PgWireError::FailedToCoercePasswordMessage
            | PgWireError::InvalidSASLState => {
                tracing::warn!(
                    user = %user,
                    peer = %client.socket_addr(),
                    "postgres password authentication failed"
                );
                PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".to_string(),
                    "28P01".to_string(),
                    format!("password authentication failed for user \"{user}\""),
                )))
            }
            other => other,
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if client
                    .metadata()
                    .get(METADATA_USER)
                    .is_none_or(String::is_empty)
                {
                    return Err(PgWireError::UserNameRequired);
                }
                match &self.scram {
                    Some((passwords, mechanisms)) if passwords.required() => {
                        self.driver
                            .begin_authentication(client, mechanisms.create())
                            .await
                    }
                    _ => Ok(AuthOutcome::Authenticated {
                        identity: None,
                        final_message: None,
                    }),
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.driver.advance_authentication(client, message).await
            }
            _ => return Ok(()),
        };
        match outcome {
            Ok(AuthOutcome::InProgress) => Ok(()),
            Ok(AuthOutcome::Authenticated { final_message, .. }) => {
                self.admit(client)?;
                self.driver
                    .complete_authentication(client, final_message)
                    .await
            }
            Err(error) => Err(Self::auth_failure(client, error)),
        }
    }
}
