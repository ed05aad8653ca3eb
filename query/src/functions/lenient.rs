//! `TRY(e)` for every scalar function, DataFusion's built-ins included.
//!
//! The SQL rewrite turns `TRY(e)` into `try(e')`, where `e'` already has
//! its casts made `TRY_CAST`, its divisors `NULLIF(y, 0)` and lakehose's
//! own functions their lenient `try_` twins. `try` itself is the identity;
//! it marks the expression. [`catch_errors`] then wraps every other scalar
//! function call under a `try` in [`Lenient`], which evaluates the call as
//! usual and, when that fails, again row by row, giving NULL for the rows
//! that fail — as Presto's `TRY` does.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, new_null_array};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

/// The name of the marker.
pub(crate) const TRY: &str = "try";

/// `try(e)`: `e` itself; marks what [`catch_errors`] makes lenient.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TryMarker {
    signature: Signature,
}

impl TryMarker {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TryMarker {
    fn name(&self) -> &str {
        TRY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] => Ok(t.clone()),
            _ => plan_err!("TRY expects 1 argument, got {}", arg_types.len()),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields {
            [f] => Ok(Arc::new(f.as_ref().clone().with_nullable(true))),
            _ => plan_err!("TRY expects 1 argument, got {}", args.arg_fields.len()),
        }
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args.remove(0))
    }
}

/// A scalar function whose failing rows yield NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Lenient {
    inner: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for Lenient {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = self.inner.return_field_from_args(args)?;
        Ok(Arc::new(field.as_ref().clone().with_nullable(true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let whole = ScalarFunctionArgs {
            args: args.args.clone(),
            arg_fields: args.arg_fields.clone(),
            number_rows: args.number_rows,
            return_field: Arc::clone(&args.return_field),
            config_options: Arc::clone(&args.config_options),
        };
        match self.inner.invoke_with_args(whole) {
            Ok(out) => Ok(out),
            Err(_) => self.row_by_row(args),
        }
    }
}

impl Lenient {
    /// Evaluates each row on its own; a row that fails is NULL.
    fn row_by_row(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ret = args.return_field.data_type().clone();
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let mut parts: Vec<ArrayRef> = Vec::with_capacity(rows);
        for i in 0..rows {
            let row = args
                .args
                .iter()
                .map(|a| match a {
                    ColumnarValue::Array(array) => {
                        ScalarValue::try_from_array(array, i).map(ColumnarValue::Scalar)
                    }
                    scalar => Ok(scalar.clone()),
                })
                .collect::<Result<Vec<_>>>()?;
            let one = ScalarFunctionArgs {
                args: row,
                arg_fields: args.arg_fields.clone(),
                number_rows: 1,
                return_field: Arc::clone(&args.return_field),
                config_options: Arc::clone(&args.config_options),
            };
            parts.push(
                match self
                    .inner
                    .invoke_with_args(one)
                    .and_then(|v| v.into_array(1))
                {
                    Ok(v) if v.len() == 1 && v.data_type() == &ret => v,
                    _ => new_null_array(&ret, 1),
                },
            );
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        let out = if refs.is_empty() {
            new_null_array(&ret, 0)
        } else {
            concat(&refs)?
        };
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Makes the scalar function calls under each `try(...)` in `plan` (and
/// its subqueries) lenient. Names and types stay as they were.
pub(crate) fn catch_errors(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|e| {
            e.transform_up(|e| match e {
                Expr::ScalarFunction(f) if f.func.name() == TRY => {
                    let args = f
                        .args
                        .into_iter()
                        .map(|a| a.transform_up(lenient_call).map(|t| t.data))
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                        func: f.func,
                        args,
                    })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })
    .map(|t| t.data)
}

fn is_lenient(f: &ScalarUDF) -> bool {
    let inner: &dyn std::any::Any = f.inner().as_ref();
    inner.is::<Lenient>()
}

fn lenient_call(e: Expr) -> Result<Transformed<Expr>> {
    match e {
        Expr::ScalarFunction(f) if f.func.name() != TRY && !is_lenient(&f.func) => {
            let func = Arc::new(ScalarUDF::new_from_impl(Lenient {
                inner: Arc::clone(&f.func),
            }));
            Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                func,
                args: f.args,
            })))
        }
        other => Ok(Transformed::no(other)),
    }
}
