//! Delivery stream definitions: the Firehose `ExtendedS3DestinationConfiguration`
//! as given, validated and compiled into a [`DeliveryPlan`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use lakehose_catalog::Location;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jq::MetadataQuery;
use crate::schema::JType;
use crate::template::{PrefixKind, PrefixTemplate, RenderContext};
use crate::wal::{RecordError, WalRecord};

/// Firehose's default buffer size hint (MiB).
pub(crate) const DEFAULT_SIZE_MB: u64 = 5;
/// Firehose's default buffer interval hint (seconds).
pub(crate) const DEFAULT_INTERVAL_S: u64 = 300;
/// Longest `Prefix` and `ErrorOutputPrefix` text (Firehose's limit).
pub(crate) const MAX_PREFIX_LEN: usize = 1024;

/// `BufferingHints`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BufferingHints {
    /// Flush when a buffer holds this many MiB (1–128).
    pub size_in_m_bs: Option<u64>,
    /// Flush when a buffer is this old (0–900 s).
    pub interval_in_seconds: Option<u64>,
}

/// The part of `ExtendedS3DestinationConfiguration` lakehose acts on; every
/// other member is kept and echoed back by `DescribeDeliveryStream`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3Destination {
    /// `RoleARN` (kept, not used: lakehose has no IAM roles).
    #[serde(rename = "RoleARN", skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// `arn:aws:s3:::bucket`.
    #[serde(rename = "BucketARN", skip_serializing_if = "Option::is_none")]
    pub bucket_arn: Option<String>,
    /// Data prefix template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Error prefix template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_output_prefix: Option<String>,
    /// Buffering hints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffering_hints: Option<BufferingHints>,
    /// `UNCOMPRESSED|GZIP|Snappy|...` for JSON output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_format: Option<String>,
    /// Processors (MetadataExtraction, AppendDelimiterToRecord).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_configuration: Option<Value>,
    /// Parquet conversion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_format_conversion_configuration: Option<Value>,
    /// Dynamic partitioning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_partitioning_configuration: Option<Value>,
    /// Overrides the file extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_extension: Option<String>,
    /// Time zone of `!{timestamp}` (only UTC is supported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_time_zone: Option<String>,
    /// Everything else, echoed back.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A persisted delivery stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StreamDefinition {
    /// Name.
    pub name: String,
    /// Internal id; a stream deleted and created again gets a new one.
    pub id: u64,
    /// ARN.
    pub arn: String,
    /// Creation time, epoch ms.
    pub created_ms: i64,
    /// `VersionId`; part of every object name.
    pub version_id: u64,
    /// `DeliveryStreamType`.
    pub stream_type: String,
    /// The destination as configured.
    pub destination: S3Destination,
    /// The running record schema of Parquet output.
    #[serde(default)]
    pub schema: Option<JType>,
}

/// Output format of data objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Parquet with a column compression.
    Parquet(ParquetCompression),
    /// JSON lines, whole-file compression.
    Json(FileCompression),
}

/// Parquet column compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCompression {
    /// zstd (lakehose's default).
    Zstd,
    /// Snappy (Firehose's default).
    Snappy,
    /// gzip.
    Gzip,
    /// None.
    Uncompressed,
}

/// Whole-file compression of JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCompression {
    /// None.
    Uncompressed,
    /// gzip.
    Gzip,
    /// Snappy framing format.
    Snappy,
}

/// A stream's destination, compiled.
#[derive(Debug)]
pub(crate) struct DeliveryPlan {
    /// The bucket.
    pub bucket: Location,
    /// Data prefix.
    pub prefix: PrefixTemplate,
    /// Error prefix.
    pub error_prefix: PrefixTemplate,
    /// Size hint in bytes.
    pub size_bytes: u64,
    /// Interval hint.
    pub interval: Duration,
    /// Output format.
    pub output: OutputFormat,
    /// JQ metadata extraction.
    pub query: Option<MetadataQuery>,
    /// Lowercase JSON keys (OpenX `CaseInsensitive`, default true).
    pub lowercase_keys: bool,
    /// `ConvertDotsInJsonKeysToUnderscores`.
    pub dots_to_underscores: bool,
    /// OpenX `ColumnToJsonKeyMappings`: column name → JSON key.
    pub column_keys: std::collections::BTreeMap<String, String>,
    /// Hive SerDe `TimestampFormats: ["millis"]`: integer timestamps are
    /// epoch milliseconds.
    pub timestamp_millis: bool,
    /// Hive SerDe `TimestampFormats` patterns, compiled.
    pub timestamp_formats: Vec<lakehose_catalog::jsonserde::TimestampFormat>,
    /// File extension of data objects.
    pub extension: String,
    /// The catalog table the stream registers its partitions in
    /// (`SchemaConfiguration`'s DatabaseName and TableName).
    pub catalog_table: Option<(String, String)>,
}

