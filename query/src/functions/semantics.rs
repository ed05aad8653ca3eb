//! Trino semantics where DataFusion's built-ins answer differently, as an
//! analyzer rule that runs after type coercion:
//!
//! - a cast of a fractional number (`real`, `double`, `decimal`) to an
//!   integer type rounds half away from zero (`CAST(2.5 AS integer)` is 3;
//!   DataFusion truncates);
//! - `concat`, `greatest` and `least` are NULL when any argument is NULL
//!   (DataFusion skips NULL arguments);
//! - `EXTRACT(DOW FROM x)` counts Monday as 1 and Sunday as 7, as Trino's
//!   `day_of_week` does (DataFusion counts Sunday as 0).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, cast, lit, when};
use datafusion::optimizer::AnalyzerRule;

/// The rule; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct TrinoSemantics;

impl AnalyzerRule for TrinoSemantics {
    fn analyze(&self, plan: LogicalPlan, _: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let mut schema = DFSchema::empty();
            for input in plan.inputs() {
                schema.merge(input.schema());
            }
            plan.map_expressions(|e| e.transform_up(|e| rewrite(e, &schema)))
        })
        .data()
    }

    fn name(&self) -> &str {
        "lakehose_trino_semantics"
    }
}

fn is_fractional(t: &DataType) -> bool {
    t.is_floating() || t.is_decimal()
}

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let rounded = |inner: Box<Expr>| -> Box<Expr> {
        Box::new(datafusion::functions::math::expr_fn::round(vec![*inner]))
    };
    Ok(match e {
        Expr::Cast(Cast { expr, field })
            if field.data_type().is_integer()
                && expr.get_type(schema).is_ok_and(|t| is_fractional(&t)) =>
        {
            Transformed::yes(Expr::Cast(Cast {
                expr: rounded(expr),
                field,
            }))
        }
        Expr::TryCast(TryCast { expr, field })
            if field.data_type().is_integer()
                && expr.get_type(schema).is_ok_and(|t| is_fractional(&t)) =>
        {
            Transformed::yes(Expr::TryCast(TryCast {
                expr: rounded(expr),
                field,
            }))
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if matches!(func.name(), "concat" | "greatest" | "least") && args.len() > 1 =>
        {
            let call = Expr::ScalarFunction(ScalarFunction {
                func: Arc::clone(&func),
                args: args.clone(),
            });
            let Ok(ret) = call.get_type(schema) else {
                return Ok(Transformed::no(call));
            };
            let any_null = args
                .iter()
                .map(|a| a.clone().is_null())
                .reduce(Expr::or)
                .expect("more than one argument");
            Transformed::yes(
                when(any_null, Expr::Literal(ScalarValue::try_from(&ret)?, None))
                    .otherwise(call)?,
            )
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if func.name() == "date_part"
                && args.len() == 2
                && matches!(
                    &args[0],
                    Expr::Literal(ScalarValue::Utf8(Some(part)), _)
                        if part.eq_ignore_ascii_case("dow")
                ) =>
        {
            let call = Expr::ScalarFunction(ScalarFunction { func, args });
            let Ok(ty) = call.get_type(schema) else {
                return Ok(Transformed::no(call));
            };
            let day = cast(call, DataType::Int64);
            // Sunday 0 → 7, Monday 1 → 1, …, Saturday 6 → 6, in the type
            // the plan already has for it.
            Transformed::yes(cast((day + lit(6i64)) % lit(7i64) + lit(1i64), ty))
        }
        other => Transformed::no(other),
    })
}
