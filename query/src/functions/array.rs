//! Array and map functions whose Presto semantics differ from DataFusion's:
//! `element_at` (1-based, negative from the end, NULL out of range, and map
//! lookup) and `contains` (array membership with Presto's NULL rules).

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, ListArray, MapArray, UInt64Array, make_comparator,
};
use datafusion::arrow::compute::{SortOptions, take};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::error::Result;

use super::{Func, arity, fail, int_at, ints, is_string, ret_bool, strs, want_int};

/// The array and map functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        element_at_func(),
        Func::new("contains", coerce_contains, ret_bool, contains),
        Func::new(
            "unnest_part",
            coerce_unnest_part,
            |a| Ok(a[0].clone()),
            unnest_part,
        )
        .ret_scalar(ret_unnest_part),
    ]
}

fn coerce_unnest_part(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    let t = match &a[0] {
        DataType::LargeList(f) | DataType::FixedSizeList(f, _) => DataType::List(f.clone()),
        t => t.clone(),
    };
    Ok(vec![t, want_int(&a[1], "column")?])
}

/// The types of the columns `UNNEST` produces from one argument of type `t`.
fn unnest_columns(t: &DataType) -> Result<Vec<DataType>> {
    if let Some((k, v)) = map_key_value(t) {
        return Ok(vec![k, v]);
    }
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            match f.data_type() {
                DataType::Struct(fields) => {
                    Ok(fields.iter().map(|f| f.data_type().clone()).collect())
                }
                other => Ok(vec![other.clone()]),
            }
        }
        t => plan_err!("UNNEST expects an array or a map, got {t}"),
    }
}

fn ret_unnest_part(
    types: &[DataType],
    scalars: &[Option<&datafusion::common::ScalarValue>],
) -> Result<DataType> {
    use datafusion::common::ScalarValue;
    let cols = unnest_columns(&types[0])?;
    let i = match scalars.get(1).copied().flatten() {
        Some(ScalarValue::Int64(Some(i))) => *i,
        Some(ScalarValue::Int32(Some(i))) => *i as i64,
        _ => return plan_err!("unnest_part: the column must be a constant integer"),
    };
    if cols.len() == 1 {
        return plan_err!(
            "UNNEST of {} yields one column per argument; the alias names more",
            types[0]
        );
    }
    match usize::try_from(i)
        .ok()
        .and_then(|i| cols.get(i.wrapping_sub(1)))
    {
        Some(t) => Ok(DataType::new_list(t.clone(), true)),
        None => plan_err!(
            "UNNEST of {} yields {} columns, not {i}",
            types[0],
            cols.len()
        ),
    }
}

/// Column `i` (1-based) of what `UNNEST` yields from a map (keys, values)
/// or an array of rows (one column per field), as an array per row.
fn unnest_part(args: &[ArrayRef], ret: &DataType) -> Result<ArrayRef> {
    use datafusion::arrow::array::StructArray;
    let i = ints(&args[1])?;
    let col = match int_at(i, 0) {
        Some(c) if c >= 1 => c as usize - 1,
        _ => return fail("unnest_part: bad column"),
    };
    let DataType::List(field) = ret else {
        return fail("unnest_part: bad return type");
    };
    if let Some(map) = args[0].as_any().downcast_ref::<MapArray>() {
        let values = if col == 0 { map.keys() } else { map.values() };
        return Ok(Arc::new(ListArray::try_new(
            field.clone(),
            map.offsets().clone(),
            values.clone(),
            map.nulls().cloned(),
        )?));
    }
    let list = args[0]
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| {
            datafusion::error::DataFusionError::Plan("UNNEST: unsupported argument".into())
        })?;
    let rows = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| datafusion::error::DataFusionError::Plan("UNNEST: expected rows".into()))?;
    Ok(Arc::new(ListArray::try_new(
        field.clone(),
        list.offsets().clone(),
        rows.column(col).clone(),
        list.nulls().cloned(),
    )?))
}

