//! # lakehose-ingest
//!
//! Containers ship log records over HTTP; this crate makes them durable and
//! lands them as partitioned Parquet (or JSON lines) on object storage.
//!
//! ```text
//! Firehose API / NDJSON ──▶ route (JQ keys, prefix template) ──▶ WAL fsync ──▶ ack
//!                                                                   │
//!                     buffers per (stream, evaluated prefix) ◀──────┘
//!                                   │ size / interval / shutdown
//!                                   ▼
//!                   Parquet / JSON-lines objects (+ error prefix) in buckets
//! ```
//!
//! - [`firehose`]: the Firehose JSON 1.1 API handlers.
//! - [`ndjson`]: the plain `POST /v1/streams/{name}/records` endpoint.
//! - [`service`]: streams, admission, buffering, flushing, crash recovery.
//! - [`wal`]: the group-committed write-ahead log.
//! - [`config`], [`template`], [`jq`]: stream definitions, prefix templates,
//!   JQ partition keys.
//! - [`schema`], [`encode`]: schema inference and object encoding.

pub mod config;
mod encode;
mod error;
pub mod firehose;
pub mod jq;
mod metrics;
pub mod ndjson;
mod register;
mod schema;
pub mod service;
pub mod template;
mod wal;

pub use error::{Error, Result};
pub use service::{IngestConfig, IngestService, PendingBuffer};

/// The NDJSON route, ready to merge into the server's router.
pub fn router(service: IngestService) -> axum::Router {
    axum::Router::new()
        .route(
            "/v1/streams/{name}/records",
            axum::routing::post(ndjson::put_lines),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            service.clone(),
            ndjson::check_room,
        ))
        .with_state(service)
}
