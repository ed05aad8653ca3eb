//! The DataFusion session every query's starts from, made once per engine:
//! DataFusion's defaults, the Presto function library, the expression
//! planners and the analyzer rule. A query's session is this one with the
//! query's settings and catalog; building it re-registers the functions
//! (DataFusion's builder does not share its function maps) but makes none.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::MemoryCatalogProviderList;
use datafusion::common::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::{SessionConfig, SessionContext};

/// The base session and its functions in an order that registers them
/// back exactly (see [`registration_order`]).
#[derive(Debug)]
pub(crate) struct BaseSession {
    state: SessionState,
    scalars: Vec<Arc<ScalarUDF>>,
    aggregates: Vec<Arc<AggregateUDF>>,
    windows: Vec<Arc<WindowUDF>>,
    workers: Option<crate::distributed::Workers>,
}

impl BaseSession {
    /// Builds the base session over `runtime`.
    pub(crate) fn new(
        config: SessionConfig,
        runtime: &Arc<RuntimeEnv>,
        workers: Option<crate::distributed::Workers>,
    ) -> Result<Self, DataFusionError> {
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(runtime))
            .with_default_features()
            .with_analyzer_rule(crate::functions::trino_semantics_rule())
            .with_query_planner(Arc::new(crate::optimizer::LakehosePlanner::new(
                workers.is_none(),
            )))
            .with_physical_optimizer_rule(Arc::new(crate::optimizer::filter_order::FilterOrder));
        // Across query workers, plans hold only nodes the workers know.
        if workers.is_none() {
            builder = builder.with_physical_optimizer_rule(Arc::new(
                crate::optimizer::runtime_filter::RuntimeFilters,
            ));
        }
        // Planned before DataFusion's own planners, which would take
        // `SUBSTR(...)`/`SUBSTRING(...)` syntax for text only, and plan map
        // subscripts with `get_field`.
        let planners = builder.expr_planners().get_or_insert_with(Vec::new);
        planners.insert(0, crate::functions::substring_planner());
        planners.insert(0, crate::functions::map_subscript_planner());
        let ctx = SessionContext::new_with_state(builder.build());
        crate::functions::register(&ctx)?;
        let state = ctx.state();
        Ok(Self {
            scalars: registration_order(state.scalar_functions(), |f| names(f.name(), f.aliases())),
            aggregates: registration_order(state.aggregate_functions(), |f| {
                names(f.name(), f.aliases())
            }),
            windows: registration_order(state.window_functions(), |f| names(f.name(), f.aliases())),
            state,
            workers,
        })
    }

    /// lakehose's scalar functions (with DataFusion's), in registration
    /// order.
    pub(crate) fn scalars(&self) -> &[Arc<ScalarUDF>] {
        &self.scalars
    }

    /// The aggregate functions, in registration order.
    pub(crate) fn aggregates(&self) -> &[Arc<AggregateUDF>] {
        &self.aggregates
    }

    /// The window functions, in registration order.
    pub(crate) fn windows(&self) -> &[Arc<WindowUDF>] {
        &self.windows
    }

    /// The runtime: memory pool, spill folder and object stores.
    pub(crate) fn runtime(&self) -> Arc<RuntimeEnv> {
        self.state.runtime_env().clone()
    }

    /// A query's session: the base one with `config` and a catalog list of
    /// its own (the base session's is shared by every query).
    pub(crate) fn state_for(&self, config: SessionConfig) -> SessionState {
        let Some(workers) = &self.workers else {
            return self.local(config).build();
        };
        match workers.apply(self.local(config.clone())) {
            Ok(builder) => builder.build(),
            Err(e) => {
                // The token was checked when the engine was made.
                tracing::warn!(error = %e, "query planned without its workers");
                self.local(config).build()
            }
        }
    }

    /// A query's session planned in this process.
    fn local(&self, config: SessionConfig) -> SessionStateBuilder {
        SessionStateBuilder::new_from_existing(self.state.clone())
            .with_config(config)
            .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
            .with_scalar_functions(self.scalars.clone())
            .with_aggregate_functions(self.aggregates.clone())
            .with_window_functions(self.windows.clone())
    }
}

fn names<'a>(name: &'a str, aliases: &'a [String]) -> Vec<&'a str> {
    std::iter::once(name)
        .chain(aliases.iter().map(String::as_str))
        .collect()
}

/// The functions of a registry (name or alias → function) in an order in
/// which registering them one after the other, each under its name and
/// aliases, gives the registry back. lakehose's functions replace some of
/// DataFusion's under some of their names (`strpos`, `date_format`, ...);
/// the replaced one must be registered before its replacement, or it takes
/// the name back.
fn registration_order<F: ?Sized>(
    registry: &HashMap<String, Arc<F>>,
    keys: impl Fn(&F) -> Vec<&str>,
) -> Vec<Arc<F>> {
    let id = |f: &Arc<F>| Arc::as_ptr(f).cast::<()>();
    let mut functions: Vec<Arc<F>> = Vec::new();
    let mut index: HashMap<*const (), usize> = HashMap::new();
    for f in registry.values() {
        index.entry(id(f)).or_insert_with(|| {
            functions.push(Arc::clone(f));
            functions.len() - 1
        });
    }
    // An edge i → j: i must come before j, which holds one of i's names.
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); functions.len()];
    let mut waiting = vec![0usize; functions.len()];
    for (i, f) in functions.iter().enumerate() {
        for key in keys(f) {
            if let Some(owner) = registry.get(key)
                && let Some(&j) = index.get(&id(owner))
                && j != i
            {
                after[i].push(j);
                waiting[j] += 1;
            }
        }
    }
    let mut ready: Vec<usize> = (0..functions.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(functions.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &j in &after[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(j);
            }
        }
    }
    // A registry built by registering functions one by one has no cycle;
    // should one appear, its functions go last, in any order.
    let placed: std::collections::HashSet<usize> = order.iter().copied().collect();
    order.extend((0..functions.len()).filter(|i| !placed.contains(i)));
    order
        .into_iter()
        .map(|i| Arc::clone(&functions[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_session_has_the_base_sessions_functions_under_every_name() {
        let runtime = Arc::new(RuntimeEnv::default());
        let base = BaseSession::new(SessionConfig::new(), &runtime, None).unwrap();
        let query = base.state_for(SessionConfig::new());
        let kind = |f: &ScalarUDF| {
            let inner: &dyn std::any::Any = f.inner().as_ref();
            inner.type_id()
        };
        assert!(base.state.scalar_functions().len() > 300);
        for (name, f) in base.state.scalar_functions() {
            let got = &query.scalar_functions()[name];
            assert_eq!(
                (got.name(), kind(got)),
                (f.name(), kind(f)),
                "{name} is another function in a query's session"
            );
        }
        for (name, f) in base.state.aggregate_functions() {
            assert_eq!(query.aggregate_functions()[name].name(), f.name(), "{name}");
        }
    }
}
