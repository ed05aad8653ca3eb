//! Why a request is not authenticated, in AWS's error codes, and why a
//! key or policy file cannot be used.

use std::path::PathBuf;

/// A request that is not authenticated, with the error AWS answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header (nor any other form of signature).
    #[error("Request is missing Authentication Token")]
    Missing,
    /// An `Authorization` header that is not a complete SigV4 header, or a
    /// request without the headers SigV4 needs.
    #[error("{0}")]
    Incomplete(String),
    /// The access key is not known (or was revoked).
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// A temporary key past its expiry.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// The signature does not match, or the request is too old or too far
    /// in the future.
    #[error("{0}")]
    InvalidSignature(String),
}

impl AuthError {
    /// AWS's error code (`__type`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::UnknownKey => "UnrecognizedClientException",
            Self::ExpiredToken => "ExpiredTokenException",
            Self::InvalidSignature(_) => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS answers with: 400 for a malformed signature,
    /// 403 for a missing, unknown, expired or wrong one (the `aws.auth`
    /// Smithy model gives `InvalidSignatureException` 403).
    pub fn status(&self) -> u16 {
        match self {
            Self::Incomplete(_) => 400,
            Self::Missing | Self::UnknownKey | Self::ExpiredToken | Self::InvalidSignature(_) => {
                403
            }
        }
    }
}

/// Why the key file or the master key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file is not what lakehose writes.
    #[error("the key file {} is not valid: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The master key is missing, malformed, or not the one the secrets
    /// were sealed with.
    #[error("{0}")]
    MasterKey(String),
    /// A name, a key id or an expiry given is not valid.
    #[error("{0}")]
    Invalid(String),
}
