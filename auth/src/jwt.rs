//! Bearer tokens (JWT) from an identity provider such as Cognito, for
//! NDJSON ingest.
//!
//! The provider's public keys come from a JWKS file (read again when it
//! changes, so keys can rotate). A token is accepted when it is signed
//! with RS256 or ES256 by a key of the set (by `kid`), its `iss` and `aud`
//! are the configured ones, and its `exp` (required) and `nbf` hold, with
//! a minute of leeway. `alg: none`, HMAC algorithms (which would let a
//! public key act as a shared secret) and symmetric keys in the set are
//! refused. The caller is the token's `sub`, in the groups of its
//! `cognito:groups` (or `groups`) claim.

use std::path::PathBuf;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::error::KeyError;
use crate::files::read_limited;
use crate::keys::Caller;
use crate::watch::Watched;

/// Longest token looked at.
const MAX_TOKEN_BYTES: usize = 16 << 10;
/// Most groups taken from a token.
const MAX_GROUPS: usize = 64;

/// Where the keys are and what tokens must say.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The JWKS file.
    pub jwks: PathBuf,
    /// The required `iss`.
    pub issuer: String,
    /// The required `aud`.
    pub audience: String,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or too long.
    #[error("the bearer token is not a valid JWT")]
    Malformed,
    /// An algorithm other than RS256 and ES256 (`none` and HMAC included).
    #[error("the token's algorithm is not accepted (RS256 and ES256 are)")]
    Algorithm,
    /// No key of the set has the token's `kid` and algorithm.
    #[error("the token is signed with a key that is not in the key set")]
    UnknownKey,
    /// The signature, issuer, audience or a required claim is wrong.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
}

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

fn load_jwks(path: &std::path::Path) -> Result<Vec<Key>, KeyError> {
    let corrupt = |reason: String| KeyError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_limited(path)?.ok_or_else(|| corrupt("the file does not exist".into()))?;
    let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => {
                tracing::warn!(kid = ?kid, file = %path.display(), "a key of the JWKS is neither RSA nor EC P-256 and is ignored (symmetric keys are never accepted)");
                continue;
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| corrupt(format!("key {}: {e}", kid.as_deref().unwrap_or("?"))))?;
        keys.push(Key {
            kid,
            algorithm,
            key,
        });
    }
    if keys.is_empty() {
        return Err(corrupt("no RSA or EC P-256 key in the set".into()));
    }
    Ok(keys)
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, rename = "cognito:groups")]
    cognito_groups: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// Verifies bearer tokens against the key set.
