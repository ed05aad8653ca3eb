//! Aggregate functions: `count_if`, `max_by`/`min_by`, `geometric_mean`,
//! Presto's `approx_percentile(x, [w,] p)` / `approx_percentile(x, [w,]
//! ARRAY[p, ...])` (optionally weighted), `map_agg(k, v)`, `histogram(x)`,
//! `approx_distinct` returning a bigint, and the aliases `arbitrary`
//! (= `any_value`) and `every` (= `bool_and`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, MapArray, StructArray,
    make_comparator, new_empty_array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::functions_aggregate::approx_percentile_cont::ApproxPercentileAccumulator;
use datafusion::functions_aggregate::approx_percentile_cont_with_weight::ApproxPercentileWithWeightAccumulator;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator,
    Signature, Volatility,
};

use super::{CoerceFn, ReturnFn, arity};

/// The aggregate functions.
pub(crate) fn functions() -> Vec<AggregateUDF> {
    use datafusion::functions_aggregate::{any_value::any_value_udaf, bool_and_or::bool_and_udaf};
    vec![
        AggregateUDF::new_from_impl(
            Agg::new("count_if", coerce_bool, |_| Ok(DataType::Int64), count_if())
                .with_groups((|_| true, |_| Ok(Box::new(CountIfGroups::default())))),
        ),
        AggregateUDF::new_from_impl(Agg::new("max_by", coerce_by, ret_first, max_by())),
        AggregateUDF::new_from_impl(Agg::new("min_by", coerce_by, ret_first, min_by())),
        AggregateUDF::new_from_impl(Agg::new(
            "geometric_mean",
            coerce_numeric,
            |_| Ok(DataType::Float64),
            geometric_mean(),
        )),
        AggregateUDF::new_from_impl(
            Agg::new(
                "approx_percentile",
                coerce_percentile,
                ret_percentile,
                approx_percentile(),
            )
            // Unweighted calls; weighted ones keep one accumulator per group.
            .with_groups((|a| a.exprs.len() == 2, percentile_groups)),
        ),
        AggregateUDF::new_from_impl(Agg::new(
            "map_agg",
            |a| Ok(coerce_by(a)?.iter().map(plain_strings).collect()),
            |a| Ok(map_type(&a[0], &a[1])),
            map_agg(),
        )),
        AggregateUDF::new_from_impl(Agg::new(
            "histogram",
            |a| {
                arity(a, 1, 1)?;
                Ok(a.iter().map(plain_strings).collect())
            },
            |a| Ok(map_type(&a[0], &DataType::Int64)),
            histogram(),
        )),
        AggregateUDF::new_from_impl(BigintResult::new(
            datafusion::functions_aggregate::approx_distinct::approx_distinct_udaf(),
        )),
        any_value_udaf()
            .as_ref()
            .clone()
            .with_aliases(["arbitrary"]),
        bool_and_udaf().as_ref().clone().with_aliases(["every"]),
        AggregateUDF::new_from_impl(Agg::new(
            "skewness",
            coerce_numeric,
            |_| Ok(DataType::Float64),
            moments(Moment::Skewness),
        )),
        AggregateUDF::new_from_impl(Agg::new(
            "kurtosis",
            coerce_numeric,
            |_| Ok(DataType::Float64),
            moments(Moment::Kurtosis),
        )),
    ]
}

/// Trino's names for DataFusion's aggregates: `variance` (`var_samp`) and
/// the bitwise `bitwise_and_agg`, `bitwise_or_agg`, `bitwise_xor_agg`.
pub(crate) fn aliases(
    builtins: &std::collections::HashMap<String, Arc<AggregateUDF>>,
) -> Vec<AggregateUDF> {
    [
        ("var_samp", "variance"),
        ("bit_and", "bitwise_and_agg"),
        ("bit_or", "bitwise_or_agg"),
        ("bit_xor", "bitwise_xor_agg"),
    ]
    .iter()
    .filter_map(|&(name, alias)| Some(builtins.get(name)?.as_ref().clone().with_aliases([alias])))
    .collect()
}

