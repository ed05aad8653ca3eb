//! The table schema of an export, inferred across all of its items.
//!
//! Each attribute's values are summarised in a [`Kind`] while the export
//! is read; kinds of different items merge. [`Sketch::columns`] then
//! decides the column types:
//!
//! | values                                    | column type                                |
//! |-------------------------------------------|--------------------------------------------|
//! | `S`                                       | `string`                                   |
//! | `BOOL`                                    | `boolean`                                  |
//! | `B`                                       | `binary`                                   |
//! | `N`, all whole numbers within 64 bits     | `bigint`                                   |
//! | `N`, otherwise, ≤ 38 digits at one scale  | `decimal(38, s)`, `s` the most decimals seen |
//! | `N`, otherwise, each exact as a double    | `double`                                   |
//! | `N`, otherwise                            | `string` holding the exact number          |
//! | `M`                                       | `struct` of the keys seen in any item      |
//! | `L`, `SS`, `NS`, `BS`                     | `array` of the merged element type         |
//! | scalars of different types                | `string` (numbers and booleans as text, binaries base64) |
//! | a map or list mixed with anything else, a map nested deeper than [`MAX_DEPTH`] or with more than [`MAX_FIELDS`] keys, or keys differing only in case | `string` holding the value as JSON |
//! | only `NULL`                               | `string`                                   |
//!
//! Column names are the attribute names in lower case (lakehose's SQL is
//! case-insensitive), with characters Delta Lake does not allow in names
//! (` ,;{}()\n\t=`) replaced by `_`. Two top-level attributes that end up
//! with one name are an error. Columns come in name order, the key
//! attributes first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

use super::item::{Attr, Item};

/// Maps nested deeper than this become JSON strings.
pub(crate) const MAX_DEPTH: usize = 8;
/// Maps with more distinct keys than this (across items) become JSON
/// strings: such maps are dictionaries, not records.
pub(crate) const MAX_FIELDS: usize = 256;

/// What the numbers of one attribute looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NumStats {
    /// Every value is a whole number that fits in 64 bits.
    pub all_i64: bool,
    /// Most digits before the decimal point.
    pub int_digits: u32,
    /// Most digits after the decimal point.
    pub scale: u32,
    /// Every value reads back exactly from a double.
    pub f64_exact: bool,
}

impl NumStats {
    fn of(text: &str) -> Self {
        if let Some(stats) = Self::plain(text) {
            return stats;
        }
        let n = Decimal::parse(text);
        let int_digits = n.int_digits();
        let scale = n.scale();
        let all_i64 = scale == 0
            && int_digits <= 19
            && n.to_i128(0).is_some_and(|v| i64::try_from(v).is_ok());
        let f64_exact = text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .is_some_and(|f| Decimal::parse(&format!("{f:e}")) == n);
        Self {
            all_i64,
            int_digits,
            scale,
            f64_exact,
        }
    }

    /// The common case without allocating: `[-]digits[.digits]` with at
    /// most 15 significant digits (which any double holds exactly).
    fn plain(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let body = b.strip_prefix(b"-").unwrap_or(b);
        let dot = body.iter().position(|&c| c == b'.');
        let (whole, frac) = match dot {
            Some(d) => (&body[..d], &body[d + 1..]),
            None => (body, &body[body.len()..]),
        };
        if whole.is_empty()
            || !whole.iter().all(u8::is_ascii_digit)
            || !frac.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
        let whole = match whole.iter().position(|&c| c != b'0') {
            Some(i) => &whole[i..],
            None => &whole[whole.len()..],
        };
        let frac = match frac.iter().rposition(|&c| c != b'0') {
            Some(i) => &frac[..=i],
            None => &frac[..0],
        };
        let significant = if whole.is_empty() {
            frac.len() - frac.iter().take_while(|&&c| c == b'0').count()
        } else {
            whole.len() + frac.len()
        };
        if significant > 15 {
            return None;
        }
        Some(Self {
            all_i64: frac.is_empty(),
            int_digits: whole.len() as u32,
            scale: frac.len() as u32,
            f64_exact: true,
        })
    }

    fn merge(self, o: Self) -> Self {
        Self {
            all_i64: self.all_i64 && o.all_i64,
            int_digits: self.int_digits.max(o.int_digits),
            scale: self.scale.max(o.scale),
            f64_exact: self.f64_exact && o.f64_exact,
        }
    }
}

