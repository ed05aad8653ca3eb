//! # lakehose-auth
//!
//! Who is calling: principals, their access keys, and the verification of
//! AWS Signature Version 4 on every request to the AWS APIs and NDJSON
//! ingest.
//!
//! ```text
//! request ──Authorization: AWS4-HMAC-SHA256 …──▶ sigv4::verify ──▶ Caller
//!                                                     │ looks up the key
//!                                                     ▼
//!                         KeyStore (principals.json, secrets sealed with master.key)
//! ```
//!
//! - [`keys`]: the key file (`lakehose admin keys create|list|revoke`),
//!   read again when it changes; secrets sealed with ChaCha20-Poly1305
//!   under a master key, temporary keys' session tokens kept as hashes.
//! - [`audit`]: the audit log (JSON lines, rotated daily).
//! - [`actions`]: the IAM action and resource ARNs of each API call.
//! - [`jwt`]: bearer tokens of an identity provider (RS256/ES256 against
//!   a JWKS file) for NDJSON ingest.
//! - [`policy`]: identity policies in IAM's JSON grammar, per principal
//!   and per group; default deny, explicit deny wins.
//! - [`sigv4`]: the signature check, computing the expected signature with
//!   `aws-sigv4` from exactly the headers the client signed, compared in
//!   constant time, within AWS's 15-minute clock-skew window.
//! - [`tls`]: the certificate and key of the HTTP and Postgres ports, read
//!   again when they change.
//! - [`AuthError`]: each failure as AWS reports it (`__type`, status).

pub mod actions;
pub mod audit;
mod error;
mod files;
pub mod jwt;
pub mod keys;
pub mod policy;
pub mod sigv4;
pub mod tls;
mod watch;

pub use error::{AuthError, KeyError};
pub use keys::{Caller, KeyStore};