type StateFn = fn(&StateFieldsArgs) -> Result<Vec<FieldRef>>;
type MakeFn = fn(&AccumulatorArgs) -> Result<Box<dyn Accumulator>>;
/// Whether a call can use the grouped accumulator, and its constructor.
type GroupsFn = (
    fn(&AccumulatorArgs) -> bool,
    fn(&AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>>,
);

/// An aggregate described by plain functions: coercion, return type, and a
/// (state layout, accumulator constructor) pair.
#[derive(Debug)]
struct Agg {
    name: &'static str,
    signature: Signature,
    coerce: CoerceFn,
    ret: ReturnFn,
    state: StateFn,
    make: MakeFn,
    /// A grouped accumulator: one object for all groups, fed each batch
    /// once, instead of one accumulator per group fed a slice per group.
    groups: Option<GroupsFn>,
}

impl Agg {
    fn with_groups(mut self, groups: GroupsFn) -> Self {
        self.groups = Some(groups);
        self
    }

    fn new(name: &'static str, coerce: CoerceFn, ret: ReturnFn, parts: (StateFn, MakeFn)) -> Self {
        Self {
            name,
            signature: Signature::user_defined(Volatility::Immutable),
            coerce,
            ret,
            state: parts.0,
            make: parts.1,
            groups: None,
        }
    }
}

impl PartialEq for Agg {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Agg {}

impl Hash for Agg {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl AggregateUDFImpl for Agg {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        (self.coerce)(arg_types).map_err(|e| {
            DataFusionError::Plan(format!("{}: {}", self.name, super::strip_error(&e)))
        })
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        (self.ret)(arg_types)
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        (self.make)(&acc_args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.groups.is_some_and(|(supported, _)| supported(&args))
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        match self.groups {
            Some((_, make)) => make(&args),
            None => Err(DataFusionError::Internal(format!(
                "{} has no grouped accumulator",
                self.name
            ))),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        (self.state)(&args)
    }
}

fn state_field(args: &StateFieldsArgs, what: &str, t: DataType) -> FieldRef {
    Arc::new(Field::new(format!("{}[{what}]", args.name), t, true))
}

/// Map keys and values as plain strings and binaries: map lookups
/// (`m['k']`) compare keys with literals, which are never view types.
fn plain_strings(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    }
}

fn ret_first(a: &[DataType]) -> Result<DataType> {
    Ok(a[0].clone())
}

fn coerce_bool(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    match &a[0] {
        DataType::Boolean | DataType::Null => Ok(vec![DataType::Boolean]),
        t => plan_err!("expects a boolean, got {t}"),
    }
}

fn coerce_numeric(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    if a[0].is_numeric() || a[0] == DataType::Null {
        Ok(vec![DataType::Float64])
    } else {
        plan_err!("expects a number, got {}", a[0])
    }
}

fn coerce_by(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    Ok(a.to_vec())
}

// ---------------------------------------------------------------------------
// count_if

#[derive(Debug, Default)]
struct CountIf(i64);

impl Accumulator for CountIf {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let b = booleans(&values[0])?;
        self.0 += b.iter().filter(|v| *v == Some(true)).count() as i64;
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.0)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.0))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let c = states[0]
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| DataFusionError::Internal("count_if state".into()))?;
        self.0 += c.iter().flatten().sum::<i64>();
        Ok(())
    }
}

fn count_if() -> (StateFn, MakeFn) {
    (
        |a| Ok(vec![state_field(a, "count", DataType::Int64)]),
        |_| Ok(Box::new(CountIf::default())),
    )
}

/// The boolean argument of `count_if`.
fn booleans(a: &ArrayRef) -> Result<&BooleanArray> {
    a.as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| DataFusionError::Internal("count_if expects booleans".into()))
}

/// `count_if` for all groups at once.
#[derive(Debug, Default)]
struct CountIfGroups {
    counts: Vec<i64>,
}

/// Whether row `i` passes the aggregate's FILTER (a NULL does not).
fn passes(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl GroupsAccumulator for CountIfGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.counts.resize(total_num_groups, 0);
        let b = booleans(&values[0])?;
        for (i, &g) in group_indices.iter().enumerate() {
            if b.is_valid(i) && b.value(i) && passes(opt_filter, i) {
                self.counts[g] += 1;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(
            emit_to.take_needed(&mut self.counts),
        )))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.counts.resize(total_num_groups, 0);
        let c = values[0]
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| DataFusionError::Internal("count_if state".into()))?;
        for (i, &g) in group_indices.iter().enumerate() {
            if c.is_valid(i) {
                self.counts[g] += c.value(i);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let b = booleans(&values[0])?;
        let counts: Int64Array = (0..b.len())
            .map(|i| {
                Some(i64::from(
                    b.is_valid(i) && b.value(i) && passes(opt_filter, i),
                ))
            })
            .collect();
        Ok(vec![Arc::new(counts)])
    }

    fn size(&self) -> usize {
        self.counts.capacity() * size_of::<i64>()
    }
}

// ---------------------------------------------------------------------------
// max_by / min_by

#[derive(Debug)]
struct By {
    /// `Greater` for max_by, `Less` for min_by.
    want: Ordering,
    best: Option<(ScalarValue, ScalarValue)>,
    /// The types of `x` and `y`, for typed NULLs.
    types: (DataType, DataType),
}

impl By {
    /// Folds rows of `(x, y)` into the best pair, skipping rows whose key is NULL.
    fn fold(&mut self, x: &ArrayRef, y: &ArrayRef) -> Result<()> {
        let cmp = make_comparator(y.as_ref(), y.as_ref(), SortOptions::default())?;
        let mut best: Option<usize> = None;
        for i in 0..y.len() {
            if y.is_null(i) {
                continue;
            }
            match best {
                Some(b) if cmp(i, b) != self.want => {}
                _ => best = Some(i),
            }
        }
        let Some(b) = best else { return Ok(()) };
        let key = ScalarValue::try_from_array(y, b)?;
        let better = match &self.best {
            None => true,
            Some((_, k)) => key.partial_cmp(k) == Some(self.want),
        };
        if better {
            self.best = Some((ScalarValue::try_from_array(x, b)?, key));
        }
        Ok(())
    }
}

