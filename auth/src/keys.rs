//! Principals and their access keys.
//!
//! The key file (`<data-dir>/_lakehose/principals.json` by default) holds
//! one entry per access key: the principal it belongs to, the principal's
//! groups, when it was made and, for a temporary key, when it expires. A
//! secret is never stored in the clear: it is sealed with ChaCha20-Poly1305
//! under a 256-bit master key (`master.key` beside the key file, created
//! with mode 0600, or `LAKEHOSE_MASTER_KEY`, base64), the access key id
//! bound in as associated data. A temporary key's session token is kept as
//! its SHA-256 only. Both files are written whole to a temporary file and
//! renamed into place; a server reads the key file again when it changes.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::error::KeyError;
use crate::files::{read_json, write_private};
use crate::watch::Watched;

/// The environment variable a master key can be given in (base64 of 32
/// bytes) instead of the `master.key` file.
pub const MASTER_KEY_ENV: &str = "LAKEHOSE_MASTER_KEY";

/// The principal `LAKEHOSE_ACCESS_KEY_ID`/`LAKEHOSE_SECRET_ACCESS_KEY` name.
pub const ENV_PRINCIPAL: &str = "admin";

/// Who a verified request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal.
    pub principal: String,
    /// The principal's groups.
    pub groups: Vec<String>,
    /// The access key the request was signed with.
    pub access_key_id: String,
    /// The region the request was signed for (its ARNs' region).
    pub region: String,
}

/// A key as the verifier needs it.
#[derive(Clone)]
pub struct Key {
    /// The access key id.
    pub access_key_id: String,
    /// The principal.
    pub principal: String,
    /// The principal's groups.
    pub groups: Vec<String>,
    /// The secret access key.
    secret: String,
    /// SHA-256 of the session token a temporary key must be used with.
    session_token_sha256: Option<[u8; 32]>,
    /// When a temporary key stops working.
    pub expires: Option<DateTime<Utc>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("access_key_id", &self.access_key_id)
            .field("principal", &self.principal)
            .field("groups", &self.groups)
            .field("temporary", &self.session_token_sha256.is_some())
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The secret access key.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether `secret` is this key's secret (compared in constant time,
    /// through their SHA-256 so the lengths do not show either).
    pub fn secret_matches(&self, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        let got: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let want: [u8; 32] = Sha256::digest(self.secret.as_bytes()).into();
        bool::from(got.ct_eq(&want))
    }

    /// Whether `token` is this key's session token (constant time); a
    /// permanent key takes no token.
    pub fn token_matches(&self, token: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        match (&self.session_token_sha256, token) {
            (None, None) => true,
            (Some(expected), Some(token)) => {
                let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                bool::from(got.ct_eq(expected))
            }
            _ => false,
        }
    }

    /// The caller a request signed with this key comes from.
    pub fn caller(&self) -> Caller {
        Caller {
            principal: self.principal.clone(),
            groups: self.groups.clone(),
            access_key_id: self.access_key_id.clone(),
            region: String::new(),
        }
    }
}

/// A key as listed (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The access key id.
    pub access_key_id: String,
    /// The principal.
    pub principal: String,
    /// The principal's groups.
    pub groups: Vec<String>,
    /// When the key was made (RFC 3339).
    pub created: String,
    /// When a temporary key expires (RFC 3339).
    pub expires: Option<String>,
}

/// A key just made: the only time its secret (and session token) is seen.
#[derive(Clone)]
pub struct NewKey {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of a temporary key.
    pub session_token: Option<String>,
    /// The principal.
    pub principal: String,
    /// When a temporary key expires.
    pub expires: Option<DateTime<Utc>>,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("access_key_id", &self.access_key_id)
            .field("principal", &self.principal)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    keys: Vec<StoredKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    access_key_id: String,
    principal: String,
    #[serde(default)]
    groups: Vec<String>,
    created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    /// base64(nonce ‖ ChaCha20-Poly1305(secret)).
    sealed_secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_token_sha256: Option<String>,
}

/// Where the key file and its master key are.
#[derive(Debug, Clone)]
pub struct KeyPaths {
    /// The key file.
    pub keys: PathBuf,
    /// The master key file (used when `LAKEHOSE_MASTER_KEY` is unset).
    pub master: PathBuf,
    /// The policy file (`policies.json` beside the key file).
    pub policies: PathBuf,
}

impl KeyPaths {
    /// The key file at `keys`, its master key beside it.
    pub fn new(keys: impl Into<PathBuf>) -> Self {
        let keys = keys.into();
        let master = keys.with_file_name("master.key");
        let policies = keys.with_file_name("policies.json");
        Self {
            keys,
            master,
            policies,
        }
    }

