//! The plain NDJSON endpoint, `POST /v1/streams/{name}/records`, for
//! shippers that just POST lines (Vector's and Fluent Bit's HTTP sinks, curl).
//!
//! Each non-empty line is one record; `Content-Encoding: gzip` bodies are
//! accepted. A request holds at most `max_ndjson_records` records and
//! `max_decompressed_bytes` once decompressed (413 past either, found
//! while reading, so nothing larger is ever held). The answer is `200 {"accepted": n, "firstRecordId": ..,
//! "lastRecordId": ..}` once every line is durable. Errors are
//! `{"error": code, "message": ..}` with a 4xx/5xx status. An unsigned
//! request must say `Content-Type: application/x-ndjson` (or any type a
//! web form cannot send): a page on another site cannot make a browser
//! post records here (415 otherwise).

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

/// How much of a gzip body's decompressed size is reserved up front, at
/// most (the buffer grows as needed, up to the limit).
const INITIAL_DECOMPRESSED_CAPACITY: usize = 4 * 1024 * 1024;

/// The caps of one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most records.
    pub max_records: usize,
    /// Most bytes once decompressed.
    pub max_decompressed_bytes: usize,
}

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

/// Before the body of `POST /v1/streams/{name}/records` is read: a
/// request whose announced length would not fit in the buffers now gets
/// 503 at once (see [`IngestService::check_room`]).
pub(crate) async fn check_room(
    State(service): State<IngestService>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .unwrap_or(0);
    match service.check_room(announced) {
        Ok(()) => next.run(request).await,
        Err(e) => NdjsonError::from(e).into_response(),
    }
}

/// Refuses what a web page could make a browser send from another site
/// without asking first (a "simple" request: no `Authorization`, and no
/// content type or one an HTML form can send). A shipper sends a JSON
/// content type or signs its requests; a page cannot do either without a
/// CORS preflight, which this server never grants.
fn check_not_cross_site(headers: &HeaderMap) -> Result<(), NdjsonError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Ok(());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        None
        | Some("" | "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data") => {
            Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "send Content-Type: application/x-ndjson (or application/json), or sign the request: a body a web form could send is refused".into(),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// `POST /v1/streams/{name}/records`.
pub async fn put_lines(
    State(service): State<IngestService>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, NdjsonError> {
    check_not_cross_site(&headers)?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedContentEncoding",
                format!("Content-Encoding {other:?} is not supported; send gzip or no encoding"),
            ));
        }
    };
    let config = service.config();
    let limits = Limits {
        max_records: config.max_ndjson_records,
        max_decompressed_bytes: config.max_decompressed_bytes,
    };
    // Decompressing and splitting a large body is CPU work: off the runtime.
    let records = tokio::task::spawn_blocking(move || split_lines(body, gzip, limits))
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
/// non-empty line, within `limits`.
pub(crate) fn split_lines(
    body: Bytes,
    gzip: bool,
    limits: Limits,
) -> Result<Vec<Result<Bytes, Bytes>>, NdjsonError> {
    let max_bytes = limits.max_decompressed_bytes;
    let body = if gzip {
        let capacity = body
            .len()
            .saturating_mul(4)
            .min(max_bytes)
            .min(INITIAL_DECOMPRESSED_CAPACITY);
        let mut out = Vec::with_capacity(capacity);
        // Reads one byte past the limit, to tell "at" from "over".
        let mut reader = flate2::read::MultiGzDecoder::new(&body[..]).take(max_bytes as u64 + 1);
        reader.read_to_end(&mut out).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "InvalidBody",
                format!("the gzip body could not be decompressed: {e}"),
            )
        })?;
        if out.len() > max_bytes {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BodyTooLarge",
                format!(
                    "the gzip body is larger than {max_bytes} bytes once decompressed (--max-decompressed-mb); split it into smaller requests"
                ),
            ));
        }
        Bytes::from(out)
    } else {
        body
    };
    if body.len() > max_bytes {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BodyTooLarge",
            format!(
                "the body is {} bytes; at most {max_bytes} are accepted (--max-decompressed-mb)",
                body.len()
            ),
        ));
    }
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
        if records.len() == limits.max_records {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TooManyRecords",
                format!(
                    "the body holds more than {} records (non-empty lines); at most {} are accepted per request (--max-ndjson-records); split it into smaller requests",
                    limits.max_records, limits.max_records
                ),
            ));
        }
        records.push(Ok(slice));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const LIMITS: Limits = Limits {
        max_records: 100_000,
        max_decompressed_bytes: 64 * 1024 * 1024,
    };

    #[test]
    fn too_many_records_are_refused_while_splitting() {
        let body = Bytes::from(b"1\n".repeat(32 * 1024 * 1024));
        let err = split_lines(body, false, LIMITS).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.code, "TooManyRecords");
        assert!(err.message.contains("100000"), "{}", err.message);
        let body = Bytes::from(b"1\n".repeat(100_000));
        assert_eq!(split_lines(body, false, LIMITS).unwrap().len(), 100_000);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 10 MiB of zeros compress to ~10 KiB; 100 members make 1 GiB.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 10 * 1024 * 1024]).unwrap();
        let member = enc.finish().unwrap();
        assert!(member.len() < 64 * 1024);
        let bomb = Bytes::from(member.repeat(100));
        let err = split_lines(bomb, true, LIMITS).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.code, "BodyTooLarge");
        assert!(err.message.contains("decompressed"), "{}", err.message);
        // Plain bodies over the limit too.
        let small = Limits {
            max_records: 10,
            max_decompressed_bytes: 4,
        };
        let err = split_lines(Bytes::from_static(b"12345"), false, small).unwrap_err();
        assert_eq!(err.code, "BodyTooLarge");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"a\":1}\n\n{\"a\":2}\r\n").unwrap();
        let ok = split_lines(Bytes::from(enc.finish().unwrap()), true, LIMITS).unwrap();
        assert_eq!(ok.len(), 2);
    }
}
