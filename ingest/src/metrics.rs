//! Prometheus metrics of the ingester.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The ingester's metrics; cheap to update from any thread.
#[derive(Debug)]
pub struct IngestMetrics {
    /// Records received by the APIs (accepted or not).
    pub records_received: Counter,
    /// Bytes of record data received.
    pub bytes_received: Counter,
    /// Records acknowledged (durable in the write-ahead log).
    pub records_acked: Counter,
    /// Records written to data objects.
    pub records_delivered: Counter,
    /// Records written to the error prefix.
    pub records_failed: Counter,
    /// Requests refused because buffers were full.
    pub requests_throttled: Counter,
    /// Objects written.
    pub objects_written: Counter,
    /// Bytes of objects written.
    pub object_bytes_written: Counter,
    /// Bytes held in buffers, not yet delivered.
    pub buffer_bytes: Gauge,
    /// Seconds from taking a buffer to its objects being durable.
    pub flush_latency: Histogram,
    /// Object writes that failed and were retried.
    pub flush_retries: Counter,
    /// Write-ahead log fsyncs (one per group commit).
    pub wal_fsyncs: Counter,
    /// Write-ahead log entries written.
    pub wal_entries: Counter,
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self {
            records_received: Counter::default(),
            bytes_received: Counter::default(),
            records_acked: Counter::default(),
            records_delivered: Counter::default(),
            records_failed: Counter::default(),
            requests_throttled: Counter::default(),
            objects_written: Counter::default(),
            object_bytes_written: Counter::default(),
            buffer_bytes: Gauge::default(),
            flush_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            flush_retries: Counter::default(),
            wal_fsyncs: Counter::default(),
            wal_entries: Counter::default(),
        }
    }
}

impl IngestMetrics {
    /// Registers every metric under the `lakehose_ingest` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("lakehose_ingest");
        r.register(
            "records_received",
            "Records received by the ingest APIs",
            self.records_received.clone(),
        );
        r.register(
            "bytes_received",
            "Bytes of record data received",
            self.bytes_received.clone(),
        );
        r.register(
            "records_acked",
            "Records acknowledged after the write-ahead log fsync",
            self.records_acked.clone(),
        );
        r.register(
            "records_delivered",
            "Records written to data objects",
            self.records_delivered.clone(),
        );
        r.register(
            "records_failed",
            "Records written to the error prefix",
            self.records_failed.clone(),
        );
        r.register(
            "requests_throttled",
            "Requests refused with ServiceUnavailableException because buffers were full",
            self.requests_throttled.clone(),
        );
        r.register(
            "objects_written",
            "Objects written to storage",
            self.objects_written.clone(),
        );
        r.register(
            "object_bytes_written",
            "Bytes of objects written to storage",
            self.object_bytes_written.clone(),
        );
        r.register(
            "buffer_bytes",
            "Memory accounted to acknowledged records not yet delivered: their bytes plus a fixed overhead per record",
            self.buffer_bytes.clone(),
        );
        r.register(
            "flush_latency_seconds",
            "Time from taking a buffer to its objects being durable",
            self.flush_latency.clone(),
        );
        r.register(
            "flush_retries",
            "Object writes that failed and were retried",
            self.flush_retries.clone(),
        );
        r.register(
            "wal_fsyncs",
            "Write-ahead log fsyncs; each commits a group of entries",
            self.wal_fsyncs.clone(),
        );
        r.register(
            "wal_entries",
            "Write-ahead log entries written (requests, flush intents and completions)",
            self.wal_entries.clone(),
        );
    }
}
