//! Glue's partition filter expressions (`GetPartitions` `Expression`): a
//! SQL WHERE clause over partition keys.
//!
//! Supported: `= <> != > < >= <=`, `AND`, `OR`, `NOT`, parentheses,
//! `IN (...)`, `BETWEEN a AND b`, `LIKE` (`%` and `_`), `IS [NOT] NULL`;
//! literals are 'quoted strings' or numbers; keys may be "double-quoted".
//! Comparisons are numeric when the key's type is numeric (`int`, `bigint`,
//! `tinyint`, `smallint`, `long`, `decimal`, `double`, `float`) and textual
//! otherwise — which orders `date` (`yyyy-MM-dd`) and `timestamp` values
//! correctly too. A key that is not a partition key is an error.

use std::cmp::Ordering;

use crate::model::Column;

/// The longest expression accepted: Glue's documented maximum for
/// `GetPartitions`' `Expression`.
pub(crate) const MAX_EXPRESSION_LENGTH: usize = 2048;

/// How deeply parentheses and `NOT`s may nest. The parser and the
/// evaluator recurse once per level; real filters use a handful.
pub const MAX_EXPRESSION_DEPTH: usize = 32;

/// A parsed expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `a AND b`.
    And(Box<Expr>, Box<Expr>),
    /// `a OR b`.
    Or(Box<Expr>, Box<Expr>),
    /// `NOT a`.
    Not(Box<Expr>),
    /// `key <op> literal`.
    Cmp(usize, CmpOp, String),
    /// `key [NOT] IN (...)`.
    In(usize, Vec<String>, bool),
    /// `key [NOT] BETWEEN a AND b`.
    Between(usize, String, String, bool),
    /// `key [NOT] LIKE pattern`.
    Like(usize, regex::Regex, bool),
    /// `key IS [NOT] NULL` (partition values are never null).
    IsNull(usize, bool),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`.
    Eq,
    /// `<>`, `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Op(String),
    LParen,
    RParen,
    Comma,
}

fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated {quote} quote")),
                        Some(&q) if q == quote && chars.get(i + 1) == Some(&quote) => {
                            s.push(quote);
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(if quote == '\'' {
                    Tok::Str(s)
                } else {
                    Tok::Ident(s)
                });
            }
            '=' | '<' | '>' | '!' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = if ["<>", "!=", "<=", ">="].contains(&two.as_str()) {
                    two
                } else if c == '!' {
                    return Err("unexpected '!'".into());
                } else {
                    c.to_string()
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    keys: &'a [Column],
    depth: usize,
}

