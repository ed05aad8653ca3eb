//! Trino array and map functions DataFusion lacks or defines differently:
//! `array_position` (1-based, 0 when absent), `array_remove` (every match),
//! `array_sort` (NULLs last), `arrays_overlap` (with Trino's NULL rule),
//! `array_max`/`array_min` (NULL when an element is NULL), `slice`,
//! `repeat`, `trim_array`, `ngrams`, `combinations`, `contains_sequence`,
//! `array_histogram`, `map_concat`, `map_from_entries`,
//! `multimap_from_entries`, and `sequence` (Trino's directions and cap).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, DynComparator, Int64Array, ListArray, MapArray,
    StructArray, UInt64Array, make_comparator,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::{SortOptions, cast, concat, take};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, IntervalUnit, TimeUnit};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::{
    Func, MAX_ARRAY_ELEMENTS, MAX_DERIVED_ELEMENTS, arity, fail, int_at, ints, is_integer,
    ret_bool, ret_i64, want_int,
};

/// The array and map functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new("array_position", coerce_array_elem, ret_i64, array_position),
        Func::new("array_remove", coerce_array_elem, ret_first, array_remove),
        Func::new("array_sort", coerce_array, ret_first, array_sort),
        Func::new(
            "arrays_overlap",
            coerce_two_arrays,
            ret_bool,
            arrays_overlap,
        ),
        Func::new("array_max", coerce_array, ret_elem, |a, _| {
            array_extreme(a, Ordering::Greater)
        }),
        Func::new("array_min", coerce_array, ret_elem, |a, _| {
            array_extreme(a, Ordering::Less)
        }),
        Func::new("slice", coerce_slice, ret_first, slice),
        Func::new("repeat", coerce_repeat, ret_repeat, repeat),
        Func::new("trim_array", coerce_array_int, ret_first, trim_array),
        Func::new("ngrams", coerce_array_int, ret_nested, ngrams),
        Func::new("combinations", coerce_array_int, ret_nested, combinations),
        Func::new(
            "contains_sequence",
            coerce_two_arrays,
            ret_bool,
            contains_sequence,
        ),
        Func::new(
            "array_histogram",
            coerce_array,
            ret_histogram,
            array_histogram,
        ),
        Func::new("cardinality", coerce_cardinality, ret_i64, cardinality),
        Func::new("map_concat", coerce_maps, ret_first, map_concat),
        Func::new(
            "map_from_entries",
            coerce_entries,
            |a| ret_from_entries(a, false),
            |a, t| map_from_entries(a, t, false),
        ),
        Func::new(
            "multimap_from_entries",
            coerce_entries,
            |a| ret_from_entries(a, true),
            |a, t| map_from_entries(a, t, true),
        ),
    ]
}

// ---------------------------------------------------------------------------
// helpers

/// The element field of an array type.
fn elem_field(t: &DataType) -> Option<FieldRef> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.clone())
        }
        _ => None,
    }
}

/// An array argument, as `List`.
fn want_array(t: &DataType, what: &str) -> Result<DataType> {
    match (elem_field(t), t) {
        (Some(f), _) => Ok(DataType::List(f)),
        (None, DataType::Null) => Ok(DataType::new_list(DataType::Null, true)),
        (None, t) => plan_err!("{what} must be an array, got {t}"),
    }
}

fn coerce_array(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    Ok(vec![want_array(&a[0], "the argument")?])
}

fn coerce_array_elem(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    let list = want_array(&a[0], "the first argument")?;
    let elem = elem_field(&list).map(|f| f.data_type().clone());
    let elem = match elem {
        Some(DataType::Null) | None => a[1].clone(),
        Some(e) => e,
    };
    let list = match &list {
        DataType::List(f) if f.data_type().is_null() => DataType::new_list(elem.clone(), true),
        _ => list,
    };
    Ok(vec![list, elem])
}

fn coerce_array_int(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    Ok(vec![
        want_array(&a[0], "the first argument")?,
        want_int(&a[1], "n")?,
    ])
}

fn coerce_two_arrays(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    let (x, y) = (
        want_array(&a[0], "the first argument")?,
        want_array(&a[1], "the second argument")?,
    );
    let (fx, fy) = (elem_field(&x), elem_field(&y));
    match (fx, fy) {
        (Some(fx), Some(fy)) if fx.data_type() == fy.data_type() => Ok(vec![x, y]),
        (Some(fx), Some(_)) if fx.data_type().is_null() => Ok(vec![y.clone(), y]),
        (Some(_), Some(fy)) if fy.data_type().is_null() => Ok(vec![x.clone(), x]),
        (Some(fx), Some(fy)) => {
            let common = datafusion::logical_expr::type_coercion::binary::comparison_coercion(
                fx.data_type(),
                fy.data_type(),
            );
            match common {
                Some(c) => Ok(vec![
                    DataType::new_list(c.clone(), true),
                    DataType::new_list(c, true),
                ]),
                None => plan_err!(
                    "the arrays' elements must be comparable, got {} and {}",
                    fx.data_type(),
                    fy.data_type()
                ),
            }
        }
        _ => plan_err!("expects two arrays"),
    }
}

