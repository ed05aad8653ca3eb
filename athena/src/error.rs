//! Athena's error responses: `{"__type": "<Code>", "Message": "..."}` plus
//! the members some exceptions carry (`AthenaErrorCode`/`ErrorCode` on
//! `InvalidRequestException`, `Reason` on `TooManyRequestsException`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lakehose_catalog::CatalogError;
use lakehose_catalog::awsjson::{self, AwsError};

/// An Athena API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `__type`, e.g. `InvalidRequestException`.
    pub code: String,
    /// The `Message` member.
    pub message: String,
    /// Extra members, e.g. `("AthenaErrorCode", "INVALID_INPUT")`.
    pub members: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            members: Vec::new(),
        }
    }

    /// `InvalidRequestException` with an `AthenaErrorCode` (and the same
    /// value as `ErrorCode`, as Athena sends both).
    pub fn invalid_with(athena_code: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "InvalidRequestException", message);
        e.members.push(("AthenaErrorCode", athena_code.to_string()));
        e.members.push(("ErrorCode", athena_code.to_string()));
        e
    }

    /// `InvalidRequestException` for bad input (`INVALID_INPUT`).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::invalid_with("INVALID_INPUT", message)
    }

    /// `SerializationException`: the body is not the JSON the operation
    /// takes.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    /// `MetadataException`: a catalog lookup failed.
    pub fn metadata(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MetadataException", message)
    }

    /// `TooManyRequestsException` with `Reason: CONCURRENT_QUERY_LIMIT_EXCEEDED`.
    pub fn too_many_queries(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "TooManyRequestsException", message);
        e.members
            .push(("Reason", "CONCURRENT_QUERY_LIMIT_EXCEEDED".to_string()));
        e
    }

    /// `InternalServerException` (HTTP 500). The cause is logged, not sent.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Athena API: {context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            format!("{context}; see the lakehose log"),
        )
    }

    /// `UnknownOperationException` for an unknown `X-Amz-Target`.
    pub fn unknown_operation(target: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("unknown operation {target:?}"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<AwsError> for ApiError {
    fn from(e: AwsError) -> Self {
        Self::new(e.status, &e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), self.code.clone().into());
        body.insert("Message".into(), self.message.into());
        for (k, v) in self.members {
            body.insert(k.into(), v.into());
        }
        let mut response =
            (self.status, serde_json::Value::Object(body).to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(awsjson::CONTENT_TYPE),
        );
        if let Ok(v) = HeaderValue::from_str(&self.code) {
            headers.insert("x-amzn-ErrorType", v);
        }
        response
    }
}

/// Catalog failures as Athena reports them: what is missing or invalid is a
/// `MetadataException`, storage faults are internal.
pub fn from_catalog(e: CatalogError) -> ApiError {
    match e {
        CatalogError::NotFound(_)
        | CatalogError::InvalidInput(_)
        | CatalogError::AlreadyExists(_)
        | CatalogError::ConcurrentModification(_) => ApiError::metadata(e.to_string()),
        CatalogError::Storage(_) | CatalogError::Corrupt { .. } => {
            ApiError::internal("the catalog's storage failed", &e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_request_carries_athena_error_code() {
        let response = ApiError::invalid_with(
            "INVALID_QUERY_EXECUTION_STATE",
            "Query has not yet finished. Current state: RUNNING",
        )
        .into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()["x-amzn-ErrorType"],
            "InvalidRequestException"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "__type": "InvalidRequestException",
                "Message": "Query has not yet finished. Current state: RUNNING",
                "AthenaErrorCode": "INVALID_QUERY_EXECUTION_STATE",
                "ErrorCode": "INVALID_QUERY_EXECUTION_STATE",
            })
        );
    }

    #[tokio::test]
    async fn too_many_requests_has_reason() {
        let response = ApiError::too_many_queries("busy").into_response();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Reason"], "CONCURRENT_QUERY_LIMIT_EXCEEDED");
        assert_eq!(v["__type"], "TooManyRequestsException");
    }
}
