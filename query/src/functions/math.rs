//! Trino's mathematical functions that DataFusion lacks or names
//! differently: `truncate`, `mod`, `sign`, `e`, `infinity`, `nan`,
//! `is_nan`/`is_finite`/`is_infinite`, `from_base`/`to_base`,
//! `width_bucket`, `random`/`rand` with bounds, `normal_cdf`,
//! `inverse_normal_cdf` and the Wilson score interval bounds.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::plan_err;
use datafusion::error::Result;

use super::{
    Func, arity, fail, int_at, ints, is_integer, ret_bool, ret_i64, ret_utf8, str_at, strs,
    want_int, want_string,
};

/// The mathematical functions.
pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new("truncate", coerce_truncate, ret_f64, truncate),
        Func::new("mod", coerce_mod, ret_mod, modulus),
        Func::new("sign", coerce_sign, |a| Ok(a[0].clone()), sign),
        Func::new("e", none, ret_f64, |_, _| constant(std::f64::consts::E)),
        Func::new("infinity", none, ret_f64, |_, _| constant(f64::INFINITY)),
        Func::new("nan", none, ret_f64, |_, _| constant(f64::NAN)),
        Func::new(
            "is_nan",
            |a| doubles(a, 1),
            ret_bool,
            |a, _| test(a, f64::is_nan),
        ),
        Func::new(
            "is_finite",
            |a| doubles(a, 1),
            ret_bool,
            |a, _| test(a, f64::is_finite),
        ),
        Func::new(
            "is_infinite",
            |a| doubles(a, 1),
            ret_bool,
            |a, _| test(a, f64::is_infinite),
        ),
        Func::new("from_base", coerce_from_base, ret_i64, from_base),
        Func::new("to_base", coerce_to_base, ret_utf8, to_base),
        Func::new("width_bucket", coerce_width_bucket, ret_i64, width_bucket),
        Func::new("random", coerce_random, ret_random, random)
            .alias(&["rand"])
            .volatile(),
        Func::new("normal_cdf", |a| doubles(a, 3), ret_f64, normal_cdf),
        Func::new(
            "inverse_normal_cdf",
            |a| doubles(a, 3),
            ret_f64,
            inverse_normal_cdf,
        ),
        // NaN for a negative number, where DataFusion's fails the query.
        Func::new(
            "sqrt",
            |a| doubles(a, 1),
            ret_f64,
            |a, _| Ok(Arc::new(floats(&a[0])?.unary::<_, Float64Type>(f64::sqrt))),
        ),
        Func::new("wilson_interval_lower", coerce_wilson, ret_f64, |a, _| {
            wilson(a, -1.0)
        }),
        Func::new("wilson_interval_upper", coerce_wilson, ret_f64, |a, _| {
            wilson(a, 1.0)
        }),
    ]
}

fn ret_f64(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Float64)
}

/// No arguments.
fn none(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 0, 0)?;
    Ok(vec![])
}

fn is_number(t: &DataType) -> bool {
    t.is_numeric() || t.is_null()
}

/// `n` numeric arguments, as doubles.
fn doubles(a: &[DataType], n: usize) -> Result<Vec<DataType>> {
    arity(a, n, n)?;
    a.iter()
        .enumerate()
        .map(|(i, t)| {
            if is_number(t) {
                Ok(DataType::Float64)
            } else {
                plan_err!("argument {} must be a number, got {t}", i + 1)
            }
        })
        .collect()
}

/// Downcasts a `Float64` argument.
fn floats(a: &ArrayRef) -> Result<&Float64Array> {
    a.as_any().downcast_ref().ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!(
            "expected Float64, got {}",
            a.data_type()
        ))
    })
}

/// The `i`-th value of a double argument (None when NULL).
fn f64_at(a: &Float64Array, i: usize) -> Option<f64> {
    a.is_valid(i).then(|| a.value(i))
}

