//! `lakehose.share_subplans`: a join or aggregation that a query computes
//! twice is computed once.
//!
//! DataFusion plans each reference to a view or CTE, and a subquery over
//! the same tables as its outer query, as a plan of its own, so TPC-H Q15
//! aggregates three months of `lineitem` twice (once for `revenue0`, once
//! for `max(total_revenue)` over it) and Q11 joins `partsupp`, `supplier`
//! and `nation` twice. DuckDB materializes such a CTE once.
//!
//! [`share_subplans`] finds, in the optimized logical plan (subqueries
//! included), joins and aggregations that are equal once projections are
//! ignored, keeps the widest (the one whose columns include every other's),
//! and replaces each of them with a [`SharedSubplan`] over that one (under a
//! projection to the columns it had). Ignoring projections is sound only
//! through operators that do not change the rows they give when their
//! input has more columns: scans, filters, column projections, joins,
//! aggregations and aliases; a subtree with anything else (`DISTINCT`,
//! unions, limits, windows, extension nodes) or with a volatile expression
//! (`random()`) is never shared.
//!
//! [`SharedExec`] runs its input once, when the first of its readers
//! starts, every partition on a task of its own, and holds the batches for
//! all readers, within the query's memory pool; a partition whose batches
//! no longer fit goes on in a spill file, which each reader reads back.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, DataFusionError, Result, Statistics};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::spill_file::SpillFile;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, Projection, TableScanBuilder, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{CardinalityEffect, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet, SpillMetrics};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SpillManager, StatisticsArgs,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

/// Plans with more nodes are left as they are: finding repeated subtrees
/// compares each join and aggregation with the others, quadratic in size.
const MAX_PLAN_NODES: usize = 2_000;

/// `plan` with every join or aggregation it computes more than once
/// computed once (see the module's documentation).
pub(crate) fn share_subplans(plan: LogicalPlan) -> Result<LogicalPlan> {
    let mut nodes = 0usize;
    let mut groups: HashMap<LogicalPlan, Vec<LogicalPlan>> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        nodes += 1;
        if nodes > MAX_PLAN_NODES {
            return Ok(TreeNodeRecursion::Stop);
        }
        if is_candidate(node)? {
            groups.entry(key_of(node)?).or_default().push(node.clone());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if nodes > MAX_PLAN_NODES {
        return Ok(plan);
    }
    let mut shares: Vec<Share> = Vec::new();
    for members in groups.into_values().filter(|m| m.len() > 1) {
        let Some(wide) = members
            .iter()
            .max_by_key(|m| m.schema().fields().len())
            .cloned()
        else {
            continue;
        };
        let covered: Vec<LogicalPlan> = members.into_iter().filter(|m| covers(&wide, m)).collect();
        if covered.len() > 1 {
            shares.push(Share {
                wide: Arc::new(wide),
                members: covered,
            });
        }
    }
    // A share nested in another's members may be left with one reader once
    // the outer one is replaced: drop such shares and replace again.
    loop {
        let mut slots = Vec::with_capacity(shares.len());
        let mut replace: HashMap<&LogicalPlan, usize> = HashMap::new();
        for (i, share) in shares.iter().enumerate() {
            slots.push(Arc::new(SharedSlot::new(i)));
            for member in &share.members {
                replace.insert(member, i);
            }
        }
        let mut readers = vec![0usize; shares.len()];
        let rewritten = plan
            .clone()
            .transform_down_with_subqueries(|node| {
                if !matches!(node, LogicalPlan::Join(_) | LogicalPlan::Aggregate(_)) {
                    return Ok(Transformed::no(node));
                }
                let Some(&i) = replace.get(&node) else {
                    return Ok(Transformed::no(node));
                };
                readers[i] += 1;
                let shared = LogicalPlan::Extension(Extension {
                    node: Arc::new(SharedSubplan {
                        slot: Arc::clone(&slots[i]),
                        input: Arc::clone(&shares[i].wide),
                    }),
                });
                let read = if node.schema() == shares[i].wide.schema() {
                    shared
                } else {
                    projected(shared, node.schema())?
                };
                Ok(Transformed::new(read, true, TreeNodeRecursion::Jump))
            })?
            .data;
        if readers.iter().all(|&n| n != 1) {
            return Ok(rewritten);
        }
        let mut n = readers.into_iter();
        shares.retain(|_| n.next() != Some(1));
    }
}

/// Members that compute the same rows, and the one all read.
struct Share {
    wide: Arc<LogicalPlan>,
    members: Vec<LogicalPlan>,
}

/// A join or aggregation over at least one table, with nothing but
/// projection-insensitive operators and no volatile or subquery
/// expressions below it.
fn is_candidate(node: &LogicalPlan) -> Result<bool> {
    if !matches!(node, LogicalPlan::Join(_) | LogicalPlan::Aggregate(_)) {
        return Ok(false);
    }
    let mut ok = true;
    let mut scans = 0;
    node.apply(|n| {
        let allowed = matches!(
            n,
            LogicalPlan::TableScan(_)
                | LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::SubqueryAlias(_)
        );
        let volatile_or_subquery = n.expressions().iter().any(|e| {
            e.is_volatile()
                || e.exists(|e| {
                    Ok(matches!(
                        e,
                        Expr::ScalarSubquery(_)
                            | Expr::Exists(_)
                            | Expr::InSubquery(_)
                            | Expr::OuterReferenceColumn(..)
                            | Expr::Placeholder(_)
                    ))
                })
                .unwrap_or(true)
        });
        if !allowed || volatile_or_subquery {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        if matches!(n, LogicalPlan::TableScan(_)) {
            scans += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(ok && scans > 0)
}

/// `node` with its column-only projections removed and its scans reading
/// every column: equal for two subtrees that give the same rows.
fn key_of(node: &LogicalPlan) -> Result<LogicalPlan> {
    node.clone()
        .transform_up(|n| match n {
            LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
                Ok(Transformed::yes(Arc::unwrap_or_clone(p.input)))
            }
            LogicalPlan::TableScan(scan) => {
                let full = TableScanBuilder::new(scan.table_name, scan.source)
                    .with_filters(scan.filters)
                    .with_fetch(scan.fetch)
                    .build()?;
                Ok(Transformed::yes(LogicalPlan::TableScan(full)))
            }
            other => Ok(Transformed::yes(other.recompute_schema()?)),
        })
        .map(|t| t.data)
}

/// Whether `member`'s columns can be read from `wide`'s, with the same
/// fields.
fn covers(wide: &LogicalPlan, member: &LogicalPlan) -> bool {
    if member.schema() == wide.schema() {
        return true;
    }
    let columns: Vec<Column> = member.schema().columns();
    if columns
        .iter()
        .any(|c| wide.schema().index_of_column(c).is_err())
    {
        return false;
    }
    let exprs = columns.into_iter().map(Expr::Column).collect();
    Projection::try_new(exprs, Arc::new(wide.clone()))
        .is_ok_and(|p| p.schema.as_arrow() == member.schema().as_arrow())
}

/// `input` narrowed to `schema`'s columns.
fn projected(input: LogicalPlan, schema: &DFSchemaRef) -> Result<LogicalPlan> {
    let exprs = schema.columns().into_iter().map(Expr::Column).collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(input),
    )?))
}

/// What the readers of one shared subplan have in common: its result,
/// once one of them has started it.
pub(crate) struct SharedSlot {
    id: usize,
    started: Mutex<Option<Shared<BoxFuture<'static, SharedResult>>>>,
}

type SharedResult = std::result::Result<Arc<Materialized>, Arc<DataFusionError>>;

impl fmt::Debug for SharedSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSlot").field("id", &self.id).finish()
    }
}