impl Parser<'_> {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let yes = self.peek_word(word);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expect_word(&mut self, word: &str) -> Result<(), String> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(format!("expected {word}"))
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.eat_word("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    /// Enters one level of nesting (a parenthesis or a `NOT`).
    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_EXPRESSION_DEPTH {
            return Err(format!(
                "the expression nests parentheses and NOTs deeper than {MAX_EXPRESSION_DEPTH} levels"
            ));
        }
        Ok(())
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat_word("not") {
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn literal(&mut self) -> Result<String, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Str(s)) | Some(Tok::Num(s)) => {
                self.pos += 1;
                Ok(s)
            }
            other => Err(format!("expected a literal, found {other:?}")),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        if self.toks.get(self.pos) == Some(&Tok::LParen) {
            self.pos += 1;
            self.deeper()?;
            let e = self.or()?;
            if self.toks.get(self.pos) != Some(&Tok::RParen) {
                return Err("expected ')'".into());
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(e);
        }
        let Some(Tok::Ident(name)) = self.toks.get(self.pos).cloned() else {
            return Err(format!(
                "expected a partition key, found {:?}",
                self.toks.get(self.pos)
            ));
        };
        self.pos += 1;
        let key = self
            .keys
            .iter()
            .position(|k| k.name.eq_ignore_ascii_case(&name))
            .ok_or_else(|| format!("{name:?} is not a partition key"))?;
        if self.eat_word("is") {
            let negated = self.eat_word("not");
            self.expect_word("null")?;
            return Ok(Expr::IsNull(key, negated));
        }
        let negated = self.eat_word("not");
        if self.eat_word("in") {
            if self.toks.get(self.pos) != Some(&Tok::LParen) {
                return Err("expected '(' after IN".into());
            }
            self.pos += 1;
            let mut values = vec![self.literal()?];
            while self.toks.get(self.pos) == Some(&Tok::Comma) {
                self.pos += 1;
                values.push(self.literal()?);
            }
            if self.toks.get(self.pos) != Some(&Tok::RParen) {
                return Err("expected ')' after IN list".into());
            }
            self.pos += 1;
            return Ok(Expr::In(key, values, negated));
        }
        if self.eat_word("between") {
            let low = self.literal()?;
            self.expect_word("and")?;
            let high = self.literal()?;
            return Ok(Expr::Between(key, low, high, negated));
        }
        if self.eat_word("like") {
            let pattern = self.literal()?;
            let mut re = String::from("^");
            for c in pattern.chars() {
                match c {
                    '%' => re.push_str(".*"),
                    '_' => re.push('.'),
                    c => re.push_str(&regex::escape(&c.to_string())),
                }
            }
            re.push('$');
            let re = regex::Regex::new(&re).map_err(|e| e.to_string())?;
            return Ok(Expr::Like(key, re, negated));
        }
        if negated {
            return Err("expected IN, BETWEEN or LIKE after NOT".into());
        }
        let op = match self.toks.get(self.pos).cloned() {
            Some(Tok::Op(op)) => op,
            other => {
                return Err(format!(
                    "expected an operator after {name:?}, found {other:?}"
                ));
            }
        };
        self.pos += 1;
        let op = match op.as_str() {
            "=" => CmpOp::Eq,
            "<>" | "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            other => return Err(format!("unknown operator {other}")),
        };
        Ok(Expr::Cmp(key, op, self.literal()?))
    }
}

/// A compiled partition filter.
#[derive(Debug, Clone)]
pub struct PartitionFilter {
    expr: Expr,
    numeric: Vec<bool>,
}

impl PartitionFilter {
    /// Parses `text` against the table's partition keys.
    pub fn parse(text: &str, keys: &[Column]) -> Result<Self, String> {
        if text.len() > MAX_EXPRESSION_LENGTH {
            return Err(format!(
                "the expression is {} bytes long; at most {MAX_EXPRESSION_LENGTH} are allowed",
                text.len()
            ));
        }
        let toks = lex(text)?;
        let mut parser = Parser {
            toks,
            pos: 0,
            keys,
            depth: 0,
        };
        let expr = parser.or()?;
        if parser.pos != parser.toks.len() {
            return Err(format!(
                "unexpected {:?} after the expression",
                parser.toks[parser.pos]
            ));
        }
        let numeric = keys
            .iter()
            .map(|k| {
                let t = k
                    .data_type
                    .as_deref()
                    .unwrap_or("string")
                    .to_ascii_lowercase();
                [
                    "int", "bigint", "tinyint", "smallint", "long", "double", "float",
                ]
                .contains(&t.as_str())
                    || t.starts_with("decimal")
            })
            .collect();
        Ok(Self { expr, numeric })
    }

    /// Whether partition `values` pass the filter.
    pub fn matches(&self, values: &[String]) -> bool {
        self.eval(&self.expr, values)
    }

    fn compare(&self, key: usize, value: &str, literal: &str) -> Option<Ordering> {
        if self.numeric.get(key).copied().unwrap_or(false) {
            let (a, b) = (value.parse::<f64>().ok()?, literal.parse::<f64>().ok()?);
            a.partial_cmp(&b)
        } else {
            Some(value.cmp(literal))
        }
    }

