//! The Presto/Trino (Athena engine v3) function library as DataFusion
//! functions.
//!
//! [`register`] adds every function to a session. Where DataFusion already
//! ships a function under the same name with Presto's semantics it is left
//! alone; where the name exists with different semantics (`date_format`,
//! `split_part`, `regexp_replace`, `element_at`, `contains`, `to_hex`,
//! `md5`, `from_unixtime`, `to_unixtime`, ...) the lakehose version replaces
//! it.
//! Syntax rather than functions (`IF`, `TRY`, `UNNEST ... WITH ORDINALITY`,
//! `TABLESAMPLE`) is handled by [`crate::dialect::rewrite`].

mod aggregate;
mod array;
mod binary;
mod bitwise;
mod collection;
mod datetime;
mod format;
mod json;
mod lenient;
mod math;
mod regex;
mod semantics;
mod strings;
mod subscript;
mod text;
mod url;

/// The most elements an array built by a function may hold (`sequence`,
/// `repeat`), as Trino allows.
pub(crate) const MAX_ARRAY_ELEMENTS: usize = 10_000;
/// The most values a function deriving arrays of arrays (`ngrams`,
/// `combinations`) may produce in one row.
pub(crate) const MAX_DERIVED_ELEMENTS: usize = 100_000;
/// The most characters a string built by a function (`lpad`, `rpad`) may
/// hold: 1 MiB, Trino's `listagg` limit.
pub(crate) const MAX_STRING_CHARS: usize = 1 << 20;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;

pub(crate) use lenient::catch_errors;

/// Registers every lakehose function into `ctx`.
///
/// The JSON helpers of `datafusion-functions-json` (`json_get`, `->`, ...)
/// are registered first; Presto names registered afterwards win on clashes.
pub fn register(ctx: &SessionContext) -> Result<()> {
    {
        let state = ctx.state_ref();
        let mut state = state.write();
        datafusion_functions_json::register_all(&mut *state)?;
    }
    let mut scalars = Vec::new();
    scalars.extend(datetime::functions());
    scalars.extend(json::functions());
    scalars.extend(regex::functions());
    scalars.extend(strings::functions());
    scalars.extend(array::functions());
    scalars.extend(url::functions());
    scalars.extend(binary::functions());
    scalars.extend(math::functions());
    scalars.extend(bitwise::functions());
    scalars.extend(text::functions());
    scalars.extend(collection::functions());
    scalars.extend(format::functions());
    for f in scalars {
        ctx.register_udf(ScalarUDF::new_from_impl(f.lenient_variant()));
        ctx.register_udf(ScalarUDF::new_from_impl(f));
    }
    for f in aggregate::functions() {
        ctx.register_udaf(f);
    }
    ctx.register_udf(ScalarUDF::new_from_impl(lenient::TryMarker::new()));
    // `substr`/`substring` over varbinary, in front of DataFusion's over text
    // (the SQL syntax goes through [`substring_planner`]).
    ctx.register_udf(binary::substr_udf());
    // Presto's `sequence(start, stop[, step])` (numbers, dates and
    // timestamps with an interval step) is DataFusion's `generate_series`,
    // capped at [`MAX_ARRAY_ELEMENTS`] entries; `ceiling` is `ceil`.
    let builtin = |name: &str| ctx.state_ref().read().scalar_functions().get(name).cloned();
    if let Some(f) = builtin("generate_series") {
        ctx.register_udf(collection::sequence_udf(f.as_ref().clone()));
    }
    if let Some(f) = builtin("arrays_zip") {
        ctx.register_udf(f.as_ref().clone().with_aliases(["zip"]));
    }
    if let Some(f) = builtin("ceil") {
        ctx.register_udf(f.as_ref().clone().with_aliases(["ceiling"]));
    }
    let builtin_aggregates = ctx.state_ref().read().aggregate_functions().clone();
    for f in aggregate::aliases(&builtin_aggregates) {
        ctx.register_udaf(f);
    }
    #[cfg(debug_assertions)]
    ctx.register_udf(debug_panic());
    Ok(())
}

