//! Trino's binary (`varbinary`) functions: `to_base64`/`from_base64` and
//! their URL-safe twins, the digests `md5`, `sha1`, `sha256`, `sha512`,
//! `xxhash64` (each returning `varbinary`, as in Trino), `crc32`, and
//! `substr` over `varbinary` beside DataFusion's over strings.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use sha1::Digest;

use super::{Func, arity, fail, is_integer, is_string, ret_i64, ret_utf8};

pub(crate) fn functions() -> Vec<Func> {
    vec![
        Func::new("to_base64", coerce_binary, ret_utf8, to_base64),
        Func::new("to_base64url", coerce_binary, ret_utf8, to_base64url),
        Func::new(
            "from_base64",
            coerce_text_or_binary,
            ret_binary,
            from_base64,
        ),
        Func::new(
            "from_base64url",
            coerce_text_or_binary,
            ret_binary,
            from_base64url,
        ),
        Func::new("md5", coerce_binary, ret_binary, md5),
        Func::new("sha1", coerce_binary, ret_binary, sha1),
        Func::new("sha256", coerce_binary, ret_binary, sha256),
        Func::new("sha512", coerce_binary, ret_binary, sha512),
        Func::new("xxhash64", coerce_binary, ret_binary, xxhash64),
        Func::new("crc32", coerce_binary, ret_i64, crc32),
    ]
}

fn ret_binary(_: &[DataType]) -> Result<DataType> {
    Ok(DataType::Binary)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

/// One `varbinary` argument (NULL literals too), as Trino's signatures take.
fn coerce_binary(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    match &a[0] {
        t if is_binary(t) || t.is_null() => Ok(vec![DataType::Binary]),
        t => plan_err!("expects varbinary, got {t}; convert text with to_utf8(...)"),
    }
}

/// One `varchar` or `varbinary` argument, read as text.
fn coerce_text_or_binary(a: &[DataType]) -> Result<Vec<DataType>> {
    arity(a, 1, 1)?;
    match &a[0] {
        t if is_string(t) || is_binary(t) || t.is_null() => Ok(vec![DataType::Binary]),
        t => plan_err!("expects varchar or varbinary, got {t}"),
    }
}

fn bytes_of(a: &ArrayRef) -> Result<&BinaryArray> {
    a.as_any().downcast_ref().ok_or_else(|| {
        datafusion::error::DataFusionError::Internal(format!(
            "expected Binary, got {}",
            a.data_type()
        ))
    })
}

/// `f` over every non-NULL value.
fn map_bytes<T>(a: &ArrayRef, f: impl Fn(&[u8]) -> Result<T>) -> Result<Vec<Option<T>>> {
    bytes_of(a)?.iter().map(|v| v.map(&f).transpose()).collect()
}

fn to_base64(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let out = map_bytes(&args[0], |b| Ok(general_purpose::STANDARD.encode(b)))?;
    Ok(Arc::new(StringArray::from(out)))
}

fn to_base64url(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let out = map_bytes(&args[0], |b| Ok(general_purpose::URL_SAFE.encode(b)))?;
    Ok(Arc::new(StringArray::from(out)))
}

/// Decoders that take the text with or without its `=` padding, as Java's
/// (and so Trino's) do.
const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_with(args: &[ArrayRef], engine: &GeneralPurpose, name: &str) -> Result<ArrayRef> {
    let out = map_bytes(&args[0], |text| {
        engine.decode(text.trim_ascii()).or_else(|e| {
            fail(format!(
                "{name}: '{}' is not valid base64 ({e})",
                String::from_utf8_lossy(&text[..text.len().min(64)])
            ))
        })
    })?;
    Ok(Arc::new(BinaryArray::from_iter(out)))
}

fn from_base64(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    decode_with(args, &STANDARD_ANY_PADDING, "from_base64")
}

fn from_base64url(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    decode_with(args, &URL_SAFE_ANY_PADDING, "from_base64url")
}

fn digest_with(args: &[ArrayRef], f: fn(&[u8]) -> Vec<u8>) -> Result<ArrayRef> {
    let out = map_bytes(&args[0], |b| Ok(f(b)))?;
    Ok(Arc::new(BinaryArray::from_iter(out)))
}

fn md5(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    digest_with(args, |b| md5::Md5::digest(b).to_vec())
}

fn sha1(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    digest_with(args, |b| sha1::Sha1::digest(b).to_vec())
}

fn sha256(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    digest_with(args, |b| sha2::Sha256::digest(b).to_vec())
}

fn sha512(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    digest_with(args, |b| sha2::Sha512::digest(b).to_vec())
}

/// XXH64 with seed 0, as 8 big-endian bytes (Trino's `xxhash64`).
fn xxhash64(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    digest_with(args, |b| {
        twox_hash::XxHash64::oneshot(0, b).to_be_bytes().to_vec()
    })
}

fn crc32(args: &[ArrayRef], _: &DataType) -> Result<ArrayRef> {
    let out = map_bytes(&args[0], |b| Ok(i64::from(crc32fast::hash(b))))?;
    Ok(Arc::new(Int64Array::from(out)))
}

/// `substr`/`substring` as Trino's: a 1-based start, negative from the
/// end; over `varbinary` in bytes, over text in characters (a start of 0
/// or past the end, or a negative length, gives an empty result).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Substr {
    aliases: Vec<String>,
    signature: Signature,
}