    fn eval(&self, e: &Expr, values: &[String]) -> bool {
        let value = |k: usize| values.get(k).map(String::as_str).unwrap_or("");
        match e {
            Expr::And(a, b) => self.eval(a, values) && self.eval(b, values),
            Expr::Or(a, b) => self.eval(a, values) || self.eval(b, values),
            Expr::Not(a) => !self.eval(a, values),
            Expr::Cmp(k, op, lit) => match self.compare(*k, value(*k), lit) {
                None => false,
                Some(ord) => match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Le => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Ge => ord != Ordering::Less,
                },
            },
            Expr::In(k, list, negated) => {
                let hit = list
                    .iter()
                    .any(|l| self.compare(*k, value(*k), l) == Some(Ordering::Equal));
                hit != *negated
            }
            Expr::Between(k, lo, hi, negated) => {
                let v = value(*k);
                let inside = self.compare(*k, v, lo).is_some_and(|o| o != Ordering::Less)
                    && self
                        .compare(*k, v, hi)
                        .is_some_and(|o| o != Ordering::Greater);
                inside != *negated
            }
            Expr::Like(k, re, negated) => re.is_match(value(*k)) != *negated,
            Expr::IsNull(_, negated) => *negated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Column> {
        [("year", "int"), ("dt", "date"), ("service", "string")]
            .iter()
            .map(|(n, t)| Column {
                name: (*n).into(),
                data_type: Some((*t).into()),
                ..Default::default()
            })
            .collect()
    }

    fn check(expr: &str, values: &[&str]) -> bool {
        let f = PartitionFilter::parse(expr, &keys()).unwrap();
        f.matches(&values.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn evaluates_glue_expressions() {
        let p = ["2026", "2026-11-23", "web"];
        assert!(check("year = 2026", &p));
        assert!(check("year > 999", &p), "numeric, not textual");
        assert!(check("dt >= '2026-11-01' AND dt < '2026-12-01'", &p));
        assert!(check("service IN ('api', 'web')", &p));
        assert!(!check("service NOT IN ('api', 'web')", &p));
        assert!(check(
            "year BETWEEN 2020 AND 2030 and not service = 'api'",
            &p
        ));
        assert!(check("service LIKE 'w_b%'", &p));
        assert!(check(
            "(service = 'api' OR service = 'web') AND \"Year\" <> 2025",
            &p
        ));
        assert!(!check("service IS NULL", &p));
        assert!(check("service IS NOT NULL", &p));
        assert!(check("service != 'api'", &p));
    }

    #[test]
    fn reports_bad_expressions() {
        for bad in [
            "nope = 1",
            "year =",
            "year = 1 AND",
            "service LIKE",
            "(year = 1",
            "year ~ 1",
            "year = 'x",
        ] {
            assert!(PartitionFilter::parse(bad, &keys()).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_and_length_are_bounded() {
        let p = ["2026", "2026-11-23", "web"];
        let ok = format!(
            "{}year = 2026{}",
            "(".repeat(MAX_EXPRESSION_DEPTH),
            ")".repeat(MAX_EXPRESSION_DEPTH)
        );
        assert!(check(&ok, &p));
        for deep in [
            format!(
                "{}year = 1{}",
                "(".repeat(MAX_EXPRESSION_DEPTH + 1),
                ")".repeat(MAX_EXPRESSION_DEPTH + 1)
            ),
            format!("{}year = 1", "NOT ".repeat(MAX_EXPRESSION_DEPTH + 1)),
            format!("{}year = 1", "(NOT ".repeat(300)),
        ] {
            let err = PartitionFilter::parse(&deep, &keys()).unwrap_err();
            assert!(err.contains("deeper than 32 levels"), "{err}");
        }
        // Without the length cap this would be a 100,000-level parse.
        let err = PartitionFilter::parse(&"(".repeat(100_000), &keys()).unwrap_err();
        assert!(err.contains("at most 2048"), "{err}");
        assert!(check("NOT NOT year = 2026", &p));
    }

    #[test]
    fn odd_text_is_an_error_not_a_panic() {
        for odd in [
            "year\u{3000}=\u{3000}2026",
            "service = 'w\u{3000}b",
            "service = \"",
            "é = 1",
            "year = -",
            "year = 1e99999999999",
            "service LIKE '\u{3000}%'",
            "!",
            "year ! 1",
            "'",
        ] {
            let _ = PartitionFilter::parse(odd, &keys());
        }
        let p = ["2026", "2026-11-23", "web"];
        assert!(check("year\u{3000}=\u{3000}2026", &p));
        assert!(!check("year = 1e99999999999", &p));
    }
}
