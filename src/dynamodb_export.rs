//! Writes export folders in DynamoDB's layout (manifests with item counts
//! and MD5 checksums, gzip'd JSON-lines data files): the demo's users
//! exports, and the fixtures of the import's tests and benchmarks.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};

use lakehose_transform::dynamodb::export::ExportKind;

/// An export to write.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// The export id (`<13 digits>-<8 hex>` in DynamoDB).
    pub export_id: String,
    /// The DynamoDB table's ARN.
    pub table_arn: String,
    /// Full or incremental.
    pub kind: ExportKind,
    /// Full: the export time; incremental: the window's end, ms since the
    /// epoch.
    pub as_of_ms: i64,
    /// Incremental: the window's start.
    pub from_ms: Option<i64>,
    /// Items (or change records) per data file.
    pub lines_per_file: usize,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes the export `spec` of `lines` (one `{"Item": ...}` or change record
/// each) under `prefix_dir` (the folder that plays the S3 prefix, with
/// `key_prefix` its key in the bucket) and returns the export's folder,
/// `prefix_dir/AWSDynamoDB/<export-id>`.
pub fn write_export(
    prefix_dir: &Path,
    key_prefix: &str,
    spec: &ExportSpec,
    lines: impl IntoIterator<Item = String>,
) -> std::io::Result<PathBuf> {
    let key_base = if key_prefix.is_empty() {
        format!("AWSDynamoDB/{}", spec.export_id)
    } else {
        format!(
            "{}/AWSDynamoDB/{}",
            key_prefix.trim_end_matches('/'),
            spec.export_id
        )
    };
    let dir = prefix_dir.join("AWSDynamoDB").join(&spec.export_id);
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::write(dir.join("_started"), b"")?;
    let mut manifest = String::new();
    let mut total = 0u64;
    let mut file_no = 0usize;
    let mut lines = lines.into_iter().peekable();
    while lines.peek().is_some() || file_no == 0 {
        let name = format!("{:08x}{:08x}.json.gz", spec.as_of_ms as u32, file_no);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let mut count = 0u64;
        for line in lines.by_ref().take(spec.lines_per_file.max(1)) {
            gz.write_all(line.as_bytes())?;
            gz.write_all(b"\n")?;
            count += 1;
        }
        let bytes = gz.finish()?;
        std::fs::write(dir.join("data").join(&name), &bytes)?;
        use base64::Engine;
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&bytes));
        manifest.push_str(
            &serde_json::json!({
                "itemCount": count,
                "md5Checksum": md5,
                "etag": format!("{:x}", Md5::digest(&bytes)),
                "dataFileS3Key": format!("{key_base}/data/{name}"),
            })
            .to_string(),
        );
        manifest.push('\n');
        total += count;
        file_no += 1;
    }
    std::fs::write(dir.join("manifest-files.json"), &manifest)?;
    let md5_hex = |b: &[u8]| format!("{:x}", Md5::digest(b));
    std::fs::write(dir.join("manifest-files.md5"), md5_hex(manifest.as_bytes()))?;
    let arn = format!("{}/export/{}", spec.table_arn, spec.export_id);
    let mut summary = serde_json::json!({
        "version": "2020-06-30",
        "exportArn": arn,
        "startTime": rfc3339(spec.as_of_ms),
        "endTime": rfc3339(spec.as_of_ms + 60_000),
        "tableArn": spec.table_arn,
        "tableId": "00000000-0000-0000-0000-000000000000",
        "s3Bucket": "export-bucket",
        "s3Prefix": key_prefix,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": null,
        "manifestFilesS3Key": format!("{key_base}/manifest-files.json"),
        "billedSizeBytes": 0,
        "itemCount": total,
        "outputFormat": "DYNAMODB_JSON",
    });
    match spec.kind {
        ExportKind::Full => {
            summary["exportTime"] = rfc3339(spec.as_of_ms).into();
        }
        ExportKind::Incremental => {
            summary["version"] = "2023-08-01".into();
            summary["exportType"] = "INCREMENTAL_EXPORT".into();
            summary["outputView"] = "NEW_AND_OLD_IMAGES".into();
            summary["exportFromTime"] = rfc3339(spec.from_ms.unwrap_or(0)).into();
            summary["exportToTime"] = rfc3339(spec.as_of_ms).into();
        }
    }
    let summary = serde_json::to_vec_pretty(&summary)?;
    std::fs::write(dir.join("manifest-summary.json"), &summary)?;
    std::fs::write(dir.join("manifest-summary.md5"), md5_hex(&summary))?;
    Ok(dir)
}