impl Substr {
    /// The function, also named `substring`.
    pub(crate) fn new() -> Self {
        Self {
            aliases: vec!["substring".to_string()],
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Substr {
    fn name(&self) -> &str {
        "substr"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, a: &[DataType]) -> Result<Vec<DataType>> {
        arity(a, 2, 3)?;
        let first = if is_binary(&a[0]) {
            DataType::Binary
        } else if is_string(&a[0]) || a[0].is_null() {
            DataType::Utf8
        } else {
            // What DataFusion's substr does with other types: text.
            DataType::Utf8
        };
        let mut out = vec![first];
        for t in &a[1..] {
            if !(is_integer(t) || t.is_null()) {
                return plan_err!("substr: the start and length must be integers, got {t}");
            }
            out.push(DataType::Int64);
        }
        Ok(out)
    }

    fn return_type(&self, a: &[DataType]) -> Result<DataType> {
        if is_binary(&a[0]) {
            Ok(DataType::Binary)
        } else {
            Ok(DataType::Utf8)
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if !is_binary(&args.arg_fields[0].data_type().clone()) {
            return substr_text(&arrays, rows);
        }
        let bytes = cast(&arrays[0], &DataType::Binary)?;
        let bytes = bytes_of(&bytes)?;
        let starts: &Int64Array = arrays[1].as_any().downcast_ref().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("substr start is not Int64".into())
        })?;
        let lengths: Option<&Int64Array> = arrays.get(2).and_then(|a| a.as_any().downcast_ref());
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(rows);
        for i in 0..rows {
            let (Some(b), Some(start)) = (
                bytes.is_valid(i).then(|| bytes.value(i)),
                starts.is_valid(i).then(|| starts.value(i)),
            ) else {
                out.push(None);
                continue;
            };
            let length = match lengths {
                Some(l) if l.is_null(i) => {
                    out.push(None);
                    continue;
                }
                Some(l) => Some(l.value(i)),
                None => None,
            };
            out.push(Some(slice(b, start, length).to_vec()));
        }
        let out: ArrayRef = Arc::new(BinaryArray::from_iter(out));
        Ok(ColumnarValue::Array(out))
    }
}

/// Trino's `substr` on text, by characters, with [`slice`]'s rules.
fn substr_text(arrays: &[ArrayRef], rows: usize) -> Result<ColumnarValue> {
    let text = cast(&arrays[0], &DataType::Utf8)?;
    let text: &StringArray = text.as_any().downcast_ref().ok_or_else(|| {
        datafusion::error::DataFusionError::Internal("substr text is not Utf8".into())
    })?;
    let starts: &Int64Array = arrays[1].as_any().downcast_ref().ok_or_else(|| {
        datafusion::error::DataFusionError::Internal("substr start is not Int64".into())
    })?;
    let lengths: Option<&Int64Array> = arrays.get(2).and_then(|a| a.as_any().downcast_ref());
    let mut out: Vec<Option<String>> = Vec::with_capacity(rows);
    for i in 0..rows {
        let length = match lengths {
            Some(l) if l.is_null(i) => {
                out.push(None);
                continue;
            }
            Some(l) => Some(l.value(i)),
            None => None,
        };
        if text.is_null(i) || starts.is_null(i) {
            out.push(None);
            continue;
        }
        let chars: Vec<char> = text.value(i).chars().collect();
        let picked = slice_of(&chars, starts.value(i), length);
        out.push(Some(picked.iter().collect()));
    }
    let out: ArrayRef = Arc::new(StringArray::from(out));
    Ok(ColumnarValue::Array(out))
}

/// lakehose's `substr`: [`Substr`], in place of DataFusion's.
pub(crate) fn substr_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Substr::new())
}