fn ret_first(a: &[DataType]) -> Result<DataType> {
    Ok(a[0].clone())
}

fn ret_elem(a: &[DataType]) -> Result<DataType> {
    match elem_field(&a[0]) {
        Some(f) => Ok(f.data_type().clone()),
        None => plan_err!("expects an array, got {}", a[0]),
    }
}

fn ret_nested(a: &[DataType]) -> Result<DataType> {
    Ok(DataType::new_list(a[0].clone(), true))
}

/// Downcasts a `List` argument.
fn lists(a: &ArrayRef) -> Result<&ListArray> {
    a.as_any()
        .downcast_ref()
        .ok_or_else(|| DataFusionError::Internal(format!("expected a list, got {}", a.data_type())))
}

/// The value range of row `i` of a list.
fn bounds(list: &ListArray, i: usize) -> (usize, usize) {
    let o = list.value_offsets();
    (o[i] as usize, o[i + 1] as usize)
}

/// A list of `field` whose row `i` holds `values[k]` for each `k` in
/// `rows[i]` (None: a NULL row).
fn build_list(
    field: FieldRef,
    values: &dyn Array,
    rows: &[Option<Vec<usize>>],
) -> Result<ArrayRef> {
    let mut idx = Vec::new();
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    offsets.push(0i32);
    for r in rows {
        if let Some(r) = r {
            idx.extend(r.iter().map(|&k| k as u64));
        }
        offsets.push(
            i32::try_from(idx.len())
                .map_err(|_| DataFusionError::Execution("the result array is too large".into()))?,
        );
    }
    let taken = take(values, &UInt64Array::from(idx), None)?;
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        taken,
        Some(nulls),
    )?))
}

fn list_field(t: &DataType) -> Result<FieldRef> {
    elem_field(t).ok_or_else(|| DataFusionError::Internal(format!("expected a list, got {t}")))
}

/// Whether value `i` of `a` is NULL (every value of an array of NULL type
/// is, though such arrays carry no validity bits).
fn null_at(a: &dyn Array, i: usize) -> bool {
    a.data_type().is_null() || a.is_null(i)
}

/// Whether two values are equal (NULLs are not equal to anything).
fn equal(cmp: &DynComparator, a: &dyn Array, i: usize, b: &dyn Array, j: usize) -> bool {
    !null_at(a, i) && !null_at(b, j) && cmp(i, j) == Ordering::Equal
}

// ---------------------------------------------------------------------------
// array functions

