//! Trino's bitwise functions on two's-complement integers: `bit_count`,
//! `bitwise_and`/`or`/`xor`/`not` (bigint) and the shifts
//! `bitwise_left_shift`, `bitwise_right_shift` (logical) and
//! `bitwise_right_shift_arithmetic`, which keep the width of their integer
//! argument.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::error::Result;

use super::{Func, arity, fail, int_at, ints, ret_i64, want_int};

/// The bitwise functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new("bit_count", coerce_ints::<2>, ret_i64, bit_count),
        Func::new("bitwise_and", coerce_ints::<2>, ret_i64, |a, _| {
            binary(a, |x, y| x & y)
        }),
        Func::new("bitwise_or", coerce_ints::<2>, ret_i64, |a, _| {
            binary(a, |x, y| x | y)
        }),
        Func::new("bitwise_xor", coerce_ints::<2>, ret_i64, |a, _| {
            binary(a, |x, y| x ^ y)
        }),
        Func::new("bitwise_not", coerce_ints::<1>, ret_i64, |a, _| {
            let x = ints(&a[0])?;
            Ok(Arc::new(x.iter().map(|v| v.map(|v| !v)).collect::<Int64Array>()) as ArrayRef)
        }),
        Func::new("bitwise_left_shift", coerce_shift, ret_shift, |a, t| {
            shift(a, t, Shift::Left)
        }),
        Func::new("bitwise_right_shift", coerce_shift, ret_shift, |a, t| {
            shift(a, t, Shift::Logical)
        }),
        Func::new(
            "bitwise_right_shift_arithmetic",
            coerce_shift,
            ret_shift,
            |a, t| shift(a, t, Shift::Arithmetic),
        ),
    ]
}

/// `N` integer arguments, as bigints.
fn coerce_ints<const N: usize>(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, N, N)?;
    a.iter()
        .enumerate()
        .map(|(i, t)| want_int(t, &format!("argument {}", i + 1)))
        .collect()
}

fn binary(a: &[ArrayRef], f: fn(i64, i64) -> i64) -> Result<ArrayRef> {
    let (x, y) = (ints(&a[0])?, ints(&a[1])?);
    let out: Int64Array = (0..x.len())
        .map(|i| Some(f(int_at(x, i)?, int_at(y, i)?)))
        .collect();
    Ok(Arc::new(out))
}

/// `bit_count(x, bits)`: the set bits of `x` read as a `bits`-bit signed
/// integer (2 to 64); `x` must fit in that width.
fn bit_count(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (x, b) = (ints(&a[0])?, ints(&a[1])?);
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let (Some(v), Some(bits)) = (int_at(x, i), int_at(b, i)) else {
            out.push(None);
            continue;
        };
        if !(2..=64).contains(&bits) {
            return fail(format!(
                "bit_count: bits must be between 2 and 64, got {bits}"
            ));
        }
        if bits < 64 {
            let (lo, hi) = (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1);
            if v < lo || v > hi {
                return fail(format!(
                    "bit_count: number must be representable with the bits specified. {v} cannot be represented with {bits} bits"
                ));
            }
        }
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        out.push(Some(((v as u64) & mask).count_ones() as i64));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

#[derive(Clone, Copy)]
enum Shift {
    Left,
    Logical,
    Arithmetic,
}

fn coerce_shift(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    let value = match &a[0] {
        t @ (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64) => t.clone(),
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 | DataType::Null => DataType::Int64,
        t => return plan_err!("the value must be an integer, got {t}"),
    };
    Ok(vec![value, want_int(&a[1], "shift")?])
}

fn ret_shift(a: &[DataType]) -> Result<DataType> {
    Ok(a[0].clone())
}

/// Shifts within the width of the value's type: a shift of the width or
/// more gives 0 (or -1 for an arithmetic shift of a negative value).
fn shift(a: &[ArrayRef], ret: &DataType, how: Shift) -> Result<ArrayRef> {
    let bits: u32 = match ret {
        DataType::Int8 => 8,
        DataType::Int16 => 16,
        DataType::Int32 => 32,
        _ => 64,
    };
    let wide = cast(&a[0], &DataType::Int64)?;
    let (x, s) = (ints(&wide)?, ints(&a[1])?);
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let (Some(v), Some(by)) = (int_at(x, i), int_at(s, i)) else {
            out.push(None);
            continue;
        };
        if by < 0 {
            return fail(format!(
                "bitwise shift: the shift must not be negative, got {by}"
            ));
        }
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let unsigned = (v as u64) & mask;
        let shifted: u64 = match how {
            _ if by >= bits as i64 => match how {
                Shift::Arithmetic if v < 0 => mask,
                _ => 0,
            },
            Shift::Left => (unsigned << by) & mask,
            Shift::Logical => unsigned >> by,
            Shift::Arithmetic => ((v >> by) as u64) & mask,
        };
        // Back to a signed value of the type's width.
        let signed = if bits == 64 {
            shifted as i64
        } else {
            let sign = 1u64 << (bits - 1);
            (shifted ^ sign).wrapping_sub(sign) as i64
        };
        out.push(Some(signed));
    }
    let out: ArrayRef = Arc::new(Int64Array::from(out));
    Ok(cast(&out, ret)?)
}
