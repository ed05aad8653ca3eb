//! DynamoDB's typed JSON (`{"S": "text"}`, `{"N": "1.5"}`, `{"M": {...}}`,
//! ...) as it appears in the lines of a `DYNAMODB_JSON` export, parsed
//! straight into [`Attr`] without an intermediate JSON tree. Strings
//! borrow from the line where they have no escapes.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr<'a> {
    /// `S`: a string.
    S(Cow<'a, str>),
    /// `N`: a number, as its exact text.
    N(Cow<'a, str>),
    /// `B`: bytes (base64 on the wire).
    B(Vec<u8>),
    /// `BOOL`.
    Bool(bool),
    /// `NULL: true`.
    Null,
    /// `M`: a map, in the order of the line.
    M(Vec<(Cow<'a, str>, Attr<'a>)>),
    /// `L`: a list.
    L(Vec<Attr<'a>>),
    /// `SS`: a string set.
    Ss(Vec<Cow<'a, str>>),
    /// `NS`: a number set, each number as its text.
    Ns(Vec<Cow<'a, str>>),
    /// `BS`: a binary set.
    Bs(Vec<Vec<u8>>),
}

/// An item: attribute name → value, in the order of the line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Item<'a>(pub Vec<(Cow<'a, str>, Attr<'a>)>);

impl<'a> Item<'a> {
    /// The value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<&Attr<'a>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// One line of an export's data file.
#[derive(Debug, Default)]
pub struct Line<'a> {
    /// A full export's item.
    pub item: Option<Item<'a>>,
    /// An incremental record's key attributes.
    pub keys: Option<Item<'a>>,
    /// The item after the change (absent for a delete).
    pub new_image: Option<Item<'a>>,
    /// The item before the change (`NEW_AND_OLD_IMAGES` exports).
    pub old_image: Option<Item<'a>>,
    /// `Metadata.WriteTimestampMicros`.
    pub write_micros: Option<i64>,
}

/// Why a line of a data file is not a record.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The bytes are not UTF-8.
    #[error("is not valid UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    /// The text is not a `DYNAMODB_JSON` record (malformed JSON, an
    /// unknown type descriptor, a bad number or base64 value, ...).
    #[error(transparent)]
    Record(#[from] serde_json::Error),
}

/// Parses one line of a `DYNAMODB_JSON` data file.
pub fn parse_line(line: &[u8]) -> Result<Line<'_>, LineError> {
    Ok(parse_line_str(std::str::from_utf8(line)?)?)
}

/// [`parse_line`] of text already known to be UTF-8 (strings are not
/// checked again).
pub(crate) fn parse_line_str(line: &str) -> Result<Line<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = Line::deserialize(&mut de)?;
    de.end()?;
    Ok(parsed)
}

impl<'de> Deserialize<'de> for Line<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LineVisitor;
        impl<'de> Visitor<'de> for LineVisitor {
            type Value = Line<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an export record: {"Item": {...}} or {"Keys": {...}, "NewImage": {...}, ...}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Line<'de>, A::Error> {
                let mut line = Line::default();
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    match key.as_ref() {
                        "Item" => line.item = Some(map.next_value()?),
                        "Keys" => line.keys = Some(map.next_value()?),
                        "NewImage" => line.new_image = Some(map.next_value()?),
                        "OldImage" => line.old_image = Some(map.next_value()?),
                        "Metadata" => {
                            let meta: Item<'de> = map.next_value()?;
                            line.write_micros = match meta.get("WriteTimestampMicros") {
                                Some(Attr::N(n)) => Some(n.parse().map_err(|_| {
                                    de::Error::custom(format!(
                                        "Metadata.WriteTimestampMicros {n:?} is not a whole number"
                                    ))
                                })?),
                                Some(_) => {
                                    return Err(de::Error::custom(
                                        "Metadata.WriteTimestampMicros is not a number (N)",
                                    ));
                                }
                                None => None,
                            };
                        }
                        other => {
                            return Err(de::Error::custom(format!(
                                "unexpected field {other:?} in an export record (expected Item, Keys, NewImage, OldImage or Metadata)"
                            )));
                        }
                    }
                }
                Ok(line)
            }
        }
        d.deserialize_map(LineVisitor)
    }
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PairsVisitor).map(Item)
    }
}

/// A JSON object of attribute name → typed value.
struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Vec<(Cow<'de, str>, Attr<'de>)>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of attribute names to typed values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
            let value: Attr<'de> = map
                .next_value()
                .map_err(|e: A::Error| de::Error::custom(format!("attribute {name:?}: {e}")))?;
            out.push((name, value));
        }
        Ok(out)
    }
}

fn decode_base64<E: de::Error>(text: &str) -> Result<Vec<u8>, E> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| E::custom(format!("invalid base64 in a binary value: {e}")))
}

/// A JSON string, borrowed when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// Bytes given as a base64 JSON string.
struct Base64(Vec<u8>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Text::deserialize(d)?;
        decode_base64(&text.0).map(Base64)
    }
}

