//! lakehose's extensions of DataFusion's planner, each a session setting
//! that can be turned off on its own (`lakehose.<name> = false`), so a
//! wrong plan can be worked around and each one's gain measured:
//!
//! - `lakehose.share_subplans` ([`share`]): a join or aggregation a query
//!   computes twice (a view or CTE read twice, as TPC-H Q15's `revenue0`;
//!   a subquery over the same joins as its outer query, as Q11's) is
//!   computed once and read at both places.
//! - `lakehose.runtime_filters` ([`runtime_filter`]): the filters a hash
//!   join derives from its build side at run time drop the probe side's
//!   rows right above its Parquet scan.
//! - `lakehose.filter_order` ([`filter_order`]): a filter's conditions
//!   are evaluated cheapest first.
//!
//! The rewrites that must see the plan after every one of DataFusion's
//! logical rules run in [`LakehosePlanner`], between the logical optimizer
//! and physical planning.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::DataFusionError;
use datafusion::config::ConfigExtension;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};

pub(crate) mod filter_order;
pub(crate) mod runtime_filter;
pub(crate) mod share;

datafusion::common::extensions_options! {
    /// lakehose's session settings (`lakehose.*`).
    pub struct LakehoseOptions {
        /// Compute a join or aggregation that a query holds twice once,
        /// and read its result at both places (held in memory within the
        /// query's memory limit, spilled to disk past it).
        pub share_subplans: bool, default = true
        /// Drop the rows of a Parquet scan that a hash join's run-time
        /// filter (the bounds and set of its build side's keys) rejects,
        /// right above the scan, when the scan does not evaluate filters
        /// while decoding (`datafusion.execution.parquet.pushdown_filters`
        /// off).
        pub runtime_filters: bool, default = true
        /// Evaluate a filter's conditions cheapest first (fixed-width
        /// comparisons before string comparisons, `LIKE` and function
        /// calls); a filter with a condition that can fail is left as
        /// written.
        pub filter_order: bool, default = true
    }
}

impl ConfigExtension for LakehoseOptions {
    const PREFIX: &'static str = "lakehose";
}

impl LakehoseOptions {
    /// The options of a session (the defaults when it has none).
    pub fn of(config: &datafusion::config::ConfigOptions) -> Self {
        config
            .extensions
            .get::<LakehoseOptions>()
            .cloned()
            .unwrap_or_default()
    }
}

/// The one child a single-input plan node is given back by
/// `with_new_children` (`node` names it in the error).
pub(crate) fn one_child(
    mut children: Vec<Arc<dyn ExecutionPlan>>,
    node: &str,
) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
    match (children.pop(), children.is_empty()) {
        (Some(child), true) => Ok(child),
        _ => Err(DataFusionError::Internal(format!("{node} has one child"))),
    }
}

/// Checks a setting a client may change for its own queries (a Postgres
/// connection's `SET lakehose.share_subplans = false`): only lakehose's
/// own switches, with a value of their kind. DataFusion's settings
/// (memory, parallelism, batch sizes) are the operator's, set with
/// `lakehose serve --query-setting`.
pub fn check_session_setting(key: &str, value: &str) -> Result<(), String> {
    let prefix = format!("{}.", LakehoseOptions::PREFIX);
    if !key.starts_with(&prefix) {
        return Err(format!(
            "a client may set only lakehose's planner settings ({prefix}*), not {key}"
        ));
    }
    let mut config =
        datafusion::prelude::SessionConfig::new().with_option_extension(LakehoseOptions::default());
    config
        .options_mut()
        .set(key, value)
        .map_err(|e| format!("{key} = {value}: {e}"))
}

/// DataFusion's physical planner, with lakehose's rewrites of the
/// optimized logical plan first and the planners of lakehose's plan nodes.
pub(crate) struct LakehosePlanner {
    physical: DefaultPhysicalPlanner,
    /// Whether plans run in this process. Across query workers nothing is
    /// shared: a shared subplan's readers must be in one process, and its
    /// plan node has no codec to travel in.
    local: bool,
}

impl std::fmt::Debug for LakehosePlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakehosePlanner")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl LakehosePlanner {
    /// The planner; `local` when no query workers run the plans' stages.
    pub(crate) fn new(local: bool) -> Self {
        Self {
            physical: DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(
                share::SharedPlanner,
            )]),
            local,
        }
    }
}

#[async_trait]
impl QueryPlanner for LakehosePlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let options = LakehoseOptions::of(session_state.config_options());
        let shared;
        let plan = if options.share_subplans && self.local {
            shared = share::share_subplans(logical_plan.clone())?;
            &shared
        } else {
            logical_plan
        };
        self.physical
            .create_physical_plan(plan, session_state)
            .await
    }
}

/// A plain DataFusion session (no catalog, no Presto functions) with
/// `config` and lakehose's planner: the baseline `lakehose bare-datafusion`
/// measures the engine against, with the same rules.
pub fn bare_context(
    config: datafusion::prelude::SessionConfig,
) -> datafusion::prelude::SessionContext {
    let state = datafusion::execution::session_state::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_query_planner(Arc::new(LakehosePlanner::new(true)))
        .with_physical_optimizer_rule(Arc::new(runtime_filter::RuntimeFilters))
        .with_physical_optimizer_rule(Arc::new(filter_order::FilterOrder))
        .build();
    datafusion::prelude::SessionContext::new_with_state(state)
}