fn constant(v: f64) -> Result<ArrayRef> {
    Ok(Arc::new(Float64Array::from(vec![v])))
}

fn test(a: &[ArrayRef], f: fn(f64) -> bool) -> Result<ArrayRef> {
    let x = floats(&a[0])?;
    Ok(Arc::new(
        x.iter().map(|v| v.map(f)).collect::<BooleanArray>(),
    ))
}

fn coerce_truncate(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 2)?;
    let mut out = doubles(&a[..1], 1)?;
    if a.len() == 2 {
        out.push(want_int(&a[1], "the number of decimal places")?);
    }
    Ok(out)
}

/// `truncate(x[, d])`: drops the digits after `d` decimal places (0 when
/// absent; negative `d` clears digits before the point).
fn truncate(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let x = floats(&a[0])?;
    let d = a.get(1).map(ints).transpose()?;
    let out: Float64Array = (0..x.len())
        .map(|i| {
            let v = f64_at(x, i)?;
            let places = match d {
                None => 0,
                Some(d) => int_at(d, i)?,
            };
            if places == 0 || !v.is_finite() {
                return Some(v.trunc());
            }
            let scale = 10f64.powi(places.clamp(-308, 308) as i32);
            let t = (v * scale).trunc() / scale;
            Some(if t.is_finite() { t } else { v })
        })
        .collect();
    Ok(Arc::new(out))
}

fn coerce_mod(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    if a.iter().all(is_integer) {
        return Ok(vec![DataType::Int64, DataType::Int64]);
    }
    doubles(a, 2)
}

fn ret_mod(a: &[DataType]) -> Result<DataType> {
    Ok(a[0].clone())
}

/// `mod(n, m)`: the remainder, with the sign of `n`; integers fail on a
/// zero divisor, doubles give NaN.
fn modulus(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    if a[0].data_type() == &DataType::Int64 {
        let (n, m) = (ints(&a[0])?, ints(&a[1])?);
        let mut out = Vec::with_capacity(n.len());
        for i in 0..n.len() {
            out.push(match (int_at(n, i), int_at(m, i)) {
                (Some(_), Some(0)) => return fail("mod: division by zero"),
                (Some(x), Some(y)) => Some(x.wrapping_rem(y)),
                _ => None,
            });
        }
        return Ok(Arc::new(Int64Array::from(out)));
    }
    let (n, m) = (floats(&a[0])?, floats(&a[1])?);
    let out: Float64Array = (0..n.len())
        .map(|i| Some(f64_at(n, i)? % f64_at(m, i)?))
        .collect();
    Ok(Arc::new(out))
}

fn coerce_sign(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    if is_integer(&a[0]) {
        Ok(vec![DataType::Int64])
    } else {
        doubles(a, 1)
    }
}

/// `sign(x)`: -1, 0 or 1 (doubles keep -0, NaN and map infinities to ±1).
fn sign(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    if let Some(x) = a[0].as_any().downcast_ref::<Int64Array>() {
        return Ok(Arc::new(
            x.iter().map(|v| v.map(i64::signum)).collect::<Int64Array>(),
        ));
    }
    let x = floats(&a[0])?;
    let out: Float64Array = x
        .iter()
        .map(|v| {
            v.map(|v| {
                if v == 0.0 || v.is_nan() {
                    v
                } else {
                    v.signum()
                }
            })
        })
        .collect();
    Ok(Arc::new(out))
}

fn coerce_from_base(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    Ok(vec![
        want_string(&a[0], "string")?,
        want_int(&a[1], "radix")?,
    ])
}

fn check_radix(f: &str, radix: i64) -> Result<u32> {
    if (2..=36).contains(&radix) {
        Ok(radix as u32)
    } else {
        fail(format!("{f}: radix must be between 2 and 36, got {radix}"))
    }
}