/// Plans the `SUBSTRING(x FROM a FOR b)` / `SUBSTR(x, a, b)` syntax with
/// [`substr_udf`].
#[derive(Debug)]
pub(crate) struct SubstringPlanner;

impl datafusion::logical_expr::planner::ExprPlanner for SubstringPlanner {
    fn plan_substring(
        &self,
        args: Vec<datafusion::logical_expr::Expr>,
    ) -> Result<datafusion::logical_expr::planner::PlannerResult<Vec<datafusion::logical_expr::Expr>>>
    {
        use datafusion::logical_expr::expr::ScalarFunction;
        Ok(datafusion::logical_expr::planner::PlannerResult::Planned(
            datafusion::logical_expr::Expr::ScalarFunction(ScalarFunction::new_udf(
                Arc::new(substr_udf()),
                args,
            )),
        ))
    }
}

/// Trino's `substr` on bytes: `start` counts from 1 (negative: from the
/// end); a start of 0 or outside the value, or a negative length, gives
/// nothing.
fn slice(b: &[u8], start: i64, length: Option<i64>) -> &[u8] {
    slice_of(b, start, length)
}

/// [`slice`] over any elements (bytes or characters).
fn slice_of<T>(b: &[T], start: i64, length: Option<i64>) -> &[T] {
    let n = b.len() as i64;
    let from = match start {
        s if s > 0 => s - 1,
        s if s < 0 => n + s,
        _ => return &[],
    };
    if from < 0 || from >= n {
        return &[];
    }
    let to = match length {
        Some(l) if l < 0 => return &[],
        Some(l) => from.saturating_add(l).min(n),
        None => n,
    };
    &b[from as usize..to as usize]
}

#[cfg(test)]
mod tests {
    use super::super::{str_at, strs};
    use super::*;

    /// Reads a string column.
    fn texts(a: &ArrayRef) -> Vec<Option<String>> {
        let s = strs(a).unwrap();
        (0..s.len())
            .map(|i| str_at(s, i).map(str::to_string))
            .collect()
    }

    #[test]
    fn binary_slices_follow_trino() {
        let b = b"\x01\x02\x03\x04";
        assert_eq!(slice(b, 2, Some(2)), b"\x02\x03");
        assert_eq!(slice(b, -2, None), b"\x03\x04");
        assert_eq!(slice(b, 0, None), b"");
        assert_eq!(slice(b, 5, None), b"");
        assert_eq!(slice(b, -5, None), b"");
        assert_eq!(slice(b, 3, Some(10)), b"\x03\x04");
        assert_eq!(slice(b, 1, Some(-1)), b"");
    }

    #[test]
    fn base64_round_trips_with_or_without_padding() {
        let input: ArrayRef = Arc::new(BinaryArray::from_iter([
            Some(b"hello".as_slice()),
            None,
            Some(b"\xfb\xff".as_slice()),
        ]));
        let standard = to_base64(&[Arc::clone(&input)], &DataType::Utf8).unwrap();
        assert_eq!(
            texts(&standard),
            [Some("aGVsbG8=".into()), None, Some("+/8=".into())]
        );
        let url = to_base64url(&[Arc::clone(&input)], &DataType::Utf8).unwrap();
        assert_eq!(
            texts(&url),
            [Some("aGVsbG8=".into()), None, Some("-_8=".into())]
        );
        let unpadded: ArrayRef = Arc::new(BinaryArray::from_iter([Some(b"aGVsbG8".as_slice())]));
        let back = from_base64(&[unpadded], &DataType::Binary).unwrap();
        assert_eq!(bytes_of(&back).unwrap().value(0), b"hello");
        let bad: ArrayRef = Arc::new(BinaryArray::from_iter([Some(b"@@@".as_slice())]));
        assert!(from_base64(&[bad], &DataType::Binary).is_err());
    }
}