/// A number's exact value: `digits × 10^exp`, `digits` without leading or
/// trailing zeros (empty for zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    digits: String,
    exp: i64,
}

/// The number `text` × 10^scale as an integer, if exact and within 38
/// digits; plain `[-]digits[.digits]` text is read without allocating.
pub(crate) fn scaled_integer(text: &str, scale: u32) -> Option<i128> {
    let b = text.as_bytes();
    let (negative, body) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if body.is_empty() || body.iter().any(|c| matches!(c, b'e' | b'E' | b'+')) {
        return Decimal::parse(text).to_i128(scale);
    }
    let mut v: i128 = 0;
    let mut frac: Option<u32> = None;
    for &c in body {
        match c {
            b'.' if frac.is_none() => frac = Some(0),
            b'0'..=b'9' => {
                if let Some(f) = &mut frac {
                    if *f == scale {
                        if c != b'0' {
                            return None;
                        }
                        continue;
                    }
                    *f += 1;
                }
                v = v.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
            }
            _ => return Decimal::parse(text).to_i128(scale),
        }
    }
    for _ in frac.unwrap_or(0)..scale {
        v = v.checked_mul(10)?;
    }
    if v >= 10i128.pow(38) {
        return None;
    }
    Some(if negative { -v } else { v })
}

impl Decimal {
    /// Parses a number already checked with [`super::item::is_number`].
    pub fn parse(text: &str) -> Self {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().unwrap_or(0)),
            None => (rest, 0),
        };
        let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let mut digits: String = whole.chars().chain(frac.chars()).collect();
        let mut exp = exp - frac.len() as i64;
        let trimmed = digits.trim_start_matches('0').len();
        digits.drain(..digits.len() - trimmed);
        while digits.ends_with('0') {
            digits.pop();
            exp += 1;
        }
        if digits.is_empty() {
            return Self {
                negative: false,
                digits,
                exp: 0,
            };
        }
        Self {
            negative,
            digits,
            exp,
        }
    }

    fn int_digits(&self) -> u32 {
        (self.digits.len() as i64 + self.exp).clamp(0, u32::MAX as i64) as u32
    }

    fn scale(&self) -> u32 {
        (-self.exp).clamp(0, u32::MAX as i64) as u32
    }

    /// The value × 10^scale as an integer, if exact and within 38 digits.
    pub(crate) fn to_i128(&self, scale: u32) -> Option<i128> {
        let shift = self.exp + i64::from(scale);
        if shift < 0 {
            return None;
        }
        if self.digits.len() as i64 + shift > 38 {
            return None;
        }
        let mut v: i128 = 0;
        for b in self.digits.bytes() {
            v = v.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        for _ in 0..shift {
            v = v.checked_mul(10)?;
        }
        Some(if self.negative { -v } else { v })
    }
}

/// What the values of one attribute (or map key, or list element) were.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Kind {
    /// Only NULLs so far.
    #[default]
    Unknown,
    /// `BOOL`.
    Bool,
    /// `S`.
    Str,
    /// `B`.
    Bin,
    /// `N`.
    Num(NumStats),
    /// `M`: key → kind of its values (keys as written).
    Struct(BTreeMap<String, Kind>),
    /// `L` and the sets: the kind of the elements.
    List(Box<Kind>),
    /// Scalars of different types: text.
    Text,
    /// Anything: JSON text.
    Json,
}

