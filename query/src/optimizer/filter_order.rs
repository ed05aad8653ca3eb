//! `lakehose.filter_order`: a filter's conjuncts evaluated cheapest first.
//!
//! DataFusion evaluates `a AND b AND c` left to right, and evaluates the
//! right side of an `AND` only on the rows the left kept when the left
//! kept at most a fifth of them. So the order of the conjuncts decides
//! how many rows the expensive ones see. It keeps the order the query
//! wrote: TPC-H Q12 compares `l_shipmode` strings on all six million rows
//! before the date range that keeps one in seven. DuckDB reorders a
//! filter's conjuncts by cost, adaptively; this rule does it once, by a
//! cost per expression node (comparisons of fixed-width values against
//! a literal are cheapest, then those of two columns; string comparisons, `IN` lists
//! of strings, `LIKE`, function calls and `CASE` cost more). Equal costs
//! keep the query's order. A filter with a conjunct that can fail (a
//! cast, arithmetic that can overflow or divide by zero, a function call)
//! is left as written, since a condition written before it may be what
//! keeps it from failing.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, CaseExpr, CastExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr,
    Literal, NotExpr,
};
use datafusion::physical_expr::utils::{conjunction, split_conjunction};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

use super::LakehoseOptions;

/// Orders the conjuncts of every `FilterExec` by [`cost`].
#[derive(Debug, Default)]
pub(crate) struct FilterOrder;

impl PhysicalOptimizerRule for FilterOrder {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !LakehoseOptions::of(config).filter_order {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let schema = filter.input().schema();
            let Some(ordered) = ordered(filter.predicate(), &schema) else {
                return Ok(Transformed::no(node));
            };
            let rebuilt = FilterExecBuilder::from(filter)
                .with_predicate(ordered)
                .build()?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lakehose_filter_order"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `predicate` with its conjuncts cheapest first, or `None` when that is
/// already their order.
pub(crate) fn ordered(
    predicate: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Option<Arc<dyn PhysicalExpr>> {
    let conjuncts = split_conjunction(predicate);
    if conjuncts.len() < 2 || conjuncts.iter().any(|c| can_fail(c)) {
        return None;
    }
    let costs: Vec<f64> = conjuncts.iter().map(|c| cost(c, schema)).collect();
    let mut order: Vec<usize> = (0..conjuncts.len()).collect();
    order.sort_by(|&a, &b| costs[a].total_cmp(&costs[b]));
    if order.iter().enumerate().all(|(i, &j)| i == j) {
        return None;
    }
    Some(conjunction(
        order.into_iter().map(|i| Arc::clone(conjuncts[i])),
    ))
}

/// What evaluating `expr` on a row costs, roughly, in comparisons of two
/// fixed-width values.
pub(crate) fn cost(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> f64 {
    let mut total = 0.0;
    let _ = expr.apply(|e| {
        total += node_cost(e, schema);
        Ok(TreeNodeRecursion::Continue)
    });
    total
}

/// Whether evaluating `expr` can raise an error on some row.
fn can_fail(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let mut fails = false;
    let _ = expr.apply(|e| {
        let safe = e.is::<Column>()
            || e.is::<Literal>()
            || e.is::<InListExpr>()
            || e.is::<IsNullExpr>()
            || e.is::<IsNotNullExpr>()
            || e.is::<NotExpr>()
            || e.is::<LikeExpr>()
            || e.downcast_ref::<BinaryExpr>().is_some_and(|b| {
                matches!(
                    b.op(),
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                        | Operator::IsDistinctFrom
                        | Operator::IsNotDistinctFrom
                        | Operator::And
                        | Operator::Or
                )
            });
        if safe {
            Ok(TreeNodeRecursion::Continue)
        } else {
            fails = true;
            Ok(TreeNodeRecursion::Stop)
        }
    });
    fails
}

fn node_cost(e: &Arc<dyn PhysicalExpr>, schema: &Schema) -> f64 {
    let wide = |e: &Arc<dyn PhysicalExpr>| {
        e.data_type(schema).is_ok_and(|t| {
            matches!(
                t,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::Dictionary(..)
            ) || t.is_nested()
        })
    };
    if e.is::<Column>() || e.is::<Literal>() {
        0.0
    } else if let Some(binary) = e.downcast_ref::<BinaryExpr>() {
        // A comparison with a literal reads one column and is the kind
        // that keeps few rows (a range, a value); two columns compared
        // (`l_receiptdate > l_commitdate`) read two and keep many.
        let literal = binary.left().is::<Literal>() || binary.right().is::<Literal>();
        match binary.op() {
            Operator::And | Operator::Or => 0.25,
            _ if wide(binary.left()) => 3.0,
            _ if literal => 1.0,
            _ => 1.5,
        }
    } else if let Some(list) = e.downcast_ref::<InListExpr>() {
        if wide(list.expr()) { 4.0 } else { 2.0 }
    } else if e.is::<NotExpr>() || e.is::<IsNullExpr>() || e.is::<IsNotNullExpr>() {
        0.5
    } else if e.is::<CastExpr>() {
        1.0
    } else if e.is::<CaseExpr>() {
        3.0
    } else if e.is::<LikeExpr>() || e.is::<ScalarFunctionExpr>() {
        10.0
    } else {
        // Anything else (a dynamic filter, a UDF lakehose does not know):
        // after what it knows.
        5.0
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::{col, lit};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("mode", DataType::Utf8View, true),
            Field::new("day", DataType::Date32, true),
            Field::new("ship", DataType::Date32, true),
        ])
    }

    fn binary(
        l: Arc<dyn PhysicalExpr>,
        op: Operator,
        r: Arc<dyn PhysicalExpr>,
    ) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(l, op, r))
    }