impl Accumulator for By {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.fold(&values[0], &values[1])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match &self.best {
            Some((x, _)) => Ok(x.clone()),
            None => ScalarValue::try_from(&self.types.0),
        }
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.best.as_ref().map_or(0, |(x, y)| x.size() + y.size())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(match &self.best {
            Some((x, y)) => vec![x.clone(), y.clone()],
            None => vec![
                ScalarValue::try_from(&self.types.0)?,
                ScalarValue::try_from(&self.types.1)?,
            ],
        })
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.fold(&states[0], &states[1])
    }
}

fn by_state(a: &StateFieldsArgs) -> Result<Vec<FieldRef>> {
    Ok(vec![
        state_field(a, "value", a.input_fields[0].data_type().clone()),
        state_field(a, "key", a.input_fields[1].data_type().clone()),
    ])
}

fn by_make(args: &AccumulatorArgs, want: Ordering) -> Result<Box<dyn Accumulator>> {
    let types = (
        args.expr_fields[0].data_type().clone(),
        args.expr_fields[1].data_type().clone(),
    );
    Ok(Box::new(By {
        want,
        best: None,
        types,
    }))
}

fn max_by() -> (StateFn, MakeFn) {
    (by_state, |a| by_make(a, Ordering::Greater))
}

fn min_by() -> (StateFn, MakeFn) {
    (by_state, |a| by_make(a, Ordering::Less))
}

// ---------------------------------------------------------------------------
// geometric_mean

#[derive(Debug, Default)]
struct GeoMean {
    sum_ln: f64,
    count: i64,
}

impl Accumulator for GeoMean {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = values[0]
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| DataFusionError::Internal("geometric_mean expects doubles".into()))?;
        for x in v.iter().flatten() {
            self.sum_ln += x.ln();
            self.count += 1;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(
            (self.count > 0).then(|| (self.sum_ln / self.count as f64).exp()),
        ))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.sum_ln)),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let s = states[0]
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| DataFusionError::Internal("geometric_mean state".into()))?;
        let c = states[1]
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| DataFusionError::Internal("geometric_mean state".into()))?;
        self.sum_ln += s.iter().flatten().sum::<f64>();
        self.count += c.iter().flatten().sum::<i64>();
        Ok(())
    }
}

fn geometric_mean() -> (StateFn, MakeFn) {
    (
        |a| {
            Ok(vec![
                state_field(a, "sum_ln", DataType::Float64),
                state_field(a, "count", DataType::Int64),
            ])
        },
        |_| Ok(Box::new(GeoMean::default())),
    )
}

// ---------------------------------------------------------------------------
// skewness, kurtosis

/// Which central-moment statistic an accumulator returns.
#[derive(Debug, Clone, Copy)]
enum Moment {
    Skewness,
    Kurtosis,
}

/// The count, mean and central moment sums M2..M4 of the values seen,
/// updated and merged with Pébay's one-pass formulas.
#[derive(Debug)]
struct Moments {
    which: Moment,
    n: f64,
    mean: f64,
    m2: f64,
    m3: f64,
    m4: f64,
}

impl Moments {
    fn new(which: Moment) -> Self {
        Self {
            which,
            n: 0.0,
            mean: 0.0,
            m2: 0.0,
            m3: 0.0,
            m4: 0.0,
        }
    }

    fn push(&mut self, x: f64) {
        let n1 = self.n;
        self.n += 1.0;
        let n = self.n;
        let delta = x - self.mean;
        let dn = delta / n;
        let dn2 = dn * dn;
        let term1 = delta * dn * n1;
        self.mean += dn;
        self.m4 += term1 * dn2 * (n * n - 3.0 * n + 3.0) + 6.0 * dn2 * self.m2 - 4.0 * dn * self.m3;
        self.m3 += term1 * dn * (n - 2.0) - 3.0 * dn * self.m2;
        self.m2 += term1;
    }

    fn merge(&mut self, o: [f64; 5]) {
        let [nb, mb, m2b, m3b, m4b] = o;
        if nb == 0.0 {
            return;
        }
        let na = self.n;
        if na == 0.0 {
            (self.n, self.mean, self.m2, self.m3, self.m4) = (nb, mb, m2b, m3b, m4b);
            return;
        }
        let n = na + nb;
        let d = mb - self.mean;
        let (d2, d3, d4) = (d * d, d * d * d, d * d * d * d);
        let (m2a, m3a, m4a) = (self.m2, self.m3, self.m4);
        self.mean = (na * self.mean + nb * mb) / n;
        self.m2 = m2a + m2b + d2 * na * nb / n;
        self.m3 =
            m3a + m3b + d3 * na * nb * (na - nb) / (n * n) + 3.0 * d * (na * m2b - nb * m2a) / n;
        self.m4 = m4a
            + m4b
            + d4 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
            + 6.0 * d2 * (na * na * m2b + nb * nb * m2a) / (n * n)
            + 4.0 * d * (na * m3b - nb * m3a) / n;
        self.n = n;
    }
}