/// Debug builds only (the tests'): `lakehose_debug_panic(x)` panics when it
/// is evaluated, to prove a panic in a running query is contained.
#[cfg(debug_assertions)]
fn debug_panic() -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        "lakehose_debug_panic",
        vec![DataType::Int64],
        DataType::Int64,
        datafusion::logical_expr::Volatility::Volatile,
        Arc::new(|_| panic!("lakehose_debug_panic was called")),
    )
}

/// Plans `SUBSTR(...)`/`SUBSTRING(...)` syntax with lakehose's `substr`,
/// which takes `varbinary` as well as text.
pub(crate) fn substring_planner() -> Arc<dyn datafusion::logical_expr::planner::ExprPlanner> {
    Arc::new(binary::SubstringPlanner)
}

/// The analyzer rule that gives casts, `concat`/`greatest`/`least` and
/// `EXTRACT(DOW ...)` Trino's semantics.
pub(crate) fn trino_semantics_rule() -> Arc<dyn datafusion::optimizer::AnalyzerRule + Send + Sync> {
    Arc::new(semantics::TrinoSemantics)
}

/// Plans subscripts on maps (`m['k']`, `row.m['k']`) with `element_at`,
/// in front of DataFusion's field-access planner.
pub(crate) fn map_subscript_planner() -> Arc<dyn datafusion::logical_expr::planner::ExprPlanner> {
    Arc::new(subscript::MapSubscriptPlanner::new())
}

/// Computes the return type from the (coerced) argument types.
pub(crate) type ReturnFn = fn(&[DataType]) -> Result<DataType>;
/// Maps the argument types at the call site to the types the function takes.
pub(crate) type CoerceFn = fn(&[DataType]) -> Result<Vec<DataType>>;
/// Evaluates the function over arrays of equal length, given the return type.
pub(crate) type EvalFn = fn(&[ArrayRef], &DataType) -> Result<ArrayRef>;
/// Computes the return type when it depends on constant argument values.
pub(crate) type ReturnScalarFn = fn(&[DataType], &[Option<&ScalarValue>]) -> Result<DataType>;

/// A row-wise scalar function described by three plain functions.
#[derive(Debug)]
pub(crate) struct Func {
    name: String,
    /// Rows that fail evaluate to NULL instead of failing the query.
    lenient: bool,
    aliases: Vec<String>,
    signature: Signature,
    ret: ReturnFn,
    ret_scalar: Option<ReturnScalarFn>,
    coerce: CoerceFn,
    eval: EvalFn,
}

impl Func {
    /// A deterministic function.
    pub(crate) fn new(name: &'static str, coerce: CoerceFn, ret: ReturnFn, eval: EvalFn) -> Self {
        Self {
            name: name.to_string(),
            lenient: false,
            aliases: Vec::new(),
            signature: Signature::user_defined(Volatility::Immutable),
            ret,
            ret_scalar: None,
            coerce,
            eval,
        }
    }

    /// Computes the return type from constant argument values too.
    pub(crate) fn ret_scalar(mut self, f: ReturnScalarFn) -> Self {
        self.ret_scalar = Some(f);
        self
    }

    /// The `try_`-prefixed twin used inside `TRY(...)`: rows whose
    /// evaluation fails yield NULL.
    pub(crate) fn lenient_variant(&self) -> Self {
        Self {
            name: lenient_name(&self.name),
            lenient: true,
            aliases: self.aliases.iter().map(|a| lenient_name(a)).collect(),
            signature: self.signature.clone(),
            ret: self.ret,
            ret_scalar: self.ret_scalar,
            coerce: self.coerce,
            eval: self.eval,
        }
    }

    /// A function whose result changes from call to call (`random`).
    pub(crate) fn volatile(mut self) -> Self {
        self.signature = Signature::user_defined(Volatility::Volatile);
        self
    }

    /// Adds alternative names.
    pub(crate) fn alias(mut self, names: &[&str]) -> Self {
        self.aliases = names.iter().map(|n| n.to_string()).collect();
        self
    }
}