/// `from_base(string, radix)`: the bigint `string` spells in base `radix`.
fn from_base(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (s, r) = (strs(&a[0])?, ints(&a[1])?);
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let (Some(v), Some(radix)) = (str_at(s, i), int_at(r, i)) else {
            out.push(None);
            continue;
        };
        let radix = check_radix("from_base", radix)?;
        match i64::from_str_radix(v, radix) {
            Ok(n) if !v.starts_with('+') || v.len() > 1 => out.push(Some(n)),
            _ => return fail(format!("from_base: not a valid base-{radix} number: '{v}'")),
        }
    }
    Ok(Arc::new(Int64Array::from(out)))
}

fn coerce_to_base(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 2)?;
    Ok(vec![want_int(&a[0], "x")?, want_int(&a[1], "radix")?])
}

/// `to_base(x, radix)`: `x` spelled in base `radix`, lower-case digits.
fn to_base(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (x, r) = (ints(&a[0])?, ints(&a[1])?);
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let (Some(v), Some(radix)) = (int_at(x, i), int_at(r, i)) else {
            out.push(None);
            continue;
        };
        let radix = check_radix("to_base", radix)? as u64;
        let mut n = v.unsigned_abs();
        let mut digits = Vec::new();
        loop {
            digits.push(char::from_digit((n % radix) as u32, radix as u32).unwrap_or('?'));
            n /= radix;
            if n == 0 {
                break;
            }
        }
        if v < 0 {
            digits.push('-');
        }
        out.push(Some(digits.iter().rev().collect::<String>()));
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn coerce_width_bucket(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 2, 4)?;
    match a.len() {
        4 => {
            let mut out = doubles(&a[..3], 3)?;
            out.push(want_int(&a[3], "bucket count")?);
            Ok(out)
        }
        2 => {
            let x = doubles(&a[..1], 1)?;
            match &a[1] {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
                    if is_number(f.data_type()) =>
                {
                    Ok(vec![
                        x[0].clone(),
                        DataType::new_list(DataType::Float64, true),
                    ])
                }
                t => plan_err!("bins must be an array of doubles, got {t}"),
            }
        }
        n => plan_err!("expects 2 or 4 arguments, got {n}"),
    }
}

/// `width_bucket(x, bound1, bound2, n)` (equal-width buckets numbered 1 to
/// n, 0 below and n + 1 above the range) and `width_bucket(x, bins)` (how
/// many of the ascending `bins` are at most `x`).
fn width_bucket(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let x = floats(&a[0])?;
    if a.len() == 2 {
        return width_bucket_bins(x, &a[1]);
    }
    let (lo, hi, n) = (floats(&a[1])?, floats(&a[2])?, ints(&a[3])?);
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let (Some(v), Some(b1), Some(b2), Some(count)) =
            (f64_at(x, i), f64_at(lo, i), f64_at(hi, i), int_at(n, i))
        else {
            out.push(None);
            continue;
        };
        if count <= 0 {
            return fail(format!(
                "width_bucket: the bucket count must be greater than 0, got {count}"
            ));
        }
        if v.is_nan() || !b1.is_finite() || !b2.is_finite() {
            return fail("width_bucket: the operand must not be NaN and the bounds must be finite");
        }
        if b1 == b2 {
            return fail("width_bucket: the bounds cannot equal each other");
        }
        let c = count as f64;
        let bucket = if b1 < b2 {
            if v < b1 {
                0
            } else if v >= b2 {
                count.saturating_add(1)
            } else {
                ((v - b1) * c / (b2 - b1)).floor() as i64 + 1
            }
        } else if v > b1 {
            0
        } else if v <= b2 {
            count.saturating_add(1)
        } else {
            ((b1 - v) * c / (b1 - b2)).floor() as i64 + 1
        };
        out.push(Some(bucket));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

fn width_bucket_bins(x: &Float64Array, bins: &ArrayRef) -> Result<ArrayRef> {
    let list = bins
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("bins".into()))?;
    let mut out = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let Some(v) = f64_at(x, i).filter(|_| list.is_valid(i)) else {
            out.push(None);
            continue;
        };
        let row = list.value(i);
        let b = floats(&row)?;
        let mut prev = f64::NEG_INFINITY;
        for j in 0..b.len() {
            match f64_at(b, j) {
                Some(e) if !e.is_nan() && e >= prev => prev = e,
                Some(_) => {
                    return fail("width_bucket: the bins must be sorted ascending and not NaN");
                }
                None => return fail("width_bucket: the bins must not contain NULL"),
            }
        }
        let values = b.values();
        out.push(Some(values.partition_point(|e| *e <= v) as i64));
    }
    Ok(Arc::new(Int64Array::from(out)))
}

