//! AWS Signature Version 4, checked as AWS checks it.
//!
//! The `Authorization` header names the algorithm, the credential scope
//! (`<key id>/<yyyymmdd>/<region>/<service>/aws4_request`), the headers the
//! client signed and the signature. The expected signature is computed by
//! `aws-sigv4` over the method, the path and query, exactly the signed
//! headers as received and the SHA-256 of the body, with the key's secret,
//! the scope's region and service and the request's `X-Amz-Date`; the two
//! are compared in constant time. A request more than 15 minutes away from
//! the server's clock is refused, as is one whose scope date is not its
//! `X-Amz-Date`'s day, or whose scope names another service.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::error::AuthError;
use crate::keys::{Caller, KeyStore};

/// How far a request's time may be from the server's (AWS's window).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Longest `Authorization` header looked at.
const MAX_AUTHORIZATION_BYTES: usize = 8 << 10;

/// Most headers a request may sign.
const MAX_SIGNED_HEADERS: usize = 64;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// The scope's date, `yyyymmdd`.
    pub date: &'a str,
    /// The scope's region.
    pub region: &'a str,
    /// The scope's service.
    pub service: &'a str,
    /// The signed header names, lower case, as listed.
    pub signed_headers: Vec<&'a str>,
    /// The signature, 64 hex digits.
    pub signature: &'a str,
}

