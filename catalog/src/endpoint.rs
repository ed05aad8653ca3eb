//! Endpoint overrides of the AWS services lakehose calls (S3, Glue):
//! checked before use, and shown without any user information.

/// Checks an endpoint override: an http(s) URL with a host and no
/// credentials in it (they come from the AWS credential chain). The error
/// says what is wrong.
pub fn check(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; they come from the AWS credential chain".into());
    }
    Ok(())
}

/// The endpoint as it may be shown: without user information.
pub fn redact(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(mut u) if matches!(u.scheme(), "http" | "https") => {
            if u.username().is_empty() && u.password().is_none() {
                return endpoint.to_string();
            }
            // Both only fail for URLs that cannot have credentials.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        // Anything else is shown unless it might hold user information.
        _ if endpoint.contains('@') => "<endpoint with user information>".to_string(),
        _ => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_and_shown_without_secrets() {
        assert!(check("http://127.0.0.1:9000").is_ok());
        assert!(check("https://s3.eu-west-1.amazonaws.com/").is_ok());
        assert!(check("ftp://host").is_err());
        assert!(check("not a url").is_err());
        let err = check("http://key:secret@host:9000").unwrap_err();
        assert!(err.contains("credentials"), "{err}");
        assert_eq!(redact("http://key:secret@host:9000/"), "http://host:9000/");
        assert!(!redact("key:secret@host").contains("secret"));
    }
}