impl Accumulator for Moments {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = values[0]
            .as_any()
            .downcast_ref::<Float64Array>()
            .ok_or_else(|| DataFusionError::Internal("moments expect doubles".into()))?;
        for x in v.iter().flatten() {
            self.push(x);
        }
        Ok(())
    }

    /// Skewness: sqrt(n)·M3/M2^1.5 (NULL under 3 values); kurtosis: the
    /// unbiased excess kurtosis of Trino's documentation (NULL under 4).
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let n = self.n;
        Ok(ScalarValue::Float64(match self.which {
            Moment::Skewness => (n >= 3.0).then(|| n.sqrt() * self.m3 / self.m2.powf(1.5)),
            Moment::Kurtosis => (n >= 4.0).then(|| {
                let var = self.m2 / (n - 1.0);
                n * (n + 1.0) / ((n - 1.0) * (n - 2.0) * (n - 3.0)) * self.m4 / (var * var)
                    - 3.0 * (n - 1.0) * (n - 1.0) / ((n - 2.0) * (n - 3.0))
            }),
        }))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok([self.n, self.mean, self.m2, self.m3, self.m4]
            .into_iter()
            .map(|v| ScalarValue::Float64(Some(v)))
            .collect())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let cols = states
            .iter()
            .map(|s| {
                s.as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| DataFusionError::Internal("moments state".into()))
            })
            .collect::<Result<Vec<_>>>()?;
        for i in 0..cols[0].len() {
            if cols.iter().any(|c| c.is_null(i)) {
                continue;
            }
            self.merge([
                cols[0].value(i),
                cols[1].value(i),
                cols[2].value(i),
                cols[3].value(i),
                cols[4].value(i),
            ]);
        }
        Ok(())
    }
}

fn moments(which: Moment) -> (StateFn, MakeFn) {
    let make: MakeFn = match which {
        Moment::Skewness => |_| Ok(Box::new(Moments::new(Moment::Skewness))),
        Moment::Kurtosis => |_| Ok(Box::new(Moments::new(Moment::Kurtosis))),
    };
    (
        |a| {
            Ok(["n", "mean", "m2", "m3", "m4"]
                .iter()
                .map(|w| state_field(a, w, DataType::Float64))
                .collect())
        },
        make,
    )
}

// ---------------------------------------------------------------------------
// approx_percentile

fn coerce_percentile(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 3)?;
    let x = match &a[0] {
        t if t.is_integer() => DataType::Int64,
        t if t.is_numeric() || *t == DataType::Null => DataType::Float64,
        t => return plan_err!("expects a number, got {t}"),
    };
    let weight = match a.len() {
        3 if a[1].is_numeric() || a[1] == DataType::Null => Some(DataType::Float64),
        3 => return plan_err!("the weight must be a number, got {}", a[1]),
        _ => None,
    };
    let p = match &a[a.len() - 1] {
        t if t.is_numeric() => DataType::Float64,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
            if f.data_type().is_numeric() =>
        {
            DataType::new_list(DataType::Float64, true)
        }
        t => return plan_err!("the percentile must be a double or an array of doubles, got {t}"),
    };
    Ok([Some(x), weight, Some(p)].into_iter().flatten().collect())
}

fn ret_percentile(a: &[DataType]) -> Result<DataType> {
    let elem = a[0].clone();
    Ok(match &a[a.len() - 1] {
        DataType::List(_) => DataType::new_list(elem, true),
        _ => elem,
    })
}

/// A t-digest, estimated at each requested percentile on evaluation.
#[derive(Debug)]
struct Percentiles {
    /// A plain or a weighted t-digest accumulator (same state layout).
    digest: Box<dyn Accumulator>,
    ps: Vec<f64>,
    /// Integer input: round the estimates like Presto's bigint overload.
    integer: bool,
    /// `ARRAY[p, ...]` was given: return an array.
    list: bool,
    /// Values not yet merged into the digest. A grouped aggregation hands
    /// each group a few values per batch, and merging a handful into a
    /// t-digest costs about what merging hundreds does; buffering makes
    /// the merges few and large.
    pending: Vec<f64>,
}

/// Values buffered per group before they are merged into its digest.
const PENDING_VALUES: usize = 256;

fn percentile_values(args: &AccumulatorArgs) -> Result<(Vec<f64>, bool)> {
    let expr = &args.exprs[args.exprs.len() - 1];
    let batch = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let value = match expr.evaluate(&batch) {
        Ok(ColumnarValue::Scalar(s)) => s,
        _ => return plan_err!("approx_percentile: the percentile must be a constant"),
    };
    let (raw, list) = match &value {
        ScalarValue::List(l) => {
            let values = l.value(0);
            let f = values
                .as_any()
                .downcast_ref::<Float64Array>()
                .ok_or_else(|| DataFusionError::Plan("percentiles must be doubles".into()))?;
            (f.iter().collect::<Vec<_>>(), true)
        }
        ScalarValue::Float64(v) => (vec![*v], false),
        other => return plan_err!("approx_percentile: unsupported percentile {other}"),
    };
    let mut ps = Vec::with_capacity(raw.len());
    for p in raw {
        match p {
            Some(p) if (0.0..=1.0).contains(&p) => ps.push(p),
            Some(p) => {
                return plan_err!("approx_percentile: percentile must be between 0 and 1, got {p}");
            }
            None => return plan_err!("approx_percentile: percentile must not be NULL"),
        }
    }
    if ps.is_empty() {
        return plan_err!("approx_percentile: the percentile array is empty");
    }
    Ok((ps, list))
}

