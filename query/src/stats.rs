//! What one query counts as it runs (bytes its scans read),
//! reachable from table scans through the session config.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::catalog::Session;
use datafusion::physical_plan::ExecutionPlan;

use crate::text::ScanCounter;

/// Per-query counters, reachable from table scans through the session
/// config.
#[derive(Debug, Default)]
pub struct QueryStats {
    /// Bytes read by text scans.
    pub text_bytes: ScanCounter,
    /// Set by a scan that workers cannot be sent (see
    /// [`crate::distributed`]): the query then runs on the coordinator.
    pub(crate) coordinator_only: AtomicBool,
}

/// Marks the query planned in `state` as one the coordinator runs alone.
pub(crate) fn keep_on_coordinator(state: &dyn Session) {
    if let Some(stats) = state.config().get_extension::<QueryStats>() {
        stats.coordinator_only.store(true, Ordering::Relaxed);
    }
}

/// The query's text-scan byte counter.
pub(crate) fn scan_counter(state: &dyn Session) -> ScanCounter {
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