impl Kind {
    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Kind::Bool | Kind::Str | Kind::Bin | Kind::Num(_) | Kind::Text
        )
    }

    /// Folds `attr` (at nesting `depth`) into this kind.
    pub fn observe(&mut self, attr: &Attr<'_>, depth: usize) {
        // The common case: a scalar of the kind already seen.
        match (&mut *self, attr) {
            (Kind::Str, Attr::S(_)) | (Kind::Bool, Attr::Bool(_)) | (Kind::Bin, Attr::B(_)) => {
                return;
            }
            (Kind::Num(stats), Attr::N(n)) => {
                *stats = stats.merge(NumStats::of(n));
                return;
            }
            _ => {}
        }
        let seen = match attr {
            Attr::Null => return,
            Attr::S(_) => Kind::Str,
            Attr::N(n) => Kind::Num(NumStats::of(n)),
            Attr::B(_) => Kind::Bin,
            Attr::Bool(_) => Kind::Bool,
            Attr::M(pairs) => {
                if depth >= MAX_DEPTH {
                    Kind::Json
                } else {
                    match self {
                        Kind::Struct(fields) => {
                            for (k, v) in pairs {
                                fields
                                    .entry(k.to_string())
                                    .or_default()
                                    .observe(v, depth + 1);
                            }
                            if fields.len() > MAX_FIELDS {
                                *self = Kind::Json;
                            }
                            return;
                        }
                        Kind::Unknown => {
                            let mut k = Kind::Struct(BTreeMap::new());
                            k.observe(attr, depth);
                            *self = k;
                            return;
                        }
                        _ => Kind::Json,
                    }
                }
            }
            Attr::L(items) => {
                let mut elem = Kind::Unknown;
                for v in items {
                    elem.observe(v, depth + 1);
                }
                Kind::List(Box::new(elem))
            }
            Attr::Ss(_) => Kind::List(Box::new(Kind::Str)),
            Attr::Bs(_) => Kind::List(Box::new(Kind::Bin)),
            Attr::Ns(items) => {
                let stats = items
                    .iter()
                    .map(|n| NumStats::of(n))
                    .reduce(NumStats::merge);
                Kind::List(Box::new(stats.map_or(Kind::Unknown, Kind::Num)))
            }
        };
        self.merge(seen);
    }

    /// Merges another kind into this one.
    pub fn merge(&mut self, other: Kind) {
        let merged = match (std::mem::take(self), other) {
            (Kind::Unknown, k) | (k, Kind::Unknown) => k,
            (Kind::Json, _) | (_, Kind::Json) => Kind::Json,
            (Kind::Num(a), Kind::Num(b)) => Kind::Num(a.merge(b)),
            (Kind::Struct(mut a), Kind::Struct(b)) => {
                for (k, v) in b {
                    a.entry(k).or_default().merge(v);
                }
                if a.len() > MAX_FIELDS {
                    Kind::Json
                } else {
                    Kind::Struct(a)
                }
            }
            (Kind::List(mut a), Kind::List(b)) => {
                a.merge(*b);
                Kind::List(a)
            }
            (a, b) if a == b => a,
            (a, b) if a.is_scalar() && b.is_scalar() => Kind::Text,
            _ => Kind::Json,
        };
        *self = merged;
    }
}

/// How one column (or nested field) is built from attribute values.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `boolean`.
    Bool,
    /// `string` from `S`.
    Str,
    /// `binary`.
    Bin,
    /// `bigint`.
    Int,
    /// `decimal(38, scale)`.
    Decimal(u32),
    /// `double`.
    Double,
    /// `string` holding numbers exactly.
    NumText,
    /// `string` from mixed scalars.
    Text,
    /// `string` holding JSON.
    Json,
    /// `struct`: (attribute name, field name, shape) per field.
    Struct(Vec<(String, String, Shape)>),
    /// `array`.
    List(Box<Shape>),
}

impl Shape {
    fn of(kind: &Kind) -> Shape {
        match kind {
            Kind::Unknown | Kind::Str => Shape::Str,
            Kind::Bool => Shape::Bool,
            Kind::Bin => Shape::Bin,
            Kind::Num(n) if n.all_i64 => Shape::Int,
            Kind::Num(n) if n.int_digits + n.scale <= 38 => Shape::Decimal(n.scale),
            Kind::Num(n) if n.f64_exact => Shape::Double,
            Kind::Num(_) => Shape::NumText,
            Kind::Text => Shape::Text,
            Kind::Json => Shape::Json,
            Kind::List(elem) => Shape::List(Box::new(Shape::of(elem))),
            Kind::Struct(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                let mut names: HashMap<String, &str> = HashMap::new();
                for (attr, kind) in fields {
                    let name = column_name(attr);
                    if names.insert(name.clone(), attr).is_some() {
                        // Keys differing only in case: keep the map whole.
                        return Shape::Json;
                    }
                    out.push((attr.clone(), name, Shape::of(kind)));
                }
                out.sort_by(|a, b| a.1.cmp(&b.1));
                Shape::Struct(out)
            }
        }
    }