impl SharedSlot {
    fn new(id: usize) -> Self {
        Self {
            id,
            started: Mutex::new(None),
        }
    }

    /// The result, started on `input` by the first reader to ask.
    fn result(
        &self,
        input: &Arc<dyn ExecutionPlan>,
        context: &Arc<TaskContext>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Shared<BoxFuture<'static, SharedResult>>> {
        let mut started = self
            .started
            .lock()
            .map_err(|_| DataFusionError::Internal("a shared subplan's lock is poisoned".into()))?;
        if let Some(result) = started.as_ref() {
            return Ok(result.clone());
        }
        let partitions = input.output_partitioning().partition_count();
        let mut tasks = Vec::with_capacity(partitions);
        for partition in 0..partitions {
            let stream = input.execute(partition, Arc::clone(context))?;
            let reservation = MemoryConsumer::new(format!("SharedExec[{}]", self.id))
                .with_can_spill(true)
                .register(context.memory_pool());
            let spill = SpillManager::new(
                context.runtime_env(),
                SpillMetrics::new(metrics, partition),
                input.schema(),
            );
            tasks.push(SpawnedTask::spawn(hold(stream, reservation, spill)));
        }
        let result = async move {
            let mut held = Vec::with_capacity(tasks.len());
            for task in tasks {
                let partition = task
                    .join_unwind()
                    .await
                    .map_err(|e| Arc::new(DataFusionError::External(Box::new(e))))?
                    .map_err(Arc::new)?;
                held.push(partition);
            }
            Ok(Arc::new(Materialized { partitions: held }))
        }
        .boxed()
        .shared();
        *started = Some(result.clone());
        Ok(result)
    }
}

/// A shared subplan's result.
struct Materialized {
    partitions: Vec<HeldPartition>,
}

/// One partition of it: batches in memory, then (when memory ran out)
/// the rest in a spill file.
struct HeldPartition {
    batches: Vec<RecordBatch>,
    spilled: Option<Arc<dyn SpillFile>>,
    spill: SpillManager,
    /// Holds the batches' memory in the pool for as long as they live.
    _reservation: MemoryReservation,
}

