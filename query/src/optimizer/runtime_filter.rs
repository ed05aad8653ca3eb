//! `lakehose.runtime_filters`: the filters a hash join derives from its
//! build side at run time (DataFusion's dynamic filters: the keys' bounds
//! and set) drop the probe side's rows right above its Parquet scan.
//!
//! DataFusion hands these filters to the scan, which with
//! `datafusion.execution.parquet.pushdown_filters` off (lakehose's default:
//! evaluating the query's own predicates inside the Parquet decoder made
//! TPC-H Q6, Q12 and Q15 2–3× slower here) uses them only to skip row
//! groups. So a join whose build side is a handful of keys (TPC-H Q17's
//! 200 parts, Q18's 57 orders) still probes, and first joins, every row of
//! the other side. [`RuntimeFilterExec`] evaluates the filters on the
//! scan's batches once the join has set them, vectorized, after decoding.
//! A filter that drops less than 90% of the first 64 Ki rows it sees stops
//! being evaluated for the rest of that partition: evaluating one costs
//! about what the join's own probe of the row does (hash, look up), so it
//! pays only when it spares the repartitioning and joining of most rows
//! (TPC-H Q5's `lineitem` filter drops 85% and made the query 1.5× slower).

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, Statistics};
use datafusion::datasource::physical_plan::{FileScanConfig, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::utils::{reassign_expr_columns, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs,
};
use futures::{Stream, StreamExt};

use super::LakehoseOptions;

/// Rows a filter is judged on before it may be turned off.
const JUDGED_ROWS: usize = 64 * 1024;

/// The share of rows a filter must drop to stay on.
const MIN_DROPPED: f64 = 0.90;

/// Puts a [`RuntimeFilterExec`] over every Parquet scan that has dynamic
/// filters, when the scan itself does not apply them to rows.
#[derive(Debug, Default)]
pub(crate) struct RuntimeFilters;

impl PhysicalOptimizerRule for RuntimeFilters {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if config.execution.parquet.pushdown_filters || !LakehoseOptions::of(config).runtime_filters
        {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            if let Some(filters) = dynamic_filters_of(&node)? {
                return Ok(Transformed::yes(
                    Arc::new(RuntimeFilterExec::new(node, filters)) as Arc<dyn ExecutionPlan>,
                ));
            }
            // The query's own filter right above the scan is cheaper (a
            // date range against a hash and a lookup): it goes first, and
            // the runtime filter sees only the rows it keeps.
            Ok(match below_filter(&node)? {
                Some(swapped) => Transformed::yes(swapped),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lakehose_runtime_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The dynamic filters of a Parquet scan that does not evaluate them on
/// rows, over the scan's output columns.
fn dynamic_filters_of(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Vec<Arc<dyn PhysicalExpr>>>> {
    let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
        return Ok(None);
    };
    let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
        return Ok(None);
    };
    let Some(parquet) = config.file_source().downcast_ref::<ParquetSource>() else {
        return Ok(None);
    };
    let Some(predicate) = parquet.filter() else {
        return Ok(None);
    };
    let schema = node.schema();
    let mut filters = Vec::new();
    for conjunct in split_conjunction(&predicate) {
        if conjunct
            .downcast_ref::<DynamicFilterPhysicalExpr>()
            .is_none()
        {
            continue;
        }
        // A filter on a column the scan does not give is left to the join.
        if let Ok(filter) = reassign_expr_columns(Arc::clone(conjunct), &schema) {
            filters.push(filter);
        }
    }
    Ok((!filters.is_empty()).then_some(filters))
}

/// `FilterExec(RuntimeFilterExec(scan))` as `RuntimeFilterExec(FilterExec(scan))`,
/// when the filter keeps the columns the runtime filters read.
fn below_filter(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(filter) = node.downcast_ref::<FilterExec>() else {
        return Ok(None);
    };
    let Some(runtime) = filter.input().downcast_ref::<RuntimeFilterExec>() else {
        return Ok(None);
    };
    let schema = filter.schema();
    let Ok(filters) = runtime
        .filters
        .iter()
        .map(|f| reassign_expr_columns(Arc::clone(f), &schema))
        .collect::<Result<Vec<_>>>()
    else {
        return Ok(None);
    };
    let filter = FilterExecBuilder::from(filter)
        .with_input(Arc::clone(&runtime.input))
        .build()?;
    Ok(Some(Arc::new(RuntimeFilterExec::new(
        Arc::new(filter),
        filters,
    ))))
}

/// Keeps the rows of its input that pass its dynamic filters, once their
/// producers have set them (until then every row passes).
#[derive(Debug)]
pub(crate) struct RuntimeFilterExec {
    input: Arc<dyn ExecutionPlan>,
    filters: Vec<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl RuntimeFilterExec {
    fn new(input: Arc<dyn ExecutionPlan>, filters: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        let properties = Arc::clone(input.properties());
        Self {
            input,
            filters,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for RuntimeFilterExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let filters: Vec<String> = self.filters.iter().map(|e| e.to_string()).collect();
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "RuntimeFilterExec: {}", filters.join(" AND "))
            }
            DisplayFormatType::TreeRender => write!(f, "{}", filters.join(" AND ")),
        }
    }
}

impl ExecutionPlan for RuntimeFilterExec {
    fn name(&self) -> &str {
        "RuntimeFilterExec"
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
        let input = super::one_child(children, "RuntimeFilterExec")?;
        Ok(Arc::new(Self::new(input, self.filters.clone())))
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for filter in &self.filters {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
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
        let stats = input_stats
            .first()
            .ok_or_else(|| DataFusionError::Internal("RuntimeFilterExec has one child".into()))?;
        Ok(Arc::new(stats.as_ref().clone().to_inexact()))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::LowerEqual
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        Ok(Box::pin(Filtered {
            schema: input.schema(),
            input,
            filters: self.filters.clone(),
            judged: 0,
            kept: 0,
            off: false,
            dropped_rows: MetricBuilder::new(&self.metrics).counter("dropped_rows", partition),
        }))
    }
}

/// One partition's stream.
struct Filtered {
    schema: SchemaRef,
    input: SendableRecordBatchStream,
    filters: Vec<Arc<dyn PhysicalExpr>>,
    judged: usize,
    kept: usize,
    off: bool,
    dropped_rows: Count,
}

impl Filtered {
    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.off || batch.num_rows() == 0 {
            return Ok(batch);
        }
        // A filter still at its first generation has not been set: it lets
        // everything through.
        let set: Vec<&Arc<dyn PhysicalExpr>> = self
            .filters
            .iter()
            .filter(|f| f.snapshot_generation() > 1)
            .collect();
        if set.is_empty() {
            return Ok(batch);
        }
        let rows = batch.num_rows();
        let mut out = batch;
        for filter in set {
            let mask = filter.evaluate(&out)?.into_array(out.num_rows())?;
            let mask = mask.as_boolean_opt().ok_or_else(|| {
                DataFusionError::Internal(format!("runtime filter {filter} is not a boolean"))
            })?;
            out = filter_record_batch(&out, mask)?;
            if out.num_rows() == 0 {
                break;
            }
        }
        self.dropped_rows.add(rows - out.num_rows());
        self.judged += rows;
        self.kept += out.num_rows();
        if self.judged >= JUDGED_ROWS
            && (self.kept as f64) > (1.0 - MIN_DROPPED) * (self.judged as f64)
        {
            self.off = true;
        }
        Ok(out)
    }
}

impl Stream for Filtered {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    let out = self.apply(batch);
                    match out {
                        Ok(b) if b.num_rows() == 0 => continue,
                        other => return Poll::Ready(Some(other)),
                    }
                }
                other => return other,
            }
        }
    }
}

impl RecordBatchStream for Filtered {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

#[cfg(test)]
mod tests;