    /// The default key file of a data folder.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join("_lakehose").join("principals.json"))
    }
}

/// The 256-bit key secrets are sealed with.
struct MasterKey(LessSafeKey);

impl MasterKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| KeyError::MasterKey("the master key must be 32 bytes".into()))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// The master key of `paths`: `LAKEHOSE_MASTER_KEY`, else the file,
    /// made (mode 0600) when `create` and missing.
    fn load(paths: &KeyPaths, create: bool) -> Result<Self, KeyError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            let bytes = B64.decode(text.trim()).map_err(|_| {
                KeyError::MasterKey(format!("{MASTER_KEY_ENV} is not base64 of 32 bytes"))
            })?;
            return Self::from_bytes(&bytes);
        }
        match std::fs::read(&paths.master) {
            Ok(bytes) => Self::from_bytes(&bytes).map_err(|_| {
                KeyError::MasterKey(format!(
                    "{} does not hold a 32-byte master key",
                    paths.master.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut bytes = [0u8; 32];
                fill_random(&mut bytes)?;
                write_private(&paths.master, &bytes)?;
                Self::from_bytes(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(KeyError::MasterKey(format!(
                    "the master key {} is missing (and {MASTER_KEY_ENV} is unset): the key file's secrets cannot be read",
                    paths.master.display()
                )))
            }
            Err(source) => Err(KeyError::Io {
                path: paths.master.clone(),
                source,
            }),
        }
    }

    fn seal(&self, access_key_id: &str, secret: &str) -> Result<String, KeyError> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce)?;
        let mut data = secret.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(access_key_id.as_bytes()),
                &mut data,
            )
            .map_err(|_| KeyError::MasterKey("sealing a secret failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(B64.encode(out))
    }

    fn open(&self, access_key_id: &str, sealed: &str) -> Result<String, KeyError> {
        let wrong = || {
            KeyError::MasterKey(format!(
                "the secret of {access_key_id} cannot be opened: the master key is not the one it was sealed with, or the entry was changed"
            ))
        };
        let bytes = B64.decode(sealed).map_err(|_| wrong())?;
        if bytes.len() < 12 + CHACHA20_POLY1305.tag_len() {
            return Err(wrong());
        }
        let (nonce, rest) = bytes.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut data = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(access_key_id.as_bytes()), &mut data)
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }
}

fn fill_random(buf: &mut [u8]) -> Result<(), KeyError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| KeyError::MasterKey("the system random source failed".into()))
}

fn read_file(path: &Path) -> Result<Option<KeyFile>, KeyError> {
    read_json(path, |f: &KeyFile| f.version)
}

fn write_file(path: &Path, file: &KeyFile) -> Result<(), KeyError> {
    let bytes = serde_json::to_vec_pretty(file).map_err(|e| KeyError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_private(path, &bytes)
}

/// Checks a principal or group name: 1 to 64 of `A-Z a-z 0-9 _ . @ + = , -`
/// (IAM's user-name characters).
pub fn check_name(what: &str, name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@+=,-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KeyError::Invalid(format!(
            "{what} {name:?} must be 1 to 64 letters, digits or _.@+=,-"
        )))
    }
}