/// Reads `stream` to its end into memory, and into a spill file once the
/// pool refuses more.
async fn hold(
    mut stream: SendableRecordBatchStream,
    reservation: MemoryReservation,
    spill: SpillManager,
) -> Result<HeldPartition> {
    let mut batches = Vec::new();
    // The spill file, once memory ran out.
    let mut file = None;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if file.is_none() {
            if reservation.try_grow(batch.get_array_memory_size()).is_ok() {
                batches.push(batch);
                continue;
            }
            file = Some(spill.create_in_progress_file("shared subplan")?);
        }
        if let Some(file) = file.as_mut() {
            file.append_batch(&batch)?;
        }
    }
    let spilled = match file {
        Some(mut file) => file.finish()?,
        None => None,
    };
    Ok(HeldPartition {
        batches,
        spilled,
        spill,
        _reservation: reservation,
    })
}

/// The logical node: `input`, computed once for every reader with the same
/// slot.
#[derive(Debug, Clone)]
pub(crate) struct SharedSubplan {
    slot: Arc<SharedSlot>,
    input: Arc<LogicalPlan>,
}

impl PartialEq for SharedSubplan {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.slot, &other.slot) && self.input == other.input
    }
}

impl Eq for SharedSubplan {}

impl Hash for SharedSubplan {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.slot.id.hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for SharedSubplan {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.slot.id.cmp(&other.slot.id) {
            std::cmp::Ordering::Equal if self != other => None,
            order => Some(order),
        }
    }
}

impl UserDefinedLogicalNodeCore for SharedSubplan {
    fn name(&self) -> &str {
        "SharedSubplan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    /// No filter goes into a shared subplan: it would hold for one reader
    /// only.
    fn prevent_predicate_push_down_columns(&self) -> std::collections::HashSet<String> {
        self.input
            .schema()
            .columns()
            .into_iter()
            .map(|c| c.flat_name())
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SharedSubplan: id={}", self.slot.id)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("a shared subplan needs its input".into()))?;
        Ok(Self {
            slot: Arc::clone(&self.slot),
            input: Arc::new(input),
        })
    }
}

/// Plans [`SharedSubplan`] as [`SharedExec`].
#[derive(Debug)]
pub(crate) struct SharedPlanner;

#[async_trait]
impl ExtensionPlanner for SharedPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(shared) = node.as_any().downcast_ref::<SharedSubplan>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal(
                "a shared subplan has one input".into(),
            ));
        };
        Ok(Some(Arc::new(SharedExec::new(
            Arc::clone(input),
            Arc::clone(&shared.slot),
        ))))
    }
}

/// One reader of a shared subplan: the first to execute runs `input` for
/// all (see [`SharedSlot`]); each reads back the partition it is asked for.
#[derive(Debug)]
pub(crate) struct SharedExec {
    input: Arc<dyn ExecutionPlan>,
    slot: Arc<SharedSlot>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl SharedExec {
    fn new(input: Arc<dyn ExecutionPlan>, slot: Arc<SharedSlot>) -> Self {
        let from = input.properties();
        let properties = PlanProperties::new(
            from.eq_properties.clone(),
            from.partitioning.clone(),
            EmissionType::Final,
            from.boundedness,
        );
        Self {
            input,
            slot,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for SharedExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "SharedExec: id={}", self.slot.id)
            }
            DisplayFormatType::TreeRender => write!(f, "id={}", self.slot.id),
        }
    }
}

impl ExecutionPlan for SharedExec {
    fn name(&self) -> &str {
        "SharedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = super::one_child(children, "SharedExec")?;
        Ok(Arc::new(Self::new(input, Arc::clone(&self.slot))))
    }

    /// A plan run again computes its own result: a fresh slot.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            Arc::clone(&self.input),
            Arc::new(SharedSlot::new(self.slot.id)),
        )))
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        input_stats
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("SharedExec has one child".into()))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let result = self.slot.result(&self.input, &context, &self.metrics)?;
        let schema = self.schema();
        let stream = futures::stream::once(async move {
            let held = result.await.map_err(DataFusionError::Shared)?;
            let part = held.partitions.get(partition).ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "a shared subplan has {} partitions, partition {partition} was asked for",
                    held.partitions.len()
                ))
            })?;
            let memory = futures::stream::iter(part.batches.clone().into_iter().map(Ok));
            let spilled: BoxStream<'static, Result<RecordBatch>> = match &part.spilled {
                Some(file) => part
                    .spill
                    .read_spill_as_stream(Arc::clone(file), None)?
                    .boxed(),
                None => futures::stream::empty().boxed(),
            };
            Ok::<_, DataFusionError>(memory.chain(spilled))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[cfg(test)]
mod tests;