fn map_key_value(t: &DataType) -> Option<(DataType, DataType)> {
    match t {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(f) if f.len() == 2 => {
                Some((f[0].data_type().clone(), f[1].data_type().clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `element_at(array, index)` / `element_at(map, key)`.
pub(crate) fn element_at_func() -> Func {
    Func::new("element_at", coerce_element_at, ret_element_at, element_at)
}

fn coerce_element_at(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    match &a[0] {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Ok(vec![DataType::List(f.clone()), want_int(&a[1], "index")?])
        }
        t @ DataType::Map(..) => {
            let (k, _) = map_key_value(t).ok_or_else(|| {
                datafusion::error::DataFusionError::Plan(format!("unsupported map type {t}"))
            })?;
            Ok(vec![t.clone(), k])
        }
        t => plan_err!("expects an array or a map, got {t}"),
    }
}

fn ret_element_at(a: &[DataType]) -> Result<DataType> {
    match &a[0] {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Ok(f.data_type().clone())
        }
        t => match map_key_value(t) {
            Some((_, v)) => Ok(v),
            None => plan_err!("element_at expects an array or a map, got {t}"),
        },
    }
}

fn element_at(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    if let Some(list) = args[0].as_any().downcast_ref::<ListArray>() {
        let idx = ints(&args[1])?;
        let offsets = list.value_offsets();
        let mut take_idx = Vec::with_capacity(list.len());
        for i in 0..list.len() {
            let Some(k) = int_at(idx, i).filter(|_| !list.is_null(i)) else {
                take_idx.push(None);
                continue;
            };
            let (start, end) = (offsets[i] as i64, offsets[i + 1] as i64);
            let len = end - start;
            take_idx.push(match k {
                0 => return fail("SQL array indices start at 1"),
                k if k > 0 && k <= len => Some((start + k - 1) as u64),
                k if k < 0 && -k <= len => Some((end + k) as u64),
                _ => None,
            });
        }
        return Ok(take(
            list.values().as_ref(),
            &UInt64Array::from(take_idx),
            None,
        )?);
    }
    let Some(map) = args[0].as_any().downcast_ref::<MapArray>() else {
        return fail(format!(
            "element_at: unsupported type {}",
            args[0].data_type()
        ));
    };
    let needle = &args[1];
    let cmp = make_comparator(map.keys().as_ref(), needle.as_ref(), SortOptions::default())?;
    let offsets = map.value_offsets();
    let mut take_idx = Vec::with_capacity(map.len());
    for i in 0..map.len() {
        if map.is_null(i) || needle.is_null(i) {
            take_idx.push(None);
            continue;
        }
        let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
        take_idx.push(
            (start..end)
                .find(|&j| cmp(j, i) == Ordering::Equal)
                .map(|j| j as u64),
        );
    }
    Ok(take(
        map.values().as_ref(),
        &UInt64Array::from(take_idx),
        None,
    )?)
}

fn coerce_contains(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    match &a[0] {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Ok(vec![DataType::List(f.clone()), f.data_type().clone()])
        }
        // DataFusion's string `contains(haystack, needle)` stays available.
        t if is_string(t) && is_string(&a[1]) => Ok(vec![DataType::Utf8, DataType::Utf8]),
        t => plan_err!("expects an array, got {t}"),
    }
}

fn contains(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    if args[0].data_type() == &DataType::Utf8 {
        let (h, n) = (strs(&args[0])?, strs(&args[1])?);
        let out: BooleanArray = h
            .iter()
            .zip(n.iter())
            .map(|(h, n)| Some(h?.contains(n?)))
            .collect();
        return Ok(Arc::new(out));
    }
    let Some(list) = args[0].as_any().downcast_ref::<ListArray>() else {
        return fail(format!(
            "contains: unsupported type {}",
            args[0].data_type()
        ));
    };
    let needle = &args[1];
    let values = list.values();
    let cmp = make_comparator(values.as_ref(), needle.as_ref(), SortOptions::default())?;
    let offsets = list.value_offsets();
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        if list.is_null(i) || needle.is_null(i) {
            out.push(None);
            continue;
        }
        let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
        let mut saw_null = false;
        let mut found = false;
        for j in start..end {
            if values.is_null(j) {
                saw_null = true;
            } else if cmp(j, i) == Ordering::Equal {
                found = true;
                break;
            }
        }
        // Presto: not found but the array holds NULL → NULL (unknown).
        out.push(if found {
            Some(true)
        } else if saw_null {
            None
        } else {
            Some(false)
        });
    }
    Ok(Arc::new(BooleanArray::from(out)))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{ctx, err, one};

    #[tokio::test]
    async fn element_at_arrays_and_maps() {
        let c = ctx();
        assert_eq!(one(&c, "SELECT element_at(ARRAY[1, 2, 3], 1)").await, "1");
        assert_eq!(one(&c, "SELECT element_at(ARRAY[1, 2, 3], -1)").await, "3");
        assert_eq!(
            one(&c, "SELECT element_at(ARRAY[1, 2, 3], 4)").await,
            "NULL"
        );
        assert_eq!(
            one(&c, "SELECT element_at(ARRAY[1, 2, 3], -4)").await,
            "NULL"
        );
        assert_eq!(
            one(&c, "SELECT element_at(ARRAY['a', NULL], 2)").await,
            "NULL"
        );
        assert!(
            err(&c, "SELECT element_at(ARRAY[1], 0)")
                .await
                .contains("start at 1")
        );
        assert_eq!(
            one(
                &c,
                "SELECT element_at(MAP(ARRAY['a', 'b'], ARRAY[1, 2]), 'b')"
            )
            .await,
            "2"
        );
        assert_eq!(
            one(&c, "SELECT element_at(MAP(ARRAY['a'], ARRAY[1]), 'z')").await,
            "NULL"
        );
        assert_eq!(
            one(
                &c,
                "SELECT element_at(MAP(ARRAY[1, 2], ARRAY['x', 'y']), 2)"
            )
            .await,
            "y"
        );
        assert!(
            err(&c, "SELECT element_at('abc', 1)")
                .await
                .contains("expects an array or a map")
        );
    }

    #[tokio::test]
    async fn contains_nulls() {
        let c = ctx();
        assert_eq!(one(&c, "SELECT contains(ARRAY[1, 2, 3], 2)").await, "true");
        assert_eq!(one(&c, "SELECT contains(ARRAY[1, 2, 3], 5)").await, "false");
        assert_eq!(one(&c, "SELECT contains(ARRAY[1, NULL], 5)").await, "NULL");
        assert_eq!(one(&c, "SELECT contains(ARRAY[1, NULL], 1)").await, "true");
        assert_eq!(
            one(&c, "SELECT contains(ARRAY['a', 'b'], 'b')").await,
            "true"
        );
        assert_eq!(one(&c, "SELECT contains('haystack', 'st')").await, "true");
    }
}
