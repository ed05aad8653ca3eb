//! Hive's partition folders: `key=value/` segments whose values are escaped
//! as Hive escapes them (`%3A` for `:`, `%2F` for `/`, ...). Every reader
//! of a folder name (the crawler, ingest's registration, the query engine's
//! listing, `MSCK REPAIR TABLE`) unescapes values here, and every writer
//! (CTAS, `INSERT INTO`, `UNLOAD`) escapes them here, so a value reads the
//! same whoever registered it.

/// The characters Hive escapes in a partition value, besides control
/// characters.
const ESCAPED: &str = "\"#%'*/:=?\\{[]^";

/// A partition value as it is written in a folder name.
pub(crate) fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() || ESCAPED.contains(c) {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A partition value as a folder name spells it: `%XX` escapes decoded
/// (an invalid escape is kept as it is, invalid UTF-8 replaced).
pub(crate) fn unescape_value(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One `key=value` folder name as its key and its unescaped value; `None`
/// when the name has no `=`.
pub fn parse_segment(segment: &str) -> Option<(&str, String)> {
    let (key, value) = segment.split_once('=')?;
    Some((key, unescape_value(value)))
}

/// The folder of one partition, `k1=v1/k2=v2/`, values escaped.
pub fn folder<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(key, value)| format!("{key}={}/", escape_value(value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_folder_names() {
        for value in ["10:00", "a/b", "50%", "x=y", "plain", "é", "tab\there", ""] {
            let written = escape_value(value);
            assert!(
                !written.contains('/') && !written.contains('='),
                "{written}"
            );
            assert_eq!(unescape_value(&written), value);
        }
        assert_eq!(escape_value("10:00"), "10%3A00");
        assert_eq!(
            folder([("dt", "2026-01-01"), ("hour", "10:00")]),
            "dt=2026-01-01/hour=10%3A00/"
        );
        assert_eq!(
            parse_segment("hour=10%3A00"),
            Some(("hour", "10:00".to_string()))
        );
        assert_eq!(parse_segment("plain"), None);
        // Invalid escapes stay as they are.
        assert_eq!(unescape_value("%zz%4"), "%zz%4");
    }
}