/// The state of DataFusion's t-digest accumulator.
fn digest_state(a: &StateFieldsArgs) -> Vec<FieldRef> {
    vec![
        state_field(a, "max_size", DataType::UInt64),
        state_field(a, "sum", DataType::Float64),
        state_field(a, "count", DataType::Float64),
        state_field(a, "max", DataType::Float64),
        state_field(a, "min", DataType::Float64),
        Arc::new(Field::new_list(
            format!("{}[centroids]", a.name),
            Field::new_list_field(DataType::Float64, true),
            true,
        )),
    ]
}

fn approx_percentile() -> (StateFn, MakeFn) {
    (
        // One digest serves every requested percentile.
        |a| Ok(digest_state(a)),
        |args| {
            let (ps, list) = percentile_values(args)?;
            let integer = args.expr_fields[0].data_type().is_integer();
            let plain = ApproxPercentileAccumulator::new(ps[0], DataType::Float64);
            let digest: Box<dyn Accumulator> = if args.exprs.len() == 3 {
                Box::new(ApproxPercentileWithWeightAccumulator::new(plain))
            } else {
                Box::new(plain)
            };
            Ok(Box::new(Percentiles {
                digest,
                ps,
                integer,
                list,
                pending: Vec::new(),
            }))
        },
    )
}

/// `approx_percentile` (unweighted) for all groups at once: each row's
/// value is pushed to its group's buffer, and full buffers are merged into
/// the group's digest.
#[derive(Debug)]
struct PercentileGroups {
    groups: Vec<Percentiles>,
    ps: Vec<f64>,
    integer: bool,
    list: bool,
    ret: DataType,
}

fn percentile_groups(args: &AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
    let (ps, list) = percentile_values(args)?;
    Ok(Box::new(PercentileGroups {
        groups: Vec::new(),
        ps,
        integer: args.expr_fields[0].data_type().is_integer(),
        list,
        ret: args.return_field.data_type().clone(),
    }))
}

impl PercentileGroups {
    /// An empty digest.
    fn fresh(&self) -> Percentiles {
        Percentiles {
            digest: Box::new(ApproxPercentileAccumulator::new(
                self.ps[0],
                DataType::Float64,
            )),
            ps: self.ps.clone(),
            integer: self.integer,
            list: self.list,
            pending: Vec::new(),
        }
    }

    fn grow(&mut self, total: usize) {
        while self.groups.len() < total {
            let fresh = self.fresh();
            self.groups.push(fresh);
        }
    }

    /// The states of digests, one row each.
    fn states(&self, digests: impl Iterator<Item = Percentiles>) -> Result<Vec<ArrayRef>> {
        let mut columns: Vec<Vec<ScalarValue>> = Vec::new();
        for mut d in digests {
            for (c, v) in d.state()?.into_iter().enumerate() {
                if columns.len() <= c {
                    columns.push(Vec::new());
                }
                columns[c].push(v);
            }
        }
        if columns.is_empty() {
            return self
                .fresh()
                .state()?
                .iter()
                .map(|v| Ok(new_empty_array(&v.data_type())))
                .collect();
        }
        columns
            .into_iter()
            .map(ScalarValue::iter_to_array)
            .collect()
    }
}

impl GroupsAccumulator for PercentileGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let x = datafusion::arrow::compute::cast(&values[0], &DataType::Float64)?;
        let x = x.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        for (i, &g) in group_indices.iter().enumerate() {
            if x.is_valid(i) && passes(opt_filter, i) {
                let group = &mut self.groups[g];
                group.pending.push(x.value(i));
                if group.pending.len() >= PENDING_VALUES {
                    group.flush()?;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = emit_to.take_needed(&mut self.groups);
        if taken.is_empty() {
            return Ok(new_empty_array(&self.ret));
        }
        let values = taken
            .into_iter()
            .map(|mut g| g.evaluate())
            .collect::<Result<Vec<_>>>()?;
        ScalarValue::iter_to_array(values)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.states(taken.into_iter())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        for (i, &g) in group_indices.iter().enumerate() {
            let row: Vec<ArrayRef> = values.iter().map(|a| a.slice(i, 1)).collect();
            self.groups[g].merge_batch(&row)?;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // A digest of each row on its own.
        let x = datafusion::arrow::compute::cast(&values[0], &DataType::Float64)?;
        let x = x.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let digests = (0..x.len()).map(|i| {
            let mut d = self.fresh();
            if x.is_valid(i) && passes(opt_filter, i) {
                d.pending.push(x.value(i));
            }
            d
        });
        self.states(digests)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.groups.iter().map(Accumulator::size).sum::<usize>()
    }
}

impl Percentiles {
    /// Merges the buffered values into the digest.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let values = Float64Array::from(std::mem::take(&mut self.pending));
        self.digest.update_batch(&[Arc::new(values)])
    }

    fn cast(&self, v: f64) -> ScalarValue {
        if self.integer {
            ScalarValue::Int64(Some(v.round() as i64))
        } else {
            ScalarValue::Float64(Some(v))
        }
    }
}

impl Accumulator for Percentiles {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let x = datafusion::arrow::compute::cast(&values[0], &DataType::Float64)?;
        if values.len() == 3 {
            let w = datafusion::arrow::compute::cast(&values[1], &DataType::Float64)?;
            let w = w.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            if let Some(bad) = w.iter().flatten().find(|w| !w.is_finite() || *w < 0.0) {
                return Err(DataFusionError::Execution(format!(
                    "approx_percentile: weights must be finite and not negative, got {bad}"
                )));
            }
            return self.digest.update_batch(&[x, values[1].clone()]);
        }
        let x = x.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        // Nulls are skipped, as the digest itself does.
        self.pending.extend(x.iter().flatten());
        if self.pending.len() >= PENDING_VALUES {
            self.flush()?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.flush()?;
        let state = self.digest.state()?;
        let arrays = state
            .iter()
            .map(|s| s.to_array())
            .collect::<Result<Vec<_>>>()?;
        let mut results = Vec::with_capacity(self.ps.len());
        for p in &self.ps {
            let mut acc = ApproxPercentileAccumulator::new(*p, DataType::Float64);
            acc.merge_batch(&arrays)?;
            results.push(match acc.evaluate()? {
                ScalarValue::Float64(Some(v)) => Some(v),
                _ => None,
            });
        }
        let elem = if self.integer {
            DataType::Int64
        } else {
            DataType::Float64
        };
        if !self.list {
            return Ok(match results[0] {
                Some(v) => self.cast(v),
                None => ScalarValue::try_from(&elem)?,
            });
        }
        if results.iter().any(Option::is_none) {
            return ScalarValue::try_from(&DataType::new_list(elem, true));
        }
        let items: Vec<ScalarValue> = results
            .into_iter()
            .flatten()
            .map(|v| self.cast(v))
            .collect();
        Ok(ScalarValue::List(ScalarValue::new_list_nullable(
            &items, &elem,
        )))
    }

    fn size(&self) -> usize {
        self.digest.size() + size_of_val(self) + (self.ps.len() + self.pending.capacity()) * 8
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.flush()?;
        self.digest.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.digest.merge_batch(states)
    }
}

// ---------------------------------------------------------------------------
// map_agg, histogram

/// Arrow's map type, laid out as DataFusion's `map` function makes it.
fn map_type(key: &DataType, value: &DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(entry_fields(key, value)),
            false,
        )),
        false,
    )
}