/// A list of typed values.
struct List<'a>(Vec<Attr<'a>>);

impl<'de> Deserialize<'de> for List<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = Vec<Attr<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of typed values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(ListVisitor).map(List)
    }
}

/// Checks that `text` is a DynamoDB number: an optional sign, digits with
/// an optional fraction, an optional exponent.
pub fn is_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - digits_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'-' | b'+') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

fn number<'a, E: de::Error>(text: Cow<'a, str>) -> Result<Cow<'a, str>, E> {
    if is_number(&text) {
        Ok(text)
    } else {
        Err(E::custom(format!("{text:?} is not a number")))
    }
}

impl<'de> Deserialize<'de> for Attr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AttrVisitor;
        impl<'de> Visitor<'de> for AttrVisitor {
            type Value = Attr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a typed value with one type descriptor (S, N, B, BOOL, NULL, M, L, SS, NS, BS)",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attr<'de>, A::Error> {
                let Some(Text(tag)) = map.next_key::<Text<'de>>()? else {
                    return Err(de::Error::custom("a typed value has no type descriptor"));
                };
                let value = match tag.as_ref() {
                    "S" => Attr::S(map.next_value::<Text>()?.0),
                    "N" => Attr::N(number(map.next_value::<Text>()?.0)?),
                    "B" => Attr::B(map.next_value::<Base64>()?.0),
                    "BOOL" => Attr::Bool(map.next_value()?),
                    "NULL" => {
                        if !map.next_value::<bool>()? {
                            return Err(de::Error::custom("NULL must be true"));
                        }
                        Attr::Null
                    }
                    "M" => Attr::M(map.next_value::<Item>()?.0),
                    "L" => Attr::L(map.next_value::<List>()?.0),
                    "SS" => Attr::Ss(
                        map.next_value::<Vec<Text>>()?
                            .into_iter()
                            .map(|t| t.0)
                            .collect(),
                    ),
                    "NS" => Attr::Ns(
                        map.next_value::<Vec<Text>>()?
                            .into_iter()
                            .map(|t| number(t.0))
                            .collect::<Result<_, _>>()?,
                    ),
                    "BS" => Attr::Bs(
                        map.next_value::<Vec<Base64>>()?
                            .into_iter()
                            .map(|b| b.0)
                            .collect(),
                    ),
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown type descriptor {other:?} (expected S, N, B, BOOL, NULL, M, L, SS, NS or BS)"
                        )));
                    }
                };
                if let Some(Text(extra)) = map.next_key::<Text<'de>>()? {
                    return Err(de::Error::custom(format!(
                        "a typed value has a second type descriptor {extra:?}"
                    )));
                }
                Ok(value)
            }
        }
        d.deserialize_map(AttrVisitor)
    }
}

impl Attr<'_> {
    /// The value as plain JSON: strings, numbers (their exact text),
    /// base64 strings for binaries, arrays for lists and sets, objects for
    /// maps.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Attr::S(s) => write_json_string(out, s),
            Attr::N(n) => out.push_str(n),
            Attr::B(b) => {
                write_json_string(out, &base64::engine::general_purpose::STANDARD.encode(b))
            }
            Attr::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
            Attr::Null => out.push_str("null"),
            Attr::M(pairs) => write_object(out, pairs, |v, o| v.write_json(o)),
            Attr::L(items) => write_array(out, items.iter(), |o, v| v.write_json(o)),
            Attr::Ss(items) => write_array(out, items.iter(), |o, s| write_json_string(o, s)),
            Attr::Ns(items) => write_array(out, items.iter(), |o, n| o.push_str(n)),
            Attr::Bs(items) => write_array(out, items.iter(), |o, b| {
                write_json_string(o, &base64::engine::general_purpose::STANDARD.encode(b))
            }),
        }
    }

    /// The value in DynamoDB's typed JSON, as the export spells it.
    pub fn write_typed_json(&self, out: &mut String) {
        let tagged = |out: &mut String, tag: &str, f: &dyn Fn(&mut String)| {
            out.push_str("{\"");
            out.push_str(tag);
            out.push_str("\":");
            f(out);
            out.push('}');
        };
        match self {
            Attr::S(s) => tagged(out, "S", &|o| write_json_string(o, s)),
            Attr::N(n) => tagged(out, "N", &|o| write_json_string(o, n)),
            Attr::B(_) | Attr::Bs(_) | Attr::Ss(_) | Attr::Bool(_) => {
                let tag = match self {
                    Attr::B(_) => "B",
                    Attr::Bs(_) => "BS",
                    Attr::Ss(_) => "SS",
                    _ => "BOOL",
                };
                tagged(out, tag, &|o| self.write_json(o))
            }
            Attr::Null => out.push_str("{\"NULL\":true}"),
            Attr::Ns(items) => tagged(out, "NS", &|o| {
                write_array(o, items.iter(), |o, n| write_json_string(o, n))
            }),
            Attr::M(pairs) => tagged(out, "M", &|o| write_typed_pairs(o, pairs)),
            Attr::L(items) => tagged(out, "L", &|o| {
                write_array(o, items.iter(), |o, v| v.write_typed_json(o))
            }),
        }
    }
}