/// What routing one batch remembers between its records: evaluated
/// prefixes already checked to be valid S3 keys, and JQ results (records of
/// one batch mostly share a handful of partitions).
#[derive(Debug, Default)]
pub(crate) struct PrefixCache {
    keys: crate::jq::KeyCache,
    /// No keys (streams without a JQ query).
    empty: Option<crate::jq::Keys>,
    /// Rendered and validated prefixes by (keys, arrival time).
    rendered: Vec<(crate::jq::Keys, i64, Result<String, RecordError>)>,
}

/// Most rendered prefixes a [`PrefixCache`] keeps.
const RENDERED_ENTRIES: usize = 256;

/// Most `ColumnToJsonKeyMappings` entries a stream may have.
const MAX_KEY_MAPPINGS: usize = 10_000;

impl DeliveryPlan {
    /// How the stream's JSON SerDe matches keys and reads timestamps when
    /// it converts records to a catalog table's types.
    pub(crate) fn serde_options(&self) -> lakehose_catalog::jsonserde::SerDeOptions {
        lakehose_catalog::jsonserde::SerDeOptions {
            case_insensitive: self.lowercase_keys,
            dots_to_underscores: self.dots_to_underscores,
            column_keys: self.column_keys.clone(),
            timestamp_millis: self.timestamp_millis,
            timestamp_formats: self.timestamp_formats.clone(),
        }
    }
}

/// A configuration error, reported as `InvalidArgumentException`.
pub(crate) type ConfigError = String;

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

impl DeliveryPlan {
    /// Validates and compiles the destination of a stream being created:
    /// besides what [`compile`](Self::compile) checks, both prefixes must
    /// give valid object keys, and a JQ query must finish on an empty
    /// record within its bounds.
    pub fn create(dest: &S3Destination) -> Result<Self, ConfigError> {
        let plan = Self::compile_with(dest, true)?;
        plan.check_prefix("Prefix", dest.prefix.as_deref(), &plan.prefix)?;
        plan.check_prefix(
            "ErrorOutputPrefix",
            dest.error_output_prefix.as_deref(),
            &plan.error_prefix,
        )?;
        Ok(plan)
    }

    /// Compiles a stored destination. Checks added since it was stored are
    /// not applied, so its records keep flowing: a record its prefix or
    /// query fails on goes to the error prefix, and an error prefix that is
    /// not a valid key falls back to `<error-output-type>/`.
    pub fn compile(dest: &S3Destination) -> Result<Self, ConfigError> {
        Self::compile_with(dest, false)
    }

