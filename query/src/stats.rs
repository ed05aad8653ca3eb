//! What one query counts as it runs (bytes its scans planned and read),
//! reachable from table scans through the session config.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::catalog::Session;
use datafusion::physical_plan::ExecutionPlan;

use crate::text::ScanCounter;

/// Per-query counters, reachable from table scans through the session
/// config.
#[derive(Debug, Default)]
pub struct QueryStats {
    /// Bytes of the files the scans planned to read.
    pub planned_bytes: AtomicU64,
    /// Bytes read by text scans.
    pub text_bytes: ScanCounter,
}

/// Adds planned file sizes to the query's counters.
pub fn record_planned_files(state: &dyn Session, sizes: impl Iterator<Item = u64>) {
    if let Some(stats) = state.config().get_extension::<QueryStats>() {
        stats
            .planned_bytes
            .fetch_add(sizes.sum(), Ordering::Relaxed);
    }
}

/// The query's text-scan byte counter.
pub fn scan_counter(state: &dyn Session) -> ScanCounter {
    state
        .config()
        .get_extension::<QueryStats>()
        .map(|s| Arc::clone(&s.text_bytes))
        .unwrap_or_default()
}

/// Bytes the Parquet scans of an executed plan read.
pub fn scanned_bytes(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let own = plan
        .metrics()
        .and_then(|m| m.sum_by_name("bytes_scanned"))
        .map(|v| v.as_usize() as u64)
        .unwrap_or(0);
    own + plan
        .children()
        .iter()
        .map(|c| scanned_bytes(c))
        .sum::<u64>()
}
