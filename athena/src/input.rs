//! Request parsing and validation shared by the operations.
//!
//! Bodies are parsed into structs that refuse unknown members (a member
//! lakehose does not know is a feature it does not have, so it says so
//! rather than ignoring it). When a body does not fit, the member at fault
//! is found and named in the `SerializationException`.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Parses `body` (`{}` when empty) into `T`; on failure names the member
/// that does not fit.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::serialization(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(members) = &value else {
        return Err(ApiError::serialization(
            "the request body must be a JSON object",
        ));
    };
    match serde_json::from_value::<T>(value.clone()) {
        Ok(v) => Ok(v),
        Err(whole) => {
            // Find the member that fails on its own: every input struct has
            // only optional members, so a one-member object parses unless
            // that member is the problem.
            for (key, v) in members {
                let mut single = serde_json::Map::new();
                single.insert(key.clone(), v.clone());
                if let Err(e) = serde_json::from_value::<T>(Value::Object(single)) {
                    return Err(ApiError::serialization(format!(
                        "invalid value for member {key}: {e}"
                    )));
                }
            }
            Err(ApiError::serialization(format!(
                "invalid request body: {whole}"
            )))
        }
    }
}

/// A required member.
pub fn required<T>(value: Option<T>, member: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(format!("{member} is required")))
}

/// Checks a string's length in characters.
pub fn length(value: &str, member: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid(format!(
            "{member} must be {min} to {max} characters long, got {n}"
        )));
    }
    Ok(())
}

/// `MaxResults` within `min..=max`, `default` when absent.
pub fn max_results(
    value: Option<i64>,
    min: i64,
    max: i64,
    default: i64,
) -> Result<usize, ApiError> {
    let v = value.unwrap_or(default);
    if !(min..=max).contains(&v) {
        return Err(ApiError::invalid(format!(
            "MaxResults must be between {min} and {max}, got {v}"
        )));
    }
    Ok(v as usize)
}

/// A `NextToken` within Athena's 1–1024 characters.
pub fn next_token(value: Option<&str>) -> Result<Option<&str>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(t) if t.len() > 1024 => Err(ApiError::invalid(
            "NextToken must be at most 1024 characters long",
        )),
        Some(t) => Ok(Some(t)),
    }
}

/// Pages a name-sorted list: items after the `token` name, at most `max`;
/// the next token is the last name returned when more remain.
pub fn page_by_name<T>(
    items: Vec<T>,
    name: impl Fn(&T) -> &str,
    token: Option<&str>,
    max: usize,
) -> (Vec<T>, Option<String>) {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|i| token.is_none_or(|t| name(i) > t))
        .collect();
    let more = rest.len() > max;
    rest.truncate(max);
    let next = if more {
        rest.last().map(|i| name(i).to_string())
    } else {
        None
    };
    (rest, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        name: Option<String>,
        max_results: Option<i64>,
    }

    #[test]
    fn names_the_bad_member() {
        let e = parse::<Input>(br#"{"Name": "x", "MaxResults": "ten"}"#).unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert!(e.message.contains("MaxResults"), "{}", e.message);
        let e = parse::<Input>(br#"{"Nmae": "x"}"#).unwrap_err();
        assert!(e.message.contains("Nmae"), "{}", e.message);
        let e = parse::<Input>(b"[1]").unwrap_err();
        assert_eq!(e.code, "SerializationException");
        let e = parse::<Input>(b"{oops").unwrap_err();
        assert_eq!(e.code, "SerializationException");
        let ok = parse::<Input>(b"").unwrap();
        assert!(ok.name.is_none());
    }

    #[test]
    fn validates_ranges() {
        assert_eq!(max_results(None, 1, 50, 50).unwrap(), 50);
        assert!(max_results(Some(0), 1, 50, 50).is_err());
        assert!(max_results(Some(51), 1, 50, 50).is_err());
        assert!(length("", "Name", 1, 3).is_err());
        assert!(length("abcd", "Name", 1, 3).is_err());
        assert!(length("ab", "Name", 1, 3).is_ok());
        assert!(next_token(Some(&"x".repeat(1025))).is_err());
        assert_eq!(next_token(Some("")).unwrap(), None);
    }

    #[test]
    fn pages_by_name() {
        let names = vec!["a", "b", "c", "d", "e"];
        let (p1, t1) = page_by_name(names.clone(), |s| s, None, 2);
        assert_eq!(p1, vec!["a", "b"]);
        assert_eq!(t1.as_deref(), Some("b"));
        let (p2, t2) = page_by_name(names.clone(), |s| s, t1.as_deref(), 2);
        assert_eq!(p2, vec!["c", "d"]);
        let (p3, t3) = page_by_name(names, |s| s, t2.as_deref(), 2);
        assert_eq!(p3, vec!["e"]);
        assert!(t3.is_none());
    }
}