fn coerce_random(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 0, 2)?;
    if a.iter().all(is_integer) {
        Ok(vec![DataType::Int64; a.len()])
    } else {
        doubles(a, a.len())
    }
}

fn ret_random(a: &[DataType]) -> Result<DataType> {
    Ok(match a.first() {
        Some(DataType::Int64) => DataType::Int64,
        _ => DataType::Float64,
    })
}

/// A xorshift generator seeded from the process' random hasher keys.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        Self(h.finish() | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `random()` in `[0, 1)`, `random(n)` in `[0, n)` and `random(m, n)` in
/// `[m, n)`; integer bounds give integers.
fn random(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let rows = a.first().map_or(1, |a| a.len());
    let mut rng = Rng::new();
    // Without arguments `a` holds one all-NULL column giving the row count.
    if a.is_empty() || a[0].data_type() == &DataType::Null {
        let out: Float64Array = (0..rows).map(|_| Some(rng.unit())).collect();
        return Ok(Arc::new(out));
    }
    if a[0].data_type() == &DataType::Int64 {
        let bounds: Vec<&Int64Array> = a.iter().map(ints).collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let v: Option<Vec<i64>> = bounds.iter().map(|b| int_at(b, i)).collect();
            let Some(v) = v else {
                out.push(None);
                continue;
            };
            let (lo, hi) = if v.len() == 1 {
                (0, v[0])
            } else {
                (v[0], v[1])
            };
            if hi <= lo {
                return fail(format!(
                    "random: the upper bound must be greater than the lower bound, got [{lo}, {hi})"
                ));
            }
            let span = (hi as i128 - lo as i128) as u128;
            out.push(Some(
                (lo as i128 + (rng.next() as u128 % span) as i128) as i64,
            ));
        }
        return Ok(Arc::new(Int64Array::from(out)));
    }
    let bounds: Vec<&Float64Array> = a.iter().map(floats).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(rows);
    for i in 0..rows {
        let v: Option<Vec<f64>> = bounds.iter().map(|b| f64_at(b, i)).collect();
        let Some(v) = v else {
            out.push(None);
            continue;
        };
        let (lo, hi) = if v.len() == 1 {
            (0.0, v[0])
        } else {
            (v[0], v[1])
        };
        if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
            return fail(format!(
                "random: the upper bound must be greater than the lower bound, got [{lo}, {hi})"
            ));
        }
        out.push(Some(lo + rng.unit() * (hi - lo)));
    }
    Ok(Arc::new(Float64Array::from(out)))
}

/// The error function's complement, to double precision: the Taylor series
/// of erf near 0, a continued fraction in the tails.
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let ax = x.abs();
    let tail = if ax < 3.0 {
        let mut term = ax;
        let mut sum = ax;
        let x2 = ax * ax;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() <= 1e-17 * sum.abs() || n > 200.0 {
                break;
            }
        }
        1.0 - sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
        // evaluated from the back.
        let mut f = ax;
        for k in (1..=60).rev() {
            f = ax + (k as f64 / 2.0) / f;
        }
        (-ax * ax).exp() / std::f64::consts::PI.sqrt() / f
    };
    if x >= 0.0 { tail } else { 2.0 - tail }
}