/// `array_position(x, element)`: the 1-based position of the first
/// `element` in `x`, 0 when absent.
fn array_position(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let list = lists(&a[0])?;
    let values = list.values();
    let cmp = make_comparator(values.as_ref(), a[1].as_ref(), SortOptions::default())?;
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        if list.is_null(i) || null_at(a[1].as_ref(), i) {
            out.push(None);
            continue;
        }
        let (s, e) = bounds(list, i);
        let pos = (s..e).position(|j| equal(&cmp, values.as_ref(), j, a[1].as_ref(), i));
        out.push(Some(pos.map_or(0, |p| p as i64 + 1)));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

/// `array_remove(x, element)`: `x` without the elements equal to
/// `element` (NULL elements stay).
fn array_remove(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let list = lists(&a[0])?;
    let values = list.values();
    let cmp = make_comparator(values.as_ref(), a[1].as_ref(), SortOptions::default())?;
    let rows: Vec<Option<Vec<usize>>> = (0..list.len())
        .map(|i| {
            if list.is_null(i) || null_at(a[1].as_ref(), i) {
                return None;
            }
            let (s, e) = bounds(list, i);
            Some(
                (s..e)
                    .filter(|&j| !equal(&cmp, values.as_ref(), j, a[1].as_ref(), i))
                    .collect(),
            )
        })
        .collect();
    build_list(list_field(t)?, values.as_ref(), &rows)
}

/// `array_sort(x)`: ascending, NULLs last.
fn array_sort(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let list = lists(&a[0])?;
    let values = list.values();
    let opts = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let cmp = make_comparator(values.as_ref(), values.as_ref(), opts)?;
    let rows: Vec<Option<Vec<usize>>> = (0..list.len())
        .map(|i| {
            list.is_valid(i).then(|| {
                let (s, e) = bounds(list, i);
                let mut idx: Vec<usize> = (s..e).collect();
                idx.sort_by(|&x, &y| cmp(x, y));
                idx
            })
        })
        .collect();
    build_list(list_field(t)?, values.as_ref(), &rows)
}

/// `arrays_overlap(x, y)`: whether the arrays share a non-NULL element;
/// NULL when they do not but either holds a NULL.
fn arrays_overlap(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (x, y) = (lists(&a[0])?, lists(&a[1])?);
    let (xv, yv) = (x.values(), y.values());
    let cmp = make_comparator(xv.as_ref(), yv.as_ref(), SortOptions::default())?;
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        if x.is_null(i) || y.is_null(i) {
            out.push(None);
            continue;
        }
        let ((xs, xe), (ys, ye)) = (bounds(x, i), bounds(y, i));
        let found = (xs..xe).any(|p| (ys..ye).any(|q| equal(&cmp, xv.as_ref(), p, yv.as_ref(), q)));
        let nulls =
            (xs..xe).any(|p| null_at(xv.as_ref(), p)) || (ys..ye).any(|q| null_at(yv.as_ref(), q));
        out.push(if found {
            Some(true)
        } else if nulls {
            None
        } else {
            Some(false)
        });
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

/// `array_max`/`array_min`: NULL for an empty array or one holding NULL.
fn array_extreme(a: &[ArrayRef], want: Ordering) -> Result<ArrayRef> {
    let list = lists(&a[0])?;
    let values = list.values();
    let cmp = make_comparator(values.as_ref(), values.as_ref(), SortOptions::default())?;
    let mut idx = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let (s, e) = bounds(list, i);
        if list.is_null(i) || s == e || (s..e).any(|j| null_at(values.as_ref(), j)) {
            idx.push(None);
            continue;
        }
        let mut best = s;
        for j in s + 1..e {
            if cmp(j, best) == want {
                best = j;
            }
        }
        idx.push(Some(best as u64));
    }
    Ok(take(values.as_ref(), &UInt64Array::from(idx), None)?)
}

fn coerce_slice(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 3, 3)?;
    Ok(vec![
        want_array(&a[0], "the first argument")?,
        want_int(&a[1], "start")?,
        want_int(&a[2], "length")?,
    ])
}

/// `slice(x, start, length)`: up to `length` elements from the 1-based
/// `start` (from the end when negative).
fn slice(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let (list, start, length) = (lists(&a[0])?, ints(&a[1])?, ints(&a[2])?);
    let mut rows = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let (Some(from), Some(len)) = (int_at(start, i), int_at(length, i)) else {
            rows.push(None);
            continue;
        };
        if list.is_null(i) {
            rows.push(None);
            continue;
        }
        if from == 0 {
            return fail("slice: SQL array indices start at 1");
        }
        if len < 0 {
            return fail(format!(
                "slice: the length must be greater than or equal to 0, got {len}"
            ));
        }
        let (s, e) = bounds(list, i);
        let n = (e - s) as i64;
        let first = if from > 0 { from - 1 } else { n + from };
        if first < 0 || first >= n {
            rows.push(Some(Vec::new()));
            continue;
        }
        let last = first.saturating_add(len).min(n);
        rows.push(Some((s + first as usize..s + last as usize).collect()));
    }
    build_list(list_field(t)?, list.values().as_ref(), &rows)
}

fn coerce_repeat(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    let elem = match &a[0] {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        t => t.clone(),
    };
    Ok(vec![elem, want_int(&a[1], "count")?])
}

fn ret_repeat(a: &[DataType]) -> Result<DataType> {
    Ok(DataType::new_list(a[0].clone(), true))
}

/// `repeat(element, count)`: an array of `count` copies of `element`.
fn repeat(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let count = ints(&a[1])?;
    let mut rows = Vec::with_capacity(count.len());
    for i in 0..count.len() {
        let Some(n) = int_at(count, i) else {
            rows.push(None);
            continue;
        };
        if n < 0 {
            return fail(format!(
                "repeat: the count must be greater than or equal to 0, got {n}"
            ));
        }
        if n as u64 > MAX_ARRAY_ELEMENTS as u64 {
            return fail(format!(
                "repeat: the count must be less than or equal to {MAX_ARRAY_ELEMENTS}, got {n}"
            ));
        }
        rows.push(Some(vec![i; n as usize]));
    }
    build_list(list_field(t)?, a[0].as_ref(), &rows)
}

