//! Shared plumbing of the AWS JSON 1.1 protocol (Firehose, Glue, Athena):
//! request parsing and error responses in the shapes the SDKs decode.
//!
//! A call is `POST /` with `X-Amz-Target: <prefix>.<Operation>` and a JSON
//! body. Success is HTTP 200 with a JSON body; an error is a 4xx/5xx with
//! `{"__type": "<Code>", "message": "..."}` (Glue and Athena spell it
//! `Message`), which the SDKs turn into their typed exceptions.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// The content type of AWS JSON 1.1.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// How a service spells the message member of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageCase {
    /// `message` (Firehose).
    Lower,
    /// `Message` (Glue, Athena).
    Upper,
}

/// An error in AWS's wire shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// HTTP status.
    pub status: StatusCode,
    /// The error code (`__type`), e.g. `ResourceNotFoundException`.
    pub code: String,
    /// A readable message.
    pub message: String,
    /// The message member's spelling.
    pub case: MessageCase,
}

impl AwsError {
    /// A client error (HTTP 400).
    pub fn client(code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: code.to_string(),
            message: message.into(),
            case: MessageCase::Lower,
        }
    }

    /// A server error (HTTP 500).
    pub fn internal(code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: code.to_string(),
            message: message.into(),
            case: MessageCase::Lower,
        }
    }

    /// With another HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// With the message member spelled `Message`.
    pub(crate) fn upper_case(mut self) -> Self {
        self.case = MessageCase::Upper;
        self
    }

    /// `UnknownOperationException` for an unknown `X-Amz-Target`.
    pub fn unknown_operation(target: &str) -> Self {
        Self::client(
            "UnknownOperationException",
            format!("unknown operation {target:?}"),
        )
    }

    /// `SerializationException` for a body that is not the expected JSON.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::client("SerializationException", message)
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let key = match self.case {
            MessageCase::Lower => "message",
            MessageCase::Upper => "Message",
        };
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), self.code.clone().into());
        body.insert(key.into(), self.message.into());
        let mut response =
            (self.status, serde_json::Value::Object(body).to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Ok(v) = HeaderValue::from_str(&self.code) {
            headers.insert("x-amzn-ErrorType", v);
        }
        response
    }
}

/// A 200 response with a JSON body.
pub fn ok(body: serde_json::Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A 200 response with `body` serialized as JSON.
pub fn ok_json<T: serde::Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = (StatusCode::OK, bytes).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            response
        }
        Err(e) => AwsError::internal("InternalFailure", e.to_string()).into_response(),
    }
}

/// Parses a request body (`{}` when empty) into `T`, or a
/// `SerializationException` naming the problem.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, AwsError> {
    let body: &'a [u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| AwsError::serialization(format!("invalid request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_shape() {
        let response =
            AwsError::client("ResourceNotFoundException", "no such stream").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()["x-amzn-ErrorType"],
            "ResourceNotFoundException"
        );
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }

    #[test]
    fn parses_empty_bodies() {
        let v: serde_json::Value = parse(b"").unwrap();
        assert_eq!(v, serde_json::json!({}));
        let err = parse::<serde_json::Value>(b"{nope").unwrap_err();
        assert_eq!(err.code, "SerializationException");
    }
}
