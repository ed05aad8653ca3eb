//! The plain NDJSON endpoint, `POST /v1/streams/{name}/records`, for
//! shippers that just POST lines (Vector's and Fluent Bit's HTTP sinks, curl).
//!
//! Each non-empty line is one record; `Content-Encoding: gzip` bodies are
//! accepted. The answer is `200 {"accepted": n, "firstRecordId": ..,
//! "lastRecordId": ..}` once every line is durable. Errors are
//! `{"error": code, "message": ..}` with a 4xx/5xx status.

use std::io::Read;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use lakehose_catalog::awsjson::AwsError;
use serde_json::json;

use crate::firehose::MAX_RECORD_BYTES;
use crate::service::IngestService;

/// Largest request body after decompression.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

fn error(status: StatusCode, code: &str, message: String) -> NdjsonError {
    NdjsonError {
        status,
        code: code.to_string(),
        message,
    }
}

impl From<AwsError> for NdjsonError {
    fn from(e: AwsError) -> Self {
        let status = match e.code.as_str() {
            "ResourceNotFoundException" => StatusCode::NOT_FOUND,
            _ => e.status,
        };
        error(status, &e.code, e.message)
    }
}

/// An error of the NDJSON endpoint: `{"error": code, "message": ..}`.
#[derive(Debug)]
pub struct NdjsonError {
    status: StatusCode,
    code: String,
    message: String,
}

impl IntoResponse for NdjsonError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

/// `POST /v1/streams/{name}/records`.
pub async fn put_lines(
    State(service): State<IngestService>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, NdjsonError> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    // Decompressing and splitting a large body is CPU work: off the runtime.
    let records = tokio::task::spawn_blocking(move || split_lines(body, gzip))
        .await
        .map_err(|e| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                e.to_string(),
            )
        })??;
    if records.is_empty() {
        return Ok(Json(json!({"accepted": 0})).into_response());
    }
    let accepted = service.put_records(&name, records).await?;
    Ok(Json(json!({
        "accepted": accepted.len(),
        "firstRecordId": accepted.first().map(|a| a.record_id.clone()),
        "lastRecordId": accepted.last().map(|a| a.record_id.clone()),
    }))
    .into_response())
}

/// Decompresses (when `gzip`) and splits a body into records, one per
/// non-empty line.
fn split_lines(body: Bytes, gzip: bool) -> Result<Vec<Result<Bytes, Bytes>>, NdjsonError> {
    let body = if gzip {
        let mut out = Vec::with_capacity(body.len() * 4);
        let mut reader =
            flate2::read::MultiGzDecoder::new(&body[..]).take(MAX_BODY_BYTES as u64 + 1);
        reader.read_to_end(&mut out).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "InvalidBody",
                format!("the gzip body could not be decompressed: {e}"),
            )
        })?;
        if out.len() > MAX_BODY_BYTES {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BodyTooLarge",
                format!("the body is larger than {MAX_BODY_BYTES} bytes once decompressed"),
            ));
        }
        Bytes::from(out)
    } else {
        body
    };
    let mut records = Vec::new();
    let mut start = 0;
    for (line_no, line) in body.split(|&c| c == b'\n').enumerate() {
        let end = start + line.len();
        let mut slice = body.slice(start..end);
        start = end + 1;
        if slice.ends_with(b"\r") {
            slice.truncate(slice.len() - 1);
        }
        if slice.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if slice.len() > MAX_RECORD_BYTES {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RecordTooLarge",
                format!(
                    "line {} is {} bytes; a record may be at most {MAX_RECORD_BYTES} bytes",
                    line_no + 1,
                    slice.len()
                ),
            ));
        }
        records.push(Ok(slice));
    }
    Ok(records)
}