fn entry_fields(key: &DataType, value: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("key", key.clone(), false),
        Field::new("value", value.clone(), true),
    ])
}

/// Entries keyed by value: `map_agg` keeps the first value per key,
/// `histogram` counts. NULL keys are skipped, as Presto does.
#[derive(Debug)]
struct MapAcc {
    entries: HashMap<ScalarValue, ScalarValue>,
    key: DataType,
    value: DataType,
    count: bool,
}

impl MapAcc {
    fn boxed(args: &AccumulatorArgs, count: bool) -> Result<Box<dyn Accumulator>> {
        let DataType::Map(entries, _) = args.return_type() else {
            return plan_err!("{}: expected a map result", args.name);
        };
        let DataType::Struct(fields) = entries.data_type() else {
            return plan_err!("{}: expected map entries", args.name);
        };
        Ok(Box::new(MapAcc {
            entries: HashMap::new(),
            key: fields[0].data_type().clone(),
            value: fields[1].data_type().clone(),
            count,
        }))
    }

    fn add(&mut self, keys: &ArrayRef, values: Option<&ArrayRef>) -> Result<()> {
        for i in 0..keys.len() {
            if keys.is_null(i) {
                continue;
            }
            let k = ScalarValue::try_from_array(keys, i)?;
            if self.count {
                let n = match values {
                    Some(v) => v
                        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                        .value(i),
                    None => 1,
                };
                let slot = self.entries.entry(k).or_insert(ScalarValue::Int64(Some(0)));
                if let ScalarValue::Int64(Some(c)) = slot {
                    *c += n;
                }
            } else if !self.entries.contains_key(&k)
                && let Some(v) = values
            {
                let v = ScalarValue::try_from_array(v, i)?;
                self.entries.insert(k, v);
            }
        }
        Ok(())
    }

    /// Keys and values, sorted by key so results are deterministic.
    fn sorted(&self) -> (Vec<ScalarValue>, Vec<ScalarValue>) {
        let mut pairs: Vec<_> = self.entries.iter().collect();
        pairs.sort_by(|a, b| a.0.partial_cmp(b.0).unwrap_or(Ordering::Equal));
        pairs
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .unzip()
    }

    fn array(values: Vec<ScalarValue>, t: &DataType) -> Result<ArrayRef> {
        if values.is_empty() {
            Ok(new_empty_array(t))
        } else {
            ScalarValue::iter_to_array(values)
        }
    }
}

impl Accumulator for MapAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], if self.count { None } else { values.get(1) })
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.entries.is_empty() {
            return ScalarValue::try_from(&map_type(&self.key, &self.value));
        }
        let (keys, values) = self.sorted();
        let n = keys.len();
        let entries = StructArray::try_new(
            entry_fields(&self.key, &self.value),
            vec![
                Self::array(keys, &self.key)?,
                Self::array(values, &self.value)?,
            ],
            None,
        )?;
        let DataType::Map(field, _) = map_type(&self.key, &self.value) else {
            unreachable!("map_type makes a map")
        };
        let map = MapArray::try_new(field, OffsetBuffer::from_lengths([n]), entries, None, false)?;
        Ok(ScalarValue::Map(Arc::new(map)))
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self
                .entries
                .iter()
                .map(|(k, v)| k.size() + v.size())
                .sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (keys, values) = self.sorted();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&keys, &self.key)),
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &self.value)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let keys = states[0].as_list::<i32>();
        let values = states[1].as_list::<i32>();
        for row in 0..keys.len() {
            if keys.is_null(row) {
                continue;
            }
            self.add(&keys.value(row), Some(&values.value(row)))?;
        }
        Ok(())
    }
}