/// The standard normal distribution function.
fn phi(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// `normal_cdf(mean, sd, v)`: P(N < v) for N ~ Normal(mean, sd).
fn normal_cdf(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (m, s, v) = (floats(&a[0])?, floats(&a[1])?, floats(&a[2])?);
    let mut out = Vec::with_capacity(m.len());
    for i in 0..m.len() {
        let (Some(mean), Some(sd), Some(x)) = (f64_at(m, i), f64_at(s, i), f64_at(v, i)) else {
            out.push(None);
            continue;
        };
        if sd.is_nan() || sd <= 0.0 {
            return fail(format!(
                "normal_cdf: the standard deviation must be > 0, got {sd}"
            ));
        }
        out.push(Some(phi((x - mean) / sd)));
    }
    Ok(Arc::new(Float64Array::from(out)))
}

/// The standard normal quantile: Acklam's rational approximation refined by
/// one Halley step on [`erfc`].
fn probit(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let low = 0.02425;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let e = phi(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// `inverse_normal_cdf(mean, sd, p)`: the `v` with P(N < v) = p.
fn inverse_normal_cdf(a: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let (m, s, pr) = (floats(&a[0])?, floats(&a[1])?, floats(&a[2])?);
    let mut out = Vec::with_capacity(m.len());
    for i in 0..m.len() {
        let (Some(mean), Some(sd), Some(p)) = (f64_at(m, i), f64_at(s, i), f64_at(pr, i)) else {
            out.push(None);
            continue;
        };
        if p.is_nan() || p <= 0.0 || p >= 1.0 {
            return fail(format!(
                "inverse_normal_cdf: p must be in the interval (0, 1), got {p}"
            ));
        }
        if sd.is_nan() || sd <= 0.0 {
            return fail(format!(
                "inverse_normal_cdf: the standard deviation must be > 0, got {sd}"
            ));
        }
        out.push(Some(mean + sd * probit(p)));
    }
    Ok(Arc::new(Float64Array::from(out)))
}

fn coerce_wilson(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 3, 3)?;
    let mut out = vec![want_int(&a[0], "successes")?, want_int(&a[1], "trials")?];
    out.extend(doubles(&a[2..], 1)?);
    Ok(out)
}

/// The Wilson score interval's lower (`side` -1) or upper (+1) bound.
fn wilson(a: &[ArrayRef], side: f64) -> Result<ArrayRef> {
    let (s, n, z) = (ints(&a[0])?, ints(&a[1])?, floats(&a[2])?);
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let (Some(s), Some(n), Some(z)) = (int_at(s, i), int_at(n, i), f64_at(z, i)) else {
            out.push(None);
            continue;
        };
        if n <= 0 {
            return fail(format!("wilson_interval: trials must be positive, got {n}"));
        }
        if s < 0 || s > n {
            return fail(format!(
                "wilson_interval: successes must be between 0 and trials, got {s}"
            ));
        }
        if z.is_nan() || z < 0.0 {
            return fail(format!("wilson_interval: z must not be negative, got {z}"));
        }
        let (sf, nf) = (s as f64, n as f64);
        let p = sf / nf;
        let z2 = z * z;
        let center = p + z2 / (2.0 * nf);
        let margin = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
        out.push(Some((center + side * margin) / (1.0 + z2 / nf)));
    }
    Ok(Arc::new(Float64Array::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-15);
        assert!((erfc(0.5) - 0.479_500_122_186_953_5).abs() < 1e-14);
        assert!((erfc(-1.0) - 1.842_700_792_949_715).abs() < 1e-14);
        assert!((erfc(3.5) - 7.430_983_723_414_128e-7).abs() < 1e-20);
        assert!((phi(1.959_963_984_540_054) - 0.975).abs() < 1e-14);
    }

    #[test]
    fn probit_inverts_phi() {
        for p in [1e-10, 0.001, 0.02425, 0.3, 0.5, 0.975, 0.999_999] {
            assert!((phi(probit(p)) - p).abs() < 1e-10 * p, "{p}");
        }
    }
}