    /// The Arrow type.
    pub fn data_type(&self) -> DataType {
        match self {
            Shape::Bool => DataType::Boolean,
            Shape::Str | Shape::NumText | Shape::Text | Shape::Json => DataType::Utf8,
            Shape::Bin => DataType::Binary,
            Shape::Int => DataType::Int64,
            Shape::Decimal(s) => DataType::Decimal128(38, *s as i8),
            Shape::Double => DataType::Float64,
            Shape::Struct(fields) => DataType::Struct(Fields::from(
                fields
                    .iter()
                    .map(|(_, name, s)| Field::new(name, s.data_type(), true))
                    .collect::<Vec<_>>(),
            )),
            Shape::List(elem) => {
                DataType::List(Arc::new(Field::new("element", elem.data_type(), true)))
            }
        }
    }
}

/// The column name of an attribute.
pub fn column_name(attr: &str) -> String {
    attr.chars()
        .map(|c| match c {
            ' ' | ',' | ';' | '{' | '}' | '(' | ')' | '\n' | '\t' | '=' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// One column of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The attribute it holds.
    pub attr: String,
    /// The column name.
    pub name: String,
    /// How it is built.
    pub shape: Shape,
}

/// The kinds of every attribute seen, merged across items.
#[derive(Debug, Clone, Default)]
pub struct Sketch {
    attrs: Vec<(String, Kind)>,
    index: HashMap<String, usize>,
    /// Where the previous item's n-th attribute was (items of one export
    /// mostly list their attributes in the same order).
    hint: Vec<usize>,
}

impl Sketch {
    /// The slot of `name`, added when new; `position` is its place in the
    /// item.
    fn slot(&mut self, name: &str, position: usize) -> usize {
        if let Some(&i) = self.hint.get(position)
            && self.attrs.get(i).is_some_and(|(n, _)| n == name)
        {
            return i;
        }
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.attrs.push((name.to_string(), Kind::Unknown));
                self.index.insert(name.to_string(), self.attrs.len() - 1);
                self.attrs.len() - 1
            }
        };
        if position < self.hint.len() {
            self.hint[position] = i;
        } else if position == self.hint.len() {
            self.hint.push(i);
        }
        i
    }

    /// Folds one item in.
    pub fn observe(&mut self, item: &Item<'_>) {
        for (position, (name, value)) in item.0.iter().enumerate() {
            let i = self.slot(name, position);
            self.attrs[i].1.observe(value, 1);
        }
    }

    /// Folds another sketch in.
    pub fn merge(&mut self, other: Sketch) {
        for (name, kind) in other.attrs {
            let i = self.slot(&name, usize::MAX);
            self.attrs[i].1.merge(kind);
        }
    }

    /// The columns: `keys` (attribute names) first, the others by name.
    pub fn columns(&self, keys: &[String]) -> Result<Vec<Column>, String> {
        let mut columns: Vec<Column> = self
            .attrs
            .iter()
            .map(|(attr, kind)| Column {
                attr: attr.clone(),
                name: column_name(attr),
                shape: Shape::of(kind),
            })
            .collect();
        columns.sort_by(|a, b| a.name.cmp(&b.name).then(a.attr.cmp(&b.attr)));
        for pair in columns.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(format!(
                    "attributes {:?} and {:?} would both be column {:?} (column names are case-insensitive); rename one in DynamoDB",
                    pair[0].attr, pair[1].attr, pair[0].name
                ));
            }
        }
        for (i, key) in keys.iter().enumerate() {
            let Some(at) = columns.iter().position(|c| &c.attr == key) else {
                return Err(format!("key attribute {key:?} is in no item of the export"));
            };
            let column = columns.remove(at);
            if !matches!(
                column.shape,
                Shape::Str | Shape::Int | Shape::Decimal(_) | Shape::Bin
            ) {
                return Err(format!(
                    "key attribute {key:?} is not a string, number or binary in every item"
                ));
            }
            columns.insert(i, column);
        }
        Ok(columns)
    }
}

