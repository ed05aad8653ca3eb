//! Rows acknowledged by ingest but not yet written to objects.
//!
//! Ingest keeps records in memory (durable in its write-ahead log) until a
//! buffer flushes. The engine asks a [`LiveSource`] for them when it scans a
//! table and adds them to what the files hold, so a record is queryable as
//! soon as it is acknowledged — by the table a stream registers into, and by
//! any other table whose location covers the stream's output in a format
//! whose rows come from the records (Parquet, or JSON lines read with a JSON
//! SerDe). The snapshot is taken before the files are
//! listed; a buffer whose object already shows up in the listing is
//! skipped (the object holds all of its records), so no row is counted
//! twice.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::error::{DataFusionError, Result};
use lakehose_catalog::Location;
use serde_json::Value;

/// Records of one ingest buffer.
#[derive(Debug, Clone)]
pub struct LiveBuffer {
    /// The folder its object will be written to.
    pub folder: Location,
    /// How that object's name will end.
    pub object_suffix: String,
    /// The records (JSON objects).
    pub records: Vec<Bytes>,
    /// Lowercase keys before matching columns.
    pub lowercase_keys: bool,
    /// Turn dots in keys into underscores.
    pub dots_to_underscores: bool,
}

/// Where pending records come from (implemented over the ingest service by
/// the binary).
pub trait LiveSource: Send + Sync + std::fmt::Debug {
    /// The pending buffers of streams registering into `database.table`.
    fn pending(&self, database: &str, table: &str) -> Vec<LiveBuffer>;

    /// The pending buffers of every stream writing objects under
    /// `location` in a table's format (Parquet, or uncompressed JSON
    /// lines), so any table over a stream's output sees its records.
    fn pending_under(&self, _location: &Location, _parquet: bool) -> Vec<LiveBuffer> {
        Vec::new()
    }
}

/// A shared live source.
pub type LiveSourceRef = Arc<dyn LiveSource>;

fn normalize(value: &mut Value, lowercase: bool, dots: bool) {
    match value {
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                normalize(&mut v, lowercase, dots);
                let mut k = if lowercase { k.to_lowercase() } else { k };
                if dots {
                    k = k.replace('.', "_");
                }
                map.insert(k, v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| normalize(v, lowercase, dots)),
        _ => {}
    }
}

/// Decodes a buffer's records with a table's data schema. Records that do
/// not convert are left out: ingest sends them to the error prefix too.
pub fn decode(buffer: &LiveBuffer, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_coerce_primitive(true)
        .with_strict_mode(false)
        .build_decoder()?;
    let mut rows = 0;
    for record in &buffer.records {
        let Ok(mut value) = serde_json::from_slice::<Value>(record) else {
            continue;
        };
        if !value.is_object() {
            continue;
        }
        normalize(
            &mut value,
            buffer.lowercase_keys,
            buffer.dots_to_underscores,
        );
        if decoder.serialize(std::slice::from_ref(&value)).is_ok() {
            rows += 1;
        }
    }
    if rows == 0 {
        return Ok(None);
    }
    decoder
        .flush()
        .map_err(|e| DataFusionError::Execution(format!("pending records: {e}")))
}
