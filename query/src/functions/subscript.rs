//! Subscripts on maps (`m['key']`, `row.m['key']`) planned as lakehose's
//! `element_at`, not as DataFusion's `get_field`.
//!
//! DataFusion merges chained `get_field` calls into one
//! (`get_field(req, 'headers', 'Host')`), and its Parquet reader then takes
//! the whole path for struct fields, so a map key under a struct column
//! (`req.headers['Host']`) named a leaf that does not exist and the scan
//! failed. Planned as `element_at(get_field(req, 'headers'), 'Host')`, the
//! reader reads the map and the lookup happens after the scan.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawFieldAccessExpr};
use datafusion::logical_expr::{Expr, ExprSchemable, GetFieldAccess, ScalarUDF, lit};

/// Plans subscripts whose base is a map with `element_at`.
#[derive(Debug)]
pub(crate) struct MapSubscriptPlanner {
    element_at: Arc<ScalarUDF>,
}

impl MapSubscriptPlanner {
    pub(crate) fn new() -> Self {
        Self {
            element_at: Arc::new(ScalarUDF::new_from_impl(super::array::element_at_func())),
        }
    }
}

impl ExprPlanner for MapSubscriptPlanner {
    fn plan_field_access(
        &self,
        expr: RawFieldAccessExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawFieldAccessExpr>> {
        if !matches!(expr.expr.get_type(schema)?, DataType::Map(..)) {
            return Ok(PlannerResult::Original(expr));
        }
        let key = match expr.field_access {
            GetFieldAccess::NamedStructField { name } => lit(name),
            GetFieldAccess::ListIndex { key } => *key,
            range @ GetFieldAccess::ListRange { .. } => {
                return Ok(PlannerResult::Original(RawFieldAccessExpr {
                    expr: expr.expr,
                    field_access: range,
                }));
            }
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::clone(&self.element_at), vec![expr.expr, key]),
        )))
    }
}