pub struct JwtVerifier {
    config: JwtConfig,
    keys: Watched<Vec<Key>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// Reads the key set (an error when it cannot be read or holds no
    /// usable key).
    pub fn open(config: JwtConfig) -> Result<Self, KeyError> {
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err(KeyError::Invalid(
                "bearer tokens need an issuer and an audience to check".into(),
            ));
        }
        let keys = Watched::open(config.jwks.clone(), load_jwks)?;
        Ok(Self { config, keys })
    }

    /// The caller a token names.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let header = decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
            _ => TokenError::Malformed,
        })?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(TokenError::Algorithm);
        }
        let keys = self.keys.current();
        let key = keys
            .iter()
            .find(|k| k.algorithm == header.alg && (header.kid.is_none() || k.kid == header.kid))
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        let data = decode::<Claims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidAlgorithm | K::InvalidAlgorithmName => TokenError::Algorithm,
                K::InvalidIssuer => TokenError::Invalid("wrong issuer".into()),
                K::InvalidAudience => TokenError::Invalid("wrong audience".into()),
                K::InvalidSignature => TokenError::Invalid("bad signature".into()),
                K::MissingRequiredClaim(c) => TokenError::Invalid(format!("no {c} claim")),
                _ => TokenError::Malformed,
            }
        })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > 256 {
            return Err(TokenError::Invalid(
                "the sub claim is empty or too long".into(),
            ));
        }
        let mut groups = claims.cognito_groups;
        groups.extend(claims.groups);
        groups.truncate(MAX_GROUPS);
        Ok(Caller {
            principal: claims.sub,
            groups,
            access_key_id: format!("jwt:{}", key.kid.as_deref().unwrap_or("-")),
            region: String::new(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    fn b64u(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    /// An ES256 key: its signing key and its JWK.
    pub(crate) fn es256(kid: &str) -> (EncodingKey, serde_json::Value) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64u(&point[1..33]), "y": b64u(&point[33..65])});
        (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
    }

    /// The test RSA key: its signing key and its JWK.
    pub(crate) fn rs256(kid: &str) -> (EncodingKey, serde_json::Value) {
        let der = include_bytes!("../testdata/rsa-test-key.der");
        let n = include_str!("../testdata/rsa-test-key.n");
        let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n.trim(), "e": "AQAB"});
        (EncodingKey::from_rsa_der(der), jwk)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut c = json!({"sub": "device-7", "iss": "https://idp.example", "aud": "lakehose",
            "exp": now() + 600, "cognito:groups": ["shippers"]});
        if let (Some(c), serde_json::Value::Object(extra)) = (c.as_object_mut(), extra) {
            c.extend(extra);
        }
        c
    }

    fn token(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &serde_json::Value) -> String {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        encode(&h, claims, key).unwrap()
    }

    fn verifier(dir: &std::path::Path, keys: &[&serde_json::Value]) -> JwtVerifier {
        let path = dir.join("jwks.json");
        std::fs::write(&path, json!({ "keys": keys }).to_string()).unwrap();
        JwtVerifier::open(JwtConfig {
            jwks: path,
            issuer: "https://idp.example".into(),
            audience: "lakehose".into(),
        })
        .unwrap()
    }

    #[test]
    fn valid_tokens_name_their_subject_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let (ek, ej) = es256("ec1");
        let (rk, rj) = rs256("rsa1");
        let v = verifier(dir.path(), &[&ej, &rj]);
        for t in [
            token(Algorithm::ES256, "ec1", &ek, &claims(json!({}))),
            token(Algorithm::RS256, "rsa1", &rk, &claims(json!({}))),
        ] {
            let caller = v.verify(&t).unwrap();
            assert_eq!(caller.principal, "device-7");
            assert_eq!(caller.groups, vec!["shippers".to_string()]);
        }
    }

    #[test]
    fn bad_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ek, ej) = es256("ec1");
        let (other, _) = es256("ec1");
        let (rk, rj) = rs256("rsa1");
        let v = verifier(dir.path(), &[&ej, &rj]);
        let es = |c: serde_json::Value| token(Algorithm::ES256, "ec1", &ek, &c);
        assert_eq!(
            v.verify(&es(claims(json!({"exp": now() - 3600})))),
            Err(TokenError::Expired)
        );
        assert_eq!(
            v.verify(&es(claims(json!({"nbf": now() + 3600})))),
            Err(TokenError::NotYetValid)
        );
        assert!(matches!(
            v.verify(&es(claims(json!({"iss": "https://evil"})))),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&es(claims(json!({"aud": "other"})))),
            Err(TokenError::Invalid(_))
        ));
        // Signed by a key that is not the set's, under a known kid.
        let forged = token(Algorithm::ES256, "ec1", &other, &claims(json!({})));
        assert!(matches!(v.verify(&forged), Err(TokenError::Invalid(_))));
        // An unknown kid.
        assert_eq!(
            v.verify(&token(Algorithm::ES256, "nope", &ek, &claims(json!({})))),
            Err(TokenError::UnknownKey)
        );
        // No exp.
        let mut c = claims(json!({}));
        c.as_object_mut().unwrap().remove("exp");
        assert!(matches!(v.verify(&es(c)), Err(TokenError::Invalid(_))));
        // alg none: header and claims with an empty signature.
        let none = format!(
            "{}.{}.",
            b64u(br#"{"alg":"none","typ":"JWT"}"#),
            b64u(claims(json!({})).to_string().as_bytes())
        );
        assert!(v.verify(&none).is_err());
        // HS256 with the RSA public modulus as the shared secret.
        let n = include_str!("../testdata/rsa-test-key.n");
        let hs = token(
            Algorithm::HS256,
            "rsa1",
            &EncodingKey::from_secret(n.trim().as_bytes()),
            &claims(json!({})),
        );
        assert_eq!(v.verify(&hs), Err(TokenError::Algorithm));
        // An RS256 header over an EC kid, and garbage.
        assert!(
            v.verify(&token(Algorithm::RS256, "ec1", &rk, &claims(json!({}))))
                .is_err()
        );
        for junk in ["", "a.b.c", "....", &"x".repeat(20_000)] {
            assert!(v.verify(junk).is_err(), "{junk:.20}");
        }
    }

    #[test]
    fn key_sets_without_usable_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(
            &path,
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}).to_string(),
        )
        .unwrap();
        let config = JwtConfig {
            jwks: path,
            issuer: "i".into(),
            audience: "a".into(),
        };
        assert!(JwtVerifier::open(config).is_err());
    }
}