/// The Arrow schema of `columns`, plus the raw item column when asked.
pub fn arrow_schema(columns: &[Column], raw_column: Option<&str>) -> SchemaRef {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.shape.data_type(), true))
        .collect();
    if let Some(raw) = raw_column {
        fields.push(Field::new(raw, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::export::item::parse_line;

    fn sketch(lines: &[&str]) -> Sketch {
        let mut s = Sketch::default();
        for l in lines {
            s.observe(parse_line(l.as_bytes()).unwrap().item.as_ref().unwrap());
        }
        s
    }

    fn shape_of(lines: &[&str], attr: &str) -> Shape {
        let cols = sketch(lines).columns(&[]).unwrap();
        cols.into_iter().find(|c| c.attr == attr).unwrap().shape
    }

    #[test]
    fn numbers_get_the_narrowest_exact_type() {
        let n = |vals: &[&str]| {
            let lines: Vec<String> = vals
                .iter()
                .map(|v| format!(r#"{{"Item":{{"x":{{"N":"{v}"}}}}}}"#))
                .collect();
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            shape_of(&refs, "x")
        };
        assert_eq!(n(&["1", "-42", "1E+3"]), Shape::Int);
        assert_eq!(n(&["9223372036854775808"]), Shape::Decimal(0));
        assert_eq!(n(&["1", "2.50", "-0.125"]), Shape::Decimal(3));
        assert_eq!(
            n(&["12345678901234567890123456789012345678"]),
            Shape::Decimal(0)
        );
        assert_eq!(n(&["1E+100", "2.5"]), Shape::Double);
        assert_eq!(
            n(&["1E+100", "1.2345678901234567890123456789"]),
            Shape::NumText
        );
    }

    #[test]
    fn plain_numbers_take_the_fast_paths_with_the_same_answers() {
        for text in [
            "0",
            "-0",
            "007",
            "12.50",
            "-0.125",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "99999999999999999999",
            "1E+3",
            "-2.5e-3",
            "5.",
            ".5",
        ] {
            let slow = {
                let n = Decimal::parse(text);
                let exact = text
                    .parse::<f64>()
                    .is_ok_and(|f| Decimal::parse(&format!("{f:e}")) == n);
                (n.scale(), n.int_digits(), exact)
            };
            let fast = NumStats::of(text);
            assert_eq!((fast.scale, fast.int_digits), (slow.0, slow.1), "{text}");
            assert!(!fast.f64_exact || slow.2, "{text}");
            for scale in [0, 2, 3, 6] {
                assert_eq!(
                    scaled_integer(text, scale),
                    Decimal::parse(text).to_i128(scale),
                    "{text} at scale {scale}"
                );
            }
        }
    }

    #[test]
    fn decimals_parse_exactly() {
        let d = Decimal::parse("-0012.3400");
        assert_eq!(d.to_i128(4), Some(-123_400));
        assert_eq!(d.to_i128(1), None);
        assert_eq!(Decimal::parse("1.5E2").to_i128(0), Some(150));
        assert_eq!(Decimal::parse("0.000").to_i128(2), Some(0));
        assert_eq!(Decimal::parse("0"), Decimal::parse("-0.0e5"));
    }

    #[test]
    fn kinds_merge_and_widen() {
        let lines = [
            r#"{"Item":{"a":{"S":"x"},"b":{"N":"1"},"c":{"M":{"k":{"N":"1"}}},"d":{"NULL":true},"e":{"SS":["a"]}}}"#,
            r#"{"Item":{"a":{"N":"2"},"b":{"M":{}},"c":{"M":{"K2":{"S":"y"}}},"e":{"L":[{"S":"b"}]}}}"#,
        ];
        assert_eq!(shape_of(&lines, "a"), Shape::Text);
        assert_eq!(shape_of(&lines, "b"), Shape::Json);
        assert_eq!(
            shape_of(&lines, "c"),
            Shape::Struct(vec![
                ("k".into(), "k".into(), Shape::Int),
                ("K2".into(), "k2".into(), Shape::Str)
            ])
        );
        assert_eq!(shape_of(&lines, "d"), Shape::Str);
        assert_eq!(shape_of(&lines, "e"), Shape::List(Box::new(Shape::Str)));
        let mixed = [r#"{"Item":{"m":{"M":{"a":{"S":"x"},"A":{"S":"y"}}}}}"#];
        assert_eq!(shape_of(&mixed, "m"), Shape::Json);
    }

    #[test]
    fn columns_put_keys_first_and_refuse_clashes() {
        let s =
            sketch(&[r#"{"Item":{"b":{"S":"x"},"sk":{"N":"1"},"Pk":{"S":"p"},"a b":{"S":"q"}}}"#]);
        let names: Vec<String> = s
            .columns(&["Pk".into(), "sk".into()])
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["pk", "sk", "a_b", "b"]);
        let clash = sketch(&[r#"{"Item":{"id":{"S":"x"},"ID":{"S":"y"}}}"#]);
        assert!(
            clash
                .columns(&[])
                .unwrap_err()
                .contains("\"ID\" and \"id\"")
        );
        assert!(
            s.columns(&["nope".into()])
                .unwrap_err()
                .contains("\"nope\"")
        );
    }
}