/// An item's attributes in DynamoDB's typed JSON.
pub(crate) fn write_typed_pairs(out: &mut String, pairs: &[(Cow<'_, str>, Attr<'_>)]) {
    write_object(out, pairs, |v, o| v.write_typed_json(o));
}

/// A JSON object of `pairs`, each value written by `value`.
fn write_object(
    out: &mut String,
    pairs: &[(Cow<'_, str>, Attr<'_>)],
    value: impl Fn(&Attr<'_>, &mut String),
) {
    write_array_with(out, ('{', '}'), pairs.iter(), |o, (k, v)| {
        write_json_string(o, k);
        o.push(':');
        value(v, o);
    });
}

fn write_array<T>(out: &mut String, items: impl Iterator<Item = T>, f: impl Fn(&mut String, T)) {
    write_array_with(out, ('[', ']'), items, f);
}

/// `items` written by `f`, comma-separated between `brackets`.
fn write_array_with<T>(
    out: &mut String,
    brackets: (char, char),
    items: impl Iterator<Item = T>,
    f: impl Fn(&mut String, T),
) {
    out.push(brackets.0);
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, v);
    }
    out.push(brackets.1);
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses() {
        let line = br#"{"Item":{"pk":{"S":"u#1"},"n":{"N":"-12.50"},"b":{"B":"AAEC"},"t":{"BOOL":true},"z":{"NULL":true},"m":{"M":{"a":{"S":"x\"y"}}},"l":{"L":[{"N":"1"},{"S":"two"}]},"ss":{"SS":["a","b"]},"ns":{"NS":["1","2.5"]},"bs":{"BS":["AA=="]}}}"#;
        let parsed = parse_line(line).unwrap();
        let item = parsed.item.unwrap();
        assert_eq!(item.get("pk"), Some(&Attr::S("u#1".into())));
        assert_eq!(item.get("n"), Some(&Attr::N("-12.50".into())));
        assert_eq!(item.get("b"), Some(&Attr::B(vec![0, 1, 2])));
        assert_eq!(item.get("t"), Some(&Attr::Bool(true)));
        assert_eq!(item.get("z"), Some(&Attr::Null));
        assert_eq!(
            item.get("m"),
            Some(&Attr::M(vec![("a".into(), Attr::S("x\"y".into()))]))
        );
        assert_eq!(
            item.get("l"),
            Some(&Attr::L(vec![Attr::N("1".into()), Attr::S("two".into())]))
        );
        assert_eq!(
            item.get("ns"),
            Some(&Attr::Ns(vec!["1".into(), "2.5".into()]))
        );
        assert_eq!(item.get("bs"), Some(&Attr::Bs(vec![vec![0]])));
        let mut json = String::new();
        item.get("l").unwrap().write_json(&mut json);
        assert_eq!(json, r#"[1,"two"]"#);
        let mut typed = String::new();
        write_typed_pairs(&mut typed, &item.0);
        let reparsed: Item = serde_json::from_str(&typed).unwrap();
        assert_eq!(reparsed, item);
    }

    #[test]
    fn incremental_records_parse() {
        let line = br#"{"Metadata":{"WriteTimestampMicros":{"N":"1700000000000001"}},"Keys":{"pk":{"S":"a"}},"OldImage":{"pk":{"S":"a"}}}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.write_micros, Some(1_700_000_000_000_001));
        assert!(parsed.new_image.is_none());
        assert_eq!(parsed.keys.unwrap().0.len(), 1);
    }

    #[test]
    fn bad_values_are_named() {
        let err = |l: &str| parse_line(l.as_bytes()).unwrap_err().to_string();
        assert!(err(r#"{"Item":{"a":{"X":"1"}}}"#).contains("unknown type descriptor \"X\""));
        assert!(err(r#"{"Item":{"a":{"N":"1x"}}}"#).contains("\"1x\" is not a number"));
        assert!(err(r#"{"Item":{"a":{"B":"!!"}}}"#).contains("base64"));
        assert!(err(r#"{"Item":{"a":{"S":"x","N":"1"}}}"#).contains("second type descriptor"));
        assert!(err(r#"{"Item":{"a":{"S":"x"}}"#).contains("EOF"));
        assert!(err(r#"{"Item":{"a":{"S":"x"}}} trailing"#).contains("trailing"));
        assert!(err(r#"{"Thing":1}"#).contains("unexpected field \"Thing\""));
        assert!(err(r#"{"Item":{"a":{"S":1}}}"#).contains("attribute \"a\""));
    }

    #[test]
    fn numbers_are_checked() {
        for ok in ["0", "-1", "1.5", ".5", "5.", "1E+10", "-2.5e-3", "+7"] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in ["", "-", ".", "1e", "1.2.3", "abc", "1 "] {
            assert!(!is_number(bad), "{bad}");
        }
    }
}