impl PartialEq for Func {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Func {}

impl Hash for Func {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Func {
    fn name(&self) -> &str {
        &self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        (self.coerce)(arg_types).map_err(|e| {
            datafusion::error::DataFusionError::Plan(format!(
                "{}({}): {}",
                self.name,
                arg_types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                strip_error(&e)
            ))
        })
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        (self.ret)(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let t = match self.ret_scalar {
            Some(f) => f(&types, args.scalar_arguments)?,
            None => (self.ret)(&types)?,
        };
        Ok(Arc::new(Field::new(self.name.as_str(), t, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // A volatile function yields a value per row even from constants.
        let volatile = self.signature.volatility == Volatility::Volatile;
        let all_scalar = !volatile
            && args
                .args
                .iter()
                .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let mut arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        if volatile && arrays.is_empty() {
            // Without arguments the row count travels as an all-NULL column.
            arrays.push(datafusion::arrow::array::new_null_array(
                &DataType::Null,
                rows,
            ));
        }
        let ret = args.return_field.data_type();
        let out = match (self.eval)(&arrays, ret) {
            Ok(out) => out,
            Err(_) if self.lenient => self.eval_rows(&arrays, ret)?,
            Err(e) => return Err(e),
        };
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

impl Func {
    /// Evaluates row by row, turning failing rows into NULL.
    fn eval_rows(&self, arrays: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
        let rows = arrays.first().map_or(0, |a| a.len());
        let mut parts = Vec::with_capacity(rows);
        for i in 0..rows {
            let row: Vec<ArrayRef> = arrays.iter().map(|a| a.slice(i, 1)).collect();
            parts.push(match (self.eval)(&row, ret) {
                Ok(v) => v,
                Err(_) => datafusion::arrow::array::new_null_array(ret, 1),
            });
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        Ok(datafusion::arrow::compute::concat(&refs)?)
    }
}

/// The name of the lenient twin of `name`.
fn lenient_name(name: &str) -> String {
    format!("try_{name}")
}

/// Every scalar function name (and alias) of the library, lower case: the
/// calls `TRY(...)` can make lenient.
pub(crate) fn scalar_names() -> &'static std::collections::HashSet<String> {
    static NAMES: std::sync::LazyLock<std::collections::HashSet<String>> =
        std::sync::LazyLock::new(|| {
            let mut all = Vec::new();
            all.extend(datetime::functions());
            all.extend(json::functions());
            all.extend(regex::functions());
            all.extend(strings::functions());
            all.extend(array::functions());
            all.extend(url::functions());
            all.extend(math::functions());
            all.extend(bitwise::functions());
            all.extend(text::functions());
            all.extend(collection::functions());
            all.iter()
                .flat_map(|f| std::iter::once(f.name.clone()).chain(f.aliases.iter().cloned()))
                .collect()
        });
    &NAMES
}

/// The lenient twin's name for a library function, if `name` is one.
pub(crate) fn lenient_twin(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    scalar_names()
        .contains(&lower)
        .then(|| lenient_name(&lower))
}

/// The message of an error without DataFusion's category prefix.
pub(crate) fn strip_error(e: &datafusion::error::DataFusionError) -> String {
    match e {
        datafusion::error::DataFusionError::Plan(m)
        | datafusion::error::DataFusionError::Execution(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Whether `t` is a character string type (or NULL), dictionary-encoded
/// ones included (partition columns of Hive and Delta tables are read so).
pub(crate) fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, value) => is_string(value),
        _ => false,
    }
}

/// Whether `t` is an integer type (or NULL).
pub(crate) fn is_integer(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Null)
}

/// Coerces a string argument to `Utf8`.
pub(crate) fn want_string(t: &DataType, what: &str) -> Result<DataType> {
    if is_string(t) {
        Ok(DataType::Utf8)
    } else {
        plan_err!("{what} must be varchar, got {t}")
    }
}

/// Coerces an integer argument to `Int64`.
pub(crate) fn want_int(t: &DataType, what: &str) -> Result<DataType> {
    if is_integer(t) {
        Ok(DataType::Int64)
    } else {
        plan_err!("{what} must be an integer, got {t}")
    }
}

/// Coerces a timestamp-like argument to microsecond timestamps, keeping the
/// time zone; dates become timestamps at midnight.
pub(crate) fn want_timestamp(t: &DataType, what: &str) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, tz) => Ok(DataType::Timestamp(TimeUnit::Microsecond, tz.clone())),
        DataType::Date32 | DataType::Date64 | DataType::Null => {
            Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
        }
        t if is_string(t) => Ok(DataType::Timestamp(TimeUnit::Microsecond, None)),
        _ => plan_err!("{what} must be a timestamp or date, got {t}"),
    }
}

/// Checks the argument count is in `min..=max`.
pub(crate) fn arity(args: &[DataType], min: usize, max: usize) -> Result<()> {
    if args.len() < min || args.len() > max {
        if min == max {
            plan_err!("expects {min} arguments, got {}", args.len())
        } else {
            plan_err!("expects {min} to {max} arguments, got {}", args.len())
        }
    } else {
        Ok(())
    }
}

/// Coerces all arguments to `Utf8`, checking the count.
pub(crate) fn all_strings(args: &[DataType], min: usize, max: usize) -> Result<Vec<DataType>> {
    arity(args, min, max)?;
    args.iter()
        .enumerate()
        .map(|(i, t)| want_string(t, &format!("argument {}", i + 1)))
        .collect()
}

/// A `ReturnFn` for functions returning varchar.
pub(crate) fn ret_utf8(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Utf8)
}

/// A `ReturnFn` for functions returning bigint.
pub(crate) fn ret_i64(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Int64)
}

/// A `ReturnFn` for functions returning boolean.
pub(crate) fn ret_bool(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Boolean)
}

/// A `ReturnFn` for functions returning `array(varchar)`.
pub(crate) fn ret_utf8_list(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::new_list(DataType::Utf8, true))
}