    /// Checks that `text` (the `field` as given) renders to a valid object
    /// key: one with no empty, `.` or `..` segment, no leading `/`, no
    /// control character or backslash, at most 512 characters.
    fn check_prefix(
        &self,
        field: &str,
        text: Option<&str>,
        template: &PrefixTemplate,
    ) -> Result<(), ConfigError> {
        let text = text.unwrap_or("");
        if text.len() > MAX_PREFIX_LEN {
            return Err(format!(
                "{field} is {} characters long; at most {MAX_PREFIX_LEN} are allowed",
                text.len()
            ));
        }
        if let Some(c) = text.chars().find(|c| c.is_control() || *c == '\\') {
            return Err(format!(
                "{field} {text:?} contains {c:?}; object keys may not contain control characters or backslashes"
            ));
        }
        // Partition keys are checked per record; a sample value stands in.
        let sample = |_: &str| Some("key".to_string());
        let time = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 31, 23, 59, 59)
            .single()
            .unwrap_or_default();
        for output_type in ERROR_OUTPUT_TYPES {
            let rendered = template
                .render(&RenderContext {
                    time,
                    keys: &sample,
                    error_output_type: Some(output_type),
                    random_seed: 0,
                })
                .map_err(|e| format!("{field} {text:?}: {e}"))?;
            self.bucket.join(&rendered).map_err(|e| {
                format!("{field} {text:?} gives object keys such as {rendered:?}, which is not valid: {e}")
            })?;
        }
        Ok(())
    }

    fn compile_with(dest: &S3Destination, strict: bool) -> Result<Self, ConfigError> {
        let bucket_arn = dest
            .bucket_arn
            .as_deref()
            .ok_or("ExtendedS3DestinationConfiguration.BucketARN is required")?;
        let bucket =
            Location::from_bucket_arn(bucket_arn).map_err(|e| format!("BucketARN: {e}"))?;

        let hints = dest.buffering_hints.unwrap_or(BufferingHints {
            size_in_m_bs: None,
            interval_in_seconds: None,
        });
        let size_mb = hints.size_in_m_bs.unwrap_or(DEFAULT_SIZE_MB);
        if !(1..=128).contains(&size_mb) {
            return Err(format!(
                "BufferingHints.SizeInMBs must be between 1 and 128, got {size_mb}"
            ));
        }
        let interval_s = hints.interval_in_seconds.unwrap_or(DEFAULT_INTERVAL_S);
        if interval_s > 900 {
            return Err(format!(
                "BufferingHints.IntervalInSeconds must be between 0 and 900, got {interval_s}"
            ));
        }

        if let Some(tz) = &dest.custom_time_zone
            && !matches!(tz.as_str(), "" | "UTC" | "Etc/UTC")
        {
            return Err(format!(
                "CustomTimeZone {tz:?} is not supported; lakehose renders !{{timestamp}} in UTC"
            ));
        }

        // Processors.
        let mut query = None;
        if let Some(pc) = &dest.processing_configuration
            && pc.get("Enabled").and_then(Value::as_bool).unwrap_or(true)
        {
            for p in pc
                .get("Processors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ty = p.get("Type").and_then(Value::as_str).unwrap_or("");
                let params: Vec<(&str, &str)> = p
                    .get("Parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|kv| {
                        Some((
                            kv.get("ParameterName")?.as_str()?,
                            kv.get("ParameterValue")?.as_str()?,
                        ))
                    })
                    .collect();
                match ty {
                    "MetadataExtraction" => {
                        let text = params
                            .iter()
                            .find(|(k, _)| *k == "MetadataExtractionQuery")
                            .map(|(_, v)| *v)
                            .ok_or("the MetadataExtraction processor needs a MetadataExtractionQuery parameter")?;
                        if let Some((_, engine)) =
                            params.iter().find(|(k, _)| *k == "JsonParsingEngine")
                            && *engine != "JQ-1.6"
                        {
                            return Err(format!(
                                "JsonParsingEngine {engine:?} is not supported (expected JQ-1.6)"
                            ));
                        }
                        query = Some(if strict {
                            MetadataQuery::compile(text)?
                        } else {
                            MetadataQuery::load(text)?
                        });
                    }
                    // lakehose always ends each record with a newline.
                    "AppendDelimiterToRecord" => {}
                    other => {
                        return Err(format!(
                            "processor type {other:?} is not supported (supported: MetadataExtraction, AppendDelimiterToRecord)"
                        ));
                    }
                }
            }
        }

        let dynamic = dest
            .dynamic_partitioning_configuration
            .as_ref()
            .and_then(|d| d.get("Enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(false);

        let prefix_text = dest.prefix.as_deref().unwrap_or("");
        let mut prefix = PrefixTemplate::parse(prefix_text, PrefixKind::Data)
            .map_err(|e| format!("invalid Prefix: {e}"))?;
        let keys: Vec<String> = prefix.query_keys().map(str::to_string).collect();
        if !keys.is_empty() {
            if !dynamic {
                return Err(
                    "Prefix uses !{partitionKeyFromQuery:...}, which needs DynamicPartitioningConfiguration.Enabled = true".into(),
                );
            }
            if query.is_none() {
                return Err(
                    "Prefix uses !{partitionKeyFromQuery:...}, which needs a MetadataExtraction processor with a MetadataExtractionQuery".into(),
                );
            }
        }
        if dynamic {
            if dest.prefix.as_deref().unwrap_or("").is_empty() {
                return Err("dynamic partitioning needs a Prefix".into());
            }
            if dest.error_output_prefix.as_deref().unwrap_or("").is_empty() {
                return Err("dynamic partitioning needs an ErrorOutputPrefix".into());
            }
        } else if !prefix.has_timestamp() {
            prefix = prefix.with_default_time_suffix();
        }

        let error_text = dest.error_output_prefix.as_deref().unwrap_or("");
        if error_text.is_empty()
            && PrefixTemplate::parse(prefix_text, PrefixKind::Data)
                .is_ok_and(|p| p.has_expressions())
        {
            return Err("ErrorOutputPrefix is required when Prefix uses expressions".into());
        }
        let error_prefix = if error_text.is_empty() {
            PrefixTemplate::parse(
                "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH/}",
                PrefixKind::Error,
            )?
        } else {
            PrefixTemplate::parse(error_text, PrefixKind::Error)
                .map_err(|e| format!("invalid ErrorOutputPrefix: {e}"))?
        };

        // Output format.
        let compression = dest.compression_format.as_deref().unwrap_or("UNCOMPRESSED");
        let conversion = dest
            .data_format_conversion_configuration
            .as_ref()
            .filter(|c| c.get("Enabled").and_then(Value::as_bool).unwrap_or(true));
        let mut lowercase_keys = true;
        let mut dots_to_underscores = false;
        let mut column_keys = std::collections::BTreeMap::new();
        let mut timestamp_millis = false;
        let mut timestamp_formats = Vec::new();
        let (output, default_ext) = if let Some(conv) = conversion {
            if compression != "UNCOMPRESSED" {
                return Err(format!(
                    "CompressionFormat must be UNCOMPRESSED when DataFormatConversionConfiguration is enabled (got {compression}); set ParquetSerDe.Compression instead"
                ));
            }
            if get(
                conv,
                &["OutputFormatConfiguration", "Serializer", "OrcSerDe"],
            )
            .is_some()
            {
                return Err("OrcSerDe output is not supported; use ParquetSerDe".into());
            }
            let serde = get(
                conv,
                &["OutputFormatConfiguration", "Serializer", "ParquetSerDe"],
            );
            let codec = match serde
                .and_then(|s| s.get("Compression"))
                .and_then(Value::as_str)
            {
                None | Some("ZSTD") => ParquetCompression::Zstd,
                Some("SNAPPY") => ParquetCompression::Snappy,
                Some("GZIP") => ParquetCompression::Gzip,
                Some("UNCOMPRESSED") => ParquetCompression::Uncompressed,
                Some(other) => {
                    return Err(format!(
                        "ParquetSerDe.Compression {other:?} is not supported (ZSTD, SNAPPY, GZIP or UNCOMPRESSED)"
                    ));
                }
            };
            if let Some(hive) = get(
                conv,
                &["InputFormatConfiguration", "Deserializer", "HiveJsonSerDe"],
            ) {
                lowercase_keys = false;
                for format in hive
                    .get("TimestampFormats")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match format.as_str() {
                        Some("millis") => timestamp_millis = true,
                        Some(pattern) => timestamp_formats.push(
                            lakehose_catalog::jsonserde::joda_pattern(pattern)
                                .map_err(|e| format!("HiveJsonSerDe.TimestampFormats: {e}"))?,
                        ),
                        None => {
                            return Err(format!(
                                "HiveJsonSerDe.TimestampFormats holds {format}; it must list Joda-Time patterns or \"millis\""
                            ));
                        }
                    }
                }
            }
            if let Some(openx) = get(
                conv,
                &["InputFormatConfiguration", "Deserializer", "OpenXJsonSerDe"],
            ) {
                lowercase_keys = openx
                    .get("CaseInsensitive")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                if let Some(mappings) = openx.get("ColumnToJsonKeyMappings") {
                    let Some(mappings) = mappings.as_object() else {
                        return Err(
                            "OpenXJsonSerDe.ColumnToJsonKeyMappings must map column names to JSON keys".into(),
                        );
                    };
                    if mappings.len() > MAX_KEY_MAPPINGS {
                        return Err(format!(
                            "OpenXJsonSerDe.ColumnToJsonKeyMappings has {} entries; at most {MAX_KEY_MAPPINGS} are allowed",
                            mappings.len()
                        ));
                    }
                    for (column, key) in mappings {
                        let Some(key) = key.as_str().filter(|k| !k.is_empty() && k.len() <= 1024)
                        else {
                            return Err(format!(
                                "OpenXJsonSerDe.ColumnToJsonKeyMappings: column {column:?} must map to a JSON key (text of 1–1024 bytes)"
                            ));
                        };
                        column_keys.insert(column.to_lowercase(), key.to_string());
                    }
                }
                dots_to_underscores = openx
                    .get("ConvertDotsInJsonKeysToUnderscores")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
            }
            (OutputFormat::Parquet(codec), ".parquet")
        } else {
            match compression {
                "UNCOMPRESSED" => (OutputFormat::Json(FileCompression::Uncompressed), ""),
                "GZIP" => (OutputFormat::Json(FileCompression::Gzip), ".gz"),
                "Snappy" => (OutputFormat::Json(FileCompression::Snappy), ".snappy"),
                other => {
                    return Err(format!(
                        "CompressionFormat {other:?} is not supported (UNCOMPRESSED, GZIP or Snappy)"
                    ));
                }
            }
        };
        let catalog_table = conversion
            .and_then(|c| c.get("SchemaConfiguration"))
            .and_then(|sc| {
                let db = sc.get("DatabaseName")?.as_str()?.trim();
                let table = sc.get("TableName")?.as_str()?.trim();
                (!db.is_empty() && !table.is_empty())
                    .then(|| (db.to_lowercase(), table.to_lowercase()))
            });
        let extension = match &dest.file_extension {
            Some(ext) if !ext.is_empty() => {
                let valid = ext.starts_with('.')
                    && ext.len() <= 128
                    && ext[1..].chars().all(|c| {
                        c.is_ascii_digit() || c.is_ascii_lowercase() || "!-_.*'()".contains(c)
                    });
                if !valid {
                    return Err(format!(
                        "FileExtension {ext:?} must start with '.' and use only 0-9 a-z ! - _ . * ' ( )"
                    ));
                }
                ext.clone()
            }
            _ => default_ext.to_string(),
        };

        Ok(Self {
            bucket,
            prefix,
            error_prefix,
            size_bytes: size_mb * 1024 * 1024,
            interval: Duration::from_secs(interval_s),
            output,
            query,
            lowercase_keys,
            dots_to_underscores,
            column_keys,
            timestamp_millis,
            timestamp_formats,
            extension,
            catalog_table,
        })
    }

    /// Whether records must be JSON (Parquet output or JQ partitioning).
    pub(crate) fn needs_json(&self) -> bool {
        self.query.is_some() || matches!(self.output, OutputFormat::Parquet(_))
    }

    /// Routes one record: evaluates its prefix, or the error prefix with the
    /// reason it cannot be delivered as data.
    pub fn route(
        &self,
        data: bytes::Bytes,
        arrival: DateTime<Utc>,
        seed: u64,
        cache: &mut PrefixCache,
    ) -> WalRecord {
        match self.data_prefix(&data, arrival, seed, cache) {
            Ok(prefix) => WalRecord {
                prefix,
                error: None,
                data,
            },
            Err(error) => self.error_record(data, arrival, seed, error),
        }
    }

    /// A record that goes to the error prefix.
    pub(crate) fn error_record(
        &self,
        data: bytes::Bytes,
        arrival: DateTime<Utc>,
        seed: u64,
        error: RecordError,
    ) -> WalRecord {
        WalRecord {
            prefix: self.render_error_prefix(&error.output_type, arrival, seed),
            error: Some(error),
            data,
        }
    }

    /// Renders the error prefix for an error output type. One that is not
    /// a valid object key (a stream stored before prefixes were checked)
    /// gives [`fallback_error_prefix`], so failed records still land.
    pub(crate) fn render_error_prefix(
        &self,
        output_type: &str,
        time: DateTime<Utc>,
        seed: u64,
    ) -> String {
        let no_keys = |_: &str| None;
        match self.error_prefix.render(&RenderContext {
            time,
            keys: &no_keys,
            error_output_type: Some(output_type),
            random_seed: seed,
        }) {
            Ok(prefix) if self.bucket.join(&prefix).is_ok() => prefix,
            Ok(prefix) => {
                tracing::error!(prefix = %prefix, "The ErrorOutputPrefix gives an invalid object key; failed records go to the fallback folder.");
                fallback_error_prefix(output_type)
            }
            Err(_) => fallback_error_prefix(output_type),
        }
    }

    fn data_prefix(
        &self,
        data: &[u8],
        arrival: DateTime<Utc>,
        seed: u64,
        cache: &mut PrefixCache,
    ) -> Result<String, RecordError> {
        let keys = match &self.query {
            Some(q) => Some(
                q.extract_cached(
                    data,
                    &mut cache.keys,
                    matches!(self.output, OutputFormat::Parquet(_)),
                )
                .map_err(|e| RecordError {
                    output_type: "processing-failed".into(),
                    code: match e {
                        crate::jq::ExtractError::InvalidJson(_) => "Invalid.JSON".into(),
                        crate::jq::ExtractError::TooDeep => "Invalid.JSONNestingTooDeep".into(),
                        crate::jq::ExtractError::Bound(_) => {
                            "DynamicPartitioning.MetadataExtractionLimitExceeded".into()
                        }
                        _ => "DynamicPartitioning.MetadataExtractionFailed".into(),
                    },
                    message: e.to_string(),
                })?,
            ),
            None => None,
        };
        if self.query.is_none() && self.needs_json() {
            check_json_object(data)?;
        }
        let keys = match keys {
            Some(keys) => keys,
            None => cache.empty.get_or_insert_with(Default::default).clone(),
        };
        // Records of a batch share their arrival time, and mostly their
        // keys: render and validate each distinct prefix once.
        let reusable = !self.prefix.has_random_string();
        let arrival_ms = arrival.timestamp_millis();
        if reusable
            && let Some((_, _, hit)) = cache
                .rendered
                .iter()
                .find(|(k, t, _)| *t == arrival_ms && std::sync::Arc::ptr_eq(k, &keys))
        {
            return hit.clone();
        }
        let result = self.render_prefix(&keys, arrival, seed);
        if reusable {
            if cache.rendered.len() >= RENDERED_ENTRIES {
                cache.rendered.clear();
            }
            cache.rendered.push((keys, arrival_ms, result.clone()));
        }
        result
    }

    fn render_prefix(
        &self,
        keys: &crate::jq::Keys,
        arrival: DateTime<Utc>,
        seed: u64,
    ) -> Result<String, RecordError> {
        let lookup = |k: &str| keys.get(k).cloned();
        let prefix = self
            .prefix
            .render(&RenderContext {
                time: arrival,
                keys: &lookup,
                error_output_type: None,
                random_seed: seed,
            })
            .map_err(|e| RecordError {
                output_type: "processing-failed".into(),
                code: "DynamicPartitioning.MissingPartitionKey".into(),
                message: e.to_string(),
            })?;
        self.bucket.join(&prefix).map_err(|e| RecordError {
            output_type: "processing-failed".into(),
            code: "DynamicPartitioning.InvalidPrefix".into(),
            message: format!("the evaluated prefix {prefix:?} is not a valid S3 key: {e}"),
        })?;
        Ok(prefix)
    }
}