/// Random text of `len` characters from `alphabet`.
fn random_text(alphabet: &[u8], len: usize) -> Result<String, KeyError> {
    let mut bytes = vec![0u8; len];
    fill_random(&mut bytes)?;
    // 256 is a multiple of neither alphabet's size; the bias of the modulo
    // (under 1% per character for 32 and 62 letters) does not matter for
    // 100+ random bits.
    Ok(bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect())
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Makes a key for `principal` in `groups`, temporary (with a session
/// token) when `expires_in` is given, and adds it to the key file.
pub fn create_key(
    paths: &KeyPaths,
    principal: &str,
    groups: &[String],
    expires_in: Option<Duration>,
) -> Result<NewKey, KeyError> {
    check_name("principal", principal)?;
    for g in groups {
        check_name("group", g)?;
    }
    let master = MasterKey::load(paths, true)?;
    let mut file = read_file(&paths.keys)?.unwrap_or(KeyFile {
        version: 1,
        keys: Vec::new(),
    });
    let prefix = if expires_in.is_some() { "LSIA" } else { "LKIA" };
    let access_key_id = format!("{prefix}{}", random_text(ID_ALPHABET, 16)?);
    let secret = random_text(SECRET_ALPHABET, 40)?;
    let session_token = match expires_in {
        Some(_) => Some(random_text(SECRET_ALPHABET, 64)?),
        None => None,
    };
    let now = Utc::now();
    let expires = match expires_in {
        Some(d) => Some(
            now + chrono::Duration::from_std(d)
                .map_err(|_| KeyError::Invalid("the expiry is too far away".into()))?,
        ),
        None => None,
    };
    file.keys.push(StoredKey {
        access_key_id: access_key_id.clone(),
        principal: principal.to_string(),
        groups: groups.to_vec(),
        created: now.to_rfc3339(),
        expires: expires.map(|e| e.to_rfc3339()),
        sealed_secret: master.seal(&access_key_id, &secret)?,
        session_token_sha256: session_token
            .as_ref()
            .map(|t| hex(&Sha256::digest(t.as_bytes()))),
    });
    write_file(&paths.keys, &file)?;
    Ok(NewKey {
        access_key_id,
        secret_access_key: secret,
        session_token,
        principal: principal.to_string(),
        expires,
    })
}

/// The keys of the key file (none when it does not exist).
pub fn list_keys(paths: &KeyPaths) -> Result<Vec<KeyInfo>, KeyError> {
    Ok(read_file(&paths.keys)?
        .unwrap_or_default()
        .keys
        .into_iter()
        .map(|k| KeyInfo {
            access_key_id: k.access_key_id,
            principal: k.principal,
            groups: k.groups,
            created: k.created,
            expires: k.expires,
        })
        .collect())
}

/// Removes a key from the key file; `false` when there was no such key.
pub fn revoke_key(paths: &KeyPaths, access_key_id: &str) -> Result<bool, KeyError> {
    let Some(mut file) = read_file(&paths.keys)? else {
        return Ok(false);
    };
    let before = file.keys.len();
    file.keys.retain(|k| k.access_key_id != access_key_id);
    if file.keys.len() == before {
        return Ok(false);
    }
    write_file(&paths.keys, &file)?;
    Ok(true)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// The keys a server verifies requests against: the key file's, read
/// again when it changes, and the single admin key of
/// `LAKEHOSE_ACCESS_KEY_ID`/`LAKEHOSE_SECRET_ACCESS_KEY`.
pub struct KeyStore {
    env_key: Option<Key>,
    file: Watched<HashMap<String, Key>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

fn load(paths: &KeyPaths) -> Result<HashMap<String, Key>, KeyError> {
    let mut keys = HashMap::new();
    let Some(file) = read_file(&paths.keys)? else {
        return Ok(keys);
    };
    if file.keys.is_empty() {
        return Ok(keys);
    }
    let master = MasterKey::load(paths, false)?;
    for k in file.keys {
        let expires = match &k.expires {
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|e| KeyError::Corrupt {
                        path: paths.keys.clone(),
                        reason: format!("{}: expires {text:?}: {e}", k.access_key_id),
                    })?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        let session_token_sha256 = match &k.session_token_sha256 {
            Some(text) => Some(unhex32(text).ok_or_else(|| KeyError::Corrupt {
                path: paths.keys.clone(),
                reason: format!(
                    "{}: session_token_sha256 is not 64 hex digits",
                    k.access_key_id
                ),
            })?),
            None => None,
        };
        let secret = master.open(&k.access_key_id, &k.sealed_secret)?;
        keys.insert(
            k.access_key_id.clone(),
            Key {
                access_key_id: k.access_key_id,
                principal: k.principal,
                groups: k.groups,
                secret,
                session_token_sha256,
                expires,
            },
        );
    }
    Ok(keys)
}

impl KeyStore {
    /// The keys of `paths` and, when given, the admin key
    /// `(access key id, secret)`. A key file that cannot be read is an
    /// error here; later, a change that cannot be read keeps the keys
    /// read before (and is logged).
    pub fn open(paths: KeyPaths, env_admin: Option<(String, String)>) -> Result<Self, KeyError> {
        let env_key = match env_admin {
            Some((id, secret)) => {
                if id.is_empty() || secret.is_empty() {
                    return Err(KeyError::Invalid(
                        "LAKEHOSE_ACCESS_KEY_ID and LAKEHOSE_SECRET_ACCESS_KEY must both be non-empty"
                            .into(),
                    ));
                }
                Some(Key {
                    access_key_id: id,
                    principal: ENV_PRINCIPAL.into(),
                    groups: Vec::new(),
                    secret,
                    session_token_sha256: None,
                    expires: None,
                })
            }
            None => None,
        };
        let file = Watched::open(paths.keys.clone(), move |_| load(&paths))?;
        Ok(Self { env_key, file })
    }

    /// Whether any key is configured: without one, requests are not
    /// authenticated (allowed on loopback only).
    pub fn is_enabled(&self) -> bool {
        self.env_key.is_some() || !self.file.current().is_empty()
    }

    /// The key with this id.
    pub fn lookup(&self, access_key_id: &str) -> Option<Key> {
        if let Some(k) = &self.env_key
            && k.access_key_id == access_key_id
        {
            return Some(k.clone());
        }
        self.file.current().get(access_key_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn keys_are_sealed_listed_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("principals.json"));
        let made = create_key(&paths, "loader", &["writers".into()], None).unwrap();
        assert!(made.access_key_id.starts_with("LKIA"));
        assert_eq!(made.access_key_id.len(), 20);
        assert_eq!(made.secret_access_key.len(), 40);
        let text = std::fs::read_to_string(&paths.keys).unwrap();
        assert!(
            !text.contains(&made.secret_access_key),
            "secret in the clear"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&paths.keys).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file readable by others");
            let mode = std::fs::metadata(&paths.master)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "master key readable by others");
        }
        let store = KeyStore::open(paths.clone(), None).unwrap();
        assert!(store.is_enabled());
        let key = store.lookup(&made.access_key_id).unwrap();
        assert_eq!(key.secret(), made.secret_access_key);
        assert_eq!(key.caller().groups, vec!["writers".to_string()]);
        assert!(key.token_matches(None));
        assert!(!format!("{key:?}").contains(&made.secret_access_key));
        let listed = list_keys(&paths).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].principal, "loader");
        assert!(revoke_key(&paths, &made.access_key_id).unwrap());
        assert!(!revoke_key(&paths, &made.access_key_id).unwrap());
        assert!(
            KeyStore::open(paths, None)
                .unwrap()
                .lookup(&made.access_key_id)
                .is_none()
        );
    }

    #[test]
    fn temporary_keys_need_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("principals.json"));
        let made = create_key(&paths, "ci", &[], Some(Duration::from_secs(3600))).unwrap();
        assert!(made.access_key_id.starts_with("LSIA"));
        let token = made.session_token.clone().unwrap();
        let text = std::fs::read_to_string(&paths.keys).unwrap();
        assert!(!text.contains(&token), "session token in the clear");
        let key = KeyStore::open(paths, None)
            .unwrap()
            .lookup(&made.access_key_id)
            .unwrap();
        assert!(key.token_matches(Some(&token)));
        assert!(!key.token_matches(Some("x")));
        assert!(!key.token_matches(None));
        assert!(key.expires.unwrap() > Utc::now());
    }

    #[test]
    fn a_wrong_master_key_or_a_changed_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("principals.json"));
        let made = create_key(&paths, "a", &[], None).unwrap();
        let text = std::fs::read_to_string(&paths.keys).unwrap();
        // An entry's sealed secret moved to another key id does not open.
        let tampered = text.replace(&made.access_key_id, "LKIAAAAAAAAAAAAAAAAA");
        std::fs::write(&paths.keys, tampered).unwrap();
        let err = KeyStore::open(paths.clone(), None).unwrap_err();
        assert!(matches!(err, KeyError::MasterKey(_)), "{err}");
        std::fs::write(&paths.keys, &text).unwrap();
        std::fs::write(&paths.master, [7u8; 32]).unwrap();
        assert!(KeyStore::open(paths.clone(), None).is_err());
        std::fs::remove_file(&paths.master).unwrap();
        let err = KeyStore::open(paths, None).unwrap_err();
        assert!(err.to_string().contains("master key"), "{err}");
    }

    #[test]
    fn names_and_files_are_checked() {
        assert!(check_name("principal", "etl-runner@team").is_ok());
        for bad in ["", "a b", "x/y", "ü", &"a".repeat(65)] {
            assert!(check_name("principal", bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("principals.json"));
        std::fs::write(&paths.keys, b"{\"version\": 1, \"keys\": [").unwrap();
        assert!(matches!(
            KeyStore::open(paths.clone(), None).unwrap_err(),
            KeyError::Corrupt { .. }
        ));
        std::fs::write(&paths.keys, b"{\"version\": 9, \"keys\": []}").unwrap();
        assert!(KeyStore::open(paths, None).is_err());
        assert!(
            KeyStore::open(
                KeyPaths::new(dir.path().join("none.json")),
                Some((String::new(), "x".into()))
            )
            .is_err()
        );
    }

    #[test]
    fn a_changed_key_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("principals.json"));
        let store = KeyStore::open(paths.clone(), None).unwrap();
        assert!(!store.is_enabled());
        let made = create_key(&paths, "late", &[], None).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.lookup(&made.access_key_id).is_none() {
            assert!(Instant::now() < deadline, "the new key was never seen");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(store.is_enabled());
    }
}