/// Downcasts a `Utf8` argument.
pub(crate) fn strs(a: &ArrayRef) -> Result<&datafusion::arrow::array::StringArray> {
    a.as_any().downcast_ref().ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!(
            "expected Utf8, got {}",
            a.data_type()
        ))
    })
}

/// Downcasts an `Int64` argument.
pub(crate) fn ints(a: &ArrayRef) -> Result<&datafusion::arrow::array::Int64Array> {
    a.as_any().downcast_ref().ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!(
            "expected Int64, got {}",
            a.data_type()
        ))
    })
}

/// The `i`-th value of a string argument (None when NULL).
pub(crate) fn str_at(a: &datafusion::arrow::array::StringArray, i: usize) -> Option<&str> {
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

/// The `i`-th value of an integer argument (None when NULL).
pub(crate) fn int_at(a: &datafusion::arrow::array::Int64Array, i: usize) -> Option<i64> {
    if a.is_null(i) { None } else { Some(a.value(i)) }
}

/// An execution error.
pub(crate) fn fail<T>(msg: impl Into<String>) -> Result<T> {
    exec_err!("{}", msg.into())
}

#[cfg(test)]
pub(crate) mod test_util {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use datafusion::prelude::SessionContext;

    /// A session with the library registered.
    pub fn ctx() -> SessionContext {
        let ctx = SessionContext::new();
        super::register(&ctx).unwrap();
        ctx
    }

    /// Runs `sql` and renders every cell, row-major; errors as `Err(text)`.
    pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<Vec<String>>, String> {
        let mut stmt = datafusion::sql::parser::DFParser::parse_sql_with_dialect(
            sql,
            &datafusion::sql::sqlparser::dialect::GenericDialect {},
        )
        .map_err(|e| e.to_string())?;
        let mut st = stmt.pop_front().ok_or("no statement")?;
        if let datafusion::sql::parser::Statement::Statement(s) = &mut st {
            crate::dialect::rewrite(s)?;
        }
        let plan = ctx
            .state()
            .statement_to_plan(st)
            .await
            .and_then(crate::functions::catch_errors)
            .map_err(|e| e.to_string())?;
        let df = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        let opts = FormatOptions::default().with_null("NULL");
        let mut out = Vec::new();
        for b in &batches {
            let fmts: Vec<_> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
                .collect();
            for r in 0..b.num_rows() {
                out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
            }
        }
        Ok(out)
    }

    /// The single value of a one-row, one-column query.
    pub async fn one(ctx: &SessionContext, sql: &str) -> String {
        let rows = run(ctx, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(rows.len(), 1, "{sql}");
        rows[0][0].clone()
    }

    /// The error text of a query that must fail.
    pub async fn err(ctx: &SessionContext, sql: &str) -> String {
        match run(ctx, sql).await {
            Ok(rows) => panic!("{sql} should fail, got {rows:?}"),
            Err(e) => e,
        }
    }
}