fn incomplete(message: impl Into<String>) -> AuthError {
    AuthError::Incomplete(message.into())
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(incomplete("the Authorization header is too long"));
    }
    let (algorithm, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported Authorization algorithm {:?}: lakehose verifies {ALGORITHM}",
            truncate(algorithm, 32)
        )));
    }
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, value)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "Authorization header element {:?} is not name=value",
                truncate(part, 32)
            )));
        };
        let slot = match name.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            other => {
                return Err(incomplete(format!(
                    "Authorization header has an unknown element {:?}",
                    truncate(other, 32)
                )));
            }
        };
        if slot.replace(value.trim()).is_some() {
            return Err(incomplete(format!(
                "Authorization header names {} twice",
                name.trim()
            )));
        }
    }
    fn need<'v>(v: Option<&'v str>, what: &str) -> Result<&'v str, AuthError> {
        v.filter(|v| !v.is_empty())
            .ok_or_else(|| incomplete(format!("Authorization header requires '{what}' parameter.")))
    }
    let credential = need(credential, "Credential")?;
    let signed = need(signed, "SignedHeaders")?;
    let signature = need(signature, "Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(
            "Credential should be <key id>/<yyyymmdd>/<region>/<service>/aws4_request",
        ));
    };
    if terminator != "aws4_request" {
        return Err(incomplete(
            "Credential should be scoped with a valid terminator: 'aws4_request'",
        ));
    }
    if access_key_id.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || service.is_empty()
    {
        return Err(incomplete(
            "Credential should be <key id>/<yyyymmdd>/<region>/<service>/aws4_request",
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(incomplete("Signature should be 64 hexadecimal digits"));
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if signed_headers.len() > MAX_SIGNED_HEADERS
        || signed_headers
            .iter()
            .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(incomplete(
            "SignedHeaders should be lower-case header names separated by ';'",
        ));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A request to check: what the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `POST`, `GET`, ...
    pub method: &'a str,
    /// The path and query as sent (`/`, `/v1/streams/s/records?x=1`).
    pub path_and_query: &'a str,
    /// Every header received.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// Verifies the request's signature against `keys`; `service` is the
/// service its credential scope must name (`firehose`, `glue`, `athena`).
pub fn verify(
    request: Request<'_>,
    keys: &KeyStore,
    service: &str,
    now: SystemTime,
) -> Result<Caller, AuthError> {
    let Some(value) = request.headers.get(http::header::AUTHORIZATION) else {
        return Err(AuthError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| incomplete("the Authorization header is not ASCII"))?;
    let auth = parse_authorization(value)?;
    if !auth.signed_headers.contains(&"host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let date_text = header_text(request.headers, "x-amz-date")?.ok_or_else(|| {
        incomplete("Authorization header requires existence of a 'X-Amz-Date' header.")
    })?;
    if !auth.signed_headers.contains(&"x-amz-date") {
        return Err(incomplete(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let time = NaiveDateTime::parse_from_str(date_text, "%Y%m%dT%H%M%SZ")
        .map_err(|_| {
            incomplete(format!(
                "X-Amz-Date {:?} is not yyyymmddThhmmssZ",
                truncate(date_text, 20)
            ))
        })?
        .and_utc();
    if auth.date != &date_text[..8] {
        return Err(AuthError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{date_text}'.",
            auth.date,
            &date_text[..8]
        )));
    }
    if auth.service != service {
        return Err(AuthError::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    let now_utc: DateTime<Utc> = now.into();
    let skew = chrono::Duration::from_std(MAX_SKEW).unwrap_or_default();
    if time < now_utc - skew {
        return Err(AuthError::InvalidSignature(format!(
            "Signature expired: {date_text} is now earlier than {} ({} - 15 min.)",
            (now_utc - skew).format("%Y%m%dT%H%M%SZ"),
            now_utc.format("%Y%m%dT%H%M%SZ")
        )));
    }
    if time > now_utc + skew {
        return Err(AuthError::InvalidSignature(format!(
            "Signature not yet current: {date_text} is still later than {} ({} + 15 min.)",
            (now_utc + skew).format("%Y%m%dT%H%M%SZ"),
            now_utc.format("%Y%m%dT%H%M%SZ")
        )));
    }
    let key = keys
        .lookup(auth.access_key_id)
        .ok_or(AuthError::UnknownKey)?;
    let token = header_text(request.headers, "x-amz-security-token")?;
    if !key.token_matches(token) {
        return Err(AuthError::UnknownKey);
    }
    if let Some(expires) = key.expires
        && expires <= now_utc
    {
        return Err(AuthError::ExpiredToken);
    }
    let expected = expected_signature(&request, &auth, key.secret(), token, time.into())?;
    if bool::from(
        expected
            .as_bytes()
            .ct_eq(auth.signature.to_ascii_lowercase().as_bytes()),
    ) {
        let mut caller = key.caller();
        caller.region = auth.region.to_string();
        Ok(caller)
    } else {
        Err(AuthError::InvalidSignature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                .into(),
        ))
    }
}

/// One header's value as text; `None` when absent.
fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| incomplete(format!("the {name} header is not ASCII"))),
    }
}

/// The signature the client should have sent.
fn expected_signature(
    request: &Request<'_>,
    auth: &Authorization<'_>,
    secret: &str,
    token: Option<&str>,
    time: SystemTime,
) -> Result<String, AuthError> {
    let mut signed: Vec<(&str, &str)> = Vec::new();
    for name in &auth.signed_headers {
        let values = request.headers.get_all(*name);
        let mut any = false;
        for v in values {
            let v = v
                .to_str()
                .map_err(|_| incomplete(format!("the signed header {name} is not ASCII")))?;
            signed.push((name, v));
            any = true;
        }
        if !any {
            return Err(AuthError::InvalidSignature(format!(
                "the signed header {name} is not in the request"
            )));
        }
    }
    let token_signed = auth.signed_headers.contains(&"x-amz-security-token");
    let identity = aws_credential_types::Credentials::new(
        auth.access_key_id,
        secret,
        token.map(str::to_string),
        None,
        "lakehose",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Sign exactly what the client signed: no header left out.
    settings.excluded_headers = Some(Vec::new());
    settings.session_token_mode = if token_signed {
        SessionTokenMode::Include
    } else {
        SessionTokenMode::Exclude
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| incomplete(e.to_string()))?
        .into();
    let uri: Cow<'_, str> = format!("http://lakehose{}", request.path_and_query).into();
    let signable = SignableRequest::new(
        request.method,
        uri,
        signed.into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| incomplete(format!("the request cannot be canonicalised: {e}")))?;
    let output = sign(signable, &params)
        .map_err(|e| incomplete(format!("the request cannot be canonicalised: {e}")))?;
    Ok(output.signature().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyPaths, create_key};

    struct Fixture {
        _dir: tempfile::TempDir,
        store: KeyStore,
        id: String,
        secret: String,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let paths = KeyPaths::new(dir.path().join("principals.json"));
        let made = create_key(&paths, "tester", &["g".into()], None).unwrap();
        Fixture {
            store: KeyStore::open(paths, None).unwrap(),
            _dir: dir,
            id: made.access_key_id,
            secret: made.secret_access_key,
        }
    }

    /// Signs a request the way an SDK does (aws-sigv4 with its defaults).
    fn signed(id: &str, secret: &str, service: &str, time: SystemTime, body: &[u8]) -> HeaderMap {
        let identity = aws_credential_types::Credentials::new(id, secret, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", "127.0.0.1:4570"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "Firehose_20150804.PutRecord"),
            ("user-agent", "test"),
        ];
        let req = SignableRequest::new(
            "POST",
            "http://127.0.0.1:4570/",
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(req, &params).unwrap().into_parts();
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(k, v.parse().unwrap());
        }
        let (added, _) = instructions.into_parts();
        for h in added {
            map.insert(
                http::HeaderName::from_bytes(h.name().as_bytes()).unwrap(),
                h.value().parse().unwrap(),
            );
        }
        map
    }

    fn check(
        f: &Fixture,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Caller, AuthError> {
        verify(
            Request {
                method: "POST",
                path_and_query: "/",
                headers,
                body,
            },
            &f.store,
            "firehose",
            now,
        )
    }

    #[test]
    fn a_correctly_signed_request_names_its_caller() {
        let f = fixture();
        let now = SystemTime::now();
        let headers = signed(&f.id, &f.secret, "firehose", now, b"{}");
        let caller = check(&f, &headers, b"{}", now).unwrap();
        assert_eq!(caller.principal, "tester");
        assert_eq!(caller.groups, vec!["g".to_string()]);
    }

    #[test]
    fn anything_wrong_is_refused_with_aws_codes() {
        let f = fixture();
        let now = SystemTime::now();
        let good = signed(&f.id, &f.secret, "firehose", now, b"{}");
        let code = |r: Result<Caller, AuthError>| r.unwrap_err().code();
        // Tampered body, wrong secret, unknown key, wrong service.
        assert_eq!(
            code(check(&f, &good, b"{ }", now)),
            "InvalidSignatureException"
        );
        let wrong = signed(&f.id, "not-the-secret", "firehose", now, b"{}");
        assert_eq!(
            code(check(&f, &wrong, b"{}", now)),
            "InvalidSignatureException"
        );
        let unknown = signed("LKIANOSUCHKEY0000000", &f.secret, "firehose", now, b"{}");
        assert_eq!(
            code(check(&f, &unknown, b"{}", now)),
            "UnrecognizedClientException"
        );
        let glue = signed(&f.id, &f.secret, "glue", now, b"{}");
        assert_eq!(
            code(check(&f, &glue, b"{}", now)),
            "InvalidSignatureException"
        );
        // A signed header changed after signing.
        let mut changed = good.clone();
        changed.insert(
            "x-amz-target",
            "Firehose_20150804.DeleteDeliveryStream".parse().unwrap(),
        );
        assert_eq!(
            code(check(&f, &changed, b"{}", now)),
            "InvalidSignatureException"
        );
        // Stale and future requests.
        let old = now - Duration::from_secs(16 * 60);
        let stale = signed(&f.id, &f.secret, "firehose", old, b"{}");
        let err = check(&f, &stale, b"{}", now).unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");
        assert!(err.to_string().starts_with("Signature expired"), "{err}");
        let future = signed(
            &f.id,
            &f.secret,
            "firehose",
            now + Duration::from_secs(16 * 60),
            b"{}",
        );
        assert_eq!(
            code(check(&f, &future, b"{}", now)),
            "InvalidSignatureException"
        );
        // Within the window either way is fine.
        let skewed = signed(
            &f.id,
            &f.secret,
            "firehose",
            now - Duration::from_secs(14 * 60),
            b"{}",
        );
        assert!(check(&f, &skewed, b"{}", now).is_ok());
        // Missing and malformed headers.
        assert_eq!(
            code(check(&f, &HeaderMap::new(), b"{}", now)),
            "MissingAuthenticationTokenException"
        );
        let mut no_date = good.clone();
        no_date.remove("x-amz-date");
        assert_eq!(
            code(check(&f, &no_date, b"{}", now)),
            "IncompleteSignatureException"
        );
        for bad in [
            "AWS4-HMAC-SHA1 Credential=a/20200101/r/s/aws4_request, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000",
            "AWS4-HMAC-SHA256 Credential=a/20200101/r/s/aws4_request, SignedHeaders=host, Signature=xyz",
            "AWS4-HMAC-SHA256 Credential=a/20200101/r/s/aws4_request, Credential=b, SignedHeaders=host, Signature=0",
            "",
        ] {
            let mut h = good.clone();
            h.insert("authorization", bad.parse().unwrap());
            assert_eq!(
                code(check(&f, &h, b"{}", now)),
                "IncompleteSignatureException",
                "{bad}"
            );
        }
        // Host not signed.
        let auth = good
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .replace("host;", "");
        let mut h = good.clone();
        h.insert("authorization", auth.parse().unwrap());
        assert_eq!(
            code(check(&f, &h, b"{}", now)),
            "IncompleteSignatureException"
        );
    }

    #[test]
    fn hostile_authorization_headers_are_bounded() {
        let long = format!(
            "AWS4-HMAC-SHA256 Credential={}/20200101/r/s/aws4_request, SignedHeaders=host, Signature=0",
            "a".repeat(20_000)
        );
        assert!(parse_authorization(&long).is_err());
        let many = format!(
            "AWS4-HMAC-SHA256 Credential=a/20200101/r/s/aws4_request, SignedHeaders={}, Signature={}",
            vec!["h"; 500].join(";"),
            "0".repeat(64)
        );
        assert!(parse_authorization(&many).is_err());
        assert!(parse_authorization("AWS4-HMAC-SHA256 ===,,,;;; ==").is_err());
    }
}
