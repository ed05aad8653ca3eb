//! The Amazon Data Firehose JSON 1.1 API (`X-Amz-Target: Firehose_20150804.*`).
//!
//! Shapes and errors follow the botocore service model, so an unmodified
//! `aws-sdk-firehose` client, boto3 or the aws CLI works with only an
//! endpoint override.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use lakehose_catalog::awsjson::{self, AwsError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{DEFAULT_INTERVAL_S, DEFAULT_SIZE_MB, S3Destination, StreamDefinition};
use crate::service::IngestService;

/// The `X-Amz-Target` prefix of Firehose.
pub const TARGET_PREFIX: &str = "Firehose_20150804";
/// Most records in one `PutRecordBatch`.
pub(crate) const MAX_BATCH_RECORDS: usize = 500;
/// Most bytes (decoded) in one `PutRecordBatch`.
pub(crate) const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes (decoded) in one record: 1,000 KiB.
pub(crate) const MAX_RECORD_BYTES: usize = 1_024_000;

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidArgumentException", message)
}

fn required<T>(value: Option<T>, member: &str) -> Result<T, AwsError> {
    value.ok_or_else(|| invalid(format!("{member} is required")))
}

/// Handles one Firehose operation.
pub async fn handle(service: &IngestService, operation: &str, body: &[u8]) -> Response {
    let result = match operation {
        "CreateDeliveryStream" => create(service, body).await,
        "DescribeDeliveryStream" => describe(service, body).await,
        "ListDeliveryStreams" => list(service, body),
        "DeleteDeliveryStream" => delete(service, body).await,
        "PutRecord" => put_record(service, body).await,
        "PutRecordBatch" => {
            return match put_record_batch(service, body).await {
                Ok(out) => awsjson::ok_json(&out),
                Err(e) => e.into_response(),
            };
        }
        "ListTagsForDeliveryStream"
        | "TagDeliveryStream"
        | "UntagDeliveryStream"
        | "UpdateDestination"
        | "StartDeliveryStreamEncryption"
        | "StopDeliveryStreamEncryption" => {
            Err(invalid(format!("{operation} is not supported by lakehose")))
        }
        other => Err(AwsError::unknown_operation(&format!(
            "{TARGET_PREFIX}.{other}"
        ))),
    };
    match result {
        Ok(v) => awsjson::ok(v),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateInput {
    delivery_stream_name: Option<String>,
    delivery_stream_type: Option<String>,
    extended_s3_destination_configuration: Option<S3Destination>,
    s3_destination_configuration: Option<S3Destination>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

async fn create(service: &IngestService, body: &[u8]) -> Result<Value, AwsError> {
    let input: CreateInput = awsjson::parse(body)?;
    let name = required(input.delivery_stream_name, "DeliveryStreamName")?;
    if let Some(other) = input.other.keys().find(|k| {
        k.ends_with("DestinationConfiguration")
            || k.ends_with("SourceConfiguration") && k.as_str() != "DirectPutSourceConfiguration"
    }) {
        return Err(invalid(format!(
            "{other} is not supported; lakehose delivers to S3 destinations (ExtendedS3DestinationConfiguration)"
        )));
    }
    let destination = match (
        input.extended_s3_destination_configuration,
        input.s3_destination_configuration,
    ) {
        (Some(d), None) | (None, Some(d)) => d,
        (Some(_), Some(_)) => {
            return Err(invalid(
                "give exactly one destination configuration, not both S3DestinationConfiguration and ExtendedS3DestinationConfiguration",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "a destination is required: ExtendedS3DestinationConfiguration",
            ));
        }
    };
    let arn = service
        .create_stream(&name, input.delivery_stream_type.as_deref(), destination)
        .await?;
    Ok(json!({ "DeliveryStreamARN": arn }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameInput {
    delivery_stream_name: Option<String>,
}

async fn describe(service: &IngestService, body: &[u8]) -> Result<Value, AwsError> {
    let input: NameInput = awsjson::parse(body)?;
    let name = required(input.delivery_stream_name, "DeliveryStreamName")?;
    let def = service.describe_stream(&name).await?;
    Ok(json!({ "DeliveryStreamDescription": description(&def) }))
}

fn description(def: &StreamDefinition) -> Value {
    let mut dest = serde_json::to_value(&def.destination).unwrap_or_else(|_| json!({}));
    if let Some(obj) = dest.as_object_mut() {
        let hints = obj.entry("BufferingHints").or_insert_with(|| json!({}));
        if let Some(h) = hints.as_object_mut() {
            h.entry("SizeInMBs").or_insert(json!(DEFAULT_SIZE_MB));
            h.entry("IntervalInSeconds")
                .or_insert(json!(DEFAULT_INTERVAL_S));
        }
        obj.entry("CompressionFormat")
            .or_insert(json!("UNCOMPRESSED"));
        obj.entry("EncryptionConfiguration")
            .or_insert(json!({"NoEncryptionConfig": "NoEncryption"}));
        obj.entry("RoleARN")
            .or_insert(json!("arn:aws:iam::000000000000:role/lakehose"));
        obj.entry("S3BackupMode").or_insert(json!("Disabled"));
    }
    json!({
        "DeliveryStreamName": def.name,
        "DeliveryStreamARN": def.arn,
        "DeliveryStreamStatus": "ACTIVE",
        "DeliveryStreamType": def.stream_type,
        "VersionId": def.version_id.to_string(),
        "CreateTimestamp": def.created_ms as f64 / 1000.0,
        "DeliveryStreamEncryptionConfiguration": {"Status": "DISABLED"},
        "Destinations": [{
            "DestinationId": "destinationId-000000000001",
            "ExtendedS3DestinationDescription": dest,
        }],
        "HasMoreDestinations": false,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    limit: Option<i64>,
    delivery_stream_type: Option<String>,
    exclusive_start_delivery_stream_name: Option<String>,
}

fn list(service: &IngestService, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = awsjson::parse(body)?;
    let limit = input.limit.unwrap_or(10);
    if !(1..=10_000).contains(&limit) {
        return Err(invalid(format!(
            "Limit must be between 1 and 10000, got {limit}"
        )));
    }
    if input
        .delivery_stream_type
        .as_deref()
        .is_some_and(|t| t != "DirectPut")
    {
        // lakehose only has DirectPut streams.
        return Ok(json!({"DeliveryStreamNames": [], "HasMoreDeliveryStreams": false}));
    }
    let (names, more) = service.list_streams(
        limit as usize,
        input.exclusive_start_delivery_stream_name.as_deref(),
    );
    Ok(json!({"DeliveryStreamNames": names, "HasMoreDeliveryStreams": more}))
}

async fn delete(service: &IngestService, body: &[u8]) -> Result<Value, AwsError> {
    let input: NameInput = awsjson::parse(body)?;
    let name = required(input.delivery_stream_name, "DeliveryStreamName")?;
    service.delete_stream(&name).await?;
    Ok(json!({}))
}

/// A record as sent: base64 text, borrowed from the request body when it
/// has no JSON escapes (the usual case), so a batch is parsed without a copy.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordInput<'a> {
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput<'a> {
    delivery_stream_name: Option<String>,
    #[serde(borrow)]
    record: Option<RecordInput<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordBatchInput<'a> {
    delivery_stream_name: Option<String>,
    #[serde(borrow)]
    records: Option<RecordList<'a>>,
}

/// `Records`, kept only up to [`MAX_BATCH_RECORDS`] (the rest are counted,
/// not held), so a body of millions of tiny entries costs no memory.
struct RecordList<'a> {
    records: Vec<RecordInput<'a>>,
    total: usize,
}

impl<'de: 'a, 'a> Deserialize<'de> for RecordList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = RecordList<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of records")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut records = Vec::new();
                let mut total = 0;
                loop {
                    if records.len() < MAX_BATCH_RECORDS {
                        match seq.next_element::<RecordInput<'a>>()? {
                            Some(r) => records.push(r),
                            None => break,
                        }
                    } else if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                        break;
                    }
                    total += 1;
                }
                Ok(RecordList { records, total })
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

/// Decodes base64 record data into one buffer shared by the batch's
/// records; undecodable data is kept raw (`Err`) so it goes to the error
/// prefix instead of failing its neighbours.
fn decode_records(records: Vec<RecordInput<'_>>) -> Result<Vec<Result<Bytes, Bytes>>, AwsError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let texts = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| required(r.data, &format!("Records[{i}].Data")))
        .collect::<Result<Vec<_>, _>>()?;
    let capacity: usize = texts.iter().map(|t| t.len() / 4 * 3 + 3).sum();
    let mut buf = Vec::with_capacity(capacity);
    // (start, end) in `buf`, or the index of undecodable text.
    let mut spans = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        // Refuse what cannot fit before decoding it (padding is at most 2).
        let least = (text.len() / 4 * 3).saturating_sub(2);
        if least > MAX_RECORD_BYTES {
            return Err(invalid(format!(
                "record {i} is at least {least} bytes; a record may be at most {MAX_RECORD_BYTES} bytes (1,000 KiB)"
            )));
        }
        let start = buf.len();
        match engine.decode_vec(text.as_bytes(), &mut buf) {
            Ok(()) => {
                let len = buf.len() - start;
                if len > MAX_RECORD_BYTES {
                    return Err(invalid(format!(
                        "record {i} is {len} bytes; a record may be at most {MAX_RECORD_BYTES} bytes (1,000 KiB)"
                    )));
                }
                spans.push(Ok((start, buf.len())));
            }
            Err(_) => {
                buf.truncate(start);
                if text.len() > MAX_RECORD_BYTES {
                    return Err(invalid(format!(
                        "record {i} is {} bytes; a record may be at most {MAX_RECORD_BYTES} bytes (1,000 KiB)",
                        text.len()
                    )));
                }
                spans.push(Err(i));
            }
        }
    }
    let raw_bytes: usize = spans
        .iter()
        .filter_map(|s| s.as_ref().err().map(|i| texts[*i].len()))
        .sum();
    let total = buf.len() + raw_bytes;
    if total > MAX_BATCH_BYTES {
        return Err(invalid(format!(
            "the batch holds {total} bytes of data; PutRecordBatch accepts at most {MAX_BATCH_BYTES} bytes (4 MiB)"
        )));
    }
    let buf = Bytes::from(buf);
    Ok(spans
        .into_iter()
        .map(|span| match span {
            Ok((start, end)) => Ok(buf.slice(start..end)),
            Err(i) => Err(Bytes::from(texts[i].clone().into_owned())),
        })
        .collect())
}

async fn put_record(service: &IngestService, body: &[u8]) -> Result<Value, AwsError> {
    let input: PutRecordInput = awsjson::parse(body)?;
    let name = required(input.delivery_stream_name, "DeliveryStreamName")?;
    let record = required(input.record, "Record")?;
    let records = decode_records(vec![record])?;
    let accepted = service.put_records(&name, records).await?;
    let id = accepted
        .into_iter()
        .next()
        .map(|a| a.record_id)
        .unwrap_or_default();
    Ok(json!({"RecordId": id, "Encrypted": false}))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordBatchOutput {
    failed_put_count: u32,
    encrypted: bool,
    request_responses: Vec<RecordResponse>,
}

#[derive(Serialize)]
struct RecordResponse {
    #[serde(rename = "RecordId")]
    record_id: String,
}

async fn put_record_batch(
    service: &IngestService,
    body: &[u8],
) -> Result<PutRecordBatchOutput, AwsError> {
    let input: PutRecordBatchInput = awsjson::parse(body)?;
    let name = required(input.delivery_stream_name, "DeliveryStreamName")?;
    let list = required(input.records, "Records")?;
    if list.total == 0 || list.total > MAX_BATCH_RECORDS {
        return Err(invalid(format!(
            "PutRecordBatch takes 1 to {MAX_BATCH_RECORDS} records, got {}",
            list.total
        )));
    }
    let records = decode_records(list.records)?;
    let accepted = service.put_records(&name, records).await?;
    Ok(PutRecordBatchOutput {
        failed_put_count: 0,
        encrypted: false,
        request_responses: accepted
            .into_iter()
            .map(|a| RecordResponse {
                record_id: a.record_id,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_records_list_is_counted_not_held() {
        let entries = vec![r#"{"Data":"e30="}"#; 1_000_000].join(",");
        let body = format!(r#"{{"DeliveryStreamName":"s","Records":[{entries}]}}"#);
        let input: PutRecordBatchInput = awsjson::parse(body.as_bytes()).unwrap();
        let list = input.records.unwrap();
        assert_eq!(list.total, 1_000_000);
        assert_eq!(list.records.len(), MAX_BATCH_RECORDS);
        // Records past the kept ones are still checked to be JSON.
        let body = r#"{"DeliveryStreamName":"s","Records":[{"Data":"e30="},{"Data":"e30="},oops]}"#;
        assert!(awsjson::parse::<PutRecordBatchInput>(body.as_bytes()).is_err());
    }

    #[test]
    fn oversized_records_are_refused_before_decoding() {
        let text = "QUFB".repeat(MAX_RECORD_BYTES / 3 + 2);
        let err = decode_records(vec![RecordInput {
            data: Some(Cow::Owned(text)),
        }])
        .unwrap_err();
        assert_eq!(err.code, "InvalidArgumentException");
        assert!(
            err.message.contains("at most 1024000 bytes"),
            "{}",
            err.message
        );
    }
}