/// `trim_array(x, n)`: `x` without its last `n` elements.
fn trim_array(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let (list, n) = (lists(&a[0])?, ints(&a[1])?);
    let mut rows = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let Some(k) = int_at(n, i).filter(|_| list.is_valid(i)) else {
            rows.push(None);
            continue;
        };
        let (s, e) = bounds(list, i);
        if k < 0 || k as usize > e - s {
            return fail(format!(
                "trim_array: the size to remove must be between 0 and the array's cardinality {}, got {k}",
                e - s
            ));
        }
        rows.push(Some((s..e - k as usize).collect()));
    }
    build_list(list_field(t)?, list.values().as_ref(), &rows)
}

/// Builds an array of type `t` (`array(array(T))`) from, per row, the
/// index lists of its inner arrays.
fn build_nested(
    t: &DataType,
    values: &dyn Array,
    rows: Vec<Option<Vec<Vec<usize>>>>,
) -> Result<ArrayRef> {
    let inner_rows: Vec<Option<Vec<usize>>> = rows
        .iter()
        .flatten()
        .flat_map(|groups| groups.iter().cloned().map(Some))
        .collect();
    let outer_field = list_field(t)?;
    let inner = build_list(list_field(outer_field.data_type())?, values, &inner_rows)?;
    let mut offsets = vec![0i32];
    let mut total = 0i32;
    for r in &rows {
        total += r.as_ref().map_or(0, |g| g.len() as i32);
        offsets.push(total);
    }
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    Ok(Arc::new(ListArray::try_new(
        outer_field,
        OffsetBuffer::new(offsets.into()),
        inner,
        Some(nulls),
    )?))
}

/// `ngrams(x, n)`: the runs of `n` adjacent elements (the whole array when
/// it is shorter).
fn ngrams(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let (list, n) = (lists(&a[0])?, ints(&a[1])?);
    let mut rows = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let Some(k) = int_at(n, i).filter(|_| list.is_valid(i)) else {
            rows.push(None);
            continue;
        };
        if k <= 0 {
            return fail(format!("ngrams: n must be positive, got {k}"));
        }
        let (s, e) = bounds(list, i);
        let k = (k as usize).min(e - s);
        let count = (e - s + 1).saturating_sub(k).max(1);
        if count.saturating_mul(k) > MAX_DERIVED_ELEMENTS {
            return fail(format!(
                "ngrams: the result would hold more than {MAX_DERIVED_ELEMENTS} elements"
            ));
        }
        rows.push(Some(
            (0..count).map(|g| (s + g..s + g + k).collect()).collect(),
        ));
    }
    build_nested(t, list.values().as_ref(), rows)
}

/// `combinations(x, n)`: the `n`-element sub-groups of `x` by position, in
/// lexicographic order of positions (n at most 5).
fn combinations(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let (list, n) = (lists(&a[0])?, ints(&a[1])?);
    let mut rows = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let Some(k) = int_at(n, i).filter(|_| list.is_valid(i)) else {
            rows.push(None);
            continue;
        };
        if !(0..=5).contains(&k) {
            return fail(format!("combinations: n must be between 0 and 5, got {k}"));
        }
        let (s, e) = bounds(list, i);
        let (len, k) = (e - s, k as usize);
        let mut groups = Vec::new();
        if k <= len {
            let mut pick: Vec<usize> = (0..k).collect();
            loop {
                if groups.len().saturating_mul(k.max(1)) >= MAX_DERIVED_ELEMENTS {
                    return fail(format!(
                        "combinations: the result would hold more than {MAX_DERIVED_ELEMENTS} elements"
                    ));
                }
                groups.push(pick.iter().map(|p| s + p).collect::<Vec<_>>());
                // The next position set: bump the rightmost that can move.
                let Some(j) = (0..k).rev().find(|&j| pick[j] < len - k + j) else {
                    break;
                };
                pick[j] += 1;
                for m in j + 1..k {
                    pick[m] = pick[m - 1] + 1;
                }
            }
        }
        rows.push(Some(groups));
    }
    build_nested(t, list.values().as_ref(), rows)
}

/// `contains_sequence(x, seq)`: whether `seq` appears in `x` as consecutive
/// elements (NULL matching NULL).
fn contains_sequence(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (x, y) = (lists(&a[0])?, lists(&a[1])?);
    let (xv, yv) = (x.values(), y.values());
    let cmp = make_comparator(xv.as_ref(), yv.as_ref(), SortOptions::default())?;
    let same = |p: usize, q: usize| match (null_at(xv.as_ref(), p), null_at(yv.as_ref(), q)) {
        (true, true) => true,
        (false, false) => cmp(p, q) == Ordering::Equal,
        _ => false,
    };
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        if x.is_null(i) || y.is_null(i) {
            out.push(None);
            continue;
        }
        let ((xs, xe), (ys, ye)) = (bounds(x, i), bounds(y, i));
        let m = ye - ys;
        let found =
            m == 0 || (xe - xs >= m && (xs..=xe - m).any(|p| (0..m).all(|d| same(p + d, ys + d))));
        out.push(Some(found));
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

/// Arrow's map type, laid out as DataFusion's `map` function makes it.
fn map_type(key: &DataType, value: &DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key.clone(), false),
                Field::new("value", value.clone(), true),
            ])),
            false,
        )),
        false,
    )
}

