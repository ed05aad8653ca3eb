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
use datafusion::error::{DataFusionError, Result};
use lakehose_catalog::Location;
use lakehose_catalog::jsonserde::{JsonSerDe, SerDeOptions};
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
    /// How keys match columns and values convert (the stream's SerDe).
    pub serde: SerDeOptions,
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
pub(crate) type LiveSourceRef = Arc<dyn LiveSource>;

/// Decodes a buffer's records with a table's data schema, by the same
/// rules ingest converts them with. Records that do not convert are left
/// out: ingest sends them to the error prefix too.
pub fn decode(buffer: &LiveBuffer, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
    let serde = JsonSerDe::for_schema(schema, buffer.serde.clone())
        .map_err(|e| DataFusionError::Execution(format!("pending records: {e}")))?;
    let mut rows = Vec::with_capacity(buffer.records.len());
    for record in &buffer.records {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(record)
            && serde.check(&map).is_ok()
        {
            rows.push(map);
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let refs: Vec<&serde_json::Map<String, Value>> = rows.iter().collect();
    let batch = serde
        .decode(&refs)
        .map_err(|e| DataFusionError::Execution(format!("pending records: {e}")))?;
    // The table's schema may spell a type another way (a view, a
    // dictionary) or differ in field names and metadata.
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(Arc::clone(c))
            } else {
                datafusion::arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(RecordBatch::try_new(Arc::clone(schema), columns)?))
}
