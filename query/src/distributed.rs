//! Queries spread over workers with `datafusion-distributed`.
//!
//! With workers configured ([`Workers`]), the engine plans every query as
//! usual (catalog, table providers, function library) and the distributed
//! planner cuts the physical plan into stages at its shuffles; the stages
//! run on the workers, which read the same object stores. A worker is a
//! [`datafusion_distributed::Worker`] whose sessions carry lakehose's
//! function library and object stores ([`worker`]), so any lakehose binary
//! can be one (`lakehose worker`).
//!
//! Workers run whatever plan reaches them, so a coordinator proves itself
//! with a shared token sent as a header on every call; a worker refuses
//! calls without it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::DataFusionError;
use datafusion::common::tree_node::TreeNode;
use datafusion::execution::SessionState;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{AggregateUDF, Explain, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_distributed::{
    DistributedExec, DistributedExt, SessionStateBuilderExt, Worker, WorkerQueryContext,
    WorkerResolver, WorkerSessionBuilder, display_plan_ascii,
};
use url::Url;

/// Bytes of files one scan task reads by default.
pub const DEFAULT_BYTES_PER_TASK: usize = 16 << 20;

/// The header that carries the workers' shared token.
pub const TOKEN_HEADER: &str = "x-lakehose-worker-token";

/// The workers of a coordinator and the token they share.
#[derive(Clone)]
pub struct Workers {
    urls: Vec<Url>,
    token: String,
    bytes_per_task: usize,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Workers").field("urls", &self.urls).finish()
    }
}

impl Workers {
    /// Workers at `urls` (`http://host:port`), called with `token`.
    pub fn new(urls: Vec<Url>, token: impl Into<String>) -> Result<Self, String> {
        let token = token.into();
        check_token(&token)?;
        if urls.is_empty() {
            return Err("name at least one worker".into());
        }
        for u in &urls {
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(format!("worker {u} must be an http://host:port URL"));
            }
        }
        Ok(Self {
            urls,
            token,
            bytes_per_task: DEFAULT_BYTES_PER_TASK,
        })
    }

    /// Bytes of files one scan task reads (fewer bytes, more tasks).
    pub fn with_bytes_per_task(mut self, bytes: usize) -> Self {
        self.bytes_per_task = bytes.max(1);
        self
    }

    /// The workers' URLs.
    pub fn urls(&self) -> &[Url] {
        &self.urls
    }

    /// `builder` planning across these workers.
    pub(crate) fn apply(
        &self,
        builder: SessionStateBuilder,
    ) -> Result<SessionStateBuilder, DataFusionError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            TOKEN_HEADER,
            self.token
                .parse()
                .map_err(|_| DataFusionError::Configuration("invalid worker token".into()))?,
        );
        let mut builder = builder
            .with_distributed_worker_resolver(FixedWorkers(self.urls.clone()))
            .with_distributed_passthrough_headers(headers)?
            .with_distributed_file_scan_config_bytes_per_partition(self.bytes_per_task)?
            .with_distributed_planner();
        let Some(distributed) = builder.query_planner().clone() else {
            return Ok(builder);
        };
        Ok(builder.with_query_planner(Arc::new(CoordinatorFallback { distributed })))
    }
}

/// Plans across the workers unless a scan of the query cannot be sent to
/// them ([`crate::stats::keep_on_coordinator`]: a Delta table that needs
/// deltalake's own scan, or pending records too large to ship); such a
/// query is planned again to run on the coordinator alone.
#[derive(Debug)]
struct CoordinatorFallback {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
}

