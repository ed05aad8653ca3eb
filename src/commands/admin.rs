//! `lakehose admin`: the principals' access keys.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lakehose_auth::keys::{self, KeyPaths};

/// Flags of `lakehose admin`.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// What to manage.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `lakehose admin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Access keys of principals: create, list, revoke. A running server
    /// reads the key file again within a second of a change.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Where the key file is.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyFileArgs {
    /// The warehouse folder whose key file is meant.
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    pub data_dir: PathBuf,

    /// The key file [default: <data-dir>/_lakehose/principals.json]; its
    /// master key is `master.key` beside it (or LAKEHOSE_MASTER_KEY).
    #[arg(long, env = "LAKEHOSE_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
}

impl KeyFileArgs {
    fn paths(&self) -> KeyPaths {
        match &self.keys_file {
            Some(file) => KeyPaths::new(file),
            None => KeyPaths::in_data_dir(&self.data_dir),
        }
    }
}

/// `lakehose admin keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make an access key for a principal and print it, secret included,
    /// this once (the key file keeps the secret sealed).
    Create {
        /// The principal the key belongs to (letters, digits, _.@+=,-).
        #[arg(long)]
        principal: String,
        /// A group of the principal; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Make a temporary key, with a session token, that stops working
        /// after this long (e.g. `12h`, `30m`).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<Duration>,
        /// Print the key as JSON (for scripts) rather than as shell
        /// variables.
        #[arg(long)]
        json: bool,
        /// Where the key file is.
        #[command(flatten)]
        file: KeyFileArgs,
    },
    /// List the keys: id, principal, groups, created, expiry (never a
    /// secret).
    List {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
        /// Where the key file is.
        #[command(flatten)]
        file: KeyFileArgs,
    },
    /// Remove a key: requests signed with it fail from then on.
    Revoke {
        /// The access key id.
        access_key_id: String,
        /// Where the key file is.
        #[command(flatten)]
        file: KeyFileArgs,
    },
}

/// Runs `lakehose admin`.
pub fn run(config: Config) -> anyhow::Result<()> {
    match config.command {
        AdminCommand::Keys(KeysCommand::Create {
            principal,
            groups,
            expires_in,
            json,
            file,
        }) => {
            let paths = file.paths();
            let key = keys::create_key(&paths, &principal, &groups, expires_in)
                .with_context(|| format!("could not add a key to {}", paths.keys.display()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "AccessKeyId": key.access_key_id,
                        "SecretAccessKey": key.secret_access_key,
                        "SessionToken": key.session_token,
                        "Principal": key.principal,
                        "Expiration": key.expires.map(|e| e.to_rfc3339()),
                    })
                );
            } else {
                println!("AWS_ACCESS_KEY_ID={}", key.access_key_id);
                println!("AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
                if let Some(token) = &key.session_token {
                    println!("AWS_SESSION_TOKEN={token}");
                }
                eprintln!(
                    "key {} of principal {} added to {}{}; the secret is shown this once",
                    key.access_key_id,
                    key.principal,
                    paths.keys.display(),
                    key.expires
                        .map(|e| format!(", valid until {}", e.to_rfc3339()))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        AdminCommand::Keys(KeysCommand::List { json, file }) => {
            let paths = file.paths();
            let listed = keys::list_keys(&paths)?;
            if json {
                for k in &listed {
                    println!("{}", serde_json::to_string(k)?);
                }
                return Ok(());
            }
            if listed.is_empty() {
                eprintln!("no keys in {}", paths.keys.display());
                return Ok(());
            }
            println!(
                "{:<20}  {:<24}  {:<24}  {:<25}  expires",
                "access key id", "principal", "groups", "created"
            );
            for k in listed {
                println!(
                    "{:<20}  {:<24}  {:<24}  {:<25}  {}",
                    k.access_key_id,
                    k.principal,
                    k.groups.join(","),
                    k.created,
                    k.expires.unwrap_or_else(|| "-".into())
                );
            }
            Ok(())
        }
        AdminCommand::Keys(KeysCommand::Revoke {
            access_key_id,
            file,
        }) => {
            let paths = file.paths();
            if keys::revoke_key(&paths, &access_key_id)? {
                eprintln!("revoked {access_key_id}");
                Ok(())
            } else {
                anyhow::bail!("no key {access_key_id} in {}", paths.keys.display())
            }
        }
    }
}