/// A map array from keys and values and per-row entry counts (None: NULL).
fn build_map(
    t: &DataType,
    keys: ArrayRef,
    values: ArrayRef,
    counts: &[Option<usize>],
) -> Result<ArrayRef> {
    let DataType::Map(entries, sorted) = t else {
        return fail(format!("expected a map type, got {t}"));
    };
    let DataType::Struct(fields) = entries.data_type() else {
        return fail("a map's entries must be rows");
    };
    let mut offsets = vec![0i32];
    let mut total = 0i32;
    for c in counts {
        total += c.unwrap_or(0) as i32;
        offsets.push(total);
    }
    let nulls = NullBuffer::from(counts.iter().map(Option::is_some).collect::<Vec<_>>());
    let entries_array = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
    Ok(Arc::new(MapArray::try_new(
        entries.clone(),
        OffsetBuffer::new(offsets.into()),
        entries_array,
        Some(nulls),
        *sorted,
    )?))
}

fn ret_histogram(a: &[DataType]) -> Result<DataType> {
    let e = ret_elem(a)?;
    Ok(map_type(&e, &DataType::Int64))
}

/// `array_histogram(x)`: each distinct non-NULL element with its count, in
/// order of first appearance.
fn array_histogram(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let list = lists(&a[0])?;
    let values = list.values();
    let conv = RowConverter::new(vec![SortField::new(values.data_type().clone())])?;
    let rows = conv.convert_columns(std::slice::from_ref(values))?;
    let mut keys = Vec::new();
    let mut counts_out = Vec::new();
    let mut per_row = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        if list.is_null(i) {
            per_row.push(None);
            continue;
        }
        let (s, e) = bounds(list, i);
        let mut seen: HashMap<_, usize> = HashMap::new();
        let first = keys.len();
        for j in s..e {
            if null_at(values.as_ref(), j) {
                continue;
            }
            match seen.get(&rows.row(j)) {
                Some(&k) => counts_out[k] += 1,
                None => {
                    seen.insert(rows.row(j), keys.len());
                    keys.push(j as u64);
                    counts_out.push(1i64);
                }
            }
        }
        per_row.push(Some(keys.len() - first));
    }
    let k = take(values.as_ref(), &UInt64Array::from(keys), None)?;
    build_map(t, k, Arc::new(Int64Array::from(counts_out)), &per_row)
}

fn coerce_cardinality(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    match &a[0] {
        t @ DataType::Map(..) => Ok(vec![t.clone()]),
        t => Ok(vec![want_array(t, "the argument")?]),
    }
}

/// `cardinality(x)`: the number of elements of an array (its top level
/// only) or of entries of a map.
fn cardinality(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let sizes: Vec<Option<i64>> = if let Some(m) = a[0].as_any().downcast_ref::<MapArray>() {
        let o = m.value_offsets();
        (0..m.len())
            .map(|i| m.is_valid(i).then(|| (o[i + 1] - o[i]) as i64))
            .collect()
    } else {
        let list = lists(&a[0])?;
        (0..list.len())
            .map(|i| list.is_valid(i).then(|| list.value_length(i) as i64))
            .collect()
    };
    Ok(Arc::new(Int64Array::from(sizes)))
}

// ---------------------------------------------------------------------------
// map functions

fn coerce_maps(a: &[DataType]) -> Result<Vec<DataType>> {
    if a.is_empty() {
        return plan_err!("expects at least one map");
    }
    let first = &a[0];
    if !matches!(first, DataType::Map(..)) {
        return plan_err!("expects maps, got {first}");
    }
    for t in a {
        if !t.equals_datatype(first) && !t.is_null() {
            return plan_err!("expects maps of one type, got {first} and {t}");
        }
    }
    Ok(vec![first.clone(); a.len()])
}

fn maps(a: &ArrayRef) -> Result<&MapArray> {
    a.as_any()
        .downcast_ref()
        .ok_or_else(|| DataFusionError::Internal(format!("expected a map, got {}", a.data_type())))
}