/// The error output types lakehose writes (`!{firehose:error-output-type}`).
pub(crate) const ERROR_OUTPUT_TYPES: [&str; 2] = ["processing-failed", "format-conversion-failed"];

/// Where failed records go when the error prefix cannot be used.
pub(crate) fn fallback_error_prefix(output_type: &str) -> String {
    format!("{output_type}/")
}

/// Checks that a record is one JSON object (what Parquet rows need).
fn check_json_object(data: &[u8]) -> Result<(), RecordError> {
    let fail = |code: &str, message: String| RecordError {
        output_type: "format-conversion-failed".into(),
        code: code.into(),
        message,
    };
    let first = data.iter().find(|c| !c.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(fail(
            "DataFormatConversion.NotAnObject",
            "record is not a JSON object".into(),
        ));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(data)
        .map(|_| ())
        .map_err(|e| fail("Invalid.JSON", format!("record is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn dest(v: Value) -> S3Destination {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn compiles_a_dynamic_parquet_stream() {
        let d = dest(json!({
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::lake",
            "Prefix": "logs/service=!{partitionKeyFromQuery:service}/dt=!{timestamp:yyyy-MM-dd}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
            "DynamicPartitioningConfiguration": {"Enabled": true},
            "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "MetadataExtraction", "Parameters": [
                {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{service: .service}"},
                {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]},
            "DataFormatConversionConfiguration": {"Enabled": true,
                "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}}},
            "CloudWatchLoggingOptions": {"Enabled": false}
        }));
        assert!(d.other.contains_key("CloudWatchLoggingOptions"));
        let plan = DeliveryPlan::compile(&d).unwrap();
        assert_eq!(
            plan.output,
            OutputFormat::Parquet(ParquetCompression::Snappy)
        );
        assert_eq!(plan.extension, ".parquet");
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let ok = plan.route(
            bytes::Bytes::from_static(br#"{"service":"web"}"#),
            t,
            1,
            &mut PrefixCache::default(),
        );
        assert_eq!(ok.prefix, "logs/service=web/dt=2026-01-02/");
        assert!(ok.error.is_none());
        let missing = plan.route(
            bytes::Bytes::from_static(br#"{"other":1}"#),
            t,
            1,
            &mut PrefixCache::default(),
        );
        assert_eq!(missing.prefix, "errors/processing-failed/");
        assert_eq!(
            missing.error.unwrap().code,
            "DynamicPartitioning.MissingPartitionKey"
        );
        let bad = plan.route(
            bytes::Bytes::from_static(b"{oops"),
            t,
            1,
            &mut PrefixCache::default(),
        );
        assert_eq!(bad.error.unwrap().code, "Invalid.JSON");
    }

    #[test]
    fn default_prefix_and_json_output() {
        let plan = DeliveryPlan::compile(&dest(json!({
            "BucketARN": "arn:aws:s3:::lake", "Prefix": "raw/", "CompressionFormat": "GZIP"
        })))
        .unwrap();
        assert_eq!(plan.output, OutputFormat::Json(FileCompression::Gzip));
        assert_eq!(plan.extension, ".gz");
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        // Raw streams accept any bytes.
        let r = plan.route(
            bytes::Bytes::from_static(b"not json at all"),
            t,
            1,
            &mut PrefixCache::default(),
        );
        assert_eq!(r.prefix, "raw/2026/01/02/03/");
        assert!(r.error.is_none());
    }

    #[test]
    fn zstd_is_the_default_and_record_fields_can_partition() {
        let plan = DeliveryPlan::compile(&dest(json!({
            "BucketARN": "arn:aws:s3:::lake",
            "Prefix": "events/dt=!{partitionKeyFromQuery:day}/hour=!{partitionKeyFromQuery:hour}/",
            "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
            "DynamicPartitioningConfiguration": {"Enabled": true},
            "ProcessingConfiguration": {"Processors": [{"Type": "MetadataExtraction", "Parameters": [
                {"ParameterName": "MetadataExtractionQuery",
                 "ParameterValue": "{day: .ts[0:10], hour: .ts[11:13]}"}]}]},
            "DataFormatConversionConfiguration": {
                "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}}
        })))
        .unwrap();
        assert_eq!(plan.output, OutputFormat::Parquet(ParquetCompression::Zstd));
        // The record's own time, not its arrival time, picks the partition.
        let arrival = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let r = plan.route(
            bytes::Bytes::from_static(br#"{"ts": "2026-11-23T08:15:00Z"}"#),
            arrival,
            0,
            &mut PrefixCache::default(),
        );
        assert_eq!(r.prefix, "events/dt=2026-11-23/hour=08/");
    }

    #[test]
    fn prefixes_must_give_valid_keys() {
        let base = json!({"BucketARN": "arn:aws:s3:::lake"});
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            dest(v)
        };
        for (extra, field) in [
            (
                json!({"ErrorOutputPrefix": "errors//"}),
                "ErrorOutputPrefix",
            ),
            (
                json!({"ErrorOutputPrefix": "/errors/"}),
                "ErrorOutputPrefix",
            ),
            (
                json!({"ErrorOutputPrefix": "errors/../x/"}),
                "ErrorOutputPrefix",
            ),
            (
                json!({"ErrorOutputPrefix": "./errors/"}),
                "ErrorOutputPrefix",
            ),
            (
                json!({"ErrorOutputPrefix": "err\\ors/"}),
                "ErrorOutputPrefix",
            ),
            (
                json!({"ErrorOutputPrefix": "err\u{1}ors/"}),
                "ErrorOutputPrefix",
            ),
            (
                json!({"ErrorOutputPrefix": "e/".repeat(600)}),
                "ErrorOutputPrefix",
            ),
            (
                json!({"ErrorOutputPrefix": "errors/!{firehose:error-output-type}//"}),
                "ErrorOutputPrefix",
            ),
            (json!({"Prefix": "logs//"}), "Prefix"),
            (json!({"Prefix": "/logs/"}), "Prefix"),
            (json!({"Prefix": "logs/../../etc/"}), "Prefix"),
            (
                json!({"Prefix": "logs/!{timestamp:'/'}x/", "ErrorOutputPrefix": "e/"}),
                "Prefix",
            ),
            (
                json!({"Prefix": "l/".repeat(300), "ErrorOutputPrefix": "e/"}),
                "Prefix",
            ),
        ] {
            let d = with(extra.clone());
            let err = DeliveryPlan::create(&d).unwrap_err();
            assert!(err.starts_with(field), "{extra}: {err}");
            // A stream stored with such a prefix still loads.
            let plan = DeliveryPlan::compile(&d).unwrap_or_else(|e| panic!("{extra}: {e}"));
            let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
            let rendered = plan.render_error_prefix("processing-failed", t, 1);
            assert!(plan.bucket.join(&rendered).is_ok(), "{extra}: {rendered}");
        }
        // Its failed records land in the fallback folder.
        let plan = DeliveryPlan::compile(&with(json!({"ErrorOutputPrefix": "errors//"}))).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            plan.render_error_prefix("format-conversion-failed", t, 1),
            "format-conversion-failed/"
        );
        // Valid ones pass.
        for extra in [
            json!({"Prefix": "logs/", "ErrorOutputPrefix": "errors/"}),
            json!({"Prefix": "a.b/c..d/", "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/!{timestamp:yyyy}/"}),
            json!({}),
        ] {
            DeliveryPlan::create(&with(extra.clone())).unwrap_or_else(|e| panic!("{extra}: {e}"));
        }
    }

    #[test]
    fn hostile_records_and_queries_go_to_the_error_prefix() {
        let stream = |query: &str| {
            dest(json!({
                "BucketARN": "arn:aws:s3:::lake",
                "Prefix": "logs/service=!{partitionKeyFromQuery:service}/",
                "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
                "DynamicPartitioningConfiguration": {"Enabled": true},
                "ProcessingConfiguration": {"Processors": [{"Type": "MetadataExtraction", "Parameters": [
                    {"ParameterName": "MetadataExtractionQuery", "ParameterValue": query}]}]}
            }))
        };
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let plan = DeliveryPlan::create(&stream("{service: .service}")).unwrap();
        let mut deep = br#"{"service":"#.to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.push(b'}');
        let r = plan.route(deep.into(), t, 1, &mut PrefixCache::default());
        assert_eq!(r.prefix, "errors/processing-failed/");
        let e = r.error.unwrap();
        assert_eq!(e.code, "Invalid.JSONNestingTooDeep");
        assert!(e.message.contains("128 levels"), "{}", e.message);

        let endless = "{service: (def f: f; f)}";
        let err = DeliveryPlan::create(&stream(endless)).unwrap_err();
        assert!(err.contains("does not finish"), "{err}");
        let plan = DeliveryPlan::compile(&stream(endless)).unwrap();
        let r = crate::jq::pool::run_blocking(move || {
            plan.route(
                bytes::Bytes::from_static(br#"{"service":"web"}"#),
                t,
                1,
                &mut PrefixCache::default(),
            )
        })
        .unwrap();
        assert_eq!(r.prefix, "errors/processing-failed/");
        assert_eq!(
            r.error.unwrap().code,
            "DynamicPartitioning.MetadataExtractionLimitExceeded"
        );
    }

    #[test]
    fn rejects_bad_configs() {
        for (v, needle) in [
            (json!({}), "BucketARN is required"),
            (json!({"BucketARN": "nope"}), "invalid bucket ARN"),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "BufferingHints": {"SizeInMBs": 0, "IntervalInSeconds": 60}}),
                "SizeInMBs",
            ),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 901}}),
                "IntervalInSeconds",
            ),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "Prefix": "a/!{partitionKeyFromQuery:x}/", "ErrorOutputPrefix": "e/!{firehose:error-output-type}/"}),
                "DynamicPartitioningConfiguration",
            ),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "Prefix": "a/!{timestamp:yyyy}/"}),
                "ErrorOutputPrefix is required",
            ),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "CompressionFormat": "ZIP"}),
                "not supported",
            ),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "CompressionFormat": "GZIP", "DataFormatConversionConfiguration": {"OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {}}}}}),
                "must be UNCOMPRESSED",
            ),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "ProcessingConfiguration": {"Processors": [{"Type": "Lambda"}]}}),
                "not supported",
            ),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "DynamicPartitioningConfiguration": {"Enabled": true}, "Prefix": "x/"}),
                "ErrorOutputPrefix",
            ),
            (
                json!({"BucketARN": "arn:aws:s3:::lake", "CustomTimeZone": "Europe/Paris"}),
                "CustomTimeZone",
            ),
        ] {
            let err = DeliveryPlan::compile(&dest(v.clone())).unwrap_err();
            assert!(err.contains(needle), "{v}: {err}");
        }
    }
}