fn map_state(a: &StateFieldsArgs) -> Result<Vec<FieldRef>> {
    let DataType::Map(entries, _) = a.return_type() else {
        return plan_err!("{}: expected a map result", a.name);
    };
    let DataType::Struct(fields) = entries.data_type() else {
        return plan_err!("{}: expected map entries", a.name);
    };
    Ok(vec![
        state_field(
            a,
            "keys",
            DataType::new_list(fields[0].data_type().clone(), true),
        ),
        state_field(
            a,
            "values",
            DataType::new_list(fields[1].data_type().clone(), true),
        ),
    ])
}

fn map_agg() -> (StateFn, MakeFn) {
    (map_state, |args| MapAcc::boxed(args, false))
}

fn histogram() -> (StateFn, MakeFn) {
    (map_state, |args| MapAcc::boxed(args, true))
}

// ---------------------------------------------------------------------------
// approx_distinct as a bigint

/// A built-in aggregate whose unsigned count is returned as Presto's bigint.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BigintResult {
    inner: Arc<AggregateUDF>,
}

impl BigintResult {
    fn new(inner: Arc<AggregateUDF>) -> Self {
        Self { inner }
    }
}

#[derive(Debug)]
struct BigintAcc(Box<dyn Accumulator>);

impl Accumulator for BigintAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(values)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.evaluate()?.cast_to(&DataType::Int64)
    }

    fn size(&self) -> usize {
        self.0.size() + size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.state()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states)
    }
}