/// `map_concat(m1, ..., mN)`: the union of the maps; a key's value comes
/// from the last map holding it. NULL when any map is NULL.
fn map_concat(a: &[ArrayRef], t: &DataType) -> Result<ArrayRef> {
    let ms: Vec<&MapArray> = a.iter().map(maps).collect::<Result<_>>()?;
    let key_arrays: Vec<&dyn Array> = ms.iter().map(|m| m.keys().as_ref()).collect();
    let value_arrays: Vec<&dyn Array> = ms.iter().map(|m| m.values().as_ref()).collect();
    let all_keys = concat(&key_arrays)?;
    let all_values = concat(&value_arrays)?;
    let base: Vec<usize> = ms
        .iter()
        .scan(0, |acc, m| {
            let b = *acc;
            *acc += m.keys().len();
            Some(b)
        })
        .collect();
    let conv = RowConverter::new(vec![SortField::new(all_keys.data_type().clone())])?;
    let rows = conv.convert_columns(std::slice::from_ref(&all_keys))?;
    let rows_n = ms.first().map_or(0, |m| m.len());
    let (mut kidx, mut vidx, mut counts) = (Vec::new(), Vec::new(), Vec::with_capacity(rows_n));
    for i in 0..rows_n {
        if ms.iter().any(|m| m.is_null(i)) {
            counts.push(None);
            continue;
        }
        let mut slot: HashMap<_, usize> = HashMap::new();
        let first = kidx.len();
        for (m, b) in ms.iter().zip(&base) {
            let o = m.value_offsets();
            for j in o[i] as usize..o[i + 1] as usize {
                let g = b + j;
                match slot.get(&rows.row(g)) {
                    Some(&k) => vidx[k] = g as u64,
                    None => {
                        slot.insert(rows.row(g), kidx.len());
                        kidx.push(g as u64);
                        vidx.push(g as u64);
                    }
                }
            }
        }
        counts.push(Some(kidx.len() - first));
    }
    let k = take(all_keys.as_ref(), &UInt64Array::from(kidx), None)?;
    let v = take(all_values.as_ref(), &UInt64Array::from(vidx), None)?;
    build_map(t, k, v, &counts)
}

fn coerce_entries(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    let list = want_array(&a[0], "the argument")?;
    match elem_field(&list).map(|f| f.data_type().clone()) {
        Some(DataType::Struct(f)) if f.len() == 2 => Ok(vec![list]),
        _ => plan_err!("expects an array of rows (key, value), got {}", a[0]),
    }
}

fn ret_from_entries(a: &[DataType], multi: bool) -> Result<DataType> {
    match elem_field(&a[0]).map(|f| f.data_type().clone()) {
        Some(DataType::Struct(f)) if f.len() == 2 => {
            let v = f[1].data_type().clone();
            let v = if multi {
                DataType::new_list(v, true)
            } else {
                v
            };
            Ok(map_type(f[0].data_type(), &v))
        }
        _ => plan_err!("expects an array of rows (key, value), got {}", a[0]),
    }
}

/// `map_from_entries` (duplicate keys fail) and `multimap_from_entries`
/// (the values of a key gathered in order). NULL entries and keys fail.
fn map_from_entries(a: &[ArrayRef], t: &DataType, multi: bool) -> Result<ArrayRef> {
    let name = if multi {
        "multimap_from_entries"
    } else {
        "map_from_entries"
    };
    let list = lists(&a[0])?;
    let entries = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| DataFusionError::Internal(format!("{name}: expected rows")))?;
    let (keys, values) = (entries.column(0), entries.column(1));
    let conv = RowConverter::new(vec![SortField::new(keys.data_type().clone())])?;
    let rows = conv.convert_columns(std::slice::from_ref(keys))?;
    let (mut kidx, mut groups, mut counts) = (Vec::new(), Vec::<Vec<usize>>::new(), Vec::new());
    for i in 0..list.len() {
        if list.is_null(i) {
            counts.push(None);
            continue;
        }
        let (s, e) = bounds(list, i);
        let mut slot: HashMap<_, usize> = HashMap::new();
        let first = kidx.len();
        for j in s..e {
            if entries.is_null(j) {
                return fail(format!("{name}: map entry cannot be null"));
            }
            if null_at(keys.as_ref(), j) {
                return fail(format!("{name}: map key cannot be null"));
            }
            match slot.get(&rows.row(j)) {
                Some(_) if !multi => {
                    let key = ScalarValue::try_from_array(keys, j)?;
                    return fail(format!(
                        "{name}: duplicate map keys ({key}) are not allowed"
                    ));
                }
                Some(&k) => groups[k].push(j),
                None => {
                    slot.insert(rows.row(j), kidx.len());
                    kidx.push(j as u64);
                    groups.push(vec![j]);
                }
            }
        }
        counts.push(Some(kidx.len() - first));
    }
    let k = take(keys.as_ref(), &UInt64Array::from(kidx), None)?;
    let v = if multi {
        let field = Arc::new(Field::new("item", values.data_type().clone(), true));
        build_list(
            field,
            values.as_ref(),
            &groups.into_iter().map(Some).collect::<Vec<_>>(),
        )?
    } else {
        let idx: Vec<u64> = groups.iter().map(|g| g[0] as u64).collect();
        take(values.as_ref(), &UInt64Array::from(idx), None)?
    };
    build_map(t, k, v, &counts)
}

