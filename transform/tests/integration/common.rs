//! Helpers shared by the transform crate's tests.

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::sync::Arc;

use lakehose_catalog::{CatalogRef, EmbeddedCatalog, Storage};
use lakehose_query::{EngineConfig, QueryEngine, QueryRequest};

/// A query engine over an empty warehouse in a temporary folder.
pub fn lake() -> (tempfile::TempDir, QueryEngine) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path()).unwrap();
    let catalog: CatalogRef = Arc::new(EmbeddedCatalog::new(storage.clone()));
    let engine = QueryEngine::new(catalog, storage, EngineConfig::default()).unwrap();
    (dir, engine)
}

/// Rows of a query as text, in the order the query gives.
pub async fn rows_of(engine: &QueryEngine, sql: &str) -> Vec<Vec<String>> {
    let out = engine
        .execute(QueryRequest::new(sql, Some("default")))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in &out.batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    rows
}

/// A two-thread runtime, as on the machines lakehose is measured on.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