    #[test]
    fn string_comparisons_go_after_date_ranges_and_equal_costs_keep_their_order() {
        let s = schema();
        let mode = |v: &str| binary(col("mode", &s).unwrap(), Operator::Eq, lit(v));
        let modes = binary(mode("MAIL"), Operator::Or, mode("SHIP"));
        let after = binary(
            col("day", &s).unwrap(),
            Operator::Gt,
            col("ship", &s).unwrap(),
        );
        let from = binary(col("day", &s).unwrap(), Operator::GtEq, lit(8766i32));
        let predicate = conjunction([Arc::clone(&modes), Arc::clone(&after), Arc::clone(&from)]);
        let out = ordered(&predicate, &s).expect("reordered");
        let got: Vec<String> = split_conjunction(&out)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            got,
            vec![from.to_string(), after.to_string(), modes.to_string()]
        );
        // Already cheapest first: left alone.
        assert!(ordered(&out, &s).is_none());
        assert!(ordered(&from, &s).is_none());
    }

    #[test]
    fn a_filter_with_a_conjunct_that_can_fail_is_left_as_written() {
        let s = schema();
        let guard = binary(col("mode", &s).unwrap(), Operator::NotEq, lit("x"));
        let day = col("day", &s).unwrap();
        let cast = Arc::new(CastExpr::new(day, DataType::Int8, None)) as Arc<dyn PhysicalExpr>;
        let risky = binary(cast, Operator::Gt, lit(1i8));
        let predicate = conjunction([guard, risky]);
        assert!(ordered(&predicate, &s).is_none());
    }

    #[test]
    fn costs_rank_the_kinds_of_expression() {
        let s = schema();
        let day = binary(col("day", &s).unwrap(), Operator::Lt, lit(1i32));
        let mode = binary(col("mode", &s).unwrap(), Operator::Eq, lit("AIR"));
        let null = Arc::new(IsNullExpr::new(col("mode", &s).unwrap())) as Arc<dyn PhysicalExpr>;
        assert!(cost(&null, &s) < cost(&day, &s));
        assert!(cost(&day, &s) < cost(&mode, &s));
    }
}