// ---------------------------------------------------------------------------
// sequence

/// Trino's `sequence(start, stop[, step])`: bigints (step 1 or -1 by
/// default), dates (a day either way by default) and dates or timestamps
/// with an interval step; at most [`MAX_ARRAY_ELEMENTS`] entries. Interval
/// steps are computed by DataFusion's `generate_series`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Sequence {
    series: ScalarUDF,
    signature: Signature,
}

/// The `sequence` function, with `series` (DataFusion's `generate_series`)
/// for interval steps.
pub(crate) fn sequence_udf(series: ScalarUDF) -> ScalarUDF {
    ScalarUDF::new_from_impl(Sequence {
        series,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

fn is_date(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Date64) || super::is_string(t)
}

impl ScalarUDFImpl for Sequence {
    fn name(&self) -> &str {
        "sequence"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, a: &[DataType]) -> Result<Vec<DataType>> {
        arity(a, 2, 3).map_err(|e| seq_err(&e))?;
        if a.iter().all(is_integer) {
            return Ok(vec![DataType::Int64; a.len()]);
        }
        let interval = DataType::Interval(IntervalUnit::MonthDayNano);
        let step_ok = a.get(2).is_none_or(|t| matches!(t, DataType::Interval(_)));
        if !step_ok {
            return plan_err!(
                "sequence: the step of a date or timestamp sequence must be an interval, got {}",
                a[2]
            );
        }
        if is_date(&a[0]) && is_date(&a[1]) {
            let mut out = vec![DataType::Date32, DataType::Date32];
            if a.len() == 3 {
                out.push(interval);
            }
            return Ok(out);
        }
        match (&a[0], &a[1], a.len()) {
            (DataType::Timestamp(_, tz), DataType::Timestamp(..) | DataType::Date32, 3)
            | (DataType::Date32, DataType::Timestamp(_, tz), 3) => {
                let t = DataType::Timestamp(TimeUnit::Nanosecond, tz.clone());
                Ok(vec![t.clone(), t, interval])
            }
            _ => plan_err!(
                "sequence: expects bigints, dates, or timestamps with an interval step, got ({})",
                a.iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn return_type(&self, a: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(a[0].clone(), true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let out = match arrays[0].data_type() {
            DataType::Int64 => int_sequence(&arrays)?,
            DataType::Date32 if arrays.len() == 2 => date_sequence(&arrays)?,
            _ => {
                check_interval_sequence(&arrays)?;
                let out = self.series.inner().invoke_with_args(args)?;
                let out = out.to_array(rows)?;
                let list = lists(&out)?;
                if (0..list.len()).any(|i| list.value_length(i) as usize > MAX_ARRAY_ELEMENTS) {
                    return too_long();
                }
                return Ok(if all_scalar {
                    ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
                } else {
                    ColumnarValue::Array(out)
                });
            }
        };
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

fn seq_err(e: &DataFusionError) -> DataFusionError {
    DataFusionError::Plan(format!("sequence: {}", super::strip_error(e)))
}

fn too_long<T>() -> Result<T> {
    fail(format!(
        "sequence: result of sequence function must not have more than {MAX_ARRAY_ELEMENTS} entries"
    ))
}

/// The entries from `start` to `stop` by `step`, checked against Trino's
/// rules (a step of the stop's direction, not zero) and the cap.
fn steps(start: i64, stop: i64, step: i64) -> Result<Vec<i64>> {
    if step == 0 {
        return fail("sequence: step must not be zero");
    }
    if (step > 0 && stop < start) || (step < 0 && stop > start) {
        return fail(
            "sequence: sequence stop value should be greater than or equal to start value if step is greater than zero otherwise stop should be less than or equal to start",
        );
    }
    let count = (stop as i128 - start as i128) / step as i128 + 1;
    if count > MAX_ARRAY_ELEMENTS as i128 {
        return too_long();
    }
    Ok((0..count as i64).map(|k| start + k * step).collect())
}

fn int_sequence(a: &[ArrayRef]) -> Result<ArrayRef> {
    let (start, stop) = (ints(&a[0])?, ints(&a[1])?);
    let step = a.get(2).map(ints).transpose()?;
    let mut values = Vec::new();
    let mut rows = Vec::with_capacity(start.len());
    for i in 0..start.len() {
        let (Some(s), Some(e)) = (int_at(start, i), int_at(stop, i)) else {
            rows.push(None);
            continue;
        };
        let by = match step {
            None => Some(if s <= e { 1 } else { -1 }),
            Some(st) => int_at(st, i),
        };
        let Some(by) = by else {
            rows.push(None);
            continue;
        };
        let first = values.len();
        values.extend(steps(s, e, by)?);
        rows.push(Some((first..values.len()).collect::<Vec<_>>()));
    }
    build_list(
        Arc::new(Field::new("item", DataType::Int64, true)),
        &Int64Array::from(values),
        &rows,
    )
}

fn date_sequence(a: &[ArrayRef]) -> Result<ArrayRef> {
    let start = a[0]
        .as_any()
        .downcast_ref::<Date32Array>()
        .ok_or_else(|| DataFusionError::Internal("sequence: expected dates".into()))?;
    let stop = a[1]
        .as_any()
        .downcast_ref::<Date32Array>()
        .ok_or_else(|| DataFusionError::Internal("sequence: expected dates".into()))?;
    let mut values = Vec::new();
    let mut rows = Vec::with_capacity(start.len());
    for i in 0..start.len() {
        if start.is_null(i) || stop.is_null(i) {
            rows.push(None);
            continue;
        }
        let (s, e) = (start.value(i) as i64, stop.value(i) as i64);
        let first = values.len();
        values.extend(
            steps(s, e, if s <= e { 1 } else { -1 })?
                .into_iter()
                .map(|d| d as i32),
        );
        rows.push(Some((first..values.len()).collect::<Vec<_>>()));
    }
    build_list(
        Arc::new(Field::new("item", DataType::Date32, true)),
        &Date32Array::from(values),
        &rows,
    )
}

/// Refuses, before any entry is made, an interval sequence that would be
/// far over the cap, a zero step, or a step away from the stop.
fn check_interval_sequence(a: &[ArrayRef]) -> Result<()> {
    use datafusion::arrow::array::IntervalMonthDayNanoArray;
    let micros = |x: &ArrayRef| cast(x, &DataType::Timestamp(TimeUnit::Microsecond, None));
    let (start, stop) = (micros(&a[0])?, micros(&a[1])?);
    let (start, stop) = (
        cast(&start, &DataType::Int64)?,
        cast(&stop, &DataType::Int64)?,
    );
    let (start, stop) = (ints(&start)?, ints(&stop)?);
    let step = a[2]
        .as_any()
        .downcast_ref::<IntervalMonthDayNanoArray>()
        .ok_or_else(|| DataFusionError::Internal("sequence: expected an interval".into()))?;
    const DAY: i128 = 86_400_000_000;
    for i in 0..start.len() {
        let (Some(s), Some(e)) = (int_at(start, i), int_at(stop, i)) else {
            continue;
        };
        if step.is_null(i) {
            continue;
        }
        let v = step.value(i);
        // The shortest and longest the step can be, in microseconds.
        let fixed = v.days as i128 * DAY + v.nanoseconds as i128 / 1000;
        let lo = v.months as i128 * 28 * DAY + fixed;
        let hi = v.months as i128 * 31 * DAY + fixed;
        if lo == 0 && hi == 0 {
            return fail("sequence: step must not be zero");
        }
        let span = e as i128 - s as i128;
        if (span > 0 && hi < 0) || (span < 0 && lo > 0) {
            return fail(
                "sequence: sequence stop value should be greater than or equal to start value if step is greater than zero otherwise stop should be less than or equal to start",
            );
        }
        let shortest = lo.abs().min(hi.abs()).max(1);
        if span.abs() / shortest > 2 * MAX_ARRAY_ELEMENTS as i128 {
            return too_long();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_steps_follow_trino() {
        assert_eq!(steps(1, 5, 2).unwrap(), vec![1, 3, 5]);
        assert_eq!(steps(5, 1, -2).unwrap(), vec![5, 3, 1]);
        assert_eq!(steps(3, 3, 1).unwrap(), vec![3]);
        assert!(steps(1, 5, -1).is_err());
        assert!(steps(1, 5, 0).is_err());
        assert!(steps(1, 10_000, 1).is_ok());
        assert!(steps(0, 10_000, 1).is_err());
        assert!(steps(i64::MIN, i64::MAX, 1).is_err());
    }
}