#[async_trait]
impl QueryPlanner for CoordinatorFallback {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let plan = self
            .distributed
            .create_physical_plan(logical_plan, session_state)
            .await?;
        let local = session_state
            .config()
            .get_extension::<crate::stats::QueryStats>()
            .is_some_and(|s| s.coordinator_only.load(Ordering::Relaxed));
        if !local || !plan.exists(|p| Ok(p.is::<DistributedExec>()))? {
            return Ok(plan);
        }
        tracing::debug!("a scan cannot be sent to the workers: the query runs on the coordinator");
        DefaultPhysicalPlanner::default()
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

/// The plan of `explain`'s statement as the workers run it: its stages,
/// their tasks and the plan of each, or a line saying the coordinator runs
/// it alone (a plan with nothing to spread, such as `SELECT 1`).
pub(crate) async fn explain_stages(
    state: &SessionState,
    explain: &Explain,
) -> Result<String, DataFusionError> {
    let physical = state.create_physical_plan(&explain.plan).await?;
    Ok(if physical.downcast_ref::<DistributedExec>().is_some() {
        display_plan_ascii(physical.as_ref(), false)
    } else {
        "not distributed: the coordinator runs this plan alone".to_string()
    })
}

/// One `EXPLAIN` result row, `distributed_plan` and `text`, in `schema`'s
/// column types.
pub(crate) fn explain_row(schema: &SchemaRef, text: &str) -> Result<RecordBatch, DataFusionError> {
    let columns = [
        Arc::new(StringArray::from(vec!["distributed_plan"])) as ArrayRef,
        Arc::new(StringArray::from(vec![text])),
    ];
    let columns = columns
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Tokens: 16 to 256 visible ASCII characters.
fn check_token(token: &str) -> Result<(), String> {
    if (16..=256).contains(&token.len()) && token.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("the worker token must be 16 to 256 visible ASCII characters".into())
    }
}

/// A fixed list of workers.
#[derive(Debug, Clone)]
struct FixedWorkers(Vec<Url>);

impl WorkerResolver for FixedWorkers {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        Ok(self.0.clone())
    }
}

/// The sessions a worker runs its tasks in: DataFusion's, plus lakehose's
/// functions; calls without the token are refused.
#[derive(Clone)]
struct WorkerSessions {
    token: String,
    scalars: Vec<Arc<ScalarUDF>>,
    aggregates: Vec<Arc<AggregateUDF>>,
    windows: Vec<Arc<WindowUDF>>,
}

#[async_trait]
impl WorkerSessionBuilder for WorkerSessions {
    async fn build_session_state(
        &self,
        ctx: WorkerQueryContext,
    ) -> Result<SessionState, DataFusionError> {
        let sent = ctx
            .headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), self.token.as_bytes()) {
            return Err(DataFusionError::Execution(
                "ACCESS_DENIED: this worker runs tasks only for coordinators with its token".into(),
            ));
        }
        Ok(ctx
            .builder
            .with_scalar_functions(self.scalars.clone())
            .with_aggregate_functions(self.aggregates.clone())
            .with_window_functions(self.windows.clone())
            .build())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The worker service of `engine`: its tasks read `engine`'s object stores
/// and call its functions; callers must send `token`.
pub fn worker(engine: &crate::QueryEngine, token: &str) -> Result<Worker, String> {
    check_token(token)?;
    let base = engine.base_session();
    let sessions = WorkerSessions {
        token: token.to_string(),
        scalars: base.scalars().to_vec(),
        aggregates: base.aggregates().to_vec(),
        windows: base.windows().to_vec(),
    };
    Ok(Worker::from_session_builder(sessions).with_runtime_env(base.runtime()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_settings_refuse_bad_tokens_and_addresses() {
        let url = |u: &str| Url::parse(u).unwrap();
        let token = "a-token-of-enough-length";
        assert!(Workers::new(vec![url("http://10.0.0.1:4590")], token).is_ok());
        for bad in ["short", &"x".repeat(300), "sixteen chars\nwith a newline"] {
            assert!(
                Workers::new(vec![url("http://h:1")], bad).is_err(),
                "{bad:?}"
            );
        }
        assert!(Workers::new(Vec::new(), token).is_err());
        for bad in [
            "file:///etc/passwd",
            "unix:/run/x.sock",
            "data:text/plain,x",
        ] {
            assert!(Workers::new(vec![url(bad)], token).is_err(), "{bad}");
        }
        // The token never shows in debug output.
        let w = Workers::new(vec![url("http://h:1")], token).unwrap();
        assert!(!format!("{w:?}").contains(token));
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