impl AggregateUDFImpl for BigintResult {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let inner_args = AccumulatorArgs {
            return_field: Arc::new(Field::new(acc_args.name, DataType::UInt64, true)),
            ..acc_args
        };
        Ok(Box::new(BigintAcc(self.inner.accumulator(inner_args)?)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let inner_args = StateFieldsArgs {
            return_field: Arc::new(Field::new(args.name, DataType::UInt64, true)),
            ..args
        };
        self.inner.state_fields(inner_args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{ctx, err, one, run};

    /// Rows turned into states one by one (what DataFusion does when a
    /// partial aggregation barely reduces the rows) and merged give what
    /// updating the groups directly gives.
    #[test]
    fn grouped_accumulators_merge_row_states() {
        use super::*;
        let x: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.0),
            Some(5.0),
            None,
            Some(3.0),
            Some(10.0),
            Some(7.0),
        ]));
        let groups = [0, 0, 0, 0, 1, 0];
        let filter = BooleanArray::from(vec![true, true, true, true, true, false]);
        let percentiles = || PercentileGroups {
            groups: Vec::new(),
            ps: vec![0.5],
            integer: false,
            list: false,
            ret: DataType::Float64,
        };
        let mut direct = percentiles();
        direct
            .update_batch(std::slice::from_ref(&x), &groups, Some(&filter), 2)
            .unwrap();
        let mut merged = percentiles();
        let states = merged
            .convert_to_state(std::slice::from_ref(&x), Some(&filter))
            .unwrap();
        merged.merge_batch(&states, &groups, 2).unwrap();
        let a = direct.evaluate(EmitTo::All).unwrap();
        let b = merged.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            a.as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .values(),
            &[3.0, 10.0]
        );
        assert_eq!(&a, &b);

        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![
            Some(true),
            Some(false),
            None,
            Some(true),
            Some(true),
            Some(true),
        ]));
        let mut direct = CountIfGroups::default();
        direct
            .update_batch(std::slice::from_ref(&flags), &groups, Some(&filter), 2)
            .unwrap();
        let mut merged = CountIfGroups::default();
        let states = merged.convert_to_state(&[flags], Some(&filter)).unwrap();
        merged.merge_batch(&states, &groups, 2).unwrap();
        let a = direct.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .values(),
            &[2, 1]
        );
        assert_eq!(&a, &merged.evaluate(EmitTo::All).unwrap());
    }

    #[tokio::test]
    async fn simple_aggregates() {
        let c = ctx();
        let t = "(VALUES (1, 'a', true), (5, 'b', false), (3, 'c', NULL), (NULL, 'd', true)) t(x, s, b)";
        let rows = run(
            &c,
            &format!("SELECT count_if(b), max_by(s, x), min_by(s, x), arbitrary(s) IS NOT NULL, every(b), bool_or(b) FROM {t}"),
        )
        .await
        .unwrap();
        assert_eq!(rows[0], ["2", "b", "a", "true", "false", "true"]);
        assert_eq!(
            one(
                &c,
                "SELECT geometric_mean(x) FROM (VALUES (2.0), (8.0)) t(x)"
            )
            .await,
            "4.0"
        );
        assert_eq!(
            one(
                &c,
                "SELECT geometric_mean(x) FROM (VALUES (CAST(NULL AS DOUBLE))) t(x)"
            )
            .await,
            "NULL"
        );
        assert_eq!(
            one(
                &c,
                "SELECT max_by(s, x) FROM (VALUES ('a', CAST(NULL AS INT))) t(s, x)"
            )
            .await,
            "NULL"
        );
        let rows = run(
            &c,
            "SELECT g, max_by(s, x), count_if(x > 1) FROM (VALUES (1, 'a', 1), (1, 'b', 2), (2, 'c', 9)) t(g, s, x) GROUP BY g ORDER BY g",
        )
        .await
        .unwrap();
        assert_eq!(rows, vec![vec!["1", "b", "1"], vec!["2", "c", "1"]]);
    }

    #[tokio::test]
    async fn percentiles() {
        let c = ctx();
        let t = "(SELECT value AS x FROM generate_series(1, 1000)) t";
        let median: i64 = one(&c, &format!("SELECT approx_percentile(x, 0.5) FROM {t}"))
            .await
            .parse()
            .unwrap();
        assert!((495..=505).contains(&median), "{median}");
        let both = one(
            &c,
            &format!("SELECT approx_percentile(x, ARRAY[0.1, 0.9]) FROM {t}"),
        )
        .await;
        let both: Vec<i64> = both
            .trim_matches(['[', ']'])
            .split(", ")
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            (95..=105).contains(&both[0]) && (895..=905).contains(&both[1]),
            "{both:?}"
        );
        assert_eq!(
            one(&c, "SELECT approx_percentile(x, ARRAY[0.0, 1.0]) FROM (VALUES (1), (2), (3), (4), (5)) t(x)").await,
            "[1, 5]"
        );
        assert_eq!(
            one(
                &c,
                "SELECT approx_percentile(x, 0.5) FROM (VALUES (1.0), (2.0), (3.0)) t(x)"
            )
            .await,
            "2.0"
        );
        assert_eq!(
            one(
                &c,
                "SELECT approx_percentile(x, 0.5) FROM (VALUES (CAST(NULL AS DOUBLE))) t(x)"
            )
            .await,
            "NULL"
        );
        // Weighted: 100 weighs ten times as much as 1..99 together.
        let w = "(SELECT value AS x, CASE WHEN value = 100 THEN 990 ELSE 1 END AS w \
                 FROM generate_series(1, 100)) t";
        let rows = run(
            &c,
            &format!("SELECT approx_percentile(x, w, 0.5), approx_percentile(x, w, 0.05) FROM {w}"),
        )
        .await
        .unwrap();
        assert_eq!(rows[0][0], "100");
        let low: i64 = rows[0][1].parse().unwrap();
        assert!((45..=55).contains(&low), "{low}");
        assert_eq!(
            one(
                &c,
                "SELECT approx_percentile(x, w, ARRAY[0.0, 0.99]) FROM (VALUES (1.0, 1), (2.0, 1), (3.0, 98)) t(x, w)"
            )
            .await,
            "[1.0, 3.0]"
        );
        let e = err(
            &c,
            "SELECT approx_percentile(x, w, 0.5) FROM (VALUES (1, -1)) t(x, w)",
        )
        .await;
        assert!(e.contains("not negative"), "{e}");
        let e = err(&c, &format!("SELECT approx_percentile(x, 1.5) FROM {t}")).await;
        assert!(e.contains("between 0 and 1"), "{e}");
        let e = err(&c, &format!("SELECT approx_percentile(x, x) FROM {t}")).await;
        assert!(e.contains("constant"), "{e}");
        assert_eq!(
            one(
                &c,
                "SELECT approx_distinct(x) FROM (VALUES (CAST(NULL AS INT))) t(x)"
            )
            .await,
            "0"
        );
        assert_eq!(
            one(
                &c,
                "SELECT arrow_typeof(approx_distinct(x)) FROM (VALUES (1), (2), (2)) t(x)"
            )
            .await,
            "Int64"
        );
        assert_eq!(
            one(
                &c,
                "SELECT approx_distinct(x) FROM (VALUES (1), (2), (2)) t(x)"
            )
            .await,
            "2"
        );
    }

    #[tokio::test]
    async fn maps() {
        let c = ctx();
        let t = "(VALUES ('b', 2, 'x'), ('a', 1, 'y'), ('b', 3, 'x'), (NULL, 4, 'x')) t(k, v, g)";
        assert_eq!(
            one(&c, &format!("SELECT histogram(k) FROM {t}")).await,
            "{a: 1, b: 2}"
        );
        assert_eq!(
            one(&c, &format!("SELECT map_agg(k, v)['a'] FROM {t}")).await,
            "1"
        );
        assert_eq!(
            one(&c, &format!("SELECT cardinality(map_agg(k, v)) FROM {t}")).await,
            "2"
        );
        // Grouped, so partial states are merged.
        let rows = run(
            &c,
            &format!("SELECT g, histogram(v) FROM {t} GROUP BY g ORDER BY g"),
        )
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![vec!["x", "{2: 1, 3: 1, 4: 1}"], vec!["y", "{1: 1}"]]
        );
        assert_eq!(
            one(&c, "SELECT histogram(x) FROM (VALUES (1)) t(x) WHERE x > 1").await,
            "NULL"
        );
    }
}
