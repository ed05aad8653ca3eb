//! `lakehose admin`: the principals' access keys.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use std::io::Read;

use lakehose_auth::keys::{self, KeyPaths};
use lakehose_auth::policy::{self, Target};

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
    /// Policies of principals and groups, in IAM's JSON grammar: what each
    /// may do on which streams, databases, tables and workgroups. Read
    /// again by a running server within a second of a change.
    #[command(subcommand)]
    Policies(PoliciesCommand),
}

/// Whose policy.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct PolicyTarget {
    /// A principal's policy.
    #[arg(long)]
    principal: Option<String>,
    /// A group's policy.
    #[arg(long)]
    group: Option<String>,
}

impl PolicyTarget {
    fn target(&self) -> Target {
        match (&self.principal, &self.group) {
            (Some(p), _) => Target::Principal(p.clone()),
            (None, Some(g)) => Target::Group(g.clone()),
            (None, None) => unreachable!("clap requires one of --principal and --group"),
        }
    }
}

/// `lakehose admin policies` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PoliciesCommand {
    /// Set (replace) the policy of a principal or a group from a JSON
    /// policy document (`-` reads standard input). The document is checked
    /// first: Effect, Action/NotAction, Resource/NotResource; anything else
    /// (Condition, ...) is refused.
    Put {
        /// Whose policy.
        #[command(flatten)]
        target: PolicyTarget,
        /// The policy document file.
        #[arg(long)]
        file: PathBuf,
        /// Where the key file (and the policy file beside it) is.
        #[command(flatten)]
        keys: KeyFileArgs,
    },
    /// Print every policy as JSON lines.
    List {
        /// Where the key file (and the policy file beside it) is.
        #[command(flatten)]
        keys: KeyFileArgs,
    },
    /// Remove the policy of a principal or a group.
    Delete {
        /// Whose policy.
        #[command(flatten)]
        target: PolicyTarget,
        /// Where the key file (and the policy file beside it) is.
        #[command(flatten)]
        keys: KeyFileArgs,
    },
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
    /// Writes an event to the data folder's audit log, naming the local
    /// user who ran the command (a failure to write is reported, not
    /// fatal: the change is made).
    fn audit(&self, event: &str, mut fields: serde_json::Value) {
        fields["by"] = serde_json::json!({
            "user": std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
            "via": "lakehose admin",
        });
        let dir = lakehose_auth::audit::dir_in(&self.data_dir);
        if let Err(e) = lakehose_auth::audit::append(&dir, event, fields) {
            eprintln!(
                "warning: could not write the audit log in {}: {e}",
                dir.display()
            );
        }
    }

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
        AdminCommand::Policies(PoliciesCommand::Put { target, file, keys }) => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin().take(1 << 20), &mut text)?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("could not read {}", file.display()))?
            };
            let doc: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let paths = keys.paths();
            let target = target.target();
            policy::put_policy(&paths.policies, &target, &doc).with_context(|| {
                format!("the policy was not saved to {}", paths.policies.display())
            })?;
            keys.audit(
                "policy_put",
                serde_json::json!({"of": describe(&target), "policy": doc}),
            );
            eprintln!(
                "{} now has this policy ({})",
                describe(&target),
                paths.policies.display()
            );
            Ok(())
        }
        AdminCommand::Policies(PoliciesCommand::List { keys }) => {
            for (target, doc) in policy::list_policies(&keys.paths().policies)? {
                let (kind, name) = match target {
                    Target::Principal(n) => ("principal", n),
                    Target::Group(n) => ("group", n),
                };
                println!("{}", serde_json::json!({ kind: name, "policy": doc }));
            }
            Ok(())
        }
        AdminCommand::Policies(PoliciesCommand::Delete { target, keys }) => {
            let target = target.target();
            if policy::delete_policy(&keys.paths().policies, &target)? {
                keys.audit(
                    "policy_deleted",
                    serde_json::json!({"of": describe(&target)}),
                );
                eprintln!("removed the policy of {}", describe(&target));
                Ok(())
            } else {
                anyhow::bail!("{} has no policy", describe(&target))
            }
        }
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
            file.audit(
                "key_created",
                serde_json::json!({
                    "principal": key.principal,
                    "access_key_id": key.access_key_id,
                    "groups": groups,
                    "expires": key.expires.map(|e| e.to_rfc3339()),
                }),
            );
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
                file.audit(
                    "key_revoked",
                    serde_json::json!({"access_key_id": access_key_id}),
                );
                eprintln!("revoked {access_key_id}");
                Ok(())
            } else {
                anyhow::bail!("no key {access_key_id} in {}", paths.keys.display())
            }
        }
    }
}

fn describe(target: &Target) -> String {
    match target {
        Target::Principal(n) => format!("principal {n}"),
        Target::Group(n) => format!("group {n}"),
    }
}
